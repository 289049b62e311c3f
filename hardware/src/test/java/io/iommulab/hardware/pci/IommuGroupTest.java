package io.iommulab.hardware.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.memory.HostMemory;
import org.junit.jupiter.api.Test;

class IommuGroupTest {
  private static final DmaOwner.User CTX_A = new DmaOwner.User(1, 10);
  private static final DmaOwner.User CTX_B = new DmaOwner.User(2, 11);

  private final PciDevice fn0 = new PciDevice(Devices.plain("gpu.0", "05:00.0", 4), 0, 1L);
  private final PciDevice fn1 = new PciDevice(Devices.plain("gpu.1", "05:00.1", 4), 0, 2L);
  private final IommuGroup group = groupOf(fn0, fn1);

  private static IommuGroup groupOf(PciDevice... devices) {
    IommuGroup g = new IommuGroup(4);
    for (PciDevice d : devices) {
      assertTrue(g.addDevice(d).isOk());
    }
    return g;
  }

  private String snapshot() {
    return group.stateSummary() + fn0.stateSummary() + fn1.stateSummary();
  }

  @Test
  void devicesOfOneGroupMayBeClaimedByTheSameContext() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    assertTrue(group.claimDmaOwner(fn1, CTX_A).isOk());
    assertEquals(2, group.ownerCount());
    assertEquals(CTX_A, group.owner());
    assertEquals(10, fn1.expectedMemoryOwner());
    group.checkInvariants();
    group.releaseDmaOwner(fn0);
    assertEquals(CTX_A, group.owner());
    group.releaseDmaOwner(fn1);
    assertEquals(DmaOwner.NONE, group.owner());
    group.checkInvariants();
  }

  @Test
  void claimingADeviceOfAGroupHeldByAnotherContextIsEpermAndChangesNothing() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    String before = snapshot();
    assertEquals(Errno.EPERM, group.claimDmaOwner(fn1, CTX_B).errnoOrNull());
    assertEquals(Errno.EPERM, group.claimDmaOwner(fn0, CTX_B).errnoOrNull());
    assertEquals(Errno.EPERM, group.claimGroupDmaOwner(CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
    group.checkInvariants();
  }

  @Test
  void claimingTheSameDeviceTwiceIsEbusy() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.claimDmaOwner(fn0, CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
  }

  @Test
  void aKernelDriverInTheGroupMakesItUnviableAndUserClaimsEperm() {
    assertTrue(group.bindKernelDriver(fn1, "snd_hda_intel").isOk());
    assertEquals(IommuGroup.DMA_API, group.owner());
    assertEquals(HostMemory.HOST, fn1.expectedMemoryOwner());
    assertFalse(group.isViable());
    String before = snapshot();
    assertEquals(Errno.EPERM, group.claimDmaOwner(fn0, CTX_A).errnoOrNull());
    assertEquals(Errno.EPERM, group.claimGroupDmaOwner(CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
    // Two kernel drivers share the default domain.
    assertTrue(group.bindKernelDriver(fn0, "nouveau").isOk());
    assertEquals(2, group.ownerCount());
    group.unbindKernelDriver(fn0);
    group.unbindKernelDriver(fn1);
    assertTrue(group.isViable());
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    group.checkInvariants();
  }

  @Test
  void bindingAKernelDriverInAUserOwnedGroupIsEbusyAndChangesNothing() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.bindKernelDriver(fn1, "nouveau").errnoOrNull());
    assertEquals(Errno.EBUSY, group.bindKernelDriver(fn0, "nouveau").errnoOrNull());
    assertEquals(before, snapshot());
    assertTrue(group.isViable());
  }

  @Test
  void aGroupClaimOwnsEveryMemberAndItsReleaseStopsTheirDma() {
    assertTrue(group.claimGroupDmaOwner(CTX_B).isOk());
    assertTrue(group.claimedAsGroup());
    assertEquals(CTX_B, fn0.dmaOwner());
    assertEquals(CTX_B, fn1.dmaOwner());
    assertEquals(1, group.ownerCount());
    group.checkInvariants();
    fn0.setBusMaster(true);
    assertTrue(fn0.canMasterDma());
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.claimDmaOwner(fn1, CTX_B).errnoOrNull());
    assertEquals(before, snapshot());
    assertThrows(IllegalStateException.class, () -> group.releaseDmaOwner(fn0));
    group.releaseGroupDmaOwner();
    assertEquals(DmaOwner.NONE, fn0.dmaOwner());
    assertFalse(fn0.busMaster());
    group.checkInvariants();
  }

  @Test
  void releasingAUserClaimClearsBusMastering() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    fn0.setBusMaster(true);
    group.releaseDmaOwner(fn0);
    assertFalse(fn0.busMaster());
    assertFalse(fn0.canMasterDma());
  }

  @Test
  void takingAGroupOutOfAForeignDomainOrWithPasidsAttachedIsEbusy() {
    group.setForeignDomainAttached(true);
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.claimDmaOwner(fn0, CTX_A).errnoOrNull());
    assertEquals(Errno.EBUSY, group.claimGroupDmaOwner(CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
    // Only a group that already has owners refuses kernel drivers for it.
    assertTrue(group.bindKernelDriver(fn0, "e1000e").isOk());
    assertEquals(Errno.EBUSY, group.bindKernelDriver(fn1, "e1000e").errnoOrNull());
    group.unbindKernelDriver(fn0);
    group.setForeignDomainAttached(false);
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
  }

  @Test
  void releasingTheLastOwnerWithPasidsAttachedIsABug() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    assertTrue(group.claimDmaOwner(fn1, CTX_A).isOk());
    group.pasidAttached();
    group.releaseDmaOwner(fn1);
    String before = snapshot();
    assertThrows(IllegalStateException.class, () -> group.releaseDmaOwner(fn0));
    assertEquals(before, snapshot());
    group.pasidDetached();
    group.releaseDmaOwner(fn0);
    assertThrows(IllegalStateException.class, group::pasidAttached);
    group.checkInvariants();
  }

  @Test
  void membershipRulesForHotplug() {
    PciDevice twin = new PciDevice(Devices.plain("twin", "05:00.0", 4), 0, 3L);
    String before = snapshot();
    assertEquals(Errno.EEXIST, group.addDevice(twin).errnoOrNull());
    assertEquals(before, snapshot());
    PciDevice stranger = new PciDevice(Devices.plain("x", "06:00.0", 5), 0, 3L);
    assertThrows(IllegalArgumentException.class, () -> group.addDevice(stranger));
    assertEquals(Errno.ENOENT, group.removeDevice(stranger).errnoOrNull());
    assertTrue(group.claimDmaOwner(fn1, CTX_A).isOk());
    assertEquals(Errno.EBUSY, group.removeDevice(fn1).errnoOrNull());
    group.releaseDmaOwner(fn1);
    assertTrue(group.removeDevice(fn1).isOk());
    assertEquals(1, group.members().size());
    // A function hotplugged into a group claimed as a whole lands in its owner's hands.
    assertTrue(group.claimGroupDmaOwner(CTX_A).isOk());
    PciDevice fn2 = new PciDevice(Devices.plain("gpu.2", "05:00.2", 4), 0, 4L);
    assertTrue(group.addDevice(fn2).isOk());
    assertEquals(CTX_A, fn2.dmaOwner());
    assertEquals(fn2, group.member(fn2.rid()));
    group.checkInvariants();
  }

  @Test
  void oneContextCannotClaimForTwoVms() {
    assertTrue(group.claimDmaOwner(fn0, CTX_A).isOk());
    assertThrows(
        IllegalArgumentException.class,
        () -> group.claimDmaOwner(fn1, new DmaOwner.User(CTX_A.ictxId(), 99)));
  }
}
