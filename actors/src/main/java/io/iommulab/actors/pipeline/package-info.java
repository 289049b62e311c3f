/**
 * The streaming part of a unit's invalidation path: what an invalidation request is ({@link
 * io.iommulab.actors.pipeline.InvalidationRequest}: unwidened IOTLB and device-TLB ranges plus
 * pass-through descriptors), how a batch of them is merged and ordered ({@link
 * io.iommulab.actors.pipeline.InvalidationBatch}: adjacent and overlapping ranges merged per
 * (domain, PASID) and per (rid, PASID) before widening; IOTLB before device TLB before the Wait),
 * and the bounded stream of one unit ({@link io.iommulab.actors.pipeline.InvalidationStream}:
 * {@code BoundedSourceQueue} → {@code KillSwitch} → {@code batch} (strict) or the Linux-like
 * flush queue (deferred) → merge → {@code mapAsync(1)} into the unit actor).
 *
 * <p>Nothing here touches a hardware model: the unit actor owns its IOTLB and invalidation queue
 * and executes each merged batch itself (see {@code io.iommulab.actors.unit.InvalidationPipeline}
 * for admission, the full-ingress policy, completion and metrics). Everything here is immutable or
 * confined to the stream's own stage, so merging runs off the unit actor.
 */
package io.iommulab.actors.pipeline;
