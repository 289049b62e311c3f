package io.iommulab.actors.unit;

import io.iommulab.actors.pipeline.FlushReason;
import io.iommulab.actors.pipeline.InvalidationBatch;
import io.iommulab.actors.pipeline.InvalidationRequest;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.actors.pipeline.InvalidationStream;
import io.iommulab.actors.unit.IommuUnitActor.Command;
import io.iommulab.actors.unit.IommuUnitActor.ExecuteBatch;
import io.iommulab.actors.unit.IommuUnitActor.FlushCompleted;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStreamEnded;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.iommu.Domain;
import io.iommulab.hardware.iommu.IommuUnit;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;
import kamon.Kamon;
import kamon.metric.Counter;
import kamon.metric.Gauge;
import kamon.metric.Histogram;
import kamon.metric.MeasurementUnit;
import kamon.metric.RangeSampler;
import kamon.tag.TagSet;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.QueueOfferResult;

/**
 * The unit actor's side of its invalidation stream ({@link InvalidationStream}): admission of
 * requests into the bounded ingress queue, the requests in flight and their issuers, execution
 * of the merged batches the stream hands back ({@link ExecuteBatch}) against the unit's model
 * through a {@link QueueExecutor}, and completion: a strict issuer is answered, a deferred issuer
 * is sent {@link FlushCompleted}. Confined to the unit actor, which owns the model: the stream
 * batches and merges, only this class (on the actor's thread) touches the IOTLB and the queue.
 *
 * <h2>Ordering</h2>
 *
 * The command handler changes the page table first, then submits the request, so the request
 * executes after the change: no walk can refill the IOTLB with the removed entry once the batch
 * has run. Between the two, a translation may still be served from an IOTLB entry or a device's
 * ATC: that is the in-flight window real hardware has too. A strict issuer is answered only when
 * the batch holding its request completed (the sync, and every device acknowledgement), so after
 * its reply no cached translation of its range exists. A device attached to the domain after
 * the request was made may have filled its ATC from the stale IOTLB entry: a batch therefore
 * re-derives the device TLBs of every changed range when it executes ({@link
 * InvalidationBatch#rescan()}) and invalidates those too; devices attached when the request was
 * made are in the request already (one that detached meanwhile may still hold entries).
 *
 * <h2>Bounds and the full-ingress policy</h2>
 *
 * Requests live in: the ingress queue ({@code ingress-capacity}), the batching stage ({@code
 * max-batch} + 1 or {@code flush-entries}), the batch executing (one), and the parking deque
 * ({@code max-parked}); {@link #pending()} is their sum and never exceeds the sum of the bounds. When
 * the ingress queue is full ({@code offer} answers Dropped), the request is <em>parked</em>, in
 * arrival order (a new request joins the parked ones while any is parked, so admission stays
 * FIFO), and admitted when the stream has drained: every time it hands over a batch and every
 * time a batch completes. An issuer whose request is parked waits: a strict issuer for its flush
 * anyway, a deferred issuer for its early answer, which is sent on admission (so a flood of
 * deferred unmaps slows down to the flush rate instead of growing a queue). When {@code
 * max-parked} requests are parked, {@link #canAccept()} is false and the handler refuses the
 * command with EBUSY <em>before</em> it changes anything. Nothing is ever dropped.
 *
 * <h2>Latency</h2>
 *
 * Per request: modeled, from the command's modeled time to the modeled completion of the batch's
 * sync (the queue's busy-until, so queueing behind earlier batches is included, and in deferred
 * mode the wait for the flush as far as the modeled clock moved); wall-clock, from the {@code
 * wallNanos} the edge handed in (never read here otherwise).
 *
 * <h2>Metrics</h2>
 *
 * Kamon, tagged by unit (and the reason or tenant where noted), never per actor:
 * {@code iommulab.invalidation.queue-depth} (range sampler: admitted, not yet executing),
 * {@code .parked} (gauge), {@code .deferred-occupancy} (range sampler: deferred unmaps answered
 * and not yet flushed), {@code .flush-queue-occupancy} (gauge: requests in the deferred flush
 * queue, updated by the stream), {@code .batch-size} (requests per batch), {@code .merged-ranges} (ranges
 * per batch after merging), {@code .ranges-merged-away} (counter), {@code .batch-descriptors},
 * {@code .flushes} (counter, tag {@code reason}: strict, full, timeout, urgent), {@code
 * .refused-busy} (counter), {@code .latency.modeled} and {@code .latency.wall} (histograms in ns,
 * tags {@code mode} and {@code tenant}: the tenant class of the VM whose device the invalidation
 * concerns, as the fault pipeline names it, or {@code unknown}), {@code .stale-hits} (counter, tag
 * {@code verdict}: in-window, violation).
 */
