package io.iommulab.host.scenario.engine;

import io.iommulab.host.scenario.EngineOutcome;
import io.iommulab.host.scenario.ScenarioEngine;
import io.iommulab.host.scenario.ScenarioRun;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;

/**
 * The workload engine: drives a scenario's tenants on the host's actors. The work is done by
 * actors on the host's actor system — a {@link Conductor} (the run's lifecycle and its one
 * collector of interval samples) and {@link Workload} actors (the guest-side drivers of the VMs,
 * each owning its recorder); this class only starts the conductor, passes a stop request on, and
 * waits for the outcome. See {@link Workload} for what a VM does and how it is measured, {@link
 * Conductor} for the intervals and the engine's oracles.
 */
public final class ActorEngine implements ScenarioEngine {

  /** The engine's name, as {@code iommulab run --engine} takes it. */
  public static final String NAME = "actors";

  private static final AtomicInteger RUNS = new AtomicInteger();

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public EngineOutcome run(ScenarioRun run) throws Exception {
    if (java.util.concurrent.ForkJoinPool.getCommonPoolParallelism() < 2) {
      System.err.println("iommulab: warning: the JDK common pool has one worker: every ask inside the actors"
          + " will start a thread (about 0.4 ms each); run with"
          + " -Djava.util.concurrent.ForkJoinPool.common.parallelism=4");
    }
    CompletableFuture<EngineOutcome> outcome = new CompletableFuture<>();
    ActorRef<Conductor.Command> conductor = run.host().system().systemActorOf(
        Conductor.create(run, outcome), "scenario-engine-" + RUNS.incrementAndGet(), Props.empty());
    boolean stopSent = false;
    while (true) {
      try {
        return outcome.get(50, TimeUnit.MILLISECONDS);
      } catch (TimeoutException notYet) {
        if (!stopSent && run.stop().await(50_000_000L)) {
          conductor.tell(Conductor.StopRequested.INSTANCE);
          stopSent = true;
        }
      } catch (ExecutionException e) {
        if (e.getCause() instanceof Exception cause) {
          throw cause;
        }
        throw e;
      }
    }
  }
}
