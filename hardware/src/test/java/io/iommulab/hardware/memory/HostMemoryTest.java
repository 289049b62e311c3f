package io.iommulab.hardware.memory;

import static io.iommulab.hardware.PageSize.SIZE_1G;
import static io.iommulab.hardware.PageSize.SIZE_2M;
import static io.iommulab.hardware.PageSize.SIZE_4K;
import static io.iommulab.hardware.PageSize.SIZE_64M;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class HostMemoryTest {
  private static final long MIB = 1L << 20;
  private static final long GIB = 1L << 30;

  /** Everything a refused call must leave as it was. */
  record Snapshot(long digest, long free, int[] owners, int[] generations) {
    static Snapshot of(HostMemory m) {
      m.checkInvariants();
      int samples = 257;
      int[] owners = new int[samples];
      int[] gens = new int[samples];
      long step = Math.max(4096, (m.ramBytes() / samples) & ~0xfffL);
      for (int i = 0; i < samples; i++) {
        long hpa = Math.min(m.ramBytes() - 4096, i * step);
        owners[i] = m.owner(hpa);
        gens[i] = m.generation(hpa);
      }
      return new Snapshot(m.stateDigest(), m.freeBytes(), owners, gens);
    }

    void assertUnchanged(HostMemory m) {
      Snapshot now = of(m);
      assertEquals(free, now.free, "free bytes");
      assertArrayEquals(owners, now.owners, "sampled owners");
      assertArrayEquals(generations, now.generations, "sampled generations");
      assertEquals(digest, now.digest, "state digest");
    }
  }

  private static long alloc(HostMemory m, int owner, PageSize size) {
    return m.allocate(owner, size).value();
  }

  @Test
  void allocationsAreNaturallyAlignedForEveryPageSize() {
    HostMemory m = new HostMemory(4 * GIB, FaultInjector.NONE);
    alloc(m, 1, SIZE_4K); // misalign the low end on purpose
    for (PageSize size : new PageSize[] {SIZE_4K, SIZE_2M, SIZE_64M, SIZE_1G, SIZE_2M, SIZE_4K}) {
      long hpa = alloc(m, 2, size);
      assertTrue(size.isAligned(hpa), size + " block at 0x" + Long.toHexString(hpa));
      assertEquals(2, m.owner(hpa));
      assertEquals(2, m.owner(hpa + size.bytes() - 1));
    }
    m.checkInvariants();
  }

  @Test
  void placementIsLowestAddressFirstAndSplittingKeepsTheLowerHalf() {
    HostMemory m = new HostMemory(2 * GIB, FaultInjector.NONE);
    assertEquals(0L, alloc(m, 1, SIZE_4K));
    assertEquals(0x1000L, alloc(m, 1, SIZE_4K));
    assertEquals(2 * MIB, alloc(m, 1, SIZE_2M));
    assertEquals(64 * MIB, alloc(m, 1, SIZE_64M));
    assertEquals(GIB, alloc(m, 1, SIZE_1G));
    assertEquals(0x2000L, alloc(m, 1, SIZE_4K));
    m.checkInvariants();
  }

  @Test
  void freeingEverythingCoalescesBackToTheLargestBlocks() {
    HostMemory m = new HostMemory(2 * GIB, FaultInjector.NONE);
    long digestEmpty = m.stateDigest();
    assertEquals(2, m.freeBlocks(HostMemory.MAX_ORDER));
    List<Long> small = new ArrayList<>();
    for (int i = 0; i < 3000; i++) {
      small.add(alloc(m, 1 + i % 3, i % 7 == 0 ? SIZE_2M : SIZE_4K));
    }
    assertEquals(1, m.freeBlocks(HostMemory.MAX_ORDER));
    assertTrue(m.carvedSections() > 0);
    // Free in an order unlike allocation so merges happen out of sequence.
    for (int i = small.size() - 1; i >= 0; i -= 2) {
      m.free(small.get(i), (i % 7 == 0) ? SIZE_2M : SIZE_4K);
    }
    for (int i = small.size() - 2; i >= 0; i -= 2) {
      m.free(small.get(i), (i % 7 == 0) ? SIZE_2M : SIZE_4K);
    }
    m.checkInvariants();
    assertEquals(2, m.freeBlocks(HostMemory.MAX_ORDER));
    assertEquals(0, m.carvedSections());
    assertEquals(2 * GIB, m.freeBytes());
    assertEquals(0L, alloc(m, 5, SIZE_1G));
    assertEquals(GIB, alloc(m, 5, SIZE_1G));
    // Generations moved on, so the state differs from the empty host only there.
    assertTrue(m.stateDigest() != digestEmpty);
  }

  @Test
  void allocationFailsWithEnomemWhenMemoryIsFragmented() {
    HostMemory m = new HostMemory(4 * MIB, FaultInjector.NONE);
    long page = alloc(m, 1, SIZE_4K);
    alloc(m, 2, SIZE_2M);
    Snapshot before = Snapshot.of(m);
    Outcome<Long> r = m.allocate(3, SIZE_2M);
    assertEquals(Errno.ENOMEM, r.errnoOrNull());
    String msg = ((Outcome.Err<Long>) r).message();
    assertTrue(msg.contains("one 2 MiB block for owner 3"), msg);
    assertTrue(msg.contains("2044 KiB free"), msg);
    assertTrue(msg.contains("largest free block 1 MiB"), msg);
    before.assertUnchanged(m);
    m.free(page, SIZE_4K);
    assertEquals(0L, alloc(m, 3, SIZE_2M));
  }

  @Test
  void injectedFrameFailureReturnsEnomemAndChangesNothing() {
    FailNth failNth = new FailNth();
    HostMemory m = new HostMemory(64 * MIB, failNth);
    alloc(m, 1, SIZE_4K);
    alloc(m, 2, SIZE_2M);
    for (PageSize size : new PageSize[] {SIZE_4K, SIZE_2M, SIZE_64M}) {
      Snapshot before = Snapshot.of(m);
      failNth.arm(1);
      Outcome<Long> r = m.allocate(1, size);
      assertEquals(Errno.ENOMEM, r.errnoOrNull());
      assertEquals(HostMemory.SITE_FRAMES, failNth.failedSite());
      before.assertUnchanged(m);
    }
    Snapshot before = Snapshot.of(m);
    failNth.arm(1);
    assertEquals(Errno.ENOMEM, m.allocateBlocks(3, SIZE_4K, 10).errnoOrNull());
    before.assertUnchanged(m);
    failNth.arm(1);
    assertEquals(Errno.ENOMEM, m.reserve(32 * MIB, 4 * MIB, HostMemory.HOST).errnoOrNull());
    before.assertUnchanged(m);
  }

  @Test
  void allocateBlocksIsAllOrNothing() {
    HostMemory m = new HostMemory(8 * MIB, FaultInjector.NONE);
    alloc(m, 1, SIZE_4K);
    Snapshot before = Snapshot.of(m);
    assertEquals(3, m.blocksAvailable(SIZE_2M, 100));
    Outcome<long[]> r = m.allocateBlocks(2, SIZE_2M, 4);
    assertEquals(Errno.ENOMEM, r.errnoOrNull());
    String msg = ((Outcome.Err<long[]>) r).message();
    assertTrue(msg.contains("4 2 MiB blocks for owner 2: only 3"), msg);
    before.assertUnchanged(m);
    long[] blocks = m.allocateBlocks(2, SIZE_2M, 3).value();
    assertArrayEquals(new long[] {2 * MIB, 4 * MIB, 6 * MIB}, blocks);
    assertEquals(6 * MIB, m.allocatedBytes(2));
  }

  @Test
  void freeOfABlockNotAllocatedAtThatSizeIsABugAndChangesNothing() {
    HostMemory m = new HostMemory(16 * MIB, FaultInjector.NONE);
    long big = alloc(m, 1, SIZE_2M);
    long small = alloc(m, 1, SIZE_4K);
    Snapshot before = Snapshot.of(m);
    assertThrows(IllegalStateException.class, () -> m.free(big, SIZE_4K));
    assertThrows(IllegalStateException.class, () -> m.free(small + 4096, SIZE_4K)); // free frame
    assertThrows(IllegalStateException.class, () -> m.free(8 * MIB, SIZE_2M)); // free section
    assertThrows(IllegalArgumentException.class, () -> m.free(big + 4096, SIZE_2M)); // unaligned
    assertThrows(IllegalArgumentException.class, () -> m.free(64 * MIB, SIZE_4K)); // beyond RAM
    assertThrows(IllegalStateException.class, () -> m.free(0, SIZE_64M)); // 2M block
    before.assertUnchanged(m);
    m.free(small, SIZE_4K);
    assertThrows(IllegalStateException.class, () -> m.free(small, SIZE_4K)); // double free
  }

  @Test
  void freeOfABlockWithPinnedFramesThrowsAndChangesNothing() {
    HostMemory m = new HostMemory(16 * MIB, FaultInjector.NONE);
    long big = alloc(m, 1, SIZE_2M);
    m.pin(big + 5 * 4096, 4096);
    Snapshot before = Snapshot.of(m);
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> m.free(big, SIZE_2M));
    assertTrue(e.getMessage().contains("pinned"), e.getMessage());
    before.assertUnchanged(m);
    m.unpin(big + 5 * 4096, 4096);
    m.free(big, SIZE_2M);
    m.checkInvariants();
  }

  @Test
  void generationIncrementsOnEveryFreeAndStaysWhileAllocated() {
    HostMemory m = new HostMemory(8 * MIB, FaultInjector.NONE);
    long a = alloc(m, 1, SIZE_4K);
    alloc(m, 1, SIZE_4K); // keeps the section carved after a is freed
    int g0 = m.generation(a);
    m.free(a, SIZE_4K);
    assertEquals(g0 + 1, m.generation(a));
    // Lowest-first reuse hands the same frame to the same owner: only the generation tells.
    assertEquals(a, alloc(m, 1, SIZE_4K));
    assertEquals(g0 + 1, m.generation(a));
    m.free(a, SIZE_4K);
    assertEquals(g0 + 2, m.generation(a));

    long big = alloc(m, 2, SIZE_2M);
    int gb = m.generation(big + 7 * 4096);
    m.free(big, SIZE_2M);
    assertEquals(gb + 1, m.generation(big + 7 * 4096));
    assertEquals(gb + 1, m.generation(big));
  }

  @Test
  void aSectionFoldingBackKeepsGenerationsMonotonic() {
    HostMemory m = new HostMemory(4 * MIB, FaultInjector.NONE);
    long a = alloc(m, 1, SIZE_4K);
    long b = alloc(m, 1, SIZE_4K);
    m.free(a, SIZE_4K);
    m.free(a = alloc(m, 1, SIZE_4K), SIZE_4K);
    int ga = m.generation(a);
    int gUntouched = m.generation(b + 4096);
    m.free(b, SIZE_4K); // the section is wholly free again and folds
    assertEquals(0, m.carvedSections());
    assertTrue(m.generation(a) >= ga);
    assertTrue(m.generation(b + 4096) >= gUntouched);
    assertTrue(m.generation(b) > 0);
  }

  @Test
  void pinCountsArePerPinnerAndUnpinBelowZeroThrows() {
    HostMemory m = new HostMemory(16 * MIB, FaultInjector.NONE);
    long big = alloc(m, 1, SIZE_2M);
    m.pin(big, 2 * MIB);
    m.pin(big, 2 * MIB);
    assertEquals(2, m.pinCount(big + 12345));
    assertEquals(512, m.pinnedFrames());
    m.unpin(big, 2 * MIB);
    m.unpin(big, 2 * MIB);
    assertEquals(0, m.pinnedFrames());
    Snapshot before = Snapshot.of(m);
    assertThrows(IllegalStateException.class, () -> m.unpin(big, 4096));
    before.assertUnchanged(m);
  }

  @Test
  void pinningFreeOrNonRamMemoryIsABugAndChangesNothing() {
    HostMemory m = new HostMemory(16 * MIB, FaultInjector.NONE);
    long big = alloc(m, 1, SIZE_2M);
    Snapshot before = Snapshot.of(m);
    // The range runs from the owned block into free memory: nothing may be pinned.
    assertThrows(IllegalArgumentException.class, () -> m.pin(big + MIB, 2 * MIB));
    assertThrows(IllegalArgumentException.class, () -> m.pin(15 * MIB, 2 * MIB));
    assertThrows(IllegalArgumentException.class, () -> m.pin(big, 0));
    before.assertUnchanged(m);
    assertEquals(0, m.pinCount(big));
  }

  @Test
  void partialPinOfA2MBlockUsesPerFrameCountsAndFoldsBack() {
    HostMemory m = new HostMemory(16 * MIB, FaultInjector.NONE);
    long big = alloc(m, 1, SIZE_2M);
    long before = m.metadataBytes();
    m.pin(big + 4096, 3 * 4096 - 100); // a byte range touching 3 frames
    assertEquals(0, m.pinCount(big));
    assertEquals(1, m.pinCount(big + 4096));
    assertEquals(1, m.pinCount(big + 3 * 4096));
    assertEquals(0, m.pinCount(big + 4 * 4096));
    assertEquals(3, m.pinnedFrames());
    assertTrue(m.metadataBytes() > before);
    m.checkInvariants();
    m.unpin(big + 4096, 3 * 4096);
    assertEquals(before, m.metadataBytes());
    // Pins spanning sections: the middle ones stay uniform.
    long span = alloc(m, 2, SIZE_4K);
    assertEquals(2 * MIB, span);
    long[] three = m.allocateBlocks(3, SIZE_2M, 3).value();
    long unpinned = m.metadataBytes();
    m.pin(three[0] + MIB, 5 * MIB);
    assertEquals(1280, m.pinnedFrames());
    assertEquals(1, m.pinCount(three[1]));
    assertEquals(0, m.pinCount(three[0] + MIB - 1));
    assertEquals(1, m.pinCount(three[2] + 2 * MIB - 1));
    assertTrue(m.allPinned(three[0] + MIB, 5 * MIB));
    assertFalse(m.allPinned(three[0] + MIB - 4096, 5 * MIB));
    assertTrue(m.anyPinned(three[0], MIB + 1));
    assertFalse(m.anyPinned(three[0], MIB));
    m.checkInvariants();
    m.unpin(three[0] + MIB, 5 * MIB);
    assertEquals(0, m.pinnedFrames());
    assertEquals(unpinned, m.metadataBytes(), "per-frame pin arrays are dropped when uniform");
    m.checkInvariants();
  }

  @Test
  void reserveCarvesRamAndRegistersMmioBeyondRam() {
    HostMemory m = new HostMemory(GIB, FaultInjector.NONE);
    long msiir = 0xffe044000L;
    assertEquals(HostMemory.UNBACKED, m.owner(msiir));
    assertTrue(m.reserve(msiir, 0x1000, HostMemory.HOST).isOk());
    assertEquals(HostMemory.HOST, m.owner(msiir + 0x40));
    assertTrue(m.isMmio(msiir));
    assertFalse(m.isRam(msiir));
    assertEquals(HostMemory.UNBACKED, m.owner(msiir + 0x1000));
    assertEquals(HostMemory.UNBACKED, m.owner(msiir - 1));
    assertEquals(GIB, m.freeBytes(), "MMIO is not RAM");

    // A RAM reservation straddling a 2 MiB boundary, at odd alignment.
    assertTrue(m.reserve(3 * MIB - 3 * 4096, 5 * 4096, HostMemory.HOST).isOk());
    assertEquals(HostMemory.HOST, m.owner(3 * MIB - 3 * 4096));
    assertEquals(HostMemory.HOST, m.owner(3 * MIB + 4096));
    assertEquals(HostMemory.FREE, m.owner(3 * MIB + 2 * 4096));
    assertEquals(HostMemory.FREE, m.owner(3 * MIB - 4 * 4096));
    assertEquals(5 * 4096, m.allocatedBytes(HostMemory.HOST));
    m.checkInvariants();
    // The allocator works around it.
    assertEquals(0L, alloc(m, 1, SIZE_2M));
    assertEquals(4 * MIB, alloc(m, 1, SIZE_2M));
  }

  @Test
  void refusedReservationsChangeNothing() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE);
    long page = alloc(m, 1, SIZE_4K);
    assertTrue(m.reserve(0xffe000000L, 0x100000, HostMemory.HOST).isOk());
    Snapshot before = Snapshot.of(m);
    assertEquals(Errno.EBUSY, m.reserve(page, 8192, HostMemory.HOST).errnoOrNull());
    assertEquals(Errno.EINVAL, m.reserve(62 * MIB, 4 * MIB, HostMemory.HOST).errnoOrNull());
    assertEquals(Errno.EINVAL, m.reserve(8 * MIB + 1, 4096, HostMemory.HOST).errnoOrNull());
    assertEquals(Errno.EINVAL, m.reserve(8 * MIB, 0, HostMemory.HOST).errnoOrNull());
    assertEquals(Errno.EINVAL, m.reserve(Long.MAX_VALUE & ~0xfffL, 8192, 0).errnoOrNull());
    assertEquals(Errno.EBUSY, m.reserve(0xffe044000L, 0x1000, HostMemory.HOST).errnoOrNull());
    assertEquals(Errno.EBUSY, m.reserve(0xffdfff000L, 0x2000, HostMemory.HOST).errnoOrNull());
    before.assertUnchanged(m);
  }

  @Test
  void reservedRamCannotBeFreed() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE);
    assertTrue(m.reserve(4 * MIB, 2 * MIB, HostMemory.HOST).isOk());
    Snapshot before = Snapshot.of(m);
    assertThrows(IllegalStateException.class, () -> m.free(4 * MIB, SIZE_2M));
    before.assertUnchanged(m);
  }

  @Test
  void ownersOutsideTheIdRangeAreBugs() {
    HostMemory m = new HostMemory(4 * MIB, FaultInjector.NONE);
    assertThrows(IllegalArgumentException.class, () -> m.allocate(HostMemory.FREE, SIZE_4K));
    assertThrows(
        IllegalArgumentException.class, () -> m.allocate(HostMemory.MAX_OWNER + 1, SIZE_4K));
    assertEquals(HostMemory.MAX_OWNER, m.owner(alloc(m, HostMemory.MAX_OWNER, SIZE_4K)));
    assertThrows(IllegalArgumentException.class, () -> new HostMemory(3 * MIB, FaultInjector.NONE));
  }

  @Test
  void dmaToOwnFramesIsOk() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE);
    long[] blocks = m.allocateBlocks(1, SIZE_2M, 3).value();
    assertEquals(DmaCheck.OK, m.check(blocks[0] + 100, 6 * MIB - 200, 1));
    long page = alloc(m, 1, SIZE_4K);
    assertEquals(DmaCheck.OK, m.check(page, 4096, 1));
    assertEquals(2, m.checkCount(DmaCheck.OK));
    assertEquals(0, m.violationLogSize());
  }

  @Test
  void withPinChecksAVmsDmaToItsOwnFrameThatNobodyPinsIsUnpinnedFrame() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE);
    m.setPinChecks(true);
    long[] blocks = m.allocateBlocks(1, SIZE_2M, 2).value();
    m.pin(blocks[0], 2 * MIB);
    m.pin(blocks[1], 4096);
    assertEquals(DmaCheck.OK, m.check(blocks[0] + 100, 2 * MIB - 200, 1));
    assertEquals(DmaCheck.OK, m.check(blocks[1], 4096, 1));
    // A span running from pinned frames into an unpinned one: judged at the first unpinned byte.
    assertEquals(DmaCheck.UNPINNED_FRAME, m.check(blocks[1] + 4000, 200, 1));
    assertEquals(blocks[1] + 4096, m.lastOffendingHpa());
    assertEquals(1, m.lastActualOwner());
    m.unpin(blocks[0], 2 * MIB);
    assertEquals(DmaCheck.UNPINNED_FRAME, m.check(blocks[0] + 8, 8, 1), "after its unpin");
    assertEquals(DmaCheck.OK, m.classify(blocks[0] + 8, 8, 1), "classify judges ownership only");
    // Another owner's frame stays an isolation violation; the host's accesses are not judged for pins.
    long host = alloc(m, HostMemory.HOST, SIZE_4K);
    assertEquals(DmaCheck.OK, m.check(host, 8, HostMemory.HOST));
    assertEquals(DmaCheck.ISOLATION_VIOLATION, m.check(blocks[0], 8, 2));
    assertEquals(2, m.checkCount(DmaCheck.UNPINNED_FRAME));
    assertEquals(DmaCheck.UNPINNED_FRAME, m.violation(0).kind());
    m.setPinChecks(false);
    assertEquals(DmaCheck.OK, m.check(blocks[0] + 8, 8, 1), "pin checks off: ownership alone");
    m.checkInvariants();
  }

  @Test
  void dmaSpanCrossingIntoAnotherVmsFrameIsAnIsolationViolation() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE);
    long mine = alloc(m, 1, SIZE_4K);
    long theirs = alloc(m, 2, SIZE_4K);
    assertEquals(mine + 4096, theirs);
    assertEquals(DmaCheck.ISOLATION_VIOLATION, m.check(mine + 4000, 200, 1));
    assertEquals(theirs, m.lastOffendingHpa());
    assertEquals(2, m.lastActualOwner());
    Violation v = m.violation(0);
    assertEquals(new Violation(theirs, 1, 2, DmaCheck.ISOLATION_VIOLATION), v);
    assertEquals(1, m.checkCount(DmaCheck.ISOLATION_VIOLATION));
    // The same span is fine for neither owner: VM 2 sees VM 1's frame first.
    assertEquals(DmaCheck.ISOLATION_VIOLATION, m.check(mine + 4000, 200, 2));
    assertEquals(mine + 4000, m.lastOffendingHpa());
  }

  @Test
  void dmaToHostFreedAndUnbackedMemoryIsClassified() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE);
    long pageTable = alloc(m, HostMemory.HOST, SIZE_4K);
    long mine = alloc(m, 1, SIZE_2M);
    assertTrue(m.reserve(0xffe044000L, 0x1000, HostMemory.HOST).isOk());
    assertEquals(DmaCheck.HOST_FRAME, m.check(pageTable + 8, 8, 1));
    assertEquals(DmaCheck.OK, m.check(pageTable + 8, 8, HostMemory.HOST));
    assertEquals(DmaCheck.HOST_FRAME, m.check(0xffe044000L, 4, 1));
    assertEquals(DmaCheck.FREED_FRAME, m.check(32 * MIB, 64, 1));
    assertEquals(DmaCheck.UNBACKED, m.check(64 * MIB, 64, 1));
    // The first offending frame decides: free RAM comes before the end of RAM.
    assertEquals(DmaCheck.FREED_FRAME, m.check(64 * MIB - 32, 64, 1));
    assertEquals(DmaCheck.UNBACKED, m.check(Long.MAX_VALUE - 10, 64, 1));
    assertEquals(DmaCheck.UNBACKED, m.check(0xffe045000L - 4, 8, HostMemory.HOST));
    m.free(mine, SIZE_2M);
    assertEquals(DmaCheck.FREED_FRAME, m.check(mine + 4096, 4096, 1), "after free");
    // A device with no DMA owner matches nothing, not even free memory.
    assertEquals(DmaCheck.FREED_FRAME, m.check(mine, 8, HostMemory.NOBODY));
    assertEquals(DmaCheck.HOST_FRAME, m.check(pageTable, 8, HostMemory.NOBODY));
    assertEquals(3, m.checkCount(DmaCheck.HOST_FRAME));
    assertThrows(IllegalArgumentException.class, () -> m.check(0, 8, HostMemory.FREE));
    assertThrows(IllegalArgumentException.class, () -> m.check(0, 0, 1));
  }

  @Test
  void theViolationLogKeepsTheFirstEntriesAndCountsTheRest() {
    HostMemory m = new HostMemory(4 * MIB, FaultInjector.NONE, 2);
    long theirs = alloc(m, 2, SIZE_4K);
    for (int i = 0; i < 5; i++) {
      m.check(theirs + i, 1, 1);
    }
    assertEquals(2, m.violationLogSize());
    assertEquals(3, m.violationsDropped());
    assertEquals(theirs + 1, m.violation(1).hpa());
    assertEquals(5, m.checkCount(DmaCheck.ISOLATION_VIOLATION));
  }

  @Test
  void dmaRunningOffTheEndOfOwnedRamIsUnbacked() {
    HostMemory m = new HostMemory(4 * MIB, FaultInjector.NONE);
    long[] all = m.allocateBlocks(1, SIZE_2M, 2).value();
    assertEquals(DmaCheck.UNBACKED, m.check(all[1] + 2 * MIB - 32, 64, 1));
    assertEquals(4 * MIB, m.lastOffendingHpa());
  }

  @Test
  void theDmaCheckAllocatesNothing() {
    HostMemory m = new HostMemory(64 * MIB, FaultInjector.NONE, 4);
    long mine = alloc(m, 1, SIZE_4K);
    long theirs = alloc(m, 2, SIZE_2M);
    com.sun.management.ThreadMXBean threads =
        (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    long sink = 0;
    for (int round = 0; round < 2; round++) { // the first round warms up
      long before = threads.getCurrentThreadAllocatedBytes();
      for (int i = 0; i < 100_000; i++) {
        sink += m.check(mine + (i & 0xfff), 1, 1).ordinal();
        sink += m.check(theirs + i, 64, 1).ordinal();
      }
      long allocated = threads.getCurrentThreadAllocatedBytes() - before;
      if (round == 1) {
        assertTrue(allocated < 4096, allocated + " bytes allocated by 200k checks");
      }
    }
    assertEquals(200_000 * DmaCheck.ISOLATION_VIOLATION.ordinal(), sink);
  }

  @Test
  void classifyDoesNotCount() {
    HostMemory m = new HostMemory(4 * MIB, FaultInjector.NONE);
    assertEquals(DmaCheck.FREED_FRAME, m.classify(0, 8, 1));
    for (DmaCheck c : DmaCheck.values()) {
      assertEquals(0, m.checkCount(c));
    }
  }
}
