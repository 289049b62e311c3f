package io.iommulab.host.report;

import io.iommulab.config.scenario.AssertionSettings;
import io.iommulab.config.scenario.MetricCatalog;
import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.Stat;
import io.iommulab.host.scenario.EncodedHistogram;
import io.iommulab.host.scenario.IntervalRecorder;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.TenantSample;
import io.iommulab.host.scenario.Violation;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import org.HdrHistogram.Histogram;

/**
 * Folds a run's interval snapshots into totals, per-tenant tables, the time series and the data
 * assertions judge. Single-threaded: the runner's writer thread owns it.
 *
 * <p>Totals are kept per <em>window</em>: the whole run, and one per distinct {@code after} of the
 * scenario's assertions (the intervals that start at or after it). Each window keeps every
 * counter and a merged histogram per latency metric, for every tenant and for all together.
 */
public final class RunAggregator {

  /** The scope of every tenant together. */
  public static final String GLOBAL = "global";

  /** The percentiles every latency reports (Gatling's four plus 99.9). */
  public static final double[] STANDARD_PERCENTILES = {50, 75, 95, 99, 99.9};

  /** Violations kept with their events; more are only counted. */
  public static final int MAX_VIOLATIONS = 1000;

  private final ScenarioSettings scenario;
  private final double[] percentiles;
  private final Map<Long, Window> windows = new LinkedHashMap<>();
  private final List<IntervalRow> rows = new ArrayList<>();
  private final Map<String, Histogram> scratch = new HashMap<>();
  private final List<Violation> violations = new ArrayList<>();
  private final Map<String, Long> violationCounts = new LinkedHashMap<>();
  private final List<String> notes = new ArrayList<>();
  private final java.util.Set<String> strangers = new java.util.HashSet<>();
  private int nextIndex;
  private long endNanos;

  /** The data of one span of the run, for every scope. */
  static final class Window {
    final long fromNanos;
    long measuredNanos;
    final Map<String, Scope> scopes = new LinkedHashMap<>();

    Window(long fromNanos) {
      this.fromNanos = fromNanos;
    }

    Scope scope(String name) {
      return scopes.computeIfAbsent(name, n -> new Scope());
    }
  }

  /** Counters and histograms of one scope in one window. */
  static final class Scope {
    final Map<String, long[]> counters = new HashMap<>();
    final Map<String, Histogram> latencies = new HashMap<>();

    long counter(String metric) {
      long[] c = counters.get(metric);
      return c == null ? 0 : c[0];
    }
  }

  public RunAggregator(ScenarioSettings scenario) {
    this.scenario = scenario;
    TreeSet<Double> qs = new TreeSet<>();
    for (double q : STANDARD_PERCENTILES) {
      qs.add(q);
    }
    windows.put(0L, new Window(0));
    for (AssertionSettings a : scenario.assertions()) {
      if (a.stat().kind() == Stat.Kind.PERCENTILE) {
        qs.add(a.stat().percentile());
      }
      windows.computeIfAbsent(a.after().toNanos(), Window::new);
    }
    this.percentiles = qs.stream().mapToDouble(Double::doubleValue).toArray();
    for (Window w : windows.values()) {
      w.scope(GLOBAL);
      for (String t : scenario.tenantNames()) {
        w.scope(t);
      }
    }
  }

  public ScenarioSettings scenario() {
    return scenario;
  }

  /** The percentiles reported for every latency: the standard ones and any an assertion names. */
  public double[] percentiles() {
    return percentiles.clone();
  }

