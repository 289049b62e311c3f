package io.iommulab.actors.fd.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.List;
import org.junit.jupiter.api.Test;

class IoPagetableTest {

  private static final long MB = 1L << 20;
  private static final long VA = 0x7f00_0000_0000L;
  private final IoPagetable t = new IoPagetable(FaultInjector.NONE);
  private int pagesId = 1;

  private Outcome<List<Area>> map(long userVa, long length, long iova, boolean fixed) {
    Pages p = Pages.alloc(pagesId++, userVa, length, true, Accounting.Mode.USER, FaultInjector.NONE).value();
    Outcome<List<Area>> o =
        t.insertAreas(List.of(new IoPagetable.Slice(p, userVa - p.uptr(), length)), length, iova, fixed,
            Access.READ_WRITE);
    if (o.isOk()) {
      o.value().forEach(t::publish);
    }
    return o;
  }

  private long auto(long userVa, long length) {
    return map(userVa, length, 0, false).value().get(0).iova();
  }

  @Test
  void theAllocatorNeverReturnsZeroAndStartsAtPageSize() {
    assertEquals(Uapi.PAGE_SIZE, auto(VA + 0x1000, 0x1000));
  }

  @Test
  void theAllocatorKeepsTheUserVasSubPageOffset() {
    // The VA's lowest set bit (1) caps the alignment: ALIGN(PAGE_SIZE, 1) | 0x123.
    assertEquals(0x1123L, auto(VA + 0x123, MB - 0x200));
    // A 64 KiB-aligned VA gets the first 64 KiB-aligned hole after that area (ends at 0x100f22).
    assertEquals(0x110000L, auto(VA + 0x10000, 0x10000));
  }

  @Test
  void iovasNearTheTopOfTheAddressSpaceCompareUnsigned() {
    long top = -2 * MB; // 0xffff_ffff_ffe0_0000
    assertTrue(map(VA, MB, top, true).isOk());
    assertEquals(Errno.EEXIST, map(VA, MB, top + 0x1000, true).errnoOrNull());
    assertEquals(Errno.EOVERFLOW, map(VA, 2 * MB, -MB, true).errnoOrNull());
    assertEquals(Errno.ENOENT, t.planUnmap(top, top + MB / 2).errno());
    IoPagetable.UnmapPlan plan = t.planUnmap(top, -1L);
    assertEquals(MB, plan.bytes());
    assertNull(plan.errno());
  }

  @Test
  void aHugeReservedRangeLeavesNoRoomAndIsEnospcNotOverflow() {
    assertTrue(t.reserve(Uapi.PAGE_SIZE, -1L - Uapi.PAGE_SIZE, this, "test").isOk());
    assertEquals(Errno.ENOSPC, map(VA, Uapi.PAGE_SIZE, 0, false).errnoOrNull());
  }

  @Test
  void theRangesAreTheHolesOfOverlappingReservations() {
    t.reserve(0x1000, 0x4fff, this, "a");
    t.reserve(0x3000, 0x8fff, "x", "b");
    t.reserve(-0x1000L, -1L, "y", "c");
    assertEquals(List.of(new IovaRange(0, 0xfff), new IovaRange(0x9000, -0x1001L)), t.iovaRanges());
    t.removeReserved(this);
    assertEquals(List.of(new IovaRange(0, 0x2fff), new IovaRange(0x9000, -0x1001L)), t.iovaRanges());
  }

  @Test
  void anUnmapTakesWholeAreasUntilOneInFlightWhichIsEbusy() {
    map(VA, MB, 16 * MB, true);
    Pages p = Pages.alloc(99, VA, MB, true, Accounting.Mode.USER, FaultInjector.NONE).value();
    t.insertAreas(List.of(new IoPagetable.Slice(p, 0, MB)), MB, 18 * MB, true, Access.READ).value();
    IoPagetable.UnmapPlan plan = t.planUnmap(16 * MB, 20 * MB);
    assertEquals(1, plan.areas().size());
    assertEquals(Errno.EBUSY, plan.errno());
    assertEquals(Area.State.UNMAPPING, plan.areas().get(0).state());
    // An area being unmapped is no longer seen by another unmap, but still holds its IOVA.
    assertEquals(Errno.ENOENT, t.planUnmap(16 * MB, 17 * MB - 1).errno());
    assertEquals(Errno.EEXIST, map(VA, MB, 16 * MB, true).errnoOrNull());
  }

  @Test
  void copySourceSlicesFollowContiguousAreasAcrossPagesObjects() {
    map(VA, MB, 16 * MB, true);
    map(VA + 4 * MB, MB, 17 * MB, true);
    List<IoPagetable.Slice> slices = t.getPages(16 * MB + 0x1000, MB).value();
    assertEquals(2, slices.size());
    assertEquals(0x1000, slices.get(0).startByte());
    assertEquals(MB - 0x1000, slices.get(0).length());
    assertEquals(0x1000, slices.get(1).length());
    assertEquals(Errno.ENOENT, t.getPages(17 * MB, 2 * MB).errnoOrNull());
    assertEquals(Errno.EINVAL, t.getPages(17 * MB, 0).errnoOrNull());
  }

  @Test
  void aDomainRaisesTheAlignmentUnlessAnAreaDoesNotConform() {
    map(VA, 3, 16 * MB, true);
    assertEquals(Errno.EADDRINUSE, t.addDomain("d", 0x1000 | 0x20_0000, 0, -1L, "d").errnoOrNull());
    assertEquals(1, t.iovaAlignment());
    assertEquals(Errno.EINVAL, t.addDomain("e", 0x2000, 0, -1L, "e").errnoOrNull(), "8K pages exceed PAGE_SIZE");
  }

  @Test
  void aDomainReservesTheComplementOfItsApertureAndReleasesItWhenRemoved() {
    assertTrue(t.addDomain("d", 0x1000, 0x1000, (1L << 48) - 1, "d").isOk());
    assertEquals(List.of(new IovaRange(0x1000, (1L << 48) - 1)), t.iovaRanges());
    assertEquals(0x1000, t.iovaAlignment());
    t.removeDomain("d");
    assertEquals(List.of(new IovaRange(0, -1L)), t.iovaRanges());
    assertEquals(1, t.iovaAlignment());
  }

  @Test
  void aRefusedAllowedListLeavesThePreviousOne() {
    List<IovaRange> first = List.of(new IovaRange(0x1000, 0x1fff));
    t.setAllowed(first);
    t.reserve(0x10_0000, 0x10_ffff, this, "r");
    assertEquals(Errno.EADDRINUSE, t.setAllowed(List.of(new IovaRange(0x2000, 0x2fff), new IovaRange(0x10_0000, 0x20_0000))).errnoOrNull());
    assertEquals(first, t.allowed());
  }
}
