package io.iommulab.host.report;

import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.Units;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.TraceEvent;
import io.iommulab.host.scenario.Violation;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;

/**
 * {@code report.html}: a run's results for a person, in one self-contained file (styles inline,
 * plots as embedded PNG, no script, no network): the verdict, the assertions, the oracles with
 * the traces of their violations, throughput and latency over time, latency distributions, the
 * global metrics, the per-tenant table and the resolved configuration.
 */
public final class HtmlReport {
  /** The file name in the output directory. */
  public static final String FILE = "report.html";

  private HtmlReport() {}

  public static Path write(RunReport report, Path dir) throws IOException {
    Path file = dir.resolve(FILE);
    ResultFiles.writeAtomically(file, render(report).getBytes(StandardCharsets.UTF_8));
    return file;
  }

  public static String render(RunReport report) {
    ScenarioSettings s = report.scenario();
    RunAggregator data = report.data();
    List<String> ops = s.operations().stream().map(Operation::configName).toList();
    StringBuilder h = new StringBuilder(64 * 1024);
    h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>iommulab ")
        .append(esc(s.name())).append(" — ").append(report.status().word()).append("</title>\n")
        .append("<style>").append(CSS).append("</style></head><body>\n");

    h.append("<h1>iommulab · ").append(esc(s.name())).append(" <span class=\"badge ")
        .append(report.status().word()).append("\">").append(report.status().word().toUpperCase(java.util.Locale.ROOT))
        .append("</span></h1>\n<p class=\"desc\">").append(esc(s.description())).append("</p>\n");
    h.append("<table class=\"facts\">");
    fact(h, "seed", Long.toString(s.seed()));
    fact(h, "engine", report.engine());
    fact(h, "started", report.startedAt().toString());
    fact(h, "measured", Units.nanos(data.endNanos()) + " of " + Units.nanos(s.duration().toNanos())
        + (report.completed() ? "" : report.status() == RunReport.Status.RUNNING ? " (running)" : " (stopped early)"));
    if (report.modeledNanos() >= 0) {
      fact(h, "modeled time", Units.nanos(report.modeledNanos()));
    }
    fact(h, "tenants", s.tenants().size() + " (" + s.vmCount() + " VMs)");
    fact(h, "invalidation", s.invalidation().configName());
    fact(h, "intervals", data.intervals() + " of " + Units.nanos(s.interval().toNanos()));
    h.append("</table>\n");

    assertions(h, report);
    oracles(h, report);

    h.append("<h2 id=\"plots\">Throughput and latency over time</h2>\n");
    chart(h, "throughput", Charts.throughput(data.rows(), ops));
    chart(h, "latency-modeled-over-time",
        Charts.latencyOverTime("Modeled latency over time (p99)", data.rows(), ops, IntervalRow.OperationPoint::p99Modeled));
    chart(h, "latency-wall-over-time",
        Charts.latencyOverTime("Wall latency over time (p99)", data.rows(), ops, IntervalRow.OperationPoint::p99Wall));

    h.append("<h2 id=\"distributions\">Latency distributions</h2>\n");
    chart(h, "distribution-modeled", Charts.distribution("Modeled latency by percentile", histograms(data, ops, "modeled")));
    chart(h, "distribution-wall", Charts.distribution("Wall latency by percentile", histograms(data, ops, "wall")));

    metrics(h, data);
    tenants(h, data);
    violationsDuringRun(h, data);

    if (!report.notes().isEmpty()) {
      h.append("<h2>Notes</h2><ul>");
      for (String n : report.notes()) {
        h.append("<li>").append(esc(n)).append("</li>");
      }
      h.append("</ul>\n");
    }
    h.append("<h2>Resolved configuration</h2>\n<details><summary>scenario and host, after overrides")
        .append("</summary><pre>").append(esc(s.renderResolved(false))).append("</pre></details>\n");
    h.append("<p class=\"foot\">").append(RunReport.FORMAT).append("</p>\n</body></html>\n");
    return h.toString();
  }

  private static Map<String, Histogram> histograms(RunAggregator data, List<String> ops, String which) {
    Map<String, Histogram> out = new LinkedHashMap<>();
    for (String op : ops) {
      out.put(op, data.histogram(op + ".latency." + which, RunAggregator.GLOBAL));
    }
    return out;
  }

