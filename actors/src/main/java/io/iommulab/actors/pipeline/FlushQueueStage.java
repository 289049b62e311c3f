package io.iommulab.actors.pipeline;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;
import org.apache.pekko.japi.function.Effect;
import org.apache.pekko.stream.Attributes;
import org.apache.pekko.stream.FlowShape;
import org.apache.pekko.stream.Inlet;
import org.apache.pekko.stream.Outlet;
import org.apache.pekko.stream.stage.AbstractInHandler;
import org.apache.pekko.stream.stage.AbstractOutHandler;
import org.apache.pekko.stream.stage.GraphStage;
import org.apache.pekko.stream.stage.GraphStageLogic;
import org.apache.pekko.stream.stage.TimerGraphStageLogic;

/**
 * The deferred-mode flush queue of one unit, as the DMA API's per-domain flush queue
 * ({@code drivers/iommu/dma-iommu.c}: {@code queue_iova}, {@code fq_flush_timeout}): requests
 * accumulate; the queue is flushed (one {@link PendingBatch} emitted) when
 *
 * <ul>
 *   <li>it holds {@code entries} requests ({@link FlushReason#FULL}; {@code fq_full});
 *   <li>{@code timeout} passed since its first entry ({@link FlushReason#TIMEOUT}; the timer is
 *       armed when an entry enters an empty queue, as {@code fq_timer_on} arms it, not free
 *       running);
 *   <li>a {@link InvalidationRequest#synchronous() synchronous} request entered it ({@link
 *       FlushReason#URGENT}): its issuer waits, and flushing the queue with it only retires the
 *       other entries earlier.
 * </ul>
 *
 * A flush that is due while downstream is still executing the previous batch is emitted as soon
 * as downstream pulls, with whatever the queue holds by then (never more than {@code entries}).
 *
 * <p>Why not {@code groupedWithin(entries, timeout)}: its timer runs at a fixed period from
 * materialization, so an entry may be flushed after anything between 0 and {@code timeout}, and an
 * entry after an idle period is pushed at once; and it has no way to flush early for a waiting
 * issuer. Both matter here: the timeout is the window in which stale translations stay usable.
 *
 * <p>Bounds: at most {@code entries} requests are held; when full and downstream is busy the stage
 * stops pulling, which backpressures the ingress queue.
 *
 * <p>{@code occupancy} is told the number of queued requests after every change (an entry queued,
 * the queue flushed), on the stream's thread, after the timer was armed: the unit's
 * deferred-queue gauge, and what tests wait for before they move manual time.
 */
final class FlushQueueStage extends GraphStage<FlowShape<InvalidationRequest, PendingBatch>> {

  private static final Object TIMER = "fq-timer";

  private final Inlet<InvalidationRequest> in = Inlet.create("FlushQueue.in");
  private final Outlet<PendingBatch> out = Outlet.create("FlushQueue.out");
  private final FlowShape<InvalidationRequest, PendingBatch> shape = FlowShape.of(in, out);
  private final int entries;
  private final Duration timeout;
  private final IntConsumer occupancy;

  FlushQueueStage(int entries, Duration timeout, IntConsumer occupancy) {
    if (entries < 1) {
      throw new IllegalArgumentException("entries must be positive, got " + entries);
    }
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive, got " + timeout);
    }
    this.entries = entries;
    this.timeout = timeout;
    this.occupancy = occupancy;
  }

  @Override
  public FlowShape<InvalidationRequest, PendingBatch> shape() {
    return shape;
  }

  @Override
  public GraphStageLogic createLogic(Attributes inheritedAttributes) {
    return new Logic();
  }

  private final class Logic extends TimerGraphStageLogic {
    private List<InvalidationRequest> queue = new ArrayList<>();
    private boolean due;
    private boolean urgent;

    Logic() {
      super(shape);
      setHandler(in, new AbstractInHandler() {
        @Override
        public void onPush() {
          InvalidationRequest r = grab(in);
          if (queue.isEmpty()) {
            scheduleOnce(TIMER, timeout);
          }
          queue.add(r);
          urgent |= r.synchronous();
          tryFlush();
          if (queue.size() < entries && !hasBeenPulled(in)) {
            pull(in);
          }
          occupancy.accept(queue.size());
        }

        @Override
        public void onUpstreamFinish() {
          if (queue.isEmpty()) {
            completeStage();
          } else {
            // Teardown: what is left goes out, then the stage completes.
            Effect complete = Logic.this::completeStage;
            emit(out, take(reason()), complete);
          }
        }
      });
      setHandler(out, new AbstractOutHandler() {
        @Override
        public void onPull() {
          if (tryFlush()) {
            occupancy.accept(0);
          }
        }
      });
    }

    @Override
    public void preStart() {
      pull(in);
    }

    @Override
    public void onTimer(Object key) {
      due = true;
      if (tryFlush()) {
        occupancy.accept(0);
      }
    }

    private FlushReason reason() {
      if (queue.size() >= entries) {
        return FlushReason.FULL;
      }
      return urgent ? FlushReason.URGENT : FlushReason.TIMEOUT;
    }

    /** Flushes if a flush is due and downstream can take it; true if it did. */
    private boolean tryFlush() {
      if (queue.isEmpty() || !isAvailable(out)) {
        return false;
      }
      if (queue.size() >= entries || urgent || due) {
        push(out, take(reason()));
        if (!isClosed(in) && !hasBeenPulled(in)) {
          pull(in);
        }
        return true;
      }
      return false;
    }

    private PendingBatch take(FlushReason reason) {
      PendingBatch b = new PendingBatch(queue, reason);
      queue = new ArrayList<>();
      due = false;
      urgent = false;
      cancelTimer(TIMER);
      return b;
    }
  }
}
