package io.iommulab.hardware.msi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class MsiBankTest {
  private static final long PAGE = 0xf_fe04_4000L;

  private static MsiBank bank(int vectors) {
    return new MsiBank(new MsiBankSettings(0, PAGE, vectors), FaultInjector.NONE);
  }

  @Test
  void allocationTakesTheLowestFreeVectorAndRecordsRidGroupAndOwner() {
    MsiBank b = bank(256);
    assertEquals(0, b.allocate(0x100, 7, 3).value());
    assertEquals(1, b.allocate(0x101, 8, MsiBank.HOST).value());
    b.free(0);
    assertEquals(0, b.allocate(0x102, 9, 4).value());
    assertEquals(0x102, b.ridOf(0));
    assertEquals(9, b.groupOf(0));
    assertEquals(4, b.ownerOf(0));
    assertEquals(2, b.usedVectors());
    assertEquals(254, b.freeVectors());
  }

  @Test
  void retaggingAGroupMovesItsVectorsToTheNewOwner() {
    MsiBank b = bank(64);
    b.allocate(0x100, 7, 3);
    b.allocate(0x101, 7, 3);
    b.allocate(0x200, 8, 3);
    assertFalse(b.isShared());
    b.retagOwner(8, 4);
    assertTrue(b.isShared());
    assertEquals(Set.of(3, 4), b.owners());
    assertEquals(4, b.ownerOf(2));
    b.retagOwner(8, 3);
    assertFalse(b.isShared());
    assertThrows(IllegalArgumentException.class, () -> b.retagOwner(8, -5));
    assertEquals(Set.of(3), b.owners());
  }

  @Test
  void aFullBankRefusesWithEnospcAndChangesNothing() {
    MsiBank b = bank(32);
    for (int i = 0; i < 32; i++) {
      assertTrue(b.allocate(0x10, 1, 1).isOk());
    }
    MsiBank.State before = b.state();
    assertEquals(Errno.ENOSPC, b.allocate(0x11, 2, 2).errnoOrNull());
    assertEquals(before, b.state());
  }

  @Test
  void anInjectedVectorFailureRefusesWithEnomemAndChangesNothing() {
    FailNth fail = new FailNth();
    MsiBank b = new MsiBank(new MsiBankSettings(0, PAGE, 256), fail);
    b.allocate(0x10, 1, 1);
    MsiBank.State before = b.state();
    fail.arm(1);
    assertEquals(Errno.ENOMEM, b.allocate(0x11, 2, 2).errnoOrNull());
    assertEquals("msi.vector", fail.failedSite());
    assertEquals(before, b.state());
  }

  @Test
  void freeingAVectorThatIsNotAllocatedIsEnoentAndOutOfRangeIsEinval() {
    MsiBank b = bank(256);
    b.allocate(0x10, 1, 1);
    MsiBank.State before = b.state();
    assertEquals(Errno.ENOENT, b.free(5).errnoOrNull());
    assertEquals(Errno.EINVAL, b.free(256).errnoOrNull());
    assertEquals(before, b.state());
  }

  @Test
  void badArgumentsAreRefusedWithEinval() {
    MsiBank b = bank(256);
    assertEquals(Errno.EINVAL, b.allocate(0x10000, 1, 1).errnoOrNull());
    assertEquals(Errno.EINVAL, b.allocate(1, -1, 1).errnoOrNull());
    assertEquals(Errno.EINVAL, b.allocate(1, 1, -2).errnoOrNull());
    assertEquals(0, b.usedVectors());
  }

  @Test
  void theMsiirFormatPutsTheMsirIndexAtBit5AndTheBitInTheLowFive() {
    MsiBank b = bank(256);
    assertEquals(MsiirFormat.MSIIR, b.format());
    // vector 37 is MSIR 1, bit 5: msi_hwirq = 1 << 5 | 5 << 0
    assertEquals(0x25, b.data(37));
    assertEquals(37, b.vectorOfData(0x25));
    assertEquals(255, b.vectorOfData(0xff));
  }

  @Test
  void theMsiir1FormatPutsTheBitAbove4AndTheMsirIndexInTheLowFour() {
    MsiBank b = bank(512);
    assertEquals(MsiirFormat.MSIIR1, b.format());
    // vector 33 is MSIR 1, bit 1: msi_hwirq = 1 << 0 | 1 << 4
    assertEquals(0x11, b.data(33));
    assertEquals(33, b.vectorOfData(0x11));
    // allocation follows the data word: after data 0 (MSIR 0 bit 0) comes data 1 = MSIR 1 bit 0
    assertEquals(0, b.allocate(1, 1, 1).value());
    assertEquals(32, b.allocate(1, 1, 1).value());
  }

  @Test
  void aDataWordWithBitsOutsideTheFieldsOrBeyondTheBankSelectsNoVector() {
    MsiBank b = bank(64);
    assertEquals(-1, b.vectorOfData(0x100));
    assertEquals(-1, b.vectorOfData(2 << 5)); // MSIR 2 of a 2-MSIR bank
    assertEquals(63, b.vectorOfData(1 << 5 | 31));
  }

  @Test
  void groupsOwnersAndRidsFollowAllocationsFreesAndRetagging() {
    MsiBank b = bank(256);
    int v1 = b.allocate(0x10, 1, 100).value();
    b.allocate(0x20, 2, 200);
    assertEquals(Set.of(1, 2), b.groups());
    assertEquals(Set.of(100, 200), b.owners());
    assertEquals(Set.of(0x10, 0x20), b.rids());
    assertTrue(b.isShared());
    b.retagOwner(2, 100);
    assertEquals(Set.of(100), b.owners());
    assertFalse(b.isShared());
    assertFalse(b.usedByOwnerOtherThan(100));
    b.free(v1);
    assertEquals(Set.of(2), b.groups());
    assertEquals(1, b.freeAllOf(0x20));
    assertEquals(List.of(), List.copyOf(b.groups()));
  }

  @Test
  void aBankMustBeAPageOfWholeMsirs() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new MsiBank(new MsiBankSettings(0, PAGE + 0x140, 256), FaultInjector.NONE));
    assertThrows(IllegalArgumentException.class, () -> bank(100));
    assertThrows(IllegalArgumentException.class, () -> bank(1024));
  }
}
