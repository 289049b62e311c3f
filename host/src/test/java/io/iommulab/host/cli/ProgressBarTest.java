package io.iommulab.host.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
  private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
  private final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);

  private String text() {
    return bytes.toString(StandardCharsets.UTF_8);
  }

  @Test
  void theLineShowsElapsedOverDurationThroughputAndViolations() {
    ProgressBar bar = new ProgressBar(out, ProgressBar.Mode.LINES, 30_000_000_000L, 1);
    bar.update(12_000_000_000L, 48_210.4, 2);
    assertEquals("[===========>                  ]  12.0s / 30s   40%  48210 ops/s  violations 2", bar.line());
  }

  @Test
  void aBarRedrawsItsLineInPlace() {
    ProgressBar bar = new ProgressBar(out, ProgressBar.Mode.BAR, 10_000_000_000L, 1);
    bar.update(1_000_000_000L, 100, 0);
    bar.tick(2_000_000_000L);
    bar.finish();
    String t = text();
    assertEquals(3, t.chars().filter(c -> c == '\r').count());
    assertTrue(t.endsWith(System.lineSeparator()));
    assertTrue(t.contains("  2.0s / 10s"), t);
  }

  @Test
  void linesArePrintedAtMostOncePerPeriodAndOnceAtTheEnd() {
    ProgressBar bar = new ProgressBar(out, ProgressBar.Mode.LINES, 10_000_000_000L, 5_000_000_000L);
    for (long s = 1; s <= 9; s++) {
      bar.update(s * 1_000_000_000L, 10, 0);
    }
    bar.finish();
    List<String> lines = text().lines().toList();
    assertEquals(3, lines.size(), text());
    assertTrue(lines.get(0).contains("  1.0s / 10s"), lines.get(0));
    assertTrue(lines.get(1).contains("  6.0s / 10s"), lines.get(1));
    assertTrue(lines.get(2).contains("  9.0s / 10s"), lines.get(2));
  }

  @Test
  void offPrintsNothing() {
    ProgressBar bar = new ProgressBar(out, ProgressBar.Mode.OFF, 10, 1);
    bar.update(5, 1, 1);
    bar.finish();
    assertEquals("", text());
  }
}
