package io.iommulab.actors.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class IovaAllocatorTest {
  static final long K4 = 4096;
  static final long M2 = 2L << 20;

  @Test
  void buffersAreSizeAlignedSoLargeOnesCanUseLargePages() {
    IovaAllocator a = new IovaAllocator(1L << 20, 1L << 39, K4);
    long small = a.allocate(K4).value();
    long large = a.allocate(M2).value();
    long odd = a.allocate(3 * K4).value();

    assertEquals(1L << 20, small);
    assertEquals(0, large % M2);
    assertEquals(0, odd % (4 * K4), "3 pages are aligned like 4");
    a.checkInvariants();
  }

  @Test
  void freedRangesCoalesceAndAreReusedFirstFit() {
    IovaAllocator a = new IovaAllocator(1L << 20, 1L << 30, K4);
    long x = a.allocate(K4).value();
    long y = a.allocate(K4).value();
    long z = a.allocate(K4).value();
    a.free(x).value();
    a.free(y).value();
    a.checkInvariants();

    assertEquals(x, a.allocate(2 * K4).value(), "x and y merged into one 8K hole");
    assertEquals(K4, a.lengthAt(z));
    a.checkInvariants();
  }

  @Test
  void aFullSpaceIsEnospcAndBadLengthsAreEinvalAndNeitherChangesAnything() {
    IovaAllocator a = new IovaAllocator(K4, 5 * K4, K4);
    a.allocate(2 * K4).value();
    long before = a.allocatedBytes();

    assertEquals(Errno.ENOSPC, a.allocate(4 * K4).errnoOrNull());
    assertEquals(Errno.EINVAL, a.allocate(100).errnoOrNull());
    assertEquals(Errno.EINVAL, a.allocate(0).errnoOrNull());
    assertEquals(Errno.ENOENT, a.free(3 * K4).errnoOrNull());

    assertEquals(before, a.allocatedBytes());
    assertEquals(1, a.allocations());
    a.checkInvariants();
  }

  @Test
  void randomAllocationsNeverOverlapAndFreeingAllRestoresTheSpace() {
    IovaAllocator a = new IovaAllocator(1L << 20, 1L << 32, K4);
    SplittableRandom random = new SplittableRandom(42);
    List<long[]> live = new ArrayList<>();
    for (int step = 0; step < 2000; step++) {
      if (!live.isEmpty() && random.nextInt(3) == 0) {
        long[] r = live.remove(random.nextInt(live.size()));
        assertEquals(r[1], a.free(r[0]).value());
      } else {
        long length = (1 + random.nextInt(600)) * K4;
        Outcome<Long> iova = a.allocate(length);
        for (long[] r : live) {
          assertTrue(iova.value() + length <= r[0] || r[0] + r[1] <= iova.value(), "overlap");
        }
        live.add(new long[] {iova.value(), length});
      }
    }
    a.checkInvariants();
    for (long[] r : live) {
      a.free(r[0]).value();
    }
    assertEquals(0, a.allocatedBytes());
    assertEquals(1, a.freeRanges(), "every hole coalesced back into one");
    a.checkInvariants();
  }
}