final class InvalidationPipeline {

  /** Builds the request once its id is known and whether its issuer waits for the flush. */
  @FunctionalInterface
  interface Build {
    InvalidationRequest build(long id, boolean synchronous);
  }

  /** One request in flight, and who waits for it. Confined to the actor. */
  private static final class Pending {
    final InvalidationRequest request;
    final long modeledStart;
    final long wallStart;
    final int tenant;
    /** Strict issuer: called with the modeled latency. Null for a deferred one. */
    final LongConsumer flushed;
    /** Deferred issuer: told of the flush; answered early with the token on admission. */
    final ActorRef<FlushCompleted> flushTo;
    final LongConsumer admitted;

    Pending(InvalidationRequest request, long modeledStart, long wallStart, int tenant,
        LongConsumer flushed, ActorRef<FlushCompleted> flushTo, LongConsumer admitted) {
      this.request = request;
      this.modeledStart = modeledStart;
      this.wallStart = wallStart;
      this.tenant = tenant;
      this.flushed = flushed;
      this.flushTo = flushTo;
      this.admitted = admitted;
    }

    boolean deferred() {
      return flushTo != null;
    }
  }

  private final int unitId;
  private final String name;
  private final InvalidationPipelineSettings settings;
  private final IommuUnit unit;
  private final QueueExecutor executor;
  private final ModeledClock clock;
  private final LongSupplier wallNanos;
  /** The tenant tag of a VM id (bounded: tenant classes, as the fault pipeline's). */
  private final java.util.function.IntFunction<String> tenantOf;
  private final InvalidationStream.Handle stream;

  /**
   * Admitted into the stream and not completed, in admission order: the stream keeps that order
   * (a FIFO queue, order-keeping batching, one batch at a time), so every batch completes the
   * oldest requests in flight.
   */
  private final ArrayDeque<Pending> inFlight = new ArrayDeque<>();
  /** Waiting for room in the ingress queue, in arrival order. */
  private final ArrayDeque<Pending> parked = new ArrayDeque<>();

  private long nextId = 1;
  private long waitToken = 1;
  private boolean stopping;

  private long requests;
  private long batches;
  private long rangesIn;
  private long rangesOut;
  private int parkedHighWater;
  private int deferredUnflushed;
  private long refusedBusy;
  private int largestBatch;
  private long completedRequests;
  private long modeledSum;
  private long modeledMax;
  private long wallSum;
  private long wallMax;
  private long staleInWindow;
  private long staleViolations;
  private final long[] flushes = new long[FlushReason.values().length];

  private final RangeSampler depthSampler;
  private final Gauge parkedGauge;
  private final RangeSampler deferredSampler;
  private final Histogram batchSize;
  private final Histogram mergedRanges;
  private final Counter mergedAway;
  private final Histogram batchDescriptors;
  private final Counter[] flushCounters = new Counter[FlushReason.values().length];
  private final Counter refusedCounter;
  private final Gauge flushQueueGauge;
  private final Counter staleInWindowCounter;
  private final Counter staleViolationCounter;
  /** Requests in the deferred flush queue: written by the stream's thread, read for stats. */
  private volatile int flushQueueOccupancy;
  /** Latency histograms by tenant (a VM id; 0 unknown), resolved once per tenant. */
  private Histogram[] modeledLatency = new Histogram[64];
  private Histogram[] wallLatency = new Histogram[64];

