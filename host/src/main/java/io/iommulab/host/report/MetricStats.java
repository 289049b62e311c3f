package io.iommulab.host.report;

import io.iommulab.config.scenario.MetricCatalog;
import io.iommulab.config.scenario.Stat;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.HdrHistogram.Histogram;

/**
 * The statistics of one metric in one scope (global or a tenant) over a span of the run.
 *
 * @param metric the metric's name
 * @param kind {@code counter} or {@code latency}
 * @param unit {@code ns} for a latency's values, else {@code count}
 * @param count a counter's total, or a latency's number of samples
 * @param rate {@code count} per second of measured time
 * @param ratio a counter over its base counter; null without a base or when the base is 0
 * @param min the smallest latency (null for counters and without samples)
 * @param max the largest latency
 * @param mean the mean latency
 * @param percentiles latency percentiles by name ({@code p50}, {@code p99.9}), values in ns
 */
public record MetricStats(
    String metric,
    String kind,
    String unit,
    long count,
    double rate,
    Double ratio,
    Long min,
    Long max,
    Double mean,
    Map<String, Long> percentiles) {

  public MetricStats {
    percentiles = Collections.unmodifiableMap(new LinkedHashMap<>(percentiles));
  }

  static MetricStats counter(String metric, long count, double seconds, Long base) {
    Double ratio = base == null || base == 0 ? null : (double) count / base;
    return new MetricStats(metric, "counter", "count", count, rate(count, seconds), ratio, null, null, null, Map.of());
  }

  static MetricStats latency(String metric, Histogram h, double seconds, double[] percentiles) {
    Map<String, Long> p = new LinkedHashMap<>();
    if (h == null || h.getTotalCount() == 0) {
      return new MetricStats(metric, "latency", "ns", 0, 0, null, null, null, null, p);
    }
    for (double q : percentiles) {
      p.put(Stat.percentile(q).name(), h.getValueAtPercentile(q));
    }
    return new MetricStats(metric, "latency", "ns", h.getTotalCount(), rate(h.getTotalCount(), seconds),
        null, h.getMinValue(), h.getMaxValue(), h.getMean(), p);
  }

  static double rate(long count, double seconds) {
    return seconds > 0 ? count / seconds : 0;
  }

  /** Whether this is a latency metric. */
  public boolean isLatency() {
    return kind.equals("latency");
  }

  /** The catalogue's entry. */
  public MetricCatalog.Metric definition() {
    return MetricCatalog.find(metric).orElseThrow();
  }
}
