package io.iommulab.actors.unit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.FlushCompleted;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.actors.unit.UnitHarness.Attached;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ManualTime;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Deferred mode (the flush queue): early answers, flushes at 256 entries or 10 ms of manual
 * time, stale translations legal until FlushCompleted and impossible after it.
 */
class DeferredInvalidationTest {
  static final ActorTestKit testKit =
      ActorTestKit.create(ManualTime.config().withFallback(ConfigFactory.load("application-test")));
  static final ManualTime manualTime = ManualTime.get(testKit.system());

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int NIC = 0x0100;
  private static final int GPU = 0x0200;
  private static final long IOVA = 0x10_0000L;
  private static final long PAGE = 4096;
  private static final int NONE = IommuUnitActor.NO_PASID;
  private static final long MS = 1_000_000;

  private final UnitHarness h = new UnitHarness(testKit, Fixtures.vtd("vtd0"),
      InvalidationPipelineSettings.deferred(), null);
  private final TestProbe<FlushCompleted> flushes = testKit.createTestProbe();

  private static byte status(FaultReason reason) {
    return (byte) (reason.ordinal() + 1);
  }

  /** Waits until the stream's flush queue holds {@code n} requests (its timer is armed then). */
  private void awaitFlushQueue(int n) {
    h.replies.awaitAssert(() -> {
      assertEquals(n, h.invalidationStats().flushQueueOccupancy());
      return null;
    });
  }

  @Test
  void anUnmapIsAnsweredBeforeItsFlushTheIotlbMayHitUntilTheFlushAndNeverAfter() {
    Attached attached = h.attachedDevice(NIC, 1, false, IOVA, 1, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> nic = attached.device();
    int d = attached.domain();
    GuestMemoryLayout vm = attached.vm();
    assertEquals(vm.pageHpa(0), h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false).hpas()[0]);

    h.unit.tell(new UnmapRange(d, IOVA, PAGE, flushes.getRef(), h.replies.getRef()));
    Unmapped u = h.replies.expectMessageClass(Unmapped.class);
    assertTrue(u.deferred());
    assertEquals(PAGE, u.bytes());
    assertTrue(u.flushToken() > 0);
    // The page table no longer has the page, the IOTLB still does: legal until the flush.
    long hits = h.stats().iotlbHits();
    BurstTranslated stale = h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false);
    assertEquals(0, stale.status()[0]);
    assertEquals(vm.pageHpa(0), stale.hpas()[0]);
    assertEquals(hits + 1, h.stats().iotlbHits());

    awaitFlushQueue(1);
    h.clock.advance(9 * MS);
    manualTime.expectNoMessageFor(Duration.ofMillis(9), flushes);
    h.clock.advance(MS);
    manualTime.timePasses(Duration.ofMillis(1));
    FlushCompleted f = flushes.receiveMessage();
    assertEquals(0, f.unitId());
    assertArrayEquals(new long[] {u.flushToken()}, f.tokens());
    assertEquals(status(FaultReason.NOT_PRESENT),
        h.burst(NIC, NONE, new long[] {IOVA}, Access.READ, false).status()[0]);

