package io.iommulab.hardware.memory;

import static io.iommulab.hardware.PageSize.SIZE_2M;
import static io.iommulab.hardware.PageSize.SIZE_4K;
import static io.iommulab.hardware.PageSize.SIZE_64M;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import org.junit.jupiter.api.Test;

class GuestMemoryTest {
  private static final long MIB = 1L << 20;

  private static GuestMemory guest(int vm, long bytes, io.iommulab.hardware.PageSize backing,
      HostMemory host) {
    return GuestMemory.create(vm, bytes, backing, host).value();
  }

  @Test
  void translationsFollowTheBackingPages() {
    HostMemory host = new HostMemory(64 * MIB, FaultInjector.NONE);
    host.allocate(9, SIZE_2M).value(); // the guest does not start at hpa 0
    GuestMemory g = guest(1, 8 * MIB, SIZE_2M, host);
    long va = g.userVaBase();
    assertEquals(4, g.pageCount());
    assertEquals(2 * MIB, g.gpaToHpa(0));
    assertEquals(2 * MIB + 0x1234, g.gpaToHpa(0x1234));
    assertEquals(g.pageHpa(3) + MIB, g.gpaToHpa(7 * MIB));
    assertEquals(-1, g.gpaToHpa(8 * MIB));
    assertEquals(-1, g.gpaToHpa(-1));
    assertEquals(0x5000, g.userVaToGpa(va + 0x5000));
    assertEquals(g.gpaToHpa(0x5000), g.userVaToHpa(va + 0x5000));
    assertEquals(-1, g.userVaToGpa(va - 1));
    assertEquals(-1, g.userVaToHpa(va + 8 * MIB));
    assertEquals(-1, g.userVaToHpa(Long.MIN_VALUE));
    for (long gpa = 0; gpa < 8 * MIB; gpa += 4096) {
      assertEquals(1, host.owner(g.gpaToHpa(gpa)));
    }
    g.checkInvariants();
  }

  @Test
  void userVaBasesAreAlignedDistinctAndInsideTheUserHalf() {
    long a = GuestMemory.defaultUserVaBase(1, 64 * MIB);
    long b = GuestMemory.defaultUserVaBase(2, 64 * MIB);
    assertNotEquals(a, b);
    for (int vm = 1; vm < 300; vm++) {
      long base = GuestMemory.defaultUserVaBase(vm, 1L << 40);
      assertEquals(0, base & ((1L << 30) - 1));
      assertTrue(base + (1L << 40) <= GuestMemory.USER_VA_LIMIT);
    }
    long big = 4L << 40;
    assertTrue(GuestMemory.defaultUserVaBase(7, big) + big <= GuestMemory.USER_VA_LIMIT);
  }

  @Test
  void contiguousBytesRunsAcrossBackToBackPagesAndStopsAtAGap() {
    HostMemory host = new HostMemory(64 * MIB, FaultInjector.NONE);
    long hole = host.allocate(9, SIZE_2M).value();
    long wall = host.allocate(9, SIZE_2M).value();
    host.free(hole, SIZE_2M); // [0, 2M) free, [2M, 4M) taken, the rest free
    GuestMemory g = guest(1, 6 * MIB, SIZE_2M, host);
    assertEquals(0, g.pageHpa(0));
    assertEquals(wall + 2 * MIB, g.pageHpa(1));
    long va = g.userVaBase();
    assertEquals(2 * MIB, g.contiguousBytes(va));
    assertEquals(MIB - 5, g.contiguousBytes(va + MIB + 5));
    assertEquals(4 * MIB, g.contiguousBytes(va + 2 * MIB));
    assertEquals(4 * MIB - 0x3000, g.contiguousBytes(va + 2 * MIB + 0x3000));
    assertEquals(0, g.contiguousBytes(va + 6 * MIB));
    assertEquals(1, g.gpaContiguousBytes(6 * MIB - 1));
  }

  @Test
  void sixtyFourMegabytePagesAreContiguousAndAligned() {
    HostMemory host = new HostMemory(512 * MIB, FaultInjector.NONE);
    host.allocate(9, SIZE_4K).value(); // carves the first 64 MiB
    GuestMemory g = guest(2, 192 * MIB, SIZE_64M, host);
    for (int i = 0; i < g.pageCount(); i++) {
      assertTrue(SIZE_64M.isAligned(g.pageHpa(i)));
    }
    assertEquals(64 * MIB, g.pageHpa(0));
    assertEquals(192 * MIB, g.contiguousBytes(g.userVaBase()));
    assertEquals(192 * MIB - 65 * MIB, g.contiguousBytes(g.userVaBase() + 65 * MIB));
    assertEquals(g.pageHpa(1) + 0x12345, g.gpaToHpa(64 * MIB + 0x12345));
  }

  @Test
  void fourKiBBackingIsContiguousWithinEachPageAtLeast() {
    HostMemory host = new HostMemory(16 * MIB, FaultInjector.NONE);
    long a = host.allocate(9, SIZE_4K).value();
    host.allocate(9, SIZE_4K).value();
    host.free(a, SIZE_4K);
    GuestMemory g = guest(3, 64 * 1024, SIZE_4K, host);
    assertEquals(0, g.pageHpa(0));
    assertEquals(4096, g.contiguousBytes(g.userVaBase()));
    assertEquals(60 * 1024, g.contiguousBytes(g.userVaBase() + 4096));
    assertEquals(1, g.contiguousBytes(g.userVaEnd() - 1));
  }