  private static void assertions(StringBuilder h, RunReport report) {
    h.append("<h2 id=\"assertions\">Assertions</h2>\n");
    if (report.status() == RunReport.Status.RUNNING) {
      h.append("<p>Judged when the run ends.</p>\n");
      return;
    }
    if (report.assertions().isEmpty()) {
      h.append("<p>The scenario has no assertions.</p>\n");
      return;
    }
    h.append("<table><tr><th>check</th><th>observed</th><th>result</th></tr>\n");
    for (AssertionResult a : report.assertions()) {
      h.append("<tr class=\"").append(a.passed() ? "ok" : "ko").append("\"><td>").append(esc(a.check()))
          .append("</td><td>").append(esc(a.observedText())).append("</td><td>")
          .append(a.passed() ? "passed" : "FAILED: " + esc(a.message())).append("</td></tr>\n");
    }
    h.append("</table>\n");
  }

  private static void oracles(StringBuilder h, RunReport report) {
    h.append("<h2 id=\"oracles\">Oracles</h2>\n");
    if (report.status() == RunReport.Status.RUNNING) {
      Map<String, Long> counts = report.data().violationCounts();
      h.append("<p>Judged when the run ends; violations reported so far: ")
          .append(counts.isEmpty() ? "none" : esc(counts.toString())).append(".</p>\n");
      return;
    }
    h.append("<table><tr><th>oracle</th><th>invariant</th><th>checks</th><th>violations</th><th>result</th></tr>\n");
    for (OracleResult o : report.oracles()) {
      h.append("<tr class=\"").append(o.passed() ? "ok" : "ko").append("\"><td>").append(esc(o.oracle()))
          .append("</td><td>").append(esc(o.kind().rule())).append("</td><td>").append(o.checks())
          .append("</td><td>").append(o.violations()).append("</td><td>")
          .append(o.passed() ? "passed" : o.judged() ? "FAILED" : "NOT JUDGED").append("</td></tr>\n");
    }
    h.append("</table>\n");
    for (OracleResult o : report.oracles()) {
      if (!o.notes().isEmpty() || !o.recorded().isEmpty()) {
        h.append("<details").append(o.passed() ? "" : " open").append("><summary>").append(esc(o.oracle()))
            .append(": ").append(o.violations()).append(" violations</summary>");
        for (String n : o.notes()) {
          h.append("<p>").append(esc(n)).append("</p>");
        }
        for (Violation v : o.recorded()) {
          trace(h, v);
        }
        h.append("</details>\n");
      }
    }
  }

  private static void trace(StringBuilder h, Violation v) {
    h.append("<div class=\"trace\"><b>").append(esc(v.summary())).append("</b><br>seed ").append(v.seed());
    if (!v.tenant().isEmpty()) {
      h.append(", tenant ").append(esc(v.tenant()));
    }
    if (v.vmId() > 0) {
      h.append(", vm ").append(v.vmId());
    }
    h.append(", detected at ").append(Units.nanos(v.detectedAtNanos()));
    if (!v.events().isEmpty()) {
      h.append("<ol>");
      for (TraceEvent e : v.events()) {
        h.append("<li>#").append(e.seq()).append(" at ").append(Units.nanos(e.timeNanos())).append(": ")
            .append(esc(e.what())).append("</li>");
      }
      h.append("</ol>");
    }
    h.append("</div>\n");
  }

  private static void metrics(StringBuilder h, RunAggregator data) {
    h.append("<h2 id=\"metrics\">Metrics (all tenants)</h2>\n<table><tr><th>metric</th><th>count</th>")
        .append("<th>rate</th><th>ratio</th><th>min</th>");
    double[] qs = data.percentiles();
    for (double q : qs) {
      h.append("<th>p").append(io.iommulab.config.scenario.Stat.percentileText(q)).append("</th>");
    }
    h.append("<th>max</th><th>mean</th></tr>\n");
    for (MetricStats m : data.all(RunAggregator.GLOBAL).values()) {
      h.append("<tr><td>").append(esc(m.metric())).append("</td><td>").append(m.count()).append("</td><td>")
          .append(Units.rate(m.rate())).append("</td><td>")
          .append(m.ratio() == null ? "" : Units.number(m.ratio())).append("</td><td>")
          .append(ns(m.min())).append("</td>");
      for (double q : qs) {
        h.append("<td>").append(ns(m.percentiles().get("p" + io.iommulab.config.scenario.Stat.percentileText(q))))
            .append("</td>");
      }
      h.append("<td>").append(ns(m.max())).append("</td><td>")
          .append(m.mean() == null ? "" : Units.nanos(m.mean())).append("</td></tr>\n");
    }
    h.append("</table>\n");
  }

