package io.iommulab.actors.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * One real unit actor (with its fault pipeline), real fd actors, and probes standing in for the
 * devices and the VMs. Devices are registered at the unit with PRI; each fd binds its devices and
 * attaches them to one HWPT_PAGING whose FAULT queue receives their page requests. The test
 * plays the devices: it sends {@link IommuUnitActor.ReportPageRequest} to the unit as a PRI
 * function would.
 */
final class PipelineHarness {
  static final Duration WAIT = Duration.ofSeconds(20);

  /** A fake wall clock: the pipeline measures wall latency with it; it ticks 1 µs a read. */
  static final class FakeWall implements LongSupplier {
    final AtomicLong now = new AtomicLong(1_000_000);

    @Override
    public long getAsLong() {
      return now.addAndGet(1_000);
    }
  }

  /** One fd with its bound devices. */
  static final class Fd {
    final int vmId;
    final ActorRef<IoasidFdActor.Command> ref;
    final TestProbe<IoasidFdActor.Reply> replies;
    final TestProbe<IoasidFdActor.FdEvent> events;
    final List<Integer> rids = new ArrayList<>();
    final List<Integer> devIds = new ArrayList<>();
    int ioasId;
    int faultId;
    int hwptId;

    Fd(int vmId, ActorRef<IoasidFdActor.Command> ref, TestProbe<IoasidFdActor.Reply> replies,
        TestProbe<IoasidFdActor.FdEvent> events) {
      this.vmId = vmId;
      this.ref = ref;
      this.replies = replies;
      this.events = events;
    }

    <T extends IoasidFdActor.Reply> T ask(IoasidFdActor.Command c, Class<T> reply) {
      ref.tell(c);
      IoasidFdActor.Reply r = replies.receiveMessage(WAIT);
      assertTrue(reply.isInstance(r), "expected " + reply.getSimpleName() + ", got " + r);
      return reply.cast(r);
    }

    IoasidFdActor.FaultStats faultStats() {
      return ask(new IoasidFdActor.GetFaultStats(replies.getRef()), IoasidFdActor.FaultStats.class);
    }

    IoasidFdActor.FaultRecords read(int records) {
      return ask(new IoasidFdActor.FaultRead(faultId, records * Uapi.HWPT_PGFAULT_LEN,
          replies.getRef()), IoasidFdActor.FaultRecords.class);
    }
  }

  final ActorTestKit kit;
  final ManualClock clock = new ManualClock(1_000);
  final FakeWall wall = new FakeWall();
  final ActorRef<HostMemoryActor.Command> memory;
  final ActorRef<IommuUnitActor.Command> unit;
  final int unitId = 0;
  final UapiSettings uapi;
  final FaultPipelineSettings pipeline;
  final TestProbe<IommuUnitActor.UnitReply> unitReplies;
  final Map<Integer, DeviceLog> devices = new java.util.HashMap<>();
  private static final java.util.concurrent.atomic.AtomicInteger NEXT_CTX =
      new java.util.concurrent.atomic.AtomicInteger(100);

  PipelineHarness(ActorTestKit kit, IommuUnitSettings unitSettings, FaultPipelineSettings pipeline,
      UapiSettings uapi) {
    this.kit = kit;
    this.uapi = uapi;
    this.pipeline = pipeline;
    this.memory = kit.spawn(HostMemoryActor.create(
        Fixtures.topology(List.of(unitSettings)), FaultInjector.NONE));
    this.unit = kit.spawn(IommuUnitActor.create(unitId, unitSettings, CostModel.defaults(), clock,
        7, FaultInjector.NONE, memory, Map.of(), InvalidationPipelineSettings.strict(), pipeline, wall));
    this.unitReplies = kit.createTestProbe();
  }

  /**
   * What a device stand-in saw: page responses counted by code and, when {@code keep}, kept in
   * order (test-side state, written by the stub actor, read by the test after the pipeline
   * settled).
   */
  static final class DeviceLog {
    final boolean keep;
    final java.util.concurrent.ConcurrentLinkedQueue<DeviceActor.PageResponded> responses =
        new java.util.concurrent.ConcurrentLinkedQueue<>();
    final AtomicLong success = new AtomicLong();
    final AtomicLong invalid = new AtomicLong();
    final AtomicLong failure = new AtomicLong();
    final int rid;
    ActorRef<DeviceActor.Command> ref;

    DeviceLog(int rid, boolean keep) {
      this.rid = rid;
      this.keep = keep;
    }

    long responded() {
      return success.get() + invalid.get() + failure.get();
    }

    org.apache.pekko.actor.typed.Behavior<DeviceActor.Command> behavior() {
      return org.apache.pekko.actor.typed.javadsl.Behaviors.receive(DeviceActor.Command.class)
          .onMessage(DeviceActor.PageResponded.class, r -> {
            switch (r.code()) {
              case SUCCESS -> success.incrementAndGet();
              case INVALID -> invalid.incrementAndGet();
              case FAILURE -> failure.incrementAndGet();
            }
            if (keep) {
              responses.add(r);
            }
            return org.apache.pekko.actor.typed.javadsl.Behaviors.same();
          })
          .onMessage(DeviceActor.AtcInvalidate.class, m -> {
            // A function with ATS acknowledges device-TLB invalidations (it caches nothing here).
            m.replyTo().tell(new IommuUnitActor.AtcInvalidationAcked(rid, m.token()));
            return org.apache.pekko.actor.typed.javadsl.Behaviors.same();
          })
          .onAnyMessage(m -> org.apache.pekko.actor.typed.javadsl.Behaviors.same())
          .build();
    }
  }

