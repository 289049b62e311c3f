package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.ObjectType;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.host.uapi.IommuFd.HwptAlloc;
import io.iommulab.host.uapi.IommuFd.IoasAllowIovas;
import io.iommulab.host.uapi.IommuFd.IoasIovaRanges;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Bind, attach, replace, detach, the group rule, PASID attach, reserved and allowed IOVA ranges
 * (iommufd-uapi §1.5, §2.2).
 */
class DeviceConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private static final long MSI = 0xfee0_0000L;
  private static final long APERTURE_END = (1L << 48) - 1;

  private int hwpts() {
    return (int) f.snapshot().objects().stream()
        .filter(o -> o.type() == ObjectType.HWPT_PAGING || o.type() == ObjectType.HWPT_NESTED).count();
  }

  // ---------------------------------------------------------------- IOVA ranges and allowed ranges

  @Test
  void iovaRangesWithTooSmallAnArrayIsEmsgsizeWithTheNeededCount() {
    int ioas = f.ioas();
    ok(f.bound("nic0").attach(ioas));
    IommuFd.IovaRanges r = ok(fd.ioasIovaRanges(new IoasIovaRanges(ioas, 1)));
    assertEquals(Errno.EMSGSIZE, r.errno());
    assertEquals(2, r.numIovas());
    assertEquals(List.of(new IovaRange(0, MSI - 1)), r.allowedIovas());
  }

  @Test
  void iovaRangesAreTheHolesOfTheReservedRangesAndWidenAgainOnDetach() {
    int ioas = f.ioas();
    assertEquals(List.of(new IovaRange(0, -1L)), ok(fd.ioasIovaRanges(new IoasIovaRanges(ioas, 8))).allowedIovas());
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(ioas));
    IommuFd.IovaRanges r = ok(fd.ioasIovaRanges(new IoasIovaRanges(ioas, 8)));
    assertEquals(null, r.errno());
    assertEquals(4096, r.outIovaAlignment());
    assertEquals(List.of(new IovaRange(0, MSI - 1), new IovaRange(0xfef0_0000L, APERTURE_END)), r.allowedIovas());
    ok(nic0.detach());
    r = ok(fd.ioasIovaRanges(new IoasIovaRanges(ioas, 8)));
    assertEquals(List.of(new IovaRange(0, -1L)), r.allowedIovas());
    assertEquals(1, r.outIovaAlignment());
  }

  @Test
  void iovaRangesOfAMissingIoasIsEnoent() {
    err(Errno.ENOENT, fd.ioasIovaRanges(new IoasIovaRanges(3, 8)));
  }

  @Test
  void allowIovasWithAStartNotBelowItsLastOrOverlappingRangesIsEinvalAndChangesNothing() {
    int ioas = f.ioas();
    ok(fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(0x1000_0000L, 0x1fff_ffffL)))));
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(0x2000, 0x2000)))));
    err(Errno.EINVAL, fd.ioasAllowIovas(new IoasAllowIovas(ioas,
        List.of(new IovaRange(0x1000, 0x8fff), new IovaRange(0x8000, 0xffff)))));
    assertEquals(before, f.state());
  }

  @Test
  void allowIovasMeetingAReservedRangeIsEaddrinuseAndChangesNothing() {
    int ioas = f.ioas();
    ok(f.bound("nic0").attach(ioas));
    Fixture.State before = f.state();
    err(Errno.EADDRINUSE, fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(0xfe00_0000L, 0xfeff_ffffL)))));
    assertEquals(before, f.state());
  }

  @Test
  void allowIovasReplacesTheWholeList() {
    int ioas = f.ioas();
    ok(fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(0x1000_0000L, 0x1fff_ffffL)))));
    ok(fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(0x4000_0000L, 0x4fff_ffffL),
        new IovaRange(0x2000_0000L, 0x2fff_ffffL)))));
    assertEquals(List.of(new IovaRange(0x2000_0000L, 0x2fff_ffffL), new IovaRange(0x4000_0000L, 0x4fff_ffffL)),
        f.ioasSnapshot(ioas).allowed());
  }

  @Test
  void attachWhoseReservedRegionMeetsAnAllowedRangeIsEaddrinuseAndChangesNothing() {
    int ioas = f.ioas();
    ok(fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(0xfe00_0000L, 0xfeff_ffffL)))));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EADDRINUSE, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void attachWhoseReservedRegionMeetsAMappingIsEaddrinuseAndChangesNothing() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, MSI)));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EADDRINUSE, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void attachWhoseDomainApertureExcludesAMappingIsEaddrinuseAndChangesNothing() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 1L << 48)));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EADDRINUSE, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void attachRaisingTheAlignmentOverANonconformingAreaIsEaddrinuseAndChangesNothing() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 3, 16 * MB)));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EADDRINUSE, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- bind

  @Test
  void bindOfADeviceWhoseIommuCannotIsolateMsisIsEpermAndReleasesTheClaim() {
    VfioDevice legacy = f.device("legacy0");
    Fixture.State before = f.state();
    err(Errno.EPERM, legacy.bind());
    assertEquals(before, f.state());
    // The claim was released: an fd that allows unsafe interrupts may take the device.
    IommuFd unsafe = IommuFd.of(f.openFd(2, UapiSettings.defaults().withAllowUnsafeInterrupts(true),
        IoasidFdActor.Credentials.NONE), kit.system());
    assertTrue(ok(new VfioDevice(unsafe, f.handles.get("legacy0")).bind()) > 0);
  }

  @Test
  void bindWithAllowUnsafeInterruptsTakesADeviceWhoseMsisAreNotIsolated() {
    Fixture unsafe = new Fixture(kit, UapiSettings.defaults().withAllowUnsafeInterrupts(true), IoasidFdActor.Credentials.NONE);
    assertTrue(ok(unsafe.device("legacy0").bind()) > 0);
  }

  @Test
  void bindOfADeviceAnotherFdOwnsIsEpermAndChangesNothing() {
    IommuFd other = IommuFd.of(f.openFd(2, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE), kit.system());
    ok(new VfioDevice(other, f.handles.get("gpu0")).bind());
    Fixture.State before = f.state();
    err(Errno.EPERM, f.device("gpu0").bind());
    err(Errno.EPERM, f.device("gpu0-audio").bind()); // same group 3
    assertEquals(before, f.state());
  }

  @Test
  void bindOfTheSameDeviceTwiceIsEbusyAndChangesNothing() {
    f.bound("nvme0");
    Fixture.State before = f.state();
    err(Errno.EBUSY, f.device("nvme0").bind());
    assertEquals(before, f.state());
  }

  @Test
  void aDeviceBehindAUnitWithoutSnoopControlRegistersNonCoherentDmaUntilUnbound() {
    VfioDevice nic1 = f.bound("nic1");
    IoasidFdActor.FdEvent e = f.events.receiveMessage();
    assertTrue(e instanceof IoasidFdActor.NonCoherentDmaAppeared a && a.devId() == nic1.devId(), e.toString());
    f.bound("nic0");
    ok(nic1.unbind());
    e = f.events.receiveMessage();
    assertTrue(e instanceof IoasidFdActor.NonCoherentDmaDisappeared, e.toString());
  }

  @Test
  void destroyOfABoundDeviceIsEbusyAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(nic0.devId()));
    assertEquals(before, f.state());
  }

  @Test
  void unbindDetachesReleasesOwnershipAndLetsAnotherFdBind() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    ok(nic0.attach(ioas));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(nic0.unbind());
    assertEquals(0, f.pinnedBytes());
    assertEquals(0, f.domains("vtd0"));
    IommuFd other = IommuFd.of(f.openFd(2, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE), kit.system());
    assertTrue(ok(new VfioDevice(other, f.handles.get("nic0")).bind()) > 0);
  }

  // ---------------------------------------------------------------- attach

  @Test
  void attachToAnIoasBuildsAnAutoDomainAndReplaysEveryArea() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va + 8 * MB, 4 * MB, 32 * MB)));
    int hwpt = ok(f.bound("nic0").attach(ioas));
    assertNotEquals(ioas, hwpt);
    assertEquals(6 * MB, f.mappedBytes("vtd0"));
    assertEquals(List.of(hwpt), f.ioasSnapshot(ioas).hwpts());
  }

  @Test
  void aSecondDeviceOfTheSameUnitReusesTheAutoDomain() {
    int ioas = f.ioas();
    int a = ok(f.bound("nic0").attach(ioas));
    int b = ok(f.bound("nvme0").attach(ioas));
    assertEquals(a, b);
    assertEquals(1, f.domains("vtd0"));
  }

  @Test
  void aDeviceOfAnotherUnitGetsItsOwnAutoDomainOfTheSameIoas() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    int a = ok(f.bound("nic0").attach(ioas));
    int b = ok(f.bound("nic2").attach(ioas));
    assertNotEquals(a, b);
    assertEquals(2 * MB, f.mappedBytes("smmu0"));
    assertEquals(2 * MB, f.pinnedBytes(), "two domains, one pin");
  }

  @Test
  void attachOfTheSameDeviceTwiceIsEbusyAndChangesNothing() {
    int ioas = f.ioas();
    VfioDevice nic0 = f.bound("nic0");
    int hwpt = ok(nic0.attach(ioas));
    Fixture.State before = f.state();
    err(Errno.EBUSY, nic0.attach(ioas));
    err(Errno.EBUSY, nic0.attach(hwpt));
    assertEquals(before, f.state());
  }

  @Test
  void attachOfAnAttachedDeviceToAnotherIoasIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(f.ioas()));
    int other = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.attach(other));
    assertEquals(before, f.state());
  }

  @Test
  void devicesOfOneGroupMustShareOneHwptAndOtherwiseAreEinval() {
    int a = f.ioas();
    int b = f.ioas();
    int hwpt = ok(f.bound("gpu0").attach(a));
    VfioDevice audio = f.bound("gpu0-audio");
    Fixture.State before = f.state();
    err(Errno.EINVAL, audio.attach(b));
    assertEquals(before, f.state());
    assertEquals(hwpt, ok(audio.attach(a)));
  }

  @Test
  void attachToAnObjectThatIsNotAnIoasOrHwptIsEinvalAndToAMissingIdEnoent() {
    int fault = ok(fd.faultQueueAlloc(new IommuFd.FaultAlloc(0)));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.attach(fault));
    err(Errno.ENOENT, nic0.attach(99));
    assertEquals(before, f.state());
  }

  @Test
  void attachRefusedByTheUnitLeavesNoAutoDomainBehind() {
    use(Fixture.withFakeUnits(kit));
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    f.controls.get("vtd0").failNextAttach.set(Errno.ENOSPC);
    err(Errno.ENOSPC, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void anAutoDomainWhoseReplayFailsIsTornDownAndChangesNothing() {
    use(Fixture.withFakeUnits(kit));
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 32 * MB)));
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    f.controls.get("vtd0").failMapAfter.set(2);
    err(Errno.ENOMEM, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void attachBeyondTheMemlockLimitIsEnomemAndChangesNothing() {
    Fixture small = new Fixture(kit, UapiSettings.defaults().withMemlockLimit(4 * MB), IoasidFdActor.Credentials.NONE);
    int ioas = small.ioas();
    ok(small.fd.ioasMap(IoasMap.fixed(ioas, small.va, 4 * MB, 16 * MB)));
    ok(small.fd.ioasMap(IoasMap.fixed(ioas, small.va, 2 * MB, 32 * MB)));
    VfioDevice nic0 = small.bound("nic0");
    Fixture.State before = small.state();
    err(Errno.ENOMEM, nic0.attach(ioas));
    assertEquals(before, small.state());
  }

  @Test
  void destroyOfAnAttachedAutoHwptOrOfItsIoasIsEbusyAndChangesNothing() {
    int ioas = f.ioas();
    int hwpt = ok(f.bound("nic0").attach(ioas));
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(hwpt));
    err(Errno.EBUSY, fd.destroy(ioas));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- replace and detach

  @Test
  void replaceOfAnUnattachedDeviceIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.replace(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void replaceToTheAttachedHwptChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int hwpt = ok(nic0.attach(ioas));
    Fixture.State before = f.state();
    assertEquals(hwpt, ok(nic0.replace(hwpt)));
    assertEquals(hwpt, ok(nic0.replace(ioas)));
    assertEquals(before, f.state());
  }

  @Test
  void replaceMovesTheDeviceAndDestroysTheOrphanedAutoDomain() {
    VfioDevice nic0 = f.bound("nic0");
    int a = f.ioas();
    int b = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(a, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(b, f.va + 8 * MB, 4 * MB, 16 * MB)));
    int ha = ok(nic0.attach(a));
    int hb = ok(nic0.replace(b));
    assertNotEquals(ha, hb);
    assertEquals(1, f.domains("vtd0"));
    assertEquals(4 * MB, f.mappedBytes("vtd0"));
    assertEquals(4 * MB, f.pinnedBytes(), "IOAS a lost its only domain: its pages are unpinned");
    assertEquals(List.of(), f.ioasSnapshot(a).hwpts());
  }

  @Test
  void replaceMovesEveryDeviceOfTheGroup() {
    int a = f.ioas();
    int b = f.ioas();
    VfioDevice gpu = f.bound("gpu0");
    VfioDevice audio = f.bound("gpu0-audio");
    ok(gpu.attach(a));
    ok(audio.attach(a));
    int hb = ok(gpu.replace(b));
    FdSnapshot s = f.snapshot();
    assertTrue(s.objects().stream().anyMatch(o -> o.id() == audio.devId() && o.summary().contains("rid->" + hb)), s.toString());
    err(Errno.EBUSY, audio.attach(b));
  }

  @Test
  void detachOfAnUnattachedDeviceIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.detach());
    assertEquals(before, f.state());
  }

  @Test
  void detachOfTheLastDeviceDestroysTheAutoDomain() {
    int ioas = f.ioas();
    VfioDevice nic0 = f.bound("nic0");
    VfioDevice nvme0 = f.bound("nvme0");
    ok(nic0.attach(ioas));
    ok(nvme0.attach(ioas));
    ok(nic0.detach());
    assertEquals(1, hwpts());
    ok(nvme0.detach());
    assertEquals(0, hwpts());
    assertEquals(0, f.domains("vtd0"));
  }

  @Test
  void anAutoAttachNeverPicksAManualHwpt() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int manual = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 0)));
    int auto = ok(nic0.attach(ioas));
    assertNotEquals(manual, auto);
    assertEquals(2, f.domains("vtd0"));
  }

  // ---------------------------------------------------------------- PASID

  @Test
  void pasidAttachToAHwptWithoutThePasidFlagIsEinvalAndChangesNothing() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int plain = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 0)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.pasidAttach(5, plain));
    assertEquals(before, f.state());
  }

  @Test
  void pasidAttachBesideARidHwptWithoutThePasidFlagIsEinval() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    ok(nic0.attach(ioas)); // an auto domain: not PASID compatible
    int pasidHwpt = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, Uapi.HWPT_ALLOC_PASID)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.pasidAttach(5, pasidHwpt));
    assertEquals(before, f.state());
  }

  @Test
  void pasidAttachOfAnAttachedPasidIsEbusyAndDetachFreesIt() {
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    int h = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, Uapi.HWPT_ALLOC_PASID)));
    ok(nic0.attach(h));
    assertEquals(h, ok(nic0.pasidAttach(7, h)));
    Fixture.State before = f.state();
    err(Errno.EBUSY, nic0.pasidAttach(7, h));
    assertEquals(before, f.state());
    ok(nic0.pasidDetach(7));
    assertEquals(h, ok(nic0.pasidAttach(7, h)));
  }

  @Test
  void pasidAttachBeyondTheDevicesPasidWidthIsEinvalAndWithoutPasidsAtAll() {
    VfioDevice nic0 = f.bound("nic0");
    VfioDevice nvme0 = f.bound("nvme0");
    int ioas = f.ioas();
    int h = ok(fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, Uapi.HWPT_ALLOC_PASID)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, nic0.pasidAttach(1 << 20, h));
    err(Errno.EINVAL, nvme0.pasidAttach(1, h));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- GET_HW_INFO

  @Test
  void getHwInfoReportsTheDriverTypeAndCapabilitiesAndRefusesBadArguments() {
    VfioDevice nic0 = f.bound("nic0");
    IommuFd.HwInfo i = ok(fd.getHwInfo(new IommuFd.GetHwInfo(0, nic0.devId(), 64)));
    assertEquals(Uapi.HW_INFO_TYPE_INTEL_VTD, i.outDataType());
    assertEquals(Uapi.HW_INFO_VTD_LEN, i.dataLen());
    assertEquals(Uapi.HW_CAP_DIRTY_TRACKING | Uapi.HW_CAP_PCI_PASID_EXEC | Uapi.HW_CAP_PCI_PASID_PRIV, i.outCapabilities());
    assertEquals(20, i.outMaxPasidLog2());
    err(Errno.EOPNOTSUPP, fd.getHwInfo(new IommuFd.GetHwInfo(1, nic0.devId(), 64)));
    err(Errno.ENOENT, fd.getHwInfo(new IommuFd.GetHwInfo(0, 77, 64)));
  }
}
