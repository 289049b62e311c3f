package io.iommulab.hardware.msi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class MsiBankSetTest {
  /** The three MSIIR pages of the 2013 thread's example guest. */
  static final long BANK0 = 0xf_fe04_4000L;
  static final long BANK1 = 0xf_fe04_5000L;
  static final long BANK2 = 0xf_fe04_6000L;

  static List<MsiBankSettings> threeBanks(int vectors) {
    return List.of(
        new MsiBankSettings(0, BANK0, vectors),
        new MsiBankSettings(1, BANK1, vectors),
        new MsiBankSettings(2, BANK2, vectors));
  }

  private static MsiBankSet set(MsiAllocationPolicy p) {
    return new MsiBankSet(threeBanks(256), p, FaultInjector.NONE);
  }

  private static List<Integer> banksOf(List<MsiVector> vs) {
    return vs.stream().map(MsiVector::bank).toList();
  }

  @Test
  void packTakesEveryVectorFromTheFirstBankWithRoom() {
    MsiBankSet s = new MsiBankSet(threeBanks(32), MsiAllocationPolicy.PACK, FaultInjector.NONE);
    assertEquals(List.of(0, 0, 0), banksOf(s.allocate(0x100, 1, 3).value()));
    // 29 fit in bank 0, the 30th spills into bank 1
    List<Integer> second = banksOf(s.allocate(0x101, 2, 30).value());
    assertEquals(29, second.stream().filter(b -> b == 0).count());
    assertEquals(1, second.get(29));
    assertEquals(List.of(1, 1), banksOf(s.allocate(0x102, 3, 2).value()));
    assertEquals(Set.of(1), s.banksUsedBy(0x102));
    s.checkInvariants();
  }

  @Test
  void spreadRoundRobinsOverTheBanksAcrossDevices() {
    MsiBankSet s = set(MsiAllocationPolicy.SPREAD);
    assertEquals(List.of(0, 1, 2, 0), banksOf(s.allocate(0x100, 1, 4).value()));
    assertEquals(List.of(1, 2), banksOf(s.allocate(0x101, 2, 2).value()));
    assertEquals(Set.of(0, 1, 2), s.banksUsedBy(0x100));
    s.checkInvariants();
  }

  @Test
  void groupAffineKeepsAGroupInOneBankAndAvoidsBanksOfOtherOwners() {
    MsiBankSet s = set(MsiAllocationPolicy.GROUP_AFFINE);
    s.setGroupOwner(1, 100);
    s.setGroupOwner(2, 200);
    s.setGroupOwner(3, 300);
    assertEquals(List.of(0, 0, 0, 0), banksOf(s.allocate(0x100, 1, 4).value()));
    assertEquals(List.of(1, 1), banksOf(s.allocate(0x200, 2, 2).value()));
    // a second device of group 1 joins its group's bank
    assertEquals(List.of(0, 0), banksOf(s.allocate(0x101, 1, 2).value()));
    assertEquals(List.of(2), banksOf(s.allocate(0x300, 3, 1).value()));
    assertTrue(s.isolationReport().isEmpty());
    s.checkInvariants();
  }

  @Test
  void groupAffineSharesABankOnlyWhenEveryBankIsTaken() {
    MsiBankSet s = set(MsiAllocationPolicy.GROUP_AFFINE);
    for (int g = 1; g <= 4; g++) {
      s.setGroupOwner(g, 100 * g);
      s.allocate(0x100 + g, g, 1);
    }
    assertEquals(1, s.isolationReport().size());
    assertEquals(1, s.breachEvents());
  }

  @Test
  void packSharesTheFirstBankBetweenOwnersAndBreaksIsolation() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.setGroupOwner(1, 100);
    s.setGroupOwner(2, 200);
    s.allocate(0x100, 1, 2);
    s.allocate(0x200, 2, 2);
    List<IsolationBreach> r = s.isolationReport();
    assertEquals(1, r.size());
    assertEquals(new IsolationBreach(0, BANK0, List.of(1, 2), List.of(100, 200)), r.get(0));
    assertEquals(1, s.breachedBanks());
  }

  @Test
  void allocationIsAllOrNothingWhenTheBanksLackRoom() {
    MsiBankSet s = new MsiBankSet(threeBanks(32), MsiAllocationPolicy.SPREAD, FaultInjector.NONE);
    s.allocate(0x100, 1, 90);
    MsiBankSet.Snapshot before = s.snapshot();
    assertEquals(Errno.ENOSPC, s.allocate(0x101, 2, 7).errnoOrNull());
    assertEquals(before, s.snapshot());
    assertTrue(s.vectorsOf(0x101).isEmpty());
  }

  @Test
  void anInjectedFailureHalfwayRollsBackEveryVectorOfTheCall() {
    FailNth fail = new FailNth();
    MsiBankSet s = new MsiBankSet(threeBanks(256), MsiAllocationPolicy.SPREAD, fail);
    s.allocate(0x100, 1, 2);
    MsiBankSet.Snapshot before = s.snapshot();
    fail.arm(3);
    assertEquals(Errno.ENOMEM, s.allocate(0x101, 2, 5).errnoOrNull());
    assertEquals("msi.vector", fail.failedSite());
    assertEquals(before, s.snapshot());
    // the cursor was restored too: the retry starts where the failed call started
    assertEquals(List.of(2, 0), banksOf(s.allocate(0x101, 2, 2).value()));
  }

  @Test
  void aRidCannotAllocateUnderAnotherGroup() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.allocate(0x100, 1, 1);
    MsiBankSet.Snapshot before = s.snapshot();
    assertEquals(Errno.EINVAL, s.allocate(0x100, 2, 1).errnoOrNull());
    assertEquals(Errno.EINVAL, s.allocate(0x100, 1, 0).errnoOrNull());
    assertEquals(before, s.snapshot());
  }

  @Test
  void aBreachAppearsWhenTwoOwnersShareABankAndDisappearsWhenOneFreesItsVectors() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.setGroupOwner(1, 100);
    s.setGroupOwner(2, 200);
    s.allocate(0x100, 1, 1);
    assertTrue(s.isolationReport().isEmpty());
    s.allocate(0x200, 2, 1);
    assertEquals(1, s.isolationReport().size());
    assertEquals(1, s.free(0x200));
    assertTrue(s.isolationReport().isEmpty());
    assertEquals(0, s.breachedBanks());
    assertEquals(1, s.breachEvents());
    s.checkInvariants();
  }

  @Test
  void assigningAGroupToAVmTurnsASharedHostBankIntoABreachAndBack() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.allocate(0x100, 1, 1);
    s.allocate(0x200, 2, 1);
    assertTrue(s.isolationReport().isEmpty(), "both groups are the host's");
    s.setGroupOwner(2, 7);
    assertEquals(List.of(MsiBank.HOST, 7), s.isolationReport().get(0).owners());
    s.setGroupOwner(1, 7);
    assertTrue(s.isolationReport().isEmpty(), "both groups now belong to VM 7");
    s.setGroupOwner(1, 8);
    assertEquals(2, s.breachEvents());
    s.checkInvariants();
  }

  @Test
  void theMsiBankCountIsEveryBankWhateverTheDeviceUses() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.allocate(0x100, 1, 1);
    assertEquals(3, s.msiBankCount());
    assertEquals(Set.of(0), s.banksUsedByGroup(1));
  }

  @Test
  void aBankIsFoundByAnyAddressInItsMsiirPage() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    assertEquals(1, s.bankByMsiirAddress(BANK1 + 0x10).orElseThrow().index());
    assertFalse(s.bankByMsiirAddress(BANK2 + 0x1000).isPresent());
  }

  @Test
  void aWriteToTheMsiirRaisesTheVectorItsDataSelects() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.setGroupOwner(1, 100);
    MsiVector v = s.allocate(0x100, 1, 3).value().get(2);
    MsiDelivery d = s.deliver(0x100, v.msiirAddress(), v.data()).value();
    assertEquals(new MsiDelivery(0, 2, 0x100, 1, 100, 0x100, 100, false, false), d);
    assertEquals(0, s.crossOwnerInterrupts());
    assertEquals(1, s.deliveredInterrupts());
  }

  @Test
  void raisingAnotherOwnersVectorIsCountedAsCrossOwner() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    s.setGroupOwner(1, 100);
    s.setGroupOwner(2, 200);
    MsiVector victim = s.allocate(0x100, 1, 1).value().get(0);
    s.allocate(0x200, 2, 1);
    MsiDelivery d = s.deliver(0x200, BANK0, victim.data()).value();
    assertTrue(d.crossOwner());
    assertEquals(100, d.targetOwner());
    assertEquals(200, d.writerOwner());
    assertEquals(1, s.crossOwnerInterrupts());
  }

  @Test
  void aWriteFromAnUnknownDeviceIsCrossOwnerAndAnUnallocatedVectorIsSpurious() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    MsiVector v = s.allocate(0x100, 1, 1).value().get(0);
    assertEquals(MsiBankSet.UNKNOWN_OWNER, s.deliver(0x999, BANK0, v.data()).value().writerOwner());
    assertEquals(1, s.crossOwnerInterrupts());
    MsiDelivery d = s.deliver(0x100, BANK1, 5).value();
    assertTrue(d.spurious());
    assertEquals(1, s.spuriousInterrupts());
  }

  @Test
  void aWriteOutsideAnMsiirOrWithAMalformedDataWordIsRefused() {
    MsiBankSet s = set(MsiAllocationPolicy.PACK);
    assertEquals(Errno.EINVAL, s.deliver(1, 0x8000_0000L, 0).errnoOrNull());
    assertEquals(Errno.EINVAL, s.deliver(1, BANK0 + 4, 0).errnoOrNull());
    assertEquals(Errno.EINVAL, s.deliver(1, BANK0, 0x100).errnoOrNull());
    assertEquals(0, s.deliveredInterrupts());
  }
}
