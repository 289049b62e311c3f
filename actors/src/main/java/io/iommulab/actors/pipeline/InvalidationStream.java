package io.iommulab.actors.pipeline;

import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import java.util.function.IntConsumer;
import org.apache.pekko.Done;
import org.apache.pekko.NotUsed;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.KillSwitches;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.UniqueKillSwitch;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The invalidation stream of one IOMMU unit:
 *
 * <pre>
 *   unit actor ──offer──▶ Source.queue(ingress-capacity)      BoundedSourceQueue: offer answers at once
 *                          │                                  (Enqueued | Dropped when full)
 *                          ▼ KillSwitches.single()             torn down when the unit stops
 *                          ▼ batching                          strict:   batch(max-batch)
 *                          │                                   deferred: FlushQueueStage(flush-entries,
 *                          │                                             flush-timeout)
 *                          ▼ map(InvalidationBatch::merge)     merge adjacent ranges, widen, order
 *                          ▼ mapAsync(1, execute)              the unit actor executes the batch on
 *                          │                                   its model; completes after the sync
 *                          │                                   and every device-TLB ack
 *                          ▼ Sink.ignore
 * </pre>
 *
 * <p><b>Batching.</b> Strict mode uses {@code batch}: with no timer, a request reaching an idle
 * stream is issued at once (a strict unmap pays no batching latency); requests arriving while a
 * batch executes aggregate and form the next batch, as commands pile up behind a busy hardware
 * queue. Deferred mode uses {@link FlushQueueStage} (the Linux flush queue: full, timeout after
 * the first entry, or a waiting issuer), because {@code groupedWithin}'s free-running timer and
 * lack of an early flush do not model it.
 *
 * <p><b>Bounds.</b> Every place a request can wait is bounded: the ingress queue ({@code
 * ingress-capacity}), the batching stage ({@code max-batch} aggregated plus the one element
 * Pekko's {@code batch} keeps pending, or {@code flush-entries}), and one batch in execution
 * ({@code mapAsync(1)}: the next batch forms while the previous one executes, a unit has one
 * invalidation queue). The stream is fused (no async boundary), so there are no other buffers. When the batching stage is full it stops pulling, the ingress
 * queue fills, and {@link BoundedSourceQueue#offer} answers {@code Dropped} synchronously: the
 * unit actor then parks the request (see the unit's pipeline), nothing is lost.
 *
 * <p>Merging runs in the stream, off the unit actor; the model is touched only by {@code execute},
 * which must hand the batch to the actor that owns the model.
 */
public final class InvalidationStream {
  private InvalidationStream() {}

  /**
   * A running stream: where the unit offers requests, how it tears the stream down, and when the
   * stream ended (exceptionally if it failed).
   */
  public record Handle(
      BoundedSourceQueue<InvalidationRequest> ingress,
      UniqueKillSwitch killSwitch,
      CompletionStage<Done> done) {}

  /**
   * Materializes the stream of a unit whose largest page-selective mask is {@code
   * maxAddressMask}. {@code execute} is called for one batch at a time; its stage completes when
   * the batch's invalidation has completed. {@code flushQueueOccupancy} (deferred mode only) is
   * told the number of requests in the flush queue after every change, on the stream's thread.
   */
  public static Handle run(
      InvalidationPipelineSettings settings,
      int maxAddressMask,
      Function<InvalidationBatch, CompletionStage<Done>> execute,
      IntConsumer flushQueueOccupancy,
      Materializer materializer) {
    Pair<Pair<BoundedSourceQueue<InvalidationRequest>, UniqueKillSwitch>, CompletionStage<Done>> m =
        Source.<InvalidationRequest>queue(settings.ingressCapacity())
            .viaMat(KillSwitches.single(), Keep.both())
            .via(batching(settings, flushQueueOccupancy))
            .map(p -> InvalidationBatch.merge(p.requests(), p.reason(), maxAddressMask))
            .mapAsync(1, execute::apply)
            .toMat(Sink.ignore(), Keep.both())
            .run(materializer);
    return new Handle(m.first().first(), m.first().second(), m.second());
  }

  /** The batching stage of a mode: {@code batch} for strict, the flush queue for deferred. */
  static Flow<InvalidationRequest, PendingBatch, NotUsed> batching(
      InvalidationPipelineSettings settings, IntConsumer flushQueueOccupancy) {
    if (settings.mode() == Mode.STRICT) {
      return Flow.<InvalidationRequest>create()
          .batch(settings.maxBatch(), InvalidationStream::first, InvalidationStream::append)
          .map(requests -> new PendingBatch(requests, FlushReason.STRICT));
    }
    return Flow.fromGraph(
        new FlushQueueStage(settings.flushEntries(), Duration.ofNanos(settings.flushTimeoutNs()),
            flushQueueOccupancy));
  }

  private static List<InvalidationRequest> first(InvalidationRequest r) {
    List<InvalidationRequest> l = new ArrayList<>();
    l.add(r);
    return l;
  }

  private static List<InvalidationRequest> append(
      List<InvalidationRequest> l, InvalidationRequest r) {
    l.add(r);
    return l;
  }
}
