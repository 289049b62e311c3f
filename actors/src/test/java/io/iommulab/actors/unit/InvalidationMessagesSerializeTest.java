package io.iommulab.actors.unit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.Wire;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.FlushCompleted;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The invalidation protocol on the wire: with every message serialized before delivery, a
 * deferred unmap, its flush event and the stream's stats round-trip through jackson-cbor, and the
 * stream's own local messages (a batch to execute) are exempt without breaking the pipeline.
 */
class InvalidationMessagesSerializeTest {
  static final ActorTestKit testKit = Wire.serializingKit();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int GPU = 0x0200;
  private static final long IOVA = 0x10_0000L;

  @Test
  void aDeferredUnmapItsFlushEventAndTheStatsRoundTripThroughJacksonCbor() {
    UnitHarness h = new UnitHarness(testKit, Fixtures.vtd("vtd0"),
        InvalidationPipelineSettings.deferred(), null);
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    h.claim(GPU, 5, 1, gpu);
    int d = h.pagingDomain();
    h.map(d, IOVA, vm.pageHpa(0), 4096, Access.READ_WRITE);
    h.attach(GPU, IommuUnitActor.NO_PASID, d, null);
    TestProbe<FlushCompleted> flushes = testKit.createTestProbe();
    h.unit.tell(new UnmapRange(d, IOVA, 4096, flushes.getRef(), h.replies.getRef()));
    Unmapped u = h.replies.expectMessageClass(Unmapped.class);
    assertTrue(u.deferred());
    Wire.assertRoundTrips(testKit, u);
    // The 10 ms flush timer runs on the real scheduler here.
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    FlushCompleted f = flushes.receiveMessage();
    assertEquals(u.flushToken(), f.tokens()[0]);
    Wire.assertRoundTrips(testKit, f);
    InvalidationStats s = h.invalidationStats();
    assertEquals(1, s.completed());
    Wire.assertRoundTrips(testKit, s);
    Wire.assertRoundTrips(testKit, new UnmapRange(d, IOVA, 4096, null, null));
  }
}
