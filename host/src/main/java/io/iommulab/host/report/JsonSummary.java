package io.iommulab.host.report;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.OracleResult;
import java.io.IOException;
import java.nio.file.Path;

/**
 * {@code summary.json}: every result of a run in one JSON document, for scripts and dashboards.
 *
 * <pre>
 * format, scenario, description, seed, engine, startedAt, status (running | passed | failed |
 * error), exitCode, completed, plannedSeconds, measuredSeconds, modeledSeconds, intervals,
 * configuration   the resolved configuration: scenario (defaults filled in) and iommulab (the
 *                 topology, uapi, cost model and host settings the host ran with)
 * metrics         scope ("global" and each tenant) → metric → {kind, unit, count, rate, ratio,
 *                 min, max, mean, percentiles {p50, p75, p95, p99, p99.9, ...}} (latencies in ns)
 * tenants         [{name, vms, firstVmId, devicesPerVm, memoryBytes, operations {op → {count,
 *                 errors, rate, p50Modeled, p99Modeled, p99Wall}}, violations}]
 * intervals       [{index, startSeconds, endSeconds, operations {op → {count, errors, rate,
 *                 p50Modeled, p99Modeled, maxModeled, p50Wall, p99Wall}}, violations {oracle → n}}]
 * oracles         [{oracle, rule, judged, passed, checks, violations, recorded [{seed, tenant,
 *                 vmId, detectedAtNanos, summary, events [{seq, timeNanos, what}]}], notes}]
 * violations      the violations reported while the run went on, with their events
 * assertions      [{assertion, index, check, metric, scope, stat, comparator, expected [..],
 *                 observed, observedText, passed, message}]
 * notes           [..]
 * </pre>
 */
public final class JsonSummary {
  /** The file name in the output directory. */
  public static final String FILE = "summary.json";

  static final ObjectMapper MAPPER =
      new ObjectMapper().findAndRegisterModules().enable(SerializationFeature.INDENT_OUTPUT);

  private JsonSummary() {}

  /** Writes {@code report} to {@code dir/summary.json}, atomically (a reader never sees half). */
  public static Path write(RunReport report, Path dir) throws IOException {
    Path file = dir.resolve(FILE);
    ResultFiles.writeAtomically(file, MAPPER.writeValueAsBytes(tree(report)));
    return file;
  }

  /** The document, as a tree. */
  public static ObjectNode tree(RunReport report) {
    ScenarioSettings s = report.scenario();
    RunAggregator data = report.data();
    ObjectNode root = MAPPER.createObjectNode();
    root.put("format", RunReport.FORMAT);
    root.put("scenario", s.name());
    root.put("description", s.description());
    root.put("seed", s.seed());
    root.put("engine", report.engine());
    root.put("startedAt", report.startedAt().toString());
    root.put("status", report.status().word());
    root.put("exitCode", report.exitCode());
    root.put("completed", report.completed());
    root.put("plannedSeconds", s.duration().toNanos() / 1e9);
    root.put("measuredSeconds", data.endNanos() / 1e9);
    if (report.modeledNanos() >= 0) {
      root.put("modeledSeconds", report.modeledNanos() / 1e9);
    } else {
      root.putNull("modeledSeconds");
    }
    root.put("intervals", data.intervals());
    root.set("configuration", configuration(s));

    ObjectNode metrics = root.putObject("metrics");
    metrics.set(RunAggregator.GLOBAL, MAPPER.valueToTree(data.all(RunAggregator.GLOBAL)));
    for (String t : s.tenantNames()) {
      metrics.set(t, MAPPER.valueToTree(data.all(t)));
    }

    ArrayNode tenants = root.putArray("tenants");
    for (TenantTable.Row row : TenantTable.rows(data)) {
      tenants.add(MAPPER.valueToTree(row));
    }
    root.set("intervals", MAPPER.valueToTree(data.rows()));

    ArrayNode oracles = root.putArray("oracles");
    for (OracleResult o : report.oracles()) {
      ObjectNode n = MAPPER.valueToTree(o);
      n.put("rule", o.kind().rule());
      n.put("passed", o.passed());
      oracles.add(n);
    }
    root.set("violations", MAPPER.valueToTree(data.violations()));
    root.set("violationCounts", MAPPER.valueToTree(data.violationCounts()));
    root.set("assertions", MAPPER.valueToTree(report.assertions()));
    root.set("notes", MAPPER.valueToTree(report.notes()));
    return root;
  }

  static JsonNode configuration(ScenarioSettings s) {
    try {
      return MAPPER.readTree(s.renderResolved(true));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("the resolved configuration did not render as JSON", e);
    }
  }

  /** Reads a summary back (tests, tools). */
  public static JsonNode read(Path file) throws IOException {
    return MAPPER.readTree(file.toFile());
  }

  /** {@code metrics.<scope>.<metric>} of a summary tree. */
  public static JsonNode metric(JsonNode summary, String scope, String metric) {
    return summary.path("metrics").path(scope).path(metric);
  }
}