  /** Adds the next interval. A gap in the numbering is noted, not fatal. */
  public void accept(IntervalSnapshot s) {
    if (s.index() != nextIndex) {
      notes.add("interval " + s.index() + " arrived where " + nextIndex + " was expected");
    }
    nextIndex = s.index() + 1;
    endNanos = Math.max(endNanos, s.endNanos());
    long length = s.endNanos() - s.startNanos();
    scratch.clear();
    Map<String, Long> intervalCounters = new HashMap<>();
    for (TenantSample t : s.tenants()) {
      if (scenario.tenant(t.tenant()).isEmpty() && strangers.add(t.tenant())) {
        notes.add("interval " + s.index() + ": tenant " + t.tenant() + " is not in the scenario;"
            + " its data count in the global totals only");
      }
      for (Map.Entry<String, EncodedHistogram> e : t.latencies().entrySet()) {
        Histogram h = e.getValue().decode();
        scratch.computeIfAbsent(e.getKey(), k -> new Histogram(IntervalRecorder.DIGITS)).add(h);
        for (Window w : windows.values()) {
          if (s.startNanos() >= w.fromNanos) {
            add(w.scope(t.tenant()), e.getKey(), h);
            add(w.scope(GLOBAL), e.getKey(), h);
          }
        }
      }
      for (Map.Entry<String, Long> e : t.counters().entrySet()) {
        intervalCounters.merge(e.getKey(), e.getValue(), Long::sum);
        for (Window w : windows.values()) {
          if (s.startNanos() >= w.fromNanos) {
            w.scope(t.tenant()).counters.computeIfAbsent(e.getKey(), k -> new long[1])[0] += e.getValue();
            w.scope(GLOBAL).counters.computeIfAbsent(e.getKey(), k -> new long[1])[0] += e.getValue();
          }
        }
      }
    }
    for (Window w : windows.values()) {
      if (s.startNanos() >= w.fromNanos) {
        w.measuredNanos += length;
      }
    }
    rows.add(row(s, intervalCounters));
  }

  private static void add(Scope scope, String metric, Histogram h) {
    Histogram into = scope.latencies.get(metric);
    if (into == null) {
      scope.latencies.put(metric, h.copy());
    } else {
      into.add(h);
    }
  }

  private IntervalRow row(IntervalSnapshot s, Map<String, Long> counters) {
    double seconds = (s.endNanos() - s.startNanos()) / 1e9;
    Map<String, IntervalRow.OperationPoint> ops = new LinkedHashMap<>();
    for (Operation op : scenario.operations()) {
      String n = op.configName();
      long count = counters.getOrDefault(n + ".count", 0L);
      Histogram m = scratch.get(n + ".latency.modeled");
      Histogram w = scratch.get(n + ".latency.wall");
      ops.put(n, new IntervalRow.OperationPoint(
          count,
          counters.getOrDefault(n + ".errors", 0L),
          seconds > 0 ? count / seconds : 0,
          at(m, 50), at(m, 99), m == null || m.getTotalCount() == 0 ? null : m.getMaxValue(),
          at(w, 50), at(w, 99)));
    }
    Map<String, Long> v = new LinkedHashMap<>();
    for (Oracle o : Oracle.values()) {
      long n = counters.getOrDefault(o.metric(), 0L);
      if (n > 0) {
        v.put(o.configName(), n);
      }
    }
    return new IntervalRow(s.index(), s.startNanos() / 1e9, s.endNanos() / 1e9, ops, v);
  }

  private static Long at(Histogram h, double q) {
    return h == null || h.getTotalCount() == 0 ? null : h.getValueAtPercentile(q);
  }

  /** A violation reported during the run. */
  public void violation(Violation v) {
    violationCounts.merge(v.oracle(), 1L, Long::sum);
    if (violations.size() < MAX_VIOLATIONS) {
      violations.add(v);
    }
  }

  // ---------------------------------------------------------------------------------- queries

  /** Intervals received. */
  public int intervals() {
    return rows.size();
  }

  /** The end of the last interval on the run's clock: how far the run got. */
  public long endNanos() {
    return endNanos;
  }

  public List<IntervalRow> rows() {
    return Collections.unmodifiableList(rows);
  }

  /** The violations reported during the run (the first {@link #MAX_VIOLATIONS}). */
  public List<Violation> violations() {
    return Collections.unmodifiableList(violations);
  }

  /** Violations reported during the run, by oracle, all counted. */
  public Map<String, Long> violationCounts() {
    return Collections.unmodifiableMap(violationCounts);
  }

  /** Operations (of every kind) and violations counted so far, for the progress bar. */
  public long totalOperations() {
    Scope g = windows.get(0L).scope(GLOBAL);
    long n = 0;
    for (Operation op : Operation.values()) {
      n += g.counter(op.configName() + ".count");
    }
    return n;
  }

