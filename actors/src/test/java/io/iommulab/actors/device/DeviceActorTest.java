package io.iommulab.actors.device;

import io.iommulab.actors.pipeline.FaultSinks;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.device.DeviceActor.DeviceState;
import io.iommulab.actors.device.DeviceActor.DmaBurst;
import io.iommulab.actors.device.DeviceActor.DmaCompleted;
import io.iommulab.actors.device.DeviceActor.GetState;
import io.iommulab.actors.device.DeviceActor.MsiReply;
import io.iommulab.actors.device.DeviceActor.MsiRefused;
import io.iommulab.actors.device.DeviceActor.MsiVectorProgrammed;
import io.iommulab.actors.device.DeviceActor.ProgramMsiVector;
import io.iommulab.actors.device.DeviceActor.Quiesce;
import io.iommulab.actors.device.DeviceActor.Quiesced;
import io.iommulab.actors.device.DeviceActor.RaiseMsi;
import io.iommulab.actors.device.DeviceActor.Resume;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.memory.HostMemoryActor.MemoryReport;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.AllocDomain;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.ClaimDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.DmaOwnerClaimed;
import io.iommulab.actors.unit.IommuUnitActor.DomainAllocated;
import io.iommulab.actors.unit.IommuUnitActor.DomainType;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.GetStats;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.Mapped;
import io.iommulab.actors.unit.IommuUnitActor.PageRequested;
import io.iommulab.actors.unit.IommuUnitActor.PageResponseCode;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.RespondPageRequest;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** The device actor driving DMA through a real VT-d unit actor and the host-memory oracle. */
class DeviceActorTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final long IOVA = 0x40_0000L;
  private static final long PAGE = 4096;
  private static final int NONE = IommuUnitActor.NO_PASID;
  private static final int VM = 1;
  private static final int ICTX = 5;

  private final ManualClock clock = new ManualClock(1_000);
  private final PagingUnitSettings vtd = Fixtures.vtd("vtd0");
  private final ActorRef<HostMemoryActor.Command> memory =
      testKit.spawn(HostMemoryActor.create(Fixtures.topology(List.of(vtd)), FaultInjector.NONE));
  private final ActorRef<IommuUnitActor.Command> unit =
      testKit.spawn(IommuUnitActor.create(0, vtd, CostModel.defaults(), clock, 7,
          FaultInjector.NONE, memory, Map.of()));
  private final TestProbe<UnitReply> replies = testKit.createTestProbe();
  private final TestProbe<DmaCompleted> completions = testKit.createTestProbe();
  private final TestProbe<DeviceState> states = testKit.createTestProbe();
  private final TestProbe<FaultEvent> fd = testKit.createTestProbe();
  private final GuestMemoryLayout guest = guestMemory();
  private int domain;

  private GuestMemoryLayout guestMemory() {
    TestProbe<HostMemoryActor.GuestMemoryReply> r = testKit.createTestProbe();
    memory.tell(new HostMemoryActor.AllocateGuestMemory(VM, 4 * Fixtures.MIB, PageSize.SIZE_2M,
        r.getRef()));
    GuestMemoryLayout layout = r.expectMessageClass(HostMemoryActor.GuestMemoryAllocated.class).layout();
    // What the tests map is pinned first, as an fd does (DMA to an unpinned frame is a verdict).
    memory.tell(new HostMemoryActor.PinsChanged(VM, layout.userVaBase(), layout.bytes(), true));
    return layout;
  }

  /** Spawns the function, registers it, has VM 1's context claim it and attach it to a domain. */
  private ActorRef<DeviceActor.Command> boundDevice(DeviceSettings s, ActorRef<FaultEvent> sink) {
    ActorRef<DeviceActor.Command> dev = spawned(s);
    unit.tell(new ClaimDmaOwner(s.ridValue(), ICTX, VM, replies.getRef()));
    replies.expectMessageClass(DmaOwnerClaimed.class);
    domain = replies(new AllocDomain(DomainType.PAGING, false, false, 0, replies.getRef()),
        DomainAllocated.class).domainId();
    unit.tell(new Attach(s.ridValue(), NONE, domain, sink, 0L, replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    return dev;
  }

  private ActorRef<DeviceActor.Command> spawned(DeviceSettings s) {
    ActorRef<DeviceActor.Command> dev =
        testKit.spawn(DeviceActor.create(s, 0, unit, memory, clock, 11));
    unit.tell(new RegisterDevice(s.ridValue(), -1, s.group(), s.pasidBits(), s.ats(), s.pri(), dev,
        replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    return dev;
  }

  private <T extends UnitReply> T replies(IommuUnitActor.Command c, Class<T> type) {
    unit.tell(c);
    return replies.expectMessageClass(type);
  }

  private void map(long iova, long offset, long length) {
    Mapped m = replies(new MapRange(domain, iova, new long[] {guest.pageHpa(0) + offset},
        new long[] {length}, Access.READ_WRITE, replies.getRef()), Mapped.class);
    assertEquals(length, m.bytes());
  }

  private DmaCompleted dma(ActorRef<DeviceActor.Command> dev, int access, long... iovas) {
    dev.tell(burst(access, iovas));
    return completions.receiveMessage();
  }

  private DmaBurst burst(int access, long... iovas) {
    int[] lengths = new int[iovas.length];
    int[] acc = new int[iovas.length];
    Arrays.fill(lengths, 64);
    Arrays.fill(acc, access);
    return new DmaBurst(NONE, iovas, lengths, acc, 99, completions.getRef());
  }

  private DeviceState state(ActorRef<DeviceActor.Command> dev) {
    dev.tell(new GetState(states.getRef()));
    return states.receiveMessage();
  }

  private MemoryReport report() {
    TestProbe<MemoryReport> r = testKit.createTestProbe();
    memory.tell(new HostMemoryActor.GetReport(r.getRef()));
    return r.receiveMessage();
  }

  private static byte status(FaultReason reason) {
    return (byte) (reason.ordinal() + 1);
  }

  // ---------------------------------------------------------------- plain DMA

  @Test
  void aFunctionNoOneBoundCannotMasterDma() {
    ActorRef<DeviceActor.Command> nic = spawned(Fixtures.plain("nic", "vtd0", "01:00.0", 1));
    DmaCompleted c = dma(nic, Access.READ, IOVA, IOVA + PAGE);
    assertArrayEquals(new byte[] {DeviceActor.STATUS_ABORTED, DeviceActor.STATUS_ABORTED},
        c.status());
    assertEquals(0, state(nic).ownerVmId());
  }

  @Test
  void untranslatedDmaIsTranslatedByTheUnitAndCheckedAgainstTheOwner() {
    ActorRef<DeviceActor.Command> nic = boundDevice(Fixtures.plain("nic", "vtd0", "01:00.0", 1), null);
    map(IOVA, 0, PAGE);
    MemoryReport before = report();
    DmaCompleted c = dma(nic, Access.WRITE, IOVA + 0x100, IOVA + PAGE);
    assertEquals(99, c.tag());
    assertArrayEquals(new byte[] {0, status(FaultReason.NOT_PRESENT)}, c.status());
    assertTrue(c.modeledLatencyNs() > 0);
    assertEquals(0, c.atcHits());
    assertEquals(1, report().checks().get(DmaCheck.OK) - before.checks().get(DmaCheck.OK));
    DeviceState s = state(nic);
    assertEquals(VM, s.ownerVmId());
    assertEquals(2, s.dmaAccesses());
    assertEquals(1, s.dmaFaults());
  }

  @Test
  void malformedBurstsAreRefusedWhereTheyAreBuilt() {
    assertThrows(IllegalArgumentException.class, () -> new DmaBurst(NONE, new long[] {0xFF0},
        new int[] {32}, new int[] {Access.READ}, 1, completions.getRef()));
    assertThrows(IllegalArgumentException.class, () -> new DmaBurst(NONE, new long[] {0},
        new int[] {4}, new int[] {0}, 1, completions.getRef()));
    assertThrows(IllegalArgumentException.class, () -> new DmaBurst(NONE, new long[] {0, 8},
        new int[] {4}, new int[] {Access.READ}, 1, completions.getRef()));
  }

  // ---------------------------------------------------------------- ATS

  @Test
  void anAtsDeviceHitsItsAtcAfterTheFirstTranslationAndAnUnmapDropsIt() {
    ActorRef<DeviceActor.Command> gpu =
        boundDevice(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, false), null);
    map(IOVA, 0, 2 * PAGE);
    DmaCompleted first = dma(gpu, Access.READ, IOVA, IOVA + PAGE);
    assertArrayEquals(new byte[] {0, 0}, first.status());
    assertEquals(0, first.atcHits());
    MemoryReport before = report();
    DmaCompleted second = dma(gpu, Access.READ, IOVA + 8, IOVA + PAGE + 8);
    assertEquals(2, second.atcHits());
    assertArrayEquals(new byte[] {0, 0}, second.status());
    assertEquals(2, report().checks().get(DmaCheck.OK) - before.checks().get(DmaCheck.OK),
        "translated accesses are checked too");
    assertEquals(2, state(gpu).atcEntries());

    Unmapped u = replies(UnmapRange.strict(domain, IOVA, 2 * PAGE, replies.getRef()), Unmapped.class);
    assertEquals(2 * PAGE, u.bytes());
    DeviceState after = state(gpu);
    assertEquals(0, after.atcEntries());
    assertEquals(1, after.atcInvalidations());
    DmaCompleted third = dma(gpu, Access.READ, IOVA);
    assertEquals(0, third.atcHits());
    assertArrayEquals(new byte[] {status(FaultReason.NOT_PRESENT)}, third.status());
  }

  @Test
  void theDeviceAcknowledgesEveryAtcInvalidation() {
    ActorRef<DeviceActor.Command> gpu = spawned(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, false));
    TestProbe<IommuUnitActor.Command> fakeUnit = testKit.createTestProbe();
    gpu.tell(new AtcInvalidate(NONE, 0, 52, 77, fakeUnit.getRef()));
    fakeUnit.expectMessage(new IommuUnitActor.AtcInvalidationAcked(0x0200, 77));
  }

  // ---------------------------------------------------------------- PRI

  @Test
  void aFaultOnAPriDeviceBecomesAPageRequestAndSuccessRetriesIt() {
    ActorRef<DeviceActor.Command> gpu =
        boundDevice(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, true), FaultSinks.unbatching(testKit, fd.getRef()));
    gpu.tell(burst(Access.WRITE, IOVA + 0x40, IOVA + 0x80));
    PageRequested pr = fd.expectMessageClass(PageRequested.class);
    assertEquals(IOVA, pr.request().addr());
    assertTrue(pr.request().lastPage(), "both accesses share one page: one request");
    assertEquals(Access.WRITE, pr.request().perm());
    completions.expectNoMessage(Duration.ofMillis(30));
    assertEquals(1, state(gpu).outstandingPageRequests());
    // The fd resolves the fault (maps the page) and answers the group.
    map(IOVA, 0, PAGE);
    unit.tell(new RespondPageRequest(0x0200, NONE, pr.request().groupId(), PageResponseCode.SUCCESS, 0L));
    DmaCompleted c = completions.receiveMessage();
    assertArrayEquals(new byte[] {0, 0}, c.status());
    assertEquals(1, c.pageRequests());
    assertEquals(0, state(gpu).outstandingPageRequests());
  }

  @Test
  void anInvalidPageResponseFailsTheAccesses() {
    ActorRef<DeviceActor.Command> gpu =
        boundDevice(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, true), FaultSinks.unbatching(testKit, fd.getRef()));
    map(IOVA + PAGE, PAGE, PAGE);
    gpu.tell(burst(Access.READ, IOVA, IOVA + PAGE));
    PageRequested pr = fd.expectMessageClass(PageRequested.class);
    unit.tell(new RespondPageRequest(0x0200, NONE, pr.request().groupId(), PageResponseCode.INVALID, 0L));
    DmaCompleted c = completions.receiveMessage();
    assertArrayEquals(new byte[] {DeviceActor.STATUS_PAGE_REQUEST_FAILED, 0}, c.status());
  }

  @Test
  void withoutAFaultHandlerThePageRequestIsAnsweredInvalidAtOnce() {
    ActorRef<DeviceActor.Command> gpu =
        boundDevice(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, true), null);
    DmaCompleted c = dma(gpu, Access.READ, IOVA);
    assertArrayEquals(new byte[] {DeviceActor.STATUS_PAGE_REQUEST_FAILED}, c.status());
    assertEquals(1, c.pageRequests());
  }

  @Test
  void pageRequestsBeyondTheAllocationWaitForAGroupToComplete() {
    ActorRef<DeviceActor.Command> gpu =
        boundDevice(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, true), FaultSinks.unbatching(testKit, fd.getRef()));
    long[] iovas = new long[40];
    for (int i = 0; i < iovas.length; i++) {
      iovas[i] = IOVA + i * PAGE;
    }
    gpu.tell(burst(Access.READ, iovas));
    List<FaultEvent> first = fd.receiveSeveralMessages(32);
    PageRequested last = (PageRequested) first.get(31);
    assertTrue(last.request().lastPage());
    fd.expectNoMessage(Duration.ofMillis(30));
    assertEquals(32, state(gpu).outstandingPageRequests());
    map(IOVA, 0, 40 * PAGE);
    unit.tell(new RespondPageRequest(0x0200, NONE, last.request().groupId(), PageResponseCode.SUCCESS, 0L));
    List<FaultEvent> rest = fd.receiveSeveralMessages(8);
    PageRequested tail = (PageRequested) rest.get(7);
    assertEquals(IOVA + 39 * PAGE, tail.request().addr());
    unit.tell(new RespondPageRequest(0x0200, NONE, tail.request().groupId(), PageResponseCode.SUCCESS, 0L));
    DmaCompleted c = completions.receiveMessage();
    byte[] ok = new byte[40];
    assertArrayEquals(ok, c.status());
    assertEquals(40, c.pageRequests());
  }

  // ---------------------------------------------------------------- hotplug

  @Test
  void quiesceAbortsAccessesWaitingAndEveryLaterBurstUntilResume() {
    ActorRef<DeviceActor.Command> gpu =
        boundDevice(Fixtures.ats("gpu", "vtd0", "02:00.0", 2, true), FaultSinks.unbatching(testKit, fd.getRef()));
    map(IOVA + PAGE, PAGE, PAGE);
    gpu.tell(burst(Access.READ, IOVA, IOVA + PAGE));
    fd.expectMessageClass(PageRequested.class);
    TestProbe<Quiesced> quiesced = testKit.createTestProbe();
    gpu.tell(new Quiesce(quiesced.getRef()));
    DmaCompleted aborted = completions.receiveMessage();
    assertArrayEquals(new byte[] {DeviceActor.STATUS_ABORTED, 0}, aborted.status());
    assertEquals(new Quiesced("gpu", 0x0200), quiesced.receiveMessage());
    DeviceState s = state(gpu);
    assertTrue(s.quiesced());
    assertEquals(0, s.atcEntries());
    assertEquals(0, s.burstsInFlight());
    assertArrayEquals(new byte[] {DeviceActor.STATUS_ABORTED}, dma(gpu, Access.READ, IOVA + PAGE).status());
    // A quiesced function still answers its IOMMU: the unit's syncs must not hang on it.
    TestProbe<IommuUnitActor.Command> fakeUnit = testKit.createTestProbe();
    gpu.tell(new AtcInvalidate(NONE, IOVA, 0, 5, fakeUnit.getRef()));
    fakeUnit.expectMessage(new IommuUnitActor.AtcInvalidationAcked(0x0200, 5));
    gpu.tell(new Resume());
    assertArrayEquals(new byte[] {0}, dma(gpu, Access.READ, IOVA + PAGE).status());
  }

  // ---------------------------------------------------------------- MSI

  @Test
  void aProgrammedVectorRaisesAnMsiWriteAtTheUnit() {
    ActorRef<DeviceActor.Command> nic = boundDevice(Fixtures.plain("nic", "vtd0", "01:00.0", 1), null);
    TestProbe<MsiReply> msi = testKit.createTestProbe();
    nic.tell(new ProgramMsiVector(2, -1, 0xFEE0_0000L, 0x41, msi.getRef()));
    assertEquals(new MsiVectorProgrammed(2), msi.receiveMessage());
    DeviceState before = state(nic);
    nic.tell(new ProgramMsiVector(9, -1, 0xFEE0_0000L, 0x41, msi.getRef()));
    assertEquals(Errno.EINVAL, msi.expectMessageClass(MsiRefused.class).errno());
    nic.tell(new ProgramMsiVector(1, -5, 0xFEE0_0000L, 0x41, msi.getRef()));
    assertEquals(Errno.EINVAL, msi.expectMessageClass(MsiRefused.class).errno());
    assertEquals(before, state(nic));
    nic.tell(new RaiseMsi(2));
    nic.tell(new RaiseMsi(3));
    DeviceState s = state(nic);
    assertEquals(2, s.msiRaised());
    assertEquals(1, s.msiDropped());
    TestProbe<UnitStats> stats = testKit.createTestProbe();
    unit.tell(new GetStats(stats.getRef()));
    assertEquals(1, stats.receiveMessage().msiWrites());
  }
}
