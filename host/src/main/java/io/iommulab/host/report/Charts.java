package io.iommulab.host.report;

import io.iommulab.config.scenario.Units;
import java.awt.Color;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import javax.imageio.ImageIO;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramIterationValue;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The plots of the HTML report, drawn with XChart into PNG and embedded as data URIs, so the
 * report needs no network and no other file. (XChart's SVG draws every glyph as a path: about
 * 300 KB a chart against some 40 KB of PNG, which a soak report with many charts cannot afford.)
 * Time series are thinned to at most {@link #MAX_POINTS} points per series (a soak has many
 * intervals); distributions are HdrHistogram percentile curves over the number of nines of the
 * percentile (0 = p0, 1 = p90, 2 = p99, 3 = p99.9), as HdrHistogram's own plots draw them.
 */
final class Charts {
  static final int WIDTH = 960;
  static final int HEIGHT = 360;
  static final int MAX_POINTS = 1000;

  static {
    if (System.getProperty("java.awt.headless") == null) {
      System.setProperty("java.awt.headless", "true");
    }
    // ImageIO's file cache registers a JVM shutdown hook per stream, which fails while a run
    // stopped by Ctrl-C writes its report from the command line's own hook.
    ImageIO.setUseCache(false);
  }

  private Charts() {}

  /** A named series of points. */
  record Series(String name, List<Double> x, List<Double> y) {}

  /** Operations per second over time, one line per operation. */
  static String throughput(List<IntervalRow> rows, List<String> operations) {
    List<Series> series = new ArrayList<>();
    for (String op : operations) {
      series.add(timeSeries(op, rows, p -> p.operations().get(op) == null ? null : p.operations().get(op).rate()));
    }
    return png(chart("Throughput over time", "time (s)", "operations per second", series, Units::number));
  }

  /** A latency percentile over time, one line per operation. */
  static String latencyOverTime(
      String title, List<IntervalRow> rows, List<String> operations,
      Function<IntervalRow.OperationPoint, Long> percentile) {
    List<Series> series = new ArrayList<>();
    for (String op : operations) {
      series.add(timeSeries(op, rows, r -> {
        IntervalRow.OperationPoint p = r.operations().get(op);
        Long v = p == null ? null : percentile.apply(p);
        return v == null ? null : (double) v;
      }));
    }
    return png(chart(title, "time (s)", "latency", series, Units::nanos));
  }

  /** Latency percentile curves (the whole run), one per operation. */
  static String distribution(String title, Map<String, Histogram> byOperation) {
    List<Series> series = new ArrayList<>();
    for (Map.Entry<String, Histogram> e : byOperation.entrySet()) {
      Histogram h = e.getValue();
      if (h == null || h.getTotalCount() == 0) {
        continue;
      }
      List<Double> x = new ArrayList<>();
      List<Double> y = new ArrayList<>();
      for (HistogramIterationValue v : h.percentiles(5)) {
        double p = v.getPercentileLevelIteratedTo();
        if (p >= 100) {
          break;
        }
        x.add(-Math.log10(1 - p / 100));
        y.add((double) v.getValueIteratedTo());
      }
      if (!x.isEmpty()) {
        series.add(new Series(e.getKey(), x, y));
      }
    }
    XYChart chart = chart(title, "percentile", "latency", series, Units::nanos);
    if (chart == null) {
      return null;
    }
    chart.getStyler().setXAxisTickMarkSpacingHint(150);
    // As many decimals as the tick has nines: with millions of samples the curve reaches past
    // 99.999%, and labels rounded to a fixed 3 decimals repeat there, which sends XChart's tick
    // spacing search round forever.
    chart.getStyler().setxAxisTickLabelsFormattingFunction(nines -> percentileLabel(100 - 100 * Math.pow(10, -nines),
        Math.max(3, (int) Math.ceil(nines) + 1)));
    return png(chart);
  }

  static String percentileLabel(double p) {
    return Units.number(Math.round(p * 1000) / 1000.0) + "%";
  }

  /** {@code p} with at most {@code decimals} decimals, trailing zeros dropped. */
  static String percentileLabel(double p, int decimals) {
    if (decimals <= 3) {
      return percentileLabel(p);
    }
    return new java.math.BigDecimal(p).setScale(Math.min(decimals, 15), java.math.RoundingMode.HALF_EVEN)
        .stripTrailingZeros().toPlainString() + "%";
  }

  private static Series timeSeries(String name, List<IntervalRow> rows, Function<IntervalRow, Double> value) {
    int step = Math.max(1, (rows.size() + MAX_POINTS - 1) / MAX_POINTS);
    List<Double> x = new ArrayList<>();
    List<Double> y = new ArrayList<>();
    for (int i = 0; i < rows.size(); i += step) {
      IntervalRow r = rows.get(i);
      Double v = value.apply(r);
      if (v != null) {
        x.add(r.endSeconds());
        y.add(v);
      }
    }
    return new Series(name, x, y);
  }

  /** A line chart of the non-empty series; null if every series is empty. */
  private static XYChart chart(
      String title, String xTitle, String yTitle, List<Series> series, Function<Double, String> yLabels) {
    List<Series> drawn = series.stream().filter(s -> !s.x().isEmpty()).toList();
    if (drawn.isEmpty()) {
      return null;
    }
    XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title)
        .xAxisTitle(xTitle).yAxisTitle(yTitle).build();
    chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
    chart.getStyler().setChartBackgroundColor(Color.WHITE);
    chart.getStyler().setPlotGridLinesColor(new Color(230, 230, 230));
    chart.getStyler().setyAxisTickLabelsFormattingFunction(yLabels);
    for (Series s : drawn) {
      XYSeries xy = chart.addSeries(s.name(), s.x(), s.y());
      xy.setMarker(s.x().size() == 1 ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
    }
    return chart;
  }

  /** The prefix of every chart's data URI. */
  static final String DATA_URI = "data:image/png;base64,";

  /** The chart as a PNG data URI; null for no chart. */
  private static String png(XYChart chart) {
    if (chart == null) {
      return null;
    }
    try {
      return DATA_URI + Base64.getEncoder().encodeToString(BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
    } catch (IOException e) {
      throw new IllegalStateException("PNG rendering failed", e);
    }
  }

  /** The image bytes of a data URI made by this class (tests). */
  static byte[] imageBytes(String dataUri) {
    return Base64.getDecoder().decode(dataUri.substring(dataUri.indexOf(',') + 1));
  }
}
