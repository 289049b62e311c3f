package io.iommulab.config.scenario;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

/**
 * One entry of {@code scenario.assertions}, in the manner of Gatling: a metric, a statistic, a
 * comparison, a scope. A failed assertion fails the run (exit code 1).
 *
 * <p>Scopes: without {@code tenant} the assertion is global (every tenant's data together); with
 * {@code tenant = web} it judges that tenant; with {@code tenant = "*"} every tenant on its own
 * (each a separate check). A metric written {@code *.latency.modeled} applies to every operation
 * the scenario performs, each a separate check: per-operation scope. {@code after} limits the
 * data to intervals that start at or after that time (a warm-up, or the state after an event).
 *
 * @param index position in {@code scenario.assertions}
 * @param metric the metric name as written, possibly {@code *.rest}
 * @param tenant empty: global; {@link #EACH_TENANT}: every tenant; else a tenant name
 * @param stat the statistic
 * @param comparator the comparison
 * @param low the bound, or the lower bound of {@code between}; nanoseconds for a latency value
 * @param high the upper bound of {@code between}, else equal to {@code low}
 * @param after only intervals starting at or after this time count; zero: the whole run
 * @param latencyValued the bounds are durations (nanoseconds) rather than plain numbers
 */
public record AssertionSettings(
    int index,
    String metric,
    Optional<String> tenant,
    Stat stat,
    Comparator comparator,
    double low,
    double high,
    Duration after,
    boolean latencyValued) {

  /** The {@code tenant} that makes an assertion apply to each tenant on its own. */
  public static final String EACH_TENANT = "*";

  public AssertionSettings {
    Objects.requireNonNull(metric, "metric");
    Objects.requireNonNull(tenant, "tenant");
    Objects.requireNonNull(stat, "stat");
    Objects.requireNonNull(comparator, "comparator");
    Objects.requireNonNull(after, "after");
    if (comparator != Comparator.BETWEEN && low != high) {
      throw new IllegalArgumentException("only between has two bounds");
    }
    if (high < low) {
      throw new IllegalArgumentException("between [" + low + ", " + high + "]: low above high");
    }
  }

  /**
   * One concrete check of an assertion: one metric in one scope.
   *
   * @param assertion the assertion it comes from
   * @param metric the metric judged
   * @param tenant empty for global, else the tenant judged
   */
  public record Check(AssertionSettings assertion, MetricCatalog.Metric metric, Optional<String> tenant) {
    /** {@code map.latency.modeled p99 < 20us [tenant web]}. */
    public String text() {
      return metric.name() + " " + assertion.condition() + " [" + scope() + "]"
          + (assertion.after().isZero() ? "" : " after " + Units.nanos(assertion.after().toNanos()));
    }

    /** {@code global} or {@code tenant web}. */
    public String scope() {
      return tenant.map(t -> "tenant " + t).orElse("global");
    }
  }

  /** {@code p99 < 20us}, {@code count = 0}, {@code rate in [10, 20]}. */
  public String condition() {
    String bound = comparator == Comparator.BETWEEN
        ? "[" + format(low) + ", " + format(high) + "]"
        : format(low);
    return stat.name() + " " + comparator.symbol() + " " + bound;
  }

  /** The assertion as a line: {@code map.latency.modeled p99 < 20us for each tenant after 5s}. */
  public String text() {
    String scope = tenant.map(t -> t.equals(EACH_TENANT) ? " for each tenant" : " for tenant " + t)
        .orElse("");
    return metric + " " + condition() + scope
        + (after.isZero() ? "" : " after " + Units.nanos(after.toNanos()));
  }

  /** A bound or an observed value of this assertion as a person reads it. */
  public String format(double value) {
    return latencyValued ? Units.nanos(value) : Units.number(value);
  }

  /**
   * The concrete checks: one per metric the pattern names (only metrics of operations the
   * judged tenants perform, or that every run has) and per tenant in scope.
   *
   * @param tenantNames every tenant, in scenario order
   * @param operationsOf the operations a tenant performs
   */
  public List<Check> expand(List<String> tenantNames, Function<String, Set<Operation>> operationsOf) {
    List<Check> checks = new ArrayList<>();
    for (MetricCatalog.Metric m : MetricCatalog.match(metric)) {
      if (tenant.isEmpty()) {
        if (m.operation().isEmpty() || tenantNames.stream().anyMatch(t -> operationsOf.apply(t).contains(m.operation().get()))) {
          checks.add(new Check(this, m, Optional.empty()));
        }
      } else {
        List<String> scope = tenant.get().equals(EACH_TENANT) ? tenantNames : List.of(tenant.get());
        for (String t : scope) {
          if (m.operation().isEmpty() || operationsOf.apply(t).contains(m.operation().get())) {
            checks.add(new Check(this, m, Optional.of(t)));
          }
        }
      }
    }
    return checks;
  }
}
