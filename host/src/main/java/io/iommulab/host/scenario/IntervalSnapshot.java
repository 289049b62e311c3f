package io.iommulab.host.scenario;

import io.iommulab.actors.CborSerializable;
import java.util.List;

/**
 * One interval of a run: what every tenant did from {@code startNanos} to {@code endNanos} (the
 * run's clock, from the start of the workload). Immutable; the unit of the time series, of the
 * JSON-lines log and of incremental results.
 *
 * <p>Intervals are numbered from 0 without gaps and are contiguous ({@code startNanos} of one is
 * {@code endNanos} of the one before); each is {@code scenario.interval} long except the last,
 * which ends with the run.
 *
 * @param index 0, 1, 2, ...
 * @param startNanos start of the interval on the run's clock
 * @param endNanos end of the interval on the run's clock, after {@code startNanos}
 * @param tenants one sample per tenant that did anything (at most one per tenant)
 */
public record IntervalSnapshot(int index, long startNanos, long endNanos, List<TenantSample> tenants)
    implements CborSerializable {

  public IntervalSnapshot {
    if (index < 0 || startNanos < 0 || endNanos <= startNanos) {
      throw new IllegalArgumentException(
          "interval " + index + " [" + startNanos + ", " + endNanos + "): not a valid interval");
    }
    tenants = List.copyOf(tenants);
    java.util.Set<String> seen = new java.util.HashSet<>();
    for (TenantSample t : tenants) {
      if (!seen.add(t.tenant())) {
        throw new IllegalArgumentException("interval " + index + ": two samples of tenant " + t.tenant());
      }
    }
  }

  /** The sum of {@code metric} over every tenant. */
  public long total(String metric) {
    long n = 0;
    for (TenantSample t : tenants) {
      n += t.counter(metric);
    }
    return n;
  }
}