  /**
   * Starts the unit's stream: materialized with a materializer bound to the actor, so it stops
   * with the unit (and {@link #stop()} kills it first, from PostStop).
   */
  InvalidationPipeline(
      ActorContext<Command> context,
      int unitId,
      String name,
      InvalidationPipelineSettings settings,
      IommuUnit unit,
      QueueExecutor executor,
      ModeledClock clock,
      LongSupplier wallNanos,
      java.util.function.IntFunction<String> tenantOf) {
    this.tenantOf = tenantOf;
    this.unitId = unitId;
    this.name = name;
    this.settings = settings;
    this.unit = unit;
    this.executor = executor;
    this.clock = clock;
    this.wallNanos = wallNanos;

    TagSet tags = TagSet.of("unit", name);
    this.depthSampler = Kamon.rangeSampler("iommulab.invalidation.queue-depth").withTags(tags);
    this.parkedGauge = Kamon.gauge("iommulab.invalidation.parked").withTags(tags);
    this.deferredSampler =
        Kamon.rangeSampler("iommulab.invalidation.deferred-occupancy").withTags(tags);
    this.batchSize = Kamon.histogram("iommulab.invalidation.batch-size").withTags(tags);
    this.mergedRanges = Kamon.histogram("iommulab.invalidation.merged-ranges").withTags(tags);
    this.mergedAway = Kamon.counter("iommulab.invalidation.ranges-merged-away").withTags(tags);
    this.batchDescriptors =
        Kamon.histogram("iommulab.invalidation.batch-descriptors").withTags(tags);
    for (FlushReason r : FlushReason.values()) {
      flushCounters[r.ordinal()] =
          Kamon.counter("iommulab.invalidation.flushes").withTags(tags.withTag("reason", r.tag()));
    }
    this.refusedCounter = Kamon.counter("iommulab.invalidation.refused-busy").withTags(tags);
    this.flushQueueGauge =
        Kamon.gauge("iommulab.invalidation.flush-queue-occupancy").withTags(tags);
    this.staleInWindowCounter =
        Kamon.counter("iommulab.invalidation.stale-hits").withTags(tags.withTag("verdict", "in-window"));
    this.staleViolationCounter =
        Kamon.counter("iommulab.invalidation.stale-hits").withTags(tags.withTag("verdict", "violation"));

    ActorRef<Command> self = context.getSelf();
    Gauge fqGauge = flushQueueGauge;
    this.stream =
        InvalidationStream.run(
            settings,
            unit.settings().maxAddressMask(),
            batch -> {
              CompletableFuture<Done> executed = new CompletableFuture<>();
              self.tell(new ExecuteBatch(batch, executed));
              return executed;
            },
            occupancy -> {
              flushQueueOccupancy = occupancy;
              fqGauge.update(occupancy);
            },
            Materializer.createMaterializer(context));
    context.pipeToSelf(stream.done(), (done, failure) -> new InvalidationStreamEnded(failure));
  }

  Mode mode() {
    return settings.mode();
  }

  // ---------------------------------------------------------------- admission

  /**
   * Whether a request made now would be admitted or parked. When false the handler must refuse
   * its command (EBUSY) before changing anything, and count it ({@link #refused()}).
   */
  boolean canAccept() {
    // Admit what the stream has made room for since the last batch event: EBUSY only when the
    // stream is really saturated now.
    drainParked();
    if (parked.size() < settings.maxParked()) {
      return true;
    }
    // Only the stream takes from the ingress queue concurrently: its size can only shrink
    // between this check and the offer.
    return parked.isEmpty() && stream.ingress().size() < settings.ingressCapacity();
  }

  void refused() {
    refusedBusy++;
    refusedCounter.increment();
  }

  /**
   * A request whose issuer waits for its flush (strict mode; in deferred mode a detach, replace,
   * user invalidation or an unmap with no one to tell): {@code flushed} is called with its modeled
   * latency, from its admission to its completion, once every targeted cache has dropped its
   * entries. The pipeline reads the clock once per request, at admission: an issuer that read it
   * again would count whatever pause fell between the two reads (a GC, a preempted thread on a
   * busy host) as modeled time.
   */
  void submit(Build build, int tenant, LongConsumer flushed) {
    admit(build.build(nextId++, true), tenant, flushed, null, null);
  }

  /**
   * A deferred unmap: {@code admitted} is called with its flush token as soon as it is in the
   * stream (at once, or when it leaves the parking deque); {@link FlushCompleted} with the token
   * goes to {@code flushTo} when its flush completed. Deferred mode only.
   */
  void submitDeferred(
      Build build, int tenant, ActorRef<FlushCompleted> flushTo, LongConsumer admitted) {
    if (settings.mode() != Mode.DEFERRED || flushTo == null) {
      throw new IllegalStateException("a deferred request on a " + settings.mode() + " unit");
    }
    admit(build.build(nextId++, false), tenant, null, flushTo, admitted);
  }

