package io.iommulab.config;

import static io.iommulab.config.Hocon.pool;
import static io.iommulab.config.Hocon.problems;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class DevicePoolTest {

  private static void assertOnly(String problem, String hocon) {
    assertEquals(List.of(problem), problems(hocon));
  }

  @Test
  void aPoolExpandsAfterTheListedDevicesWithConsecutiveNamesRidsAndGroups() {
    List<DeviceSettings> devices =
        Hocon.topology(
                pool(
                    "name-prefix = vf, count = 3, unit = smmu0, first-rid = \"02:10.0\","
                        + " first-group = 100, ats = on, virtual-function = on"))
            .devices();
    assertEquals(13, devices.size());
    assertEquals("pcie1", devices.get(9).name());
    assertEquals(
        List.of(
            new DeviceSettings("vf-0", "smmu0", "02:10.0", OptionalInt.empty(), 100, 0, true, 64, false, 1, false, true),
            new DeviceSettings("vf-1", "smmu0", "02:10.1", OptionalInt.empty(), 101, 0, true, 64, false, 1, false, true),
            new DeviceSettings("vf-2", "smmu0", "02:10.2", OptionalInt.empty(), 102, 0, true, 64, false, 1, false, true)),
        devices.subList(10, 13));
  }

  @Test
  void poolRidsCarryFromFunctionIntoDeviceAndBus() {
    List<DeviceSettings> devices =
        Hocon.topology(
                pool("name-prefix = p, count = 4, unit = vtd1, first-rid = \"04:1f.6\", first-group = 100"))
            .devices();
    assertEquals(
        List.of("04:1f.6", "04:1f.7", "05:00.0", "05:00.1"),
        devices.subList(10, 14).stream().map(DeviceSettings::rid).toList());
  }

  @Test
  void aPoolBehindAPamuGetsConsecutiveLiodns() {
    List<DeviceSettings> devices =
        Hocon.topology(
                pool(
                    "name-prefix = q, count = 3, unit = pamu0, first-rid = \"04:00.0\","
                        + " first-group = 50, first-liodn = 100"))
            .devices();
    assertEquals(
        List.of(OptionalInt.of(100), OptionalInt.of(101), OptionalInt.of(102)),
        devices.subList(10, 13).stream().map(DeviceSettings::liodn).toList());
  }

  @Test
  void severalPoolsExpandInOrder() {
    List<DeviceSettings> devices =
        Hocon.topology(
                "iommulab.topology.device-pools = ["
                    + " { name-prefix = a, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 100 },"
                    + " { name-prefix = b, count = 1, unit = smmu0, first-rid = \"10:00.0\", first-group = 200 } ]")
            .devices();
    assertEquals(
        List.of("a-0", "a-1", "b-0"), devices.subList(10, 13).stream().map(DeviceSettings::name).toList());
  }

  @Test
  void aPoolThatFillsTheLastBusExactlyIsAccepted() {
    List<DeviceSettings> devices =
        Hocon.topology(pool("name-prefix = p, count = 8, unit = vtd1, first-rid = \"ff:1f.0\", first-group = 100"))
            .devices();
    assertEquals("ff:1f.7", devices.get(devices.size() - 1).rid());
  }

  @Test
  void aPoolWhoseRidsRunPastFf1f7IsRefusedAtThePoolsPath() {
    assertOnly(
        "iommulab.topology.device-pools[0].count = 9: the pool's RIDs from ff:1f.0 run past ff:1f.7"
            + " (at most 8 devices fit)",
        pool("name-prefix = p, count = 9, unit = vtd1, first-rid = \"ff:1f.0\", first-group = 100"));
  }

  @Test
  void aPoolWhoseGroupsRunPastTheLargestIntIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].count = 2: the pool's groups from 2147483647 run past"
            + " 2147483647",
        pool("name-prefix = p, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 2147483647"));
  }

  @Test
  void aPoolOfMoreThanAMillionDevicesIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].count = 1000001: must be from 1 to 1000000",
        pool("name-prefix = p, count = 1000001, unit = vtd1, first-rid = \"10:00.0\", first-group = 100"));
  }

  @Test
  void anEmptyPoolIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].count = 0: must be from 1 to 1000000",
        pool("name-prefix = p, count = 0, unit = vtd1, first-rid = \"10:00.0\", first-group = 100"));
  }

  @Test
  void aPoolWithoutARequiredKeyNamesIt() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-rid: missing (required, a PCI requester id"
            + " \"bus:dev.fn\")",
        pool("name-prefix = p, count = 2, unit = vtd1, first-group = 100"));
  }

  @Test
  void anUnknownPoolKeyIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].rid = 10:00.0: unknown key (a device pool takes"
            + " name-prefix, count, unit, first-rid, first-group, first-liodn, pasid-bits, ats,"
            + " atc-entries, pri, msi-vectors, no-snoop, virtual-function)",
        pool("name-prefix = p, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 100, rid = \"10:00.0\""));
  }

  @Test
  void aPoolRidClashIsReportedOnceAtTheFirstRidWithTheFirstClashingMember() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-rid = 00:01.7: member p-1 gets rid 00:02.0,"
            + " already used on vtd0 by devices[0] (nic0); a RID is unique per unit",
        pool("name-prefix = p, count = 4, unit = vtd0, first-rid = \"00:01.7\", first-group = 100"));
  }

  @Test
  void aPoolMemberNameClashingWithAListedDeviceIsRefusedAtTheNamePrefix() {
    assertOnly(
        "iommulab.topology.device-pools[0].name-prefix = x: member x-1 duplicates the name of"
            + " devices[10] (x-1)",
        Hocon.plusDevice("name = x-1, unit = vtd1, rid = \"00:09.0\", group = 99")
            + "\n"
            + pool("name-prefix = x, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 100"));
  }

  @Test
  void twoPoolsWithOverlappingRidsOnOneUnitAreRefusedNamingTheEarlierMember() {
    assertOnly(
        "iommulab.topology.device-pools[1].first-rid = 10:00.1: member b-0 gets rid 10:00.1, already"
            + " used on vtd1 by device-pools[0] member a-1; a RID is unique per unit",
        "iommulab.topology.device-pools = ["
            + " { name-prefix = a, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 100 },"
            + " { name-prefix = b, count = 2, unit = vtd1, first-rid = \"10:00.1\", first-group = 200 } ]");
  }

  @Test
  void aPoolGroupThatAlreadySitsBehindAnotherUnitIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-group = 4: member p-1 gets group 5, which already"
            + " sits behind smmu0 with devices[5] (nic2), but the pool is behind vtd1; all devices of"
            + " a group sit behind one unit",
        pool("name-prefix = p, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 4"));
  }

  @Test
  void aPoolBehindAPamuWithoutFirstLiodnIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-liodn: missing (required behind PAMU unit pamu0, a"
            + " LIODN from 0 to 1279)",
        pool("name-prefix = p, count = 2, unit = pamu0, first-rid = \"04:00.0\", first-group = 100"));
  }

  @Test
  void aPoolBehindAPagingUnitCannotHaveAFirstLiodn() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-liodn = 10: only a device behind a PAMU unit has a"
            + " LIODN (vtd1 is a vtd unit)",
        pool("name-prefix = p, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 100, first-liodn = 10"));
  }

  @Test
  void aPoolWhoseLiodnsRunPastThePpaactIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-liodn = 1200: the pool's 100 LIODNs run past 1279"
            + " (pamu0 has ppaact-entries = 1280)",
        pool(
            "name-prefix = p, count = 100, unit = pamu0, first-rid = \"04:00.0\", first-group = 100,"
                + " first-liodn = 1200"));
  }

  @Test
  void aPoolLiodnClashingWithAnotherGroupIsRefused() {
    assertOnly(
        "iommulab.topology.device-pools[0].first-liodn = 1: member p-0 gets liodn 1, already used by"
            + " devices[7] (dpaa0) in group 7; devices may share a LIODN only within one group",
        pool(
            "name-prefix = p, count = 2, unit = pamu0, first-rid = \"04:00.0\", first-group = 8,"
                + " first-liodn = 1"));
  }

  @Test
  void poolDeviceKeysObeyTheSameRulesAsListedDevices() {
    assertOnly(
        "iommulab.topology.device-pools[0].pri = on: requires ats = on (PRI extends ATS: a page"
            + " request follows a failed translation)",
        pool("name-prefix = p, count = 2, unit = vtd1, first-rid = \"10:00.0\", first-group = 100, pri = on"));
  }

  @Test
  void fourFullBusesOfDevicesOnFourUnitsExpandAndValidateQuickly() {
    StringBuilder b = new StringBuilder("iommulab.topology.device-pools = [");
    String[] units = {"vtd0", "vtd1", "smmu0"};
    for (int i = 0; i < units.length; i++) {
      // 0x10000 - 0x0800 RIDs from bus 08 up: the defaults use buses 00-03 only.
      b.append(
          String.format(
              " { name-prefix = u%d, count = %d, unit = %s, first-rid = \"08:00.0\", first-group = %d },",
              i, 0x10000 - 0x800, units[i], 1000 + i * 0x10000));
    }
    b.append(" ]");
    long start = System.nanoTime();
    TopologySettings t = Hocon.topology(b.toString());
    long millis = (System.nanoTime() - start) / 1_000_000;
    assertEquals(10 + 3 * (0x10000 - 0x800), t.devices().size());
    DeviceSettings last = t.devices().get(t.devices().size() - 1);
    assertEquals("ff:1f.7", last.rid());
    assertEquals("u2-" + (0x10000 - 0x800 - 1), last.name());
    // A generous bound, only to catch a quadratic check; typically well under a second.
    assertTrue(millis < 10_000, "validating " + t.devices().size() + " devices took " + millis + " ms");
  }
}
