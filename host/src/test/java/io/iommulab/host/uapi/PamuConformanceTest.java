package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.pamu.PamuDomain;
import io.iommulab.host.uapi.IommuFd.VfioDmaMap;
import io.iommulab.host.uapi.IommuFd.VfioDmaUnmap;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.Test;

/**
 * The PAMU container mode (seed 003, {@code vfio_iommu_fsl_pamu.c}; hardware-rules.md §1):
 * VFIO_SET_IOMMU(FSL_PAMU), geometry and window count, MSI banks, whole-window DMA maps, on the
 * real PAMU unit, MSI bank and device actors. The container uses a 16 MiB aperture in 16 windows
 * of 1 MiB unless a test says otherwise.
 */
class PamuConformanceTest extends ConformanceTest<PamuFixture> {

  @Override
  PamuFixture open() {
    return new PamuFixture(kit);
  }

  private static final long MB = 1L << 20;
  private static final int RW = ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE;

  /** dpaa0 bound, the PAMU container set. */
  private VfioDevice container() {
    VfioDevice dpaa0 = f.bound("dpaa0");
    ok(fd.vfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU));
    return dpaa0;
  }

  /** The container with a 16 MiB aperture at 0 in 16 windows of 1 MiB. */
  private VfioDevice windows() {
    VfioDevice d = container();
    ok(fd.pamuSetGeometry(0, 16 * MB - 1));
    ok(fd.pamuSetWindows(16));
    return d;
  }

  private long window(int skip) {
    return f.va + f.contiguousOffset(MB, skip);
  }

  // ---------------------------------------------------------------- SET_IOMMU

  @Test
  void setIommuPamuWithoutAGroupBehindAPamuIsEinvalAndChangesNothing() {
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU));
    assertEquals(before, f.state());
  }

  @Test
  void setIommuPamuAttachesEveryBoundGroupToOneDomain() {
    f.bound("dpaa0");
    f.bound("pcie0");
    ok(fd.vfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU));
    assertEquals(List.of(1, 2), f.domain().liodns());
  }

  @Test
  void setIommuPamuTwiceIsEinvalAndChangesNothing() {
    container();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU));
    err(Errno.EINVAL, fd.vfioSetIommu(ModeUapi.VFIO_TYPE1v2_IOMMU));
    assertEquals(before, f.state());
  }

  @Test
  void aGroupSetIntoTheContainerAfterSetIommuIsAttachedToItsDomain() {
    container();
    ok(f.device("pcie1").setContainer());
    assertEquals(List.of(1, 3), f.domain().liodns());
  }

  @Test
  void aGroupSetIntoTheContainerTwiceIsEinvalAndChangesNothing() {
    VfioDevice dpaa0 = container();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, dpaa0.setContainer());
    assertEquals(before, f.state());
  }

  @Test
  void checkExtensionOfAPamuContainerOffersOnlyFslPamu() {
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_FSL_PAMU_IOMMU)));
    container();
    assertEquals(1, ok(fd.vfioCheckExtension(ModeUapi.VFIO_FSL_PAMU_IOMMU)));
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_TYPE1v2_IOMMU)));
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_DMA_CC_IOMMU)));
  }

  @Test
  void aPamuIoctlBeforeSetIommuIsEinval() {
    f.bound("dpaa0");
    err(Errno.EINVAL, fd.pamuGetMsiBankCount());
  }

  @Test
  void bindingADeviceBehindAPamuWithoutUnsafeInterruptsIsEperm() {
    f = new PamuFixture(kit, UapiSettings.defaults());
    fd = f.fd;
    PamuFixture.State before = f.state();
    err(Errno.EPERM, f.device("dpaa0").bind());
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- attributes

  @Test
  void theWindowCountReadBeforeItIsSetIsTheMaximum() {
    container();
    assertEquals(256, ok(fd.pamuGetAttr(ModeUapi.VFIO_ATTR_WINDOWS)).windows());
  }

  @Test
  void theGeometryReadsBackAsSet() {
    windows();
    IommuFd.PamuAttr a = ok(fd.pamuGetAttr(ModeUapi.VFIO_ATTR_GEOMETRY));
    assertEquals(new IommuFd.PamuAttr(0, 16 * MB - 1, 16), a);
  }

  @Test
  void aGeometryWhoseSizeIsNotAPowerOfTwoIsEinvalAndChangesNothing() {
    container();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuSetGeometry(0, 12 * MB - 1));
    assertEquals(before, f.state());
  }

  @Test
  void aGeometryWhoseStartIsNotAlignedToItsSizeIsEinvalAndChangesNothing() {
    container();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuSetGeometry(MB, 17 * MB - 1));
    err(Errno.EINVAL, fd.pamuSetGeometry(MB, MB - 1)); // end below start
    assertEquals(before, f.state());
  }

  @Test
  void aWindowCountBeforeAGeometryIsEinvalAndChangesNothing() {
    container();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuSetWindows(8));
    assertEquals(before, f.state());
  }

  @Test
  void aWindowCountAbove256IsEinvalAndChangesNothing() {
    container();
    ok(fd.pamuSetGeometry(0, 16 * MB - 1));
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuSetWindows(512));
    assertEquals(before, f.state());
  }

  @Test
  void aWindowCountThatIsNotAPowerOfTwoIsEinvalAndChangesNothing() {
    container();
    ok(fd.pamuSetGeometry(0, 16 * MB - 1));
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuSetWindows(12));
    assertEquals(before, f.state());
  }

  @Test
  void anUnknownAttributeIsEinvalAndChangesNothing() {
    container();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuSetAttr(7, 0, 0, 0));
    err(Errno.EINVAL, fd.pamuGetAttr(7));
    assertEquals(before, f.state());
  }

  @Test
  void theGeometryIsFrozenWhileTheApertureIsEnabled() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    PamuFixture.State before = f.state();
    err(Errno.EBUSY, fd.pamuSetGeometry(0, 32 * MB - 1));
    assertEquals(before, f.state());
  }

  @Test
  void theWindowCountIsFrozenWhileTheApertureIsEnabled() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    PamuFixture.State before = f.state();
    err(Errno.EBUSY, fd.pamuSetWindows(8));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- MSI banks

  @Test
  void theMsiBankCountIsTheHostsBankCount() {
    container();
    assertEquals(f.msiirAddresses.size(), ok(fd.pamuGetMsiBankCount()));
  }

  @Test
  void mapMsiBankAnswersTheWindowIovaPlusTheMsiirOffset() {
    windows();
    long msi = ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 1, 12 * MB));
    assertEquals(12 * MB + (f.msiirAddresses.get(1) & 0xfff), msi);
    PamuDomain.WindowState w = f.domain().windows().get(12);
    assertEquals(PamuDomain.WindowUse.MSI, w.use());
    assertEquals(1, w.msiBank());
  }

  @Test
  void mapMsiBankOfABankTheHostDoesNotHaveIsEinvalAndChangesNothing() {
    windows();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 9, 12 * MB));
    assertEquals(before, f.state());
  }

  @Test
  void mapMsiBankWithoutReadOrWriteIsEinvalAndChangesNothing() {
    windows();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuMapMsiBank(0, 0, 12 * MB));
    assertEquals(before, f.state());
  }

  @Test
  void mapMsiBankIntoAWindowInUseIsEbusyAndChangesNothing() {
    windows();
    ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0, 12 * MB));
    PamuFixture.State before = f.state();
    err(Errno.EBUSY, fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 1, 12 * MB + 0x1000));
    assertEquals(before, f.state());
  }

  @Test
  void unmapMsiBankWhereNoBankIsMappedIsEinvalAndChangesNothing() {
    windows();
    ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0, 12 * MB));
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.pamuUnmapMsiBank(13 * MB));
    assertEquals(before, f.state());
  }

  @Test
  void unmapMsiBankFreesItsWindow() {
    windows();
    ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0, 12 * MB));
    ok(fd.pamuUnmapMsiBank(12 * MB));
    assertEquals(PamuDomain.WindowUse.NONE, f.domain().windows().get(12).use());
  }

  // ---------------------------------------------------------------- DMA

  @Test
  void mapDmaOfWholeWindowsEnablesTheApertureAndChargesInMmMode() {
    windows();
    assertFalse(f.domain().enabled());
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 2 * MB, MB)));
    assertTrue(f.domain().enabled());
    assertEquals(256, f.snapshot().accounting().mmLockedPages());
    assertEquals(MB, f.pinnedBytes());
  }

  @Test
  void mapDmaBeforeTheWindowCountIsSetIsEnodevAndChangesNothing() {
    container();
    PamuFixture.State before = f.state();
    err(Errno.ENODEV, fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOffAWindowBoundaryIsEinvalAndChangesNothing() {
    windows();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(RW, window(0), MB / 2, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOfAPartialWindowIsEinvalAndChangesNothing() {
    windows();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB / 2)));
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB + MB / 2)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOfPhysicallyDiscontiguousMemoryIsEfaultAndChangesNothing() {
    VfioDevice d = container();
    ok(fd.pamuSetGeometry(0, 64 * MB - 1));
    ok(fd.pamuSetWindows(16)); // 4 MiB windows
    PamuFixture.State before = f.state();
    err(Errno.EFAULT, fd.vfioMapDma(new VfioDmaMap(RW, f.va + f.discontiguousOffset(4 * MB), 0, 4 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOfMemoryOutsideTheVmIsEfaultAndChangesNothing() {
    windows();
    PamuFixture.State before = f.state();
    err(Errno.EFAULT, fd.vfioMapDma(new VfioDmaMap(RW, f.va + PamuFixture.GUEST, 0, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOverlappingADmaMappingIsEbusyAndChangesNothing() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    PamuFixture.State before = f.state();
    err(Errno.EBUSY, fd.vfioMapDma(new VfioDmaMap(RW, window(1), 0, 2 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOverAnMsiBankWindowIsEbusyAndChangesNothing() {
    windows();
    ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0, 3 * MB));
    PamuFixture.State before = f.state();
    err(Errno.EBUSY, fd.vfioMapDma(new VfioDmaMap(RW, window(0), 2 * MB, 2 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaWithAFlagOtherThanReadWriteIsEinvalAndChangesNothing() {
    windows();
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(RW | ModeUapi.VFIO_DMA_MAP_FLAG_VADDR, window(0), 0, MB)));
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(0, window(0), 0, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaPastRlimitMemlockIsEnomemAndChangesNothing() {
    f = new PamuFixture(kit, UapiSettings.defaults().withAllowUnsafeInterrupts(true).withMemlockLimit(MB));
    fd = f.fd;
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    PamuFixture.State before = f.state();
    err(Errno.ENOMEM, fd.vfioMapDma(new VfioDmaMap(RW, window(1), MB, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaDisablesWholeWindowsUnpinsAndDisablesTheApertureWhenNoneIsLeft() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(1), MB, MB)));
    assertEquals(MB, (long) ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, MB + 0x1000, 0x1000))));
    assertTrue(f.domain().enabled());
    assertEquals(MB, (long) ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, 0, MB))));
    assertFalse(f.domain().enabled());
    assertEquals(0, f.snapshot().accounting().mmLockedPages());
    assertEquals(0, f.pinnedBytes());
    ok(fd.pamuSetWindows(8)); // no longer frozen
  }

  @Test
  void unmapDmaWithFlagsIsEinvalAndChangesNothing() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    PamuFixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioUnmapDma(VfioDmaUnmap.all()));
    assertEquals(before, f.state());
  }

  @Test
  void aDmaThroughAMappedWindowReachesTheGuestsMemory() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 2 * MB, MB)));
    DeviceActor.DmaCompleted done = Fixture.await(AskPattern.<DeviceActor.Command, DeviceActor.DmaCompleted>ask(
        f.handles.get("dpaa0").device(),
        r -> new DeviceActor.DmaBurst(-1, new long[] {2 * MB + 0x40, 4 * MB}, new int[] {64, 64},
            new int[] {Access.WRITE, Access.WRITE}, 1, r),
        Duration.ofSeconds(5), kit.scheduler()));
    assertEquals(DeviceActor.STATUS_OK, done.status()[0]);
    assertTrue(done.status()[1] != DeviceActor.STATUS_OK, "window 4 is not mapped");
    assertEquals(List.of(), f.memoryReport().violations());
    assertEquals(1L, (long) f.memoryReport().checks().getOrDefault(io.iommulab.hardware.memory.DmaCheck.OK, 0L));
  }

  // ---------------------------------------------------------------- teardown

  @Test
  void unbindingTheLastGroupTearsTheContainerDown() {
    VfioDevice dpaa0 = windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0, 12 * MB));
    ok(dpaa0.unbind());
    assertEquals(0, f.pinnedBytes());
    assertEquals(List.of(), f.unitSnapshot().pamu().domains());
    f.bound("pcie0");
    ok(fd.vfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU)); // the container is back to its initial state
  }

  @Test
  void closeReleasesTheContainer() {
    windows();
    ok(fd.vfioMapDma(new VfioDmaMap(RW, window(0), 0, MB)));
    ok(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0, 12 * MB));
    ok(fd.close());
    assertEquals(0, f.pinnedBytes());
    assertEquals(List.of(), f.unitSnapshot().pamu().domains());
  }
}
