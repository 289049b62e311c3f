package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.hardware.Errno;
import io.iommulab.host.uapi.IommuFd.HwptAlloc;
import org.junit.jupiter.api.Test;

/**
 * The snoop-control mode (seed 002): device info reports whether coherency can be enforced, IOAS
 * and HWPT allocation take a snoop flag, attach refuses a mismatch, and the VM's KVM side is told
 * exactly when a device's non-coherent DMA appears and disappears. nic0 and nvme0 sit behind vtd0
 * (snoop control), nic1 behind vtd1 (none).
 *
 * <p>"No event" is asserted without waiting: every scenario ends with an action whose event is
 * known, and events of one fd arrive in order, so an unexpected earlier event would be received
 * first.
 */
class SnoopControlConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private int ioas(int flags) {
    return ok(fd.ioasAlloc(new IommuFd.IoasAlloc(flags)));
  }

  private String summary(int id) {
    for (FdSnapshot.ObjectSnapshot o : f.snapshot().objects()) {
      if (o.id() == id) {
        return o.summary();
      }
    }
    throw new AssertionError("no object " + id);
  }

  private void expectAppeared(VfioDevice cause) {
    IoasidFdActor.FdEvent e = f.events.receiveMessage();
    assertTrue(e instanceof IoasidFdActor.NonCoherentDmaAppeared a && a.devId() == cause.devId(), e.toString());
  }

  private void expectDisappeared(VfioDevice cause) {
    expectDisappeared(cause.devId());
  }

  /** By ID: a device unbound by the test no longer knows its ID. */
  private void expectDisappeared(int devId) {
    IoasidFdActor.FdEvent e = f.events.receiveMessage();
    assertTrue(e instanceof IoasidFdActor.NonCoherentDmaDisappeared d && d.devId() == devId, e.toString());
  }

  // ---------------------------------------------------------------- device info

  @Test
  void deviceInfoReportsWhetherTheDevicesIommuCanEnforceCoherency() {
    VfioDevice nic0 = f.bound("nic0");
    VfioDevice nic1 = f.bound("nic1");
    assertTrue(ok(fd.getHwInfo(new IommuFd.GetHwInfo(0, nic0.devId(), 64))).enforceCacheCoherency());
    assertFalse(ok(fd.getHwInfo(new IommuFd.GetHwInfo(0, nic1.devId(), 64))).enforceCacheCoherency());
  }

  // ---------------------------------------------------------------- allocation flags

  @Test
  void ioasAllocWithBothSnoopFlagsIsEinvalAndCreatesNothing() {
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasAlloc(new IommuFd.IoasAlloc(
        ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP | ModeUapi.IOAS_ALLOC_NO_SNOOP)));
    assertEquals(before, f.state());
  }

  @Test
  void hwptAllocWithEnforceSnoopOnAnIommuWithoutSnoopControlIsEopnotsuppAndChangesNothing() {
    VfioDevice nic1 = f.bound("nic1");
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(HwptAlloc.paging(nic1.devId(), ioas, ModeUapi.HWPT_ALLOC_ENFORCE_SNOOP)));
    assertEquals(before, f.state());
  }

  @Test
  void hwptAllocContradictingTheSnoopFlagOfItsIoasIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = ioas(ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, ModeUapi.HWPT_ALLOC_NO_SNOOP)));
    assertEquals(before, f.state());
  }

  @Test
  void hwptAllocWithBothSnoopFlagsIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas,
        ModeUapi.HWPT_ALLOC_ENFORCE_SNOOP | ModeUapi.HWPT_ALLOC_NO_SNOOP)));
    assertEquals(before, f.state());
  }

  @Test
  void aNoSnoopHwptDoesNotEnforceCoherencyOnAUnitThatCould() {
    VfioDevice nic0 = f.bound("nic0");
    int plain = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), f.ioas(), 0)));
    int noSnoop = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), f.ioas(), ModeUapi.HWPT_ALLOC_NO_SNOOP)));
    assertTrue(summary(plain).contains(" coherent"), summary(plain));
    assertFalse(summary(noSnoop).contains(" coherent"), summary(noSnoop));
  }

  // ---------------------------------------------------------------- attach

  @Test
  void attachOfADeviceThatCannotEnforceToAnEnforceSnoopIoasIsEinvalAndChangesNothing() {
    VfioDevice nic1 = f.bound("nic1");
    int ioas = ioas(ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP);
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic1.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void anEnforceSnoopIoasTakesDevicesWhoseIommuCanEnforce() {
    VfioDevice nic0 = f.bound("nic0");
    int hwpt = ok(nic0.attach(ioas(ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP)));
    assertTrue(summary(hwpt).contains(" coherent"), summary(hwpt));
  }

  @Test
  void onADefaultIoasADeviceThatCannotEnforceGetsASeparateDomain() {
    int ioas = f.ioas();
    int coherent = ok(f.bound("nic0").attach(ioas));
    int other = ok(f.bound("nic1").attach(ioas));
    assertNotEquals(coherent, other);
    assertTrue(summary(coherent).contains(" coherent"), summary(coherent));
    assertFalse(summary(other).contains(" coherent"), summary(other));
  }

  @Test
  void onADefaultIoasDevicesThatCanEnforceShareOneCoherentDomain() {
    int ioas = f.ioas();
    assertEquals(ok(f.bound("nic0").attach(ioas)), ok(f.bound("nvme0").attach(ioas)));
  }

  @Test
  void aNoSnoopIoasGivesEvenADeviceThatCouldEnforceANonEnforcingDomain() {
    VfioDevice nic0 = f.bound("nic0");
    int hwpt = ok(nic0.attach(ioas(ModeUapi.IOAS_ALLOC_NO_SNOOP)));
    assertFalse(summary(hwpt).contains(" coherent"), summary(hwpt));
  }

  // ---------------------------------------------------------------- KVM notification

  @Test
  void aDeviceWhoseIommuCannotEnforceIsNonCoherentFromBindToUnbind() {
    VfioDevice nic1 = f.bound("nic1");
    expectAppeared(nic1);
    ok(nic1.attach(f.ioas()));
    int id = nic1.devId();
    ok(nic1.unbind());
    expectDisappeared(id); // attach added no event
  }

  @Test
  void aDeviceThatCanEnforceIsNonCoherentOnlyWhileAttachedToANonEnforcingDomain() {
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(f.ioas())); // a coherent domain: no event
    ok(nic0.detach());
    ok(nic0.attach(ioas(ModeUapi.IOAS_ALLOC_NO_SNOOP)));
    expectAppeared(nic0);
    ok(nic0.detach());
    expectDisappeared(nic0);
  }

  @Test
  void aSecondNonEnforcingAttachmentOfADeviceSendsNoSecondEvent() {
    VfioDevice nic0 = f.bound("nic0");
    int hwpt = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas(ModeUapi.IOAS_ALLOC_NO_SNOOP),
        io.iommulab.actors.fd.model.Uapi.HWPT_ALLOC_PASID)));
    ok(nic0.attach(hwpt));
    expectAppeared(nic0);
    ok(nic0.pasidAttach(5, hwpt));
    ok(nic0.detach()); // still non-coherent through PASID 5
    ok(nic0.pasidDetach(5));
    expectDisappeared(nic0); // the next event is the end, not a second "appeared"
  }

  @Test
  void vm1BootedWithABAndLaterRemovingBStopsWbinvdEmulationWhenADomainEnforces() {
    int ioas = f.ioas();
    VfioDevice a = f.bound("nic0");
    VfioDevice b = f.bound("nic1");
    expectAppeared(b);
    ok(a.attach(ioas));
    ok(b.attach(ioas));
    int bId = b.devId();
    ok(b.unbind());
    expectDisappeared(bId); // no device of the VM is non-coherent any more
    ok(a.unbind());
    VfioDevice again = f.bound("nic1");
    expectAppeared(again); // A's detach and unbind sent nothing
  }

  @Test
  void vm1SharingANoSnoopIoasKeepsWbinvdEmulationAfterRemovingB() {
    int ioas = ioas(ModeUapi.IOAS_ALLOC_NO_SNOOP);
    VfioDevice a = f.bound("nic0");
    VfioDevice b = f.bound("nic1");
    expectAppeared(b);
    ok(a.attach(ioas));
    expectAppeared(a); // A's domain lets no-snoop through: the VM's history shows
    ok(b.attach(ioas));
    int bId = b.devId();
    ok(b.unbind());
    expectDisappeared(bId);
    ok(a.detach());
    expectDisappeared(a); // only now does the VM lose its last non-coherent device
  }

  @Test
  void vm2BootedWithOnlyANeverRegistersNonCoherentDma() {
    VfioDevice a = f.bound("nic0");
    ok(a.attach(f.ioas()));
    ok(a.unbind());
    VfioDevice b = f.bound("nic1"); // the first event of this fd is B's
    expectAppeared(b);
  }

  @Test
  void replacingANonEnforcingDomainWithACoherentOneEndsTheDevicesNonCoherentDma() {
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(ioas(ModeUapi.IOAS_ALLOC_NO_SNOOP)));
    expectAppeared(nic0);
    ok(nic0.replace(f.ioas()));
    expectDisappeared(nic0);
  }

  @Test
  void closingAnFdEndsItsDevicesNonCoherentDma() {
    VfioDevice nic1 = f.bound("nic1");
    expectAppeared(nic1);
    int id = nic1.devId();
    ok(fd.close());
    expectDisappeared(id);
  }

  @Test
  void aRefusedAttachSendsNoEvent() {
    VfioDevice nic0 = f.bound("nic0");
    VfioDevice nic1 = f.bound("nic1");
    expectAppeared(nic1);
    err(Errno.EINVAL, nic1.attach(ioas(ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP)));
    ok(nic0.attach(ioas(ModeUapi.IOAS_ALLOC_NO_SNOOP)));
    expectAppeared(nic0);
  }
}
