package io.iommulab.host.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.host.report.HtmlReport;
import io.iommulab.host.report.IntervalLog;
import io.iommulab.host.report.JUnitXml;
import io.iommulab.host.report.JsonSummary;
import io.iommulab.host.scenario.ScenarioEngine;
import io.iommulab.host.scenario.SyntheticEngine;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line end to end, with the test scenarios and the synthetic test engine. */
class IommulabCliTest {
  @TempDir Path dir;

  private static final List<ScenarioEngine> NO_ENGINE = List.of();

  private static List<ScenarioEngine> synthetic(SyntheticEngine.Options o) {
    return List.of(new SyntheticEngine(o));
  }

  private static List<ScenarioEngine> synthetic() {
    return synthetic(new SyntheticEngine.Options());
  }

  @Test
  void listShowsTheBundledScenariosWithTheirDescriptions() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "list");
    assertEquals(0, r.exit());
    assertEquals(
        List.of("tiny    two tenants, a short mix (test scenario)",
            "broken  broken on purpose (test scenario)"),
        r.out().lines().toList());
  }

  @Test
  void listMetricsShowsEveryMetricWithItsStatistics() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "list", "--metrics");
    assertEquals(0, r.exit());
    assertTrue(r.out().contains("map.latency.modeled"), r.out());
    assertTrue(r.out().contains("ratio (over dma.translations)"), r.out());
    assertTrue(r.out().contains("violations.stale-translation"), r.out());
  }

  @Test
  void helpWorksOnTheCommandAndOnEachSubcommand() {
    for (String[] args : List.of(new String[] {"--help"}, new String[] {"run", "--help"},
        new String[] {"list", "--help"}, new String[] {"validate", "--help"},
        new String[] {"report", "--help"}, new String[] {"help", "run"})) {
      Cli.Result r = Cli.run(dir, NO_ENGINE, args);
      assertEquals(0, r.exit(), String.join(" ", args) + ": " + r.err());
      assertTrue(r.out().contains("Usage: iommulab"), String.join(" ", args) + ": " + r.out());
    }
    Cli.Result run = Cli.run(dir, NO_ENGINE, "run", "--help");
    for (String option : List.of("--duration", "--seed", "-D", "--output", "--metrics-port", "SCENARIO")) {
      assertTrue(run.out().contains(option), option + " missing from:\n" + run.out());
    }
  }

  @Test
  void anUnknownOptionIsAUsageErrorWithExitCode2() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "run", "tiny", "--fast");
    assertEquals(2, r.exit());
    assertTrue(r.err().contains("Unknown option: '--fast'"), r.err());
  }

  @Test
  void validateOfAGoodScenarioDescribesWhatItWillRun() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "tiny");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().startsWith("tiny: valid"), r.out());
    assertTrue(r.out().contains("tenant web: 2 VMs (ids 1-2)"), r.out());
    assertTrue(r.out().contains("devices: vm 1 nic2; vm 2 accel0"), r.out());
    assertTrue(r.out().contains("map.latency.modeled p99 < 1ms [global]"), r.out());
  }

  @Test
  void validateShowsTheResolvedConfigurationOnRequest() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "tiny", "--show-config", "--seed", "99");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("seed=99"), r.out());
    assertTrue(r.out().contains("strict-unmap=true"), r.out());
  }

  @Test
  void validateOfABrokenScenarioExits2AndNamesEveryProblemWithItsKey() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "broken");
    assertEquals(2, r.exit());
    assertEquals(
        List.of(
            "scenario broken is invalid (2 problems):",
            "  scenario.tenants[0].vms = 0: must be from 1 to 100000",
            "  scenario.tenants[0].workload.map.rat = 10: unknown key (workload.map takes rate, sizes, hold)"),
        r.err().lines().toList());
    assertFalse(r.err().contains("Exception"), r.err());
  }

  @Test
  void validateOfABrokenFileGivenByPathExits2NamingTheKey() throws IOException {
    Path file = dir.resolve("mine.conf");
    Files.writeString(file, "scenario { description = mine, duration = 10s, interval = 20s,"
        + " tenants = [ { name = a, devices = [ { unit = vtd0 } ], workload {} } ] }");
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "mine.conf");
    assertEquals(2, r.exit());
    assertEquals(
        List.of("scenario mine.conf is invalid (1 problem):",
            "  scenario.interval = 20s: must not exceed duration (10s)"),
        r.err().lines().toList());
  }

  @Test
  void aFileThatIsNotHoconExits2WithTheLine() throws IOException {
    Files.writeString(dir.resolve("bad.conf"), "scenario {\n  description = \"open\n}");
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "bad.conf");
    assertEquals(2, r.exit());
    assertTrue(r.err().contains("bad.conf: 2"), r.err());
  }

  @Test
  void anUnknownScenarioExits2AndListsTheBundledOnes() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "tinny");
    assertEquals(2, r.exit());
    assertEquals("iommulab: no bundled scenario tinny (bundled: tiny, broken) and no file tinny",
        r.err().strip());
  }

  @Test
  void anOverrideIsValidatedLikeTheFile() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "validate", "tiny", "-Dtenants[0].vms=0", "-Dduration=1m");
    assertEquals(2, r.exit());
    assertTrue(r.err().contains("  scenario.tenants[0].vms = 0: must be from 1 to 100000"), r.err());
  }

  @Test
  void runWithoutAnEngineSaysSoAndExits3() {
    Cli.Result r = Cli.run(dir, NO_ENGINE, "run", "tiny");
    assertEquals(3, r.exit());
    assertTrue(r.err().contains("no engine available"), r.err());
    assertFalse(Files.exists(dir.resolve("results")));
  }

  @Test
  void runOfABrokenScenarioExits2BeforeLookingForAnEngine() {
    assertEquals(2, Cli.run(dir, NO_ENGINE, "run", "broken").exit());
  }

  @Test
  void aMetricsPortOutOfRangeIsRefused() {
    Cli.Result r = Cli.run(dir, synthetic(), "run", "tiny", "--metrics-port", "70000");
    assertEquals(2, r.exit());
    assertTrue(r.err().contains("--metrics-port 70000: must be from 1 to 65535"), r.err());
  }

  @Test
  void aPassingRunExits0AndWritesEveryResultFileUnderResultsScenarioTimestamp() throws IOException {
    Cli.Result r = Cli.run(dir, synthetic(), "run", "tiny", "--progress", "off");
    assertEquals(0, r.exit(), r.out() + r.err());
    Path out = dir.resolve("results/tiny-20261121-120000");
    for (String f : List.of(IntervalLog.FILE, JsonSummary.FILE, HtmlReport.FILE, JUnitXml.FILE)) {
      assertTrue(Files.isRegularFile(out.resolve(f)), f);
    }
    assertTrue(r.out().startsWith("tiny: PASSED (seed 7"), r.out());
    JsonNode summary = JsonSummary.read(out.resolve(JsonSummary.FILE));
    assertEquals("passed", summary.get("status").asText());
    assertEquals(8, summary.get("intervals").size());
    for (JsonNode o : summary.get("oracles")) {
      assertTrue(o.get("passed").asBoolean(), o.toString());
    }
  }

  @Test
  void durationAndSeedOptionsOverrideTheScenario() throws IOException {
    Cli.Result r = Cli.run(dir, synthetic(), "run", "tiny", "--duration", "500ms", "--seed", "9",
        "-o", "out", "--progress", "lines");
    assertEquals(0, r.exit(), r.out() + r.err());
    JsonNode summary = JsonSummary.read(dir.resolve("out").resolve(JsonSummary.FILE));
    assertEquals(9, summary.get("seed").asLong());
    assertEquals(0.5, summary.get("plannedSeconds").asDouble());
    assertEquals(9, summary.at("/configuration/iommulab/host/seed").asLong());
    assertTrue(r.err().contains("[="), "a progress line on stderr: " + r.err());
  }

  @Test
  void aFailedAssertionExits1AndIsListedWithTheObservedValue() {
    Cli.Result r = Cli.run(dir, synthetic(), "run", "tiny", "-Dassertions[0].lt=1us", "--progress", "off");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.out().startsWith("tiny: FAILED"), r.out());
    assertTrue(r.out().contains("FAILED map.latency.modeled p99 < 1us [global]: observed "), r.out());
    assertTrue(r.out().contains(", expected p99 < 1us"), r.out());
  }

  @Test
  void anInvariantViolationExits1WithTheSeed() throws IOException {
    SyntheticEngine.Options o = new SyntheticEngine.Options();
    o.violationAt = 2;
    Cli.Result r = Cli.run(dir, synthetic(o), "run", "tiny", "-o", "v", "--progress", "off");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains("FAILED isolation: 1 violations, first: synthetic: DMA of vm 1"), r.out());
    assertTrue(r.out().contains("FAILED violations.isolation count = 0 [global]: observed 1"), r.out());
    JsonNode summary = JsonSummary.read(dir.resolve("v").resolve(JsonSummary.FILE));
    JsonNode isolation = summary.get("oracles").get(0);
    assertEquals("isolation", isolation.get("oracle").asText());
    assertEquals(7, isolation.at("/recorded/0/seed").asLong());
    assertEquals("burst 7 issued at 0x1000", isolation.at("/recorded/0/events/1/what").asText());
  }

  @Test
  void anOracleNobodyJudgedFailsTheRun() {
    SyntheticEngine.Options o = new SyntheticEngine.Options();
    o.unjudged = List.of(Oracle.FAULT_CONSERVATION);
    Cli.Result r = Cli.run(dir, synthetic(o), "run", "tiny", "--progress", "off");
    assertEquals(1, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains("FAILED fault-conservation: not judged"), r.out());
  }

  @Test
  void anEngineThatFailsExits3AndKeepsWhatWasMeasured() throws IOException {
    SyntheticEngine.Options o = new SyntheticEngine.Options();
    o.throwAt = 3;
    Cli.Result r = Cli.run(dir, synthetic(o), "run", "tiny", "-o", "e", "--progress", "off");
    assertEquals(3, r.exit(), r.out() + r.err());
    JsonNode summary = JsonSummary.read(dir.resolve("e").resolve(JsonSummary.FILE));
    assertEquals("error", summary.get("status").asText());
    assertEquals(4, summary.get("intervals").size());
    assertTrue(summary.get("notes").get(0).asText().contains("synthetic engine failure in interval 3"),
        summary.get("notes").toString());
  }
}