    InvalidationStats s = h.invalidationStats();
    assertEquals(1, s.flushesTimeout());
    assertEquals(0, s.deferredUnflushed());
    assertEquals(0, s.flushQueueOccupancy());
    assertTrue(s.modeledLatencyMaxNs() >= 10 * MS, "the modeled wait for the flush is counted");
  }

  @Test
  void twoHundredFiftySixEntriesFlushAtOnceAndEveryTokenIsReportedOnceToItsOwnListener() {
    Attached attached = h.attachedDevice(NIC, 1, false, IOVA, 256, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> nic = attached.device();
    int d = attached.domain();
    TestProbe<FlushCompleted> other = testKit.createTestProbe();
    List<TestProbe<UnitReply>> issuers = List.of(testKit.createTestProbe(), testKit.createTestProbe());
    for (int p = 0; p < 256; p++) {
      h.unit.tell(new UnmapRange(d, IOVA + p * PAGE, PAGE, p % 2 == 0 ? flushes.getRef()
          : other.getRef(), issuers.get(p % 2).getRef()));
    }
    TreeSet<Long> tokensA = new TreeSet<>();
    TreeSet<Long> tokensB = new TreeSet<>();
    for (int p = 0; p < 256; p++) {
      Unmapped u = issuers.get(p % 2).expectMessageClass(Unmapped.class);
      assertTrue(u.deferred());
      (p % 2 == 0 ? tokensA : tokensB).add(u.flushToken());
    }
    // No time passes: the 256th entry fills the queue.
    FlushCompleted a = flushes.receiveMessage();
    FlushCompleted b = other.receiveMessage();
    assertEquals(128, a.tokens().length);
    assertEquals(tokensA, toSet(a.tokens()));
    assertEquals(tokensB, toSet(b.tokens()));
    InvalidationStats s = h.invalidationStats();
    assertEquals(1, s.flushesFull());
    assertEquals(1, s.batches());
    assertEquals(256, s.rangesIn());
    assertEquals(1, s.rangesOut(), "256 adjacent pages, one range");
    assertEquals(2, s.descriptors(), "one page-selective IOTLB descriptor and the Wait");
    flushes.expectNoMessage(Duration.ofMillis(10));
  }

  private static TreeSet<Long> toSet(long[] tokens) {
    TreeSet<Long> s = new TreeSet<>();
    for (long t : tokens) {
      assertTrue(s.add(t), "token " + t + " twice");
    }
    return s;
  }

  @Test
  void theUnitNeverReportsAFlushWhoseDeviceAcknowledgementIsMissing() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 2, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    h.unit.tell(new UnmapRange(d, IOVA, PAGE, flushes.getRef(), h.replies.getRef()));
    long token = h.replies.expectMessageClass(Unmapped.class).flushToken();
    awaitFlushQueue(1);
    manualTime.timePasses(Duration.ofMillis(10));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    manualTime.expectNoMessageFor(Duration.ofMillis(50), flushes);
    assertEquals(1, h.invalidationStats().deferredUnflushed());
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    assertArrayEquals(new long[] {token}, flushes.receiveMessage().tokens());
  }

  @Test
  void aDetachFlushesTheQueueAtOnceAndTheQueuedUnmapsCompleteWithIt() {
    Attached attached = h.attachedDevice(NIC, 1, false, IOVA, 2, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> nic = attached.device();
    int d = attached.domain();
    h.unit.tell(new UnmapRange(d, IOVA, PAGE, flushes.getRef(), h.replies.getRef()));
    long token = h.replies.expectMessageClass(Unmapped.class).flushToken();
    TestProbe<UnitReply> detacher = testKit.createTestProbe();
    // No time passes: the detach's issuer waits, so its request flushes the queue.
    h.unit.tell(new Detach(NIC, NONE, detacher.getRef()));
    detacher.expectMessage(IommuUnitActor.Done.INSTANCE);
    assertArrayEquals(new long[] {token}, flushes.receiveMessage().tokens());
    InvalidationStats s = h.invalidationStats();
    assertEquals(1, s.flushesUrgent());
    assertEquals(0, s.flushesTimeout());
  }

  @Test
  void anUnmapWithNoOneToTellOfItsFlushIsAnsweredAfterItLikeAStrictOne() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 2, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    h.unit.tell(UnmapRange.strict(d, IOVA, PAGE, h.replies.getRef()));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    h.replies.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    Unmapped u = h.replies.expectMessageClass(Unmapped.class);
    assertEquals(false, u.deferred());
    assertEquals(0, u.flushToken());
  }

  @Test
  void deferredTokensCompleteInIncreasingOrderAcrossFlushes() {
    Attached attached = h.attachedDevice(NIC, 1, false, IOVA, 8, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> nic = attached.device();
    int d = attached.domain();
    List<Long> tokens = new ArrayList<>();
    for (int round = 0; round < 3; round++) {
      for (int p = 0; p < 2; p++) {
        long iova = IOVA + (2 * round + p) * PAGE;
        h.unit.tell(new UnmapRange(d, iova, PAGE, flushes.getRef(), h.replies.getRef()));
        tokens.add(h.replies.expectMessageClass(Unmapped.class).flushToken());
      }
      awaitFlushQueue(2);
      manualTime.timePasses(Duration.ofMillis(10));
      long[] done = flushes.receiveMessage().tokens();
      assertArrayEquals(new long[] {tokens.get(2 * round), tokens.get(2 * round + 1)}, done);
    }
    assertEquals(3, h.invalidationStats().flushesTimeout());
  }
}
