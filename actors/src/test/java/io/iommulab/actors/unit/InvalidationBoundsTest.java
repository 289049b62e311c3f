package io.iommulab.actors.unit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.FlushCompleted;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.Refused;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.actors.unit.UnitHarness.Attached;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * A flood of invalidations against a device that does not acknowledge: the requests held stay
 * within the stated bounds (one batch executing, the batching stage, the ingress queue, the
 * parking deque), the rest are refused EBUSY before anything changes, and nothing admitted is
 * ever lost.
 */
class InvalidationBoundsTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int GPU = 0x0200;
  private static final long IOVA = 0x10_0000L;
  private static final long PAGE = 4096;
  private static final int NONE = IommuUnitActor.NO_PASID;
  private static final int INGRESS = 2;
  private static final int MAX_PARKED = 3;
  private static final int MAX_BATCH = 1;
  private static final int FLUSH_ENTRIES = 2;
  private static final int FLOOD = 20;

  private static InvalidationPipelineSettings tiny(Mode mode) {
    return new InvalidationPipelineSettings(mode, INGRESS, MAX_PARKED, MAX_BATCH, FLUSH_ENTRIES,
        10_000_000, true);
  }

  private UnitHarness h;
  private TestProbe<DeviceActor.Command> gpu;
  private int domain;

  private void setUp(Mode mode) {
    h = new UnitHarness(testKit, Fixtures.vtd("vtd0"), tiny(mode), null);
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 2 * FLOOD, Access.READ_WRITE, null);
    gpu = attached.device();
    domain = attached.domain();
  }

  private InvalidationStats settled(int commands) {
    h.replies.awaitAssert(() -> {
      InvalidationStats s = h.invalidationStats();
      assertEquals(commands, s.pending() + s.refusedBusy(), "every command admitted or refused");
      return null;
    });
    return h.invalidationStats();
  }

  @Test
  void aStrictFloodHoldsAtMostTheStatedBoundsRefusesTheRestUnchangedAndLosesNothing() {
    setUp(Mode.STRICT);
    h.unit.tell(UnmapRange.strict(domain, IOVA, PAGE, h.replies.getRef()));
    AtcInvalidate stalled = gpu.expectMessageClass(AtcInvalidate.class);
    for (int p = 1; p < FLOOD; p++) {
      h.unit.tell(UnmapRange.strict(domain, IOVA + p * PAGE, PAGE, h.replies.getRef()));
    }
    InvalidationStats s = settled(FLOOD);
    int bound = 1 + (MAX_BATCH + 1) + INGRESS + MAX_PARKED;
    assertTrue(s.pending() <= bound, "held " + s.pending() + " > " + bound);
    assertTrue(s.ingressDepth() <= INGRESS);
    assertTrue(s.parkedHighWater() <= MAX_PARKED && s.parkedHighWater() > 0, s.toString());
    int accepted = s.pending();
    int refused = FLOOD - accepted;
    assertEquals(refused, s.refusedBusy());
    // The refusals are the only answers so far; the pages they name are still mapped.
    List<Integer> stillMapped = new ArrayList<>();
    for (int k = 0; k < refused; k++) {
      assertEquals(Errno.EBUSY, h.replies.expectMessageClass(Refused.class).errno());
    }
    for (int p = 0; p < FLOOD; p++) {
      if (h.burst(GPU, NONE, new long[] {IOVA + p * PAGE}, Access.READ, false).status()[0] == 0) {
        stillMapped.add(p);
      }
    }
    assertEquals(refused, stillMapped.size(), "exactly the refused unmaps left their pages mapped");
    h.refused(Errno.EBUSY, UnmapRange.strict(domain, IOVA + FLOOD * PAGE, PAGE, h.replies.getRef()));

    // The device acknowledges: every admitted unmap is answered exactly once, in admission
    // order (one request per batch with max-batch 1).
    h.unit.tell(new AtcInvalidationAcked(GPU, stalled.token()));
    assertEquals(PAGE, h.replies.expectMessageClass(Unmapped.class).bytes());
    long lastAddress = IOVA;
    for (int k = 1; k < accepted; k++) {
      AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
      assertTrue(inv.address() > lastAddress, "FIFO admission");
      lastAddress = inv.address();
      h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
      assertEquals(PAGE, h.replies.expectMessageClass(Unmapped.class).bytes());
    }
    h.replies.expectNoMessage(Duration.ofMillis(10));
    InvalidationStats after = h.invalidationStats();
    assertEquals(0, after.pending());
    assertEquals(0, after.parked());
    assertEquals(accepted, after.completed());

    // Retried, the refused unmaps go through (the others find nothing left to unmap).
    for (int p = 0; p < FLOOD; p++) {
      h.unit.tell(UnmapRange.strict(domain, IOVA + p * PAGE, PAGE, h.replies.getRef()));
      if (stillMapped.contains(p)) {
        AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
        h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
        assertEquals(PAGE, h.replies.expectMessageClass(Unmapped.class).bytes());
      } else {
        assertEquals(0, h.replies.expectMessageClass(Unmapped.class).bytes());
      }
    }
  }

  @Test
  void aDeferredFloodIsAnsweredOnlyAsItIsAdmittedSoItSlowsToTheFlushRate() {
    setUp(Mode.DEFERRED);
    TestProbe<FlushCompleted> flushes = testKit.createTestProbe();
    // Two entries fill the flush queue: that batch executes and waits for the GPU.
    for (int p = 0; p < 2; p++) {
      h.unit.tell(new UnmapRange(domain, IOVA + p * PAGE, PAGE, flushes.getRef(),
          h.replies.getRef()));
      assertTrue(h.replies.expectMessageClass(Unmapped.class).deferred());
    }
    AtcInvalidate stalled = gpu.expectMessageClass(AtcInvalidate.class);
    for (int p = 2; p < FLOOD; p++) {
      h.unit.tell(new UnmapRange(domain, IOVA + p * PAGE, PAGE, flushes.getRef(),
          h.replies.getRef()));
    }
    InvalidationStats s = settled(FLOOD);
    assertTrue(s.pending() <= 2 + FLUSH_ENTRIES + INGRESS + MAX_PARKED, s.toString());
    int accepted = s.pending();
    int admitted = accepted - s.parked();
    assertTrue(s.parked() > 0, s.toString());
    assertEquals(admitted, s.deferredUnflushed());
    // Admitted: answered early. Refused: EBUSY. Parked: not answered yet.
    int early = 0;
    int busy = 0;
    for (int k = 0; k < (admitted - 2) + s.refusedBusy(); k++) {
      UnitReply r = h.replies.receiveMessage();
      if (r instanceof Unmapped u && u.deferred()) {
        early++;
      } else if (r instanceof Refused x && x.errno() == Errno.EBUSY) {
        busy++;
      }
    }
    assertEquals(admitted - 2, early);
    assertEquals(s.refusedBusy(), busy);
    h.replies.expectNoMessage(Duration.ofMillis(10));

    // Each flush is one batch: one device-TLB invalidation, one FlushCompleted. Parked requests
    // are admitted (and only then answered) as the queue drains; every token is flushed once.
    h.unit.tell(new AtcInvalidationAcked(GPU, stalled.token()));
    List<Long> flushed = new ArrayList<>();
    for (long t : flushes.receiveMessage().tokens()) {
      flushed.add(t);
    }
    while (flushed.size() < accepted) {
      AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
      h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
      for (long t : flushes.receiveMessage().tokens()) {
        flushed.add(t);
      }
    }
    assertEquals(accepted, flushed.stream().distinct().count());
    for (int k = admitted; k < accepted; k++) {
      assertTrue(h.replies.expectMessageClass(Unmapped.class).deferred());
    }
    assertEquals(0, h.invalidationStats().deferredUnflushed());
  }
}
