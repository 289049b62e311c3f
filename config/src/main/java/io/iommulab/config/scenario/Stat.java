package io.iommulab.config.scenario;

import java.math.BigDecimal;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A statistic of a metric, as an assertion names it: {@code p50}, {@code p99.9} (any percentile
 * above 0 and up to 100), {@code min}, {@code max}, {@code mean}, {@code count}, {@code rate} (per
 * second of the measured time) or {@code ratio} (a counter over its base).
 *
 * @param kind which statistic
 * @param percentile the percentile for {@link Kind#PERCENTILE}, else 0
 */
public record Stat(Kind kind, double percentile) {

  public enum Kind {
    PERCENTILE,
    MIN,
    MAX,
    MEAN,
    COUNT,
    RATE,
    RATIO
  }

  /** What an assertion's {@code stat} may be, for problem messages. */
  public static final String EXPECTED =
      "a statistic: p50, p75, p95, p99, p99.9 (any pN from above 0 to 100), min, max, mean, count,"
          + " rate or ratio";

  private static final Pattern PERCENTILE = Pattern.compile("p([0-9]{1,3}(\\.[0-9]+)?)");

  public Stat {
    if (kind == Kind.PERCENTILE ? !(percentile > 0 && percentile <= 100) : percentile != 0) {
      throw new IllegalArgumentException("percentile " + percentile + " for " + kind);
    }
  }

  public static Stat percentile(double q) {
    return new Stat(Kind.PERCENTILE, q);
  }

  public static Stat of(Kind kind) {
    return new Stat(kind, 0);
  }

  /** The statistic {@code text} names, if any. */
  public static Optional<Stat> parse(String text) {
    Matcher m = PERCENTILE.matcher(text);
    if (m.matches()) {
      double q = Double.parseDouble(m.group(1));
      return q > 0 && q <= 100 ? Optional.of(percentile(q)) : Optional.empty();
    }
    return switch (text) {
      case "min" -> Optional.of(of(Kind.MIN));
      case "max" -> Optional.of(of(Kind.MAX));
      case "mean" -> Optional.of(of(Kind.MEAN));
      case "count" -> Optional.of(of(Kind.COUNT));
      case "rate" -> Optional.of(of(Kind.RATE));
      case "ratio" -> Optional.of(of(Kind.RATIO));
      default -> Optional.empty();
    };
  }

  /** The name as written: {@code p99.9}, {@code mean}. */
  public String name() {
    if (kind == Kind.PERCENTILE) {
      return "p" + percentileText(percentile);
    }
    return kind.name().toLowerCase(java.util.Locale.ROOT);
  }

  /** Whether the value of this statistic on a latency metric is a duration (else a plain number). */
  public boolean isLatencyValued() {
    return switch (kind) {
      case PERCENTILE, MIN, MAX, MEAN -> true;
      default -> false;
    };
  }

  /** {@code 99.9} as "99.9", {@code 50.0} as "50". */
  public static String percentileText(double q) {
    return new BigDecimal(Double.toString(q)).stripTrailingZeros().toPlainString();
  }

  @Override
  public String toString() {
    return name();
  }
}
