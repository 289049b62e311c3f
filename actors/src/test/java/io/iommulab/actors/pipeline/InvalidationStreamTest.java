package io.iommulab.actors.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import io.iommulab.hardware.cache.Iotlb;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ManualTime;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.QueueOfferResult;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The stream alone, with a fake executor (a probe that receives each batch and the future that
 * completes it) and manual time: the batching rules of both modes and the bounds.
 */
class InvalidationStreamTest {
  static final ActorTestKit testKit =
      ActorTestKit.create(ManualTime.config().withFallback(ConfigFactory.load("application-test")));
  static final ManualTime manualTime = ManualTime.get(testKit.system());

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final long PAGE = 4096;
  private static final long IOVA = 0x10_0000L;

  /** What the fake executor receives. */
  record Executed(InvalidationBatch batch, CompletableFuture<Done> done) {}

  private final TestProbe<Executed> executed = testKit.createTestProbe();
  private final TestProbe<Integer> occupancy = testKit.createTestProbe();
  private InvalidationStream.Handle handle;

  @AfterEach
  void stopStream() {
    if (handle != null) {
      handle.killSwitch().shutdown();
    }
  }

  private InvalidationStream.Handle start(InvalidationPipelineSettings settings) {
    handle =
        InvalidationStream.run(
            settings,
            18,
            batch -> {
              CompletableFuture<Done> f = new CompletableFuture<>();
              executed.getRef().tell(new Executed(batch, f));
              return f;
            },
            n -> occupancy.getRef().tell(n),
            Materializer.matFromSystem(testKit.system()));
    return handle;
  }

  private static InvalidationRequest unmap(long id, boolean synchronous, long page) {
    long iova = IOVA + page * PAGE;
    return new InvalidationRequest(id, synchronous,
        List.of(new IotlbTarget(1, Iotlb.ANY_PASID, iova, iova + PAGE - 1, false, true)),
        List.of(), List.of());
  }

  private static InvalidationPipelineSettings settings(
      Mode mode, int ingress, int maxBatch, int entries) {
    return new InvalidationPipelineSettings(mode, ingress, 0, maxBatch, entries,
        TimeUnit.MILLISECONDS.toNanos(10), true);
  }

  private void offer(InvalidationRequest r) {
    assertEquals(QueueOfferResult.enqueued(), handle.ingress().offer(r));
  }

  private void awaitIngressDrained() {
    executed.awaitAssert(() -> {
      assertEquals(0, handle.ingress().size());
      return null;
    });
  }

  // ---------------------------------------------------------------- strict

  @Test
  void strictModeIssuesARequestReachingAnIdleStreamAtOnceWithoutATimer() {
    start(settings(Mode.STRICT, 16, 256, 256));
    offer(unmap(1, true, 0));
    // No manual time passes: a strict unmap pays no batching latency.
    Executed e = executed.receiveMessage();
    assertEquals(FlushReason.STRICT, e.batch().reason());
    assertArrayEquals(new long[] {1}, e.batch().requestIds());
    e.done().complete(Done.getInstance());
  }

  @Test
  void strictModeMergesWhatArrivesWhileABatchExecutesIntoTheNextBatch() {
    start(settings(Mode.STRICT, 16, 256, 256));
    offer(unmap(1, true, 0));
    Executed first = executed.receiveMessage();
    for (int i = 2; i <= 6; i++) {
      offer(unmap(i, true, i - 1));
    }
    awaitIngressDrained();
    executed.expectNoMessage(Duration.ofMillis(20));
    first.done().complete(Done.getInstance());
    Executed second = executed.receiveMessage();
    assertArrayEquals(new long[] {2, 3, 4, 5, 6}, second.batch().requestIds());
    // Pages 1..5 are adjacent: one range, one descriptor (8 pages at 0x100).
    assertEquals(1, second.batch().rangesOut());
    assertEquals(1, second.batch().iotlb().size());
    second.done().complete(Done.getInstance());
  }

  @Test
  void strictModeNeverPutsMoreThanMaxBatchRequestsInOneBatch() {
    start(settings(Mode.STRICT, 16, 3, 256));
    offer(unmap(1, true, 0));
    Executed first = executed.receiveMessage();
    for (int i = 2; i <= 8; i++) {
      offer(unmap(i, true, i));
    }
    // Pekko's batch holds max-batch aggregated plus one pending element; the ingress the rest.
    executed.awaitAssert(() -> {
      assertEquals(3, handle.ingress().size());
      return null;
    });
    first.done().complete(Done.getInstance());
    List<Long> seen = new ArrayList<>();
    while (seen.size() < 7) {
      Executed e = executed.receiveMessage();
      assertTrue(e.batch().size() <= 3, "batch of " + e.batch().size());
      for (long id : e.batch().requestIds()) {
        seen.add(id);
      }
      e.done().complete(Done.getInstance());
    }
    assertEquals(List.of(2L, 3L, 4L, 5L, 6L, 7L, 8L), seen);
  }

  // ---------------------------------------------------------------- deferred

