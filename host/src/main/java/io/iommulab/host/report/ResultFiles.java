package io.iommulab.host.report;

import io.iommulab.config.scenario.ScenarioSettings;
import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * The result files of a run, in one directory (by default {@code
 * results/<scenario>-<yyyyMMdd-HHmmss>}, the time read at the edge, in UTC):
 *
 * <ul>
 *   <li>{@code intervals.jsonl} — appended and flushed every interval: a start line (scenario,
 *       seed, resolved configuration), one line per interval and per violation, an end line. A
 *       killed run keeps everything it measured; {@code iommulab report DIR} rebuilds the others
 *       from it.
 *   <li>{@code summary.json} — everything ({@link JsonSummary}); rewritten every {@code
 *       report-every} while a soak runs, and at the end.
 *   <li>{@code report.html} — the same for a person, with plots, self-contained ({@link
 *       HtmlReport}); rewritten with the summary.
 *   <li>{@code junit.xml} — one testcase per assertion check and per oracle ({@link JUnitXml}),
 *       written at the end.
 * </ul>
 *
 * Files other than the log are written atomically (a temporary file moved into place), so a run
 * killed mid-write leaves the previous version, never half a file.
 */
public final class ResultFiles {
  private static final DateTimeFormatter STAMP =
      DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC);

  private ResultFiles() {}

  /** {@code results/<scenario>-<timestamp>} under {@code base}. */
  public static Path defaultDirectory(Path base, ScenarioSettings scenario, Instant now) {
    return base.resolve("results").resolve(scenario.name() + "-" + STAMP.format(now));
  }

  /** Writes {@code bytes} to {@code file} through a temporary file moved into place. */
  public static void writeAtomically(Path file, byte[] bytes) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.write(tmp, bytes);
    try {
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
