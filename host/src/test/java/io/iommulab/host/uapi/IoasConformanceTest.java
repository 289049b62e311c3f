package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.GUEST;
import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.PAGE;
import static io.iommulab.host.uapi.Fixture.await;
import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.host.uapi.IommuFd.IoasCopy;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import io.iommulab.host.uapi.IommuFd.IoasUnmap;
import java.util.List;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/** IOAS_ALLOC, IOAS_MAP (fixed and automatic IOVA), IOAS_UNMAP, IOAS_COPY (iommufd-uapi §1.3, §2.1, §2.3). */
class IoasConformanceTest extends ConformanceTest<Fixture> {

  @Override
  Fixture open() {
    return new Fixture(kit);
  }

  private static final int RW = Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE;
  private static final int FIXED = Uapi.IOAS_MAP_FIXED_IOVA | RW;

  /** An IOAS with nic0 attached (an auto domain on vtd0): 4 KiB alignment, pins on map. */
  private int ioasWithDomain() {
    int ioas = f.ioas();
    ok(f.bound("nic0").attach(ioas));
    return ioas;
  }

  // ---------------------------------------------------------------- IOAS_ALLOC and object ids

  @Test
  void ioasAllocWithNonzeroFlagsIsEopnotsuppAndCreatesNothing() {
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.ioasAlloc(new IommuFd.IoasAlloc(1)));
    assertEquals(before, f.state());
  }

  @Test
  void objectIdsStartAtOneAndTheLowestFreeIdIsTakenAgain() {
    assertEquals(1, f.ioas());
    assertEquals(2, f.ioas());
    assertEquals(3, f.ioas());
    ok(fd.destroy(2));
    assertEquals(2, f.ioas());
    assertEquals(4, f.ioas());
  }

  @Test
  void destroyOfAMissingIdIsEnoentAndChangesNothing() {
    f.ioas();
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.destroy(7));
    err(Errno.ENOENT, fd.destroy(0));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfAnIoasWithAreasButNoDomainDropsItsAreas() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.destroy(ioas));
    assertTrue(f.snapshot().isEmpty(), f.snapshot().toString());
  }

  // ---------------------------------------------------------------- MAP: header rules

  @Test
  void mapWithUnknownFlagsIsEopnotsuppAndChangesNothing() {
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOPNOTSUPP, fd.ioasMap(new IoasMap(FIXED | 0x8, ioas, f.va, MB, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void mapWithNeitherReadableNorWriteableIsEinvalAndChangesNothing() {
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasMap(new IoasMap(Uapi.IOAS_MAP_FIXED_IOVA, ioas, f.va, MB, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void mapWithAnIovaOrLengthOfUlongMaxIsEoverflowAndChangesNothing() {
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOVERFLOW, fd.ioasMap(new IoasMap(FIXED, ioas, f.va, MB, -1L)));
    err(Errno.EOVERFLOW, fd.ioasMap(new IoasMap(FIXED, ioas, f.va, -1L, 0)));
    assertEquals(before, f.state());
  }

  @Test
  void mapIntoAMissingIoasIsEnoent() {
    err(Errno.ENOENT, fd.ioasMap(IoasMap.fixed(5, f.va, MB, 0)));
  }

  @Test
  void mapWithZeroLengthIsEinvalAndChangesNothing() {
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasMap(IoasMap.fixed(ioas, f.va, 0, 16 * MB)));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- MAP: fixed IOVA

  @Test
  void mapAtAFixedIovaOverlappingAnAreaIsEexistAndChangesNothing() {
    int ioas = ioasWithDomain();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 4 * MB, 16 * MB)));
    Fixture.State before = f.state();
    err(Errno.EEXIST, fd.ioasMap(IoasMap.fixed(ioas, f.va + 8 * MB, 2 * MB, 18 * MB)));
    err(Errno.EEXIST, fd.ioasMap(IoasMap.fixed(ioas, f.va + 8 * MB, 4 * MB, 14 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapAtAFixedIovaInAReservedRangeIsEinvalAndChangesNothing() {
    int ioas = ioasWithDomain(); // VT-d reserves its interrupt window 0xfee00000-0xfeefffff
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 0xfee0_0000L)));
    assertEquals(before, f.state());
  }

  @Test
  void mapAtAnUnalignedFixedIovaOrLengthWithADomainIsEinvalAndChangesNothing() {
    int ioas = ioasWithDomain();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasMap(IoasMap.fixed(ioas, f.va, MB, 16 * MB + 0x800)));
    err(Errno.EINVAL, fd.ioasMap(IoasMap.fixed(ioas, f.va, MB + 0x800, 16 * MB)));
    err(Errno.EINVAL, fd.ioasMap(IoasMap.fixed(ioas, f.va + 0x800, MB, 16 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void withoutADomainAnyIovaAlignmentIsAccepted() {
    int ioas = f.ioas();
    assertEquals(1, ok(fd.ioasIovaRanges(new IommuFd.IoasIovaRanges(ioas, 4))).outIovaAlignment());
    assertEquals(16 * MB + 1, ok(fd.ioasMap(IoasMap.fixed(ioas, f.va + 1, 3, 16 * MB + 1))));
  }

  @Test
  void mapOfAUserVaOutsideGuestMemoryWithADomainIsEfaultAndPinsNothing() {
    int ioas = ioasWithDomain();
    Fixture.State before = f.state();
    err(Errno.EFAULT, fd.ioasMap(IoasMap.fixed(ioas, f.va + GUEST - MB, 2 * MB, 16 * MB)));
    err(Errno.EFAULT, fd.ioasMap(IoasMap.fixed(ioas, 0x1000_0000L, MB, 16 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void mapOfAUserVaOutsideGuestMemoryWithoutADomainSucceedsBecausePinningIsLazy() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, 0x1000_0000L, MB, 16 * MB)));
    assertEquals(0, f.pinnedBytes());
    // The first domain needs the pages: attach pins them and fails, changing nothing.
    VfioDevice nic0 = f.bound("nic0");
    Fixture.State before = f.state();
    err(Errno.EFAULT, nic0.attach(ioas));
    assertEquals(before, f.state());
  }

  @Test
  void mapInstallsThePagesOfTheUserVaInTheDomain() {
    int ioas = ioasWithDomain();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va + 30 * MB, 4 * MB, 64 * MB)));
    var domain = f.unitSnapshot("vtd0").paging().domains().get(0);
    assertEquals(4 * MB, domain.table().mappedBytes());
    for (var leaf : domain.table().leaves()) {
      assertEquals(f.layout.userVaToHpa(f.va + 30 * MB + (leaf.iova() - 64 * MB)), leaf.pa(), leaf.toString());
    }
    assertEquals(4 * MB, f.pinnedBytes());
  }

  @Test
  void mapRefusedByOneDomainIsUndoneInTheOthersAndUnpinned() {
    use(Fixture.withFakeUnits(kit));
    int ioas = f.ioas();
    ok(f.bound("nic0").attach(ioas));
    ok(f.bound("nic2").attach(ioas)); // smmu0: a second auto domain of the same IOAS
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    Fixture.State before = f.state();
    f.controls.get("smmu0").failNextMap.set(Errno.ENOSPC);
    err(Errno.ENOSPC, fd.ioasMap(IoasMap.fixed(ioas, f.va + 4 * MB, 2 * MB, 32 * MB)));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- MAP: automatic IOVA

  @Test
  void anAutomaticIovaIsNeverZero() {
    int ioas = f.ioas();
    long iova = ok(fd.ioasMap(IoasMap.auto(ioas, f.va, 2 * MB)));
    assertNotEquals(0, iova);
  }

  @Test
  void anAutomaticIovaIsAlignedToTheRoundedUpLengthCappedByTheUserVasLowestSetBit() {
    int ioas = f.ioas();
    long a = ok(fd.ioasMap(IoasMap.auto(ioas, f.va, 3 * MB))); // roundup 4 MiB, f.va aligned higher
    assertEquals(0, a % (4 * MB));
    assertEquals(4 * MB, a);
    // 8 MiB would align to 8 MiB (0x800000); the f.va's lowest set bit caps it at 64 KiB, so the
    // first 64 KiB-aligned hole after the first area wins.
    long b = ok(fd.ioasMap(IoasMap.auto(ioas, f.va + 64 * 1024, 8 * MB)));
    assertEquals(7 * MB, b);
  }

  @Test
  void anAutomaticIovaStaysInsideTheAllowedRanges() {
    int ioas = f.ioas();
    ok(fd.ioasAllowIovas(new IommuFd.IoasAllowIovas(ioas, List.of(new IovaRange(0x4000_0000L, 0x7fff_ffffL)))));
    long iova = ok(fd.ioasMap(IoasMap.auto(ioas, f.va, 2 * MB)));
    assertEquals(0x4000_0000L, iova);
  }

  @Test
  void anAutomaticIovaSkipsAreasAndReservedRanges() {
    int ioas = f.ioas();
    ok(f.bound("nic2").attach(ioas)); // SMMUv3 reserves its software MSI window 0x8000000-0x80fffff
    // Fill [PAGE, 0x8000000) with areas (the same guest memory may be mapped many times).
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB - PAGE, PAGE)));
    for (long iova = 2 * MB; iova < 0x800_0000L; iova += 30 * MB) {
      long len = Math.min(30 * MB, 0x800_0000L - iova);
      ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, len, iova)));
    }
    long iova = ok(fd.ioasMap(IoasMap.auto(ioas, f.va, MB)));
    assertEquals(0x810_0000L, iova, "past the areas and the reserved window");
  }

  @Test
  void anAutomaticIovaWithNoRoomLeftIsEnospcAndChangesNothing() {
    int ioas = f.ioas();
    ok(fd.ioasAllowIovas(new IommuFd.IoasAllowIovas(ioas, List.of(new IovaRange(0x20_0000L, 0x3f_ffffL)))));
    ok(fd.ioasMap(IoasMap.auto(ioas, f.va, 2 * MB)));
    Fixture.State before = f.state();
    err(Errno.ENOSPC, fd.ioasMap(IoasMap.auto(ioas, f.va, 2 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void anAutomaticIovaWhoseUserVaAllowsLessThanTheIoasAlignmentIsEinval() {
    int ioas = ioasWithDomain();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasMap(IoasMap.auto(ioas, f.va + 0x800, 2 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void anAutomaticIovaForHalfTheAddressSpaceIsEoverflowAndChangesNothing() {
    int ioas = f.ioas();
    Fixture.State before = f.state();
    err(Errno.EOVERFLOW, fd.ioasMap(IoasMap.auto(ioas, f.va, 1L << 63)));
    // A zero length never reaches the allocator: iopt_alloc_pages refuses it first.
    err(Errno.EINVAL, fd.ioasMap(IoasMap.auto(ioas, f.va, 0)));
    assertEquals(before, f.state());
  }

  // ---------------------------------------------------------------- UNMAP

  @Test
  void unmapThatCutsAnAreaIsEnoentAndChangesNothing() {
    int ioas = ioasWithDomain();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 4 * MB, 16 * MB)));
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 2 * MB)));
    err(Errno.ENOENT, fd.ioasUnmap(new IoasUnmap(ioas, 18 * MB, 4 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapThatCutsALaterAreaRemovesTheEarlierAreasAndStillIsEnoent() {
    int ioas = ioasWithDomain();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va + 2 * MB, 4 * MB, 20 * MB)));
    err(Errno.ENOENT, fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 6 * MB)));
    List<FdSnapshot.AreaSnapshot> areas = f.ioasSnapshot(ioas).areas();
    assertEquals(1, areas.size());
    assertEquals(20 * MB, areas.get(0).iova());
    assertEquals(4 * MB, f.mappedBytes("vtd0"));
    assertEquals(4 * MB, f.pinnedBytes());
  }

  @Test
  void unmapOfWholeAreasWithGapsAndSlackReturnsTheirBytes() {
    int ioas = ioasWithDomain();
    for (int i = 0; i < 4; i++) {
      ok(fd.ioasMap(IoasMap.fixed(ioas, f.va + i * 2 * MB, MB, 16 * MB + i * 4 * MB)));
    }
    assertEquals(4 * MB, ok(fd.ioasUnmap(new IoasUnmap(ioas, 8 * MB, 32 * MB))));
    assertEquals(0, f.mappedBytes("vtd0"));
    assertEquals(0, f.pinnedBytes());
  }

  @Test
  void unmapOfARangeWithNothingMappedIsEnoent() {
    int ioas = f.ioas();
    err(Errno.ENOENT, fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, MB)));
  }

  @Test
  void unmapAllOfAnEmptyIoasSucceedsWithZeroBytes() {
    int ioas = f.ioas();
    assertEquals(0, ok(fd.ioasUnmap(IoasUnmap.all(ioas))));
  }

  @Test
  void unmapAllRemovesEveryAreaFromEveryDomainAndUnpins() {
    int ioas = ioasWithDomain();
    ok(f.bound("nic2").attach(ioas));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.auto(ioas, f.va + 8 * MB, 4 * MB)));
    assertEquals(6 * MB, ok(fd.ioasUnmap(IoasUnmap.all(ioas))));
    assertEquals(0, f.mappedBytes("vtd0"));
    assertEquals(0, f.mappedBytes("smmu0"));
    assertEquals(0, f.pinnedBytes());
    assertEquals(List.of(), f.ioasSnapshot(ioas).areas());
  }

  @Test
  void unmapWithZeroLengthIsEinvalAndWithUlongMaxIsEoverflow() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, MB, 16 * MB)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 0)));
    err(Errno.EOVERFLOW, fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, -1L)));
    err(Errno.EOVERFLOW, fd.ioasUnmap(new IoasUnmap(ioas, -PAGE, 2 * PAGE)));
    assertEquals(before, f.state());
  }

  @Test
  void unmapRacingAMapOfTheSameAreaIsEbusyAndChangesNothing() throws Exception {
    use(Fixture.withFakeUnits(kit));
    int ioas = ioasWithDomain();
    FakeUnit.Control vtd0 = f.controls.get("vtd0");
    vtd0.holdMaps = true;
    CompletionStage<Outcome<Long>> map = fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB));
    vtd0.awaitHeld(1);
    Fixture.State before = f.state();
    assertEquals("MAPPING", before.fd().ioases().get(0).areas().get(0).state());
    err(Errno.EBUSY, fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 2 * MB)));
    err(Errno.EBUSY, fd.ioasUnmap(IoasUnmap.all(ioas)));
    assertEquals(before, f.state());
    vtd0.releaseHeld();
    assertEquals(16 * MB, await(map).value());
    assertEquals(2 * MB, ok(fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 2 * MB))));
  }

  // ---------------------------------------------------------------- COPY

  @Test
  void copySharesThePagesAndPinsThemOnce() {
    int src = ioasWithDomain();
    int dst = f.ioas();
    ok(f.bound("nvme0").attach(dst));
    ok(fd.ioasMap(IoasMap.fixed(src, f.va, 4 * MB, 16 * MB)));
    long before = f.snapshot().accounting().userLockedPages();
    assertEquals(48 * MB, ok(fd.ioasCopy(new IoasCopy(FIXED, dst, src, 4 * MB, 48 * MB, 16 * MB))));
    FdSnapshot s = f.snapshot();
    assertEquals(before, s.accounting().userLockedPages());
    assertEquals(4 * MB / PAGE, s.accounting().pinnedPages());
    assertEquals(1, s.accounting().pagesObjects());
    assertEquals(4 * MB, f.pinnedBytes());
    assertEquals(8 * MB, f.mappedBytes("vtd0"), "both domains hold the pages");
    // The source goes; the copy keeps the pages pinned.
    ok(fd.ioasUnmap(IoasUnmap.all(src)));
    assertEquals(4 * MB, f.pinnedBytes());
    ok(fd.ioasUnmap(IoasUnmap.all(dst)));
    assertEquals(0, f.pinnedBytes());
    assertEquals(0, f.snapshot().accounting().userLockedPages());
  }

  @Test
  void copyOfASubRangeOfAMapIsAllowed() {
    int src = f.ioas();
    int dst = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(src, f.va, 8 * MB, 16 * MB)));
    assertEquals(64 * MB, ok(fd.ioasCopy(new IoasCopy(FIXED, dst, src, 2 * MB, 64 * MB, 18 * MB))));
    FdSnapshot.AreaSnapshot a = f.ioasSnapshot(dst).areas().get(0);
    assertEquals(2 * MB, a.pagesOffset());
  }

  @Test
  void copyOfARangeNotCoveredByContiguousAreasIsEnoentAndChangesNothing() {
    int src = f.ioas();
    int dst = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(src, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(src, f.va, 2 * MB, 20 * MB)));
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.ioasCopy(new IoasCopy(FIXED, dst, src, 6 * MB, 64 * MB, 16 * MB)));
    err(Errno.ENOENT, fd.ioasCopy(new IoasCopy(FIXED, dst, src, 2 * MB, 64 * MB, 8 * MB)));
    err(Errno.ENOENT, fd.ioasCopy(new IoasCopy(FIXED, dst, 9, 2 * MB, 64 * MB, 16 * MB)));
    assertEquals(before, f.state());
  }

  @Test
  void writeableCopyOfPagesMappedReadOnlyIsEpermAndChangesNothing() {
    int src = f.ioas();
    int dst = f.ioas();
    ok(fd.ioasMap(new IoasMap(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE, src, f.va, 2 * MB, 16 * MB)));
    Fixture.State before = f.state();
    err(Errno.EPERM, fd.ioasCopy(new IoasCopy(FIXED, dst, src, 2 * MB, 64 * MB, 16 * MB)));
    assertEquals(before, f.state());
    ok(fd.ioasCopy(new IoasCopy(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE, dst, src, 2 * MB, 64 * MB, 16 * MB)));
  }

  @Test
  void twoMapsOfTheSameUserMemoryArePinnedAndChargedTwice() {
    int ioas = ioasWithDomain();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 32 * MB)));
    assertEquals(2 * 2 * MB / PAGE, f.snapshot().accounting().userLockedPages());
    assertEquals(2 * MB, f.pinnedBytes(), "the host sees the same frames pinned twice");
  }

  @Test
  void mapWithoutADomainPinsNothingAndTheFirstDomainPinsEveryArea() {
    int ioas = f.ioas();
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va, 2 * MB, 16 * MB)));
    ok(fd.ioasMap(IoasMap.fixed(ioas, f.va + 4 * MB, 2 * MB, 32 * MB)));
    assertEquals(0, f.pinnedBytes());
    VfioDevice nic0 = f.bound("nic0");
    ok(nic0.attach(ioas));
    assertEquals(4 * MB, f.pinnedBytes());
    assertEquals(4 * MB, f.mappedBytes("vtd0"));
    ok(nic0.detach());
    assertEquals(0, f.pinnedBytes());
    assertEquals(0, f.domains("vtd0"), "the auto domain died with its last device");
  }
}
