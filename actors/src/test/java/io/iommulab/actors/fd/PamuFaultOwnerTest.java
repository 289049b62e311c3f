package io.iommulab.actors.fd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * A PAMU access violation through the fault pipeline: the unit's model disables the LIODN, the
 * record travels the pipeline to the fd that owns the device, and the fd tells its VM once
 * ({@code FaultPolicy}: PAMU → disabled, owner told; later LIODN-disabled faults are recorded).
 */
class PamuFaultOwnerTest {

  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final Duration WAIT = Duration.ofSeconds(10);
  private static final int RID = 0x300;
  private static final long APERTURE = 2 * Fixtures.MIB;
  private static final long WINDOW = APERTURE / 8;

  @Test
  void aPamuViolationDisablesTheLiodnAndTellsTheOwnerOnce() {
    PamuUnitSettings pamu = Fixtures.pamu("pamu0");
    ActorRef<HostMemoryActor.Command> memory =
        testKit.spawn(HostMemoryActor.create(Fixtures.topology(List.of(pamu)), FaultInjector.NONE));
    ManualClock clock = new ManualClock(1_000);
    ActorRef<IommuUnitActor.Command> unit = testKit.spawn(IommuUnitActor.create(0, pamu,
        CostModel.defaults(), clock, 1, FaultInjector.NONE, memory, Map.of(),
        InvalidationPipelineSettings.strict(), FaultPipelineSettings.defaults(), () -> 0L));
    TestProbe<IommuUnitActor.UnitReply> replies = testKit.createTestProbe();
    TestProbe<DeviceActor.Command> device = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.RegisterDevice(RID, 7, 1, 0, false, false, device.getRef(),
        replies.getRef()));
    replies.expectMessage(WAIT, IommuUnitActor.Done.INSTANCE);

    TestProbe<HostMemoryActor.GuestMemoryReply> mem = testKit.createTestProbe();
    memory.tell(new HostMemoryActor.AllocateGuestMemory(3, 4 * Fixtures.MIB, PageSize.SIZE_2M,
        mem.getRef()));
    GuestMemoryLayout vm = mem.expectMessageClass(HostMemoryActor.GuestMemoryAllocated.class, WAIT)
        .layout();

    // The owner: an fd of VM 3 that bound the device (PAMU cannot isolate MSIs).
    TestProbe<IoasidFdActor.Reply> fdReplies = testKit.createTestProbe();
    TestProbe<IoasidFdActor.FdEvent> vmEvents = testKit.createTestProbe();
    ActorRef<IoasidFdActor.Command> fd = testKit.spawn(IoasidFdActor.create(9, 3, vm,
        UapiSettings.defaults().withAllowUnsafeInterrupts(true), IoasidFdActor.Credentials.NONE,
        memory, vmEvents.getRef(), FaultInjector.NONE, clock, List.of(), FaultPipelineSettings.defaults()));
    fd.tell(new IoasidFdActor.DeviceBind(new IoasidFdActor.DeviceHandle("dpaa", RID, 7, 1, 0, unit,
        device.getRef()), fdReplies.getRef()));
    int devId = fdReplies.expectMessageClass(IoasidFdActor.DeviceBound.class, WAIT).devId();
    // A PAMU cannot enforce cache coherency: KVM is told first.
    vmEvents.expectMessageClass(IoasidFdActor.NonCoherentDmaAppeared.class, WAIT);

    // VFIO-PAMU attaches the LIODN (not an fd HWPT); its fault sink is the fd's.
    ActorRef<FaultEvent> sink = testKit.spawn(Behaviors.receive(FaultEvent.class)
        .onAnyMessage(e -> {
          fd.tell(new IoasidFdActor.FaultEventReceived(e));
          return Behaviors.same();
        })
        .build());
    unit.tell(new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAMU, false, false, 0,
        replies.getRef()));
    int d = replies.expectMessageClass(IommuUnitActor.DomainAllocated.class, WAIT).domainId();
    unit.tell(new IommuUnitActor.PamuSetGeometry(d, 0, APERTURE, replies.getRef()));
    replies.expectMessage(WAIT, IommuUnitActor.Done.INSTANCE);
    unit.tell(new IommuUnitActor.PamuSetWindowCount(d, 8, replies.getRef()));
    replies.expectMessage(WAIT, IommuUnitActor.Done.INSTANCE);
    unit.tell(new IommuUnitActor.Attach(RID, IommuUnitActor.NO_PASID, d, sink, 0L, replies.getRef()));
    replies.expectMessage(WAIT, IommuUnitActor.Done.INSTANCE);
    unit.tell(new IommuUnitActor.MapRange(d, 0, new long[] {vm.pageHpa(0)},
        new long[] {2 * WINDOW}, Access.READ_WRITE, replies.getRef()));
    replies.expectMessageClass(IommuUnitActor.Mapped.class, WAIT);

    TestProbe<IommuUnitActor.BurstTranslated> bursts = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.TranslateBurst(RID, IommuUnitActor.NO_PASID,
        new long[] {3 * WINDOW}, new int[] {64}, new int[] {Access.READ}, false, 1,
        bursts.getRef()));
    assertEquals((byte) (FaultReason.WINDOW_DISABLED.ordinal() + 1),
        bursts.receiveMessage(WAIT).status()[0]);
    unit.tell(new IommuUnitActor.TranslateBurst(RID, IommuUnitActor.NO_PASID, new long[] {0x40},
        new int[] {64}, new int[] {Access.READ}, false, 2, bursts.getRef()));
    assertEquals((byte) (FaultReason.LIODN_DISABLED.ordinal() + 1),
        bursts.receiveMessage(WAIT).status()[0], "the violation disabled the LIODN");

    IoasidFdActor.DeviceDmaDisabled told =
        vmEvents.expectMessageClass(IoasidFdActor.DeviceDmaDisabled.class, WAIT);
    assertEquals(new IoasidFdActor.DeviceDmaDisabled(9, devId, "dpaa",
        FaultReason.WINDOW_DISABLED.name(), 3 * WINDOW), told);

    TestProbe<IommuUnitActor.FaultPipelineStats> stats = testKit.createTestProbe();
    IommuUnitActor.FaultPipelineStats s;
    long deadline = System.nanoTime() + WAIT.toNanos();
    do {
      unit.tell(new IommuUnitActor.GetFaultStats(stats.getRef()));
      s = stats.receiveMessage(WAIT);
      assertTrue(System.nanoTime() < deadline, "pipeline did not settle: " + s);
    } while (s.delivered() < 2);
    assertEquals(2, s.publishedFaults());
    assertTrue(s.conserved());
    fd.tell(new IoasidFdActor.GetFaultStats(fdReplies.getRef()));
    IoasidFdActor.FaultStats fs = fdReplies.expectMessageClass(IoasidFdActor.FaultStats.class, WAIT);
    assertEquals(1, fs.dmaFaultsOwnerTold());
    assertEquals(1, fs.dmaFaultsRecorded(), "the LIODN-disabled fault after it is recorded only");
    vmEvents.expectNoMessage(Duration.ofMillis(50));
  }
}
