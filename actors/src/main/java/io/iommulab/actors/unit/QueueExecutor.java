package io.iommulab.actors.unit;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cache.AtcSink;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.SyncCompletion;
import io.iommulab.hardware.iommu.IommuUnit;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;
import java.util.function.LongConsumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.slf4j.Logger;

/**
 * Executes descriptor plans against a unit's {@code InvalidationQueue} and learns when each has
 * completed: the last step of the invalidation stream ({@link InvalidationPipeline} hands it one
 * merged batch at a time). Every plan is submitted and executed at once: IOTLB descriptors take
 * effect immediately, each device-TLB descriptor becomes an {@link DeviceActor.AtcInvalidate} to
 * the device's actor carrying a fresh token, and the plan completes when all those tokens are
 * acknowledged (the sync of a real queue completes only after the devices' invalidation
 * completions). A plan longer than the ring is fed in ring-sized slices, in order, as a driver
 * waits for free slots.
 *
 * <p>Contract: {@link #run} applies the plan's IOTLB descriptors before it returns (a translation
 * handled after {@code run} never hits a dropped entry) and sends each device-TLB descriptor to
 * its device; {@code onComplete} is called on the actor's thread exactly once, when the plan's
 * sync has completed <em>and</em> every device-TLB descriptor before it was acknowledged (or its
 * device's actor stopped: a function that is gone caches nothing), with the modeled completion
 * time of the sync. Never completes a plan with an acknowledgement missing.
 *
 * <p>State: the pending table, token → plan. A plan with no device-TLB descriptor completes before
 * {@link #run} returns. Confined to the unit actor; never blocks.
 */
final class QueueExecutor {

  /** One plan waiting for acknowledgements. */
  private static final class Pending {
    final LongConsumer onComplete;
    final long completionNs;
    int unacked;

    Pending(LongConsumer onComplete, long completionNs) {
      this.onComplete = onComplete;
      this.completionNs = completionNs;
    }
  }

  /** An acknowledgement awaited: which device and which plan. */
  private record Awaited(int rid, Pending plan) {}

  private final IommuUnit unit;
  private final int depth;
  private final IntFunction<ActorRef<DeviceActor.Command>> deviceOf;
  private final ActorRef<IommuUnitActor.Command> self;
  private final Logger log;
  private final Map<Long, Awaited> awaited = new HashMap<>();
  private final AtcSink sink = this::send;

  private long nextToken = 1;
  private int outstanding;
  private long descriptors;
  private long syncs;
  private long atcInvalidations;

  QueueExecutor(
      IommuUnit unit,
      int depth,
      IntFunction<ActorRef<DeviceActor.Command>> deviceOf,
      ActorRef<IommuUnitActor.Command> self,
      Logger log) {
    this.unit = unit;
    this.depth = depth;
    this.deviceOf = deviceOf;
    this.self = self;
    this.log = log;
  }

  /**
   * Runs {@code plan} (ending with its Wait) at modeled time {@code now}. {@code onComplete} may
   * be called before this returns (no device TLB involved).
   */
  void run(List<InvDescriptor> plan, long now, LongConsumer onComplete) {
    long firstToken = nextToken;
    long completion = now;
    for (int from = 0; from < plan.size(); from += depth) {
      List<InvDescriptor> slice = plan.subList(from, Math.min(plan.size(), from + depth));
      Outcome<Long> submitted = unit.submit(slice);
      if (!submitted.isOk()) {
        // Plans come from the model and the queue is drained after every slice.
        throw new IllegalStateException("invalidation plan refused by the queue: " + submitted);
      }
      descriptors += slice.size();
      for (SyncCompletion c : unit.processInvalidations(now, sink)) {
        syncs++;
        completion = Math.max(completion, c.completedAtNs());
      }
    }
    Pending p = new Pending(onComplete, completion);
    for (long t = firstToken; t < nextToken; t++) {
      Awaited a = awaited.get(t);
      if (a != null) {
        awaited.put(t, new Awaited(a.rid(), p));
        p.unacked++;
      }
    }
    if (p.unacked == 0) {
      onComplete.accept(completion);
    } else {
      outstanding++;
    }
  }

  private void send(InvDescriptor.DevTlb d) {
    atcInvalidations++;
    ActorRef<DeviceActor.Command> device = deviceOf.apply(d.rid());
    if (device == null) {
      // No function at that RID any more: nothing can hold its translations.
      return;
    }
    long token = nextToken++;
    awaited.put(token, new Awaited(d.rid(), null));
    device.tell(new DeviceActor.AtcInvalidate(d.pasid(), d.address(), d.sizeOrder(), token, self));
  }

  /** Device {@code rid} acknowledged the device-TLB invalidation {@code token}. */
  void acknowledged(int rid, long token) {
    Awaited a = awaited.get(token);
    if (a == null || a.rid() != rid || a.plan() == null) {
      log.warn("Unexpected ATC invalidation ack [{}] from rid 0x{}", token, Integer.toHexString(rid));
      return;
    }
    awaited.remove(token);
    release(a.plan());
  }

  /**
   * The actor of device {@code rid} stopped: its unacknowledged invalidations count as done (a
   * function that is gone caches nothing).
   */
  void deviceStopped(int rid) {
    Iterator<Map.Entry<Long, Awaited>> it = awaited.entrySet().iterator();
    while (it.hasNext()) {
      Awaited a = it.next().getValue();
      if (a.rid() == rid && a.plan() != null) {
        it.remove();
        release(a.plan());
      }
    }
  }

  private void release(Pending p) {
    if (--p.unacked == 0) {
      outstanding--;
      p.onComplete.accept(p.completionNs);
    }
  }

  /** Plans waiting for acknowledgements. */
  int outstanding() {
    return outstanding;
  }

  /** Descriptors executed so far. */
  long descriptors() {
    return descriptors;
  }

  /** Syncs (Waits) executed so far. */
  long syncs() {
    return syncs;
  }

  /** Device-TLB invalidations sent so far. */
  long atcInvalidations() {
    return atcInvalidations;
  }
}
