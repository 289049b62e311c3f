package io.iommulab.actors.fd.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
    Device d = new Device("d", 8, -1, 1, new IommuInfo(0, "u", UnitKind.VTD, 0x1000, 48, 0, -1L, 20, true, true,
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
