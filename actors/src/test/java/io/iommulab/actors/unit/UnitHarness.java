package io.iommulab.actors.unit;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.ClaimDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.DmaOwnerClaimed;
import io.iommulab.actors.unit.IommuUnitActor.Done;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.GetSnapshot;
import io.iommulab.actors.unit.IommuUnitActor.GetStats;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.Mapped;
import io.iommulab.actors.unit.IommuUnitActor.Refused;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.TranslateBurst;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnitSnapshotted;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.actors.Fixtures;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;

/** One unit actor with a real host-memory actor behind it, and probes standing in for the rest. */
final class UnitHarness {
  final ActorTestKit testKit;
  final ManualClock clock = new ManualClock(1_000);
  final ActorRef<HostMemoryActor.Command> memory;
  final ActorRef<IommuUnitActor.Command> unit;
  final TestProbe<UnitReply> replies;
  final TestProbe<UnitSnapshotted> snapshots;
  final TestProbe<UnitStats> stats;
  final TestProbe<BurstTranslated> bursts;
  final TestProbe<HostMemoryActor.GuestMemoryReply> memoryReplies;
  final TestProbe<HostMemoryActor.MemoryReport> reports;

  UnitHarness(ActorTestKit testKit, IommuUnitSettings settings) {
    this(testKit, settings, Map.of());
  }

  UnitHarness(
      ActorTestKit testKit,
      IommuUnitSettings settings,
      Map<Integer, ActorRef<MsiBankActor.Command>> banks) {
    this(testKit, settings, banks, null, null);
  }

  /** A unit whose invalidation stream runs with {@code pipeline}, timed by {@code wallNanos}. */
  UnitHarness(
      ActorTestKit testKit,
      IommuUnitSettings settings,
      InvalidationPipelineSettings pipeline,
      LongSupplier wallNanos) {
    this(testKit, settings, Map.of(), pipeline, wallNanos);
  }

  private UnitHarness(
      ActorTestKit testKit,
      IommuUnitSettings settings,
      Map<Integer, ActorRef<MsiBankActor.Command>> banks,
      InvalidationPipelineSettings pipeline,
      LongSupplier wallNanos) {
    this.testKit = testKit;
    this.memory =
        testKit.spawn(HostMemoryActor.create(Fixtures.topology(List.of(settings)), FaultInjector.NONE));
    this.unit =
        testKit.spawn(
            pipeline == null
                ? IommuUnitActor.create(
                    0, settings, CostModel.defaults(), clock, 42, FaultInjector.NONE, memory, banks)
                : IommuUnitActor.create(
                    0, settings, CostModel.defaults(), clock, 42, FaultInjector.NONE, memory, banks,
                    pipeline, FaultPipelineSettings.defaults(), wallNanos));
    this.replies = testKit.createTestProbe();
    this.snapshots = testKit.createTestProbe();
    this.stats = testKit.createTestProbe();
    this.bursts = testKit.createTestProbe();
    this.memoryReplies = testKit.createTestProbe();
    this.reports = testKit.createTestProbe();
  }

  GuestMemoryLayout vm(int vmId, long bytes) {
    memory.tell(new HostMemoryActor.AllocateGuestMemory(vmId, bytes, PageSize.SIZE_2M,
        memoryReplies.getRef()));
    GuestMemoryLayout layout =
        memoryReplies.expectMessageClass(HostMemoryActor.GuestMemoryAllocated.class).layout();
    // The harness plays the fd: what it maps into domains is pinned, as an fd pins before it maps
    // (a VM's DMA to an unpinned frame is UNPINNED_FRAME).
    memory.tell(new HostMemoryActor.PinsChanged(vmId, layout.userVaBase(), layout.bytes(), true));
    return layout;
  }

  HostMemoryActor.MemoryReport report() {
    memory.tell(new HostMemoryActor.GetReport(reports.getRef()));
    return reports.receiveMessage();
  }

  UnitSnapshotted snapshot() {
    unit.tell(new GetSnapshot(snapshots.getRef()));
    return snapshots.receiveMessage();
  }

  UnitStats stats() {
    unit.tell(new GetStats(stats.getRef()));
    return stats.receiveMessage();
  }