  /** Registers {@code rid} (its own group) at the unit with ATS, PASID and PRI. */
  DeviceLog device(int rid, boolean keepResponses) {
    DeviceLog log = new DeviceLog(rid, keepResponses);
    log.ref = kit.spawn(log.behavior());
    unit.tell(new IommuUnitActor.RegisterDevice(rid, -1, rid, 8, true, true, log.ref,
        unitReplies.getRef()));
    unitReplies.expectMessage(WAIT, IommuUnitActor.Done.INSTANCE);
    devices.put(rid, log);
    return log;
  }

  GuestMemoryLayout layout(int vmId) {
    TestProbe<HostMemoryActor.GuestMemoryReply> r = kit.createTestProbe();
    memory.tell(new HostMemoryActor.AllocateGuestMemory(vmId, 16 * Fixtures.MIB, PageSize.SIZE_2M,
        r.getRef()));
    return r.expectMessageClass(HostMemoryActor.GuestMemoryAllocated.class, WAIT).layout();
  }

  /**
   * An fd of VM {@code vmId} that binds {@code rids} (registered first), allocates an IOAS, a
   * FAULT and a HWPT_PAGING with it, and attaches every device.
   */
  Fd fd(int vmId, List<Integer> rids) {
    Fd fd = boundFd(vmId, rids);
    ActorRef<IoasidFdActor.Reply> replies = fd.replies.getRef();
    fd.ioasId = fd.ask(new IoasidFdActor.IoasAlloc(0, replies),
        IoasidFdActor.IoasAllocated.class).outIoasId();
    fd.faultId = fd.ask(new IoasidFdActor.FaultQueueAlloc(0, replies),
        IoasidFdActor.FaultQueueAllocated.class).outFaultId();
    fd.hwptId = fd.ask(new IoasidFdActor.HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID,
        fd.devIds.get(0), fd.ioasId, Uapi.HWPT_DATA_NONE, 0, fd.faultId, replies),
        IoasidFdActor.HwptAllocated.class).outHwptId();
    for (int devId : fd.devIds) {
      fd.ask(new IoasidFdActor.DeviceAttach(devId, fd.hwptId, replies),
          IoasidFdActor.DeviceAttached.class);
    }
    return fd;
  }

  /** An fd of VM {@code vmId} that binds {@code rids} (registered first) and nothing else. */
  Fd boundFd(int vmId, List<Integer> rids) {
    TestProbe<IoasidFdActor.Reply> replies = kit.createTestProbe();
    TestProbe<IoasidFdActor.FdEvent> events = kit.createTestProbe();
    ActorRef<IoasidFdActor.Command> ref = kit.spawn(IoasidFdActor.create(NEXT_CTX.getAndIncrement(),
        vmId, layout(vmId), uapi, IoasidFdActor.Credentials.NONE, memory, events.getRef(),
        FaultInjector.NONE, clock, List.of(), pipeline));
    Fd fd = new Fd(vmId, ref, replies, events);
    for (int rid : rids) {
      DeviceLog dev = devices.containsKey(rid) ? devices.get(rid) : device(rid, false);
      IoasidFdActor.DeviceBound b = fd.ask(new IoasidFdActor.DeviceBind(
          new IoasidFdActor.DeviceHandle("dev" + rid, rid, -1, rid, unitId, unit, dev.ref),
          replies.getRef()), IoasidFdActor.DeviceBound.class);
      fd.rids.add(rid);
      fd.devIds.add(b.devId());
    }
    return fd;
  }

  /** A page request of {@code rid} (no PASID), as its PRI interface sends it. */
  void pageRequest(int rid, int group, long addr, boolean last) {
    unit.tell(new IommuUnitActor.ReportPageRequest(rid, IommuUnitActor.NO_PASID, group, addr,
        io.iommulab.hardware.Access.READ, last));
  }

  IommuUnitActor.FaultPipelineStats faultStats() {
    TestProbe<IommuUnitActor.FaultPipelineStats> p = kit.createTestProbe();
    unit.tell(new IommuUnitActor.GetFaultStats(p.getRef()));
    return p.receiveMessage(WAIT);
  }

  /** Waits until the unit has published {@code published} records and none is in flight. */
  IommuUnitActor.FaultPipelineStats settled(long published) {
    long deadline = System.nanoTime() + WAIT.toNanos();
    IommuUnitActor.FaultPipelineStats s = faultStats();
    while (s.published() < published || s.inFlight() != 0) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("pipeline did not settle: " + s);
      }
      s = faultStats();
    }
    IommuUnitActor.FaultPipelineStats done = s;
    assertEquals(published, done.published(), done::toString);
    assertTrue(done.conserved(), () -> "not conserved: " + done);
    return done;
  }
}
