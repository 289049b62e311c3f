package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;
import java.util.function.Function;
import java.util.function.LongPredicate;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * INTERNAL API. Reads one HOCON object, knows the key path of every value it reads, and records
 * every problem instead of throwing, so a builder can report all of them at once.
 *
 * <p>A reader is a stack of layers, most specific first: a unit entry of {@code units} over the
 * {@code unit-defaults.<kind>} object, a device over {@code device-defaults}. A key is read from
 * the first layer that has it (an explicit {@code null} hides the layers below), and a problem with
 * a value names the path where that value was written, so a bad default is reported once, at the
 * default's path, however many entries inherit it.
 *
 * <p>Every problem has the form {@code <full key path> = <value>: <rule broken>} or, for a missing
 * key, {@code <full key path>: missing (required, <what is expected>)}. The getters return an empty
 * optional when the key is missing or its value is wrong; the problem is already recorded then.
 * {@link #mark()} and {@link #failedSince(int)} tell a builder whether anything it read was wrong.
 */
final class ConfigReader {

  /** What an integer must be, and the words that say so ({@code must be from 1 to 64}). */
  record Rule(LongPredicate test, String text) {

    static Rule any() {
      return new Rule(v -> true, "");
    }

    static Rule between(long lo, long hi) {
      return new Rule(v -> v >= lo && v <= hi, "must be from " + lo + " to " + hi);
    }

    static Rule atLeast(long lo) {
      return new Rule(v -> v >= lo, "must be at least " + lo);
    }

    static Rule powerOfTwoBetween(long lo, long hi) {
      return new Rule(
          v -> v >= lo && v <= hi && Long.bitCount(v) == 1,
          "must be a power of two from " + lo + " to " + hi);
    }
  }

  /**
   * Problems of one build, in the order found, each once. {@link #reports} also counts repeats,
   * so {@link #failedSince} sees a problem even when its text was already recorded.
   */
  static final class Problems {
    private final Set<String> problems = new LinkedHashSet<>();
    private int reports;

    void add(String problem) {
      reports++;
      problems.add(problem);
    }

    /** Throws one {@link SettingsException} naming every problem, if there is any. */
    void throwIfAny() {
      if (!problems.isEmpty()) {
        throw new SettingsException(List.copyOf(problems));
      }
    }
  }

  /** One source of values and the key path under which its keys are named. */
  private record Layer(ConfigObject object, String path) {}

  /** A value and the layer it was found in. */
  private record Found(ConfigValue value, int layer) {}

  static final String INTEGER = "an integer";
  static final String SIZE = "a size in bytes (a number, 0x hex, or with a unit such as 4K, 2M, 64GiB)";
  static final String DURATION = "a duration with a unit (such as 5ns, 2us, 1ms)";
  static final String BOOLEAN = "on or off";
  static final String ADDRESS = "an address (a number or a hex string such as \"0xffe044000\")";

  private static final Pattern PLAIN = Pattern.compile("[^\\s\"'{}\\[\\],=#]+");
  private static final Pattern BARE_NUMBER = Pattern.compile("\\s*[-+]?[0-9]+(\\.[0-9]*)?\\s*");
  private static final Pattern DECIMAL =
      Pattern.compile("[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  private static final int MAX_RENDERED = 80;

  private final List<Layer> layers;
  private final Problems problems;
  private final boolean reportMissing;

  private ConfigReader(List<Layer> layers, Problems problems, boolean reportMissing) {
    this.layers = List.copyOf(layers);
    this.problems = problems;
    this.reportMissing = reportMissing;
  }

  /** A reader of {@code config}, whose keys are named under {@code path} ("" for a root). */
  static ConfigReader of(Config config, String path, Problems problems) {
    return new ConfigReader(List.of(new Layer(config.root(), path)), problems, true);
  }

  /** A reader of {@code config} with a fresh problem list. */
  static ConfigReader of(Config config, String path) {
    return of(config, path, new Problems());
  }

  Problems problems() {
    return problems;
  }

  /** This reader with {@code fallback}'s layers under its own: defaults for omitted keys. */
  ConfigReader withFallback(ConfigReader fallback) {
    List<Layer> all = new ArrayList<>(layers);
    all.addAll(fallback.layers);
    return new ConfigReader(all, problems, reportMissing);
  }

  /** This reader where a missing key is not a problem: a defaults section may be partial. */
  ConfigReader partial() {
    return new ConfigReader(layers, problems, false);
  }

  /** The key path of this reader's own (most specific) object. */
  String path() {
    return layers.get(0).path();
  }

  /** The full key path of {@code key} in this reader's own object. */
  String path(String key) {
    return join(path(), key);
  }

  int mark() {
    return problems.reports;
  }

  /** Whether any problem was reported (by any reader of this build) after {@code mark}. */
  boolean failedSince(int mark) {
    return problems.reports != mark;
  }

  /** Whether {@code key} has a non-null value in some layer. */
  boolean has(String key) {
    return find(key) != null;
  }

  // ---------------------------------------------------------------------------------- problems

  /** Records a problem with {@code key}'s value, at the path where that value was written. */
  void problem(String key, String rule) {
    Found f = find(key);
    if (f == null) {
      problems.add(path(key) + ": " + rule);
    } else {
      problems.add(join(layers.get(f.layer()).path(), key) + " = " + render(f.value()) + ": " + rule);
    }
  }

  /**
   * Records a problem of this entry's {@code key}, a rule that involves the entry as a whole or
   * other entries: named at this entry's path even when the value is inherited, with a note of
   * where it was inherited from.
   */
  void entryProblem(String key, String rule) {
    Found f = find(key);
    if (f == null) {
      problems.add(path(key) + ": " + rule);
      return;
    }
    String inherited =
        f.layer() == 0 ? "" : " (inherited from " + join(layers.get(f.layer()).path(), key) + ")";
    problems.add(path(key) + " = " + render(f.value()) + ": " + rule + inherited);
  }

  /** Records {@code key} as missing although required; {@code expected} says what it should be. */
  void missing(String key, String expected) {
    problems.add(path(key) + ": missing (required, " + expected + ")");
  }

  /** Records {@code key} as missing although required {@code because} of another setting. */
  void missingBecause(String key, String because, String expected) {
    problems.add(path(key) + ": missing (required " + because + ", " + expected + ")");
  }

  /** Records a problem with a whole value given as text (a list's size, a derived value). */
  void problemWithValue(String key, String shownValue, String rule) {
    problems.add(path(key) + " = " + shownValue + ": " + rule);
  }

  /**
   * Records every key of this reader's own object that is not in {@code known}: a misspelt key
   * would otherwise be silently ignored and its default used.
   */
  void checkKnownKeys(Collection<String> known, String whatTakesThem) {
    ConfigObject own = layers.get(0).object();
    for (String key : own.keySet()) {
      if (!known.contains(key)) {
        problems.add(
            path(key)
                + " = "
                + render(own.get(key))
                + ": unknown key ("
                + whatTakesThem
                + " takes "
                + String.join(", ", known)
                + ")");
      }
    }
  }

  // ------------------------------------------------------------------------------------ getters

  /** An integer (decimal or {@code 0x} hex) in the range of {@code int} that obeys {@code rule}. */
  OptionalInt getInt(String key, Rule rule) {
    Found f = require(key, INTEGER);
    if (f == null) {
      return OptionalInt.empty();
    }
    Long v = integerOf(f.value());
    if (v == null || v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
      report(key, f, "must be " + INTEGER + (v == null ? "" : " that fits in 32 bits"));
      return OptionalInt.empty();
    }
    if (!rule.test().test(v)) {
      report(key, f, rule.text());
      return OptionalInt.empty();
    }
    return OptionalInt.of((int) (long) v);
  }

  /** A 64-bit integer (decimal or {@code 0x} hex) that obeys {@code rule}. */
  OptionalLong getLong(String key, Rule rule) {
    return getParsed(key, INTEGER, ConfigReader::integerOf, rule);
  }

  /**
   * A size in bytes: a number, a {@code 0x} hex string, or HOCON size syntax ({@code 4K},
   * {@code 2MiB}, {@code 64GiB}; note that {@code 64GB} is 64·10^9, not 64 GiB).
   */
  OptionalLong getBytes(String key, Rule rule) {
    return getParsed(key, SIZE, ConfigReader::bytesOf, rule);
  }

  /**
   * A duration in nanoseconds, in HOCON duration syntax. A bare number is refused: Typesafe
   * Config would read it as milliseconds, a million times what a cost in this model usually is.
   */
  OptionalLong getNanos(String key, Rule rule) {
    Found f = require(key, DURATION);
    if (f == null) {
      return OptionalLong.empty();
    }
    Object v = nanosOf(f.value());
    if (v instanceof String why) {
      report(key, f, why);
      return OptionalLong.empty();
    }
    return check(key, f, (Long) v, rule);
  }

  /**
   * A physical address: a non-negative number, or a string in hex ({@code "0xffe044000"}, the
   * full unsigned 64-bit range) or decimal.
   */
  OptionalLong getAddress(String key, Rule rule) {
    return getParsed(key, ADDRESS, ConfigReader::addressOf, rule);
  }

  /** A boolean: {@code on/off}, {@code true/false} or {@code yes/no}. */
  Optional<Boolean> getBoolean(String key) {
    Found f = require(key, BOOLEAN);
    if (f == null) {
      return Optional.empty();
    }
    ConfigValue value = f.value();
    Boolean b = null;
    if (value.valueType() == ConfigValueType.BOOLEAN) {
      b = (Boolean) value.unwrapped();
    } else if (value.valueType() == ConfigValueType.STRING) {
      switch ((String) value.unwrapped()) {
        case "on", "true", "yes" -> b = Boolean.TRUE;
        case "off", "false", "no" -> b = Boolean.FALSE;
        default -> b = null;
      }
    }
    if (b == null) {
      report(key, f, "must be " + BOOLEAN);
      return Optional.empty();
    }
    return Optional.of(b);
  }

  /** One of {@code values}, by the HOCON spelling {@code configName} gives it. */
  <E extends Enum<E>> Optional<E> getEnum(String key, E[] values, Function<E, String> configName) {
    List<String> names = new ArrayList<>();
    for (E e : values) {
      names.add(configName.apply(e));
    }
    String expected = "one of " + String.join(", ", names);
    Found f = require(key, expected);
    if (f == null) {
      return Optional.empty();
    }
    String text = scalarText(f.value());
    if (text != null) {
      for (E e : values) {
        if (configName.apply(e).equals(text)) {
          return Optional.of(e);
        }
      }
    }
    report(key, f, "must be " + expected);
    return Optional.empty();
  }

  /** A scalar as text that {@code ok} accepts; {@code expected} names what it must be. */
  Optional<String> getString(String key, Predicate<String> ok, String expected) {
    return getString(key, ok, expected, expected);
  }

  /**
   * A scalar as text that {@code ok} accepts; {@code expected} names it when missing, {@code
   * mustBe} (which may add detail) when wrong.
   */
  Optional<String> getString(String key, Predicate<String> ok, String expected, String mustBe) {
    Found f = require(key, expected);
    if (f == null) {
      return Optional.empty();
    }
    String text = scalarText(f.value());
    if (text == null || !ok.test(text)) {
      report(key, f, "must be " + mustBe);
      return Optional.empty();
    }
    return Optional.of(text);
  }

  /** A list of sizes (see {@link #getBytes}), each checked by {@code rule} at {@code key[i]}. */
  Optional<List<Long>> getBytesList(String key, Rule rule) {
    return getLongList(
        key,
        "a list of sizes such as [4K, 2M, 1G]",
        element -> {
          Long v = bytesOf(element);
          return v == null ? "must be " + SIZE : v;
        },
        rule);
  }

  /**
   * A number (integer or decimal, or a decimal string) from {@code lo} to {@code hi}; {@code
   * expected} names what it is ("a fraction from 0 to 1").
   */
  OptionalDouble getDouble(String key, double lo, double hi, String expected) {
    Found f = require(key, expected);
    if (f == null) {
      return OptionalDouble.empty();
    }
    Double v = doubleOf(f.value());
    if (v == null || v < lo || v > hi) {
      report(key, f, "must be " + expected);
      return OptionalDouble.empty();
    }
    return OptionalDouble.of(v);
  }

  /** A list of scalars as text, each accepted by {@code ok}, each problem named {@code key[i]}. */
  Optional<List<String>> getStringList(String key, Predicate<String> ok, String expected) {
    ListAt at = requireList(key, "a list of " + expected);
    if (at == null) {
      return Optional.empty();
    }
    String listPath = at.path();
    ConfigList list = at.list();
    List<String> out = new ArrayList<>(list.size());
    boolean ok2 = true;
    for (int i = 0; i < list.size(); i++) {
      String text = scalarText(list.get(i));
      if (text == null || !ok.test(text)) {
        problems.add(listPath + "[" + i + "] = " + render(list.get(i)) + ": must be " + expected);
        ok2 = false;
      } else {
        out.add(text);
      }
    }
    return ok2 ? Optional.of(out) : Optional.empty();
  }

  /** A list of durations (see {@link #getNanos}), each checked by {@code rule} at {@code key[i]}. */
  Optional<List<Long>> getNanosList(String key, Rule rule) {
    return getLongList(
        key, "a list of durations such as [2s, 10s]", ConfigReader::nanosOf, rule);
  }

  /** The type of {@code key}'s value in the first layer that has it; empty when missing. */
  Optional<ConfigValueType> typeOf(String key) {
    Found f = find(key);
    return f == null ? Optional.empty() : Optional.of(f.value().valueType());
  }

  /**
   * The object under {@code key}, with the same key from every lower layer as its fallback (HOCON
   * object merge). Empty, without a problem, when no layer has it.
   */
  Optional<ConfigReader> getObject(String key) {
    List<Layer> children = new ArrayList<>();
    for (int i = 0; i < layers.size(); i++) {
      ConfigValue v = layers.get(i).object().get(key);
      if (v == null) {
        continue;
      }
      if (v.valueType() == ConfigValueType.NULL) {
        break;
      }
      if (v.valueType() != ConfigValueType.OBJECT) {
        problems.add(join(layers.get(i).path(), key) + " = " + render(v) + ": must be an object");
        return Optional.empty();
      }
      children.add(new Layer((ConfigObject) v, join(layers.get(i).path(), key)));
    }
    if (children.isEmpty()) {
      return Optional.empty();
    }
    return Optional.of(new ConfigReader(children, problems, reportMissing));
  }

  /** Like {@link #getObject} but a missing object is a problem. */
  Optional<ConfigReader> requireObject(String key, String expected) {
    if (find(key) == null) {
      if (reportMissing) {
        missing(key, expected);
      }
      return Optional.empty();
    }
    return getObject(key);
  }

  /**
   * The objects of the list under {@code key}, each read on its own and named {@code key[i]}; an
   * element that is not an object is reported and is {@code null} in the result. Lists do not
   * merge: the list comes whole from the first layer that has it.
   */
  Optional<List<ConfigReader>> getObjectList(String key, String expected) {
    ListAt at = requireList(key, expected);
    if (at == null) {
      return Optional.empty();
    }
    String listPath = at.path();
    ConfigList list = at.list();
    List<ConfigReader> out = new ArrayList<>(list.size());
    for (int i = 0; i < list.size(); i++) {
      ConfigValue element = list.get(i);
      String elementPath = listPath + "[" + i + "]";
      if (element.valueType() != ConfigValueType.OBJECT) {
        // Reported and kept as null, so indexes still match; the other elements are still read.
        problems.add(elementPath + " = " + render(element) + ": must be an object { ... }");
        out.add(null);
      } else {
        out.add(
            new ConfigReader(
                List.of(new Layer((ConfigObject) element, elementPath)), problems, reportMissing));
      }
    }
    return Optional.of(out);
  }

  // ----------------------------------------------------------------------------------- helpers

  private Found find(String key) {
    for (int i = 0; i < layers.size(); i++) {
      ConfigValue v = layers.get(i).object().get(key);
      if (v == null) {
        continue;
      }
      if (v.valueType() == ConfigValueType.NULL) {
        return null;
      }
      return new Found(v, i);
    }
    return null;
  }

  private Found require(String key, String expected) {
    Found f = find(key);
    if (f == null && reportMissing) {
      missing(key, expected);
    }
    return f;
  }

  private void report(String key, Found f, String rule) {
    problems.add(join(layers.get(f.layer()).path(), key) + " = " + render(f.value()) + ": " + rule);
  }

  /**
   * The reader behind {@link #getLong}, {@link #getBytes} and {@link #getAddress}: {@code parse}
   * gives the value, or null when it is not {@code kind} (then "must be {@code kind}").
   */
  private OptionalLong getParsed(
      String key, String kind, Function<ConfigValue, Long> parse, Rule rule) {
    Found f = require(key, kind);
    if (f == null) {
      return OptionalLong.empty();
    }
    Long v = parse.apply(f.value());
    if (v == null) {
      report(key, f, "must be " + kind);
      return OptionalLong.empty();
    }
    return check(key, f, v, rule);
  }

  /** A list found under {@code key} and the path its elements are named by ({@code path[i]}). */
  private record ListAt(ConfigList list, String path) {}

  /** The list under {@code key}, or null when it is missing or not a list (then reported). */
  private ListAt requireList(String key, String expected) {
    Found f = require(key, expected);
    if (f == null) {
      return null;
    }
    if (f.value().valueType() != ConfigValueType.LIST) {
      report(key, f, "must be " + expected);
      return null;
    }
    return new ListAt((ConfigList) f.value(), join(layers.get(f.layer()).path(), key));
  }

  /**
   * A list of numbers, each checked by {@code rule} at {@code key[i]}: {@code parse} gives an
   * element's value (a {@code Long}) or the rule it breaks (a {@code String}, as {@link #nanosOf}).
   * Every bad element is reported, not only the first.
   */
  private Optional<List<Long>> getLongList(
      String key, String expected, Function<ConfigValue, Object> parse, Rule rule) {
    ListAt at = requireList(key, expected);
    if (at == null) {
      return Optional.empty();
    }
    ConfigList list = at.list();
    List<Long> out = new ArrayList<>(list.size());
    boolean ok = true;
    for (int i = 0; i < list.size(); i++) {
      ConfigValue element = list.get(i);
      String elementPath = at.path() + "[" + i + "] = " + render(element) + ": ";
      Object v = parse.apply(element);
      if (v instanceof String why) {
        problems.add(elementPath + why);
        ok = false;
      } else if (!rule.test().test((Long) v)) {
        problems.add(elementPath + rule.text());
        ok = false;
      } else {
        out.add((Long) v);
      }
    }
    return ok ? Optional.of(out) : Optional.empty();
  }

  private OptionalLong check(String key, Found f, long v, Rule rule) {
    if (!rule.test().test(v)) {
      report(key, f, rule.text());
      return OptionalLong.empty();
    }
    return OptionalLong.of(v);
  }

  /**
   * A HOCON duration in nanoseconds (a {@code Long}), or the rule it breaks (a {@code String}). A
   * bare number is refused: Typesafe Config would read it as milliseconds, a million times what a
   * cost in this model usually is.
   */
  private static Object nanosOf(ConfigValue value) {
    if (value.valueType() == ConfigValueType.NUMBER
        || (value.valueType() == ConfigValueType.STRING
            && BARE_NUMBER.matcher((String) value.unwrapped()).matches())) {
      return "must be " + DURATION + "; a bare number would mean milliseconds";
    }
    if (value.valueType() != ConfigValueType.STRING) {
      return "must be " + DURATION;
    }
    try {
      Duration d = ConfigFactory.empty().withValue("v", value).getDuration("v");
      return d.toNanos();
    } catch (ConfigException.BadValue | ConfigException.WrongType e) {
      return "must be " + DURATION;
    } catch (ArithmeticException e) {
      return "must be at most " + Long.MAX_VALUE + "ns";
    }
  }

  private static Double doubleOf(ConfigValue value) {
    if (value.valueType() == ConfigValueType.NUMBER) {
      double d = ((Number) value.unwrapped()).doubleValue();
      return Double.isFinite(d) ? d : null;
    }
    if (value.valueType() == ConfigValueType.STRING) {
      String s = ((String) value.unwrapped()).trim();
      if (!DECIMAL.matcher(s).matches()) {
        return null;
      }
      double d = Double.parseDouble(s);
      return Double.isFinite(d) ? d : null;
    }
    return null;
  }

  /** A byte count as a reader would write it: {@code 64GiB}, {@code 4KiB}, else bytes. */
  static String bytesText(long bytes) {
    String[] units = {"EiB", "PiB", "TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < units.length; i++) {
      long unit = 1L << (10 * (units.length - i));
      if (bytes != 0 && bytes % unit == 0) {
        return (bytes / unit) + units[i];
      }
    }
    return bytes + " bytes";
  }

  static String join(String path, String key) {
    return path.isEmpty() ? key : path + "." + key;
  }

  /** A value as the user wrote it: plain strings unquoted, anything odd quoted, long ones cut. */
  static String render(ConfigValue value) {
    String text;
    if (value.valueType() == ConfigValueType.STRING) {
      String s = (String) value.unwrapped();
      text = PLAIN.matcher(s).matches() ? s : value.render(ConfigRenderOptions.concise());
    } else if (value.valueType() == ConfigValueType.LIST) {
      StringBuilder b = new StringBuilder("[");
      ConfigList list = (ConfigList) value;
      for (int i = 0; i < list.size(); i++) {
        b.append(i == 0 ? "" : ", ").append(render(list.get(i)));
      }
      text = b.append(']').toString();
    } else {
      text = value.render(ConfigRenderOptions.concise());
    }
    return text.length() <= MAX_RENDERED ? text : text.substring(0, MAX_RENDERED - 3) + "...";
  }

  private static String scalarText(ConfigValue value) {
    return switch (value.valueType()) {
      case STRING, NUMBER, BOOLEAN -> value.unwrapped().toString();
      default -> null;
    };
  }

  /** A signed integer from a number or a decimal or 0x-hex string; null if it is not one. */
  private static Long integerOf(ConfigValue value) {
    if (value.valueType() == ConfigValueType.NUMBER) {
      Object n = value.unwrapped();
      return n instanceof Integer || n instanceof Long ? ((Number) n).longValue() : null;
    }
    if (value.valueType() == ConfigValueType.STRING) {
      return parseInteger(((String) value.unwrapped()).trim(), false);
    }
    return null;
  }

  private static Long addressOf(ConfigValue value) {
    if (value.valueType() == ConfigValueType.NUMBER) {
      Object n = value.unwrapped();
      if (n instanceof Integer || n instanceof Long) {
        long v = ((Number) n).longValue();
        return v >= 0 ? v : null;
      }
      return null;
    }
    if (value.valueType() == ConfigValueType.STRING) {
      Long v = parseInteger(((String) value.unwrapped()).trim(), true);
      return v;
    }
    return null;
  }

  private static Long bytesOf(ConfigValue value) {
    if (value.valueType() == ConfigValueType.STRING) {
      String s = ((String) value.unwrapped()).trim();
      if (s.startsWith("0x") || s.startsWith("0X")) {
        return parseInteger(s, false);
      }
    }
    if (value.valueType() != ConfigValueType.STRING && value.valueType() != ConfigValueType.NUMBER) {
      return null;
    }
    try {
      return ConfigFactory.empty().withValue("v", value).getBytes("v");
    } catch (ConfigException.BadValue | ConfigException.WrongType e) {
      return null;
    }
  }

  /**
   * Decimal, or {@code 0x} hex. With {@code unsigned}, hex may use all 64 bits (an address above
   * 2^63 is a valid IOVA or physical address) and negative decimals are refused.
   */
  private static Long parseInteger(String s, boolean unsigned) {
    try {
      if (s.startsWith("0x") || s.startsWith("0X")) {
        String hex = s.substring(2).replace("_", "");
        if (hex.isEmpty() || hex.charAt(0) == '+' || hex.charAt(0) == '-') {
          return null;
        }
        return unsigned ? Long.parseUnsignedLong(hex, 16) : Long.parseLong(hex, 16);
      }
      long v = Long.parseLong(s);
      return unsigned && v < 0 ? null : v;
    } catch (NumberFormatException e) {
      return null;
    }
  }
}
