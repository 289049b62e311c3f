package io.iommulab.hardware.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.DeviceSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.memory.HostMemory;
import io.iommulab.hardware.pci.PciDevice.PriIssue;
import io.iommulab.hardware.pci.PciDevice.PriResponse;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class PciDeviceTest {

  private static PciDevice sva() {
    return new PciDevice(Devices.svaCapable("nic0", "3a:00.1", 7), 0, 42L);
  }

  private static PciDevice plain() {
    return new PciDevice(Devices.plain("disk0", "00:1f.2", 3), 1, 42L);
  }

  private static PciDevice priReady(int requests) {
    PciDevice d = sva();
    assertTrue(d.enableAts().isOk());
    assertTrue(d.enablePri(requests).isOk());
    return d;
  }

  @Test
  void identityAndCapabilitiesComeFromTheSettings() {
    PciDevice d = sva();
    assertEquals(0x3a << 8 | 0 << 3 | 1, d.rid());
    assertEquals("3a:00.1", d.ridText());
    assertEquals(7, d.group());
    assertEquals(-1, d.liodn());
    assertEquals(1 << 20, d.maxPasids());
    assertTrue(d.atsCapable() && d.priCapable());
    assertEquals(64, d.atcEntries());
    assertEquals(8, d.msiVectors());
    PciDevice p = new PciDevice(Devices.pamu("dpaa0", "01:00.0", 1, 0x48), 2, 1L);
    assertEquals(0x48, p.liodn());
    assertTrue(p.noSnoop());
    assertEquals(0, p.maxPasids());
    assertEquals(2, p.unitIndex());
  }

  @Test
  void inconsistentSettingsAreRefusedAtConstruction() {
    assertThrows(IllegalArgumentException.class, () -> new PciDevice(new DeviceSettings(
        "x", "u", "00:01.0", OptionalInt.empty(), 1, 0, false, 0, true, 1, false, false), 0, 1L));
    assertThrows(IllegalArgumentException.class, () -> new PciDevice(new DeviceSettings(
        "x", "u", "00:41.0", OptionalInt.empty(), 1, 0, false, 0, false, 1, false, false), 0, 1L));
    assertThrows(IllegalArgumentException.class, () -> new PciDevice(new DeviceSettings(
        "x", "u", "00:01.0", OptionalInt.empty(), 1, 21, false, 0, false, 1, false, false), 0, 1L));
    assertThrows(IllegalArgumentException.class, () -> new PciDevice(new DeviceSettings(
        "x", "u", "00:01.0", OptionalInt.empty(), 1, 0, true, 0, false, 1, false, false), 0, 1L));
  }

  @Test
  void anUnownedDeviceExpectsToTouchNobodysMemoryAndCannotMaster() {
    PciDevice d = plain();
    assertEquals(DmaOwner.NONE, d.dmaOwner());
    assertEquals(HostMemory.NOBODY, d.expectedMemoryOwner());
    d.setBusMaster(true);
    assertFalse(d.canMasterDma());
    assertEquals(HostMemory.HOST, new DmaOwner.KernelDriver("ahci").memoryOwner());
    assertEquals(12, new DmaOwner.User(3, 12).memoryOwner());
  }

  @Test
  void enablingAtsWithoutTheCapabilityIsEopnotsuppAndChangesNothing() {
    PciDevice d = plain();
    String before = d.stateSummary();
    assertEquals(Errno.EOPNOTSUPP, d.enableAts().errnoOrNull());
    assertEquals(before, d.stateSummary());
    assertFalse(d.atsEnabled());
  }

  @Test
  void atsEnableAndDisableFollowThePciRules() {
    PciDevice d = sva();
    assertEquals(Errno.EINVAL, d.disableAts().errnoOrNull());
    assertTrue(d.enableAts().isOk());
    String enabled = d.stateSummary();
    assertEquals(Errno.EBUSY, d.enableAts().errnoOrNull());
    assertTrue(d.enablePri(8).isOk());
    String withPri = d.stateSummary();
    assertEquals(Errno.EBUSY, d.disableAts().errnoOrNull());
    assertEquals(withPri, d.stateSummary());
    d.disablePri();
    assertTrue(d.disableAts().isOk());
    assertFalse(d.atsEnabled());
    assertTrue(enabled.contains("ats=true"));
  }

  @Test
  void theAtcIsCreatedLazilyAndNeverBeforeAtsWasEnabled() {
    PciDevice d = sva();
    assertThrows(IllegalStateException.class, d::atc);
    assertTrue(d.enableAts().isOk());
    // The ATC itself (cache package) is created on first use, not by enabling ATS.
    assertFalse(d.hasAtc());
  }

  @Test
  void priWithoutAtsIsEinvalAndChangesNothing() {
    PciDevice d = sva();
    String before = d.stateSummary();
    assertEquals(Errno.EINVAL, d.enablePri(32).errnoOrNull());
    assertEquals(before, d.stateSummary());
    assertEquals(Errno.EOPNOTSUPP, plain().enablePri(32).errnoOrNull());
    assertTrue(d.enableAts().isOk());
    assertEquals(Errno.EINVAL, d.enablePri(0).errnoOrNull());
    assertTrue(d.enablePri(1000).isOk());
    assertEquals(PciDevice.DEFAULT_PRI_CAPACITY, d.priAllocation(), "min(capacity, requested)");
    assertEquals(Errno.EBUSY, d.enablePri(4).errnoOrNull());
    assertEquals(PciDevice.DEFAULT_PRI_CAPACITY, d.priAllocation());
  }

  @Test
  void aPasidBeyondTheWidthIsEinval() {
    PciDevice narrow = new PciDevice(new DeviceSettings(
        "acc0", "u", "02:00.0", OptionalInt.empty(), 2, 8, true, 16, false, 1, false, false),
        0, 1L);
    assertEquals(Errno.EINVAL, narrow.checkPasid(5).errnoOrNull(), "PASID not enabled");
    assertTrue(narrow.enablePasid().isOk());
    assertTrue(narrow.checkPasid(FaultRecord.NO_PASID).isOk());
    assertTrue(narrow.checkPasid(0).isOk());
    assertTrue(narrow.checkPasid(255).isOk());
    assertEquals(Errno.EINVAL, narrow.checkPasid(256).errnoOrNull());
    assertEquals(Errno.EINVAL, narrow.checkPasid(-7).errnoOrNull());
    assertEquals(Errno.EINVAL, narrow.enablePasid().errnoOrNull());
    assertEquals(Errno.EOPNOTSUPP, plain().enablePasid().errnoOrNull());
    assertTrue(plain().checkPasid(FaultRecord.NO_PASID).isOk());
    assertEquals(Errno.EINVAL, plain().checkPasid(1).errnoOrNull());
  }

  @Test
  void pageRequestsBeyondTheAllocationMustWaitAndChangeNothing() {
    PciDevice d = priReady(4);
    int prg = d.openPageRequestGroup();
    assertEquals(0, prg);
    for (int i = 0; i < 4; i++) {
      assertEquals(PriIssue.ISSUED, d.issuePageRequest(prg));
    }
    int other = d.openPageRequestGroup();
    String full = d.stateSummary();
    assertEquals(PriIssue.WAIT, d.issuePageRequest(other));
    assertEquals(PriIssue.WAIT, d.issuePageRequest(prg));
    assertEquals(full, d.stateSummary());
    assertEquals(4, d.priOutstanding());
    assertEquals(4, d.completePageRequestGroup(prg, PriResponse.SUCCESS));
    assertEquals(0, d.priOutstanding());
    assertEquals(PriIssue.ISSUED, d.issuePageRequest(other));
    assertEquals(1, d.pageRequestsInGroup(other));
    d.checkInvariants();
  }

  @Test
  void prgIndexesAreNineBitsAndRunOut() {
    PciDevice d = priReady(32);
    for (int i = 0; i < 512; i++) {
      assertEquals(i, d.openPageRequestGroup());
    }
    assertEquals(PciDevice.PRG_WAIT, d.openPageRequestGroup());
    assertEquals(0, d.completePageRequestGroup(300, PriResponse.INVALID_REQUEST));
    assertEquals(300, d.openPageRequestGroup());
    assertEquals(512, d.openPageRequestGroups());
    d.checkInvariants();
  }

  @Test
  void aResponseForAnIndexNotOutstandingSetsUprgiAndChangesNothingElse() {
    PciDevice d = priReady(8);
    int prg = d.openPageRequestGroup();
    d.issuePageRequest(prg);
    assertEquals(-1, d.completePageRequestGroup(prg + 1, PriResponse.SUCCESS));
    assertTrue(d.priUnexpectedGroupIndex());
    assertEquals(1, d.priOutstanding());
    assertTrue(d.pageRequestGroupOpen(prg));
    assertThrows(IllegalStateException.class, () -> d.issuePageRequest(prg + 1));
  }

  @Test
  void aResponseFailureStopsPriUntilReset() {
    PciDevice d = priReady(8);
    int prg = d.openPageRequestGroup();
    d.issuePageRequest(prg);
    int other = d.openPageRequestGroup();
    assertEquals(1, d.completePageRequestGroup(prg, PriResponse.RESPONSE_FAILURE));
    assertTrue(d.priResponseFailure());
    assertEquals(PriIssue.STOPPED, d.issuePageRequest(other));
    assertEquals(PciDevice.PRG_STOPPED, d.openPageRequestGroup());
    String stopped = d.stateSummary();
    assertEquals(Errno.EBUSY, d.resetPri().errnoOrNull());
    assertEquals(stopped, d.stateSummary());
    d.disablePri();
    assertTrue(d.resetPri().isOk());
    assertFalse(d.priResponseFailure());
    assertEquals(0, d.openPageRequestGroups());
    assertTrue(d.enablePri(8).isOk());
    assertEquals(0, d.openPageRequestGroup());
  }

  @Test
  void reenablingPriWithRequestsOutstandingIsEbusy() {
    PciDevice d = priReady(8);
    int prg = d.openPageRequestGroup();
    d.issuePageRequest(prg);
    d.disablePri();
    assertFalse(d.priStopped());
    assertEquals(PriIssue.STOPPED, d.issuePageRequest(prg));
    String before = d.stateSummary();
    assertEquals(Errno.EBUSY, d.enablePri(8).errnoOrNull());
    assertEquals(before, d.stateSummary());
    // The response still arrives after disable, and then the function is STOPPED.
    assertEquals(1, d.completePageRequestGroup(prg, PriResponse.SUCCESS));
    assertTrue(d.priStopped());
    assertTrue(d.enablePri(8).isOk());
  }

  @Test
  void msiVectorsAreProgrammedWithinTheTable() {
    PciDevice d = sva();
    assertFalse(d.msiProgrammed(0));
    assertEquals(PciDevice.MSI_UNPROGRAMMED, d.msiBank(0));
    assertTrue(d.programMsiVector(0, 2, 0x1234).isOk());
    assertTrue(d.programMsiVector(7, PciDevice.MSI_REMAPPED, 9).isOk());
    assertEquals(2, d.msiBank(0));
    assertEquals(0x1234, d.msiData(0));
    assertEquals(PciDevice.MSI_REMAPPED, d.msiBank(7));
    String before = d.stateSummary();
    assertEquals(Errno.EINVAL, d.programMsiVector(8, 0, 1).errnoOrNull());
    assertEquals(Errno.EINVAL, d.programMsiVector(-1, 0, 1).errnoOrNull());
    assertEquals(Errno.EINVAL, d.programMsiVector(1, -3, 1).errnoOrNull());
    assertEquals(before, d.stateSummary());
    d.clearMsiVector(0);
    assertFalse(d.msiProgrammed(0));
    assertThrows(IllegalArgumentException.class, () -> d.msiBank(8));
  }

  @Test
  void functionLevelResetClearsCapabilitiesPriAndMsi() {
    PciDevice d = priReady(8);
    assertTrue(d.enablePasid().isOk());
    d.setBusMaster(true);
    d.issuePageRequest(d.openPageRequestGroup());
    d.programMsiVector(3, 1, 77);
    d.functionLevelReset();
    assertFalse(d.busMaster() || d.atsEnabled() || d.pasidEnabled() || d.priEnabled());
    assertEquals(0, d.priOutstanding());
    assertTrue(d.priStopped());
    assertFalse(d.msiProgrammed(3));
    d.checkInvariants();
    assertTrue(d.enableAts().isOk());
    assertTrue(d.enablePri(8).isOk());
  }
}
