package io.iommulab.hardware.pamu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class SpaactPoolTest {

  @Test
  void allocationIsFirstFitAndContiguous() {
    SpaactPool p = new SpaactPool(16);
    assertEquals(0, p.allocate(3));
    assertEquals(3, p.allocate(7));
    assertEquals(10, p.allocate(6));
    assertEquals(-1, p.allocate(1));
    assertEquals(List.of(new SpaactPool.Range(0, 3), new SpaactPool.Range(3, 7), new SpaactPool.Range(10, 6)), p.ranges());
    assertEquals(16, p.used());
  }

  @Test
  void aFreedRunIsReusedByTheFirstRequestThatFitsIt() {
    SpaactPool p = new SpaactPool(16);
    p.allocate(3);
    p.allocate(3);
    p.allocate(3);
    p.free(3, 3);
    assertEquals(9, p.allocate(4), "4 does not fit the 3-entry hole");
    assertEquals(3, p.allocate(2), "2 does");
    assertTrue(p.isAllocated(4));
    assertFalse(p.isAllocated(5));
  }

  @Test
  void fragmentationRefusesARunTheFreeCountWouldAllow() {
    SpaactPool p = new SpaactPool(12);
    for (int i = 0; i < 4; i++) {
      p.allocate(3);
    }
    p.free(0, 3);
    p.free(6, 3);
    assertEquals(6, p.free());
    assertEquals(3, p.largestFreeRun());
    assertEquals(-1, p.allocate(4));
  }

  @Test
  void freeingAnythingButAnAllocatedRangeIsABug() {
    SpaactPool p = new SpaactPool(8);
    p.allocate(4);
    assertThrows(IllegalStateException.class, () -> p.free(0, 3));
    assertThrows(IllegalStateException.class, () -> p.free(1, 3));
  }

  @Test
  void saveAndRestoreBringBackTheExactAllocation() {
    SpaactPool p = new SpaactPool(8);
    p.allocate(2);
    SpaactPool.Saved s = p.save();
    p.free(0, 2);
    p.allocate(7);
    p.restore(s);
    assertEquals(List.of(new SpaactPool.Range(0, 2)), p.ranges());
    assertEquals(2, p.used());
    p.checkInvariants();
  }
}
