package io.iommulab.host.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.Violation;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * Rebuilds a run's report from its {@code intervals.jsonl} ({@code iommulab report DIR}): the
 * scenario from the resolved configuration of the start line, the measurements from the interval
 * and violation lines, the verdicts from the end line. A run that was killed has no end line: its
 * report keeps every interval it wrote, and the oracles judged at the end are "not judged", so
 * the rebuilt verdict is FAILED rather than a pass nobody checked.
 */
public final class Rebuild {
  private static final ObjectMapper MAPPER = IntervalLog.MAPPER;

  private Rebuild() {}

  /**
   * @param dir the run's output directory
   * @param base the configuration the scenario's defaults come from (normally {@code
   *     ConfigFactory.load()})
   * @throws IOException when there is no readable log, or it has no start line
   */
  public static RunReport fromLog(Path dir, Config base) throws IOException {
    Path file = dir.resolve(IntervalLog.FILE);
    if (!Files.isRegularFile(file)) {
      throw new IOException("no " + IntervalLog.FILE + " in " + dir);
    }
    IntervalLog.Contents log = IntervalLog.read(file);
    if (log.start() == null) {
      throw new IOException(file + " has no start line");
    }
    Config resolved = ConfigFactory.parseString(log.start().get("configuration").toString());
    ScenarioSettings scenario = ScenarioSettings.fromConfig(
        log.start().get("scenario").asText(),
        resolved.withOnlyPath(ScenarioSettings.PATH),
        resolved.withOnlyPath("iommulab").withFallback(base));
    RunAggregator data = new RunAggregator(scenario);
    for (IntervalSnapshot s : log.intervals()) {
      data.accept(s);
    }
    for (Violation v : log.violations()) {
      data.violation(v);
    }
    String engine = log.start().path("engine").asText("unknown");
    Instant startedAt = Instant.parse(log.start().get("startedAt").asText());
    List<String> notes = new ArrayList<>();
    if (log.damagedLines() > 0) {
      notes.add(log.damagedLines() + " damaged lines of " + IntervalLog.FILE + " were skipped");
    }
    JsonNode end = log.end();
    if (end == null) {
      notes.add("rebuilt from the interval log of a run that did not end (it was killed): the oracles"
          + " judged at the end were not reached");
      return RunReport.finished(data, engine, startedAt, false, -1, List.of(), null, notes);
    }
    List<OracleResult> oracles = new ArrayList<>();
    for (JsonNode o : end.path("oracles")) {
      oracles.add(MAPPER.treeToValue(o, OracleResult.class));
    }
    for (JsonNode n : end.path("notes")) {
      notes.add(n.asText());
    }
    String error = end.path("error").isTextual() ? end.get("error").asText() : null;
    return RunReport.finished(data, engine, startedAt, end.path("completed").asBoolean(),
        end.path("modeledNanos").asLong(-1), oracles, error, notes);
  }
}
