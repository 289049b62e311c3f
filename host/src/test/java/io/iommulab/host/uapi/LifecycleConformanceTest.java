package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.PAGE;
import static io.iommulab.host.uapi.Fixture.await;
import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.Outcome;
import io.iommulab.host.uapi.IommuFd.HwptAlloc;
import io.iommulab.host.uapi.IommuFd.IoasCopy;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import io.iommulab.host.uapi.IommuFd.IommuOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/**
 * IOMMU_OPTION, locked-memory accounting, close (leaf-first destruction, balance), DESTROY as one
 * atomic check, and fail-nth sweeps: every injected allocation failure leaves nothing behind
 * (iommufd-uapi §1.2, §1.3 OPTION, §2.4, §5.3).
 */
class LifecycleConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private static final IoasidFdActor.Credentials ADMIN = new IoasidFdActor.Credentials(false, true);

  // ---------------------------------------------------------------- OPTION

  @Test
  void rlimitModeSetWithoutCapSysResourceIsEpermAndChangesNothing() {
    Fixture.State before = f.state();
    err(Errno.EPERM, fd.option(new IommuOption(Uapi.OPTION_RLIMIT_MODE, Uapi.OPTION_OP_SET, 0, 1)));
    assertEquals(before, f.state());
    assertEquals(0L, ok(fd.option(new IommuOption(Uapi.OPTION_RLIMIT_MODE, Uapi.OPTION_OP_GET, 0, 0))));
  }

  @Test
  void rlimitModeWithAnObjectIdOrAnUnknownOptionOrOpIsEopnotsupp() {
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.option(new IommuOption(Uapi.OPTION_RLIMIT_MODE, Uapi.OPTION_OP_GET, ioas, 0)));
    err(Errno.EOPNOTSUPP, fd.option(new IommuOption(9, Uapi.OPTION_OP_GET, 0, 0)));
    err(Errno.EOPNOTSUPP, fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, 5, ioas, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void rlimitModeSetOnAnFdWithObjectsIsEbusyAndAnUnknownValueEinval() {
    Fixture admin = new Fixture(kit, UapiSettings.defaults(), ADMIN);
    err(Errno.EINVAL, admin.fd.option(new IommuOption(Uapi.OPTION_RLIMIT_MODE, Uapi.OPTION_OP_SET, 0, 2)));
    admin.ioas();
    Fixture.State before = admin.state();
    err(Errno.EBUSY, admin.fd.option(new IommuOption(Uapi.OPTION_RLIMIT_MODE, Uapi.OPTION_OP_SET, 0, 1)));
    assertEquals(before, admin.state());
  }

  @Test
  void mmModeChargesTheProcessInsteadOfTheUser() {
    Fixture admin = new Fixture(kit, UapiSettings.defaults(), ADMIN);
    ok(admin.fd.option(new IommuOption(Uapi.OPTION_RLIMIT_MODE, Uapi.OPTION_OP_SET, 0, 1)));
    int ioas = admin.ioas();
    ok(admin.bound("nic0").attach(ioas));
    ok(admin.fd.ioasMap(IoasMap.fixed(ioas, admin.va, 2 * MB, 16 * MB)));
    FdSnapshot.AccountingSnapshot a = admin.snapshot().accounting();
    assertEquals(UapiSettings.AccountMode.MM, admin.snapshot().accountMode());
    assertEquals(2 * MB / PAGE, a.mmLockedPages());
    assertEquals(0, a.userLockedPages());
  }

  @Test
  void anOpenerWithCapIpcLockPinsWithoutCharging() {
    Fixture locked = new Fixture(kit, UapiSettings.defaults().withMemlockLimit(0), new IoasidFdActor.Credentials(true, false));
    int ioas = locked.ioas();
    ok(locked.bound("nic0").attach(ioas));
    ok(locked.fd.ioasMap(IoasMap.fixed(ioas, locked.va, 8 * MB, 16 * MB)));
    assertEquals(8 * MB, locked.pinnedBytes());
    assertEquals(0, locked.snapshot().accounting().userLockedPages());
  }

  @Test
  void hugePagesAreOnByDefaultAndOfAMissingIoasEnoent() {
    int ioas = f.ioas();
    assertEquals(1L, ok(fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_GET, ioas, 0))));
    err(Errno.ENOENT, fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_GET, ioas + 1, 0)));
    err(Errno.EINVAL, fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_SET, ioas, 2)));
  }

  @Test
  void disablingHugePagesForcesPageAlignment() {
    int ioas = f.ioas();
    ok(fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_SET, ioas, 0)));
    assertEquals(PAGE, ok(fd.ioasIovaRanges(new IommuFd.IoasIovaRanges(ioas, 4))).outIovaAlignment());
    err(Errno.EINVAL, fd.ioasMap(IoasMap.fixed(ioas, f.va, 3, 16 * MB)));
    ok(fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_SET, ioas, 1)));
    assertEquals(1, ok(fd.ioasIovaRanges(new IommuFd.IoasIovaRanges(ioas, 4))).outIovaAlignment());
  }

  @Test
  void disablingHugePagesWhileDomainsHoldMappingsIsEinvalAndOverAnOddAreaEaddrinuse() {
    int withDomain = f.ioas();
    ok(f.bound("nic0").attach(withDomain));
    ok(fd.ioasMap(IoasMap.fixed(withDomain, f.va, 2 * MB, 16 * MB)));
    int odd = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(odd, f.va, 3, 16 * MB)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_SET, withDomain, 0)));
    err(Errno.EADDRINUSE, fd.option(new IommuOption(Uapi.OPTION_HUGE_PAGES, Uapi.OPTION_OP_SET, odd, 0)));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- accounting

  @Test
  void aMapPastTheMemlockLimitIsEnomemAndChargesNothing() {
    Fixture small = new Fixture(kit, UapiSettings.defaults().withMemlockLimit(4 * MB), IoasidFdActor.Credentials.NONE);
    int ioas = small.ioas();
    ok(small.bound("nic0").attach(ioas));
    ok(small.fd.ioasMap(IoasMap.fixed(ioas, small.va, 3 * MB, 16 * MB)));
    Fixture.State before = small.state();
    err(Errno.ENOMEM, small.fd.ioasMap(IoasMap.fixed(ioas, small.va + 4 * MB, 2 * MB, 32 * MB)));
    assertEquals(before, small.state());
    ok(small.fd.ioasMap(IoasMap.fixed(ioas, small.va + 4 * MB, MB, 32 * MB)));
    assertEquals(4 * MB / PAGE, small.snapshot().accounting().userLockedPages());
  }

  @Test
  void aCopyIntoAnotherDomainChargesNothingMore() {
    Fixture small = new Fixture(kit, UapiSettings.defaults().withMemlockLimit(4 * MB), IoasidFdActor.Credentials.NONE);
    int src = small.ioas();
    int dst = small.ioas();
    ok(small.bound("nic0").attach(src));
    ok(small.bound("nic2").attach(dst));
    ok(small.fd.ioasMap(IoasMap.fixed(src, small.va, 4 * MB, 16 * MB)));
    ok(small.fd.ioasCopy(new IoasCopy(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE,
        dst, src, 4 * MB, 16 * MB, 16 * MB)));
    assertEquals(4 * MB / PAGE, small.snapshot().accounting().userLockedPages());
  }

  // ---------------------------------------------------------------- close

  /** A graph with every object type: devices on auto, manual, nested and fault HWPTs, a vIOMMU. */
  private void buildEverything() {
    VfioDevice nic0 = f.bound("nic0");
    VfioDevice nvme0 = f.bound("nvme0");
    VfioDevice nic2 = f.bound("nic2");
    f.bound("nic1");
    int a = f.ioas();
    int b = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(a, f.va, 4 * MB, 16 * MB)));
    ok(nvme0.attach(a));
    ok(fd.ioasCopy(new IoasCopy(Uapi.IOAS_MAP_READABLE, b, a, 2 * MB, 0, 16 * MB)));
    int fault = ok(fd.faultQueueAlloc(new IommuFd.FaultAlloc(0)));
    int faultHwpt = ok(fd.hwptAlloc(new HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID, nic0.devId(), b, Uapi.HWPT_DATA_NONE, 0, fault)));
    ok(nic0.attach(faultHwpt));
    int parent = ok(fd.hwptAlloc(HwptAlloc.paging(nic2.devId(), b, Uapi.HWPT_ALLOC_NEST_PARENT)));
    int viommu = ok(fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, nic2.devId(), parent)));
    ok(fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 3)));
    ok(fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_ARM_SMMUV3, 8)));
    int nested = ok(fd.hwptAlloc(new HwptAlloc(0, nic2.devId(), viommu, Uapi.HWPT_DATA_ARM_SMMUV3, Uapi.HWPT_ARM_SMMUV3_LEN, 0)));
    ok(nic2.attach(nested));
  }

  @Test
  void closeDestroysEveryObjectLeafFirstAndBalancesPinsAndChargesToZero() {
    buildEverything();
    assertTrue(f.pinnedBytes() > 0);
    IoasidFdActor.Closed closed = ok(fd.close());
    assertTrue(closed.objectsDestroyed() >= 10, closed.toString());
    assertEquals(0, f.pinnedBytes());
    for (String unit : f.units.keySet()) {
      assertEquals(0, f.domains(unit), unit);
      assertEquals(List.of(), f.unitSnapshot(unit).paging().pasidEntries(), unit);
    }
    // Ownership went back: another fd may bind every device.
    IommuFd other = IommuFd.of(f.openFd(2, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE), kit.system());
    for (String dev : List.of("nic0", "nvme0", "nic2", "nic1")) {
      ok(new VfioDevice(other, f.handles.get(dev)).bind());
    }
  }

  @Test
  void everyCallOnAClosedFdIsEbadf() {
    int ioas = f.ioas();
    ok(fd.close());
    err(Errno.EBADF, fd.ioasAlloc());
    err(Errno.EBADF, fd.ioasMap(IoasMap.fixed(ioas, f.va, MB, 0)));
    err(Errno.EBADF, fd.destroy(ioas));
    err(Errno.EBADF, fd.close());
    assertTrue(f.snapshot().isEmpty());
  }

  @Test
  void closeWaitsForAMapInFlightAndStillBalances() throws Exception {
    use(Fixture.withFakeUnits(kit));
    int ioas = f.ioas();
    ok(f.bound("nic0").attach(ioas));
    FakeUnit.Control vtd0 = f.controls.get("vtd0");
    vtd0.holdMaps = true;
    CompletionStage<Outcome<Long>> map = fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB));
    vtd0.awaitHeld(1);
    CompletionStage<Outcome<IoasidFdActor.Closed>> close = fd.close();
    err(Errno.EBADF, fd.ioasAlloc());
    assertFalse(close.toCompletableFuture().isDone());
    vtd0.releaseHeld();
    assertEquals(16 * MB, await(map).value());
    assertTrue(await(close).isOk());
    assertEquals(0, f.pinnedBytes());
  }

  // ---------------------------------------------------------------- DESTROY atomicity

  @Test
  void destroyOfAnIoasWhileAHwptIsBeingBuiltOnItIsEbusy() throws Exception {
    use(Fixture.withFakeUnits(kit));
    VfioDevice nic0 = f.bound("nic0");
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    FakeUnit.Control vtd0 = f.controls.get("vtd0");
    vtd0.holdMaps = true;
    CompletionStage<Outcome<Integer>> alloc = fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, 0));
    vtd0.awaitHeld(1);
    FdSnapshot during = f.snapshot();
    assertEquals(1, during.reservedIds().size(), "the HWPT's ID is reserved, not visible");
    err(Errno.EBUSY, fd.destroy(ioas));
    err(Errno.ENOENT, fd.destroy(during.reservedIds().get(0)));
    vtd0.releaseHeld();
    int hwpt = await(alloc).value();
    assertEquals(during.reservedIds().get(0), hwpt);
  }

  @Test
  void destroyOfAnIoasWithAMapInFlightIsEbusyAndChangesNothing() throws Exception {
    use(Fixture.withFakeUnits(kit));
    int ioas = f.ioas();
    ok(f.bound("nic0").attach(ioas));
    FakeUnit.Control vtd0 = f.controls.get("vtd0");
    vtd0.holdMaps = true;
    CompletionStage<Outcome<Long>> map = fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB));
    vtd0.awaitHeld(1);
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(ioas));
    assertEquals(before, f.state());
    vtd0.releaseHeld();
    assertTrue(await(map).isOk());
  }

  @Test
  void concurrentAttachesToOneIoasShareOneAutoDomain() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    VfioDevice nic0 = f.bound("nic0");
    VfioDevice nvme0 = f.bound("nvme0");
    CompletionStage<Outcome<Integer>> a = nic0.attach(ioas);
    CompletionStage<Outcome<Integer>> b = nvme0.attach(ioas);
    assertEquals(await(a).value(), await(b).value());
    assertEquals(1, f.domains("vtd0"));
    assertEquals(2 * MB, f.mappedBytes("vtd0"));
  }

  // ---------------------------------------------------------------- fail-nth

  /**
   * The fail-nth loop of iommufd_fail_nth.c: fail the nth injectable allocation of {@code call}
   * for n = 1, 2, ... until a run consumes no failure; every failing run must be ENOMEM and leave
   * the state as it was.
   */
  private int sweep(FailNth nth, Fixture fx, java.util.function.Supplier<CompletionStage<? extends Outcome<?>>> call) {
    Fixture.State before = fx.state();
    for (int n = 1; n < 200; n++) {
      nth.arm(n);
      Outcome<?> o = await(call.get());
      nth.disarm();
      if (!nth.consumed()) {
        assertTrue(o.isOk(), "the run without a failure succeeds: " + o);
        return n;
      }
      assertEquals(Errno.ENOMEM, o.errnoOrNull(), "n=" + n + " at " + nth.failedSite() + ": " + o);
      assertEquals(before, fx.state(), "n=" + n + " at " + nth.failedSite());
    }
    throw new AssertionError("sweep did not end");
  }

  @Test
  void failNthOfAMapIntoTwoDomainsLeavesNothingBehind() {
    FailNth nth = new FailNth();
    Fixture fx = new Fixture(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE, nth, false);
    int ioas = fx.ioas();
    ok(fx.bound("nic0").attach(ioas));
    ok(fx.bound("nic2").attach(ioas));
    int runs = sweep(nth, fx, () -> fx.fd.ioasMap(IoasMap.fixed(ioas, fx.va, 2 * MB, 16 * MB)));
    assertTrue(runs >= 4, "pages, area, pin and at least one more site: " + runs);
  }

  @Test
  void failNthOfAnAttachThatBuildsAnAutoDomainLeavesNothingBehind() {
    FailNth nth = new FailNth();
    Fixture fx = new Fixture(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE, nth, false);
    int ioas = fx.ioas();
    ok(fx.fd.ioasMap(IoasMap.fixed(ioas, fx.va, 2 * MB, 16 * MB)));
    ok(fx.fd.ioasMap(IoasMap.fixed(ioas, fx.va, 2 * MB, 64 * MB)));
    VfioDevice nic0 = fx.bound("nic0");
    int runs = sweep(nth, fx, () -> nic0.attach(ioas));
    assertTrue(runs >= 3, "object, reserved ranges, pins: " + runs);
  }

  @Test
  void failNthOfACopyAndOfAFaultQueueAndOfAVdeviceLeavesNothingBehind() {
    FailNth nth = new FailNth();
    Fixture fx = new Fixture(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE, nth, false);
    int src = fx.ioas();
    int dst = fx.ioas();
    VfioDevice nic2 = fx.bound("nic2");
    ok(nic2.attach(dst));
    ok(fx.fd.ioasMap(IoasMap.fixed(src, fx.va, 2 * MB, 16 * MB)));
    List<Integer> runs = new ArrayList<>();
    runs.add(sweep(nth, fx, () -> fx.fd.ioasCopy(new IoasCopy(
        Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE, dst, src, 2 * MB, 16 * MB, 16 * MB))));
    runs.add(sweep(nth, fx, () -> fx.fd.faultQueueAlloc(new IommuFd.FaultAlloc(0))));
    int parent = ok(fx.fd.hwptAlloc(HwptAlloc.paging(nic2.devId(), fx.ioas(), Uapi.HWPT_ALLOC_NEST_PARENT)));
    int viommu = ok(fx.fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, nic2.devId(), parent)));
    runs.add(sweep(nth, fx, () -> fx.fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, nic2.devId(), 1))));
    assertTrue(runs.stream().allMatch(n -> n >= 2), runs.toString());
    ok(fx.fd.close());
    assertEquals(0, fx.pinnedBytes());
  }
}
