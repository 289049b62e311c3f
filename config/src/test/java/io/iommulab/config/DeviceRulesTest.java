package io.iommulab.config;

import static io.iommulab.config.Hocon.plusDevice;
import static io.iommulab.config.Hocon.problems;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** Device rules; the added device is always devices[10], after the ten defaults. */
class DeviceRulesTest {

  private static void assertOnly(String problem, String hocon) {
    assertEquals(List.of(problem), problems(hocon));
  }

  @Test
  void aDeviceIsAppendedWithDeviceDefaultsForTheKeysItOmits() {
    DeviceSettings x =
        Hocon.topology(plusDevice("name = x, unit = vtd1, rid = \"00:05.0\", group = 10"))
            .device("x")
            .orElseThrow();
    assertEquals(
        new DeviceSettings("x", "vtd1", "00:05.0", OptionalInt.empty(), 10, 0, false, 64, false, 1, false, false),
        x);
  }

  @Test
  void changedDeviceDefaultsApplyToEveryDeviceThatOmitsTheKey() {
    TopologySettings t = Hocon.topology("iommulab.topology.device-defaults.msi-vectors = 32");
    assertEquals(32, t.device("gpu0").get().msiVectors());
    assertEquals(8, t.device("nic0").get().msiVectors());
  }

  @Test
  void aRidIsStoredInCanonicalForm() {
    assertEquals(
        "0a:05.3",
        Hocon.topology(plusDevice("name = x, unit = vtd1, rid = \"A:5.3\", group = 10"))
            .device("x").get().rid());
  }

  // ----------------------------------------------------------------------- identity keys

  @Test
  void aDeviceWithoutARidNamesTheExpectedForm() {
    assertOnly(
        "iommulab.topology.devices[10].rid: missing (required, a PCI requester id \"bus:dev.fn\")",
        plusDevice("name = x, unit = vtd0, group = 10"));
  }

  @Test
  void aRidWithADeviceNumberAbove1fIsMalformed() {
    assertOnly(
        "iommulab.topology.devices[10].rid = 00:20.0: must be a PCI requester id \"bus:dev.fn\""
            + " (hex bus 00-ff, device 00-1f, function 0-7)",
        plusDevice("name = x, unit = vtd0, rid = \"00:20.0\", group = 10"));
  }

  @Test
  void aDeviceWithoutAUnitNamesWhatIsExpected() {
    assertOnly(
        "iommulab.topology.devices[10].unit: missing (required, the name of a unit in units)",
        plusDevice("name = x, rid = \"00:05.0\", group = 10"));
  }

  @Test
  void aDeviceOnAnUnknownUnitListsTheUnits() {
    assertOnly(
        "iommulab.topology.devices[10].unit = vtd9: no such unit (units are vtd0, vtd1, smmu0,"
            + " pamu0)",
        plusDevice("name = x, unit = vtd9, rid = \"00:05.0\", group = 10"));
  }

