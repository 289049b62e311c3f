package io.iommulab.actors.fd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.Wire;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The modes' replies and snapshot lines round-trip through jackson-cbor, and a session of mode
 * commands (PASIDs, the VFIO container's errors, a mode step through the fd's own operations)
 * runs with every message serialized.
 */
class ModeMessagesSerializeTest {
  static final ActorTestKit testKit = Wire.serializingKit();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  @Test
  void everyReplyOfTheModesRoundTrips() {
    List<Object> messages =
        List.of(
            new IoasidFdActor.VfioIoasId(3),
            new IoasidFdActor.VfioExtension(1),
            new IoasidFdActor.VfioIommuInfo(3, 0x40201000L, List.of(new IovaRange(0, 0xfedfffffL)), 65534),
            new IoasidFdActor.VfioDmaUnmapped(1L << 21),
            new IoasidFdActor.PamuAttr(0, (16L << 20) - 1, 16),
            new IoasidFdActor.PamuMsiBankCount(3),
            new IoasidFdActor.PamuMsiBankMapped(12L << 20),
            new IoasidFdActor.SvaPasid(1),
            new IoasidFdActor.SvaBound(5, 0, 7),
            new IoasidFdActor.SoftNestUnmapped(4096),
            new IoasidFdActor.HwInfo(1, 24, 0, 20, 0x40201000L, 48, List.of(), true),
            new IoasidFdActor.Snapshotted(
                new FdSnapshot(1, UapiSettings.AccountMode.MM, List.of(), List.of(), List.of(), List.of(),
                    new FdSnapshot.AccountingSnapshot(100, 0, 0, 0, 0), 0,
                    List.of("vfio-container type=3 compat-ioas=1", "pamu-container unset", "sva pasids={1}"),
                    List.of(), FdSnapshot.UnmapCounters.NONE)));
    for (Object m : messages) {
      Wire.assertRoundTrips(testKit, m);
    }
  }

  @Test
  void aSessionOfModeCommandsRunsWithEveryMessageSerialized() {
    GuestMemoryLayout layout = Fixtures.contiguousGuest(4, 0x7f00_0000_0000L);
    TestProbe<HostMemoryActor.Command> memory = testKit.createTestProbe();
    TestProbe<IoasidFdActor.FdEvent> events = testKit.createTestProbe();
    ActorRef<IoasidFdActor.Command> fd =
        testKit.spawn(IoasidFdActor.create(1, 1, layout, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE,
            memory.ref(), events.ref(), FaultInjector.NONE, new ManualClock(), List.of(0xffe044000L),
            FaultPipelineSettings.defaults()));
    TestProbe<IoasidFdActor.Reply> probe = testKit.createTestProbe();
    fd.tell(new IoasidFdActor.SvaPasidAlloc(probe.ref()));
    assertEquals(new IoasidFdActor.SvaPasid(1), probe.receiveMessage());
    fd.tell(new IoasidFdActor.VfioCheckExtension(ModeUapi.VFIO_TYPE1v2_IOMMU, probe.ref()));
    assertEquals(new IoasidFdActor.VfioExtension(1), probe.receiveMessage());
    fd.tell(new IoasidFdActor.VfioSetIommu(ModeUapi.VFIO_TYPE1v2_IOMMU, probe.ref()));
    assertTrue(probe.receiveMessage() instanceof IoasidFdActor.Refused); // no group: ENODEV
    fd.tell(new IoasidFdActor.IoasAlloc(0, probe.ref()));
    assertEquals(new IoasidFdActor.IoasAllocated(1), probe.receiveMessage());
    fd.tell(new IoasidFdActor.VfioIoas(ModeUapi.VFIO_IOAS_SET, 1, probe.ref()));
    assertEquals(new IoasidFdActor.VfioIoasId(1), probe.receiveMessage());
    fd.tell(new IoasidFdActor.VfioSetIommu(ModeUapi.VFIO_TYPE1v2_IOMMU, probe.ref()));
    assertEquals(IoasidFdActor.Done.INSTANCE, probe.receiveMessage());
    fd.tell(new IoasidFdActor.VfioMapDma(ModeUapi.VFIO_DMA_MAP_FLAG_READ, 0x7f00_0000_0000L, 0x10_0000, 1L << 20,
        probe.ref()));
    assertEquals(IoasidFdActor.Done.INSTANCE, probe.receiveMessage()); // a step through the fd's own IOAS_MAP
    fd.tell(new IoasidFdActor.VfioUnmapDma(ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL, 0, 0, probe.ref()));
    assertEquals(new IoasidFdActor.VfioDmaUnmapped(1L << 20), probe.receiveMessage());
    fd.tell(new IoasidFdActor.Close(probe.ref()));
    assertTrue(probe.receiveMessage() instanceof IoasidFdActor.Closed);
  }
}
