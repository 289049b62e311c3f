package io.iommulab.actors.vm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import java.util.List;
import org.junit.jupiter.api.Test;

class StaleDmaOracleTest {
  static final long SPACE = 7;
  static final long IOVA = 0x10_0000;
  static final long LEN = 0x4000;
  static final byte OK = 0;
  static final byte FAULT = 5;

  private static StaleDmaOracle.BurstIssue burst(StaleDmaOracle o, long tag, long... iovas) {
    int[] lengths = new int[iovas.length];
    int[] access = new int[iovas.length];
    java.util.Arrays.fill(lengths, 64);
    java.util.Arrays.fill(access, Access.WRITE);
    return o.burstIssued(true, SPACE, "nic0", -1, tag, iovas, lengths, access, 1000 + tag);
  }

  private static StaleDmaOracle.Event unmap(StaleDmaOracle o, long iova, long length, long now) {
    StaleDmaOracle.Event issued = o.note(now, "unmap issued");
    return o.unmapReturned(SPACE, iova, length, issued, now + 10);
  }

  @Test
  void anAccessIssuedAfterItsUnmapReturnedThatCompletesIsAViolationWithSeedAndEvents() {
    StaleDmaOracle o = new StaleDmaOracle(1234, 3, true);
    unmap(o, IOVA, LEN, 100);
    StaleDmaOracle.BurstIssue b = burst(o, 1, IOVA + 0x1000, 0x90_0000);

    assertArrayEquals(new int[] {0}, b.staleIndexes());
    assertEquals(1, o.burstCompleted(b, new byte[] {OK, OK}, 2000));

    StaleDmaOracle.StaleViolation v = o.report().recorded().get(0);
    assertEquals(1234, v.seed());
    assertEquals(3, v.vmId());
    assertEquals(IOVA + 0x1000, v.iova());
    assertEquals(List.of("unmap issued"), List.of(v.events().get(0).what()));
    assertTrue(v.events().get(1).what().contains("returned"));
    assertTrue(v.events().get(2).what().contains("burst #1"));
    assertTrue(v.events().get(3).what().contains("completed OK after its unmap returned"));
    assertTrue(v.events().get(1).seq() < v.events().get(2).seq(), "the unmap returned before the burst was issued");
    assertEquals(1, o.violations());
  }

  @Test
  void aBurstIssuedBeforeTheUnmapReturnedMayCompleteAfterItLegally() {
    StaleDmaOracle o = new StaleDmaOracle(1, 1, true);
    StaleDmaOracle.BurstIssue inFlight = burst(o, 1, IOVA);
    unmap(o, IOVA, LEN, 100);

    assertEquals(0, o.burstCompleted(inFlight, new byte[] {OK}, 2000));
    assertEquals(0, o.violations());
    assertEquals(0, inFlight.staleIndexes().length);
  }

  @Test
  void aStaleAccessThatFaultsIsNoViolation() {
    StaleDmaOracle o = new StaleDmaOracle(1, 1, true);
    unmap(o, IOVA, LEN, 100);
    StaleDmaOracle.BurstIssue b = burst(o, 1, IOVA);

    assertEquals(0, o.burstCompleted(b, new byte[] {FAULT}, 2000));
    assertEquals(1, o.report().judgedAccesses());
    assertEquals(0, o.violations());
  }

  @Test
  void aNewMapOfTheRangeMakesItLegalAgainAndOnlyWhereItMaps() {
    StaleDmaOracle o = new StaleDmaOracle(1, 1, true);
    unmap(o, IOVA, LEN, 100);
    o.mapIssued(SPACE, IOVA + 0x1000, 0x1000);

    StaleDmaOracle.BurstIssue b = burst(o, 1, IOVA, IOVA + 0x1000, IOVA + 0x2000, IOVA + LEN);

    assertArrayEquals(new int[] {0, 2}, b.staleIndexes());
    assertEquals(2, o.burstCompleted(b, new byte[] {OK, OK, OK, OK}, 2000));
  }

  @Test
  void otherAddressSpacesAreNotAffected() {
    StaleDmaOracle o = new StaleDmaOracle(1, 1, true);
    unmap(o, IOVA, LEN, 100);

    StaleDmaOracle.BurstIssue other =
        o.burstIssued(true, SPACE + 1, "nvme0", -1, 1, new long[] {IOVA}, new int[] {64}, new int[] {Access.READ}, 500);
    StaleDmaOracle.BurstIssue unattached =
        o.burstIssued(false, 0, "nvme0", -1, 2, new long[] {IOVA}, new int[] {64}, new int[] {Access.READ}, 500);

    assertEquals(0, other.staleIndexes().length);
    assertEquals(0, unattached.staleIndexes().length);
  }

  @Test
  void inDeferredModeStaleHitsAreToleratedAndCountedNotViolations() {
    StaleDmaOracle o = new StaleDmaOracle(1, 1, false);
    unmap(o, IOVA, LEN, 100);
    StaleDmaOracle.BurstIssue b = burst(o, 1, IOVA);

    assertEquals(0, o.burstCompleted(b, new byte[] {OK}, 2000));
    assertEquals(1, o.report().toleratedStaleHits());
    assertEquals(0, o.violations());
  }

  @Test
  void onlyTheFirstViolationsAreRecordedButAllAreCounted() {
    StaleDmaOracle o = new StaleDmaOracle(1, 1, true);
    unmap(o, IOVA, LEN, 100);
    for (int i = 0; i < StaleDmaOracle.MAX_RECORDED + 5; i++) {
      o.burstCompleted(burst(o, i, IOVA), new byte[] {OK}, 2000);
    }
    assertEquals(StaleDmaOracle.MAX_RECORDED + 5, o.violations());
    assertEquals(StaleDmaOracle.MAX_RECORDED, o.report().recorded().size());
  }
}
