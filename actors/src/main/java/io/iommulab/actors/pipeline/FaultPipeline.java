package io.iommulab.actors.pipeline;

import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.FaultsPublished;
import io.iommulab.actors.unit.IommuUnitActor.FaultsSettled;
import io.iommulab.actors.unit.IommuUnitActor.PublishedFault;
import io.iommulab.config.FaultPipelineSettings;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import kamon.Kamon;
import kamon.metric.Histogram;
import kamon.tag.TagSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The fault pipeline of one IOMMU unit: the stream that carries every fault record the unit
 * publishes to the iommufd context (fd) owning the record's attach handle.
 *
 * <pre>
 *   unit actor ──offer──▶ fault ingress (BoundedSourceQueue, faultIngressCapacity)  ─┐
 *   unit actor ──offer──▶ page-request ingress (BoundedSourceQueue, prIngressCapacity)─┴▶ merge
 *     ──▶ batch(batchSize)            records accumulate only while downstream is busy
 *     ──▶ split by sink               one sub-batch per fd, records in raised order
 *     ──▶ mapAsyncPartitionedUnordered(parallelism, by sink, ask fd FaultsPublished)
 *                                     at most one batch in flight per fd: per-fd (and so
 *                                     per-device) order end to end; the fd's mailbox holds at
 *                                     most one batch of this unit
 *     ──▶ foreach: settlement ──▶ the unit actor (its counters), metrics
 * </pre>
 *
 * <p>Why {@code batch}, not {@code groupedWithin}: a time window is served by the scheduler's
 * tick (10 ms by default), so at low fault rates every record would wait for it; {@code batch}
 * hands a record on as soon as the stage after it can take one and aggregates only while that
 * stage is busy, so a quiet system delivers each fault at once and a storm pays one message per
 * batch (30 to 60 records a batch in the load-test storm, up to {@code batchSize}).
 *
 * <p>Why one pipeline per unit, not per host: the ingress queues are the unit's own hardware
 * queues (VT-d fault recording registers and page request queue, SMMUv3 EVTQ and PRIQ), so their
 * overflow is per unit and counted there, exactly, as the hardware's PFO / PRO / EVTQ overflow;
 * per-device order needs only per-unit order (a device sits behind one unit); the stream's
 * lifetime is the unit actor's (its materializer is bound to the actor); and one slow fd can
 * only hold up the units that feed it, never the whole host.
 *
 * <p>Bounds: records held anywhere in the pipeline are at most the two ingress capacities, plus
 * one batch being aggregated, plus {@code parallelism} batches buffered or in flight (each at most
 * {@code batchSize}). Everything else is lost at the ingress and counted by the unit. An fd that
 * does not acknowledge a batch within {@code ackTimeout} has its batch counted lost
 * (unacknowledged).
 *
 * <p>Threads and shared state: {@link #offerFault} and {@link #offerPageRequest} are called by
 * the unit actor only; {@link BoundedSourceQueue#offer} is synchronous and thread-safe by design,
 * and is the only state this class shares across threads. Every count lives in the unit actor,
 * which learns each batch's fate from the {@code settled} callback (it sends itself a message).
 * Stream stages keep their own state (metric handles) on the stream's thread. No locks, no
 * blocking; the ask's continuation runs on a direct executor (no thread hop on a 2-CPU machine).
 *
 * <p>Metrics (Kamon, tagged by unit and, where an fd answered, tenant — never per actor):
 * {@code iommulab.fault.batch.size} (unit), {@code iommulab.fault.latency.modeled-ns} and {@code iommulab.fault.latency.wall-ns} (unit,
 * tenant: publish to the fd's acknowledgement of the record's batch, the latter only with a wall
 * clock).
 */
public final class FaultPipeline {

  /** A wall clock that measures nothing: wall-clock latency is not recorded. */
  public static final LongSupplier NO_WALL_CLOCK = () -> 0L;

  /** Runs a cheap continuation on the completing thread. */
  private static final Executor DIRECT = Runnable::run;

  /** What became of one batch's records (markers not counted), for the unit's counters. */
  public record Settlement(
      int records, int delivered, int lostQueueFull, int lostHandleGone, int lostUnacknowledged) {}

  /** Records of one sink, in raised order: one message to one fd. */
  private record Batch(ActorRef<FaultEvent> sink, List<PublishedFault> records) {}

  private final BoundedSourceQueue<PublishedFault> faults;
  private final BoundedSourceQueue<PublishedFault> pageRequests;

  private FaultPipeline(
      BoundedSourceQueue<PublishedFault> faults, BoundedSourceQueue<PublishedFault> pageRequests) {
    this.faults = faults;
    this.pageRequests = pageRequests;
  }

  /**
   * Materializes the pipeline of unit {@code unitId} ({@code unitName}) with {@code materializer}
   * (bind it to the unit actor, so the stream stops with it). {@code settled} is called once per
   * batch, on a stream thread, with what became of its records.
   */
  public static FaultPipeline start(
      int unitId,
      String unitName,
      FaultPipelineSettings settings,
      Materializer materializer,
      Scheduler scheduler,
      LongSupplier wallNanos,
      Consumer<Settlement> settled) {
    Metrics metrics = new Metrics(unitName, settings, wallNanos);
    Pair<BoundedSourceQueue<PublishedFault>, BoundedSourceQueue<PublishedFault>> queues =
        Source.<PublishedFault>queue(settings.faultIngressCapacity())
            .mergeMat(
                Source.<PublishedFault>queue(settings.pageRequestIngressCapacity()), Keep.both())
            .batch(settings.batchSize(), FaultPipeline::seed, FaultPipeline::add)
            .mapConcat(FaultPipeline::bySink)
            .mapAsyncPartitionedUnordered(
                settings.parallelism(),
                Batch::sink,
                (batch, sink) -> deliver(unitId, batch, settings, scheduler))
            .to(
                Sink.foreach(
                    done -> {
                      metrics.record(done.first(), done.second());
                      settled.accept(settlement(done.first(), done.second()));
                    }))
            .run(materializer);
    return new FaultPipeline(queues.first(), queues.second());
  }

  /** Offers an unrecoverable fault; false when the ingress is full (or the stream stopped). */
  public boolean offerFault(PublishedFault record) {
    return faults.offer(record).isEnqueued();
  }

  /** Offers a page request (or a partials-discarded marker); false when the ingress is full. */
  public boolean offerPageRequest(PublishedFault record) {
    return pageRequests.offer(record).isEnqueued();
  }

  /**
   * Whether the stream has stopped (the unit is stopping, or a stage failed): every later offer
   * fails, and the unit counts those records lost at the ingress.
   */
  public boolean stopped() {
    return faults.isCompleted() || pageRequests.isCompleted();
  }

  /** Records in the fault ingress now. */
  public int faultIngressDepth() {
    return faults.size();
  }

  /** Records in the page-request ingress now. */
  public int pageRequestIngressDepth() {
    return pageRequests.size();
  }

  // ---------------------------------------------------------------- stages

  private static List<PublishedFault> seed(PublishedFault first) {
    List<PublishedFault> l = new ArrayList<>(32);
    l.add(first);
    return l;
  }

  private static List<PublishedFault> add(List<PublishedFault> batch, PublishedFault next) {
    batch.add(next);
    return batch;
  }

  /** One batch per sink, each in the order of the records; one sink (the usual case) copies nothing. */
  private static List<Batch> bySink(List<PublishedFault> records) {
    ActorRef<FaultEvent> first = records.get(0).sink();
    int n = records.size();
    int i = 1;
    while (i < n && sameSink(records.get(i).sink(), first)) {
      i++;
    }
    if (i == n) {
      return List.of(new Batch(first, records));
    }
    Map<ActorRef<FaultEvent>, List<PublishedFault>> bySink = new LinkedHashMap<>();
    for (PublishedFault p : records) {
      bySink.computeIfAbsent(p.sink(), k -> new ArrayList<>()).add(p);
    }
    List<Batch> out = new ArrayList<>(bySink.size());
    for (Map.Entry<ActorRef<FaultEvent>, List<PublishedFault>> e : bySink.entrySet()) {
      out.add(new Batch(e.getKey(), e.getValue()));
    }
    return out;
  }

  private static boolean sameSink(ActorRef<FaultEvent> a, ActorRef<FaultEvent> b) {
    return a == b || a.equals(b);
  }

  /** Asks the fd to take the batch; a timeout or failure settles it as unacknowledged. */
  private static CompletionStage<Pair<Batch, FaultsSettled>> deliver(
      int unitId, Batch batch, FaultPipelineSettings settings, Scheduler scheduler) {
    CompletionStage<FaultsSettled> ask =
        AskPattern.ask(
            batch.sink(),
            (ActorRef<FaultsSettled> replyTo) -> new FaultsPublished(unitId, batch.records(), replyTo),
            settings.ackTimeout(),
            scheduler);
    return ask.handleAsync((ack, failure) -> Pair.create(batch, ack), DIRECT);
  }

  private static int records(Batch batch) {
    int n = 0;
    for (PublishedFault p : batch.records()) {
      if (!p.discardsPartials()) {
        n++;
      }
    }
    return n;
  }

  private static Settlement settlement(Batch batch, FaultsSettled ack) {
    int n = records(batch);
    if (ack == null) {
      return new Settlement(n, 0, 0, 0, n);
    }
    int accounted = ack.delivered() + ack.lostQueueFull() + ack.lostHandleGone();
    if (accounted != n) {
      // The fd must account for every record it was given: a mismatch is a bug there.
      throw new IllegalStateException(
          "fd settled " + accounted + " records of a batch of " + n + ": " + ack);
    }
    return new Settlement(n, ack.delivered(), ack.lostQueueFull(), ack.lostHandleGone(), 0);
  }

  /** Metric handles, used on the stream's thread only. */
  private static final class Metrics {
    final String unit;
    final FaultPipelineSettings settings;
    final LongSupplier wallNanos;
    final Histogram batchSize;
    final Map<Integer, Histogram> modeled = new HashMap<>();
    final Map<Integer, Histogram> wall = new HashMap<>();

    Metrics(String unit, FaultPipelineSettings settings, LongSupplier wallNanos) {
      this.unit = unit;
      this.settings = settings;
      this.wallNanos = wallNanos;
      this.batchSize = Kamon.histogram("iommulab.fault.batch.size").withTag("unit", unit);
    }

    /** By VM id, so the tenant tag is built once per VM, not once per batch. */
    private Histogram histogram(Map<Integer, Histogram> cache, String name, int vmId) {
      return cache.computeIfAbsent(
          vmId,
          v -> Kamon.histogram(name)
              .withTags(TagSet.of("unit", unit).withTag("tenant", settings.tenantOf(v))));
    }

    void record(Batch batch, FaultsSettled ack) {
      batchSize.record(batch.records().size());
      if (ack == null) {
        return;
      }
      Histogram m = histogram(modeled, "iommulab.fault.latency.modeled-ns", ack.vmId());
      boolean clock = wallNanos != NO_WALL_CLOCK;
      Histogram w = clock ? histogram(wall, "iommulab.fault.latency.wall-ns", ack.vmId()) : null;
      long now = clock ? wallNanos.getAsLong() : 0;
      for (PublishedFault p : batch.records()) {
        if (p.discardsPartials()) {
          continue;
        }
        m.record(Math.max(0, p.modeledLatencyNs()));
        if (w != null) {
          w.record(Math.max(0, now - p.publishedWallNs()));
        }
      }
    }
  }
}
