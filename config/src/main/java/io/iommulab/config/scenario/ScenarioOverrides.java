package io.iommulab.config.scenario;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueFactory;
import com.typesafe.config.ConfigValueType;
import io.iommulab.config.SettingsException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Command-line overrides of scenario keys ({@code -Dkey=value}). A key is a path under {@code
 * scenario} (the prefix {@code scenario.} may be given or not) in the notation problems use, list
 * elements by index: {@code duration}, {@code tenants[1].vms}, {@code
 * tenants[0].workload.map.rate}, {@code topology.host-memory}. A value is read as a HOCON value
 * ({@code 10s}, {@code 4}, {@code [4K, 2M]}, {@code {read = 1}}), or as a string when it is not one
 * ({@code "00:02.0"}). Overrides are applied in the order given, before validation, so an
 * overridden value is checked like a written one.
 */
public final class ScenarioOverrides {
  private static final Pattern SEGMENT = Pattern.compile("([a-zA-Z0-9_-]+)((\\[[0-9]+\\])*)");
  private static final Pattern INDEX = Pattern.compile("\\[([0-9]+)\\]");

  private ScenarioOverrides() {}

  /**
   * {@code file} with {@code overrides} applied.
   *
   * @throws SettingsException naming every override that could not be applied (a malformed key,
   *     an index past the end of a list, a path through something that is not an object or list)
   */
  public static Config apply(Config file, Map<String, String> overrides) {
    List<String> problems = new ArrayList<>();
    Config out = file;
    for (Map.Entry<String, String> o : overrides.entrySet()) {
      String key = o.getKey().startsWith(ScenarioSettings.PATH + ".")
          ? o.getKey()
          : ScenarioSettings.PATH + "." + o.getKey();
      List<Object> path = parse(key);
      if (path == null) {
        problems.add(
            key + " (from -D" + o.getKey() + "): not a key path such as duration or tenants[0].vms");
        continue;
      }
      try {
        ConfigValue updated = set(out.root(), path, 0, value(o.getValue()), key, o.getKey());
        out = ((ConfigObject) updated).toConfig();
      } catch (IllegalArgumentException e) {
        problems.add(e.getMessage());
      }
    }
    if (!problems.isEmpty()) {
      throw new SettingsException(problems);
    }
    return out;
  }

  /** The segments of {@code key}: Strings for keys, Integers for list indexes; null if malformed. */
  static List<Object> parse(String key) {
    List<Object> out = new ArrayList<>();
    for (String part : key.split("\\.", -1)) {
      Matcher m = SEGMENT.matcher(part);
      if (!m.matches()) {
        return null;
      }
      out.add(m.group(1));
      Matcher i = INDEX.matcher(m.group(2));
      while (i.find()) {
        try {
          out.add(Integer.parseInt(i.group(1)));
        } catch (NumberFormatException e) {
          return null;
        }
      }
    }
    return out;
  }

  private static ConfigValue value(String raw) {
    try {
      return ConfigFactory.parseString("v = " + raw).getValue("v");
    } catch (ConfigException e) {
      return ConfigValueFactory.fromAnyRef(raw, "command-line override");
    }
  }

  private static ConfigValue set(
      ConfigValue node, List<Object> path, int at, ConfigValue value, String key, String given) {
    if (at == path.size()) {
      return value;
    }
    Object segment = path.get(at);
    String where = shown(path, at);
    if (segment instanceof String k) {
      ConfigObject object;
      if (node == null) {
        object = ConfigFactory.empty().root();
      } else if (node.valueType() == ConfigValueType.OBJECT) {
        object = (ConfigObject) node;
      } else {
        throw new IllegalArgumentException(
            key + " (from -D" + given + "): " + where + " is not an object");
      }
      ConfigValue child = object.get(k);
      return object.withValue(k, set(child, path, at + 1, value, key, given));
    }
    int index = (Integer) segment;
    if (node == null || node.valueType() != ConfigValueType.LIST) {
      throw new IllegalArgumentException(
          key + " (from -D" + given + "): " + where + " is not a list");
    }
    ConfigList list = (ConfigList) node;
    if (index >= list.size()) {
      throw new IllegalArgumentException(
          key + " (from -D" + given + "): " + where + " has " + list.size()
              + (list.size() == 1 ? " element" : " elements") + " (indexes from 0)");
    }
    List<ConfigValue> copy = new ArrayList<>(list);
    copy.set(index, set(list.get(index), path, at + 1, value, key, given));
    return ConfigValueFactory.fromIterable(copy);
  }

  /** The path up to (not including) segment {@code at}, in problem notation. */
  private static String shown(List<Object> path, int at) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < at; i++) {
      Object s = path.get(i);
      if (s instanceof Integer n) {
        b.append('[').append(n).append(']');
      } else {
        b.append(b.length() == 0 ? "" : ".").append(s);
      }
    }
    return b.toString();
  }
}
