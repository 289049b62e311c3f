package io.iommulab.host.report;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.TraceEvent;
import io.iommulab.host.scenario.Violation;
import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import javax.xml.parsers.DocumentBuilderFactory;
import org.HdrHistogram.Histogram;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/** summary.json, report.html, junit.xml and intervals.jsonl, written and read back. */
class ResultWritersTest {
  @TempDir Path dir;

  private static final Violation VIOLATION = new Violation(
      Oracle.STALE_TRANSLATION.configName(), 7, "web", 1, 1_500_000_000L,
      "vm 1 device nic2 pasid 0: access 0x2000 completed after its unmap had returned",
      List.of(new TraceEvent(11, 1_000, "unmap [0x2000, +0x1000) issued"),
          new TraceEvent(12, 2_000, "unmap [0x2000, +0x1000) returned (issued as #11)"),
          new TraceEvent(13, 3_000, "burst 4 issued")));

  /** The fixture with one failing assertion and one violated oracle. */
  private static RunReport failing() {
    ScenarioSettings s = Fixtures.withAssertions("50us");
    RunAggregator data = Fixtures.data(s);
    data.violation(VIOLATION);
    List<OracleResult> oracles = new ArrayList<>(Fixtures.cleanOracles());
    oracles.set(1, OracleResult.judged(Oracle.STALE_TRANSLATION, 5000, 1, List.of(VIOLATION), List.of()));
    return RunReport.finished(data, "fixture", Fixtures.STARTED, true, 2_000_000_000L, oracles, null, List.of());
  }

  @Test
  void theSummaryHasTheSeedTheResolvedConfigurationAndEveryMetricWithItsPercentiles() throws Exception {
    RunReport report = Fixtures.report(Fixtures.withAssertions("1ms"));
    JsonNode j = JsonSummary.read(JsonSummary.write(report, dir));
    assertEquals(RunReport.FORMAT, j.get("format").asText());
    assertEquals("tiny", j.get("scenario").asText());
    assertEquals(7, j.get("seed").asLong());
    assertEquals("passed", j.get("status").asText());
    assertEquals(0, j.get("exitCode").asInt());
    assertEquals(2.0, j.get("measuredSeconds").asDouble());
    assertEquals(7, j.at("/configuration/scenario/seed").asLong());
    assertEquals(7, j.at("/configuration/iommulab/host/seed").asLong());
    assertEquals("32GiB", j.at("/configuration/iommulab/topology/host-memory").asText());
    assertEquals(2, j.at("/configuration/scenario/tenants").size());

    JsonNode map = JsonSummary.metric(j, "web", "map.latency.modeled");
    Histogram h = report.data().histogram("map.latency.modeled", "web");
    assertEquals(800, map.get("count").asLong());
    assertEquals("ns", map.get("unit").asText());
    for (double q : new double[] {50, 75, 95, 99, 99.9}) {
      String name = "p" + io.iommulab.config.scenario.Stat.percentileText(q);
      assertEquals(h.getValueAtPercentile(q), map.get("percentiles").get(name).asLong(), name);
    }
    assertEquals(0.01, JsonSummary.metric(j, "web", "dma.faults").get("ratio").asDouble());
    assertEquals(600.0, JsonSummary.metric(j, "global", "map.count").get("rate").asDouble());
  }

  @Test
  void theSummaryHasTheTimeSeriesThePerTenantTableTheOraclesAndTheAssertions() throws Exception {
    JsonNode j = JsonSummary.read(JsonSummary.write(failing(), dir));
    assertEquals("failed", j.get("status").asText());
    assertEquals(1, j.get("exitCode").asInt());
    assertEquals(8, j.get("intervals").size());
    assertEquals(150, j.at("/intervals/0/operations/map/count").asLong());
    assertEquals(2, j.get("tenants").size());
    assertEquals("web", j.at("/tenants/0/name").asText());
    assertEquals(800, j.at("/tenants/0/operations/map/count").asLong());
    assertEquals(Oracle.values().length, j.get("oracles").size());
    JsonNode stale = j.get("oracles").get(1);
    assertEquals("stale-translation", stale.get("oracle").asText());
    assertFalse(stale.get("passed").asBoolean());
    assertEquals(7, stale.at("/recorded/0/seed").asLong());
    assertEquals("unmap [0x2000, +0x1000) returned (issued as #11)", stale.at("/recorded/0/events/1/what").asText());
    JsonNode first = j.get("assertions").get(0);
    assertFalse(first.get("passed").asBoolean());
    assertEquals("map.latency.modeled p99 < 50us [global]", first.get("check").asText());
    assertTrue(first.get("observed").asDouble() > 50_000);
  }

