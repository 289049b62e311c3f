package io.iommulab.host.scenario;

import io.iommulab.config.scenario.MetricCatalog;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import org.HdrHistogram.Histogram;

/**
 * The counters and latency histograms of one recorder — an actor, or one single-threaded driver —
 * for one tenant. Not thread-safe by design: its owner alone touches it (the actor is the lock),
 * and at each interval's end {@link #drain()}s it into an immutable {@link TenantSample} that it
 * sends to the collector. See {@link ScenarioEngine} for the whole path.
 *
 * <p>Histograms record nanoseconds with 3 significant digits (HdrHistogram, auto-resizing), so
 * any latency from 1 ns to hours keeps 0.1% precision at every percentile.
 */
public final class IntervalRecorder {
  /** Significant decimal digits of every latency histogram. */
  public static final int DIGITS = 3;

  private final String tenant;
  private final Map<String, long[]> counters = new HashMap<>();
  private final Map<String, Histogram> latencies = new HashMap<>();

  public IntervalRecorder(String tenant) {
    this.tenant = Objects.requireNonNull(tenant, "tenant");
  }

  public String tenant() {
    return tenant;
  }

  /** Adds {@code n} to counter {@code metric} (a COUNTER of the catalogue). */
  public void count(String metric, long n) {
    long[] cell = counters.get(metric);
    if (cell == null) {
      if (!MetricCatalog.isKnown(metric, MetricCatalog.Kind.COUNTER)) {
        throw new IllegalArgumentException(metric + " is not a counter of the metric catalogue");
      }
      cell = new long[1];
      counters.put(metric, cell);
    }
    if (n < 0) {
      throw new IllegalArgumentException(metric + ": count " + n + " is negative");
    }
    cell[0] += n;
  }

  /** Records one latency of {@code nanos} in {@code metric} (a LATENCY of the catalogue). */
  public void record(String metric, long nanos) {
    record(metric, nanos, 1);
  }

  /** Records {@code times} latencies of {@code nanos} each (a batch that took the same time). */
  public void record(String metric, long nanos, long times) {
    Histogram h = latencies.get(metric);
    if (h == null) {
      if (!MetricCatalog.isKnown(metric, MetricCatalog.Kind.LATENCY)) {
        throw new IllegalArgumentException(metric + " is not a latency of the metric catalogue");
      }
      h = new Histogram(DIGITS);
      latencies.put(metric, h);
    }
    if (nanos < 0 || times < 0) {
      throw new IllegalArgumentException(metric + ": latency " + nanos + "ns x " + times);
    }
    h.recordValueWithCount(nanos, times);
  }

  /** Whether nothing was recorded since the last drain. */
  public boolean isEmpty() {
    for (long[] c : counters.values()) {
      if (c[0] != 0) {
        return false;
      }
    }
    for (Histogram h : latencies.values()) {
      if (h.getTotalCount() != 0) {
        return false;
      }
    }
    return true;
  }

  /**
   * What was recorded since the last drain, as an immutable sample (zero counters and empty
   * histograms left out); the recorder is reset and goes on recording.
   */
  public TenantSample drain() {
    Map<String, Long> c = new HashMap<>();
    for (Map.Entry<String, long[]> e : counters.entrySet()) {
      if (e.getValue()[0] != 0) {
        c.put(e.getKey(), e.getValue()[0]);
        e.getValue()[0] = 0;
      }
    }
    Map<String, EncodedHistogram> l = new HashMap<>();
    for (Map.Entry<String, Histogram> e : latencies.entrySet()) {
      if (e.getValue().getTotalCount() != 0) {
        l.put(e.getKey(), EncodedHistogram.of(e.getValue()));
        e.getValue().reset();
      }
    }
    return new TenantSample(tenant, c, l);
  }
}