  /**
   * Above this fraction of an operation's arrivals dropped, a run did not get the load it asked
   * for and is told so: one percent is well past the backlog a burst of arrivals fills.
   */
  public static final double DROPPED_NOTE_FRACTION = 0.01;

  /**
   * One note per operation kind whose arrivals were dropped beyond {@link #DROPPED_NOTE_FRACTION}
   * (an open workload drops arrivals when its bounded backlog is full): the host did not sustain
   * the offered rate, so the run's latencies and rates describe the load that ran, not the one
   * the scenario asked for. An engine that counts no drops gets no note.
   */
  public List<String> loadNotes() {
    Scope g = windows.get(0L).scope(GLOBAL);
    List<String> out = new ArrayList<>();
    for (Operation op : Operation.values()) {
      String name = op.configName();
      long dropped = g.counter(name + ".dropped");
      long completed = g.counter(name + ".count");
      long arrived = completed + dropped;
      if (dropped == 0 || dropped <= DROPPED_NOTE_FRACTION * arrived) {
        continue;
      }
      long late = g.counter(name + ".late");
      out.add(String.format(Locale.ROOT,
          "load: %s: %.1f%% of %,d arrivals dropped, %.1f%% of the completed ones issued late: the host"
              + " did not sustain the offered rate, so the figures describe the load that ran (lower"
              + " the rates or the VM count, or give the run more cores)",
          name, 100.0 * dropped / arrived, arrived, completed == 0 ? 0.0 : 100.0 * late / completed));
    }
    return out;
  }

  public List<String> notes() {
    return Collections.unmodifiableList(notes);
  }

  /** Measured seconds in the window of {@code afterNanos} (0: the whole run). */
  public double seconds(long afterNanos) {
    return window(afterNanos).measuredNanos / 1e9;
  }

  /**
   * The statistics of {@code metric} in {@code scope} ({@link #GLOBAL} or a tenant) over the
   * intervals starting at or after {@code afterNanos}.
   */
  public MetricStats stats(String metric, String scope, long afterNanos) {
    Window w = window(afterNanos);
    Scope s = w.scopes.get(scope);
    if (s == null) {
      throw new IllegalArgumentException("no scope " + scope);
    }
    MetricCatalog.Metric m = MetricCatalog.find(metric).orElseThrow(() -> new IllegalArgumentException(metric));
    double seconds = w.measuredNanos / 1e9;
    if (m.kind() == MetricCatalog.Kind.LATENCY) {
      return MetricStats.latency(metric, s.latencies.get(metric), seconds, percentiles);
    }
    Long base = m.ratioBase().map(s::counter).orElse(null);
    return MetricStats.counter(metric, s.counter(metric), seconds, base);
  }

  /** A copy of the merged histogram of {@code metric} in {@code scope} over the whole run. */
  public Histogram histogram(String metric, String scope) {
    Histogram h = windows.get(0L).scope(scope).latencies.get(metric);
    return h == null ? null : h.copy();
  }

  /**
   * Every metric of the catalogue that applies to the scenario (its operations' metrics and the
   * metrics every run has), with its statistics over the whole run, for {@code scope}.
   */
  public Map<String, MetricStats> all(String scope) {
    Map<String, MetricStats> out = new LinkedHashMap<>();
    java.util.Set<Operation> ops = scope.equals(GLOBAL)
        ? scenario.operations()
        : scenario.tenant(scope).map(t -> t.workload().operations()).orElse(java.util.Set.of());
    EnumMap<Operation, Boolean> on = new EnumMap<>(Operation.class);
    for (Operation op : ops) {
      on.put(op, true);
    }
    for (MetricCatalog.Metric m : MetricCatalog.all()) {
      if (m.operation().isEmpty() || on.containsKey(m.operation().get())) {
        out.put(m.name(), stats(m.name(), scope, 0));
      }
    }
    return out;
  }

  private Window window(long afterNanos) {
    Window w = windows.get(afterNanos);
    if (w == null) {
      throw new IllegalArgumentException("no window from " + afterNanos + "ns");
    }
    return w;
  }
}
