package io.iommulab.config;

import static io.iommulab.config.Hocon.problems;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The value syntaxes users may write: HOCON sizes and durations, hex, on/off. */
class HoconSyntaxTest {

  private static long hostMemory(String value) {
    return Hocon.topology("iommulab.topology.host-memory = " + value).hostMemoryBytes();
  }

  private static long syncNs(String value) {
    return Hocon.load("iommulab.cost-model.sync = " + value).costModel().syncNs();
  }

  private static PamuUnitSettings pamu(String hocon) {
    return (PamuUnitSettings) Hocon.topology(hocon).unit("pamu0").orElseThrow();
  }

  @Test
  void everyHoconSizeSpellingOf64GiBGivesTheSameBytes() {
    long expected = 64L << 30;
    assertEquals(expected, hostMemory("64GiB"));
    assertEquals(expected, hostMemory("64G"));
    assertEquals(expected, hostMemory("65536M"));
    assertEquals(expected, hostMemory("\"64 GiB\""));
    assertEquals(expected, hostMemory("68719476736"));
    assertEquals(expected, hostMemory("\"0x1000000000\""));
  }

  @Test
  void decimalGigabytesAreNotGibibytesAndSoNotAMultipleOf2MiB() {
    assertEquals(
        List.of(
            "iommulab.topology.host-memory = 64GB: must be a multiple of 2MiB from 64MiB to 64TiB"),
        problems("iommulab.topology.host-memory = 64GB"));
  }

  @Test
  void aSizeWithAnUnknownUnitNamesTheSizeSyntax() {
    assertEquals(
        List.of(
            "iommulab.topology.host-memory = \"64 apples\": must be a size in bytes (a number, 0x hex, or"
                + " with a unit such as 4K, 2M, 64GiB)"),
        problems("iommulab.topology.host-memory = 64 apples"));
  }

  @Test
  void hostMemoryAboveTheCeilingIsRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.host-memory = 128TiB: must be a multiple of 2MiB from 64MiB to 64TiB"),
        problems("iommulab.topology.host-memory = 128TiB"));
    assertEquals(64L << 40, hostMemory("64TiB"));
    assertEquals(64L << 20, hostMemory("64MiB"));
  }

  @Test
  void pageSizesAcceptBytesAndUnits() {
    PagingUnitSettings vtd =
        (PagingUnitSettings)
            Hocon.topology("iommulab.topology.unit-defaults.vtd.page-sizes = [4096, 2MiB, 1G]")
                .unit("vtd0")
                .get();
    assertEquals(List.of(4096L, 2L << 20, 1L << 30), vtd.pageSizes());
  }

  @Test
  void durationsInEveryUnitBecomeNanoseconds() {
    assertEquals(150, syncNs("150ns"));
    assertEquals(1_000, syncNs("1us"));
    assertEquals(1_500, syncNs("1.5us"));
    assertEquals(2_000_000, syncNs("2ms"));
    assertEquals(3_000, syncNs("3 microseconds"));
    assertEquals(0, syncNs("0ns"));
  }

  @Test
  void aNegativeDurationIsRefused() {
    assertEquals(
        List.of("iommulab.cost-model.pte-write = -10ns: must not be negative"),
        problems("iommulab.cost-model.pte-write = -10ns"));
  }

  @Test
  void aQuotedBareNumberDurationIsRefusedToo() {
    assertEquals(
        List.of(
            "iommulab.cost-model.sync = 150: must be a duration with a unit (such as 5ns, 2us, 1ms);"
                + " a bare number would mean milliseconds"),
        problems("iommulab.cost-model.sync = \"150\""));
  }

  @Test
  void hexAddressesParseQuotedUnquotedWithUnderscoresOrAsNumbers() {
    List<MsiBankSettings> banks =
        Hocon.topology(
                "iommulab.topology.msi-banks = [ { msiir-address = 0xffe044000 },"
                    + " { msiir-address = \"0xf_fe045000\" }, { msiir-address = 68686209024 } ]")
            .msiBanks();
    assertEquals(
        List.of(0xffe044000L, 0xffe045000L, 0xffe046000L),
        banks.stream().map(MsiBankSettings::msiirAddress).toList());
  }

  @Test
  void integersMayBeWrittenInHexLikeTheHardwareTables() {
    PamuUnitSettings pamu =
        pamu("iommulab.topology.unit-defaults.pamu { ppaact-entries = 0x500, spaact-entries = \"0x800\" }");
    assertEquals(1280, pamu.ppaactEntries());
    assertEquals(2048, pamu.spaactEntries());
  }

  @Test
  void anApertureSizeMayBeASizeOrHex() {
    assertEquals(
        1L << 36, pamu("iommulab.topology.unit-defaults.pamu.aperture-size = \"0x1000000000\"").defaultApertureSize());
    assertEquals(1L << 30, pamu("iommulab.topology.unit-defaults.pamu.aperture-size = 1GiB").defaultApertureSize());
  }

  @Test
  void booleansAcceptOnOffTrueFalseYesNo() {
    String[] on = {"on", "true", "yes"};
    String[] off = {"off", "false", "no"};
    for (String v : on) {
      assertEquals(
          true,
          Hocon.topology("iommulab.topology.device-defaults.no-snoop = " + v).device("gpu0").get().noSnoop());
    }
    for (String v : off) {
      assertEquals(
          false,
          Hocon.topology("iommulab.topology.device-defaults.no-snoop = " + v).device("gpu0").get().noSnoop());
    }
  }

  @Test
  void anIntegerTooLargeForItsFieldIsRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.devices[10].group = 4294967296: must be an integer that fits in 32"
                + " bits"),
        problems(Hocon.plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 4294967296")));
  }
}
