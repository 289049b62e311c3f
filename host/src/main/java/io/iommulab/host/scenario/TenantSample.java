package io.iommulab.host.scenario;

import io.iommulab.actors.CborSerializable;
import io.iommulab.config.scenario.MetricCatalog;
import java.util.Collections;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * What one tenant did in one interval (or what one recorder saw of it: samples of one tenant from
 * several recorders are merged by {@link IntervalMerger}). Immutable.
 *
 * @param tenant the tenant's name
 * @param counters counter metrics of {@link MetricCatalog} (kind COUNTER) → the count in the
 *     interval; absent means 0
 * @param latencies latency metrics of {@link MetricCatalog} (kind LATENCY) → the interval's
 *     histogram of nanoseconds; absent means no sample
 */
public record TenantSample(
    String tenant, Map<String, Long> counters, Map<String, EncodedHistogram> latencies)
    implements CborSerializable {

  public TenantSample {
    Objects.requireNonNull(tenant, "tenant");
    for (Map.Entry<String, Long> c : counters.entrySet()) {
      if (!MetricCatalog.isKnown(c.getKey(), MetricCatalog.Kind.COUNTER)) {
        throw new IllegalArgumentException(
            "tenant " + tenant + ": " + c.getKey() + " is not a counter of the metric catalogue");
      }
      if (c.getValue() == null || c.getValue() < 0) {
        throw new IllegalArgumentException("tenant " + tenant + ": " + c.getKey() + " = " + c.getValue());
      }
    }
    for (Map.Entry<String, EncodedHistogram> l : latencies.entrySet()) {
      if (!MetricCatalog.isKnown(l.getKey(), MetricCatalog.Kind.LATENCY)) {
        throw new IllegalArgumentException(
            "tenant " + tenant + ": " + l.getKey() + " is not a latency of the metric catalogue");
      }
      Objects.requireNonNull(l.getValue(), l.getKey());
    }
    counters = Collections.unmodifiableMap(new TreeMap<>(counters));
    latencies = Collections.unmodifiableMap(new TreeMap<>(latencies));
  }

  public long counter(String metric) {
    return counters.getOrDefault(metric, 0L);
  }
}
