package io.iommulab.host.scenario;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;

/**
 * The collector's side: merges the {@link TenantSample}s of one interval from any number of
 * recorders (counters add, histograms add) and closes the interval into an {@link
 * IntervalSnapshot}. Single-threaded: the collector actor owns it.
 */
public final class IntervalMerger {
  private final Map<String, Map<String, Long>> counters = new LinkedHashMap<>();
  private final Map<String, Map<String, Histogram>> latencies = new LinkedHashMap<>();

  /** Adds a recorder's sample to the open interval. */
  public void add(TenantSample sample) {
    Map<String, Long> c = counters.computeIfAbsent(sample.tenant(), t -> new HashMap<>());
    for (Map.Entry<String, Long> e : sample.counters().entrySet()) {
      c.merge(e.getKey(), e.getValue(), Long::sum);
    }
    Map<String, Histogram> l = latencies.computeIfAbsent(sample.tenant(), t -> new HashMap<>());
    for (Map.Entry<String, EncodedHistogram> e : sample.latencies().entrySet()) {
      Histogram h = l.get(e.getKey());
      if (h == null) {
        l.put(e.getKey(), e.getValue().decode());
      } else {
        h.add(e.getValue().decode());
      }
    }
  }

  /** The open interval as a snapshot; the merger starts the next one empty. */
  public IntervalSnapshot close(int index, long startNanos, long endNanos) {
    List<TenantSample> samples = new ArrayList<>();
    for (Map.Entry<String, Map<String, Long>> e : counters.entrySet()) {
      Map<String, EncodedHistogram> encoded = new HashMap<>();
      for (Map.Entry<String, Histogram> h : latencies.get(e.getKey()).entrySet()) {
        encoded.put(h.getKey(), EncodedHistogram.of(h.getValue()));
      }
      samples.add(new TenantSample(e.getKey(), e.getValue(), encoded));
    }
    counters.clear();
    latencies.clear();
    return new IntervalSnapshot(index, startNanos, endNanos, samples);
  }
}
