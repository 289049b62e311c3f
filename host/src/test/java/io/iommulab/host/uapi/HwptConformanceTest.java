package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.InvalidationEntry;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.fault.DmaFault;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.PageRequest;
import io.iommulab.host.uapi.IommuFd.HwptAlloc;
import io.iommulab.host.uapi.IommuFd.HwptInvalidate;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;

/**
 * HWPT_ALLOC (paging, nested), dirty tracking, HWPT_INVALIDATE's array contract, vIOMMU,
 * vDEVICE, vEVENTQ and the IOPF FAULT queue (iommufd-uapi §1.4, §3, §4).
 */
class HwptConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private static final int NO_PASID = IommuUnitActor.NO_PASID;

  private int nestParent(VfioDevice dev, int ioas) {
    return ok(fd.hwptAlloc(HwptAlloc.paging(dev.devId(), ioas, Uapi.HWPT_ALLOC_NEST_PARENT)));
  }

  // ---------------------------------------------------------------- HWPT_ALLOC: paging

  @Test
  void hwptAllocWithUnknownFlagsIsEopnotsuppAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 1 << 7)));
    assertEquals(before, f.state());
  }

  @Test
  void hwptAllocWithADataTypeWithoutLengthOrALengthWithoutTypeIsEinval() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), ioas, Uapi.HWPT_DATA_NONE, 24, 0)));
    err(Errno.EINVAL, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), ioas, Uapi.HWPT_DATA_VTD_S1, 0, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void hwptAllocOfAMissingPtIsEinvalButOfAMissingDeviceEnoent() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), 42, 0)));
    err(Errno.ENOENT, fd.hwptAlloc(HwptAlloc.paging(42, ioas, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void hwptAllocWithFaultIdAndNestParentIsEopnotsupp() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int fault = ok(fd.faultQueueAlloc(new IommuFd.FaultAlloc(0)));
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(new HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID | Uapi.HWPT_ALLOC_NEST_PARENT,
        nic0.devId(), ioas, Uapi.HWPT_DATA_NONE, 0, fault)));
    err(Errno.ENOENT, fd.hwptAlloc(new HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID, nic0.devId(), ioas,
        Uapi.HWPT_DATA_NONE, 0, fault + 1)));
    assertEquals(before, f.state());
  }

  @Test
  void dirtyTrackingOrNestParentWithoutTheCapabilityIsEopnotsupp() {
    f = new Fixture(kit, io.iommulab.config.UapiSettings.defaults().withAllowUnsafeInterrupts(true),
        IoasidFdActor.Credentials.NONE);
    fd = f.fd;
    VfioDevice legacy = f.bound("legacy0"); // vtd9: no dirty tracking, no nesting
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(HwptAlloc.paging(legacy.devId(), ioas, Uapi.HWPT_ALLOC_DIRTY_TRACKING)));
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(HwptAlloc.paging(legacy.devId(), ioas, Uapi.HWPT_ALLOC_NEST_PARENT)));
    assertEquals(before, f.state());
  }

  @Test
  void aManualHwptMirrorsItsIoasAndItsDomainGoesWithDestroy() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    int hwpt = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 0)));
    assertEquals(2 * MB, f.mappedBytes("vtd0"));
    assertEquals(2 * MB, f.pinnedBytes());
    ok(fd.destroy(hwpt));
    assertEquals(0, f.domains("vtd0"));
    assertEquals(0, f.pinnedBytes());
    err(Errno.ENOENT, fd.destroy(hwpt));
  }

  @Test
  void dirtyTrackingOnAHwptAllocatedWithoutItIsEinvalAndUnknownFlagsEopnotsupp() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int plain = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 0)));
    int dirty = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, Uapi.HWPT_ALLOC_DIRTY_TRACKING)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.hwptSetDirtyTracking(new IommuFd.HwptSetDirtyTracking(Uapi.HWPT_DIRTY_TRACKING_ENABLE, plain)));
    err(Errno.EOPNOTSUPP, fd.hwptSetDirtyTracking(new IommuFd.HwptSetDirtyTracking(2, dirty)));
    err(Errno.EINVAL, fd.hwptGetDirtyBitmap(new IommuFd.HwptGetDirtyBitmap(dirty, 0, 0x1000, 0x1000, 3000)));
    assertEquals(before, f.state());
    ok(fd.hwptSetDirtyTracking(new IommuFd.HwptSetDirtyTracking(Uapi.HWPT_DIRTY_TRACKING_ENABLE, dirty)));
    long[] bitmap = ok(fd.hwptGetDirtyBitmap(new IommuFd.HwptGetDirtyBitmap(dirty, 0, 16 * MB, 2 * MB, 4096)));
    assertEquals(8, bitmap.length);
  }

  // ---------------------------------------------------------------- HWPT_ALLOC: nested

  @Test
  void aNestedHwptOverAParentWithoutNestParentIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int plain = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 0)));
    int auto = ok(nic0.attach(ioas));
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), plain, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
    err(Errno.EINVAL, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), auto, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void aNestedHwptRefusesNestParentAndMissingDataWithEopnotsuppAndANestedParentWithEinval() {
    VfioDevice nic0 = f.bound("nic0");
    int parent = nestParent(nic0, f.ioas());
    int nested = ok(fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), parent, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(new HwptAlloc(Uapi.HWPT_ALLOC_NEST_PARENT, nic0.devId(), parent,
        Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
    err(Errno.EOPNOTSUPP, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), parent, Uapi.HWPT_DATA_NONE, 0, 0)));
    err(Errno.EINVAL, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), nested, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
    err(Errno.EINVAL, fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), parent, Uapi.HWPT_DATA_VTD_S1, 8, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfANestParentWithANestedChildIsEbusyUntilTheChildGoes() {
    VfioDevice nic0 = f.bound("nic0");
    int parent = nestParent(nic0, f.ioas());
    int nested = ok(fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), parent, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(parent));
    assertEquals(before, f.state());
    ok(fd.destroy(nested));
    ok(fd.destroy(parent));
    assertEquals(0, f.domains("vtd0"));
  }

  // ---------------------------------------------------------------- HWPT_INVALIDATE

  private int nestedOnVtd(VfioDevice nic0) {
    int parent = nestParent(nic0, f.ioas());
    return ok(fd.hwptAlloc(new HwptAlloc(0, nic0.devId(), parent, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
  }

  @Test
  void invalidateOfAPagingHwptIsEinvalAndOfAMissingOneEnoent() {
    VfioDevice nic0 = f.bound("nic0");
    int hwpt = ok(nic0.attach(f.ioas()));
    List<InvalidationEntry> one = List.of(InvalidationEntry.vtdS1(0, -1L, 0));
    err(Errno.EINVAL, fd.hwptInvalidate(new HwptInvalidate(hwpt, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 24, one)));
    err(Errno.ENOENT, fd.hwptInvalidate(new HwptInvalidate(77, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 24, one)));
  }

  @Test
  void anInvalidationArrayStopsAtTheFirstBadEntryAndWritesBackTheEntriesHandled() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int nested = nestedOnVtd(nic0);
    List<InvalidationEntry> entries =
        List.of(InvalidationEntry.vtdS1(0x1000, 4, 0), InvalidationEntry.vtdS1(0x1800, 1, 0),
            InvalidationEntry.vtdS1(0x4000, 1, 0));
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 24, entries)));
    assertEquals(1, r.entryNum());
    assertEquals(Errno.EINVAL, r.errno());
    List<List<IommuUnitActor.UserInvalidation>> sent = List.copyOf(f.controls.get("vtd0").invalidations);
    assertEquals(1, sent.size());
    assertEquals(List.of(new IommuUnitActor.UserInvalidation(IommuUnitActor.UserInvalidationKind.IOTLB_RANGE,
        NO_PASID, 0x1000, 4, 0, false)), sent.get(0), "the first entry's effect stays");
  }

  @Test
  void anInvalidationEntryWithUnknownFlagsIsEopnotsuppAndEverythingMeansAllAtAddressZero() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int nested = nestedOnVtd(nic0);
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 24,
        List.of(InvalidationEntry.vtdS1(0, -1L, Uapi.VTD_INV_FLAGS_LEAF), InvalidationEntry.vtdS1(0, 1, 0x4)))));
    assertEquals(1, r.entryNum());
    assertEquals(Errno.EOPNOTSUPP, r.errno());
    assertEquals(IommuUnitActor.UserInvalidationKind.IOTLB_ALL,
        f.controls.get("vtd0").invalidations.peek().get(0).kind());
    r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 24,
        List.of(InvalidationEntry.vtdS1(0x2000, -1L, 0)))));
    assertEquals(0, r.entryNum());
    assertEquals(Errno.EINVAL, r.errno(), "npages U64_MAX needs addr 0");
  }

  @Test
  void anInvalidationWithNoEntriesOnlyProbesTheDataType() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int nested = nestedOnVtd(nic0);
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 0, List.of())));
    assertEquals(0, r.entryNum());
    assertNull(r.errno());
    err(Errno.EINVAL, fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_SELFTEST, 0, List.of())));
    assertTrue(f.controls.get("vtd0").invalidations.isEmpty());
  }

  @Test
  void anEntryLengthOfZeroIsEinvalAndOneBeyondTheStructIsEinvalAtEntryZero() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int nested = nestedOnVtd(nic0);
    List<InvalidationEntry> one = List.of(InvalidationEntry.vtdS1(0, -1L, 0));
    err(Errno.EINVAL, fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 0, one)));
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 32, one)));
    assertEquals(0, r.entryNum());
    assertEquals(Errno.EINVAL, r.errno());
    r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 16, one)));
    assertEquals(Errno.EINVAL, r.errno());
    assertTrue(f.controls.get("vtd0").invalidations.isEmpty());
  }

  @Test
  void aUnitErrorMidArrayCountsOnlyTheEntriesBeforeIt() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int nested = nestedOnVtd(nic0);
    f.controls.get("vtd0").failInvalidateAt.set(1);
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, 24,
        List.of(InvalidationEntry.vtdS1(0x1000, 1, 0), InvalidationEntry.vtdS1(0x2000, 1, 0), InvalidationEntry.vtdS1(0x3000, 1, 0)))));
    assertEquals(1, r.entryNum());
    assertEquals(Errno.EINVAL, r.errno());
  }

  // ---------------------------------------------------------------- vIOMMU and vDEVICE

  /** nic2 on smmu0 bound, a NEST_PARENT of a fresh IOAS, and an SMMUv3 vIOMMU over it. */
  private int[] smmuViommu(VfioDevice nic2) {
    int parent = nestParent(nic2, f.ioas());
    int viommu = ok(fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, nic2.devId(), parent)));
    return new int[] {parent, viommu};
  }

  @Test
  void aViommuOverAHwptWithoutNestParentIsEinvalAndOfTypeDefaultEopnotsupp() {
    VfioDevice nic2 = f.bound("nic2");
    int ioas = f.ioas();
    int plain = ok(fd.hwptAlloc(HwptAlloc.paging(nic2.devId(), ioas, 0)));
    int parent = nestParent(nic2, ioas);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, nic2.devId(), plain)));
    err(Errno.EOPNOTSUPP, fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_DEFAULT, nic2.devId(), parent)));
    err(Errno.EOPNOTSUPP, fd.viommuAlloc(new IommuFd.ViommuAlloc(1, Uapi.VIOMMU_TYPE_ARM_SMMUV3, nic2.devId(), parent)));
    err(Errno.ENOENT, fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, nic2.devId(), 99)));
    assertEquals(before, f.state());
  }

  @Test
  void aSecondVdeviceOfADeviceOrATakenVirtIdIsEexistAndChangesNothing() {
    VfioDevice nic2 = f.bound("nic2");
    VfioDevice accel = f.bound("accel0");
    int viommu = smmuViommu(nic2)[1];
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x10)));
    Fixture.State before = f.state();
    err(Errno.EEXIST, fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x11)));
    err(Errno.EEXIST, fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, accel.devId(), 0x10)));
    assertEquals(before, f.state());
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, accel.devId(), 0x11)));
  }

  @Test
  void aVdeviceOfADeviceBehindAnotherIommuIsEinval() {
    VfioDevice nic2 = f.bound("nic2");
    VfioDevice nic0 = f.bound("nic0");
    int viommu = smmuViommu(nic2)[1];
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic0.devId(), 0x10)));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfAViommuWithAVdeviceIsEbusy() {
    VfioDevice nic2 = f.bound("nic2");
    int viommu = smmuViommu(nic2)[1];
    int vdev = ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x10)));
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(viommu));
    assertEquals(before, f.state());
    ok(fd.destroy(vdev));
    ok(fd.destroy(viommu));
  }

  @Test
  void unbindingADeviceTombstonesItsVdeviceWhoseIdStaysUnusableUntilClose() {
    VfioDevice nic2 = f.bound("nic2");
    int viommu = smmuViommu(nic2)[1];
    int vdev = ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x10)));
    ok(nic2.unbind());
    FdSnapshot s = f.snapshot();
    assertEquals(List.of(vdev), s.tombstones());
    err(Errno.ENOENT, fd.destroy(vdev));
    int next = f.ioas();
    assertTrue(next != vdev, "a tombstoned ID is never reused");
    ok(fd.destroy(viommu)); // the tombstone no longer holds the vIOMMU
    ok(fd.close());
  }

  @Test
  void attachToAViommuNestedHwptNeedsAVdeviceFirst() {
    VfioDevice nic2 = f.bound("nic2");
    int viommu = smmuViommu(nic2)[1];
    int nested = ok(fd.hwptAlloc(new HwptAlloc(0, nic2.devId(), viommu, Uapi.HWPT_DATA_ARM_SMMUV3, Uapi.HWPT_ARM_SMMUV3_LEN, 0)));
    Fixture.State before = f.state();
    err(Errno.ENOENT, nic2.attach(nested));
    assertEquals(before, f.state());
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x10)));
    assertEquals(nested, ok(nic2.attach(nested)));
  }

  @Test
  void viommuInvalidationTranslatesVsidsAndAnUnknownOneOrOpcodeIsEio() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic2 = f.bound("nic2");
    int viommu = smmuViommu(nic2)[1];
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x10)));
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(viommu, Uapi.VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, 16,
        List.of(InvalidationEntry.smmuv3(Uapi.CMDQ_OP_ATC_INV, 0x10, 0, 0, 1),
            InvalidationEntry.smmuv3(Uapi.CMDQ_OP_ATC_INV, 0x99, 0, 0, 1)))));
    assertEquals(1, r.entryNum());
    assertEquals(Errno.EIO, r.errno());
    IommuUnitActor.UserInvalidation sent = f.controls.get("smmu0").invalidations.peek().get(0);
    assertEquals(IommuUnitActor.UserInvalidationKind.ATC, sent.kind());
    assertEquals(f.handles.get("nic2").rid(), sent.rid(), "vSID 0x10 became the physical RID");
    r = ok(fd.hwptInvalidate(new HwptInvalidate(viommu, Uapi.VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, 16,
        List.of(InvalidationEntry.smmuv3(0x7f, 0x10, 0, 0, 1)))));
    assertEquals(Errno.EIO, r.errno());
  }

  @Test
  void selftestViommuInvalidationOfAnUnknownVdevIdIsEinval() {
    VfioDevice nic0 = f.bound("nic0");
    int parent = nestParent(nic0, f.ioas());
    int viommu = ok(fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_SELFTEST, nic0.devId(), parent)));
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic0.devId(), 7)));
    IommuFd.HwptInvalidated r = ok(fd.hwptInvalidate(new HwptInvalidate(viommu, Uapi.VIOMMU_INVALIDATE_DATA_SELFTEST, 12,
        List.of(InvalidationEntry.selftestViommu(0, 7, 3), InvalidationEntry.selftestViommu(0, 8, 0)))));
    assertEquals(1, r.entryNum());
    assertEquals(Errno.EINVAL, r.errno());
    r = ok(fd.hwptInvalidate(new HwptInvalidate(viommu, Uapi.VIOMMU_INVALIDATE_DATA_SELFTEST, 12,
        List.of(InvalidationEntry.selftestViommu(0, 7, 4)))));
    assertEquals(0, r.entryNum());
    assertEquals(Errno.EINVAL, r.errno(), "cache_id above 3");
  }

  // ---------------------------------------------------------------- vEVENTQ

  @Test
  void aSecondVeventqOfATypeIsEexistAndDepthZeroEinval() {
    VfioDevice nic2 = f.bound("nic2");
    int viommu = smmuViommu(nic2)[1];
    ok(fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_ARM_SMMUV3, 4)));
    Fixture.State before = f.state();
    err(Errno.EEXIST, fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_ARM_SMMUV3, 4)));
    err(Errno.EINVAL, fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_SELFTEST, 0)));
    err(Errno.EOPNOTSUPP, fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_DEFAULT, 4)));
    assertEquals(before, f.state());
  }

  @Test
  void aFullVeventqQueuesALostEventsHeaderOnlyEverLast() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic2 = f.bound("nic2");
    int viommu = smmuViommu(nic2)[1];
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 0x10)));
    int nested = ok(fd.hwptAlloc(new HwptAlloc(0, nic2.devId(), viommu, Uapi.HWPT_DATA_ARM_SMMUV3, Uapi.HWPT_ARM_SMMUV3_LEN, 0)));
    ok(nic2.attach(nested));
    int q = ok(fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_ARM_SMMUV3, 2)));
    ActorRef<IommuUnitActor.FaultEvent> sink = f.controls.get("smmu0").sink(f.handles.get("nic2").rid(), NO_PASID);
    int rid = f.handles.get("nic2").rid();
    for (int i = 0; i < 4; i++) {
      sink.tell(new IommuUnitActor.DmaFaulted(new DmaFault(f.unitIds.get("smmu0"), rid, NO_PASID, 0x1000L * i,
          Access.WRITE, FaultReason.NOT_PRESENT, 0)));
    }
    assertTrue(f.events.receiveMessage() instanceof IoasidFdActor.VeventqReadable);
    List<Vevent> read = ok(fd.veventqRead(q, 4096));
    assertEquals(3, read.size(), read.toString());
    assertEquals(0x10, read.get(0).virtId());
    assertEquals(List.of(0, 1, 3), read.stream().map(Vevent::sequence).toList(), "the header took sequence 2, then 3");
    assertTrue(read.get(2).lostEvents() && !read.get(0).lostEvents() && !read.get(1).lostEvents());
    sink.tell(new IommuUnitActor.DmaFaulted(new DmaFault(f.unitIds.get("smmu0"), rid, NO_PASID, 0, Access.READ,
        FaultReason.NOT_PRESENT, 0)));
    assertTrue(f.events.receiveMessage() instanceof IoasidFdActor.VeventqReadable);
    read = ok(fd.veventqRead(q, 4096));
    assertEquals(1, read.size());
    assertEquals(4, read.get(0).sequence());
    assertEquals(List.of(), ok(fd.veventqRead(q, 4096)));
  }

  // ---------------------------------------------------------------- FAULT

  /** nic0 attached to a HWPT_PAGING delivering to a new FAULT; returns {fault, hwpt}. */
  private int[] faultHwpt(VfioDevice nic0) {
    int fault = ok(fd.faultQueueAlloc(new IommuFd.FaultAlloc(0)));
    int hwpt = ok(fd.hwptAlloc(new HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID, nic0.devId(), f.ioas(),
        Uapi.HWPT_DATA_NONE, 0, fault)));
    ok(nic0.attach(hwpt));
    return new int[] {fault, hwpt};
  }

  private void pageRequest(String dev, int grpid, long addr, boolean last) {
    int rid = f.handles.get(dev).rid();
    f.controls.get("vtd0").sink(rid, NO_PASID).tell(new IommuUnitActor.PageRequested(
        new PageRequest(f.unitIds.get("vtd0"), rid, NO_PASID, grpid, addr, Access.READ_WRITE, last, 0)));
  }

  @Test
  void aFaultReadDeliversWholeGroupsWithCookiesFromOne() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 2, 0x1000, false);
    pageRequest("nic0", 2, 0x2000, true);
    pageRequest("nic0", 3, 0x3000, true);
    assertTrue(f.events.receiveMessage() instanceof IoasidFdActor.FaultQueueReadable);
    List<HwptPgfault> first = ok(fd.faultRead(fault, 80));
    assertEquals(2, first.size());
    assertEquals(List.of(1, 1), first.stream().map(HwptPgfault::cookie).toList());
    assertEquals(nic0.devId(), first.get(0).devId());
    assertEquals(Uapi.PGFAULT_FLAGS_LAST_PAGE, first.get(1).flags());
    assertEquals(List.of(), ok(fd.faultRead(fault, 0)));
    List<HwptPgfault> second = ok(fd.faultRead(fault, 400));
    assertEquals(1, second.size());
    assertEquals(2, second.get(0).cookie());
  }

  @Test
  void aFullFaultQueueLosesRequestsAndTheReaderCountsThemFromTheSequences() {
    f = new Fixture(kit, io.iommulab.config.UapiSettings.defaults().withFaultQueueDepth(2),
        IoasidFdActor.Credentials.NONE, io.iommulab.hardware.FaultInjector.NONE, true);
    fd = f.fd;
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    for (int g = 0; g < 5; g++) {
      pageRequest("nic0", g, 0x1000L * (g + 1), true);
    }
    assertTrue(f.events.receiveMessage() instanceof IoasidFdActor.FaultQueueReadable);
    IoasidFdActor.FaultStats stats = fd.faultStats().toCompletableFuture().join();
    assertEquals(2, stats.pageRequestsQueued());
    assertEquals(3, stats.pageRequestsLostQueueFull());
    IoasidFdActor.FaultRecords read = ok(fd.faultReadWithHeaders(fault, 400));
    assertEquals(2, read.records().size());
    assertEquals(List.of(0, 1, 4),
        read.headers().stream().map(io.iommulab.actors.fd.model.FaultQueueHeader::sequence).toList(),
        "each lost request re-queued the lost-events node with the next sequence");
    assertTrue(read.headers().get(2).lostEvents());
    // Each lost last page failed its group: INVALID to the unit, so the device is not left waiting.
    assertEquals(3, f.controls.get("vtd0").responses.size());
  }

  @Test
  void aFaultReadOfAGroupLargerThanTheCountLeavesItQueued() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 2, 0x1000, false);
    pageRequest("nic0", 2, 0x2000, true);
    f.events.receiveMessage();
    assertEquals(List.of(), ok(fd.faultRead(fault, 40)));
    assertTrue(ok(fd.faultPoll(fault)));
  }

  @Test
  void aFaultReadWhoseCountIsNotAMultipleOfTheRecordIsEspipe() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 2, 0x1000, true);
    f.events.receiveMessage();
    Fixture.State before = f.state();
    err(Errno.ESPIPE, fd.faultRead(fault, 41));
    assertEquals(before, f.state());
  }

  @Test
  void aFaultWriteWithAnUnknownCookieOrABadCodeIsEinvalAndChangesNothing() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 2, 0x1000, true);
    f.events.receiveMessage();
    int cookie = ok(fd.faultRead(fault, 40)).get(0).cookie();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.faultWrite(fault, List.of(new HwptPageResponse(cookie + 1, Uapi.PAGE_RESP_SUCCESS))));
    err(Errno.EINVAL, fd.faultWrite(fault, List.of(new HwptPageResponse(cookie, 2))));
    assertEquals(before, f.state());
    assertTrue(f.controls.get("vtd0").responses.isEmpty());
  }

  @Test
  void oneResponseCompletesTheWholeGroupOnce() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 5, 0x1000, false);
    pageRequest("nic0", 5, 0x2000, true);
    f.events.receiveMessage();
    int cookie = ok(fd.faultRead(fault, 80)).get(0).cookie();
    assertEquals(8, ok(fd.faultWrite(fault, List.of(new HwptPageResponse(cookie, Uapi.PAGE_RESP_SUCCESS)))));
    err(Errno.EINVAL, fd.faultWrite(fault, List.of(new HwptPageResponse(cookie, Uapi.PAGE_RESP_SUCCESS))));
    IommuUnitActor.RespondPageRequest r = awaitResponse("vtd0");
    assertEquals(new IommuUnitActor.RespondPageRequest(f.handles.get("nic0").rid(), NO_PASID, 5,
        IommuUnitActor.PageResponseCode.SUCCESS, 0L), r);
  }

  @Test
  void aFaultWriteStopsAtTheFirstBadResponseAfterConsumingTheGoodOnes() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 1, 0x1000, true);
    f.events.receiveMessage();
    int cookie = ok(fd.faultRead(fault, 40)).get(0).cookie();
    assertEquals(8, ok(fd.faultWrite(fault, List.of(new HwptPageResponse(cookie, Uapi.PAGE_RESP_INVALID),
        new HwptPageResponse(cookie, Uapi.PAGE_RESP_SUCCESS)))));
  }

  @Test
  void detachAnswersEveryPendingGroupOfTheHandleInvalid() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    pageRequest("nic0", 1, 0x1000, true);
    pageRequest("nic0", 2, 0x2000, true);
    pageRequest("nic0", 3, 0x3000, false); // partial: dropped unanswered
    f.events.receiveMessage();
    ok(fd.faultRead(fault, 40)); // group 1 read, awaiting a response; group 2 still queued
    ok(nic0.detach());
    IommuUnitActor.RespondPageRequest a = awaitResponse("vtd0");
    IommuUnitActor.RespondPageRequest b = awaitResponse("vtd0");
    assertEquals(java.util.Set.of(1, 2), java.util.Set.of(a.groupId(), b.groupId()));
    assertEquals(IommuUnitActor.PageResponseCode.INVALID, a.code());
    assertEquals(IommuUnitActor.PageResponseCode.INVALID, b.code());
    assertTrue(f.snapshot().objects().stream().anyMatch(o -> o.id() == fault && o.summary().startsWith("partial=0 queued=0 awaiting-response=0")));
    assertEquals(false, ok(fd.faultPoll(fault)));
  }

  @Test
  void aPageRequestWithoutAFaultHandlerIsAnsweredInvalidAtOnce() {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(f.ioas()));
    pageRequest("nic0", 9, 0x1000, true);
    IommuUnitActor.RespondPageRequest r = awaitResponse("vtd0");
    assertEquals(9, r.groupId());
    assertEquals(IommuUnitActor.PageResponseCode.INVALID, r.code());
  }

  @Test
  void destroyOfAFaultUsedByAHwptIsEbusy() {
    VfioDevice nic0 = f.bound("nic0");
    int fault = faultHwpt(nic0)[0];
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(fault));
    assertEquals(before, f.state());
  }

  private IommuUnitActor.RespondPageRequest awaitResponse(String unit) {
    FakeUnit.Control c = f.controls.get(unit);
    long deadline = System.nanoTime() + 5_000_000_000L;
    IommuUnitActor.RespondPageRequest r;
    while ((r = c.responses.poll()) == null) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("no page response reached " + unit);
      }
      Thread.onSpinWait();
    }
    return r;
  }
}