  @Test
  void deferredModeFlushesTenMillisecondsAfterTheFirstEntryOfAnEmptyQueue() {
    start(settings(Mode.DEFERRED, 16, 256, 256));
    offer(unmap(1, false, 0));
    occupancy.expectMessage(1);
    manualTime.expectNoMessageFor(Duration.ofMillis(9), executed);
    offer(unmap(2, false, 1));
    occupancy.expectMessage(2);
    manualTime.timePasses(Duration.ofMillis(1));
    Executed e = executed.receiveMessage();
    assertEquals(FlushReason.TIMEOUT, e.batch().reason());
    assertArrayEquals(new long[] {1, 2}, e.batch().requestIds());
    occupancy.expectMessage(0);
    e.done().complete(Done.getInstance());

    // The timer is armed by the next first entry, not running at a fixed period.
    manualTime.timePasses(Duration.ofMillis(7));
    offer(unmap(3, false, 2));
    occupancy.expectMessage(1);
    manualTime.expectNoMessageFor(Duration.ofMillis(9), executed);
    manualTime.timePasses(Duration.ofMillis(1));
    Executed next = executed.receiveMessage();
    assertArrayEquals(new long[] {3}, next.batch().requestIds());
    next.done().complete(Done.getInstance());
  }

  @Test
  void deferredModeFlushesAFullQueueAtOnce() {
    start(settings(Mode.DEFERRED, 512, 256, 256));
    for (int i = 1; i <= 256; i++) {
      offer(unmap(i, false, i));
    }
    Executed e = executed.receiveMessage();
    assertEquals(FlushReason.FULL, e.batch().reason());
    assertEquals(256, e.batch().size());
    // 256 adjacent pages: one range after merging.
    assertEquals(256, e.batch().rangesIn());
    assertEquals(1, e.batch().rangesOut());
    e.done().complete(Done.getInstance());
  }

  @Test
  void aWaitingIssuerFlushesTheDeferredQueueAtOnceTakingTheEarlierEntriesAlong() {
    start(settings(Mode.DEFERRED, 16, 256, 256));
    offer(unmap(1, false, 0));
    offer(unmap(2, false, 5));
    occupancy.expectMessage(1);
    occupancy.expectMessage(2);
    offer(unmap(3, true, 9));
    Executed e = executed.receiveMessage();
    assertEquals(FlushReason.URGENT, e.batch().reason());
    assertArrayEquals(new long[] {1, 2, 3}, e.batch().requestIds());
    e.done().complete(Done.getInstance());
  }

  @Test
  void aDueFlushWaitsForTheBatchInExecutionAndThenTakesWhatHasQueued() {
    start(settings(Mode.DEFERRED, 16, 256, 4));
    for (int i = 1; i <= 4; i++) {
      offer(unmap(i, false, 2 * i));
    }
    Executed full = executed.receiveMessage();
    offer(unmap(5, false, 20));
    offer(unmap(6, false, 22));
    // 1, 2, 3, then the 4th fills the queue and flushes it; then 5 and 6 queue up.
    for (int n : new int[] {1, 2, 3, 0, 1, 2}) {
      occupancy.expectMessage(n);
    }
    manualTime.timePasses(Duration.ofMillis(10));
    executed.expectNoMessage(Duration.ofMillis(20));
    full.done().complete(Done.getInstance());
    Executed timed = executed.receiveMessage();
    assertEquals(FlushReason.TIMEOUT, timed.batch().reason());
    assertArrayEquals(new long[] {5, 6}, timed.batch().requestIds());
    timed.done().complete(Done.getInstance());
  }

  // ---------------------------------------------------------------- bounds

  @Test
  void aStalledExecutorFillsTheBoundedBuffersAndTheIngressThenRefusesSynchronouslyAndLosesNothing() {
    int ingress = 4;
    int maxBatch = 2;
    start(settings(Mode.STRICT, ingress, maxBatch, 256));
    offer(unmap(1, true, 0));
    Executed stalled = executed.receiveMessage();
    // The executor never completes: the batching stage fills (max-batch + 1 pending), then the
    // ingress queue. A Dropped answer while the stage may still pull is retried.
    long[] next = {2};
    executed.awaitAssert(() -> {
      while (handle.ingress().offer(unmap(next[0], true, next[0])) == QueueOfferResult.enqueued()) {
        next[0]++;
      }
      assertEquals(ingress, handle.ingress().size());
      assertEquals(1 + (maxBatch + 1) + ingress, next[0] - 1,
          "executing + batching stage + ingress");
      return null;
    });
    long accepted = next[0] - 1;
    assertEquals(QueueOfferResult.dropped(), handle.ingress().offer(unmap(99, true, 99)));
    // Completing the executor lets every accepted request through once, in order.
    stalled.done().complete(Done.getInstance());
    List<Long> seen = new ArrayList<>();
    while (seen.size() < accepted - 1) {
      Executed e = executed.receiveMessage();
      for (long r : e.batch().requestIds()) {
        seen.add(r);
      }
      e.done().complete(Done.getInstance());
    }
    List<Long> expected = new ArrayList<>();
    for (long r = 2; r <= accepted; r++) {
      expected.add(r);
    }
    assertEquals(expected, seen);
    executed.expectNoMessage(Duration.ofMillis(20));
  }

  @Test
  void theKillSwitchCompletesTheStream() throws Exception {
    start(settings(Mode.DEFERRED, 16, 256, 256));
    handle.killSwitch().shutdown();
    assertEquals(Done.getInstance(),
        handle.done().toCompletableFuture().get(3, TimeUnit.SECONDS));
    handle = null;
  }
}
