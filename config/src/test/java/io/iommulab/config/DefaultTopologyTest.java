package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.IotlbSettings.Eviction;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class DefaultTopologyTest {
  private static final long K4 = 4096;
  private static final long M2 = 2L << 20;
  private static final long G1 = 1L << 30;

  private final IommulabSettings settings = IommulabSettings.defaults();
  private final TopologySettings topology = settings.topology();

  @Test
  void theDefaultConfigLoadsThroughConfigFactoryLoadToo() {
    assertEquals(settings, IommulabSettings.load());
  }

  @Test
  void theHostHas32GiBOfMemoryEndingBelowTheMsiBanks() {
    assertEquals(32L << 30, topology.hostMemoryBytes());
    for (MsiBankSettings bank : topology.msiBanks()) {
      assertTrue(bank.msiirAddress() >= topology.hostMemoryBytes(), "MSIIR page is MMIO, not RAM");
    }
  }

  @Test
  void theUnitsAreTwoVtdOneSmmuv3AndOnePamuInOrder() {
    assertEquals(
        List.of("vtd0", "vtd1", "smmu0", "pamu0"),
        topology.units().stream().map(IommuUnitSettings::name).toList());
    assertEquals(
        List.of(UnitKind.VTD, UnitKind.VTD, UnitKind.SMMUV3, UnitKind.PAMU),
        topology.units().stream().map(IommuUnitSettings::kind).toList());
  }

  @Test
  void vtd0CanEnforceSnoopAndVtd1CannotBlockNoSnoop() {
    assertTrue(paging("vtd0").snoopControl());
    assertFalse(paging("vtd1").snoopControl());
  }

  @Test
  void vtd0HasEveryVtdDefault() {
    assertEquals(
        new PagingUnitSettings(
            "vtd0",
            UnitKind.VTD,
            48,
            List.of(K4, M2, G1),
            true,
            true,
            true,
            true,
            20,
            65536,
            new IotlbSettings(512, 8, Eviction.LRU),
            256,
            18,
            false),
        paging("vtd0"));
    assertEquals(4, paging("vtd0").levels());
  }

  @Test
  void smmu0HasEverySmmuv3Default() {
    assertEquals(
        new PagingUnitSettings(
            "smmu0",
            UnitKind.SMMUV3,
            48,
            List.of(K4, M2, G1),
            true,
            true,
            true,
            true,
            20,
            65536,
            new IotlbSettings(512, 8, Eviction.LRU),
            256,
            18,
            false),
        paging("smmu0"));
  }

  @Test
  void pamu0HasTheHardwareTableSizesAndA64GiBAperture() {
    assertEquals(
        new PamuUnitSettings("pamu0", 0x500, 0x800, 256, 0, 1L << 36), topology.unit("pamu0").get());
    assertFalse(topology.unit("pamu0").get().msiIsolation());
  }

  @Test
  void theTenDefaultDevicesAreExactlyTheDocumentedOnes() {
    OptionalInt none = OptionalInt.empty();
    List<DeviceSettings> expected =
        List.of(
            new DeviceSettings("nic0", "vtd0", "00:02.0", none, 1, 20, true, 64, true, 8, false, false),
            new DeviceSettings("nvme0", "vtd0", "00:03.0", none, 2, 0, true, 64, false, 1, false, false),
            new DeviceSettings("gpu0", "vtd0", "00:04.0", none, 3, 0, false, 64, false, 1, false, false),
            new DeviceSettings(
                "gpu0-audio", "vtd0", "00:04.1", none, 3, 0, false, 64, false, 1, false, false),
            new DeviceSettings("nic1", "vtd1", "01:00.0", none, 4, 0, false, 64, false, 1, true, false),
            new DeviceSettings("nic2", "smmu0", "02:00.0", none, 5, 20, true, 64, true, 4, false, false),
            new DeviceSettings("accel0", "smmu0", "02:01.0", none, 6, 0, true, 64, false, 1, false, true),
            new DeviceSettings(
                "dpaa0", "pamu0", "03:00.0", OptionalInt.of(1), 7, 0, false, 64, false, 4, false, false),
            new DeviceSettings(
                "pcie0", "pamu0", "03:01.0", OptionalInt.of(2), 8, 0, false, 64, false, 1, false, false),
            new DeviceSettings(
                "pcie1", "pamu0", "03:02.0", OptionalInt.of(3), 9, 0, false, 64, false, 1, false, false));
    assertEquals(expected, topology.devices());
  }

  @Test
  void gpu0AndItsAudioFunctionFormOneTwoFunctionGroup() {
    assertEquals(
        List.of("gpu0", "gpu0-audio"),
        topology.devices().stream().filter(d -> d.group() == 3).map(DeviceSettings::name).toList());
    assertEquals(0x0021, topology.device("gpu0-audio").get().ridValue());
  }

  @Test
  void threeMsiBanksSitAtTheAddressesOfThe2013PamuThread() {
    assertEquals(
        List.of(
            new MsiBankSettings(0, 0xffe044000L, 256),
            new MsiBankSettings(1, 0xffe045000L, 256),
            new MsiBankSettings(2, 0xffe046000L, 256)),
        topology.msiBanks());
  }

  @Test
  void theCostModelHasTheDocumentedDefaultLatencies() {
    assertEquals(
        new CostModelSettings(5, 25, 3, 400, 20, 150, 1_000, 2_000, 300, 10, 8),
        settings.costModel());
    assertEquals(settings.costModel(), CostModelSettings.defaults());
  }

  private PagingUnitSettings paging(String name) {
    return assertInstanceOf(PagingUnitSettings.class, topology.unit(name).orElseThrow());
  }
}
