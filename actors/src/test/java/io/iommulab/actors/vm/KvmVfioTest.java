package io.iommulab.actors.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import org.junit.jupiter.api.Test;

class KvmVfioTest {

  @Test
  void wbinvdEmulationSwitchesOnWithTheFirstNonCoherentFileAndOffWithTheLast() {
    KvmVfio kvm = new KvmVfio();
    kvm.addFile("nic0", true);
    assertFalse(kvm.wbinvdEmulation());

    kvm.addFile("nic1", false);
    assertTrue(kvm.wbinvdEmulation());
    kvm.addFile("nic2", false);
    assertEquals(1, kvm.snapshot().registrations(), "one registration per KVM VFIO device");
    assertEquals(1, kvm.snapshot().noncoherentDmaCount());

    kvm.deleteFile("nic1");
    assertTrue(kvm.wbinvdEmulation(), "nic2 is still non-coherent");
    kvm.deleteFile("nic2");
    assertFalse(kvm.wbinvdEmulation());
    KvmVfio.Snapshot s = kvm.snapshot();
    assertEquals(1, s.registrations());
    assertEquals(1, s.unregistrations());
    assertEquals(0, s.noncoherentDmaCount());
    kvm.checkInvariants();
  }

  @Test
  void aGuestWbinvdIsEmulatedOnlyWhileNonCoherentDmaIsRegistered() {
    KvmVfio kvm = new KvmVfio();
    assertFalse(kvm.guestWbinvd());
    kvm.addFile("nic1", false);
    assertTrue(kvm.guestWbinvd());
    assertTrue(kvm.guestWbinvd());
    kvm.deleteFile("nic1");
    assertFalse(kvm.guestWbinvd());

    assertEquals(4, kvm.snapshot().wbinvdExits());
    assertEquals(2, kvm.snapshot().wbinvdEmulated());
  }

  @Test
  void addingAFileTwiceIsEexistAndDeletingAnUnknownOneIsEnoentAndNeitherChangesAnything() {
    KvmVfio kvm = new KvmVfio();
    kvm.addFile("nic1", false);
    KvmVfio.Snapshot before = kvm.snapshot();

    assertEquals(Errno.EEXIST, kvm.addFile("nic1", true).errnoOrNull());
    assertEquals(Errno.ENOENT, kvm.deleteFile("nvme0").errnoOrNull());

    assertEquals(before, kvm.snapshot());
    assertTrue(kvm.wbinvdEmulation());
  }

  @Test
  void destroyingTheKvmVfioDeviceUnregistersNonCoherentDma() {
    KvmVfio kvm = new KvmVfio();
    kvm.addFile("nic1", false);
    kvm.addFile("nic0", true);

    kvm.destroy();

    assertFalse(kvm.wbinvdEmulation());
    assertEquals(0, kvm.snapshot().files());
    assertEquals(1, kvm.snapshot().unregistrations());
    kvm.checkInvariants();
  }
}
