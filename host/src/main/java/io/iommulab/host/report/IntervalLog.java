package io.iommulab.host.report;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.Violation;
import java.io.BufferedWriter;
import java.io.Closeable;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code intervals.jsonl}: the append-only log of a run, one JSON object per line, each line
 * flushed as soon as it is written, so a run that is killed keeps everything it measured up to
 * its last interval. Lines, by {@code type}:
 *
 * <pre>
 * start      format, scenario, description, seed, engine, startedAt, configuration (resolved)
 * interval   snapshot: {index, startNanos, endNanos, tenants [{tenant, counters {metric → n},
 *            latencies {metric → HdrHistogram compressed, base64}}]}
 * violation  violation: {oracle, seed, tenant, vmId, detectedAtNanos, summary, events [..]}
 * end        status, exitCode, completed, modeledNanos, error, oracles (the final verdicts), notes
 * </pre>
 *
 * The histograms are exact (HdrHistogram's own encoding), so the summary rebuilt from the log
 * ({@link #read}) equals the one the run wrote.
 */
public final class IntervalLog implements Closeable {
  /** The file name in the output directory. */
  public static final String FILE = "intervals.jsonl";

  static final ObjectMapper MAPPER = new ObjectMapper().findAndRegisterModules();

  private final BufferedWriter out;

  private IntervalLog(BufferedWriter out) {
    this.out = out;
  }

  /** Creates {@code dir/intervals.jsonl} (replacing one left there). */
  public static IntervalLog create(Path dir) throws IOException {
    return new IntervalLog(Files.newBufferedWriter(dir.resolve(FILE), StandardCharsets.UTF_8,
        StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE));
  }

  public void start(ScenarioSettings s, String engine, Instant startedAt) throws IOException {
    ObjectNode n = MAPPER.createObjectNode();
    n.put("type", "start");
    n.put("format", RunReport.FORMAT);
    n.put("scenario", s.name());
    n.put("description", s.description());
    n.put("seed", s.seed());
    n.put("engine", engine);
    n.put("startedAt", startedAt.toString());
    n.set("configuration", JsonSummary.configuration(s));
    line(n);
  }

  public void interval(IntervalSnapshot snapshot) throws IOException {
    ObjectNode n = MAPPER.createObjectNode();
    n.put("type", "interval");
    n.set("snapshot", MAPPER.valueToTree(snapshot));
    line(n);
  }

  public void violation(Violation violation) throws IOException {
    ObjectNode n = MAPPER.createObjectNode();
    n.put("type", "violation");
    n.set("violation", MAPPER.valueToTree(violation));
    line(n);
  }

  public void end(RunReport report) throws IOException {
    ObjectNode n = MAPPER.createObjectNode();
    n.put("type", "end");
    n.put("status", report.status().word());
    n.put("exitCode", report.exitCode());
    n.put("completed", report.completed());
    n.put("modeledNanos", report.modeledNanos());
    n.put("error", report.error());
    n.set("oracles", MAPPER.valueToTree(report.oracles()));
    n.set("notes", MAPPER.valueToTree(report.ownNotes()));
    line(n);
  }

  private void line(JsonNode n) throws IOException {
    out.write(MAPPER.writeValueAsString(n));
    out.write('\n');
    out.flush();
  }

  @Override
  public void close() throws IOException {
    out.close();
  }

  // ------------------------------------------------------------------------------------- reading

  /**
   * What a log holds.
   *
   * @param start the start line (null if the log is empty)
   * @param intervals every interval, in order
   * @param violations every violation line
   * @param end the end line, null when the run did not end (it was killed)
   * @param damagedLines lines that could not be read (the last one of a run killed mid-write)
   */
  public record Contents(
      JsonNode start, List<IntervalSnapshot> intervals, List<Violation> violations, JsonNode end,
      int damagedLines) {
    public Contents {
      intervals = List.copyOf(intervals);
      violations = List.copyOf(violations);
    }
  }

  /** Reads a log, keeping every whole line (a line cut by a kill is counted, not fatal). */
  public static Contents read(Path file) throws IOException {
    JsonNode start = null;
    JsonNode end = null;
    List<IntervalSnapshot> intervals = new ArrayList<>();
    List<Violation> violations = new ArrayList<>();
    int damaged = 0;
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      if (line.isBlank()) {
        continue;
      }
      try {
        JsonNode n = MAPPER.readTree(line);
        switch (n.path("type").asText()) {
          case "start" -> start = n;
          case "interval" -> intervals.add(MAPPER.treeToValue(n.get("snapshot"), IntervalSnapshot.class));
          case "violation" -> violations.add(MAPPER.treeToValue(n.get("violation"), Violation.class));
          case "end" -> end = n;
          default -> damaged++;
        }
      } catch (JsonProcessingException | IllegalArgumentException e) {
        damaged++;
      }
    }
    return new Contents(start, intervals, violations, end, damaged);
  }
}
