package io.iommulab.actors.vm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import org.junit.jupiter.api.Test;

class PasidAllocatorTest {

  @Test
  void pasidsAreHandedOutLowestFirstAndNeverZero() {
    PasidAllocator a = new PasidAllocator(20, 16);
    assertEquals(1, a.allocate().value());
    assertEquals(2, a.allocate().value());
    assertEquals(3, a.allocate().value());
    a.free(2).value();
    assertEquals(2, a.allocate().value(), "a freed PASID is reused first");
    assertFalse(a.isAllocated(0));
  }

  @Test
  void allocationPastTheQuotaIsEnospcAndChangesNothing() {
    PasidAllocator a = new PasidAllocator(20, 2);
    a.allocate();
    a.allocate();

    assertEquals(Errno.ENOSPC, a.allocate().errnoOrNull());

    assertEquals(2, a.allocated());
    assertFalse(a.isAllocated(3));
  }

  @Test
  void aNarrowPasidSpaceRunsOutBeforeALargeQuota() {
    PasidAllocator a = new PasidAllocator(2, 100);
    assertEquals(1, a.allocate().value());
    assertEquals(2, a.allocate().value());
    assertEquals(3, a.allocate().value());

    assertEquals(Errno.ENOSPC, a.allocate().errnoOrNull());
    assertEquals(3, a.allocated());
  }

  @Test
  void freeingAPasidTheVmDoesNotHoldIsEnoentAndChangesNothing() {
    PasidAllocator a = new PasidAllocator(20, 16);
    a.allocate();

    assertEquals(Errno.ENOENT, a.free(5).errnoOrNull());
    assertEquals(Errno.ENOENT, a.free(0).errnoOrNull());
    assertEquals(Errno.ENOENT, a.free(1 << 20).errnoOrNull());

    assertEquals(1, a.allocated());
    assertTrue(a.isAllocated(1));
  }
}
