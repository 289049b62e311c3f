package io.iommulab.hardware.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.Rids;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.memory.HostMemory;
import java.util.List;
import org.junit.jupiter.api.Test;

class IommuGroupTest {
  private static final DmaOwner.User CTX_A = new DmaOwner.User(1, 10);
  private static final DmaOwner.User CTX_B = new DmaOwner.User(2, 11);

  private static final int FN0 = Rids.parse("05:00.0").orElseThrow();
  private static final int FN1 = Rids.parse("05:00.1").orElseThrow();
  private final IommuGroup group = groupOf(FN0, FN1);

  private static IommuGroup groupOf(int... rids) {
    IommuGroup g = new IommuGroup(4);
    for (int rid : rids) {
      assertTrue(g.addDevice(rid).isOk());
    }
    return g;
  }

  private String snapshot() {
    return group.stateSummary();
  }

  @Test
  void devicesOfOneGroupMayBeClaimedByTheSameContext() {
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    assertTrue(group.claimDmaOwner(FN1, CTX_A).isOk());
    assertEquals(2, group.ownerCount());
    assertEquals(CTX_A, group.owner());
    assertEquals(10, group.memberOwner(FN1).memoryOwner());
    group.checkInvariants();
    group.releaseDmaOwner(FN0);
    assertEquals(CTX_A, group.owner());
    group.releaseDmaOwner(FN1);
    assertEquals(DmaOwner.NONE, group.owner());
    group.checkInvariants();
  }

