package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.host.uapi.IommuFd.VfioDmaMap;
import io.iommulab.host.uapi.IommuFd.VfioDmaUnmap;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The VFIO type1 container on the fd (iommufd-uapi.md §2.5, §2.6; {@code vfio_iommu_type1.c},
 * {@code vfio_compat.c}): SET_IOMMU, MAP_DMA, UNMAP_DMA with the v1 and v2 rules, FLAG_ALL,
 * GET_INFO, CHECK_EXTENSION and the compat IOAS. nic0 and nvme0 sit behind vtd0 (snoop control),
 * nic1 behind vtd1 (none).
 */
class VfioType1ConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private static final long MSI = 0xfee0_0000L;

  /** nic0's group in the container, and the container's IOMMU set to {@code type}. */
  private void container(int type) {
    ok(f.device("nic0").setContainer());
    ok(fd.vfioSetIommu(type));
  }

  private void map(long vaOffset, long iova, long size) {
    ok(fd.vfioMapDma(VfioDmaMap.rw(f.va + vaOffset, iova, size)));
  }

  private int compatIoas() {
    return ok(fd.vfioIoas(ModeUapi.VFIO_IOAS_GET, 0));
  }

  private List<FdSnapshot.AreaSnapshot> mappings() {
    return f.ioasSnapshot(compatIoas()).areas();
  }

  // ---------------------------------------------------------------- compat IOAS and SET_IOMMU

  @Test
  void theFirstGroupCreatesTheCompatIoasAndTheNextGroupSharesIt() {
    ok(f.device("nic0").setContainer());
    int ioas = compatIoas();
    ok(f.device("nvme0").setContainer());
    assertEquals(ioas, compatIoas());
    assertEquals(1, f.ioasSnapshot(ioas).hwpts().size()); // one coherent domain for both
  }

  @Test
  void vfioIoasGetWithoutACompatIoasIsEnodev() {
    err(Errno.ENODEV, fd.vfioIoas(ModeUapi.VFIO_IOAS_GET, 0));
  }

  @Test
  void vfioIoasSetOfAMissingIoasIsEnoentAndChangesNothing() {
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.vfioIoas(ModeUapi.VFIO_IOAS_SET, 42));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfTheCompatIoasClearsIt() {
    int ioas = f.ioas();
    ok(fd.vfioIoas(ModeUapi.VFIO_IOAS_SET, ioas));
    ok(fd.destroy(ioas));
    err(Errno.ENODEV, fd.vfioIoas(ModeUapi.VFIO_IOAS_GET, 0));
  }

  @Test
  void setIommuWithoutAGroupInTheContainerIsEnodevAndChangesNothing() {
    Fixture.State before = f.state();
    err(Errno.ENODEV, fd.vfioSetIommu(ModeUapi.VFIO_TYPE1v2_IOMMU));
    assertEquals(before, f.state());
  }

  @Test
  void setIommuTwiceIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioSetIommu(ModeUapi.VFIO_TYPE1_IOMMU));
    assertEquals(before, f.state());
  }

  @Test
  void setIommuOfATypeTheContainerDoesNotOfferIsEinvalAndChangesNothing() {
    ok(f.device("nic0").setContainer());
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioSetIommu(ModeUapi.VFIO_SPAPR_TCE_IOMMU));
    assertEquals(before, f.state());
  }

  @Test
  void setIommuType1DisablesLargePagesOfTheCompatIoas() {
    container(ModeUapi.VFIO_TYPE1_IOMMU);
    assertTrue(!f.ioasSnapshot(compatIoas()).hugePages());
  }

  // ---------------------------------------------------------------- MAP_DMA

  @Test
  void mapDmaBeforeSetIommuIsEinvalAndChangesNothing() {
    ok(f.device("nic0").setContainer());
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va, 0x10_0000, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaMapsTheCompatIoasAndChargesInMmMode() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    assertEquals(1, mappings().size());
    assertEquals(512, f.snapshot().accounting().mmLockedPages());
    assertEquals(0, f.snapshot().accounting().userLockedPages());
    assertEquals(2 * MB, f.mappedBytes("vtd0"));
  }

  @Test
  void mapDmaWithTheVaddrFlagIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(
        ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_VADDR, f.va, 0x10_0000, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaWithNeitherReadNorWriteIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(new VfioDmaMap(0, f.va, 0x10_0000, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOfZeroSizeIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va, 0x10_0000, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOffTheSmallestIommuPageIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va, 0x10_0800, MB)));
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va + 0x800, 0x10_0000, MB)));
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va, 0x10_0000, MB + 0x800)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaWrappingTheIovaSpaceIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va, -0x10_0000L, 2 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOverlappingAMappingIsEexistAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    Fixture.State before = f.state();
    err(Errno.EEXIST, fd.vfioMapDma(VfioDmaMap.rw(f.va + 4 * MB, 0x20_0000, 2 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaPastTheDmaEntryLimitIsEnospcAndChangesNothing() {
    f = new Fixture(kit, UapiSettings.defaults().withVfioDmaEntryLimit(2), IoasidFdActor.Credentials.NONE);
    fd = f.fd;
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    map(MB, 0x40_0000, MB);
    Fixture.State before = f.state();
    err(Errno.ENOSPC, fd.vfioMapDma(VfioDmaMap.rw(f.va + 2 * MB, 0x80_0000, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void anUnmapGivesTheMappingBackToTheEntryLimit() {
    f = new Fixture(kit, UapiSettings.defaults().withVfioDmaEntryLimit(1), IoasidFdActor.Credentials.NONE);
    fd = f.fd;
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x10_0000, MB)));
    map(0, 0x10_0000, MB);
  }

  @Test
  void mapDmaOverAReservedRegionIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioMapDma(VfioDmaMap.rw(f.va, MSI, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapDmaOfMemoryOutsideTheVmIsEfaultAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    Fixture.State before = f.state();
    err(Errno.EFAULT, fd.vfioMapDma(VfioDmaMap.rw(f.va + Fixture.GUEST, 0x10_0000, MB)));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- UNMAP_DMA

  @Test
  void unmapDmaV2StartingInsideAMappingIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x20_0000, 4 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaV2EndingInsideAMappingIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(0, 0, 0x20_0000)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaV2OfARangeWithoutMappingsSucceedsWithSizeZero() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    assertEquals(0L, ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x100_0000, MB))));
    assertEquals(1, mappings().size());
  }

  @Test
  void unmapDmaV2CoveringSeveralMappingsAndGapsUnmapsThemAllAndUnpins() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    map(2 * MB, 0x40_0000, MB);
    assertEquals(2 * MB, (long) ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, 0, 0x100_0000))));
    assertEquals(List.of(), mappings());
    assertEquals(0, f.snapshot().accounting().mmLockedPages());
    assertEquals(0, f.mappedBytes("vtd0"));
  }

  @Test
  void unmapDmaV1StartingInsideAMappingUnmapsNothingAndSucceedsWithSizeZero() {
    container(ModeUapi.VFIO_TYPE1_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    map(4 * MB, 0x40_0000, MB);
    Fixture.State before = f.state();
    assertEquals(0L, ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x20_0000, 8 * MB))));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaV1CoveringAMappingsFirstIovaUnmapsTheWholeMapping() {
    container(ModeUapi.VFIO_TYPE1_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    assertEquals(2 * MB, (long) ok(fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x10_0000, 0x1000))));
    assertEquals(List.of(), mappings());
    assertEquals(0, f.snapshot().accounting().mmLockedPages());
  }

  @Test
  void unmapDmaAllWithANonzeroIovaOrSizeIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL, 0x10_0000, 0)));
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL, 0, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaAllUnmapsEveryMappingAndUnpins() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    map(2 * MB, 0x40_0000, MB);
    assertEquals(2 * MB, (long) ok(fd.vfioUnmapDma(VfioDmaUnmap.all())));
    assertEquals(List.of(), mappings());
    assertEquals(0, f.snapshot().accounting().mmLockedPages());
    assertEquals(0, f.pinnedBytes());
  }

  @Test
  void unmapDmaWithAFlagOtherThanAllIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(ModeUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0x10_0000, MB)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaOfZeroOrUnalignedSizeIsEinvalAndChangesNothing() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x10_0000, 0)));
    err(Errno.EINVAL, fd.vfioUnmapDma(new VfioDmaUnmap(0, 0x10_0000, 0x800)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapDmaBeforeSetIommuIsEinval() {
    ok(f.device("nic0").setContainer());
    err(Errno.EINVAL, fd.vfioUnmapDma(VfioDmaUnmap.all()));
  }

  // ---------------------------------------------------------------- GET_INFO, CHECK_EXTENSION

  @Test
  void getInfoReportsPageSizesTheIovaRangesAndDmaAvail() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, MB);
    IommuFd.VfioIommuInfo info = ok(fd.vfioGetInfo());
    assertEquals(ModeUapi.VFIO_IOMMU_INFO_PGSIZES | ModeUapi.VFIO_IOMMU_INFO_CAPS, info.flags());
    assertEquals(4096, Long.lowestOneBit(info.iovaPgsizes()));
    assertTrue((info.iovaPgsizes() & (2 * MB)) != 0, Long.toHexString(info.iovaPgsizes()));
    assertEquals(new IovaRange(0, MSI - 1), info.iovaRanges().get(0));
    assertEquals(65534, info.dmaAvail());
  }

  @Test
  void getInfoBeforeSetIommuIsEinval() {
    ok(f.device("nic0").setContainer());
    err(Errno.EINVAL, fd.vfioGetInfo());
  }

  @Test
  void checkExtensionOffersType1Type1v2AndUnmapAll() {
    assertEquals(1, ok(fd.vfioCheckExtension(ModeUapi.VFIO_TYPE1_IOMMU)));
    assertEquals(1, ok(fd.vfioCheckExtension(ModeUapi.VFIO_TYPE1v2_IOMMU)));
    assertEquals(1, ok(fd.vfioCheckExtension(ModeUapi.VFIO_UNMAP_ALL)));
  }

  @Test
  void checkExtensionOfNestingUpdateVaddrAndPamuWithoutAPamuDeviceIsZero() {
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_TYPE1_NESTING_IOMMU)));
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_UPDATE_VADDR)));
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_FSL_PAMU_IOMMU)));
  }

  @Test
  void dmaCcIommuIsZeroBeforeSetIommu() {
    ok(f.device("nic0").setContainer());
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_DMA_CC_IOMMU)));
  }

  @Test
  void dmaCcIommuHoldsOnlyWhileEveryDomainEnforcesCoherency() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    assertEquals(1, ok(fd.vfioCheckExtension(ModeUapi.VFIO_DMA_CC_IOMMU)));
    ok(f.device("nic1").setContainer());
    assertEquals(0, ok(fd.vfioCheckExtension(ModeUapi.VFIO_DMA_CC_IOMMU)));
  }

  // ---------------------------------------------------------------- lifecycle

  @Test
  void aMappingMadeBeforeAGroupJoinsIsReplayedIntoItsDomain() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    ok(f.device("nic1").setContainer());
    assertEquals(2 * MB, f.mappedBytes("vtd1"));
  }

  @Test
  void closeOfAContainerReleasesEveryPin() {
    container(ModeUapi.VFIO_TYPE1v2_IOMMU);
    map(0, 0x10_0000, 2 * MB);
    ok(fd.close());
    assertEquals(0, f.pinnedBytes());
  }
}
