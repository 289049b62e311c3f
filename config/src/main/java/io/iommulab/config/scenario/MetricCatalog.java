package io.iommulab.config.scenario;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Every metric a run reports and an assertion may name. The engine records exactly these (a
 * snapshot naming another metric is a bug of the engine); results list them; {@code iommulab
 * validate} refuses an assertion on any other name.
 *
 * <p>For each {@link Operation} {@code op}: {@code op.count} (operations completed, refused ones
 * included), {@code op.errors} (refused: a Linux errno), {@code op.latency.modeled} (nanoseconds
 * the cost model charged) and {@code op.latency.wall} (nanoseconds measured at the run's edge).
 * Besides: {@code dma.translations} (accesses translated, one per access of a burst), {@code
 * dma.faults}, {@code dma.bytes}, {@code dma.atc-hits}, {@code faults.published}, {@code
 * faults.delivered}, {@code faults.lost}, {@code wbinvd.emulated}, {@code msi.requests}, {@code
 * msi.refusals}, and {@code violations.<oracle>} for each {@link Oracle}. For each operation also
 * {@code op.late} (issued after their scheduled time, from the VM's backlog) and {@code
 * op.dropped} (due but never issued: the backlog was full): an open workload that could not keep
 * its schedule says so; and {@code op.skipped} (due, but the guest had nothing to do it on then:
 * no device ready, no free PAMU window or IOVA), which is the workload's state, not overload.
 *
 * <p>A counter with a {@linkplain Metric#ratioBase() ratio base} supports the {@code ratio}
 * statistic: {@code dma.faults} over {@code dma.translations}, {@code op.errors} over {@code
 * op.count}, {@code faults.lost} over {@code faults.published}, {@code wbinvd.emulated} over
 * {@code wbinvd.count}.
 */
public final class MetricCatalog {

  /** How a metric is recorded and which statistics it has. */
  public enum Kind {
    /** A count per interval: statistics {@code count}, {@code rate} and, with a base, {@code ratio}. */
    COUNTER,
    /**
     * A latency histogram in nanoseconds (HdrHistogram): percentiles, {@code min}, {@code max},
     * {@code mean}, {@code count} and {@code rate} of samples.
     */
    LATENCY
  }

  /**
   * One metric.
   *
   * @param name the name, as in assertions and results
   * @param kind counter or latency histogram
   * @param operation the operation whose workload produces it; empty for metrics every run has
   * @param ratioBase the counter this one is a share of, for the {@code ratio} statistic; empty if
   *     none
   * @param description what it counts or times
   */
  public record Metric(
      String name,
      Kind kind,
      Optional<Operation> operation,
      Optional<String> ratioBase,
      String description) {}

  /** A metric pattern: a name, or a name whose first part is {@code *} (every operation). */
  private static final Pattern NAME = Pattern.compile("(\\*|[a-z][a-z0-9-]*)(\\.[a-z][a-z0-9-]*)+");

  private static final Map<String, Metric> METRICS = build();

  private MetricCatalog() {}

  private static Map<String, Metric> build() {
    Map<String, Metric> m = new LinkedHashMap<>();
    for (Operation op : Operation.values()) {
      Optional<Operation> o = Optional.of(op);
      String n = op.configName();
      put(m, new Metric(n + ".count", Kind.COUNTER, o, Optional.empty(), op.description() + " completed"));
      put(m, new Metric(n + ".errors", Kind.COUNTER, o, Optional.of(n + ".count"),
          op.description() + " refused with an errno"));
      put(m, new Metric(n + ".latency.modeled", Kind.LATENCY, o, Optional.empty(),
          "modeled latency of " + op.description() + ", in ns (the cost model's charge)"));
      put(m, new Metric(n + ".latency.wall", Kind.LATENCY, o, Optional.empty(),
          "wall latency of " + op.description() + ", in ns (measured at the run's edge)"));
      put(m, new Metric(n + ".late", Kind.COUNTER, o, Optional.of(n + ".count"),
          op.description() + " issued after their scheduled time: the VM had its most operations of"
              + " this kind in flight, so they waited in its backlog (their latency counts from the"
              + " scheduled time)"));
      put(m, new Metric(n + ".dropped", Kind.COUNTER, o, Optional.of(n + ".count"),
          op.description() + " due by the schedule but never issued: the VM's backlog of this kind"
              + " was full (ratio: per operation completed)"));
      put(m, new Metric(n + ".skipped", Kind.COUNTER, o, Optional.of(n + ".count"),
          op.description() + " due by the schedule but not asked for: the guest had nothing to do"
              + " it on then (no device ready, no free PAMU window or IOVA, nothing to unplug)"));
    }
    Optional<Operation> dma = Optional.of(Operation.DMA);
    put(m, new Metric("dma.translations", Kind.COUNTER, dma, Optional.empty(),
        "DMA accesses translated (one per access of a burst)"));
    put(m, new Metric("dma.faults", Kind.COUNTER, dma, Optional.of("dma.translations"),
        "DMA accesses that faulted"));
    put(m, new Metric("dma.bytes", Kind.COUNTER, dma, Optional.empty(), "bytes moved by DMA"));
    put(m, new Metric("dma.atc-hits", Kind.COUNTER, dma, Optional.of("dma.translations"),
        "DMA accesses translated by the device's ATC (ATS), without an IOMMU lookup"));
    Optional<Operation> attach = Optional.of(Operation.ATTACH);
    put(m, new Metric("msi.requests", Kind.COUNTER, attach, Optional.empty(),
        "MSI vector allocations a VM's device asked of an MSI bank (PAMU parts, at attach)"));
    put(m, new Metric("msi.refusals", Kind.COUNTER, attach, Optional.of("msi.requests"),
        "MSI vector allocations an MSI bank refused (its vectors were taken)"));
    put(m, new Metric("faults.published", Kind.COUNTER, Optional.empty(), Optional.empty(),
        "faults and page requests the units published to a fault queue or log"));
    put(m, new Metric("faults.delivered", Kind.COUNTER, Optional.empty(), Optional.of("faults.published"),
        "published faults delivered to their handler"));
    put(m, new Metric("faults.lost", Kind.COUNTER, Optional.empty(), Optional.of("faults.published"),
        "published faults lost (queue overflow), counted"));
    put(m, new Metric("wbinvd.emulated", Kind.COUNTER, Optional.of(Operation.WBINVD),
        Optional.of("wbinvd.count"), "guest WBINVDs KVM emulated (the VM had non-coherent DMA)"));
    for (Oracle oracle : Oracle.values()) {
      put(m, new Metric(oracle.metric(), Kind.COUNTER, Optional.empty(), Optional.empty(),
          "violations of the " + oracle.configName() + " oracle (" + oracle.rule() + ")"));
    }
    return Collections.unmodifiableMap(m);
  }

  private static void put(Map<String, Metric> m, Metric metric) {
    m.put(metric.name(), metric);
  }

  /** Every metric, operations first, in a stable order. */
  public static List<Metric> all() {
    return List.copyOf(METRICS.values());
  }

  public static Optional<Metric> find(String name) {
    return Optional.ofNullable(METRICS.get(name));
  }

  /** Whether {@code name} is a metric of {@code kind}. */
  public static boolean isKnown(String name, Kind kind) {
    Metric m = METRICS.get(name);
    return m != null && m.kind() == kind;
  }

  /** Whether {@code pattern} is a well-formed metric name or {@code *.rest} pattern. */
  public static boolean isWellFormed(String pattern) {
    return NAME.matcher(pattern).matches();
  }

  /**
   * The metrics {@code pattern} names: itself, or for {@code *.rest} every {@code op.rest} of the
   * operations in catalogue order.
   */
  public static List<Metric> match(String pattern) {
    if (!pattern.startsWith("*.")) {
      return find(pattern).map(List::of).orElse(List.of());
    }
    String rest = pattern.substring(1);
    List<Metric> out = new ArrayList<>();
    for (Operation op : Operation.values()) {
      Metric m = METRICS.get(op.configName() + rest);
      if (m != null) {
        out.add(m);
      }
    }
    return out;
  }
}