  @Test
  void claimingADeviceOfAGroupHeldByAnotherContextIsEpermAndChangesNothing() {
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    String before = snapshot();
    assertEquals(Errno.EPERM, group.claimDmaOwner(FN1, CTX_B).errnoOrNull());
    assertEquals(Errno.EPERM, group.claimDmaOwner(FN0, CTX_B).errnoOrNull());
    assertEquals(Errno.EPERM, group.claimGroupDmaOwner(CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
    group.checkInvariants();
  }

  @Test
  void claimingTheSameDeviceTwiceIsEbusy() {
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.claimDmaOwner(FN0, CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
  }

  @Test
  void aKernelDriverInTheGroupMakesItUnviableAndUserClaimsEperm() {
    assertTrue(group.bindKernelDriver(FN1, "snd_hda_intel").isOk());
    assertEquals(IommuGroup.DMA_API, group.owner());
    assertEquals(HostMemory.HOST, group.memberOwner(FN1).memoryOwner());
    assertFalse(group.isViable());
    String before = snapshot();
    assertEquals(Errno.EPERM, group.claimDmaOwner(FN0, CTX_A).errnoOrNull());
    assertEquals(Errno.EPERM, group.claimGroupDmaOwner(CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
    // Two kernel drivers share the default domain.
    assertTrue(group.bindKernelDriver(FN0, "nouveau").isOk());
    assertEquals(2, group.ownerCount());
    group.unbindKernelDriver(FN0);
    group.unbindKernelDriver(FN1);
    assertTrue(group.isViable());
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    group.checkInvariants();
  }

  @Test
  void bindingAKernelDriverInAUserOwnedGroupIsEbusyAndChangesNothing() {
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.bindKernelDriver(FN1, "nouveau").errnoOrNull());
    assertEquals(Errno.EBUSY, group.bindKernelDriver(FN0, "nouveau").errnoOrNull());
    assertEquals(before, snapshot());
    assertTrue(group.isViable());
  }

  @Test
  void aGroupClaimOwnsEveryMemberAndItsReleaseUnownsThem() {
    assertTrue(group.claimGroupDmaOwner(CTX_B).isOk());
    assertTrue(group.claimedAsGroup());
    assertEquals(CTX_B, group.memberOwner(FN0));
    assertEquals(CTX_B, group.memberOwner(FN1));
    assertEquals(1, group.ownerCount());
    group.checkInvariants();
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.claimDmaOwner(FN1, CTX_B).errnoOrNull());
    assertEquals(before, snapshot());
    assertThrows(IllegalStateException.class, () -> group.releaseDmaOwner(FN0));
    group.releaseGroupDmaOwner();
    assertEquals(DmaOwner.NONE, group.memberOwner(FN0));
    assertEquals(DmaOwner.NONE, group.memberOwner(FN1));
    group.checkInvariants();
  }

  @Test
  void aFunctionToldItLostItsOwnerStopsBusMastering() {
    PciDevice fn0 = new PciDevice(Devices.plain("gpu.0", "05:00.0", 4), 0, 1L);
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    fn0.setOwner(group.memberOwner(FN0));
    fn0.setBusMaster(true);
    assertTrue(fn0.canMasterDma());
    group.releaseDmaOwner(FN0);
    fn0.setOwner(group.memberOwner(FN0));
    assertFalse(fn0.busMaster());
    assertFalse(fn0.canMasterDma());
  }

  @Test
  void takingAGroupOutOfAForeignDomainOrWithPasidsAttachedIsEbusy() {
    group.setForeignDomainAttached(true);
    String before = snapshot();
    assertEquals(Errno.EBUSY, group.claimDmaOwner(FN0, CTX_A).errnoOrNull());
    assertEquals(Errno.EBUSY, group.claimGroupDmaOwner(CTX_A).errnoOrNull());
    assertEquals(before, snapshot());
    // Only a group that already has owners refuses kernel drivers for it.
    assertTrue(group.bindKernelDriver(FN0, "e1000e").isOk());
    assertEquals(Errno.EBUSY, group.bindKernelDriver(FN1, "e1000e").errnoOrNull());
    group.unbindKernelDriver(FN0);
    group.setForeignDomainAttached(false);
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
  }

  @Test
  void releasingTheLastOwnerWithPasidsAttachedIsABug() {
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    assertTrue(group.claimDmaOwner(FN1, CTX_A).isOk());
    group.pasidAttached();
    group.releaseDmaOwner(FN1);
    String before = snapshot();
    assertThrows(IllegalStateException.class, () -> group.releaseDmaOwner(FN0));
    assertEquals(before, snapshot());
    group.pasidDetached();
    group.releaseDmaOwner(FN0);
    assertThrows(IllegalStateException.class, group::pasidAttached);
    group.checkInvariants();
  }

  @Test
  void membershipRulesForHotplug() {
    String before = snapshot();
    assertEquals(Errno.EEXIST, group.addDevice(FN0).errnoOrNull());
    assertEquals(Errno.EINVAL, group.addDevice(0x10000).errnoOrNull());
    assertEquals(before, snapshot());
    int stranger = Rids.parse("06:00.0").orElseThrow();
    assertEquals(Errno.ENOENT, group.removeDevice(stranger).errnoOrNull());
    assertThrows(IllegalArgumentException.class, () -> group.claimDmaOwner(stranger, CTX_A));
    assertTrue(group.claimDmaOwner(FN1, CTX_A).isOk());
    assertEquals(Errno.EBUSY, group.removeDevice(FN1).errnoOrNull());
    group.releaseDmaOwner(FN1);
    assertTrue(group.removeDevice(FN1).isOk());
    assertEquals(List.of(FN0), group.members());
    // A function hotplugged into a group claimed as a whole lands in its owner's hands.
    assertTrue(group.claimGroupDmaOwner(CTX_A).isOk());
    int fn2 = Rids.parse("05:00.2").orElseThrow();
    assertTrue(group.addDevice(fn2).isOk());
    assertEquals(CTX_A, group.memberOwner(fn2));
    assertTrue(group.isMember(fn2));
    group.checkInvariants();
  }

  @Test
  void oneContextCannotClaimForTwoVms() {
    assertTrue(group.claimDmaOwner(FN0, CTX_A).isOk());
    assertThrows(
        IllegalArgumentException.class,
        () -> group.claimDmaOwner(FN1, new DmaOwner.User(CTX_A.ictxId(), 99)));
  }
}
