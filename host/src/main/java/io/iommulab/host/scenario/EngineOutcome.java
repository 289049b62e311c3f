package io.iommulab.host.scenario;

import java.util.List;

/**
 * What an engine returns when its run is over. The measurements themselves went out as {@link
 * IntervalSnapshot}s while it ran; this carries what only the end can tell.
 *
 * @param completed whether the workload ran its whole duration (false: stopped early, because
 *     {@link ScenarioRun#stop()} was requested)
 * @param modeledNanos modeled time the run covered (the cost model's clock), or -1 if the engine
 *     does not keep one
 * @param oracles the engine's verdicts: at least {@code fd-close} (every fd the workload closed
 *     left no object behind) and {@code fault-conservation} (faults published = delivered + lost),
 *     which only the engine sees. The runner adds isolation, stale-translation, accounting and
 *     actor-failures from the host's shutdown report, summing with any the engine also gives.
 * @param notes anything the person reading the results should know (in words)
 */
public record EngineOutcome(
    boolean completed, long modeledNanos, List<OracleResult> oracles, List<String> notes) {
  public EngineOutcome {
    oracles = List.copyOf(oracles);
    notes = List.copyOf(notes);
  }
}
