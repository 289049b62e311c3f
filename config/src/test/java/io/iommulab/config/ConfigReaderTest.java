package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.iommulab.config.ConfigReader.Rule;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

class ConfigReaderTest {

  private static ConfigReader reader(String hocon, String path) {
    return ConfigReader.of(ConfigFactory.parseString(hocon), path);
  }

  private static List<String> problemsOf(ConfigReader r) {
    return assertThrows(SettingsException.class, () -> r.problems().throwIfAny()).problems();
  }

  @Test
  void aLongMayUseAllSixtyFourBitsInDecimalOrHex() {
    ConfigReader r = reader("a = 9223372036854775807, b = \"0x7fffffffffffffff\", c = -5", "x");
    assertEquals(OptionalLong.of(Long.MAX_VALUE), r.getLong("a", Rule.any()));
    assertEquals(OptionalLong.of(Long.MAX_VALUE), r.getLong("b", Rule.any()));
    assertEquals(OptionalLong.empty(), r.getLong("c", Rule.atLeast(0)));
    assertEquals(List.of("x.c = -5: must be at least 0"), problemsOf(r));
  }

  @Test
  void aValueInheritedFromALowerLayerIsReportedAtTheLayerThatWroteIt() {
    ConfigReader.Problems problems = new ConfigReader.Problems();
    ConfigReader entry = ConfigReader.of(ConfigFactory.parseString("a = 1"), "list[3]", problems);
    ConfigReader defaults = ConfigReader.of(ConfigFactory.parseString("b = 99"), "defaults", problems);
    ConfigReader r = entry.withFallback(defaults);
    r.getInt("a", Rule.between(0, 9));
    r.getInt("b", Rule.between(0, 9));
    r.entryProblem("b", "clashes");
    assertEquals(
        List.of(
            "defaults.b = 99: must be from 0 to 9",
            "list[3].b = 99: clashes (inherited from defaults.b)"),
        problemsOf(r));
  }

  @Test
  void anExplicitNullHidesTheDefaultBelowIt() {
    ConfigReader.Problems problems = new ConfigReader.Problems();
    ConfigReader r =
        ConfigReader.of(ConfigFactory.parseString("a = null"), "e", problems)
            .withFallback(ConfigReader.of(ConfigFactory.parseString("a = 1"), "d", problems));
    assertFalse(r.has("a"));
    assertEquals(OptionalLong.empty(), r.getBytes("a", Rule.any()));
    assertEquals(
        List.of(
            "e.a: missing (required, a size in bytes (a number, 0x hex, or with a unit such as 4K,"
                + " 2M, 64GiB))"),
        problemsOf(r));
  }

  @Test
  void aPartialReaderDoesNotReportMissingKeysButStillChecksPresentOnes() {
    ConfigReader r = reader("b = 300", "d").partial();
    r.getInt("a", Rule.any());
    r.getInt("b", Rule.powerOfTwoBetween(1, 256));
    assertEquals(List.of("d.b = 300: must be a power of two from 1 to 256"), problemsOf(r));
  }

  @Test
  void theSameProblemIsListedOnceButStillCountsAsAFailure() {
    ConfigReader r = reader("a = 300", "d");
    r.getInt("a", Rule.between(0, 9));
    int mark = r.mark();
    assertFalse(r.failedSince(mark));
    r.getInt("a", Rule.between(0, 9));
    assertTrue(r.failedSince(mark));
    assertEquals(List.of("d.a = 300: must be from 0 to 9"), problemsOf(r));
  }

  @Test
  void longValuesAreCutInProblemsAndOddStringsQuoted() {
    ConfigReader r = reader("a = \"" + "x".repeat(200) + "\", b = \"two words\"", "");
    r.getInt("a", Rule.any());
    r.getInt("b", Rule.any());
    assertEquals(
        List.of(
            "a = " + "x".repeat(77) + "...: must be an integer",
            "b = \"two words\": must be an integer"),
        problemsOf(r));
  }

  @Test
  void bytesTextUsesTheLargestExactBinaryUnit() {
    assertEquals("64GiB", ConfigReader.bytesText(64L << 30));
    assertEquals("1536KiB", ConfigReader.bytesText(3L << 19));
    assertEquals("4097 bytes", ConfigReader.bytesText(4097));
  }
}