  private void admit(
      InvalidationRequest request, int tenant, LongConsumer flushed,
      ActorRef<FlushCompleted> flushTo, LongConsumer admitted) {
    requests++;
    Pending p = new Pending(request, clock.nanos(), wall(), tenant, flushed, flushTo, admitted);
    // The stream may have made room since the last batch event: admit the parked ones first.
    drainParked();
    if (!parked.isEmpty() || !offer(p)) {
      if (parked.size() >= settings.maxParked()) {
        throw new IllegalStateException(
            "invalidation request admitted past max-parked: the handler must check canAccept");
      }
      parked.addLast(p);
      parkedHighWater = Math.max(parkedHighWater, parked.size());
      parkedGauge.update(parked.size());
    }
  }

  /** Offers to the ingress queue: true when enqueued, false when full. */
  private boolean offer(Pending p) {
    QueueOfferResult r = stream.ingress().offer(p.request);
    if (r.isEnqueued()) {
      inFlight.addLast(p);
      depthSampler.increment();
      if (p.deferred()) {
        deferredUnflushed++;
        deferredSampler.increment();
        p.admitted.accept(p.request.id());
      }
      return true;
    }
    if (r == QueueOfferResult.dropped()) {
      return false;
    }
    throw new IllegalStateException("invalidation stream of unit " + name + " refused: " + r);
  }

  /** Admits parked requests, oldest first, while the ingress queue takes them. */
  private void drainParked() {
    boolean moved = false;
    while (!parked.isEmpty() && offer(parked.peekFirst())) {
      parked.pollFirst();
      moved = true;
    }
    if (moved) {
      parkedGauge.update(parked.size());
    }
  }

  // ---------------------------------------------------------------- execution

  /** The stream hands over a merged batch: run it on the model. */
  void execute(InvalidationBatch batch, CompletableFuture<Done> executed) {
    if (stopping) {
      return;
    }
    batches++;
    flushes[batch.reason().ordinal()]++;
    flushCounters[batch.reason().ordinal()].increment();
    largestBatch = Math.max(largestBatch, batch.size());
    rangesIn += batch.rangesIn();
    rangesOut += batch.rangesOut();
    depthSampler.decrement(batch.size());
    batchSize.record(batch.size());
    mergedRanges.record(batch.rangesOut());
    mergedAway.increment(batch.rangesIn() - batch.rangesOut());
    // The stream pulled from the ingress queue to form this batch: room for parked requests.
    drainParked();
    List<InvDescriptor> plan = planOf(batch);
    batchDescriptors.record(plan.size());
    executor.run(plan, issuedAt(batch), completedAt -> completed(batch, completedAt, executed));
  }

  /**
   * The modeled time the batch reaches the hardware queue, by what closed it:
   *
   * <ul>
   *   <li>a flush queue's timeout is part of the model (Linux's {@code fq_flush_timeout},
   *       drivers/iommu/dma-iommu.c): issued now;
   *   <li>a full flush queue, or an urgent request flushing it, is flushed by the request that
   *       arrived last (queue_iova / iommu_dma_free_iova's flush): issued when that one was;
   *   <li>a strict batch started when its first request was issued: the requests merged into it
   *       meanwhile joined a flush under way.
   * </ul>
   *
   * Never later: the time the emulator took to hand the batch over (waiting, say, for the previous
   * batch's device acknowledgements on a busy machine) is its own scheduling, not the hardware's,
   * and must not inflate modeled latencies. The queue's busy-until still charges a queue the
   * previous batch keeps busy.
   */
  private long issuedAt(InvalidationBatch batch) {
    long now = clock.nanos();
    if (batch.reason() == FlushReason.TIMEOUT || inFlight.isEmpty()) {
      return now;
    }
    if (batch.reason() == FlushReason.STRICT) {
      return Math.min(now, inFlight.peekFirst().modeledStart);
    }
    long last = Long.MIN_VALUE;
    int left = batch.size();
    for (Pending p : inFlight) {
      if (left-- == 0) {
        break;
      }
      last = Math.max(last, p.modeledStart);
    }
    return Math.min(now, last);
  }

