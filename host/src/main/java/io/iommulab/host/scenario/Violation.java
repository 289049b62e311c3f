package io.iommulab.host.scenario;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.vm.StaleDmaOracle;
import io.iommulab.config.scenario.Oracle;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A violation of an invariant oracle, with what is needed to replay and understand it: the run's
 * seed and the sequence of events that led to it.
 *
 * @param oracle the oracle's name ({@link Oracle#configName()})
 * @param seed the run's seed
 * @param tenant the tenant of the VM concerned, "" when none
 * @param vmId the VM concerned, 0 when none
 * @param detectedAtNanos when it was detected, on the run's clock
 * @param summary what went wrong, in one line
 * @param events the events that led to it, oldest first
 */
public record Violation(
    String oracle,
    long seed,
    String tenant,
    int vmId,
    long detectedAtNanos,
    String summary,
    List<TraceEvent> events)
    implements CborSerializable {

  public Violation {
    if (Oracle.fromConfigName(oracle).isEmpty()) {
      throw new IllegalArgumentException("no oracle " + oracle);
    }
    Objects.requireNonNull(tenant, "tenant");
    Objects.requireNonNull(summary, "summary");
    events = List.copyOf(events);
  }

  /** A stale-translation violation the VM's oracle recorded, with its events. */
  public static Violation of(StaleDmaOracle.StaleViolation v, String tenant, long detectedAtNanos) {
    List<TraceEvent> events = new ArrayList<>();
    for (StaleDmaOracle.Event e : v.events()) {
      events.add(new TraceEvent(e.seq(), e.timeNs(), e.what()));
    }
    return new Violation(
        Oracle.STALE_TRANSLATION.configName(),
        v.seed(),
        tenant,
        v.vmId(),
        detectedAtNanos,
        String.format(
            "vm %d device %s pasid %d: access 0x%x (access bits %d) of burst %d completed after its"
                + " unmap had returned",
            v.vmId(), v.device(), v.pasid(), v.iova(), v.access(), v.burstTag()),
        events);
  }
}