  @Test
  void aDeviceWithoutAGroupNamesWhatIsExpected() {
    assertOnly(
        "iommulab.topology.devices[10].group: missing (required, an integer)",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\""));
  }

  @Test
  void aNegativeGroupIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].group = -1: must be at least 0",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = -1"));
  }

  @Test
  void aDeviceNameWithUnderscoresDoesNotMatchThePattern() {
    assertOnly(
        "iommulab.topology.devices[10].name = eth_0: must be a name matching [a-z][a-z0-9-]*",
        plusDevice("name = eth_0, unit = vtd0, rid = \"00:05.0\", group = 10"));
  }

  @Test
  void aSecondDeviceWithTheSameNameIsADuplicate() {
    assertOnly(
        "iommulab.topology.devices[10].name = nic0: duplicate device name, first used by devices[0]"
            + " (nic0)",
        plusDevice("name = nic0, unit = vtd1, rid = \"00:05.0\", group = 10"));
  }

  @Test
  void anUnknownDeviceKeyIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].snoop = on: unknown key (a device takes name, unit, rid,"
            + " liodn, group, pasid-bits, ats, atc-entries, pri, msi-vectors, no-snoop,"
            + " virtual-function)",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, snoop = on"));
  }

  @Test
  void anIdentityKeyUnderDeviceDefaultsIsAnUnknownKeyAndIsNotInherited() {
    // Were identity keys inherited, a device that forgets its group would silently join group 0.
    assertOnly(
        "iommulab.topology.device-defaults.group = 0: unknown key (device-defaults takes pasid-bits,"
            + " ats, atc-entries, pri, msi-vectors, no-snoop, virtual-function)",
        "iommulab.topology.device-defaults.group = 0\n"
            + plusDevice("name = x, unit = vtd1, rid = \"00:05.0\", group = 10"));
    assertEquals(
        List.of(
            "iommulab.topology.device-defaults.group = 0: unknown key (device-defaults takes"
                + " pasid-bits, ats, atc-entries, pri, msi-vectors, no-snoop, virtual-function)",
            "iommulab.topology.devices[10].group: missing (required, an integer)"),
        problems(
            "iommulab.topology.device-defaults.group = 0\n"
                + plusDevice("name = x, unit = vtd1, rid = \"00:05.0\"")));
  }

  // ------------------------------------------------------------------------------------ RIDs

  @Test
  void aRidUsedTwiceOnOneUnitIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].rid = 00:02.0: already used on vtd0 by devices[0] (nic0); a"
            + " RID is unique per unit",
        plusDevice("name = x, unit = vtd0, rid = \"00:02.0\", group = 10"));
  }

  @Test
  void theSameRidOnAnotherUnitIsAnotherSegmentAndAccepted() {
    assertEquals(
        "00:02.0",
        Hocon.topology(plusDevice("name = x, unit = vtd1, rid = \"00:02.0\", group = 10"))
            .device("x").get().rid());
  }

  // ---------------------------------------------------------------------------------- groups

  @Test
  void aGroupSpreadOverTwoUnitsIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].group = 3: group 3 already sits behind vtd0 with devices[2]"
            + " (gpu0), but this device is behind smmu0; all devices of a group sit behind one unit",
        plusDevice("name = x, unit = smmu0, rid = \"02:05.0\", group = 3"));
  }

  @Test
  void aThirdDeviceMayJoinAGroupOnTheSameUnit() {
    assertEquals(
        3,
        Hocon.topology(plusDevice("name = x, unit = vtd0, rid = \"00:04.2\", group = 3"))
            .device("x").get().group());
  }

  // ------------------------------------------------------------------------ device features

  @Test
  void priWithoutAtsIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].pri = on: requires ats = on (PRI extends ATS: a page request"
            + " follows a failed translation)",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, pri = on"));
  }

  @Test
  void priInheritedWithoutAtsIsReportedAtTheDeviceWithWhereItCameFrom() {
    List<String> p =
        problems(
            "iommulab.topology.device-defaults.pri = on\n"
                + "iommulab.topology.device-defaults.ats = on\n"
                + plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, ats = off"));
    assertEquals(
        List.of(
            "iommulab.topology.devices[10].pri = on: requires ats = on (PRI extends ATS: a page"
                + " request follows a failed translation) (inherited from"
                + " iommulab.topology.device-defaults.pri)"),
        p.stream().filter(s -> s.contains("devices[10]")).toList());
  }

  @Test
  void moreThan20DevicePasidBitsAreRefused() {
    assertOnly(
        "iommulab.topology.devices[10].pasid-bits = 21: must be from 0 to 20",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, pasid-bits = 21"));
  }

  @Test
  void anEmptyAtcIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].atc-entries = 0: must be from 1 to 4096",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, ats = on, atc-entries = 0"));
  }

  @Test
  void moreThan2048MsiVectorsAreRefused() {
    assertOnly(
        "iommulab.topology.devices[10].msi-vectors = 2049: must be from 0 to 2048",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, msi-vectors = 2049"));
  }

  // ------------------------------------------------------------------------ PAMU and LIODNs

  @Test
  void aDeviceBehindAPamuWithoutALiodnNamesTheRange() {
    assertOnly(
        "iommulab.topology.devices[10].liodn: missing (required behind PAMU unit pamu0, a LIODN from"
            + " 0 to 1279)",
        plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 10"));
  }

  @Test
  void aLiodnOnADeviceBehindAPagingUnitIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].liodn = 5: only a device behind a PAMU unit has a LIODN (vtd0"
            + " is a vtd unit)",
        plusDevice("name = x, unit = vtd0, rid = \"00:05.0\", group = 10, liodn = 5"));
  }

  @Test
  void aLiodnBeyondThePpaactIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].liodn = 1280: must be from 0 to 1279 (pamu0 has"
            + " ppaact-entries = 1280)",
        plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 10, liodn = 1280"));
  }

  @Test
  void aLiodnBeyondTheLargestPpaactIsRefusedWithoutAUnit() {
    assertOnly(
        "iommulab.topology.devices[10].liodn = 4096: must be from 0 to 4095",
        plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 10, liodn = 4096"));
  }

  @Test
  void aLiodnSharedAcrossGroupsIsRefused() {
    assertOnly(
        "iommulab.topology.devices[10].liodn = 1: already used by devices[7] (dpaa0) in group 7;"
            + " devices may share a LIODN only within one group",
        plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 10, liodn = 1"));
  }

  @Test
  void aLiodnSharedWithinOneGroupIsAccepted() {
    TopologySettings t =
        Hocon.topology(plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 7, liodn = 1"));
    assertEquals(OptionalInt.of(1), t.device("x").get().liodn());
  }

  @Test
  void aLiodnIsUniqueAcrossPamusBecauseTheyShareOnePpaact() {
    assertOnly(
        "iommulab.topology.devices[10].liodn = 2: already used by devices[8] (pcie0) in group 8;"
            + " devices may share a LIODN only within one group",
        "iommulab.topology.units += { name = pamu1, kind = pamu }\n"
            + plusDevice("name = x, unit = pamu1, rid = \"00:01.0\", group = 10, liodn = 2"));
  }

  @Test
  void aDeviceBehindAPamuCannotHavePasids() {
    assertOnly(
        "iommulab.topology.devices[10].pasid-bits = 4: must be 0 behind PAMU unit pamu0 (a PAMU has"
            + " no PASIDs)",
        plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 10, liodn = 9, pasid-bits = 4"));
  }

  @Test
  void aDeviceBehindAPamuCannotHaveAts() {
    assertOnly(
        "iommulab.topology.devices[10].ats = on: must be off behind PAMU unit pamu0 (a PAMU has no"
            + " ATS)",
        plusDevice("name = x, unit = pamu0, rid = \"03:05.0\", group = 10, liodn = 9, ats = on"));
  }

  @Test
  void inheritedAtsIsReportedAtEveryPamuDeviceWithWhereItCameFrom() {
    List<String> p = problems("iommulab.topology.device-defaults.ats = on");
    assertEquals(
        List.of(
            "iommulab.topology.devices[7].ats = on: must be off behind PAMU unit pamu0 (a PAMU has no"
                + " ATS) (inherited from iommulab.topology.device-defaults.ats)",
            "iommulab.topology.devices[8].ats = on: must be off behind PAMU unit pamu0 (a PAMU has no"
                + " ATS) (inherited from iommulab.topology.device-defaults.ats)",
            "iommulab.topology.devices[9].ats = on: must be off behind PAMU unit pamu0 (a PAMU has no"
                + " ATS) (inherited from iommulab.topology.device-defaults.ats)"),
        p);
  }

  // ---------------------------------------------------------------------- standalone builder

  @Test
  void aStandaloneDeviceTakesReferenceDefaultsAndNamesProblemsRelativeToTheEntry() {
    DeviceSettings d =
        DeviceSettings.fromConfig(
            ConfigFactory.parseString("name = d, unit = pamu0, rid = \"03:00.0\", group = 1, liodn = 7"));
    assertEquals(OptionalInt.of(7), d.liodn());
    assertEquals(64, d.atcEntries());
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () -> DeviceSettings.fromConfig(ConfigFactory.parseString("name = d, unit = u, pri = on")));
    assertEquals(
        List.of(
            "rid: missing (required, a PCI requester id \"bus:dev.fn\")",
            "group: missing (required, an integer)",
            "pri = on: requires ats = on (PRI extends ATS: a page request follows a failed"
                + " translation)"),
        e.problems());
  }

  @Test
  void theDeviceConstructorRefusesPriWithoutAtsAndMalformedRids() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new DeviceSettings("d", "u", "00:02.0", OptionalInt.empty(), 1, 0, false, 64, true, 1, false, false));
    assertThrows(
        IllegalArgumentException.class,
        () -> new DeviceSettings("d", "u", "00:20.0", OptionalInt.empty(), 1, 0, false, 64, false, 1, false, false));
  }
}
