package io.iommulab.hardware.cache;

import static io.iommulab.hardware.fault.FaultRecord.NO_PASID;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.IotlbSettings;
import io.iommulab.config.IotlbSettings.Eviction;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;
import org.junit.jupiter.api.Test;

class DeviceAtcTest {
  private static final long K4 = 1L << 12;
  private static final long M2 = 1L << 21;

  static boolean hits(DeviceAtc atc, int pasid, long iova) {
    return atc.lookup(pasid, iova, new Translation().reset());
  }

  static DeviceAtc withPages(int pasid, long firstPage, long pages) {
    DeviceAtc atc = new DeviceAtc(new IotlbSettings(16, 8, Eviction.LRU), 1);
    for (long p = firstPage; p < firstPage + pages; p++) {
      atc.insert(pasid, p * K4, p * K4, PageSize.SIZE_4K, Access.READ);
    }
    return atc;
  }

  @Test
  void aHitIsServedWithSourceAtcAndTheOffsetOfTheIova() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    atc.insert(NO_PASID, 0x7000, 0x9000, PageSize.SIZE_4K, Access.READ_WRITE);
    Translation out = new Translation().reset();
    assertTrue(atc.lookup(NO_PASID, 0x7abc, out));
    assertEquals(0x9abc, out.hpa);
    assertEquals(Translation.Source.ATC, out.source);
    assertEquals(PageSize.SIZE_4K, out.pageSize);
    assertEquals(Access.READ_WRITE, out.prot);
  }

  @Test
  void aMissLeavesTheTranslationUntouchedAndOtherPasidsDoNotHit() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    atc.insert(3, 0x7000, 0x9000, PageSize.SIZE_4K, Access.READ);
    Translation out = new Translation().reset();
    assertFalse(atc.lookup(4, 0x7000, out));
    assertFalse(atc.lookup(NO_PASID, 0x7000, out));
    assertNull(out.source);
    assertEquals(-1, out.hpa);
  }

  @Test
  void theCapacityOnlyConstructorBuildsAnExactSetAssociativeGeometry() {
    assertEquals(new IotlbSettings(8, 8, Eviction.LRU), DeviceAtc.geometryFor(64));
    assertEquals(new IotlbSettings(1, 5, Eviction.LRU), DeviceAtc.geometryFor(5));
    assertEquals(new IotlbSettings(4, 25, Eviction.LRU), DeviceAtc.geometryFor(100));
    assertEquals(64, new DeviceAtc(64, 1).capacity());
    assertThrows(IllegalArgumentException.class, () -> new DeviceAtc(0, 1));
  }

  @Test
  void sizeNeverExceedsCapacity() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    for (long p = 0; p < 500; p++) {
      atc.insert((int) (p % 4), p * K4, p * K4, PageSize.SIZE_4K, Access.READ);
      assertTrue(atc.size() <= 64);
    }
    assertEquals(64, atc.size());
    atc.checkInvariants();
  }

  @Test
  void anAlignedInvalidationDropsExactlyItsPages() {
    DeviceAtc atc = withPages(2, 0, 32);
    assertEquals(4, atc.invalidate(2, 8 * K4, 2));
    for (long p = 0; p < 32; p++) {
      assertEquals(p < 8 || p > 11, hits(atc, 2, p * K4), "page " + p);
    }
  }

  @Test
  void anUnalignedRangeIsWidenedToTheSmallestAlignedPowerOfTwoSpan() {
    // Pages [7, 10] need [0, 15]: the example of arm_smmu_atc_inv_to_cmd.
    DeviceAtc atc = withPages(2, 0, 32);
    assertEquals(16, atc.invalidate(2, 7 * K4, 2));
    for (long p = 0; p < 32; p++) {
      assertEquals(p >= 16, hits(atc, 2, p * K4), "page " + p);
    }
  }

  @Test
  void aSinglePageInvalidationDropsALargeEntryContainingIt() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    atc.insert(NO_PASID, 2 * M2, 6 * M2, PageSize.SIZE_2M, Access.READ);
    assertEquals(1, atc.invalidate(NO_PASID, 2 * M2 + 0x1f_f000, 0));
    assertFalse(hits(atc, NO_PASID, 2 * M2));
  }

  @Test
  void anInvalidationWithoutPasidAlsoWipesPasidTaggedEntriesInTheRange() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    atc.insert(NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    atc.insert(5, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    atc.insert(6, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    atc.insert(6, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    assertEquals(3, atc.invalidate(NO_PASID, 0x1000, 0));
    assertFalse(hits(atc, NO_PASID, 0x1000));
    assertFalse(hits(atc, 5, 0x1000));
    assertFalse(hits(atc, 6, 0x1000));
    assertTrue(hits(atc, 6, 0x2000));
  }

  @Test
  void anInvalidationWithPasidKeepsOtherPasidsAndUntaggedEntries() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    atc.insert(NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    atc.insert(5, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    atc.insert(6, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    assertEquals(1, atc.invalidate(5, 0x1000, 0));
    assertTrue(hits(atc, NO_PASID, 0x1000));
    assertFalse(hits(atc, 5, 0x1000));
    assertTrue(hits(atc, 6, 0x1000));
  }

  @Test
  void aRangeRunningPastTheTopOfTheSpaceIsClampedNotWrapped() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    atc.insert(NO_PASID, 0, 0, PageSize.SIZE_4K, Access.READ);
    atc.insert(NO_PASID, 0xFFFF_FFFF_FFFF_F000L, 0, PageSize.SIZE_4K, Access.READ);
    assertEquals(1, atc.invalidate(NO_PASID, 0xFFFF_FFFF_FFFF_F000L, 4));
    assertTrue(hits(atc, NO_PASID, 0));
  }

  @Test
  void theWholeSpaceOrderAndInvalidateAllDropEverything() {
    DeviceAtc atc = withPages(2, 0, 8);
    atc.insert(NO_PASID, 0x40_0000, 0, PageSize.SIZE_2M, Access.READ);
    assertEquals(8, atc.invalidate(2, 0x5000, DeviceAtc.WHOLE_SPACE_ORDER));
    assertEquals(1, atc.size());
    assertEquals(1, atc.invalidateAll());
    assertEquals(0, atc.size());
    assertEquals(9, atc.invalidated());
  }

  @Test
  void badArgumentsAreBugs() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    assertThrows(IllegalArgumentException.class, () -> atc.invalidate(NO_PASID, 0, -1));
    assertThrows(IllegalArgumentException.class, () -> atc.invalidate(-2, 0, 0));
    assertThrows(
        IllegalArgumentException.class, () -> atc.insert(-3, 0, 0, PageSize.SIZE_4K, 0));
  }
}
