package io.iommulab.host.cli;

import io.iommulab.config.scenario.Units;
import java.io.PrintStream;
import java.util.Locale;

/**
 * The progress of a run on stderr: elapsed over duration, operations per second over the last
 * interval, violations so far. On a terminal ({@link Mode#BAR}) one line redrawn in place;
 * otherwise ({@link Mode#LINES}, a CI log) one line every {@code lineEveryNanos}. Thread-safe:
 * the results thread updates it, a ticker redraws it.
 */
public final class ProgressBar {

  /** How progress is shown. */
  public enum Mode {
    /** A bar on a terminal, else lines. */
    AUTO,
    /** One line redrawn in place (carriage return). */
    BAR,
    /** A line now and then, for logs. */
    LINES,
    /** Nothing. */
    OFF
  }

  static final int WIDTH = 30;

  private final PrintStream out;
  private final Mode mode;
  private final long durationNanos;
  private final long lineEveryNanos;
  private long elapsedNanos;
  private double opsPerSecond;
  private long violations;
  private long lastLineNanos;
  private boolean anyLine;
  private int drawnWidth;

  /**
   * @param mode BAR, LINES or OFF ({@link Mode#AUTO} resolved by the caller)
   * @param lineEveryNanos how often LINES prints
   */
  public ProgressBar(PrintStream out, Mode mode, long durationNanos, long lineEveryNanos) {
    if (mode == Mode.AUTO) {
      throw new IllegalArgumentException("resolve AUTO first");
    }
    this.out = out;
    this.mode = mode;
    this.durationNanos = durationNanos;
    this.lineEveryNanos = lineEveryNanos;
  }

  /** An interval ended: new throughput, elapsed time, violation total. */
  public synchronized void update(long elapsedNanos, double opsPerSecond, long violations) {
    this.elapsedNanos = Math.max(this.elapsedNanos, elapsedNanos);
    this.opsPerSecond = opsPerSecond;
    this.violations = violations;
    if (mode == Mode.BAR) {
      draw();
    } else if (mode == Mode.LINES && (!anyLine || this.elapsedNanos - lastLineNanos >= lineEveryNanos)) {
      anyLine = true;
      lastLineNanos = this.elapsedNanos;
      out.println(line());
      out.flush();
    }
  }

  /** Time passes between intervals (the ticker): the bar's clock moves. */
  public synchronized void tick(long elapsedNanos) {
    this.elapsedNanos = Math.max(this.elapsedNanos, Math.min(elapsedNanos, durationNanos));
    if (mode == Mode.BAR) {
      draw();
    }
  }

  /** The run is over: ends the bar's line. */
  public synchronized void finish() {
    if (mode == Mode.BAR) {
      draw();
      out.println();
      out.flush();
    } else if (mode == Mode.LINES && (!anyLine || elapsedNanos != lastLineNanos)) {
      out.println(line());
      out.flush();
    }
  }

  private void draw() {
    String line = line();
    StringBuilder b = new StringBuilder("\r").append(line);
    for (int i = line.length(); i < drawnWidth; i++) {
      b.append(' ');
    }
    drawnWidth = line.length();
    out.print(b);
    out.flush();
  }

  /** {@code [=========>          ]  12.0s / 30s   48210 ops/s   violations 0}. */
  synchronized String line() {
    double fraction = durationNanos <= 0 ? 1 : Math.min(1, (double) elapsedNanos / durationNanos);
    int filled = (int) Math.round(fraction * WIDTH);
    StringBuilder b = new StringBuilder("[");
    for (int i = 0; i < WIDTH; i++) {
      b.append(i < filled - 1 || (i == filled - 1 && filled == WIDTH) ? '=' : i == filled - 1 ? '>' : ' ');
    }
    b.append("] ").append(String.format(Locale.ROOT, "%5.1fs", elapsedNanos / 1e9)).append(" / ")
        .append(Units.nanos(durationNanos)).append(String.format(Locale.ROOT, "  %3.0f%%", fraction * 100))
        .append("  ").append(Units.number(Math.round(opsPerSecond))).append(" ops/s")
        .append("  violations ").append(violations);
    return b.toString();
  }
}