  /**
   * The batch's descriptors plus what an execution-time rescan adds: for every changed range,
   * the device TLBs (and nested children) that reach its domain now and are not covered yet.
   */
  private List<InvDescriptor> planOf(InvalidationBatch batch) {
    long token = waitToken++;
    if (batch.rescan().isEmpty()) {
      return batch.plan(token);
    }
    Set<InvDescriptor> extraIotlb = new LinkedHashSet<>();
    Set<InvDescriptor> extraAtc = new LinkedHashSet<>();
    // The batch's own IOTLB descriptors, hashed: a rescan mostly finds exactly one of them, and
    // the exact (linear) coverage test is left for the rest.
    Set<InvDescriptor> own = new HashSet<>(batch.iotlb());
    for (IotlbTarget t : batch.rescan()) {
      Domain d = unit.domain(t.domainId());
      if (d == null) {
        // Freed since: freeing dropped its IOTLB entries, and it has no attachment left.
        continue;
      }
      long length = t.last() - t.first() + 1;
      Outcome<List<InvDescriptor>> now = unit.planRange(d, t.pasid(), t.first(),
          length == 0 ? -1L : length);
      if (!now.isOk()) {
        throw new IllegalStateException("rescan of a planned range refused: " + now);
      }
      for (InvDescriptor x : now.value()) {
        if (x instanceof InvDescriptor.DevTlb dev) {
          if (!batch.coversAtc(dev)) {
            extraAtc.add(dev);
          }
        } else if (!(x instanceof InvDescriptor.Wait) && !own.contains(x) && !batch.coversIotlb(x)) {
          extraIotlb.add(x);
        }
      }
    }
    if (extraIotlb.isEmpty() && extraAtc.isEmpty()) {
      return batch.plan(token);
    }
    List<InvDescriptor> plan = new ArrayList<>(batch.descriptors() + extraIotlb.size()
        + extraAtc.size());
    plan.addAll(batch.fixed());
    plan.addAll(batch.iotlb());
    plan.addAll(extraIotlb);
    plan.addAll(batch.atc());
    plan.addAll(extraAtc);
    plan.add(new InvDescriptor.Wait(token));
    return plan;
  }

  /** Every targeted cache of the batch dropped its entries: complete its requests. */
  private void completed(InvalidationBatch batch, long completedAtNs, CompletableFuture<Done> f) {
    if (stopping) {
      return;
    }
    long wallNow = wall();
    Map<ActorRef<FlushCompleted>, List<Long>> deferredDone = null;
    for (long id : batch.requestIds()) {
      Pending p = inFlight.pollFirst();
      if (p == null || p.request.id() != id) {
        throw new IllegalStateException("batch completes request " + id + ", the oldest in flight is "
            + (p == null ? "none" : p.request.id()));
      }
      long modeled = Math.max(0, completedAtNs - p.modeledStart);
      completedRequests++;
      modeledSum += modeled;
      modeledMax = Math.max(modeledMax, modeled);
      modeledHistogram(p.tenant).record(modeled);
      if (wallNanos != null) {
        long wall = Math.max(0, wallNow - p.wallStart);
        wallSum += wall;
        wallMax = Math.max(wallMax, wall);
        wallHistogram(p.tenant).record(wall);
      }
      if (p.deferred()) {
        deferredUnflushed--;
        deferredSampler.decrement();
        if (deferredDone == null) {
          deferredDone = new LinkedHashMap<>();
        }
        deferredDone.computeIfAbsent(p.flushTo, k -> new ArrayList<>()).add(id);
      } else {
        p.flushed.accept(modeled);
      }
    }
    for (Map.Entry<ActorRef<FlushCompleted>, List<Long>> e
        : deferredDone == null ? List.<Map.Entry<ActorRef<FlushCompleted>, List<Long>>>of() : deferredDone.entrySet()) {
      long[] tokens = new long[e.getValue().size()];
      for (int i = 0; i < tokens.length; i++) {
        tokens[i] = e.getValue().get(i);
      }
      e.getKey().tell(new FlushCompleted(unitId, tokens, completedAtNs));
    }
    f.complete(Done.getInstance());
    drainParked();
  }

  /** Device {@code rid} acknowledged an ATC invalidation. */
  void acknowledged(int rid, long token) {
    executor.acknowledged(rid, token);
  }

  /** Device {@code rid}'s actor stopped: its pending acknowledgements count as done. */
  void deviceStopped(int rid) {
    executor.deviceStopped(rid);
  }

  /**
   * The stream ended. Unless the unit is stopping, that is a bug (the stream has no reason to
   * end while its unit lives): fail the actor.
   */
  void streamEnded(Throwable failure) {
    if (stopping) {
      return;
    }
    throw new IllegalStateException(
        "invalidation stream of unit " + name + " ended while the unit runs", failure);
  }

  /** From PostStop or PreRestart: tear the stream down; nothing is completed afterwards. */
  void stop() {
    stopping = true;
    stream.killSwitch().shutdown();
  }

  // ---------------------------------------------------------------- the stale-hit oracle

