/**
 * The units' two streams.
 *
 * <p><b>Invalidation.</b> The streaming part of a unit's invalidation path: what an invalidation
 * request is ({@link io.iommulab.actors.pipeline.InvalidationRequest}: unwidened IOTLB and
 * device-TLB ranges plus pass-through descriptors), how a batch of them is merged and ordered
 * ({@link io.iommulab.actors.pipeline.InvalidationBatch}: adjacent and overlapping ranges merged
 * per (domain, PASID) and per (rid, PASID) before widening; IOTLB before device TLB before the
 * Wait), and the bounded stream of one unit ({@link
 * io.iommulab.actors.pipeline.InvalidationStream}: {@code BoundedSourceQueue} → {@code
 * KillSwitch} → {@code batch} (strict) or the Linux-like flush queue (deferred) → merge → {@code
 * mapAsync(1)} into the unit actor). Nothing here touches a hardware model: the unit actor owns
 * its IOTLB and invalidation queue and executes each merged batch itself (see {@code
 * io.iommulab.actors.unit.InvalidationPipeline} for admission, the full-ingress policy,
 * completion and metrics). Everything here is immutable or confined to the stream's own stage,
 * so merging runs off the unit actor.
 *
 * <p><b>Issuers of deferred unmaps.</b> In deferred mode an unmap is answered with a flush token
 * before its invalidation ran; the issuer (an fd) keeps the unmapped area's IOVA reserved and its
 * pages pinned until the unit's {@code FlushCompleted} names the token, and retries a command the
 * unit refused EBUSY (saturated: nothing changed). While the flush is pending the unit may still
 * serve the range from its IOTLB: its stale-hit oracle counts such hits as legal in the window
 * and any stale hit no pending request covers as a missed invalidation.
 *
 * <p><b>Faults.</b> How fault records get from the IOMMU units to the iommufd contexts (fds)
 * that own the faulting attach handles.
 *
 * <p>Shape. One {@link io.iommulab.actors.pipeline.FaultPipeline} per unit, materialized by the
 * unit actor and stopped with it: two {@code BoundedSourceQueue} ingresses (unrecoverable faults:
 * the VT-d fault recording registers / SMMUv3 event queue; page requests: the page request queue /
 * PRIQ) merged, batched while downstream is busy, split per sink, and delivered by an ask per
 * batch with at most one batch in flight per fd ({@code mapAsyncPartitionedUnordered} keyed by
 * the sink). Each record carries its attach handle's sink and the token the fd gave that
 * attachment, so a record of a detached or replaced handle still in flight is recognised by the
 * fd and lost, never delivered to the attachment that replaced it.
 *
 * <p>Bounds. Ingress capacities, one batch being aggregated, {@code parallelism} batches; each fd
 * FAULT queue holds at most {@code fault-queue-depth} requests and each vEVENTQ its depth. Nothing
 * else holds records.
 *
 * <p>Where loss is counted, exactly once per record: the unit counts what its full ingress
 * dropped (the hardware's overflow); the fd counts, per batch, what its full queues dropped and
 * what arrived for a handle that is gone, and answers the unit with the three numbers; a batch
 * never acknowledged within the ack timeout is counted lost by the unit. Hence, per unit,
 * {@code published = inFlight + delivered + lost} ({@code IommuUnitActor.FaultPipelineStats}),
 * and the fds' {@code FaultStats} add up to the units' delivered and queue/handle losses. Readers
 * see the queue's loss in the sequences and the trailing lost-events node, exactly.
 *
 * <p>What each record becomes at the unit and at the owner, per unit kind, is
 * {@link io.iommulab.actors.pipeline.FaultPolicy}'s rule, in one place.
 */
package io.iommulab.actors.pipeline;