  @Test
  void creationIsAllOrNothingWhenTheHostRunsOutOfMemory() {
    HostMemory host = new HostMemory(8 * MIB, FaultInjector.NONE);
    host.allocate(9, SIZE_4K).value();
    long digest = host.stateDigest();
    Outcome<GuestMemory> r = GuestMemory.create(1, 8 * MIB, SIZE_2M, host);
    assertEquals(Errno.ENOMEM, r.errnoOrNull());
    String msg = ((Outcome.Err<GuestMemory>) r).message();
    assertTrue(msg.contains("4 2 MiB blocks for owner 1: only 3"), msg);
    assertEquals(digest, host.stateDigest());
    assertEquals(0, host.allocatedBytes(1));
    assertTrue(GuestMemory.create(1, 6 * MIB, SIZE_2M, host).isOk());
  }

  @Test
  void injectedHostFailureLeavesTheHostUnchanged() {
    FailNth failNth = new FailNth();
    HostMemory host = new HostMemory(64 * MIB, failNth);
    long digest = host.stateDigest();
    failNth.arm(1);
    assertEquals(Errno.ENOMEM, GuestMemory.create(1, 32 * MIB, SIZE_2M, host).errnoOrNull());
    assertTrue(failNth.consumed());
    assertEquals(digest, host.stateDigest());
    host.checkInvariants();
  }

  @Test
  void badSizesAndAddressesAreRefusedWithEinval() {
    HostMemory host = new HostMemory(64 * MIB, FaultInjector.NONE);
    long digest = host.stateDigest();
    assertEquals(Errno.EINVAL, GuestMemory.create(1, 3 * MIB, SIZE_2M, host).errnoOrNull());
    assertEquals(Errno.EINVAL, GuestMemory.create(1, 0, SIZE_4K, host).errnoOrNull());
    assertEquals(
        Errno.EINVAL,
        GuestMemory.create(1, 4 * MIB, SIZE_2M, host, 0x7000_0000_1000L).errnoOrNull());
    assertEquals(
        Errno.EINVAL,
        GuestMemory.create(1, 4 * MIB, SIZE_2M, host, GuestMemory.USER_VA_LIMIT - 2 * MIB)
            .errnoOrNull());
    assertEquals(
        Errno.EINVAL, GuestMemory.create(1, 4 * MIB, SIZE_2M, host, -(4 * MIB)).errnoOrNull());
    assertEquals(digest, host.stateDigest());
    assertThrows(IllegalArgumentException.class,
        () -> GuestMemory.create(0, 4 * MIB, SIZE_2M, host));
  }

  @Test
  void pinningByUserVaPinsTheBackingFramesOncePerPinner() {
    HostMemory host = new HostMemory(64 * MIB, FaultInjector.NONE);
    GuestMemory g = guest(1, 8 * MIB, SIZE_2M, host);
    long va = g.userVaBase();
    assertTrue(g.pin(va + MIB, 2 * MIB).isOk());
    assertTrue(g.pin(va + MIB, 4096).isOk());
    assertEquals(2, host.pinCount(g.userVaToHpa(va + MIB)));
    assertEquals(1, host.pinCount(g.userVaToHpa(va + 3 * MIB - 1)));
    assertEquals(0, host.pinCount(g.userVaToHpa(va + 3 * MIB)));
    assertEquals(512, host.pinnedFrames());
    long digest = host.stateDigest();
    assertEquals(Errno.EFAULT, g.pin(va + 7 * MIB, 2 * MIB).errnoOrNull());
    assertEquals(Errno.EFAULT, g.pin(va - 4096, 8192).errnoOrNull());
    assertEquals(digest, host.stateDigest());
    assertThrows(IllegalStateException.class, () -> g.unpin(va, 4 * MIB));
    assertEquals(digest, host.stateDigest());
    g.unpin(va + MIB, 4096);
    g.unpin(va + MIB, 2 * MIB);
    assertEquals(0, host.pinnedFrames());
  }

  @Test
  void releaseReturnsEveryFrameAndAPinLeftBlocksIt() {
    HostMemory host = new HostMemory(64 * MIB, FaultInjector.NONE);
    GuestMemory g = guest(4, 16 * MIB, SIZE_2M, host);
    long va = g.userVaBase();
    long firstHpa = g.pageHpa(0);
    int gen = host.generation(firstHpa);
    assertTrue(g.pin(va + 5 * MIB, 4096).isOk());
    long digest = host.stateDigest();
    assertThrows(IllegalStateException.class, g::release);
    assertEquals(digest, host.stateDigest());
    assertEquals(16 * MIB, host.allocatedBytes(4));
    g.checkInvariants();
    g.unpin(va + 5 * MIB, 4096);
    g.release();
    assertTrue(g.isReleased());
    assertEquals(0, host.allocatedBytes(4));
    assertEquals(64 * MIB, host.freeBytes());
    assertEquals(HostMemory.FREE, host.owner(firstHpa));
    assertEquals(gen + 1, host.generation(firstHpa));
    assertThrows(IllegalStateException.class, () -> g.gpaToHpa(0));
    assertThrows(IllegalStateException.class, g::release);
    host.checkInvariants();
  }
}
