package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigList;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Keeps the promise of reference.conf: every key has a prose comment directly above it, so that
 * a new key without documentation fails the build.
 */
class ReferenceConfCommentsTest {
  // Surefire runs in the module directory; the source, not a copy, is what must stay documented.
  private static final Path FILE = Path.of("src/main/resources/reference.conf");
  private static final Pattern KEY_LINE =
      Pattern.compile("^\\s*([A-Za-z][A-Za-z0-9-]*(\\.[A-Za-z][A-Za-z0-9-]*)*)\\s*(=|:|\\+=|\\{)");
  private static final Pattern LIST_ENTRY_LINE = Pattern.compile("^\\s*\\{");
  private static final int MIN_WORDS = 4;

  private final List<String> lines = readLines();

  private static List<String> readLines() {
    try {
      return Files.readAllLines(FILE);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + FILE.toAbsolutePath(), e);
    }
  }

  @Test
  void everyKeyTheParserSeesHasAProseCommentDirectlyAboveIt() {
    ConfigObject root =
        ConfigFactory.parseFile(FILE.toFile(), ConfigParseOptions.defaults().setAllowMissing(false))
            .root();
    List<String> checked = new ArrayList<>();
    List<String> undocumented = new ArrayList<>();
    walk(root, "", -1, checked, undocumented);
    assertEquals(List.of(), undocumented, "keys without a comment directly above them");
    // The walk must really reach the deep keys, or this test would pass on nothing.
    for (String key :
        List.of(
            "iommulab",
            "iommulab.topology.host-memory",
            "iommulab.topology.unit-defaults.vtd.iotlb.ways",
            "iommulab.topology.unit-defaults.smmuv3.caching-mode",
            "iommulab.topology.unit-defaults.pamu.aperture-size",
            "iommulab.topology.devices[9]",
            "iommulab.topology.msi-banks[2]",
            "iommulab.topology.device-defaults.virtual-function",
            "iommulab.cost-model.pamu-lookup")) {
      assertTrue(checked.contains(key), key + " was not checked; checked: " + checked);
    }
  }

  @Test
  void everyKeyLineOfTheFileTextHasAProseCommentDirectlyAboveIt() {
    int keyLines = 0;
    List<String> undocumented = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      Matcher m = KEY_LINE.matcher(lines.get(i));
      boolean entry = LIST_ENTRY_LINE.matcher(lines.get(i)).find();
      if (m.find() || entry) {
        keyLines++;
        if (!documented(i + 1)) {
          undocumented.add((i + 1) + ": " + lines.get(i).trim());
        }
      }
    }
    assertEquals(List.of(), undocumented, "lines without a comment directly above them");
    assertTrue(keyLines > 80, "only " + keyLines + " key lines found; is the pattern broken?");
  }

  @Test
  void everyCostModelKeyIsInReferenceConf() {
    ConfigObject costModel =
        ConfigFactory.parseFile(FILE.toFile()).getObject(CostModelSettings.PATH);
    assertEquals(Set.copyOf(CostModelSettings.KEYS), costModel.keySet());
  }

  /**
   * Checks each value's line; a list entry written on its own line needs a comment too, while the
   * keys inside a one-line entry are documented by the comment of the list they belong to.
   */
  private void walk(
      ConfigValue value, String path, int enclosingLine, List<String> checked, List<String> bad) {
    int line = value.origin().lineNumber();
    if (!path.isEmpty() && line != enclosingLine) {
      checked.add(path);
      if (!documented(line)) {
        bad.add(path + " (line " + line + ")");
      }
    }
    if (value.valueType() == ConfigValueType.OBJECT) {
      for (Map.Entry<String, ConfigValue> e : ((ConfigObject) value).entrySet()) {
        walk(e.getValue(), path.isEmpty() ? e.getKey() : path + "." + e.getKey(), line, checked, bad);
      }
    } else if (value.valueType() == ConfigValueType.LIST) {
      ConfigList list = (ConfigList) value;
      for (int i = 0; i < list.size(); i++) {
        if (list.get(i).valueType() == ConfigValueType.OBJECT) {
          walk(list.get(i), path + "[" + i + "]", line, checked, bad);
        }
      }
    }
  }

  /** Whether the lines directly above 1-based {@code line} are a comment of some prose. */
  private boolean documented(int line) {
    int words = 0;
    for (int i = line - 2; i >= 0 && isComment(lines.get(i)); i--) {
      words += lines.get(i).trim().replaceFirst("^(#|//)", "").trim().split("\\s+").length;
    }
    return words >= MIN_WORDS;
  }

  private static boolean isComment(String line) {
    String t = line.trim();
    return t.startsWith("#") || t.startsWith("//");
  }
}
