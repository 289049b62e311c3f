package io.iommulab.actors.fd.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import java.util.List;
import org.junit.jupiter.api.Test;

/** vEVENTQ sequence and loss rules, FAULT grouping and cookies, accounting limits. */
class QueuesTest {

  private static Veventq queue(int depth) {
    HwPagetable parent = HwPagetable.paging(0, new Ioas(FaultInjector.NONE), false, true, false, false, null);
    return new Veventq(new Viommu(parent, Uapi.VIOMMU_TYPE_SELFTEST, 0), Uapi.VEVENTQ_TYPE_SELFTEST, depth,
        FaultInjector.NONE);
  }

  @Test
  void theSequenceWrapsFromIntMaxToZero() {
    Veventq q = queue(4);
    q.sequence = Integer.MAX_VALUE;
    q.report(1, "NOT_PRESENT", 0, 0);
    q.report(1, "NOT_PRESENT", 0, 0);
    assertEquals(List.of(Integer.MAX_VALUE, 0), q.read(1024).stream().map(Vevent::sequence).toList());
  }

  @Test
  void theLostEventsHeaderIsOnlyEverLastAndNotCountedAsAnEvent() {
    Veventq q = queue(1);
    assertTrue(q.report(1, "A", 0, 0));
    q.report(2, "B", 0, 0);
    q.report(3, "C", 0, 0);
    List<Vevent> read = q.read(1024);
    assertEquals(2, read.size());
    assertTrue(read.get(1).lostEvents());
    assertEquals(Uapi.VEVENT_HEADER_LEN, read.get(1).bytes());
    assertEquals(0, q.numEvents());
  }

  @Test
  void aReadReturnsOnlyEventsThatFitWhole() {
    Veventq q = queue(4);
    q.report(1, "A", 0, 0);
    assertEquals(List.of(), q.read(Uapi.VEVENT_HEADER_LEN));
    assertEquals(1, q.read(Uapi.VEVENT_HEADER_LEN + Uapi.VEVENT_SELFTEST_LEN).size());
  }

  private static Device device() {
    Device d = new Device("d", 8, -1, 1, new UnitInfo(0, "u", UnitKind.VTD, 0x1000, 48, 0, -1L, 20, true, true,
        true, true, true, true, List.of()));
    return d;
  }

  @Test
  void cookiesStartAtOneAndAFreedCookieIsTakenAgain() {
    Fault f = new Fault(FaultInjector.NONE);
    Device d = device();
    f.report(d, null, Device.NO_PASID, 1, 0x1000, 1, true);
    f.report(d, null, Device.NO_PASID, 2, 0x2000, 1, true);
    List<HwptPgfault> read = f.read(80).value();
    assertEquals(List.of(1, 2), read.stream().map(HwptPgfault::cookie).toList());
    f.write(List.of(new HwptPageResponse(1, Uapi.PAGE_RESP_SUCCESS))).value();
    f.report(d, null, Device.NO_PASID, 3, 0x3000, 1, true);
    assertEquals(1, f.read(40).value().get(0).cookie());
  }

  @Test
  void aGroupIsDeliveredOnlyWithItsLastPage() {
    Fault f = new Fault(FaultInjector.NONE);
    Device d = device();
    assertEquals(Fault.Reported.PARTIAL, f.report(d, null, 5, 7, 0x1000, 1, false));
    assertEquals(List.of(), f.read(400).value());
    assertEquals(Fault.Reported.QUEUED_AND_READABLE, f.report(d, null, 5, 7, 0x2000, 1, true));
    List<HwptPgfault> read = f.read(400).value();
    assertEquals(2, read.size());
    assertEquals(Uapi.PGFAULT_FLAGS_PASID_VALID, read.get(0).flags());
    assertEquals(Uapi.PGFAULT_FLAGS_PASID_VALID | Uapi.PGFAULT_FLAGS_LAST_PAGE, read.get(1).flags());
    assertEquals(Errno.ESPIPE, f.read(39).errnoOrNull());
  }

  /** Requests lost by the sequences of the nodes read, as a reader computes it. */
  private static long lostBySequence(List<FaultQueueHeader> headers, int before) {
    long lost = 0;
    int prev = before;
    for (FaultQueueHeader h : headers) {
      int delta = (h.sequence() - prev) & Uapi.VEVENTQ_SEQUENCE_MASK;
      lost += h.lostEvents() ? delta : delta - 1;
      prev = h.sequence();
    }
    return lost;
  }

