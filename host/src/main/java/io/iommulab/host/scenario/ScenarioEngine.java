package io.iommulab.host.scenario;

/**
 * Runs a validated scenario's workload on a host and reports what happened. The runner ({@code
 * iommulab run}) does everything around it: reads and checks the scenario, starts the host and
 * the Prometheus endpoint, draws the progress bar, writes the results, evaluates the assertions
 * and the oracles, shuts the host down and sets the exit code.
 *
 * <h2>What an engine does</h2>
 *
 * <ol>
 *   <li>Creates each tenant's VMs on {@link ScenarioRun#host()}: VM ids {@code
 *       TenantSettings.vmId(i)}, memory and backing as given, the devices of {@code
 *       TenantSettings.vmDevices().get(i)}, the tenant's name as the VM's tenant (its metric tag).
 *       Opens their fds, binds and attaches devices as {@code domains}, {@code pasidsPerDevice}
 *       and {@code nested} say, maps the DMA working set.
 *   <li>Runs each tenant's workload ({@code WorkloadSettings}: rates are per VM and per second)
 *       for {@code scenario.duration()} or until {@link ScenarioRun#stop()} is requested, with
 *       randomness from {@code scenario.seed()} only (a {@code SplittableRandom} split per VM), so
 *       a run replays.
 *   <li>Every {@code scenario.interval()}, calls {@link RunListener#onInterval} with the interval
 *       just ended: intervals numbered from 0, contiguous, the last one ending with the run (also
 *       when stopped early), one {@link TenantSample} per tenant of the scenario. It reports each
 *       violation with {@link RunListener#onViolation} as soon as it sees one. Every call to the
 *       listener happens before {@code run} returns.
 *   <li>Tears the workload down (closes every fd and destroys every VM, or leaves them for the
 *       host's shutdown, which closes them too), and returns an {@link EngineOutcome} with its
 *       oracle verdicts ({@code fd-close} and {@code fault-conservation} at least).
 * </ol>
 *
 * <h2>Metrics and the actor rules</h2>
 *
 * Measurements respect the project's actor rules: one owner per state, data flows one way, no
 * shared mutable object.
 *
 * <ul>
 *   <li>Whoever measures owns its recorder: each actor (or each single-threaded driver) that
 *       records latencies and counts keeps its own {@link IntervalRecorder} (HdrHistograms and
 *       counters), touched by it alone, never shared, never locked.
 *   <li>At the end of each interval it {@linkplain IntervalRecorder#drain drains} the recorder
 *       into an immutable {@link TenantSample} (histograms in HdrHistogram's compressed form,
 *       {@link EncodedHistogram}) and tells it, inside its own message, to one collector actor.
 *       Recorders are reset by the drain and go on recording.
 *   <li>The collector owns an {@link IntervalMerger}: it merges the samples of the interval
 *       (histograms add, counters add) and, once every recorder has reported or the interval's
 *       grace period is over, calls {@link RunListener#onInterval} with the {@link
 *       IntervalSnapshot}. The listener returns at once, so calling it from the actor is fine.
 *   <li>Metric names are those of {@link io.iommulab.config.scenario.MetricCatalog}; a sample
 *       naming another is refused (a bug of the engine). A new metric goes into the catalogue
 *       first, where assertions and results pick it up.
 *   <li>Two latencies per operation: {@code <op>.latency.modeled} is what the cost model
 *       charged (from the replies: modeled time, deterministic for a seed), {@code
 *       <op>.latency.wall} is what the driver measured with the run's clock at the edge (never in
 *       a hardware model). Kamon metrics the actors already publish (tagged by unit and tenant)
 *       are separate and stay as they are.
 *   <li>What to count: {@code <op>.count} for every operation completed (refused ones too) and
 *       {@code <op>.errors} for those refused with an errno; {@code attach} at VM start and after
 *       each replug; {@code dma.translations} one per access of a burst, {@code dma.faults} those
 *       that faulted, {@code dma.bytes}; {@code faults.published/delivered/lost} from the fault
 *       queues and logs; {@code wbinvd.emulated} for the WBINVDs KVM emulated; {@code
 *       violations.<oracle>} for each violation seen during the run.
 * </ul>
 *
 * <h2>Oracles</h2>
 *
 * Every oracle is on in every run. The runner judges isolation, stale translation, accounting and
 * actor failures from the host's shutdown report ({@link HostOracles}). The engine judges what
 * only it sees — fd close (at each close of an fd by the workload, no object left behind), fault
 * conservation (published = delivered + lost) — and returns those verdicts; an oracle nobody
 * judged fails the run. Violations seen during the run are counted in {@code
 * violations.<oracle>} of their tenant's sample and reported to {@link
 * RunListener#onViolation} with the seed and the events that led to them.
 *
 * <h2>Discovery</h2>
 *
 * The command line finds the engine with {@link java.util.ServiceLoader}: an implementation is
 * registered in {@code META-INF/services/io.iommulab.host.scenario.ScenarioEngine} and has a
 * public no-argument constructor. Until one is registered, {@code iommulab run} says "no engine
 * available" and exits with code 3.
 */
public interface ScenarioEngine {

  /** The engine's name, shown in results. */
  String name();

  /**
   * Runs the scenario's workload; returns when the duration is over or a stop was requested.
   *
   * @throws Exception when the run could not go on: the runner writes what was measured, notes the
   *     failure and exits with code 3
   */
  EngineOutcome run(ScenarioRun run) throws Exception;
}
