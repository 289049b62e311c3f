package io.iommulab.actors.fd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.Wire;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.ObjectType;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The fd's replies, events and snapshots round-trip through jackson-cbor (what a sharded host
 * would put on the wire), and a short fd session runs with every message serialized.
 */
class FdMessagesSerializeTest {
  static final ActorTestKit testKit = Wire.serializingKit();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  @Test
  void everyKindOfFdMessageRoundTrips() {
    // Commands carry an ActorRef (replyTo), which serializes only inside a send: the session test
    // below sends them with serialize-messages on. Values are checked for equality here.
    IommuUnitActor.UnitInfo info =
        new IommuUnitActor.UnitInfo(0, "vtd0", UnitKind.VTD, 0x40201000L, 48, 0, (1L << 48) - 1, 20, true, true,
            true, true, true, true, List.of(ReservedRegion.VTD_MSI));
    List<Object> messages =
        List.of(
            new IoasidFdActor.Refused(Errno.EBUSY, "busy"),
            IoasidFdActor.Done.INSTANCE,
            new IoasidFdActor.IovaRangesReported(null, 1, 4096, List.of(new IovaRange(0, -1L))),
            new IoasidFdActor.IovaRangesReported(Errno.EMSGSIZE, 3, 4096, List.of()),
            new IoasidFdActor.HwptInvalidated(1, Errno.EINVAL, "entry 1"),
            new IoasidFdActor.FaultRecords(List.of(new HwptPgfault(2, 1, 0, 7, 3, 0x1000, 0, 1)), 40, List.of()),
            new IoasidFdActor.VeventsRead(List.of(new Vevent(0, 5, 0x10, "NOT_PRESENT", 0x2000, 2, 40)), 40),
            new IoasidFdActor.DeviceBound(2, info),
            new IoasidFdActor.Snapshotted(
                new FdSnapshot(1, UapiSettings.AccountMode.USER,
                    List.of(new FdSnapshot.ObjectSnapshot(1, ObjectType.IOAS, 0, "areas=1")), List.of(7), List.of(),
                    List.of(new FdSnapshot.IoasSnapshot(1, 4096,
                        List.of(new FdSnapshot.AreaSnapshot(0x1000, 0x1fff, 1, 0, 3, "MAPPED")),
                        List.of(new FdSnapshot.ReservedSnapshot(0xfee00000L, 0xfeefffffL, "device 2")),
                        List.of(), List.of(3), true)),
                    new FdSnapshot.AccountingSnapshot(100, 1, 1, 0, 1), 0, List.of(), List.of(),
                    FdSnapshot.UnmapCounters.NONE)),
            new IoasidFdActor.NonCoherentDmaAppeared(1, 2, "nic1"),
            new IoasidFdActor.FaultQueueReadable(1, 4),
            new IoasidFdActor.IovaReleased(1, 2, 0x10_0000L, 0x1_0000L),
            new IoasidFdActor.IoasUnmapped(0x1_0000L, 0x1_0000L, 0),
            new IoasidFdActor.FlushReported(
                new IommuUnitActor.FlushCompleted(0, new long[] {4, 5}, 900)),
            new IoasidFdActor.Snapshotted(
                new FdSnapshot(1, UapiSettings.AccountMode.USER, List.of(), List.of(), List.of(),
                    List.of(), new FdSnapshot.AccountingSnapshot(100, 16, 16, 0, 1), 0, List.of(),
                    List.of("ioas 1 [0x100000, 0x10ffff] awaiting 1 flush"),
                    new FdSnapshot.UnmapCounters(1, 0, 0))));
    for (Object m : messages) {
      Wire.assertRoundTrips(testKit, m);
    }
  }

  @Test
  void aSessionRunsWithEveryMessageSerialized() {
    GuestMemoryLayout layout = Fixtures.contiguousGuest(4, 0x7f00_0000_0000L);
    TestProbe<HostMemoryActor.Command> memory = testKit.createTestProbe();
    TestProbe<IoasidFdActor.FdEvent> events = testKit.createTestProbe();
    ActorRef<IoasidFdActor.Command> fd =
        testKit.spawn(IoasidFdActor.create(1, 1, layout, UapiSettings.defaults(), memory.ref(), events.ref(),
            FaultInjector.NONE, new ManualClock()));
    TestProbe<IoasidFdActor.Reply> probe = testKit.createTestProbe();
    fd.tell(new IoasidFdActor.IoasAlloc(0, probe.ref()));
    assertEquals(new IoasidFdActor.IoasAllocated(1), probe.receiveMessage());
    fd.tell(new IoasidFdActor.IoasMap(Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE, 1, 0x7f00_0000_0000L,
        2L << 20, 0, probe.ref()));
    assertTrue(probe.receiveMessage() instanceof IoasidFdActor.IoasMapped);
    fd.tell(new IoasidFdActor.GetSnapshot(probe.ref()));
    assertTrue(probe.receiveMessage() instanceof IoasidFdActor.Snapshotted);
    fd.tell(new IoasidFdActor.Close(probe.ref()));
    assertTrue(probe.receiveMessage() instanceof IoasidFdActor.Closed);
  }
}
