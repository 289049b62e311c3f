package io.iommulab.actors.unit;

import io.iommulab.actors.pipeline.FaultSinks;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.memory.HostMemoryActor.MemoryReport;
import io.iommulab.actors.unit.IommuUnitActor.AllocDomain;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.ClaimDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.DirtyRead;
import io.iommulab.actors.unit.IommuUnitActor.DmaFaulted;
import io.iommulab.actors.unit.IommuUnitActor.DmaOwnerClaimed;
import io.iommulab.actors.unit.IommuUnitActor.DomainAllocated;
import io.iommulab.actors.unit.IommuUnitActor.DomainType;
import io.iommulab.actors.unit.IommuUnitActor.EnforceCacheCoherency;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.FreeDomain;
import io.iommulab.actors.unit.IommuUnitActor.InvalidateUser;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.MsiWrite;
import io.iommulab.actors.unit.IommuUnitActor.PageRequested;
import io.iommulab.actors.unit.IommuUnitActor.PageResponseCode;
import io.iommulab.actors.unit.IommuUnitActor.PamuGetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuMapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetWindowCount;
import io.iommulab.actors.unit.IommuUnitActor.PamuUnmapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.ReadAndClearDirty;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.ReleaseDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.Replace;
import io.iommulab.actors.unit.IommuUnitActor.ReportPageRequest;
import io.iommulab.actors.unit.IommuUnitActor.RespondPageRequest;
import io.iommulab.actors.unit.IommuUnitActor.SetDirtyTracking;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Map;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Unmap;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.actors.unit.IommuUnitActor.UnregisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidated;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidation;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidationKind;
import io.iommulab.actors.unit.UnitHarness.Attached;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class PagingUnitActorTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int NIC = 0x0100;
  private static final int GPU = 0x0200;
  private static final int GPU_FN1 = 0x0201;
  private static final long IOVA = 0x10_0000L;
  private static final long PAGE = 4096;
  private static final int NONE = IommuUnitActor.NO_PASID;

  private final UnitHarness h = new UnitHarness(testKit, Fixtures.vtd("vtd0"));

  private static byte status(FaultReason reason) {
    return (byte) (reason.ordinal() + 1);
  }

  // ---------------------------------------------------------------- devices and ownership

  @Test
  void registeringADeviceTwiceOrOutside16BitsIsRefusedAndChangesNothing() {
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, false);
    h.refused(Errno.EEXIST, new RegisterDevice(NIC, -1, 1, 0, false, false, nic.getRef(), h.replies.getRef()));
    h.refused(Errno.EINVAL, new RegisterDevice(0x10000, -1, 1, 0, false, false, nic.getRef(), h.replies.getRef()));
    h.refused(Errno.EINVAL, new RegisterDevice(0x300, -1, -1, 0, false, false, nic.getRef(), h.replies.getRef()));
    h.refused(Errno.EINVAL, new RegisterDevice(0x300, -1, 1, 21, false, false, nic.getRef(), h.replies.getRef()));
    assertEquals(List.of(NIC), h.snapshot().devices());
  }

  @Test
  void aClaimTellsTheDeviceItsOwnerAndReportsTheUnitsCapabilities() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    DmaOwnerClaimed claimed = h.claim(GPU, 5, 1, gpu);
    UnitInfo info = claimed.info();
    assertEquals(UnitKind.VTD, info.kind());
    assertEquals(4096L | 2L << 20 | 1L << 30, info.pageSizeBitmap());
    assertEquals(48, info.addressWidth());
    assertEquals((1L << 48) - 1, info.apertureLast());
    assertEquals(8, info.pasidBits());
    assertTrue(info.enforceCacheCoherency() && info.dirtyTracking() && info.nesting());
    assertTrue(info.msiIsolation() && info.ats() && info.pri());
    assertEquals(List.of(ReservedRegion.VTD_MSI), info.reservedRegions());
  }

  @Test
  void claimsFollowTheGroupRulesAndARefusedClaimChangesNothing() {
    TestProbe<DeviceActor.Command> fn0 = h.device(GPU, 2, false);
    TestProbe<DeviceActor.Command> fn1 = h.device(GPU_FN1, 2, false);
    h.claim(GPU, 5, 1, fn0);
    h.refused(Errno.EPERM, new ClaimDmaOwner(GPU_FN1, 6, 2, h.replies.getRef()));
    h.refused(Errno.EBUSY, new ClaimDmaOwner(GPU, 5, 1, h.replies.getRef()));
    h.refused(Errno.EINVAL, new ClaimDmaOwner(GPU_FN1, 5, 2, h.replies.getRef()));
    h.refused(Errno.ENODEV, new ClaimDmaOwner(0x0999, 5, 1, h.replies.getRef()));
    h.refused(Errno.EINVAL, new ClaimDmaOwner(GPU_FN1, 5, 0, h.replies.getRef()));
    h.claim(GPU_FN1, 5, 1, fn1);
    fn0.expectNoMessage(Duration.ofMillis(20));
  }

  @Test
  void releaseNeedsTheClaimingContextAndNoAttachment() {
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, false);
    h.claim(NIC, 5, 1, nic);
    int d = h.pagingDomain();
    h.attach(NIC, NONE, d, null);
    h.refused(Errno.EINVAL, new ReleaseDmaOwner(NIC, 6, h.replies.getRef()));
    h.refused(Errno.EBUSY, new ReleaseDmaOwner(NIC, 5, h.replies.getRef()));
    h.refused(Errno.EBUSY, new UnregisterDevice(NIC, h.replies.getRef()));
    h.ok(new Detach(NIC, NONE, h.replies.getRef()));
    h.ok(new ReleaseDmaOwner(NIC, 5, h.replies.getRef()));
    nic.expectMessage(new DeviceActor.OwnerChanged(0, 0));
    h.ok(new UnregisterDevice(NIC, h.replies.getRef()));
    h.refused(Errno.ENODEV, new UnregisterDevice(NIC, h.replies.getRef()));
    assertEquals(List.of(), h.snapshot().devices());
  }

  // ---------------------------------------------------------------- domains and maps

  @Test
  void domainAllocationRulesAreTheModels() {
    int parent = h.ask(new AllocDomain(DomainType.PAGING, true, true, 0, h.replies.getRef()),
        DomainAllocated.class).domainId();
    int plain = h.pagingDomain();
    DomainAllocated nested =
        h.ask(new AllocDomain(DomainType.NESTED, false, false, parent, h.replies.getRef()),
            DomainAllocated.class);
    assertTrue(nested.domainId() > plain);
    h.refused(Errno.EINVAL, new AllocDomain(DomainType.NESTED, false, false, plain, h.replies.getRef()));
    h.refused(Errno.EINVAL, new AllocDomain(DomainType.NESTED, false, false, 999, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new AllocDomain(DomainType.PAMU, false, false, 0, h.replies.getRef()));
    h.refused(Errno.EBUSY, new FreeDomain(parent, h.replies.getRef()));
    h.ok(new FreeDomain(nested.domainId(), h.replies.getRef()));
    h.ok(new FreeDomain(parent, h.replies.getRef()));
    h.refused(Errno.ENOENT, new FreeDomain(parent, h.replies.getRef()));
  }

  @Test
  void domainIdsRunOut() {
    UnitHarness small =
        new UnitHarness(testKit, Fixtures.paging("small", UnitKind.SMMUV3, true, false, 3));
    small.pagingDomain();
    small.pagingDomain();
    small.refused(Errno.ENOSPC,
        new AllocDomain(DomainType.PAGING, false, false, 0, small.replies.getRef()));
  }

  @Test
  void aRefusedMapChangesNothingEvenWhenALaterRunFails() {
    GuestMemoryLayout vm = h.vm(1, 4 * Fixtures.MIB);
    int d = h.pagingDomain();
    h.map(d, IOVA, vm.pageHpa(0), PAGE, Access.READ);
    // The second run lands on the page mapped above: the first run must not stay.
    h.refused(Errno.EEXIST, new MapRange(d, IOVA - 2 * PAGE,
        new long[] {vm.pageHpa(1), vm.pageHpa(1) + 8 * PAGE}, new long[] {2 * PAGE, PAGE},
        Access.READ, h.replies.getRef()));
    h.refused(Errno.EINVAL, new MapRange(d, IOVA + 0x800, new long[] {vm.pageHpa(1)},
        new long[] {PAGE}, Access.READ, h.replies.getRef()));
    h.refused(Errno.EINVAL, new MapRange(d, IOVA, new long[0], new long[0], Access.READ,
        h.replies.getRef()));
    h.refused(Errno.ENOENT, new MapRange(77, IOVA, new long[] {0}, new long[] {PAGE}, Access.READ,
        h.replies.getRef()));
  }

  @Test
  void anUnmapThatCutsALargePageIsRefusedAndChangesNothing() {
    GuestMemoryLayout vm = h.vm(1, 4 * Fixtures.MIB);
    int d = h.pagingDomain();
    h.map(d, 2 * Fixtures.MIB, vm.pageHpa(0), 2 * Fixtures.MIB, Access.READ_WRITE);
    h.refused(Errno.EINVAL, UnmapRange.strict(d, 2 * Fixtures.MIB, PAGE, h.replies.getRef()));
    h.refused(Errno.EINVAL, UnmapRange.strict(d, 0, 0, h.replies.getRef()));
    Unmapped u = h.ask(UnmapRange.strict(d, 2 * Fixtures.MIB, 2 * Fixtures.MIB, h.replies.getRef()),
        Unmapped.class);
    assertEquals(2 * Fixtures.MIB, u.bytes());
    assertTrue(u.modeledLatencyNs() > 0, "IOTLB invalidation and sync cost modeled time");
  }

  // ---------------------------------------------------------------- DMA

  @Test
  void dmaThroughTheUnitIsTranslatedAndCheckedAgainstTheOwnersFrames() {
    GuestMemoryLayout mine = h.vm(1, 4 * Fixtures.MIB);
    GuestMemoryLayout theirs = h.vm(2, 4 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, false);
    h.claim(NIC, 5, 1, nic);
    int d = h.pagingDomain();
    h.map(d, IOVA, mine.pageHpa(0), PAGE, Access.READ_WRITE);
    // The other VM's frame mapped into this VM's domain: the isolation breach to catch.
    h.map(d, IOVA + PAGE, theirs.pageHpa(1), PAGE, Access.READ_WRITE);
    h.attach(NIC, NONE, d, null);
    MemoryReport before = h.report();
    BurstTranslated r = h.burst(NIC, NONE, new long[] {IOVA + 0x10, IOVA + PAGE, IOVA + 2 * PAGE},
        Access.WRITE, false);
    assertEquals(7, r.burstId());
    assertArrayEquals(new byte[] {0, 0, status(FaultReason.NOT_PRESENT)}, r.status());
    assertEquals(mine.pageHpa(0) + 0x10, r.hpas()[0]);
    assertEquals(12, r.pageShift()[0]);
    assertTrue(r.modeledLatencyNs() > 0);
    MemoryReport after = h.report();
    assertEquals(1, after.checks().get(DmaCheck.OK) - before.checks().get(DmaCheck.OK));
    assertEquals(1, after.checks().get(DmaCheck.ISOLATION_VIOLATION)
        - before.checks().get(DmaCheck.ISOLATION_VIOLATION));
    assertEquals(2, after.violations().get(after.violations().size() - 1).actualOwner());
    UnitStats stats = h.stats();
    assertEquals(3, stats.translations());
    assertEquals(1, stats.unhandledFaults());
    assertEquals(FaultReason.NOT_PRESENT, stats.faultLog().get(0).reason());
  }

  @Test
  void aFaultGoesToTheAttachHandlesSink() {
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, false);
    TestProbe<FaultEvent> sink = testKit.createTestProbe();
    h.claim(NIC, 5, 1, nic);
    int d = h.pagingDomain();
    h.attach(NIC, NONE, d, FaultSinks.unbatching(testKit, sink.getRef()));
    h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false);
    DmaFaulted f = sink.expectMessageClass(DmaFaulted.class);
    assertEquals(FaultReason.NOT_PRESENT, f.fault().reason());
    assertEquals(NIC, f.fault().rid());
    assertEquals(IOVA, f.fault().iova());
    assertEquals(0, h.stats().unhandledFaults());
  }

  @Test
  void anUnownedDevicesDmaIsCheckedAgainstTheHost() {
    h.attachedDevice(NIC, 1, false, IOVA, 1, Access.READ, null);
    h.ok(new Detach(NIC, NONE, h.replies.getRef()));
    h.ok(new ReleaseDmaOwner(NIC, 5, h.replies.getRef()));
    MemoryReport before = h.report();
    // A stale context would be the only way through; the detach cleared it, so this faults.
    BurstTranslated r = h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false);
    assertEquals(status(FaultReason.PASID_NOT_VALID), r.status()[0]);
    assertEquals(before.checks(), h.report().checks());
  }

  @Test
  void anUnmapIsAnsweredOnlyAfterTheDeviceAckedItsAtcInvalidation() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 4, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    BurstTranslated ats = h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, true);
    assertEquals(0, ats.status()[0]);

    h.unit.tell(UnmapRange.strict(d, IOVA, 4 * PAGE, h.replies.getRef()));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA, inv.address());
    assertEquals(NONE, inv.pasid());
    h.replies.expectNoMessage(Duration.ofMillis(50));
    assertEquals(1, h.stats().pendingInvalidations());
    // The IOTLB is already clean: a new ATS request faults even before the ack.
    assertEquals(status(FaultReason.NOT_PRESENT),
        h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, true).status()[0]);
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    Unmapped u = h.replies.expectMessageClass(Unmapped.class);
    assertEquals(4 * PAGE, u.bytes());
    assertTrue(u.modeledLatencyNs() >= testCostAtcRoundTrip());
    assertEquals(0, h.stats().pendingInvalidations());
  }

  private static long testCostAtcRoundTrip() {
    return io.iommulab.hardware.cost.CostModel.defaults().atcInvalidationRoundTrip();
  }

  @Test
  void anUnmapArrivingWhileABatchWaitsForAcksGoesOutInTheNextBatchAndIsAnsweredAfterItsOwnAck() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 2, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    h.unit.tell(UnmapRange.strict(d, IOVA, PAGE, h.replies.getRef()));
    AtcInvalidate first = gpu.expectMessageClass(AtcInvalidate.class);
    h.unit.tell(UnmapRange.strict(d, IOVA + PAGE, PAGE, h.replies.getRef()));
    // One invalidation queue per unit: the second request waits behind the batch in execution.
    assertEquals(2, h.stats().pendingInvalidations());
    gpu.expectNoMessage(Duration.ofMillis(30));
    h.unit.tell(new AtcInvalidationAcked(GPU, first.token()));
    assertEquals(PAGE, h.replies.expectMessageClass(Unmapped.class).bytes());
    AtcInvalidate second = gpu.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA + PAGE, second.address());
    h.replies.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(GPU, second.token()));
    assertEquals(PAGE, h.replies.expectMessageClass(Unmapped.class).bytes());
    assertEquals(0, h.stats().pendingInvalidations());
  }

  @Test
  void afterADetachCompletesNoDmaIsServedFromTheOldTranslation() {
    TestProbe<DeviceActor.Command> gpu =
        h.attachedDevice(GPU, 2, true, IOVA, 1, Access.READ_WRITE, null).device();
    assertEquals(0, h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, false).status()[0]);
    h.unit.tell(new Detach(GPU, NONE, h.replies.getRef()));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    assertTrue(inv.sizeOrder() >= 52, "the whole device TLB of the RID goes");
    h.replies.expectNoMessage(Duration.ofMillis(30));
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    h.replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    BurstTranslated r = h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, false);
    assertEquals(status(FaultReason.PASID_NOT_VALID), r.status()[0]);
  }

  @Test
  void aDeviceThatStopsReleasesTheInvalidationsWaitingForIt() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 1, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    h.unit.tell(UnmapRange.strict(d, IOVA, PAGE, h.replies.getRef()));
    gpu.expectMessageClass(AtcInvalidate.class);
    gpu.stop();
    assertEquals(PAGE, h.replies.expectMessageClass(Unmapped.class).bytes());
  }

  @Test
  void attachingNeedsAnOwnerAnExistingDomainAndAFreePasid() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    int d = h.pagingDomain();
    h.refused(Errno.EPERM, new Attach(GPU, NONE, d, null, 0L, h.replies.getRef()));
    h.claim(GPU, 5, 1, gpu);
    h.refused(Errno.ENOENT, new Attach(GPU, NONE, 99, null, 0L, h.replies.getRef()));
    h.refused(Errno.ENODEV, new Attach(0x0999, NONE, d, null, 0L, h.replies.getRef()));
    h.attach(GPU, NONE, d, null);
    h.refused(Errno.EBUSY, new Attach(GPU, NONE, d, null, 0L, h.replies.getRef()));
    h.refused(Errno.EINVAL, new Attach(GPU, 1 << 9, d, null, 0L, h.replies.getRef()));
    h.attach(GPU, 3, d, null);
    assertTrue(h.snapshot().groups().get(0).contains("pasids=1"));
    h.refused(Errno.EINVAL, new Detach(GPU, 4, h.replies.getRef()));
  }

  @Test
  void replaceMovesTheRidAndRetiresTheOldTranslationFirst() {
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    h.claim(GPU, 5, 1, gpu);
    int a = h.pagingDomain();
    int b = h.pagingDomain();
    h.map(a, IOVA, vm.pageHpa(0), PAGE, Access.READ);
    h.map(b, IOVA, vm.pageHpa(0) + PAGE, PAGE, Access.READ);
    h.attach(GPU, NONE, a, null);
    h.refused(Errno.EINVAL, new Replace(GPU, 5, b, null, 0L, h.replies.getRef()));
    h.unit.tell(new Replace(GPU, NONE, b, null, 0L, h.replies.getRef()));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    h.replies.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    h.replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    assertEquals(vm.pageHpa(0) + PAGE,
        h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, false).hpas()[0]);
    // Replacing with the same domain is a no-op.
    h.ok(new Replace(GPU, NONE, b, null, 0L, h.replies.getRef()));
  }

  // ---------------------------------------------------------------- page requests

  @Test
  void pageRequestsReachTheSinkAndResponsesTheDevice() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    TestProbe<FaultEvent> sink = testKit.createTestProbe();
    h.claim(GPU, 5, 1, gpu);
    int d = h.pagingDomain();
    h.attach(GPU, 3, d, FaultSinks.unbatching(testKit, sink.getRef()));
    h.unit.tell(new ReportPageRequest(GPU, 3, 9, IOVA, Access.READ, false));
    h.unit.tell(new ReportPageRequest(GPU, 3, 9, IOVA + PAGE, Access.READ, true));
    PageRequested first = sink.expectMessageClass(PageRequested.class);
    assertEquals(9, first.request().groupId());
    assertFalse(first.request().lastPage());
    assertTrue(sink.expectMessageClass(PageRequested.class).request().lastPage());
    h.unit.tell(new RespondPageRequest(GPU, 3, 9, PageResponseCode.SUCCESS, 0L));
    gpu.expectMessage(new DeviceActor.PageResponded(3, 9, PageResponseCode.SUCCESS));
    // A second answer for the same group is stale.
    h.unit.tell(new RespondPageRequest(GPU, 3, 9, PageResponseCode.SUCCESS, 0L));
    gpu.expectNoMessage(Duration.ofMillis(20));
    UnitStats stats = h.stats();
    assertEquals(2, stats.pageRequests());
    assertEquals(1, stats.pageResponses());
    assertEquals(1, stats.staleResponses());
  }

  @Test
  void withoutASinkAPageGroupIsAnsweredInvalidAtItsLastPage() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    h.claim(GPU, 5, 1, gpu);
    int d = h.pagingDomain();
    h.attach(GPU, NONE, d, null);
    h.unit.tell(new ReportPageRequest(GPU, NONE, 4, IOVA, Access.WRITE, false));
    gpu.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new ReportPageRequest(GPU, NONE, 4, IOVA + PAGE, Access.WRITE, true));
    gpu.expectMessage(new DeviceActor.PageResponded(NONE, 4, PageResponseCode.INVALID));
  }

  @Test
  void detachingAnswersPendingPageGroupsInvalidAndDropsLateResponses() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    TestProbe<FaultEvent> sink = testKit.createTestProbe();
    h.claim(GPU, 5, 1, gpu);
    int d = h.pagingDomain();
    h.attach(GPU, 3, d, FaultSinks.unbatching(testKit, sink.getRef()));
    h.unit.tell(new ReportPageRequest(GPU, 3, 2, IOVA, Access.READ, true));
    sink.expectMessageClass(PageRequested.class);
    h.unit.tell(new Detach(GPU, 3, h.replies.getRef()));
    gpu.expectMessage(new DeviceActor.PageResponded(3, 2, PageResponseCode.INVALID));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    h.replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    h.unit.tell(new RespondPageRequest(GPU, 3, 2, PageResponseCode.SUCCESS, 0L));
    gpu.expectNoMessage(Duration.ofMillis(20));
    assertEquals(1, h.stats().staleResponses());
  }

  // ---------------------------------------------------------------- nesting, dirty, snoop

  @Test
  void aNestedDomainTranslatesThroughBothStagesAndUserInvalidationFlushesIt() {
    GuestMemoryLayout vm = h.vm(1, 4 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, false);
    h.claim(NIC, 5, 1, nic);
    int parent = h.ask(new AllocDomain(DomainType.PAGING, true, false, 0, h.replies.getRef()),
        DomainAllocated.class).domainId();
    int nested = h.ask(new AllocDomain(DomainType.NESTED, false, false, parent, h.replies.getRef()),
        DomainAllocated.class).domainId();
    h.map(parent, 0, vm.pageHpa(0), 2 * Fixtures.MIB, Access.READ_WRITE);
    h.ok(new Stage1Map(nested, IOVA, 0x3000, PAGE, Access.READ, h.replies.getRef()));
    h.refused(Errno.EINVAL, new Stage1Map(parent, IOVA, 0x3000, PAGE, Access.READ, h.replies.getRef()));
    h.refused(Errno.EINVAL, new MapRange(nested, 0, new long[] {0}, new long[] {PAGE}, Access.READ,
        h.replies.getRef()));
    h.attach(NIC, NONE, nested, null);
    assertEquals(vm.pageHpa(0) + 0x3000,
        h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false).hpas()[0]);
    // The guest changes its table: the cached translation stands until it invalidates.
    h.ok(new Stage1Unmap(nested, IOVA, PAGE, h.replies.getRef()));
    assertEquals(0, h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false).status()[0]);
    UserInvalidated inv = h.ask(new InvalidateUser(nested, List.of(
        new UserInvalidation(UserInvalidationKind.IOTLB_RANGE, NONE, IOVA, 1, 0, true),
        new UserInvalidation(UserInvalidationKind.IOTLB_RANGE, NONE, IOVA + 1, 1, 0, true),
        new UserInvalidation(UserInvalidationKind.IOTLB_ALL, NONE, 0, 0, 0, false)),
        h.replies.getRef()), UserInvalidated.class);
    assertEquals(2, inv.handled());
    assertEquals(Errno.EINVAL, inv.errno());
    assertEquals(status(FaultReason.NOT_PRESENT),
        h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false).status()[0]);
  }

  @Test
  void userAtcInvalidationWaitsForTheDevice() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    int d = h.pagingDomain();
    h.unit.tell(new InvalidateUser(d, List.of(
        new UserInvalidation(UserInvalidationKind.ATC, 3, IOVA, 3, GPU, true)), h.replies.getRef()));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    assertEquals(2, inv.sizeOrder());
    assertEquals(3, inv.pasid());
    h.replies.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    UserInvalidated done = h.replies.expectMessageClass(UserInvalidated.class);
    assertEquals(1, done.handled());
    assertEquals(null, done.errno());
  }

  @Test
  void dirtyTrackingReportsWrittenPagesAndClearsThem() {
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, false);
    h.claim(NIC, 5, 1, nic);
    int d = h.ask(new AllocDomain(DomainType.PAGING, false, true, 0, h.replies.getRef()),
        DomainAllocated.class).domainId();
    int plain = h.pagingDomain();
    h.refused(Errno.EINVAL, new SetDirtyTracking(plain, true, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new ReadAndClearDirty(plain, IOVA, PAGE, false, h.replies.getRef()));
    h.map(d, IOVA, vm.pageHpa(0), 4 * PAGE, Access.READ_WRITE);
    h.attach(NIC, NONE, d, null);
    h.ok(new SetDirtyTracking(d, true, h.replies.getRef()));
    h.burst(NIC, NONE, new long[] {IOVA + PAGE, IOVA + 2 * PAGE}, Access.WRITE, false);
    h.burst(NIC, NONE, new long[] {IOVA + 3 * PAGE}, Access.READ, false);
    DirtyRead read = h.ask(new ReadAndClearDirty(d, IOVA, 4 * PAGE, true, h.replies.getRef()),
        DirtyRead.class);
    assertArrayEquals(new long[] {IOVA + PAGE, IOVA + 2 * PAGE}, read.dirtyIovas());
    assertEquals(PAGE, read.pageSize());
    DirtyRead again = h.ask(new ReadAndClearDirty(d, IOVA, 4 * PAGE, false, h.replies.getRef()),
        DirtyRead.class);
    assertEquals(0, again.dirtyIovas().length);
  }

  @Test
  void cacheCoherencyCanBeEnforcedOnlyBeforeTheFirstMap() {
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    int a = h.pagingDomain();
    h.ok(new EnforceCacheCoherency(a, h.replies.getRef()));
    int b = h.pagingDomain();
    h.map(b, IOVA, vm.pageHpa(0), PAGE, Access.READ);
    h.refused(Errno.EINVAL, new EnforceCacheCoherency(b, h.replies.getRef()));
    h.refused(Errno.ENOENT, new EnforceCacheCoherency(99, h.replies.getRef()));
    h.map(a, IOVA, vm.pageHpa(0), PAGE, Access.READ);
    assertTrue(h.snapshot().paging().domains().stream().anyMatch(s -> s.id() == a && s.forceSnoop()));
  }

  @Test
  void commandsOnAMissingOrWrongKindOfDomainAreRefusedAndChangeNothing() {
    int plain = h.pagingDomain();
    h.refused(Errno.ENOENT, new Stage1Unmap(99, IOVA, PAGE, h.replies.getRef()));
    h.refused(Errno.EINVAL, new Stage1Unmap(plain, IOVA, PAGE, h.replies.getRef()));
    h.refused(Errno.ENOENT, new InvalidateUser(99, List.of(), h.replies.getRef()));
    h.refused(Errno.ENOENT, new SetDirtyTracking(99, true, h.replies.getRef()));
    h.refused(Errno.ENOENT, new ReadAndClearDirty(99, IOVA, PAGE, true, h.replies.getRef()));
    h.refused(Errno.ENOENT, UnmapRange.strict(99, IOVA, PAGE, h.replies.getRef()));
    h.refused(Errno.ENODEV, new Detach(0x0999, NONE, h.replies.getRef()));
    h.refused(Errno.ENODEV, new Replace(0x0999, NONE, plain, null, 0L, h.replies.getRef()));
    UserInvalidated none = h.ask(new InvalidateUser(plain, List.of(
        new UserInvalidation(UserInvalidationKind.IOTLB_ALL, NONE, 0, 0, 0, false)),
        h.replies.getRef()), UserInvalidated.class);
    assertEquals(1, none.handled());
    assertEquals(Errno.EINVAL, none.errno(), "stage-1 invalidation of a paging domain");
  }

  @Test
  void oneActorMayStandForSeveralFunctions() {
    TestProbe<DeviceActor.Command> card = testKit.createTestProbe();
    h.ok(new RegisterDevice(GPU, -1, 2, 0, true, false, card.getRef(), h.replies.getRef()));
    h.ok(new RegisterDevice(GPU_FN1, -1, 2, 0, true, false, card.getRef(), h.replies.getRef()));
    h.ok(new UnregisterDevice(GPU_FN1, h.replies.getRef()));
    h.ok(new RegisterDevice(GPU_FN1, -1, 2, 0, true, false, card.getRef(), h.replies.getRef()));
    assertEquals(List.of(GPU, GPU_FN1), h.snapshot().devices());
  }

  // ---------------------------------------------------------------- other kinds' commands, MSI

  @Test
  void pamuCommandsAreNotSupportedByAPagingUnit() {
    h.refused(Errno.EOPNOTSUPP, new PamuSetGeometry(1, 0, 1L << 30, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new PamuSetWindowCount(1, 8, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new PamuGetGeometry(1, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new PamuMapMsiBank(1, 0, Fixtures.MSIIR0, 0, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new PamuUnmapMsiBank(1, 0, h.replies.getRef()));
  }

  @Test
  void msiWritesWithoutIsolationAreCountedUnisolated() {
    UnitHarness open =
        new UnitHarness(testKit, Fixtures.paging("smmu0", UnitKind.SMMUV3, false, false, 8));
    open.device(NIC, 1, false);
    open.unit.tell(new MsiWrite(NIC, 0x800_0040L, 5));
    h.device(NIC, 1, false);
    h.unit.tell(new MsiWrite(NIC, 0xFEE0_0000L, 5));
    UnitStats isolated = h.stats();
    UnitStats unisolated = open.stats();
    assertEquals(1, isolated.msiWrites());
    assertEquals(0, isolated.msiUnisolated());
    assertEquals(1, unisolated.msiWrites());
    assertEquals(1, unisolated.msiUnisolated());
  }

  @Test
  void cachingModeFlushesTheNotPresentEntryAMapReplaces() {
    UnitHarness cm =
        new UnitHarness(testKit, Fixtures.paging("vtd-cm", UnitKind.VTD, true, true, 8));
    GuestMemoryLayout vm = cm.vm(1, 2 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> nic = cm.device(NIC, 1, false);
    cm.claim(NIC, 5, 1, nic);
    int d = cm.pagingDomain();
    cm.attach(NIC, NONE, d, null);
    assertEquals(status(FaultReason.NOT_PRESENT),
        cm.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false).status()[0]);
    cm.map(d, IOVA, vm.pageHpa(0), PAGE, Access.READ);
    BurstTranslated r = cm.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false);
    assertEquals(0, r.status()[0]);
    assertNotNull(cm.stats());
  }
}
