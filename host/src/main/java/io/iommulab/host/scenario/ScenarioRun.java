package io.iommulab.host.scenario;

import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.host.Host;
import java.util.Objects;

/**
 * Everything an engine gets to run one scenario.
 *
 * @param scenario the validated scenario: tenants with their VM ids and assigned devices,
 *     workloads, duration, interval, seed
 * @param host the started host, built from {@link ScenarioSettings#hostOverrides()} (topology,
 *     uAPI, cost model, seed, strict unmaps); it has no VM yet. The engine creates the VMs and
 *     may destroy them; it must not shut the host down — the runner does, after {@link
 *     ScenarioEngine#run} returns, for the leak and oracle report.
 * @param clock the run's clock, the one the host's actors were given; {@link IntervalSnapshot}
 *     times are on it, from {@link #startNanos()}
 * @param startNanos the clock's reading when the workload started (interval 0 starts here)
 * @param listener where to report intervals and violations
 * @param stop a request to end early
 */
public record ScenarioRun(
    ScenarioSettings scenario,
    Host host,
    ModeledClock clock,
    long startNanos,
    RunListener listener,
    StopSignal stop) {
  public ScenarioRun {
    Objects.requireNonNull(scenario, "scenario");
    Objects.requireNonNull(host, "host");
    Objects.requireNonNull(clock, "clock");
    Objects.requireNonNull(listener, "listener");
    Objects.requireNonNull(stop, "stop");
  }

  /** Nanoseconds on the run's clock since the workload started. */
  public long elapsedNanos() {
    return clock.nanos() - startNanos;
  }
}
