package io.iommulab.loadtest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.cli.IommulabCli;
import io.iommulab.host.cli.ScenarioCatalog;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The scenarios this module bundles: listed, documented, valid, and found by the command line. */
class BundledScenariosTest {
  static final List<String> NAMES =
      List.of("default", "multi-tenant", "pamu-contention", "snoop-history", "hotplug-during-mapping", "soak",
          "multi-tenant-1k", "multi-tenant-10k");

  static List<String> names() {
    return NAMES;
  }

  private static String text(String name) throws IOException {
    try (InputStream in = BundledScenariosTest.class.getClassLoader()
        .getResourceAsStream("scenarios/" + name + ".conf")) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  @Test
  void theIndexListsEveryBundledScenarioInOrder() {
    assertEquals(NAMES, ScenarioCatalog.bundled().names());
  }

  @ParameterizedTest
  @MethodSource("names")
  void everyBundledScenarioIsValid(String name) {
    ScenarioSettings s = ScenarioCatalog.bundled().load(name, Map.of(), ConfigFactory.load(), Path.of("."));
    assertEquals(name, s.name());
    assertTrue(s.description().length() > 20, s.description());
  }

  @ParameterizedTest
  @MethodSource("names")
  void everyBundledScenarioOpensWithTheStudyAndAnAsciiDiagramOfItsTopology(String name) throws IOException {
    String text = text(name);
    assertTrue(text.startsWith("# " + name + ": "), "the header names the scenario and what it studies");
    String header = text.substring(0, text.indexOf("\nscenario {"));
    assertTrue(header.lines().allMatch(l -> l.startsWith("#")), "the header is one comment");
    assertTrue(header.contains("Topology"), "the header describes the topology");
    assertTrue(header.lines().filter(l -> l.matches("#\\s+\\+-.*")).count() >= 2,
        "the header draws the units as boxes:\n" + header);
    assertTrue(header.chars().allMatch(c -> c < 128), "the diagram is plain ASCII");
  }

  @Test
  void theDefaultScenarioFinishesInUnderAMinute() {
    ScenarioSettings s = ScenarioCatalog.bundled().load("default", Map.of(), ConfigFactory.load(), Path.of("."));
    assertTrue(s.duration().compareTo(Duration.ofMinutes(1)) < 0, s.duration().toString());
  }

  @Test
  void theSoakScenarioRewritesItsReportWhileItRuns() {
    ScenarioSettings s = ScenarioCatalog.bundled().load("soak", Map.of(), ConfigFactory.load(), Path.of("."));
    assertTrue(s.duration().compareTo(Duration.ofHours(1)) >= 0, s.duration().toString());
    assertTrue(!s.reportEvery().isZero());
  }

  @Test
  void listShowsTheBundledScenariosWithTheirDescriptions() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    IommulabCli.Environment env = new IommulabCli.Environment(
        new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
        ScenarioCatalog.bundled(), List::of, ConfigFactory::load, Clock.systemUTC(), Path.of("."), false);
    assertEquals(0, IommulabCli.execute(env, "list"));
    List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
    assertEquals(NAMES.size(), lines.size(), lines.toString());
    for (int i = 0; i < NAMES.size(); i++) {
      assertTrue(lines.get(i).startsWith(NAMES.get(i) + " "), lines.get(i));
    }
    assertTrue(lines.get(3).contains("non-coherent"), lines.get(3));
  }
}