  IommuUnitActor.InvalidationStats invalidationStats() {
    TestProbe<IommuUnitActor.InvalidationStats> probe = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.GetInvalidationStats(probe.getRef()));
    return probe.receiveMessage();
  }

  /** Sends {@code command} (whose replyTo is {@link #replies}) and expects Done. */
  void ok(IommuUnitActor.Command command) {
    unit.tell(command);
    replies.expectMessage(Done.INSTANCE);
  }

  <T extends UnitReply> T ask(IommuUnitActor.Command command, Class<T> reply) {
    unit.tell(command);
    return replies.expectMessageClass(reply);
  }

  /** Expects the refusal and that neither the snapshot nor the stats changed. */
  Refused refused(Errno errno, IommuUnitActor.Command command) {
    UnitSnapshotted before = snapshot();
    UnitStats statsBefore = stats();
    unit.tell(command);
    Refused r = replies.expectMessageClass(Refused.class);
    assertEquals(errno, r.errno(), r::message);
    assertEquals(before, snapshot());
    assertEquals(statsBefore, stats());
    return r;
  }

  TestProbe<DeviceActor.Command> device(int rid, int group, boolean ats) {
    TestProbe<DeviceActor.Command> probe = testKit.createTestProbe();
    ok(new RegisterDevice(rid, -1, group, ats ? 8 : 0, ats, ats, probe.getRef(), replies.getRef()));
    return probe;
  }

  TestProbe<DeviceActor.Command> pamuDevice(int rid, int group, int liodn) {
    TestProbe<DeviceActor.Command> probe = testKit.createTestProbe();
    ok(new RegisterDevice(rid, liodn, group, 0, false, false, probe.getRef(), replies.getRef()));
    return probe;
  }

  DmaOwnerClaimed claim(int rid, int ictx, int vm, TestProbe<DeviceActor.Command> device) {
    DmaOwnerClaimed c = ask(new ClaimDmaOwner(rid, ictx, vm, replies.getRef()), DmaOwnerClaimed.class);
    device.expectMessage(new DeviceActor.OwnerChanged(vm, ictx));
    return c;
  }

  int pagingDomain() {
    return ask(new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAGING, false, false, 0,
        replies.getRef()), IommuUnitActor.DomainAllocated.class).domainId();
  }

  void map(int domain, long iova, long hpa, long length, int prot) {
    Mapped m = ask(new MapRange(domain, iova, new long[] {hpa}, new long[] {length}, prot,
        replies.getRef()), Mapped.class);
    assertEquals(length, m.bytes());
  }

  void attach(int rid, int pasid, int domain, ActorRef<FaultEvent> sink) {
    ok(new Attach(rid, pasid, domain, sink, 0L, replies.getRef()));
  }

  record Attached(TestProbe<DeviceActor.Command> device, int domain, GuestMemoryLayout vm) {}

  /**
   * VM 1 (2 MiB) owns {@code rid} (claimed as context 5) and its first {@code pages} 4 KiB pages
   * are mapped at {@code iova} in a new paging domain attached without a PASID: the state in which
   * the device's DMA translates, so that an unmap or detach has something to invalidate.
   */
  Attached attachedDevice(int rid, int group, boolean ats, long iova, int pages, int access,
      ActorRef<FaultEvent> sink) {
    GuestMemoryLayout layout = vm(1, 2 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> probe = device(rid, group, ats);
    claim(rid, 5, 1, probe);
    int domain = pagingDomain();
    map(domain, iova, layout.pageHpa(0), pages * 4096L, access);
    attach(rid, IommuUnitActor.NO_PASID, domain, sink);
    return new Attached(probe, domain, layout);
  }

  BurstTranslated burst(int rid, int pasid, long[] iovas, int access, boolean ats) {
    int[] lengths = new int[iovas.length];
    int[] acc = new int[iovas.length];
    java.util.Arrays.fill(lengths, 64);
    java.util.Arrays.fill(acc, access);
    unit.tell(new TranslateBurst(rid, pasid, iovas, lengths, acc, ats, 7, bursts.getRef()));
    return bursts.receiveMessage();
  }
}