  /**
   * The IOTLB served a translation of {@code iova} tagged ({@code domainId}, {@code pasid}) that
   * the current page table no longer gives. Legal while a request that will invalidate it is
   * pending (admitted or parked, not completed: its entries may be dropped only when its batch
   * executes), which a deferred unmap makes common; otherwise an invalidation was missed. Returns
   * whether it was legal. Scans the pending requests: stale hits are rare, and the bound on
   * pending requests bounds the scan.
   */
  boolean staleHit(int domainId, int pasid, long iova) {
    boolean covered = covers(domainId, pasid, iova);
    if (covered) {
      staleInWindow++;
      staleInWindowCounter.increment();
    } else {
      staleViolations++;
      staleViolationCounter.increment();
    }
    return covered;
  }

  private boolean covers(int domainId, int pasid, long iova) {
    for (Pending p : inFlight) {
      if (covers(p.request, domainId, pasid, iova)) {
        return true;
      }
    }
    for (Pending p : parked) {
      if (covers(p.request, domainId, pasid, iova)) {
        return true;
      }
    }
    return false;
  }

  private static boolean covers(InvalidationRequest r, int domainId, int pasid, long iova) {
    for (InvDescriptor d : r.fixed()) {
      if (d instanceof InvDescriptor.IotlbGlobal) {
        return true;
      }
    }
    for (IotlbTarget t : r.iotlb()) {
      if (t.domainId() == domainId
          && (t.pasid() == io.iommulab.hardware.cache.Iotlb.ANY_PASID || t.pasid() == pasid)
          && Long.compareUnsigned(t.first(), iova) <= 0
          && Long.compareUnsigned(iova, t.last()) <= 0) {
        return true;
      }
    }
    return false;
  }

  long staleHitsInWindow() {
    return staleInWindow;
  }

  long staleHitViolations() {
    return staleViolations;
  }

  // ---------------------------------------------------------------- inspection

  /** Requests admitted or parked, not completed. */
  int pending() {
    return inFlight.size() + parked.size();
  }

  InvalidationStats stats() {
    return new InvalidationStats(
        unitId, name, settings.mode(), requests, batches, rangesIn, rangesOut,
        executor.descriptors(), executor.syncs(), executor.atcInvalidations(),
        stream.ingress().size(), settings.ingressCapacity(), flushQueueOccupancy, parked.size(),
        parkedHighWater,
        settings.maxParked(), pending(), deferredUnflushed, refusedBusy,
        flushes[FlushReason.STRICT.ordinal()], flushes[FlushReason.FULL.ordinal()],
        flushes[FlushReason.TIMEOUT.ordinal()], flushes[FlushReason.URGENT.ordinal()],
        largestBatch, completedRequests, modeledSum, modeledMax, wallSum, wallMax, staleInWindow,
        staleViolations);
  }

  long descriptors() {
    return executor.descriptors();
  }

  long syncs() {
    return executor.syncs();
  }

  long atcInvalidations() {
    return executor.atcInvalidations();
  }

  // ---------------------------------------------------------------- helpers

  private long wall() {
    return wallNanos == null ? 0 : wallNanos.getAsLong();
  }

  private Histogram modeledHistogram(int tenant) {
    if (tenant >= modeledLatency.length) {
      modeledLatency = Arrays.copyOf(modeledLatency, Math.max(tenant + 1, 2 * modeledLatency.length));
    }
    Histogram h = modeledLatency[tenant];
    if (h == null) {
      h = Kamon.histogram("iommulab.invalidation.latency.modeled", MeasurementUnit.time().nanoseconds())
          .withTags(latencyTags(tenant));
      modeledLatency[tenant] = h;
    }
    return h;
  }

  private Histogram wallHistogram(int tenant) {
    if (tenant >= wallLatency.length) {
      wallLatency = Arrays.copyOf(wallLatency, Math.max(tenant + 1, 2 * wallLatency.length));
    }
    Histogram h = wallLatency[tenant];
    if (h == null) {
      h = Kamon.histogram("iommulab.invalidation.latency.wall", MeasurementUnit.time().nanoseconds())
          .withTags(latencyTags(tenant));
      wallLatency[tenant] = h;
    }
    return h;
  }

  private TagSet latencyTags(int tenant) {
    return TagSet.of("unit", name)
        .withTag("mode", settings.mode().configName())
        .withTag("tenant", tenant > 0 ? tenantOf.apply(tenant) : "unknown");
  }
}
