package io.iommulab.host.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.iommulab.host.report.HtmlReport;
import io.iommulab.host.report.IntervalLog;
import io.iommulab.host.report.JUnitXml;
import io.iommulab.host.report.JsonSummary;
import io.iommulab.host.scenario.IntervalSnapshot;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A soak run killed mid-way (SIGKILL: no shutdown hook, no final write) keeps what it measured:
 * the interval log up to the last interval, the last periodic summary and report. {@code
 * iommulab report} then rebuilds the results from the log.
 */
class InterruptedSoakTest {
  @TempDir Path dir;

  @Test
  void aKilledSoakRunLeavesEveryIntervalItMeasuredOnDiskAndTheReportCanBeRebuilt() throws Exception {
    Path out = dir.resolve("soak");
    Process p = SyntheticCliMain.start(dir.resolve("child.log"), "run", "tiny", "-o", out.toString(),
        "-Dduration=120s", "-Dinterval=100ms", "-Dreport-every=1s", "--progress", "lines");
    Path log = out.resolve(IntervalLog.FILE);
    Path summary = out.resolve(JsonSummary.FILE);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    try {
      // Wait (on the process, so a child that dies ends the wait) for a periodic summary and 15 intervals.
      while (!(Files.exists(summary) && Files.exists(log) && IntervalLog.read(log).intervals().size() >= 15)) {
        assertFalse(p.waitFor(100, TimeUnit.MILLISECONDS),
            "the run ended by itself:\n" + Files.readString(dir.resolve("child.log")));
        assertTrue(System.nanoTime() < deadline, "no results after 60s:\n" + Files.readString(dir.resolve("child.log")));
      }
    } finally {
      p.destroyForcibly();
      p.waitFor(30, TimeUnit.SECONDS);
    }

    IntervalLog.Contents contents = IntervalLog.read(log);
    assertTrue(contents.intervals().size() >= 15, contents.intervals().size() + " intervals");
    List<IntervalSnapshot> intervals = contents.intervals();
    for (int i = 0; i < intervals.size(); i++) {
      assertEquals(i, intervals.get(i).index(), "intervals are contiguous from 0");
    }
    assertTrue(contents.damagedLines() <= 1, "at most the line being written when killed");
    assertEquals("tiny", contents.start().get("scenario").asText());
    assertNull(contents.end(), "a killed run never wrote its end line");

    JsonNode periodic = JsonSummary.read(summary);
    assertEquals("running", periodic.get("status").asText());
    assertTrue(periodic.get("intervals").size() >= 10, periodic.get("intervals").size() + " intervals");
    assertEquals(7, periodic.get("seed").asLong());
    assertTrue(Files.readString(out.resolve(HtmlReport.FILE)).contains("RUNNING"));
    assertFalse(Files.exists(out.resolve(JUnitXml.FILE)), "junit.xml is written at the end only");

    Cli.Result rebuilt = Cli.run(dir, List.of(), "report", out.toString());
    assertEquals(1, rebuilt.exit(), rebuilt.out() + rebuilt.err());
    assertTrue(rebuilt.out().contains("did not end"), rebuilt.out());
    JsonNode after = JsonSummary.read(summary);
    assertEquals("failed", after.get("status").asText());
    assertEquals(contents.intervals().size(), after.get("intervals").size());
    assertTrue(Files.exists(out.resolve(JUnitXml.FILE)));
  }

  @Test
  void aRunStoppedWithCtrlCOrSigtermStillJudgesAndWritesEveryResultFile() throws Exception {
    Path out = dir.resolve("stopped");
    Process p = SyntheticCliMain.start(dir.resolve("child.log"), "run", "tiny", "-o", out.toString(),
        "-Dduration=120s", "-Dinterval=100ms", "--progress", "lines");
    Path log = out.resolve(IntervalLog.FILE);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    try {
      while (!(Files.exists(log) && IntervalLog.read(log).intervals().size() >= 5)) {
        assertFalse(p.waitFor(100, TimeUnit.MILLISECONDS),
            "the run ended by itself:\n" + Files.readString(dir.resolve("child.log")));
        assertTrue(System.nanoTime() < deadline, "no intervals after 60s:\n" + Files.readString(dir.resolve("child.log")));
      }
      p.destroy(); // SIGTERM, as Ctrl-C's SIGINT: the JVM runs its shutdown hooks
      assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the run did not stop");
    } finally {
      p.destroyForcibly();
    }
    String child = Files.readString(dir.resolve("child.log"));
    IntervalLog.Contents contents = IntervalLog.read(log);
    assertTrue(contents.end() != null, "the end line was written:\n" + child);
    assertFalse(contents.end().get("completed").asBoolean());
    JsonNode summary = JsonSummary.read(out.resolve(JsonSummary.FILE));
    assertEquals("passed", summary.get("status").asText(), child);
    assertFalse(summary.get("completed").asBoolean());
    assertEquals(contents.intervals().size(), summary.get("intervals").size());
    assertTrue(summary.get("notes").toString().contains("stopped early"), summary.get("notes").toString());
    for (JsonNode o : summary.get("oracles")) {
      assertTrue(o.get("judged").asBoolean(), "the host was shut down for its report: " + o);
    }
    assertTrue(Files.exists(out.resolve(JUnitXml.FILE)));
    assertTrue(child.contains("tiny: PASSED"), child);
  }
}