  @Test
  void aFullFaultQueueLosesRequestsAndEndsWithOneLostEventsNodeCountingThemExactly() {
    Fault f = new Fault(FaultInjector.NONE, 2);
    Device d = device();
    assertEquals(Fault.Reported.QUEUED_AND_READABLE, f.report(d, null, -1, 1, 0x1000, 1, true));
    assertEquals(Fault.Reported.QUEUED, f.report(d, null, -1, 2, 0x2000, 1, true));
    assertEquals(Fault.Reported.LOST, f.report(d, null, -1, 3, 0x3000, 1, true));
    assertEquals(Fault.Reported.LOST, f.report(d, null, -1, 4, 0x4000, 1, true));
    assertEquals(Fault.Reported.LOST, f.report(d, null, -1, 5, 0x5000, 1, false));
    assertEquals(2, f.held());
    assertEquals(3, f.lostEvents());
    Fault.ReadResult r = f.readWithHeaders(400).value();
    assertEquals(2, r.records().size());
    assertEquals(3, r.headers().size());
    assertTrue(r.headers().get(2).lostEvents(), "the lost-events node is last");
    assertEquals(3, lostBySequence(r.headers(), -1), "the reader sees the exact loss");
    assertTrue(!f.readable());
  }

  @Test
  void aGroupQueuedAfterTheLostEventsNodeRemovesItAndTheGapStillCountsTheLoss() {
    Fault f = new Fault(FaultInjector.NONE, 2);
    Device d = device();
    f.report(d, null, -1, 1, 0x1000, 1, true);
    f.report(d, null, -1, 2, 0x2000, 1, true);
    f.report(d, null, -1, 3, 0x3000, 1, true);
    f.report(d, null, -1, 4, 0x4000, 1, true);
    Fault.ReadResult first = f.readWithHeaders(40).value();
    assertEquals(1, first.records().size(), "the read stops before the second group");
    // Room again: the next group removes the trailing lost-events node; its sequence is a gap.
    assertEquals(Fault.Reported.QUEUED, f.report(d, null, -1, 5, 0x5000, 1, true));
    Fault.ReadResult second = f.readWithHeaders(400).value();
    assertEquals(List.of(0x2000L, 0x5000L),
        second.records().stream().map(HwptPgfault::addr).toList());
    assertEquals(2, second.headers().size());
    assertTrue(second.headers().stream().noneMatch(FaultQueueHeader::lostEvents));
    List<FaultQueueHeader> all = new java.util.ArrayList<>(first.headers());
    all.addAll(second.headers());
    assertEquals(2, lostBySequence(all, -1));
    assertEquals(2, f.lostEvents());
  }

  @Test
  void aLostLastPageDropsItsPartialsAndHandsBackTheGroupToFail() {
    Fault f = new Fault(FaultInjector.NONE, 2);
    Device d = device();
    assertEquals(Fault.Reported.PARTIAL, f.report(d, null, -1, 9, 0x1000, 1, false));
    assertEquals(Fault.Reported.PARTIAL, f.report(d, null, -1, 8, 0x2000, 1, false));
    assertEquals(Fault.Reported.LOST_AND_READABLE, f.report(d, null, -1, 9, 0x3000, 1, true));
    Fault.Group g = f.takeFailedGroup();
    assertEquals(9, g.grpid());
    assertEquals(2, g.size());
    assertEquals(1, f.held(), "the other group's partial stays");
    assertEquals(1, f.discarded());
    assertEquals(1, f.discardPartials(0));
    assertEquals(0, f.held());
  }

  @Test
  void detachWithdrawsTheHandlesQueuedAndPartialRequestsFromTheDepth() {
    Fault f = new Fault(FaultInjector.NONE, 4);
    Device d = device();
    f.report(d, null, -1, 1, 0x1000, 1, false);
    f.report(d, null, -1, 2, 0x2000, 1, true);
    assertEquals(2, f.held());
    assertEquals(1, f.autoRespond(d, -1, null).size());
    assertEquals(0, f.held());
    assertEquals(Fault.Reported.QUEUED_AND_READABLE, f.report(d, null, -1, 3, 0x3000, 1, true));
  }

  @Test
  void theVeventqCountsEveryLostEventAndItsSequencesShowTheSameNumber() {
    Veventq q = queue(2);
    for (int i = 0; i < 7; i++) {
      q.report(i, "NOT_PRESENT", 0, 0);
    }
    assertEquals(5, q.lostEvents());
    List<Vevent> read = q.read(1024);
    long lost = 0;
    int prev = -1;
    for (Vevent v : read) {
      int delta = (v.sequence() - prev) & Uapi.VEVENTQ_SEQUENCE_MASK;
      lost += v.lostEvents() ? delta : delta - 1;
      prev = v.sequence();
    }
    assertEquals(5, lost);
  }

  @Test
  void accountingIsAllOrNothingAndNeverGoesBelowZero() {
    Accounting a = new Accounting(8 * Uapi.PAGE_SIZE);
    assertTrue(a.charge(Accounting.Mode.USER, 6).isOk());
    assertEquals(Errno.ENOMEM, a.charge(Accounting.Mode.USER, 3).errnoOrNull());
    assertEquals(6, a.userLockedPages());
    assertTrue(a.charge(Accounting.Mode.MM, 8).isOk(), "MM is a separate counter");
    assertTrue(a.charge(Accounting.Mode.NONE, 1000).isOk());
    a.uncharge(Accounting.Mode.USER, 6);
    assertThrows(IllegalStateException.class, () -> a.uncharge(Accounting.Mode.USER, 1));
  }
}
