package io.iommulab.config.scenario;

/**
 * How an assertion compares the observed statistic with its bound: {@code lt}, {@code lte}, {@code
 * gt}, {@code gte}, {@code eq} with one bound, {@code between} with two (inclusive). Bounds are
 * inclusive exactly where the name says so ({@code lt} is strict).
 */
public enum Comparator {
  LT("lt", "<"),
  LTE("lte", "<="),
  GT("gt", ">"),
  GTE("gte", ">="),
  EQ("eq", "="),
  BETWEEN("between", "in");

  private final String configName;
  private final String symbol;

  Comparator(String configName, String symbol) {
    this.configName = configName;
    this.symbol = symbol;
  }

  public String configName() {
    return configName;
  }

  public String symbol() {
    return symbol;
  }

  /** Whether {@code observed} satisfies this comparison with {@code low} (and {@code high}). */
  public boolean test(double observed, double low, double high) {
    return switch (this) {
      case LT -> observed < low;
      case LTE -> observed <= low;
      case GT -> observed > low;
      case GTE -> observed >= low;
      case EQ -> observed == low;
      case BETWEEN -> observed >= low && observed <= high;
    };
  }
}