  private static void tenants(StringBuilder h, RunAggregator data) {
    h.append("<h2 id=\"tenants\">Tenants</h2>\n<table class=\"tenants\"><tr><th>tenant</th><th>VMs</th>")
        .append("<th>devices/VM</th><th>memory/VM</th><th>operation</th><th>count</th><th>errors</th>")
        .append("<th>rate</th><th>p50 modeled</th><th>p99 modeled</th><th>p99 wall</th><th>violations</th></tr>\n");
    for (TenantTable.Row r : TenantTable.rows(data)) {
      int span = Math.max(1, r.operations().size());
      h.append("<tr><td rowspan=\"").append(span).append("\">").append(esc(r.name())).append("</td><td rowspan=\"")
          .append(span).append("\">").append(r.vms()).append("</td><td rowspan=\"").append(span).append("\">")
          .append(r.devicesPerVm()).append("</td><td rowspan=\"").append(span).append("\">")
          .append(Units.bytes(r.memoryBytes())).append("</td>");
      boolean first = true;
      if (r.operations().isEmpty()) {
        h.append("<td colspan=\"7\">no operations</td>");
      }
      for (Map.Entry<String, TenantTable.Cell> e : r.operations().entrySet()) {
        if (!first) {
          h.append("<tr>");
        }
        TenantTable.Cell c = e.getValue();
        h.append("<td>").append(esc(e.getKey())).append("</td><td>").append(c.count()).append("</td><td>")
            .append(c.errors()).append("</td><td>").append(Units.rate(c.rate())).append("</td><td>")
            .append(ns(c.p50Modeled())).append("</td><td>").append(ns(c.p99Modeled())).append("</td><td>")
            .append(ns(c.p99Wall())).append("</td>");
        if (first) {
          h.append("<td rowspan=\"").append(span).append("\">")
              .append(r.violations().isEmpty() ? "0" : esc(r.violations().toString())).append("</td>");
        }
        h.append("</tr>\n");
        first = false;
      }
      if (r.operations().isEmpty()) {
        h.append("<td>").append(r.violations().isEmpty() ? "0" : esc(r.violations().toString())).append("</td></tr>\n");
      }
    }
    h.append("</table>\n");
  }

  private static void violationsDuringRun(StringBuilder h, RunAggregator data) {
    if (data.violations().isEmpty()) {
      return;
    }
    h.append("<h2 id=\"violations\">Violations reported during the run</h2>\n");
    for (Violation v : data.violations()) {
      h.append("<p><b>").append(esc(v.oracle())).append("</b></p>");
      trace(h, v);
    }
  }

  private static void chart(StringBuilder h, String id, String dataUri) {
    h.append("<figure id=\"").append(id).append("\">");
    if (dataUri == null) {
      h.append("<p class=\"nodata\">no data</p>");
    } else {
      h.append("<img class=\"chart\" width=\"960\" height=\"360\" alt=\"").append(id).append("\" src=\"").append(dataUri).append("\">");
    }
    h.append("</figure>\n");
  }

  private static void fact(StringBuilder h, String name, String value) {
    h.append("<tr><th>").append(esc(name)).append("</th><td>").append(esc(value)).append("</td></tr>");
  }

  private static String ns(Long v) {
    return v == null ? "" : Units.nanos(v);
  }

  static String esc(String s) {
    StringBuilder b = new StringBuilder(s.length());
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '<' -> b.append("&lt;");
        case '>' -> b.append("&gt;");
        case '&' -> b.append("&amp;");
        case '"' -> b.append("&quot;");
        default -> b.append(c);
      }
    }
    return b.toString();
  }

  private static final String CSS =
      "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1200px}"
          + "h1{margin-bottom:0}.desc{color:#555;margin-top:.3em}"
          + "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ddd;padding:.25em .6em;"
          + "text-align:left;font-size:.9em;vertical-align:top}th{background:#f4f4f4}"
          + "table.facts th{width:9em}tr.ok td:last-child{color:#1a7f37}tr.ko td{background:#fff0f0}"
          + ".badge{font-size:.55em;padding:.2em .5em;border-radius:.3em;color:#fff;vertical-align:middle}"
          + ".passed{background:#1a7f37}.failed,.error{background:#cf222e}.running{background:#9a6700}"
          + "figure{margin:0 0 1em}img.chart{max-width:100%;border:1px solid #eee}"
          + ".trace{border-left:3px solid #cf222e;padding:.3em .8em;margin:.5em 0;font-size:.9em}"
          + "pre{background:#f8f8f8;padding:1em;overflow:auto;font-size:.8em}.nodata{color:#888}"
          + ".foot{color:#aaa;font-size:.8em}";
}
