package io.iommulab.host.report;

import io.iommulab.config.scenario.AssertionSettings;
import io.iommulab.config.scenario.Comparator;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.Stat;
import io.iommulab.host.scenario.OracleResult;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Judges a scenario's assertions against what a run measured, in the manner of Gatling: each
 * concrete check (an assertion expands per operation and per tenant) holds or fails, and one
 * failure fails the run. A check on a statistic without data (a percentile of no samples, a ratio
 * over a base of 0) fails with "no data".
 *
 * <p>{@code violations.<oracle>} over the whole run and all tenants is the oracle's final verdict
 * (which also counts what only the end can see, such as leaks); with a tenant or {@code after} it
 * is what was reported during the run in that scope.
 */
public final class AssertionEvaluator {
  private AssertionEvaluator() {}

  public static List<AssertionResult> evaluate(RunAggregator data, Map<String, OracleResult> oracles) {
    List<AssertionResult> out = new ArrayList<>();
    for (AssertionSettings.Check check : data.scenario().checks()) {
      out.add(evaluate(check, data, oracles));
    }
    return out;
  }

  static AssertionResult evaluate(
      AssertionSettings.Check check, RunAggregator data, Map<String, OracleResult> oracles) {
    AssertionSettings a = check.assertion();
    String scope = check.tenant().orElse(RunAggregator.GLOBAL);
    long after = a.after().toNanos();
    MetricStats stats = data.stats(check.metric().name(), scope, after);
    Double observed = observed(stats, a.stat());
    Optional<Oracle> oracle =
        Arrays.stream(Oracle.values()).filter(o -> o.metric().equals(check.metric().name())).findFirst();
    if (oracle.isPresent() && check.tenant().isEmpty() && after == 0) {
      OracleResult r = oracles.get(oracle.get().configName());
      if (r != null && r.judged()) {
        long n = Math.max(r.violations(), stats.count());
        observed = switch (a.stat().kind()) {
          case COUNT -> (double) n;
          case RATE -> data.seconds(0) > 0 ? n / data.seconds(0) : 0.0;
          default -> observed;
        };
      }
    }
    List<Double> expected = a.comparator() == Comparator.BETWEEN ? List.of(a.low(), a.high()) : List.of(a.low());
    boolean passed = observed != null && a.comparator().test(observed, a.low(), a.high());
    String observedText = observed == null ? "no data" : a.format(observed);
    String message = observed == null
        ? "no data: " + (stats.isLatency() ? "no samples of " + stats.metric() : "the base of the ratio is 0")
            + " in scope " + check.scope() + ", expected " + a.condition()
        : (passed ? "observed " + observedText + " (" + a.condition() + ")"
            : "observed " + observedText + ", expected " + a.condition());
    return new AssertionResult(
        a.text(), a.index(), check.text(), check.metric().name(), check.scope(), a.stat().name(),
        a.comparator().configName(), expected, observed, observedText, passed, message);
  }

  /** The statistic's value, null when there is no data for it. */
  static Double observed(MetricStats s, Stat stat) {
    return switch (stat.kind()) {
      case PERCENTILE -> box(s.percentiles().get(stat.name()));
      case MIN -> box(s.min());
      case MAX -> box(s.max());
      case MEAN -> s.mean();
      case COUNT -> (double) s.count();
      case RATE -> s.rate();
      case RATIO -> s.ratio();
    };
  }

  private static Double box(Long v) {
    return v == null ? null : v.doubleValue();
  }
}
