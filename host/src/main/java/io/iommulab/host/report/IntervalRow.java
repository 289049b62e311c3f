package io.iommulab.host.report;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One point of the global time series: what all tenants did in one interval, by operation.
 *
 * @param index the interval's index
 * @param startSeconds its start, seconds since the workload started
 * @param endSeconds its end
 * @param operations by operation name: throughput and latency in the interval
 * @param violations violations detected in the interval, by oracle
 */
public record IntervalRow(
    int index,
    double startSeconds,
    double endSeconds,
    Map<String, OperationPoint> operations,
    Map<String, Long> violations) {

  public IntervalRow {
    operations = Collections.unmodifiableMap(new LinkedHashMap<>(operations));
    violations = Collections.unmodifiableMap(new LinkedHashMap<>(violations));
  }

  /**
   * One operation in one interval.
   *
   * @param count operations completed
   * @param errors operations refused
   * @param rate operations per second
   * @param p50Modeled median modeled latency (ns), null without samples
   * @param p99Modeled 99th percentile of the modeled latency
   * @param maxModeled largest modeled latency
   * @param p50Wall median wall latency (ns)
   * @param p99Wall 99th percentile of the wall latency
   */
  public record OperationPoint(
      long count,
      long errors,
      double rate,
      Long p50Modeled,
      Long p99Modeled,
      Long maxModeled,
      Long p50Wall,
      Long p99Wall) {}

  /** Operations of every kind per second in the interval. */
  public double totalRate() {
    double r = 0;
    for (OperationPoint p : operations.values()) {
      r += p.rate();
    }
    return r;
  }

  public long totalViolations() {
    long n = 0;
    for (long v : violations.values()) {
      n += v;
    }
    return n;
  }
}
