package io.iommulab.host.report;

import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.TenantSettings;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The per-tenant table of the results: each tenant's shape and what its VMs did. */
public final class TenantTable {
  private TenantTable() {}

  /**
   * One tenant.
   *
   * @param name the tenant
   * @param vms its VMs
   * @param firstVmId the id of its first VM
   * @param devicesPerVm devices per VM
   * @param memoryBytes guest memory per VM
   * @param operations by operation: count, errors, rate, modeled and wall latency percentiles
   * @param violations violations reported during the run, by oracle
   */
  public record Row(
      String name,
      int vms,
      int firstVmId,
      int devicesPerVm,
      long memoryBytes,
      Map<String, Cell> operations,
      Map<String, Long> violations) {}

  /**
   * One operation of one tenant over the whole run.
   *
   * @param count completed
   * @param errors refused
   * @param rate per second
   * @param p50Modeled median modeled latency in ns (null without samples)
   * @param p99Modeled 99th percentile of the modeled latency
   * @param p99Wall 99th percentile of the wall latency
   */
  public record Cell(long count, long errors, double rate, Long p50Modeled, Long p99Modeled, Long p99Wall) {}

  public static List<Row> rows(RunAggregator data) {
    List<Row> rows = new ArrayList<>();
    for (TenantSettings t : data.scenario().tenants()) {
      Map<String, Cell> ops = new LinkedHashMap<>();
      for (Operation op : t.workload().operations()) {
        String n = op.configName();
        MetricStats count = data.stats(n + ".count", t.name(), 0);
        MetricStats errors = data.stats(n + ".errors", t.name(), 0);
        MetricStats modeled = data.stats(n + ".latency.modeled", t.name(), 0);
        MetricStats wall = data.stats(n + ".latency.wall", t.name(), 0);
        ops.put(n, new Cell(count.count(), errors.count(), count.rate(),
            modeled.percentiles().get("p50"), modeled.percentiles().get("p99"), wall.percentiles().get("p99")));
      }
      Map<String, Long> violations = new LinkedHashMap<>();
      for (Oracle o : Oracle.values()) {
        long n = data.stats(o.metric(), t.name(), 0).count();
        if (n > 0) {
          violations.put(o.configName(), n);
        }
      }
      rows.add(new Row(t.name(), t.vms(), t.firstVmId(), t.devicesPerVm(), t.memoryBytes(), ops, violations));
    }
    return rows;
  }
}
