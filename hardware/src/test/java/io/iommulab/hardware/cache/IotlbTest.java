package io.iommulab.hardware.cache;

import static io.iommulab.hardware.fault.FaultRecord.NO_PASID;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.IotlbSettings;
import io.iommulab.config.IotlbSettings.Eviction;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class IotlbTest {
  private static final long K4 = 1L << 12;
  private static final long M2 = 1L << 21;
  private static final long G1 = 1L << 30;

  static Iotlb iotlb(int sets, int ways, Eviction eviction, long seed) {
    return new Iotlb(new IotlbSettings(sets, ways, eviction), seed);
  }

  static Iotlb big() {
    return iotlb(64, 8, Eviction.LRU, 1);
  }

  static boolean hits(Iotlb t, int did, int pasid, long iova) {
    return t.lookup(did, pasid, iova, new Translation().reset());
  }

  @Test
  void aMissReturnsFalseAndLeavesTheTranslationUntouched() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x10000, 0x80000, PageSize.SIZE_4K, Access.READ);
    Translation out = new Translation().reset();
    out.hpa = 0x1234;
    assertFalse(t.lookup(1, NO_PASID, 0x11000, out));
    assertEquals(0x1234, out.hpa);
    assertNull(out.source);
    assertNull(out.pageSize);
    assertEquals(1, t.misses());
  }

  @Test
  void aHitFillsTheHpaOfTheIovaItselfWithProtSizeAndSource() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x10abc, 0x80def, PageSize.SIZE_4K, Access.READ_WRITE);
    Translation out = new Translation().reset();
    assertTrue(t.lookup(1, NO_PASID, 0x10123, out));
    assertEquals(0x80123, out.hpa);
    assertEquals(Access.READ_WRITE, out.prot);
    assertEquals(PageSize.SIZE_4K, out.pageSize);
    assertEquals(Translation.Source.IOTLB, out.source);
    assertEquals(1, t.hits());
  }

  @Test
  void aTwoMegabyteEntryServesEveryAddressInsideItAndNothingOutside() {
    Iotlb t = big();
    t.insert(3, 7, 5 * M2 + 0x5000, 9 * M2, PageSize.SIZE_2M, Access.READ);
    Translation out = new Translation().reset();
    assertTrue(t.lookup(3, 7, 5 * M2 + 0x1f_f123, out));
    assertEquals(9 * M2 + 0x1f_f123, out.hpa);
    assertEquals(PageSize.SIZE_2M, out.pageSize);
    assertTrue(hits(t, 3, 7, 5 * M2));
    assertFalse(hits(t, 3, 7, 6 * M2));
    assertFalse(hits(t, 3, 7, 5 * M2 - 1));
  }

  @Test
  void aOneGigabyteEntryTranslatesWithItsFullOffset() {
    Iotlb t = big();
    t.insert(3, NO_PASID, 2 * G1, 7 * G1, PageSize.SIZE_1G, Access.WRITE);
    Translation out = new Translation().reset();
    assertTrue(t.lookup(3, NO_PASID, 2 * G1 + 0x3fff_ffffL, out));
    assertEquals(7 * G1 + 0x3fff_ffffL, out.hpa);
    assertEquals(PageSize.SIZE_1G, out.pageSize);
  }

  @Test
  void theSmallestCachedPageSizeWinsWhenEntriesOverlap() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0, 0x4000_0000L, PageSize.SIZE_2M, Access.READ);
    t.insert(1, NO_PASID, 0x3000, 0x7000_0000L, PageSize.SIZE_4K, Access.READ);
    Translation out = new Translation().reset();
    assertTrue(t.lookup(1, NO_PASID, 0x3008, out));
    assertEquals(0x7000_0008L, out.hpa);
    assertTrue(t.lookup(1, NO_PASID, 0x4008, out));
    assertEquals(0x4000_4008L, out.hpa);
  }

  @Test
  void entriesOfAnotherDomainOrPasidDoNotHit() {
    Iotlb t = big();
    t.insert(1, 5, 0x10000, 0x80000, PageSize.SIZE_4K, Access.READ);
    assertTrue(hits(t, 1, 5, 0x10000));
    assertFalse(hits(t, 2, 5, 0x10000));
    assertFalse(hits(t, 1, 6, 0x10000));
    assertFalse(hits(t, 1, NO_PASID, 0x10000));
  }

  @Test
  void reinsertingTheSameKeyReplacesTheEntryInsteadOfDuplicatingIt() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x10000, 0x80000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, NO_PASID, 0x10fff, 0x90000, PageSize.SIZE_4K, Access.READ_WRITE);
    assertEquals(1, t.size());
    Translation out = new Translation().reset();
    assertTrue(t.lookup(1, NO_PASID, 0x10008, out));
    assertEquals(0x90008, out.hpa);
    assertEquals(Access.READ_WRITE, out.prot);
    t.checkInvariants();
  }

  @Test
  void addressesAtTheTopOfTheSpaceAreCachedAndInvalidated() {
    Iotlb t = big();
    long top = 0xFFFF_FFFF_FFFF_F000L;
    t.insert(1, NO_PASID, top, 0x5000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, NO_PASID, 0xFFFF_FFFF_C000_0000L, 0x4000_0000L, PageSize.SIZE_1G, Access.READ);
    Translation out = new Translation().reset();
    assertTrue(t.lookup(1, NO_PASID, -1L, out));
    assertEquals(0x5fff, out.hpa);
    assertEquals(2, t.invalidatePages(1, NO_PASID, top, 0));
    assertFalse(hits(t, 1, NO_PASID, -1L));
  }

  @Test
  void lruEvictsTheLeastRecentlyUsedEntryOfAFullSet() {
    Iotlb t = iotlb(1, 2, Eviction.LRU, 1);
    t.insert(1, NO_PASID, 0xA000, 0xA000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, NO_PASID, 0xB000, 0xB000, PageSize.SIZE_4K, Access.READ);
    assertTrue(hits(t, 1, NO_PASID, 0xA000));
    t.insert(1, NO_PASID, 0xC000, 0xC000, PageSize.SIZE_4K, Access.READ);
    assertTrue(hits(t, 1, NO_PASID, 0xA000));
    assertFalse(hits(t, 1, NO_PASID, 0xB000));
    assertTrue(hits(t, 1, NO_PASID, 0xC000));
    assertEquals(1, t.evictions());
    assertEquals(2, t.size());
  }

  @Test
  void fifoEvictsTheOldestInsertEvenIfItWasJustUsed() {
    Iotlb t = iotlb(1, 2, Eviction.FIFO, 1);
    t.insert(1, NO_PASID, 0xA000, 0xA000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, NO_PASID, 0xB000, 0xB000, PageSize.SIZE_4K, Access.READ);
    assertTrue(hits(t, 1, NO_PASID, 0xA000));
    t.insert(1, NO_PASID, 0xC000, 0xC000, PageSize.SIZE_4K, Access.READ);
    assertFalse(hits(t, 1, NO_PASID, 0xA000));
    assertTrue(hits(t, 1, NO_PASID, 0xB000));
    assertTrue(hits(t, 1, NO_PASID, 0xC000));
  }

  private static List<Long> randomSurvivors(long seed) {
    Iotlb t = iotlb(1, 4, Eviction.RANDOM, seed);
    for (long p = 0; p < 32; p++) {
      t.insert(1, NO_PASID, p * K4, p * K4, PageSize.SIZE_4K, Access.READ);
    }
    List<Long> survivors = new ArrayList<>();
    for (long p = 0; p < 32; p++) {
      if (hits(t, 1, NO_PASID, p * K4)) {
        survivors.add(p);
      }
    }
    assertEquals(4, survivors.size());
    return survivors;
  }

  @Test
  void randomEvictionIsDeterministicForAGivenSeed() {
    assertEquals(randomSurvivors(42), randomSurvivors(42));
    assertNotEquals(randomSurvivors(42), randomSurvivors(43));
  }

  @Test
  void sizeNeverExceedsCapacityAndFullSetsEvict() {
    Iotlb t = iotlb(8, 4, Eviction.LRU, 1);
    for (long p = 0; p < 1000; p++) {
      t.insert((int) (p % 3), NO_PASID, p * K4, p * K4, PageSize.SIZE_4K, Access.READ);
      assertTrue(t.size() <= t.capacity());
    }
    assertEquals(32, t.capacity());
    assertEquals(32, t.size());
    assertEquals(1000 - 32, t.evictions());
    assertEquals(1000, t.insertions());
    t.checkInvariants();
  }

  @Test
  void domainInvalidationDropsEveryPasidOfThatDomainOnly() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 9, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 10, 0, 0, PageSize.SIZE_1G, Access.READ);
    t.insert(2, NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    assertEquals(3, t.invalidateDomain(1));
    assertFalse(hits(t, 1, NO_PASID, 0x1000));
    assertFalse(hits(t, 1, 9, 0x1000));
    assertFalse(hits(t, 1, 10, 0x1000));
    assertTrue(hits(t, 2, NO_PASID, 0x1000));
    assertEquals(3, t.invalidated());
  }

  @Test
  void pasidInvalidationDropsOnlyThatPasidAndNoPasidSelectsUntaggedEntries() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 9, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 10, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    assertEquals(1, t.invalidatePasid(1, 9));
    assertFalse(hits(t, 1, 9, 0x1000));
    assertTrue(hits(t, 1, 10, 0x1000));
    assertEquals(1, t.invalidatePasid(1, NO_PASID));
    assertFalse(hits(t, 1, NO_PASID, 0x1000));
    assertTrue(hits(t, 1, 10, 0x1000));
  }

  @Test
  void aFourKilobyteInvalidationDropsATwoMegabyteEntryThatContainsIt() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 4 * M2, 8 * M2, PageSize.SIZE_2M, Access.READ);
    t.insert(1, NO_PASID, 2 * G1, 3 * G1, PageSize.SIZE_1G, Access.READ);
    assertEquals(1, t.invalidatePages(1, NO_PASID, 4 * M2 + 0x7000, 0));
    assertFalse(hits(t, 1, NO_PASID, 4 * M2));
    assertFalse(hits(t, 1, NO_PASID, 4 * M2 + 0x1f_f000));
    assertEquals(1, t.invalidatePages(1, NO_PASID, 2 * G1 + 0x3fff_f000L, 0));
    assertFalse(hits(t, 1, NO_PASID, 2 * G1));
    assertEquals(0, t.size());
  }

  @Test
  void pageInvalidationKeepsPagesJustOutsideItsSpan() {
    Iotlb t = big();
    for (long p = 0; p < 16; p++) {
      t.insert(1, NO_PASID, p * K4, p * K4, PageSize.SIZE_4K, Access.READ);
    }
    // pages 4..7: mask 2 at 0x4000
    assertEquals(4, t.invalidatePages(1, NO_PASID, 4 * K4, 2));
    for (long p = 0; p < 16; p++) {
      assertEquals(p < 4 || p > 7, hits(t, 1, NO_PASID, p * K4), "page " + p);
    }
  }

  @Test
  void pageInvalidationWithAnyPasidCoversEveryPasidOfTheDomainIncludingNoPasid() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 4, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 5, 0, 0, PageSize.SIZE_2M, Access.READ);
    t.insert(2, 4, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 4, 0x3000, 0x3000, PageSize.SIZE_4K, Access.READ);
    assertEquals(3, t.invalidatePages(1, Iotlb.ANY_PASID, 0x2000, 0));
    assertFalse(hits(t, 1, NO_PASID, 0x2000));
    assertFalse(hits(t, 1, 4, 0x2000));
    assertFalse(hits(t, 1, 5, 0x2000));
    assertTrue(hits(t, 2, 4, 0x2000));
    assertTrue(hits(t, 1, 4, 0x3000));
  }

  @Test
  void pageInvalidationOfTheWholeSpaceDropsEveryEntryOfTheTag() {
    Iotlb t = big();
    t.insert(1, 3, 0xFFFF_FFFF_FFE0_0000L, 0, PageSize.SIZE_2M, Access.READ);
    t.insert(1, 3, 0, 0, PageSize.SIZE_4K, Access.READ);
    t.insert(1, 4, 0, 0, PageSize.SIZE_4K, Access.READ);
    assertEquals(2, t.invalidatePages(1, 3, 0, Iotlb.WHOLE_SPACE_MASK));
    assertEquals(1, t.invalidatePages(1, 4, 0, 63));
  }

  @Test
  void aMisalignedPageInvalidationIsABugAndChangesNothing() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    assertThrows(IllegalArgumentException.class, () -> t.invalidatePages(1, NO_PASID, 0x2000, 2));
    assertThrows(IllegalArgumentException.class, () -> t.invalidatePages(1, NO_PASID, 0x2800, 0));
    assertThrows(IllegalArgumentException.class, () -> t.invalidatePages(1, NO_PASID, 0x1000, 52));
    assertThrows(IllegalArgumentException.class, () -> t.invalidatePages(1, NO_PASID, 0, -1));
    assertTrue(hits(t, 1, NO_PASID, 0x2000));
    assertEquals(0, t.invalidated());
  }

  @Test
  void globalInvalidationEmptiesTheCache() {
    Iotlb t = big();
    t.insert(1, NO_PASID, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    t.insert(2, 7, 0, 0, PageSize.SIZE_1G, Access.READ);
    assertEquals(2, t.invalidateAll());
    assertEquals(0, t.size());
    assertFalse(hits(t, 2, 7, 0x1234));
    t.checkInvariants();
  }

  @Test
  void aGeometryThatIsNotAPowerOfTwoIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> iotlb(3, 4, Eviction.LRU, 1));
    assertThrows(IllegalArgumentException.class, () -> iotlb(4, 0, Eviction.LRU, 1));
  }
}
