package io.iommulab.config.scenario;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;

/** How results and problems write durations, sizes, rates and plain numbers for a person. */
public final class Units {
  private Units() {}

  private static final long[] NANOS = {86_400_000_000_000L, 3_600_000_000_000L, 60_000_000_000L,
      1_000_000_000L, 1_000_000L, 1_000L, 1L};
  private static final String[] NANO_UNITS = {"d", "h", "m", "s", "ms", "us", "ns"};

  /**
   * A duration in the largest unit that keeps it at least 1, with up to 3 significant decimals:
   * {@code 20us}, {@code 1.5ms}, {@code 250ns}, {@code 2m}: HOCON duration syntax, so a value
   * can be copied into a scenario.
   */
  public static String nanos(double ns) {
    if (ns == 0) {
      return "0s";
    }
    double abs = Math.abs(ns);
    for (int i = 0; i < NANOS.length; i++) {
      if (abs >= NANOS[i] || i == NANOS.length - 1) {
        return number(ns / NANOS[i]) + NANO_UNITS[i];
      }
    }
    throw new AssertionError();
  }

  /** A byte count: {@code 64GiB}, {@code 4KiB}, {@code 1.5MiB}, {@code 100B}. */
  public static String bytes(long bytes) {
    String[] units = {"EiB", "PiB", "TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < units.length; i++) {
      long unit = 1L << (10 * (units.length - i));
      if (Math.abs(bytes) >= unit) {
        return number((double) bytes / unit) + units[i];
      }
    }
    return bytes + "B";
  }

  /** A rate per second: {@code 100/s}, {@code 0.5/s}. */
  public static String rate(double perSecond) {
    return number(perSecond) + "/s";
  }

  /**
   * A plain number: integers as such ({@code 1200}), others with 3 decimals ({@code 12.3}, {@code
   * 2523.15}) or, below 1, 3 significant digits ({@code 0.125}, {@code 0.0005}), trailing zeros
   * dropped.
   */
  public static String number(double v) {
    if (Double.isNaN(v) || Double.isInfinite(v)) {
      return Double.toString(v);
    }
    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
      return Long.toString((long) v);
    }
    BigDecimal d = new BigDecimal(v);
    d = Math.abs(v) >= 1
        ? d.setScale(3, RoundingMode.HALF_EVEN)
        : d.round(new MathContext(3, RoundingMode.HALF_EVEN));
    return d.stripTrailingZeros().toPlainString();
  }
}
