package io.iommulab.actors.unit;

import io.iommulab.hardware.cache.InvDescriptor;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * How a unit actor executes the invalidation plans its model builds and learns when each has
 * completed. Everything invalidation-specific of the unit actors goes through this interface, so
 * the strict, message-per-operation implementation ({@link StrictInvalidation}) can be replaced by
 * a batching or deferred pipeline without touching the command handlers.
 *
 * <p>Contract: {@link #run} executes the plan's IOTLB descriptors before it returns (a
 * translation handled after {@code run} never hits a dropped entry) and sends each device-TLB
 * descriptor to its device; {@code onComplete} is called, on the actor's thread, exactly once,
 * when the plan's sync has completed <em>and</em> every device-TLB descriptor before it was
 * acknowledged, with the modeled completion time of the sync. Several plans may be outstanding
 * at once; nothing blocks.
 */
interface InvalidationPath {

  /**
   * Runs {@code plan} (built by the unit's model, ending with its Wait) at modeled time
   * {@code now}. {@code onComplete} may be called before this returns (no device TLB involved).
   */
  void run(List<InvDescriptor> plan, long now, LongConsumer onComplete);

  /** Device {@code rid} acknowledged the device-TLB invalidation {@code token}. */
  void acknowledged(int rid, long token);

  /**
   * The actor of device {@code rid} stopped: its unacknowledged invalidations count as done (a
   * function that is gone caches nothing).
   */
  void deviceStopped(int rid);

  /** Plans waiting for acknowledgements. */
  int outstanding();

  /** Descriptors executed so far. */
  long descriptors();

  /** Syncs (Waits) executed so far. */
  long syncs();

  /** Device-TLB invalidations sent so far. */
  long atcInvalidations();
}
