package io.iommulab.config.scenario;

import java.util.Arrays;
import java.util.Optional;

/**
 * The invariant oracles that judge every run. A violation of any of them fails the run (exit code
 * 1), is recorded with the run's seed and the events that led to it, and is counted in the metric
 * {@code violations.<name>}.
 */
public enum Oracle {
  /** No completed DMA touched a frame of another VM (the host-memory ownership oracle). */
  ISOLATION("isolation", "no DMA reached another VM's frame"),
  /** With strict unmaps, no DMA issued after its IOVA's unmap returned completed. */
  STALE_TRANSLATION("stale-translation", "no stale translation after a strict unmap"),
  /** At the end every pin, charge and byte of guest memory was returned. */
  ACCOUNTING("accounting", "accounting balanced at the end"),
  /** When an fd closed, no object (IOAS, HWPT, device binding, fault queue) was left behind. */
  FD_CLOSE("fd-close", "no object left behind at fd close"),
  /** Every fault published was delivered or counted lost: published = delivered + lost. */
  FAULT_CONSERVATION("fault-conservation", "faults published = delivered + lost"),
  /** No actor stopped on a bug (a thrown exception is a broken invariant) and none went silent. */
  ACTOR_FAILURES("actor-failures", "no actor stopped on a bug");

  private final String configName;
  private final String rule;

  Oracle(String configName, String rule) {
    this.configName = configName;
    this.rule = rule;
  }

  /** The spelling in metric names ({@code violations.isolation}) and results. */
  public String configName() {
    return configName;
  }

  /** The invariant, in a few words. */
  public String rule() {
    return rule;
  }

  public String metric() {
    return "violations." + configName;
  }

  public static Optional<Oracle> fromConfigName(String name) {
    return Arrays.stream(values()).filter(o -> o.configName.equals(name)).findFirst();
  }
}
