package io.iommulab.host.report;

import java.util.List;

/**
 * The verdict of one concrete assertion check.
 *
 * @param assertion the assertion as written ({@code map.latency.modeled p99 < 20us for each
 *     tenant}), shared by the checks it expands to
 * @param index the assertion's index in {@code scenario.assertions}
 * @param check this check ({@code map.latency.modeled p99 < 20us [tenant web]})
 * @param metric the metric judged
 * @param scope {@code global} or {@code tenant NAME}
 * @param stat the statistic ({@code p99}, {@code rate})
 * @param comparator {@code lt}, {@code lte}, {@code gt}, {@code gte}, {@code eq} or {@code between}
 * @param expected the bound, or the two bounds of between (ns for latencies)
 * @param observed the observed value (ns for latencies); null when there was no data
 * @param observedText the observed value as a person reads it ({@code 25.3us}, {@code no data})
 * @param passed whether the check holds; a check without data fails
 * @param message one line: what was observed against what was expected
 */
public record AssertionResult(
    String assertion,
    int index,
    String check,
    String metric,
    String scope,
    String stat,
    String comparator,
    List<Double> expected,
    Double observed,
    String observedText,
    boolean passed,
    String message) {
  public AssertionResult {
    expected = List.copyOf(expected);
  }
}
