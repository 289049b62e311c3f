package io.iommulab.config;

import static io.iommulab.config.Hocon.problems;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProblemReportingTest {

  private static final String FOUR_PROBLEMS =
      """
      iommulab.topology {
        host-memory = 3MiB
        units = [
          { name = vtd0, kind = vtd }
          { name = vtd1, kind = vtd, snoop-control = off }
          { name = pamu0, kind = pamu, max-windows = 300 }
          { name = smmu0, kind = smmuv3 }
        ]
        devices = [
          { name = a, unit = vtd0, rid = "00:01.0", group = 1 }
          { name = b, unit = vtd0, rid = "00:02.0", group = 2 }
          { name = c, unit = vtd0, rid = "00:03.0", group = 3 }
          { name = d, unit = vtd0, group = 4 }
        ]
      }
      iommulab.cost-model.sync = -1ns
      """;

  @Test
  void aConfigWithSeveralProblemsReportsAllOfThemEachWithItsFullKeyPath() {
    assertEquals(
        List.of(
            "iommulab.topology.host-memory = 3MiB: must be a multiple of 2MiB from 64MiB to 64TiB",
            "iommulab.topology.units[2].max-windows = 300: must be a power of two from 1 to 256",
            "iommulab.topology.devices[3].rid: missing (required, a PCI requester id \"bus:dev.fn\")",
            "iommulab.cost-model.sync = -1ns: must not be negative"),
        problems(FOUR_PROBLEMS));
  }

  @Test
  void theExceptionMessageListsEachProblemOnItsOwnLine() {
    SettingsException e =
        assertThrows(SettingsException.class, () -> Hocon.load(FOUR_PROBLEMS));
    List<String> lines = e.getMessage().lines().toList();
    assertEquals("Invalid iommulab settings (4 problems):", lines.get(0));
    assertEquals(e.problems(), lines.subList(1, lines.size()));
  }

  @Test
  void aStringWhereANumberIsExpectedNamesThePathAndTheExpectedType() {
    assertEquals(
        List.of("iommulab.topology.units[0].domain-ids = many: must be an integer"),
        problems(
            "iommulab.topology.units = [ { name = vtd0, kind = vtd, domain-ids = many },"
                + " { name = vtd1, kind = vtd }, { name = smmu0, kind = smmuv3 },"
                + " { name = pamu0, kind = pamu } ]"));
  }

  @Test
  void aFractionWhereAnIntegerIsExpectedIsRefused() {
    assertEquals(
        List.of("iommulab.topology.devices[10].msi-vectors = 1.5: must be an integer"),
        problems(Hocon.plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, msi-vectors = 1.5")));
  }

  @Test
  void aWordWhereADurationIsExpectedNamesTheExpectedSyntax() {
    assertEquals(
        List.of(
            "iommulab.cost-model.sync = fast: must be a duration with a unit (such as 5ns, 2us, 1ms)"),
        problems("iommulab.cost-model.sync = fast"));
  }

  @Test
  void aBareNumberDurationIsRefusedBecauseHoconWouldReadMilliseconds() {
    assertEquals(
        List.of(
            "iommulab.cost-model.walk-level = 25: must be a duration with a unit (such as 5ns, 2us,"
                + " 1ms); a bare number would mean milliseconds"),
        problems("iommulab.cost-model.walk-level = 25"));
  }

  @Test
  void aWordWhereABooleanIsExpectedSaysOnOrOff() {
    assertEquals(
        List.of("iommulab.topology.devices[10].ats = maybe: must be on or off"),
        problems(Hocon.plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, ats = maybe")));
  }

  @Test
  void aScalarWhereAnObjectIsExpectedIsRefused() {
    assertEquals(
        List.of("iommulab.topology.unit-defaults.vtd.iotlb = 5: must be an object"),
        problems("iommulab.topology.unit-defaults.vtd.iotlb = 5"));
  }

  @Test
  void aListEntryThatIsNotAnObjectIsRefusedAndTheOtherEntriesAreStillChecked() {
    assertEquals(
        List.of(
            "iommulab.topology.devices[0] = nic0: must be an object { ... }",
            "iommulab.topology.devices[1].group = -1: must be at least 0"),
        problems(
            "iommulab.topology.devices = [ nic0,"
                + " { name = x, unit = vtd0, rid = \"00:05.0\", group = -1 } ]"));
  }

  @Test
  void aMisspeltKeyIsAnUnknownKeyRatherThanSilentlyIgnored() {
    assertEquals(
        List.of(
            "iommulab.topology.units[3].max-window = 8: unknown key (a pamu unit takes name, kind,"
                + " ppaact-entries, spaact-entries, max-windows, aperture-start, aperture-size)"),
        problems(
            "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd1, kind = vtd },"
                + " { name = smmu0, kind = smmuv3 }, { name = pamu0, kind = pamu, max-window = 8 } ]"));
  }

  @Test
  void aKeyOfAnotherUnitKindIsAnUnknownKey() {
    List<String> p =
        problems(
            "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd1, kind = vtd },"
                + " { name = smmu0, kind = smmuv3 }, { name = pamu0, kind = pamu, address-width = 48 } ]");
    assertEquals(1, p.size());
    assertTrue(p.get(0).startsWith("iommulab.topology.units[3].address-width = 48: unknown key (a pamu"));
  }

  @Test
  void unknownKeysInTheTopologyAndCostModelSectionsAreRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.host-memroy = 1GiB: unknown key (the topology takes host-memory,"
                + " unit-defaults, units, device-defaults, devices, device-pools, msi-bank-defaults,"
                + " msi-banks)",
            "iommulab.cost-model.tlb-hit = 5ns: unknown key (the cost model takes iotlb-hit,"
                + " walk-level, atc-hit, ats-translation, invalidation-descriptor, sync,"
                + " atc-invalidation-round-trip, page-request, fault-report, pte-write,"
                + " pamu-lookup)"),
        problems("iommulab.topology.host-memroy = 1GiB\niommulab.cost-model.tlb-hit = 5ns"));
  }

  @Test
  void otherModulesMaySetTheirOwnSectionsUnderIommulab() {
    org.junit.jupiter.api.Assertions.assertDoesNotThrow(
        () -> Hocon.load("iommulab.load-tests.duration = 10s"));
  }

  @Test
  void aBadDefaultIsReportedOnceAtTheDefaultsPathHoweverManyUnitsInheritIt() {
    assertEquals(
        List.of(
            "iommulab.topology.unit-defaults.pamu.max-windows = 300: must be a power of two from 1"
                + " to 256"),
        problems(
            "iommulab.topology.unit-defaults.pamu.max-windows = 300\n"
                + "iommulab.topology.units += { name = pamu1, kind = pamu }"));
  }

  @Test
  void aBadDefaultThatNoUnitUsesIsStillReported() {
    assertEquals(
        List.of("iommulab.topology.unit-defaults.smmuv3.pasid-bits = 21: must be from 0 to 20"),
        problems(
            "iommulab.topology.unit-defaults.smmuv3.pasid-bits = 21\n"
                + "iommulab.topology.units = [ { name = vtd0, kind = vtd },"
                + " { name = vtd1, kind = vtd }, { name = pamu0, kind = pamu } ]\n"
                + "iommulab.topology.devices = []"));
  }

  @Test
  void aMissingKeyWithoutADefaultIsReportedAtTheEntry() {
    assertEquals(
        List.of(
            "iommulab.topology.units[4].max-windows: missing (required, an integer)"),
        problems(
            "iommulab.topology.unit-defaults.pamu = null\n"
                + "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd1, kind = vtd },"
                + " { name = smmu0, kind = smmuv3 }, { name = pamu0, kind = pamu, ppaact-entries = 1280,"
                + " spaact-entries = 2048, max-windows = 256, aperture-start = 0, aperture-size = 64GiB },"
                + " { name = pamu1, kind = pamu, ppaact-entries = 16, spaact-entries = 0,"
                + " aperture-start = 0, aperture-size = 1GiB } ]"));
  }

  @Test
  void aConfigWithoutTheIommulabSectionSaysSo() {
    SettingsException e =
        assertThrows(
            SettingsException.class, () -> IommulabSettings.fromConfig(ConfigFactory.empty()));
    assertEquals(
        List.of(
            "iommulab: missing (required, the iommulab section; is reference.conf on the"
                + " classpath?)"),
        e.problems());
  }

  @Test
  void anUnresolvableSubstitutionIsASettingsProblemNotACrash() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                IommulabSettings.fromConfig(
                    ConfigFactory.parseString("iommulab.topology.host-memory = ${nowhere}")
                        .withFallback(ConfigFactory.defaultReference())));
    assertEquals(1, e.problems().size());
    assertTrue(e.problems().get(0).contains("nowhere"), e.problems().get(0));
  }

  @Test
  void theProblemListCannotBeModified() {
    SettingsException e =
        assertThrows(SettingsException.class, () -> Hocon.load(FOUR_PROBLEMS));
    assertThrows(UnsupportedOperationException.class, () -> e.problems().add("x"));
  }

  @Test
  void aSettingsExceptionWithoutProblemsIsABug() {
    assertThrows(IllegalArgumentException.class, () -> new SettingsException(List.of()));
  }
}
