package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.ok;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Outcome;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import io.iommulab.host.uapi.IommuFd.IoasUnmap;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * A rough throughput check (not a benchmark: JMH in load-tests is): map+unmap round trips of
 * 1,000 fds, one IOAS each, one call in flight per fd, against the raw ask rate of 1,000 echo
 * actors driven the same way. Run with {@code -Diommulab.perf=true}; prints the ratio.
 */
@EnabledIfSystemProperty(named = "iommulab.perf", matches = "true")
class MapUnmapThroughputTest {

  static final ActorTestKit kit = ActorTestKit.create();

  @AfterAll
  static void shutdown() {
    kit.shutdownTestKit();
  }

  record Ping(ActorRef<Ping> replyTo) {}

  static Behavior<Ping> echo() {
    return Behaviors.receive(Ping.class).onMessage(Ping.class, p -> {
      p.replyTo().tell(p);
      return Behaviors.same();
    }).build();
  }

  private static final Executor DIRECT = Runnable::run;

  @Test
  void mapUnmapRoundTripsAgainstRawAsks() throws Exception {
    int vms = 1000;
    Duration run = Duration.ofSeconds(3);
    List<ActorRef<Ping>> echoes = new ArrayList<>();
    for (int i = 0; i < vms; i++) {
      echoes.add(kit.spawn(echo()));
    }
    drive(vms, run, i -> AskPattern.<Ping, Ping>ask(echoes.get(i), Ping::new, Duration.ofSeconds(5), kit.scheduler()));
    double raw = drive(vms, run, i -> AskPattern.<Ping, Ping>ask(echoes.get(i), Ping::new, Duration.ofSeconds(5), kit.scheduler()));
    Fixture f = new Fixture(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE);
    List<IommuFd> fds = new ArrayList<>();
    List<Integer> ioases = new ArrayList<>();
    for (int i = 0; i < vms; i++) {
      IommuFd fd = new IommuFd(f.openFd(1, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE), kit.scheduler(),
          DIRECT, Duration.ofSeconds(5));
      fds.add(fd);
      ioases.add(ok(fd.ioasAlloc()));
    }
    drive(vms, run, i -> fds.get(i).ioasMap(IoasMap.fixed(ioases.get(i), f.va, 2 * MB, 16 * MB))
        .thenComposeAsync(m -> fds.get(i).ioasUnmap(new IoasUnmap(ioases.get(i), 16 * MB, 2 * MB)), DIRECT));
    double mapUnmap = drive(vms, run, i -> fds.get(i).ioasMap(IoasMap.fixed(ioases.get(i), f.va, 2 * MB, 16 * MB))
        .thenComposeAsync(m -> fds.get(i).ioasUnmap(new IoasUnmap(ioases.get(i), 16 * MB, 2 * MB)), DIRECT));
    // With a domain: one fd per device-less VM cannot attach, so measure one fd with nic0 attached.
    IommuFd one = new IommuFd(f.fdRef, kit.scheduler(), DIRECT, Duration.ofSeconds(5));
    int ioas = ok(one.ioasAlloc());
    ok(f.bound("nic0").attach(ioas));
    double withDomain = drive(1, run, i -> one.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB))
        .thenComposeAsync(m -> one.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 2 * MB)), DIRECT));
    System.out.printf("raw asks: %.0f/s; map+unmap (1000 fds, no domain): %.0f/s = %.0f%%; "
        + "map+unmap (1 fd, 1 domain, sequential): %.0f/s%n", raw, mapUnmap, 100 * mapUnmap / raw, withDomain);
  }

  /** Keeps one call in flight per index for {@code run}; returns completed calls per second. */
  private static double drive(int n, Duration run, java.util.function.IntFunction<CompletionStage<?>> call)
      throws Exception {
    AtomicLong done = new AtomicLong();
    long end = System.nanoTime() + run.toNanos();
    List<CompletableFuture<Void>> loops = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      CompletableFuture<Void> finished = new CompletableFuture<>();
      loops.add(finished);
      loop(i, call, done, end, finished);
    }
    long start = System.nanoTime();
    CompletableFuture.allOf(loops.toArray(new CompletableFuture<?>[0])).get();
    long elapsed = System.nanoTime() - start;
    return done.get() * 1e9 / elapsed;
  }

  private static void loop(int i, java.util.function.IntFunction<CompletionStage<?>> call, AtomicLong done, long end,
      CompletableFuture<Void> finished) {
    call.apply(i).whenCompleteAsync((r, e) -> {
      if (e != null || (r instanceof Outcome<?> o && !o.isOk())) {
        finished.completeExceptionally(e != null ? e : new AssertionError(r));
        return;
      }
      done.incrementAndGet();
      if (System.nanoTime() < end) {
        loop(i, call, done, end, finished);
      } else {
        finished.complete(null);
      }
    }, DIRECT);
  }
}
