package io.iommulab.hardware.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

class IoPageTableTest {

  static final long K4 = 4096;
  static final long M2 = 2L << 20;
  static final long G1 = 1L << 30;
  static final List<PageSize> ALL =
      List.of(PageSize.SIZE_4K, PageSize.SIZE_2M, PageSize.SIZE_1G);
  static final int RW = Access.READ_WRITE;

  static IoPageTable table(int width, List<PageSize> sizes) {
    return new IoPageTable(width, sizes, FaultInjector.NONE);
  }

  /** Asserts the errno and that the table is exactly as before the call. */
  static <T> void assertRefused(
      IoPageTable t, Errno expected, Supplier<Outcome<T>> call) {
    IoPageTable.Snapshot before = t.snapshot();
    Outcome<T> result = call.get();
    assertEquals(expected, result.errnoOrNull(), () -> "outcome " + result);
    assertEquals(before, t.snapshot());
    t.checkInvariants();
  }

  static List<PageSize> leafSizes(IoPageTable t) {
    List<PageSize> sizes = new ArrayList<>();
    t.forEachLeaf((iova, pa, size, prot) -> sizes.add(size));
    return sizes;
  }

  @Test
  void aTwoMegAlignedFourMegMapUsesTwoTwoMegLeaves() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(4 * M2, 10 * M2, 2 * M2, RW).isOk());
    assertEquals(List.of(PageSize.SIZE_2M, PageSize.SIZE_2M), leafSizes(t));
    assertEquals(2 * M2, t.mappedBytes());
    t.checkInvariants();
  }

  @Test
  void withOnlyFourKSupportedAFourMegMapUses1024Leaves() {
    IoPageTable t = table(48, List.of(PageSize.SIZE_4K));
    assertTrue(t.map(4 * M2, 10 * M2, 2 * M2, RW).isOk());
    assertEquals(1024, t.leafCount());
    assertTrue(leafSizes(t).stream().allMatch(s -> s == PageSize.SIZE_4K));
    t.checkInvariants();
  }

  @Test
  void eachStepTakesTheLargestPageTheAlignmentAndRemainingLengthAllow() {
    IoPageTable t = table(48, ALL);
    // 2 pages up to the 2 MiB boundary, one 2 MiB page, then a 4 KiB tail.
    assertTrue(t.map(M2 - 2 * K4, 5 * M2 - 2 * K4, 2 * K4 + M2 + K4, RW).isOk());
    assertEquals(
        List.of(PageSize.SIZE_4K, PageSize.SIZE_4K, PageSize.SIZE_2M, PageSize.SIZE_4K),
        leafSizes(t));
    t.checkInvariants();
  }

  @Test
  void aGigAlignedGigMapUsesOneGigLeafAndAWalkReadsTwoEntries() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(3 * G1, 5 * G1, G1, Access.READ).isOk());
    assertEquals(List.of(PageSize.SIZE_1G), leafSizes(t));
    Translation out = new Translation().reset();
    assertTrue(t.walk(3 * G1 + 0x12345, out));
    assertEquals(5 * G1 + 0x12345, out.hpa);
    assertEquals(PageSize.SIZE_1G, out.pageSize);
    assertEquals(2, out.levels);
    assertEquals(Access.READ, out.prot);
    assertEquals(Translation.Source.WALK, out.source);
  }

  @Test
  void iovaAndPaAlignedDifferentlyFallBackToTheCommonAlignment() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(0, M2 + K4, M2, RW).isOk());
    assertEquals(512, t.leafCount());
  }

  @Test
  void aWalkFillsTheAddressWithTheOffsetAndCountsTheEntriesRead() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(0x7000, 0xabc000, K4, RW | Access.SNOOP).isOk());
    Translation out = new Translation().reset();
    assertTrue(t.walk(0x7123, out));
    assertEquals(0xabc123L, out.hpa);
    assertEquals(PageSize.SIZE_4K, out.pageSize);
    assertEquals(4, out.levels);
    assertEquals(RW | Access.SNOOP, out.prot);
    assertNull(out.fault);
  }

  @Test
  void aWalkOfAnUnmappedAddressReportsTheEntriesItRead() {
    IoPageTable t = table(48, ALL);
    Translation out = new Translation().reset();
    assertFalse(t.walk(0x5000, out));
    assertEquals(1, out.levels);
    assertTrue(t.map(0x7000, 0xabc000, K4, RW).isOk());
    assertFalse(t.walk(0x5000, out));
    assertEquals(4, out.levels);
    assertFalse(t.walk(1L << 48, out));
    assertEquals(0, out.levels);
  }

  @Test
  void threeAndFiveLevelTablesWalkThreeAndFiveEntriesForFourKPages() {
    IoPageTable t3 = table(39, ALL);
    IoPageTable t5 = table(57, ALL);
    assertEquals(3, t3.levels());
    assertEquals(5, t5.levels());
    long high = (1L << 57) - K4;
    assertTrue(t5.map(high, 0x1000, K4, RW).isOk());
    assertTrue(t3.map((1L << 39) - K4, 0x1000, K4, RW).isOk());
    Translation out = new Translation().reset();
    assertTrue(t5.walk(high + 8, out));
    assertEquals(5, out.levels);
    assertEquals(0x1008, out.hpa);
    assertTrue(t3.walk((1L << 39) - 8, out));
    assertEquals(3, out.levels);
    assertRefused(t3, Errno.EINVAL, () -> t3.map(1L << 39, 0, K4, RW));
  }

  @Test
  void mapWithoutReadOrWriteIsRefusedAndChangesNothing() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(0, 0, K4, RW).isOk());
    assertRefused(t, Errno.EINVAL, () -> t.map(K4, 0, K4, 0));
    assertRefused(t, Errno.EINVAL, () -> t.map(K4, 0, K4, Access.SNOOP));
    assertRefused(t, Errno.EINVAL, () -> t.map(K4, 0, K4, Access.READ | Access.PRIV));
  }

  @Test
  void mapWithABadLengthOrAlignmentIsRefusedAndChangesNothing() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(0, 0, K4, RW).isOk());
    assertRefused(t, Errno.EINVAL, () -> t.map(K4, 0, 0, RW));
    assertRefused(t, Errno.EINVAL, () -> t.map(K4, 0, K4 + 1, RW));
    assertRefused(t, Errno.EINVAL, () -> t.map(K4 + 8, 0, K4, RW));
    assertRefused(t, Errno.EINVAL, () -> t.map(K4, 8, K4, RW));
  }

  @Test
  void mapNamesTheMisalignedArgument() {
    IoPageTable t = table(48, ALL);
    assertTrue(((Outcome.Err<Void>) t.map(K4 + 8, 0, K4, RW)).message().startsWith("iova"));
    assertTrue(((Outcome.Err<Void>) t.map(K4, 8, K4, RW)).message().startsWith("pa"));
  }

  @Test
  void aRangeThatWrapsPastTwoToTheSixtyFourIsAnOverflow() {
    IoPageTable t = table(57, ALL);
    assertRefused(t, Errno.EOVERFLOW, () -> t.map(-K4, 0, 2 * K4, RW));
    assertRefused(t, Errno.EOVERFLOW, () -> t.map(-K4, 0, K4, RW));
    assertRefused(t, Errno.EOVERFLOW, () -> t.map(0, -K4, 2 * K4, RW));
    assertRefused(t, Errno.EOVERFLOW, () -> t.unmap(-K4, 2 * K4));
  }

  @Test
  void aRangeBeyondTheAddressWidthIsRefused() {
    IoPageTable t = table(48, ALL);
    assertRefused(t, Errno.EINVAL, () -> t.map((1L << 48) - K4, 0, 2 * K4, RW));
    assertRefused(t, Errno.EINVAL, () -> t.map(0, (1L << 52) - K4, 2 * K4, RW));
    assertTrue(t.map((1L << 48) - K4, 0, K4, RW).isOk());
  }

  @Test
  void mapOverlappingAPresentEntryIsRefusedAndRollsBackWhatItAdded() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(8 * M2 + 5 * K4, 0x100000, K4, RW).isOk());
    // The 2 MiB page before is installed, then the 4 KiB page inside the next one collides.
    assertRefused(t, Errno.EEXIST, () -> t.map(7 * M2, 0, 2 * M2, RW));
    assertTrue(t.map(G1, 0, M2, RW).isOk());
    assertRefused(t, Errno.EEXIST, () -> t.map(G1 + 8 * K4, 0, K4, RW));
    assertRefused(t, Errno.EEXIST, () -> t.map(0, 0, 2 * G1, RW));
    assertEquals(2, t.leafCount());
  }

  @Test
  void unmapReturnsTheBytesItRemovedAndZeroWhenNothingWasThere() {
    IoPageTable t = table(48, ALL);
    assertEquals(0L, t.unmap(0, M2).value());
    assertTrue(t.map(0, 0, K4, RW).isOk());
    assertTrue(t.map(4 * K4, 0, K4, RW).isOk());
    assertTrue(t.map(M2, 0, M2, RW).isOk());
    // A range fully covering several maps, with gaps and slack, is fine.
    assertEquals(2 * K4 + M2, t.unmap(0, 8 * M2).value());
    assertTrue(t.isEmpty());
    assertEquals(1, t.nodeCount());
    t.checkInvariants();
  }

  @Test
  void unmapThatCutsALargePageIsRefusedAndChangesNothing() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(2 * M2, 0, 2 * M2, RW).isOk());
    assertRefused(t, Errno.EINVAL, () -> t.unmap(2 * M2, K4));
    assertRefused(t, Errno.EINVAL, () -> t.unmap(2 * M2 + K4, M2));
    assertRefused(t, Errno.EINVAL, () -> t.unmap(M2, M2 + K4));
    assertRefused(t, Errno.EINVAL, () -> t.unmap(3 * M2 + K4, 4 * M2));
    assertEquals(M2, t.unmap(3 * M2, M2).value());
    assertEquals(List.of(PageSize.SIZE_2M), leafSizes(t));
  }

  @Test
  void unmapOfPartOfASmallPageMapRemovesOnlyTheCoveredPages() {
    IoPageTable t = table(48, List.of(PageSize.SIZE_4K));
    assertTrue(t.map(0, 0, 16 * K4, RW).isOk());
    assertEquals(4 * K4, t.unmap(4 * K4, 4 * K4).value());
    assertEquals(12, t.leafCount());
    Translation out = new Translation().reset();
    assertFalse(t.walk(5 * K4, out));
    assertTrue(t.walk(8 * K4, out));
    t.checkInvariants();
  }

  @Test
  void unmapFreesTheTableNodesThatBecomeEmpty() {
    IoPageTable t = table(48, List.of(PageSize.SIZE_4K));
    assertTrue(t.map(0, 0, K4, RW).isOk());
    int base = t.nodeCount();
    assertTrue(t.map(5 * G1, 0, 3 * M2, RW).isOk());
    assertTrue(t.nodeCount() > base);
    assertEquals(3 * M2, t.unmap(5 * G1, 3 * M2).value());
    assertEquals(base, t.nodeCount());
    t.checkInvariants();
  }

  @Test
  void aFailedNodeAllocationAtAnyPointOfAMapLeavesTheTableAsBefore() {
    FailNth fail = new FailNth();
    IoPageTable t = new IoPageTable(48, ALL, fail);
    assertTrue(t.map(G1 - M2, 0x40000000L, M2, RW).isOk());
    IoPageTable.Snapshot before = t.snapshot();
    int failures = 0;
    for (long n = 1; ; n++) {
      fail.arm(n);
      // Crosses a 1 GiB and a 512 GiB boundary with 4 KiB, 2 MiB and 1 GiB leaves.
      long iova = (512 * G1) - M2 - 3 * K4;
      Outcome<Void> r = t.map(iova, 2 * G1 - M2 - 3 * K4, 3 * K4 + M2 + 2 * G1 + M2 + K4, RW);
      if (!fail.consumed()) {
        fail.disarm();
        assertTrue(r.isOk(), () -> "final run " + r);
        break;
      }
      assertEquals(Errno.ENOMEM, r.errnoOrNull());
      assertEquals(IoPageTable.SITE_NODE, fail.failedSite());
      assertEquals(before, t.snapshot(), "after failing allocation " + n);
      t.checkInvariants();
      failures++;
      assertTrue(n < 100, "sweep does not terminate");
    }
    assertTrue(failures >= 5, "expected several node allocations, saw " + failures);
    t.checkInvariants();
  }

  @Test
  void aWriteWalkSetsTheDirtyBitAndAReadWalkDoesNot() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(0, 0, M2, RW).isOk());
    assertTrue(t.map(M2, 0, K4, Access.READ).isOk());
    Translation out = new Translation().reset();
    assertTrue(t.walk(0x10, out));
    assertFalse(t.isDirty(0));
    assertTrue(t.walkForWrite(0x10, out));
    assertTrue(t.isDirty(0));
    // A read-only leaf is never made dirty: the write is denied.
    assertTrue(t.walkForWrite(M2, out));
    assertFalse(t.isDirty(M2));
  }

  @Test
  void readAndClearDirtyReportsDirtyLeavesInPageSizeStepsAndClearsOnlyWhenAsked() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(0, 0, 4 * K4, RW).isOk());
    assertTrue(t.map(M2, 0, M2, RW).isOk());
    Translation out = new Translation().reset();
    t.walkForWrite(K4, out);
    t.walkForWrite(3 * K4, out);
    t.walkForWrite(M2 + 0x5000, out);
    List<Long> seen = new ArrayList<>();
    assertEquals(3L, t.readAndClearDirty(0, 2 * M2, false, seen::add).value());
    assertEquals(List.of(K4, 3 * K4, M2), seen);
    seen.clear();
    assertEquals(1L, t.readAndClearDirty(M2 + 8 * K4, K4, true, seen::add).value());
    assertEquals(List.of(M2 + 8 * K4), seen);
    seen.clear();
    assertEquals(2L, t.readAndClearDirty(0, 2 * M2, true, seen::add).value());
    assertEquals(0L, t.readAndClearDirty(0, 2 * M2, true, seen::add).value());
  }

  @Test
  void forEachLeafVisitsInAscendingOrderAndClearEmptiesTheTable() {
    IoPageTable t = table(48, ALL);
    assertTrue(t.map(G1, 0x200000, M2, Access.READ).isOk());
    assertTrue(t.map(0, 0x1000, K4, Access.WRITE).isOk());
    List<Long> iovas = new ArrayList<>();
    List<Long> pas = new ArrayList<>();
    t.forEachLeaf((iova, pa, size, prot) -> {
      iovas.add(iova);
      pas.add(pa);
    });
    assertEquals(List.of(0L, G1), iovas);
    assertEquals(List.of(0x1000L, 0x200000L), pas);
    t.clear();
    assertTrue(t.isEmpty());
    assertEquals(0, t.mappedBytes());
    assertEquals(1, t.nodeCount());
    assertTrue(t.map(0, 0x1000, K4, Access.WRITE).isOk());
    t.checkInvariants();
  }

  @Test
  void aMillionMappedPagesKeepMapAndUnmapPerPageWork() {
    IoPageTable t = table(48, List.of(PageSize.SIZE_4K));
    long pages = 1 << 20;
    assertTrue(t.map(0, 0, pages * K4, RW).isOk());
    assertEquals(pages, t.leafCount());
    // 512 leaf nodes per GiB: the node count is exactly what the radix shape implies.
    assertEquals(1 + 1 + 4 + 2048, t.nodeCount());
    assertEquals(K4, t.unmap(12345 * K4, K4).value());
    assertTrue(t.map(12345 * K4, 0, K4, RW).isOk());
    Translation out = new Translation().reset();
    assertTrue(t.walk(777 * K4 + 3, out));
    assertEquals(777 * K4 + 3, out.hpa);
  }
}
