package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.InvalidationEntry;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.host.uapi.IommuFd.HwptAlloc;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The SVA mode (seed 000): PASIDs allocated per VM on its fd, guest page tables bound, unbound
 * and flushed per device (a VT-d stage 1 nested on the VM's GPA space at the PASID). nic0 sits
 * behind vtd0 with 20 PASID bits, nic2 behind smmu0, nvme0 has no PASIDs.
 */
class SvaConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private static final int S1 = Uapi.HWPT_DATA_VTD_S1;
  private static final int S1_LEN = Uapi.HWPT_VTD_S1_LEN;

  /** {@code name} bound with its RID on a NEST_PARENT|PASID HWPT (the VM's GPA space). */
  private VfioDevice onGpaSpace(String name) {
    VfioDevice d = f.bound(name);
    int parent = ok(fd.hwptAlloc(HwptAlloc.paging(d.devId(), f.ioas(),
        Uapi.HWPT_ALLOC_NEST_PARENT | Uapi.HWPT_ALLOC_PASID)));
    ok(d.attach(parent));
    return d;
  }

  private String summary(int id) {
    for (FdSnapshot.ObjectSnapshot o : f.snapshot().objects()) {
      if (o.id() == id) {
        return o.summary();
      }
    }
    throw new AssertionError("no object " + id);
  }

  // ---------------------------------------------------------------- PASID allocation

  @Test
  void ioasidAllocGivesTheLowestFreePasidFromOne() {
    assertEquals(1, ok(fd.ioasidAlloc()));
    assertEquals(2, ok(fd.ioasidAlloc()));
    ok(fd.ioasidFree(1));
    assertEquals(1, ok(fd.ioasidAlloc()));
  }

  @Test
  void ioasidAllocPastTheVmsQuotaIsEnospcAndChangesNothing() {
    f = new Fixture(kit, UapiSettings.defaults().withPasidsPerVm(2), IoasidFdActor.Credentials.NONE);
    fd = f.fd;
    ok(fd.ioasidAlloc());
    ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.ENOSPC, fd.ioasidAlloc());
    assertEquals(before, f.state());
  }

  @Test
  void eachVmAllocatesFromItsOwnSet() {
    IommuFd vm2 = IommuFd.of(f.openFd(2, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE), kit.system());
    assertEquals(1, ok(fd.ioasidAlloc()));
    assertEquals(1, ok(vm2.ioasidAlloc()));
  }

  @Test
  void ioasidFreeOfAPasidTheVmDoesNotHoldIsEpermAndChangesNothing() {
    ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EPERM, fd.ioasidFree(2));
    err(Errno.EPERM, fd.ioasidFree(0));
    assertEquals(before, f.state());
  }

  @Test
  void ioasidFreeOfABoundPasidIsEbusyAndChangesNothing() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.ioasidFree(pasid));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- bind

  @Test
  void bindNestsTheGuestTableOverTheGpaSpaceAtThePasidOfThatDevice() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    IommuFd.SvaBinding b = ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    assertTrue(summary(nic0.devId()).contains(" pasid" + pasid + "->" + b.hwptId()), summary(nic0.devId()));
    assertTrue(summary(b.hwptId()).contains(" pasid"), summary(b.hwptId()));
    assertEquals(f.unitIds.get("vtd0"), b.unitId());
  }

  @Test
  void bindOfAPasidTheVmDoesNotHoldIsEpermAndChangesNothing() {
    VfioDevice nic0 = onGpaSpace("nic0");
    Fixture.State before = f.state();
    err(Errno.EPERM, nic0.svaBindPgtbl(7, S1, S1_LEN));
    assertEquals(before, f.state());
  }

  @Test
  void aPasidAllocatedToAnotherVmIsEpermForThisOne() {
    IommuFd vm2 = IommuFd.of(f.openFd(2, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE), kit.system());
    int theirs = ok(vm2.ioasidAlloc());
    VfioDevice nic0 = onGpaSpace("nic0");
    Fixture.State before = f.state();
    err(Errno.EPERM, nic0.svaBindPgtbl(theirs, S1, S1_LEN));
    assertEquals(before, f.state());
  }

  @Test
  void bindOnAnUnknownDeviceIsEnoent() {
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.call(r -> new IoasidFdActor.SvaBindPgtbl(77, pasid, S1, S1_LEN, r),
        IoasidFdActor.SvaBound.class, x -> x));
    assertEquals(before, f.state());
  }

  @Test
  void bindWhileTheRidIsNotOnANestParentIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(f.ioas())); // an auto domain: no GPA space to nest on
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    assertEquals(before, f.state());
  }

  @Test
  void bindOnADeviceWithoutPasidsIsEinvalAndChangesNothing() {
    VfioDevice nvme0 = f.bound("nvme0");
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EINVAL, nvme0.svaBindPgtbl(pasid, S1, S1_LEN));
    assertEquals(before, f.state());
  }

  @Test
  void bindOnAnIommuThatBindsWholePasidTablesIsEopnotsuppAndChangesNothing() {
    VfioDevice nic2 = f.bound("nic2");
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, nic2.svaBindPgtbl(pasid, S1, S1_LEN));
    assertEquals(before, f.state());
  }

  @Test
  void bindTwiceAtOnePasidOfADeviceIsEbusyAndChangesNothing() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    Fixture.State before = f.state();
    err(Errno.EBUSY, nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    assertEquals(before, f.state());
  }

  @Test
  void bindWithTooShortATableDescriptorIsEinvalAndLeavesNoHwpt() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.svaBindPgtbl(pasid, S1, 8));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfABoundTablesHwptIsEbusyAndChangesNothing() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    IommuFd.SvaBinding b = ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(b.hwptId()));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- flush and unbind

  @Test
  void flushRunsTheGuestsInvalidationOfTheBoundTable() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    IommuFd.HwptInvalidated r = ok(nic0.svaFlush(pasid, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, Uapi.VTD_S1_INVALIDATE_LEN,
        List.of(InvalidationEntry.vtdS1(0x10_0000, 16, 0), InvalidationEntry.vtdS1(0, -1L, 0))));
    assertEquals(new IommuFd.HwptInvalidated(2, null, null), r);
  }

  @Test
  void flushOfAPasidWithNothingBoundIsEinvalAndChangesNothing() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.svaFlush(pasid, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, Uapi.VTD_S1_INVALIDATE_LEN,
        List.of(InvalidationEntry.vtdS1(0, -1L, 0))));
    assertEquals(before, f.state());
  }

  @Test
  void flushOfAPasidTheVmDoesNotHoldIsEperm() {
    VfioDevice nic0 = onGpaSpace("nic0");
    err(Errno.EPERM, nic0.svaFlush(3, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, Uapi.VTD_S1_INVALIDATE_LEN,
        List.of(InvalidationEntry.vtdS1(0, -1L, 0))));
  }

  @Test
  void unbindDetachesThePasidAndDestroysTheNestedHwpt() {
    VfioDevice nic0 = onGpaSpace("nic0");
    Fixture.State before = f.state();
    int pasid = ok(fd.ioasidAlloc());
    ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    ok(nic0.svaUnbindPgtbl(pasid));
    ok(fd.ioasidFree(pasid));
    assertEquals(before, f.state());
  }

  @Test
  void unbindOfAPasidWithNothingBoundIsEinvalAndChangesNothing() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.svaUnbindPgtbl(pasid));
    assertEquals(before, f.state());
  }

  @Test
  void unbindingTheDeviceUnbindsItsTablesAndFreesThePasidForReuse() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    IommuFd.SvaBinding b = ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    ok(nic0.unbind());
    assertTrue(f.snapshot().objects().stream().noneMatch(o -> o.id() == b.hwptId()), "the nested HWPT is gone");
    ok(fd.ioasidFree(pasid));
  }

  @Test
  void closeFreesEveryPasidOfTheVm() {
    VfioDevice nic0 = onGpaSpace("nic0");
    int pasid = ok(fd.ioasidAlloc());
    ok(nic0.svaBindPgtbl(pasid, S1, S1_LEN));
    ok(fd.close());
    assertTrue(f.snapshot().modes().contains("sva pasids={}"), f.snapshot().modes().toString());
    assertTrue(f.snapshot().objects().isEmpty());
  }
}
