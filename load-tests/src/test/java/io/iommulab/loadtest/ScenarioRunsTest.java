package io.iommulab.loadtest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.cli.IommulabCli;
import io.iommulab.host.cli.ScenarioCatalog;
import io.iommulab.host.scenario.ScenarioEngines;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * End to end: every bundled scenario run briefly through the real command line (in-process, the
 * class path's engine), with few VMs, and its results read back: the verdict, every oracle judged
 * and clean, every assertion evaluated, the HTML report with its plots, the interval log. Then the
 * command line's other outcomes: an invalid scenario file (exit 2, the key named) and an
 * assertion no run can meet (exit 1).
 */
class ScenarioRunsTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** What a command printed and returned. */
  record Result(int exit, String out, String err) {}

  static Result cli(Path workingDirectory, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    IommulabCli.Environment env = new IommulabCli.Environment(
        new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8),
        ScenarioCatalog.bundled(),
        ScenarioEngines::registered,
        ConfigFactory::load,
        Clock.systemUTC(),
        workingDirectory,
        false);
    int exit = IommulabCli.execute(env, args);
    return new Result(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /**
   * Each bundled scenario, cut down to seconds and a few VMs with -D overrides; where an assertion
   * is about a moment of the full run (a fixed unplug at 5 s, a warm-up of 10 min), the moment is
   * moved into the short run with the same overrides.
   */
  static Stream<Arguments> briefRuns() {
    return Stream.of(
        Arguments.of("default", List.of("--duration", "3s")),
        // Four of the 64 VMs: the translation-rate floor (assertions[2]) shrinks in proportion,
        // and the one batch VM runs ten times the DMA so its stray-fault ratio has samples enough.
        Arguments.of("multi-tenant", List.of("--duration", "3s",
            "-Dtenants[0].vms=2", "-Dtenants[1].vms=1", "-Dtenants[2].vms=1", "-Dassertions[2].gt=5000",
            "-Dtenants[2].workload.dma.rate=1000")),
        // All 16 VMs: fewer would not oversubscribe the SPAACT, and the study needs refusals.
        Arguments.of("pamu-contention", List.of("--duration", "3s")),
        Arguments.of("snoop-history", List.of("--duration", "4s", "-Dinterval=500ms",
            "-Dtenants[0].workload.hotplug.at=[1s]", "-Dassertions[2].after=2s")),
        Arguments.of("hotplug-during-mapping", List.of("--duration", "3s",
            "-Dtenants[0].vms=2", "-Dtenants[1].vms=1")),
        Arguments.of("soak", List.of("--duration", "4s", "-Dinterval=1s", "-Dreport-every=0s",
            "-Dtenants[0].vms=2", "-Dtenants[1].vms=1", "-Dtenants[3].vms=1", "-Dassertions[0].after=0s")));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("briefRuns")
  void aBriefRunOfEveryBundledScenarioPassesWithEveryOracleJudgedAndItsResultsWritten(
      String name, List<String> options, @TempDir Path dir) throws IOException {
    List<String> args = new ArrayList<>(List.of("run", name, "-o", "out", "--progress", "off"));
    args.addAll(options);
    Result r = cli(dir, args.toArray(String[]::new));
    Path out = dir.resolve("out");

    JsonNode summary = JSON.readTree(out.resolve("summary.json").toFile());
    assertEquals(0, r.exit(), name + ":\n" + r.out() + r.err());
    assertEquals("passed", summary.get("status").asText(), r.out());
    assertEquals(0, summary.get("exitCode").asInt());
    assertEquals("actors", summary.get("engine").asText());

    Set<String> judged = new HashSet<>();
    for (JsonNode o : summary.get("oracles")) {
      assertTrue(o.get("judged").asBoolean(), o.toString());
      assertEquals(0, o.get("violations").asLong(), o.toString());
      judged.add(o.get("oracle").asText());
    }
    for (Oracle o : Oracle.values()) {
      assertTrue(judged.contains(o.configName()), "oracle " + o.configName() + " is in the results");
    }

    ScenarioSettings s = ScenarioCatalog.bundled().load(name, overrides(options), ConfigFactory.load(), dir);
    assertEquals(s.checks().size(), summary.get("assertions").size(), "every assertion check was evaluated");
    for (JsonNode a : summary.get("assertions")) {
      assertTrue(a.get("passed").asBoolean(), a.toString());
    }
    assertTrue(summary.get("intervals").size() >= 2, "a time series of intervals");

    String html = Files.readString(out.resolve("report.html"));
    assertTrue(html.contains("<img") && html.contains("data:image/png;base64,"), "the report draws its plots");
    assertTrue(Files.size(out.resolve("junit.xml")) > 0);
    List<String> log = Files.readAllLines(out.resolve("intervals.jsonl"));
    assertTrue(log.stream().anyMatch(l -> l.contains("\"type\":\"interval\"")), "the interval log has intervals");
  }

  /** The -D options of a run as the overrides map the catalogue takes. */
  private static Map<String, String> overrides(List<String> options) {
    Map<String, String> o = new java.util.LinkedHashMap<>();
    for (int i = 0; i < options.size(); i++) {
      String opt = options.get(i);
      if (opt.equals("--duration")) {
        o.put("duration", options.get(++i));
      } else if (opt.startsWith("-D")) {
        String[] kv = opt.substring(2).split("=", 2);
        o.put(kv[0], kv[1]);
      }
    }
    return o;
  }

  @Test
  void aScenarioFileWithAWrongKeyIsRefusedWithExitCode2AndTheKeyNamed(@TempDir Path dir) throws IOException {
    Files.writeString(dir.resolve("broken.conf"), """
        scenario {
          description = "two tenants, one with no VM"
          duration = 2s
          tenants = [ { name = web, devices = [ { unit = smmu0 } ] }, { name = db, vms = 0 } ]
        }
        """);
    Result r = cli(dir, "run", "broken.conf", "-o", "out", "--progress", "off");
    assertEquals(IommulabCli.INVALID, r.exit(), r.out() + r.err());
    assertTrue(r.err().contains("scenario.tenants[1].vms"), r.err());
    assertFalse(Files.exists(dir.resolve("out").resolve("summary.json")), "nothing ran");
  }

  @Test
  void aRunWhoseAssertionCannotHoldFailsWithExitCode1AndSaysWhich(@TempDir Path dir) throws IOException {
    Files.writeString(dir.resolve("impossible.conf"), """
        scenario {
          description = "one VM whose DMA would have to exceed any machine"
          duration = 2s
          tenants = [ { name = web, memory = 256MiB, devices = [ { unit = smmu0 } ]
            workload { dma { rate = 100 } } } ]
          assertions = [
            { metric = dma.translations, stat = rate, gt = 1e15 }
            { metric = violations.isolation, stat = count, eq = 0 }
          ]
        }
        """);
    Result r = cli(dir, "run", "impossible.conf", "-o", "out", "--progress", "off");
    assertEquals(IommulabCli.FAILED, r.exit(), r.out() + r.err());
    assertTrue(r.out().contains("FAILED dma.translations rate"), r.out());
    JsonNode summary = JSON.readTree(dir.resolve("out").resolve("summary.json").toFile());
    assertEquals("failed", summary.get("status").asText());
    for (JsonNode o : summary.get("oracles")) {
      assertTrue(o.get("judged").asBoolean() && o.get("violations").asLong() == 0, o.toString());
    }
  }
}