  @Test
  void theHtmlReportIsSelfContainedWithItsChartsAndTheTenantTable() throws Exception {
    String html = Files.readString(HtmlReport.write(failing(), dir));
    assertTrue(html.startsWith("<!DOCTYPE html>"));
    assertFalse(html.contains("http://") || html.contains("https://") || html.contains("<script"),
        "no network, no script");
    Matcher charts = Pattern.compile("<figure id=\"([a-z-]+)\"><img class=\"chart\"[^>]* src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"").matcher(html);
    List<String> ids = new ArrayList<>();
    while (charts.find()) {
      ids.add(charts.group(1));
      var image = ImageIO.read(new ByteArrayInputStream(Charts.imageBytes("," + charts.group(2))));
      assertEquals(Charts.WIDTH, image.getWidth(), charts.group(1));
      assertEquals(Charts.HEIGHT, image.getHeight(), charts.group(1));
    }
    assertEquals(List.of("throughput", "latency-modeled-over-time", "latency-wall-over-time",
        "distribution-modeled", "distribution-wall"), ids);
    assertTrue(html.contains("<h2 id=\"tenants\">Tenants</h2>"));
    assertTrue(html.contains("<td rowspan=\"4\">web</td><td rowspan=\"4\">2</td>"), "web: attach, map, unmap, dma rows");
    assertTrue(html.contains("<td rowspan=\"3\">db</td><td rowspan=\"3\">1</td>"), "db: attach, map, unmap rows");
    assertTrue(html.contains("FAILED: observed "), "the failed assertion");
    assertTrue(html.contains("unmap [0x2000, +0x1000) returned (issued as #11)"), "the violation's trace");
    assertTrue(html.contains("seed 7"));
  }

  @Test
  void theJunitXmlHasOneTestcasePerCheckAndPerOracleWithTheObservedValueInFailures() throws Exception {
    RunReport report = failing();
    Path file = JUnitXml.write(report, dir);
    Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(file.toFile());
    Element suite = doc.getDocumentElement();
    assertEquals("testsuite", suite.getTagName());
    assertEquals("iommulab.tiny", suite.getAttribute("name"));
    int checks = report.scenario().checks().size();
    assertEquals(checks + Oracle.values().length, Integer.parseInt(suite.getAttribute("tests")));
    assertEquals("2", suite.getAttribute("failures"));
    NodeList cases = suite.getElementsByTagName("testcase");
    assertEquals(checks + Oracle.values().length, cases.getLength());
    Element first = (Element) cases.item(0);
    assertEquals("iommulab.tiny.assertions", first.getAttribute("classname"));
    assertEquals("map.latency.modeled p99 < 50us [global]", first.getAttribute("name"));
    Element failure = (Element) first.getElementsByTagName("failure").item(0);
    assertTrue(failure.getAttribute("message").matches("observed [0-9.]+us, expected p99 < 50us"),
        failure.getAttribute("message"));
    Element seed = (Element) suite.getElementsByTagName("property").item(0);
    assertEquals("seed", seed.getAttribute("name"));
    assertEquals("7", seed.getAttribute("value"));
    Element stale = (Element) cases.item(checks + 1);
    assertEquals("iommulab.tiny.oracles", stale.getAttribute("classname"));
    Element staleFailure = (Element) stale.getElementsByTagName("failure").item(0);
    assertEquals("1 violations in 5000 checks (seed 7)", staleFailure.getAttribute("message"));
    assertTrue(staleFailure.getTextContent().contains("#12 unmap [0x2000, +0x1000) returned"));
    assertEquals(0, ((Element) cases.item(1)).getElementsByTagName("failure").getLength());
  }

  @Test
  void theIntervalLogReadsBackExactlyAndRebuildsTheSameSummary() throws Exception {
    RunReport report = failing();
    try (IntervalLog log = IntervalLog.create(dir)) {
      log.start(report.scenario(), report.engine(), report.startedAt());
      for (IntervalSnapshot s : Fixtures.snapshots()) {
        log.interval(s);
      }
      log.violation(VIOLATION);
      log.end(report);
    }
    IntervalLog.Contents c = IntervalLog.read(dir.resolve(IntervalLog.FILE));
    assertEquals(Fixtures.snapshots(), c.intervals());
    assertEquals(List.of(VIOLATION), c.violations());
    assertEquals(0, c.damagedLines());
    RunReport rebuilt = Rebuild.fromLog(dir, ConfigFactory.load());
    assertEquals(JsonSummary.tree(report), JsonSummary.tree(rebuilt));
  }

  @Test
  void aLogCutByAKillIsReadUpToItsLastWholeLineAndItsOraclesAreNotJudged() throws Exception {
    RunReport report = Fixtures.report(Fixtures.tiny());
    try (IntervalLog log = IntervalLog.create(dir)) {
      log.start(report.scenario(), report.engine(), report.startedAt());
      for (IntervalSnapshot s : Fixtures.snapshots().subList(0, 5)) {
        log.interval(s);
      }
    }
    Files.writeString(dir.resolve(IntervalLog.FILE), "{\"type\":\"interval\",\"snap", java.nio.file.StandardOpenOption.APPEND);
    IntervalLog.Contents c = IntervalLog.read(dir.resolve(IntervalLog.FILE));
    assertEquals(5, c.intervals().size());
    assertEquals(1, c.damagedLines());
    assertNull(c.end());
    RunReport rebuilt = Rebuild.fromLog(dir, ConfigFactory.load());
    assertEquals(RunReport.Status.FAILED, rebuilt.status());
    assertFalse(rebuilt.completed());
    assertEquals(5, rebuilt.data().intervals());
    assertTrue(rebuilt.oracles().stream().noneMatch(OracleResult::judged));
    assertTrue(rebuilt.notes().stream().anyMatch(n -> n.contains("did not end")), rebuilt.notes().toString());
  }

  @Test
  void encodedHistogramsSurviveJsonExactly() throws Exception {
    IntervalSnapshot s = Fixtures.snapshots().get(0);
    byte[] before = s.tenants().get(0).latencies().get("map.latency.modeled").compressed();
    IntervalSnapshot back = IntervalLog.MAPPER.readValue(IntervalLog.MAPPER.writeValueAsBytes(s), IntervalSnapshot.class);
    assertArrayEquals(before, back.tenants().get(0).latencies().get("map.latency.modeled").compressed());
    assertEquals(s, back);
  }
}
