package io.iommulab.hardware.cache;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.ContendedResource;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultRecord;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * One unit's invalidation queue: VT-d queued invalidation (QI, a ring of 256 descriptors by
 * default, {@code drivers/iommu/intel/dmar.c}) or the SMMUv3 command queue (CMDQ,
 * {@code drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c}). Software appends batches; the hardware
 * executes them strictly in order.
 *
 * <p><b>Submission</b> is all or nothing ({@link Outcome} contract). A batch whose descriptors
 * do not all pass validation is refused with EINVAL naming the first bad descriptor's index in
 * the batch, as a VT-d invalidation queue error (IQE) makes {@code qi_submit_sync()} return
 * -EINVAL ({@code qi_check_fault()} in {@code dmar.c}); a well-formed batch larger than the free
 * slots is refused with ENOSPC. Either way nothing is queued. Validation comes first: a batch
 * that is both malformed and too large gets EINVAL. Unlike {@code qi_submit_sync()}, the queue
 * does not append its own wait descriptor: callers end their batches with a
 * {@link InvDescriptor.Wait} ({@link InvalidationPlan} does).
 *
 * <p><b>Execution</b> ({@link #process}, {@link #step}) takes descriptors in queue order:
 *
 * <ul>
 *   <li>IOTLB descriptors are applied to the unit's {@link Iotlb} as they execute.
 *   <li>{@link InvDescriptor.DevTlb} is handed to the {@link AtcSink} (the device's ATC, or its
 *       actor).
 *   <li>{@link InvDescriptor.ContextCache} and {@link InvDescriptor.PasidCache} are accepted and
 *       counted but drop nothing: the model caches no context or PASID entries (every walk reads
 *       the tables), so there is nothing stale to remove.
 *   <li>{@link InvDescriptor.Wait} completes once everything before it has, with a
 *       {@link SyncCompletion}.
 * </ul>
 *
 * <p><b>Modeled time</b>: the queue is a {@link ContendedResource} (busy-until). Every descriptor
 * costs {@link CostModel#descriptor()}; a DevTlb costs in addition
 * {@link CostModel#atcInvalidationRoundTrip()} (the PCIe invalidation request and its
 * completion), a Wait in addition {@link CostModel#sync()} (the status write / CMD_SYNC
 * completion). Each descriptor is served after the one before it, so a Wait's completion time is
 * the time the resource finishes it, and a later submission queues behind an earlier one even
 * across {@code process} calls. Descriptors are served from the {@code now} of the call that
 * executes them (submission carries no time).
 *
 * <p>Invariants:
 *
 * <ul>
 *   <li>{@code 0 <= pending() <= depth()}; descriptors execute exactly once, in submission order.
 *   <li>Once {@code process}/{@code step} returned a {@link SyncCompletion} for a Wait, every
 *       IOTLB descriptor before it has been applied and every DevTlb before it has been handed
 *       to the sink; nothing after it has been executed at that point (with {@link #step}, it
 *       is still pending).
 *   <li>Wait completion times never decrease.
 * </ul>
 *
 * <p>Not modeled: device-TLB invalidation timeouts (VT-d ITE, SMMUv3 CERROR_ATC_INV_SYNC), which
 * abort and resubmit. Single-threaded: the owning unit's actor is the lock.
 */
public final class InvalidationQueue {
  /** VT-d QI ring size used by Linux (one 4 KiB page of 16-byte descriptors). */
  public static final int VTD_DEPTH = 256;

  /** Largest PASID value (20 bits). */
  private static final int MAX_PASID = (1 << 20) - 1;

  /** Descriptor kinds, for counters. */
  public enum Kind {
    IOTLB_GLOBAL,
    IOTLB_DOMAIN,
    IOTLB_PASID,
    IOTLB_PAGES,
    DEV_TLB,
    CONTEXT_CACHE,
    PASID_CACHE,
    WAIT;

    public static Kind of(InvDescriptor d) {
      if (d instanceof InvDescriptor.IotlbGlobal) {
        return IOTLB_GLOBAL;
      } else if (d instanceof InvDescriptor.IotlbDomain) {
        return IOTLB_DOMAIN;
      } else if (d instanceof InvDescriptor.IotlbPasid) {
        return IOTLB_PASID;
      } else if (d instanceof InvDescriptor.IotlbPages) {
        return IOTLB_PAGES;
      } else if (d instanceof InvDescriptor.DevTlb) {
        return DEV_TLB;
      } else if (d instanceof InvDescriptor.ContextCache) {
        return CONTEXT_CACHE;
      } else if (d instanceof InvDescriptor.PasidCache) {
        return PASID_CACHE;
      } else if (d instanceof InvDescriptor.Wait) {
        return WAIT;
      }
      throw new IllegalArgumentException("unknown descriptor " + d);
    }
  }

  private final InvDescriptor[] ring;
  private final int maxAddressMask;
  private final CostModel cost;
  private final ContendedResource resource = new ContendedResource("invalidation-queue");

  /** Index of the oldest pending descriptor. */
  private int head;

  private int pending;
  private int highWater;
  private long busyNs;
  private long lastCompletionNs = Long.MIN_VALUE;
  private final long[] processed = new long[Kind.values().length];

  /** A queue accepting page-selective masks up to 63 (the 6-bit VT-d AM field). */
  public InvalidationQueue(int depth, CostModel cost) {
    this(depth, 63, cost);
  }

  /**
   * @param depth ring size in descriptors (VT-d: {@value #VTD_DEPTH})
   * @param maxAddressMask largest page-selective mask the unit accepts ({@code
   *     cap_max_amask_val}); larger masks are refused with EINVAL
   */
  public InvalidationQueue(int depth, int maxAddressMask, CostModel cost) {
    if (depth <= 0) {
      throw new IllegalArgumentException("queue depth must be positive, got " + depth);
    }
    if (maxAddressMask < 0 || maxAddressMask > 63) {
      throw new IllegalArgumentException("max address mask " + maxAddressMask + " not in [0, 63]");
    }
    if (cost == null) {
      throw new IllegalArgumentException("cost model is null");
    }
    this.ring = new InvDescriptor[depth];
    this.maxAddressMask = maxAddressMask;
    this.cost = cost;
  }

  /**
   * Appends a batch: EINVAL (naming the descriptor's index) for a malformed descriptor, ENOSPC
   * when the batch does not fit in the free slots; in both cases nothing is queued.
   */
  public Outcome<Void> submit(List<InvDescriptor> batch) {
    for (int i = 0; i < batch.size(); i++) {
      String problem = problemWith(batch.get(i));
      if (problem != null) {
        return Outcome.err(Errno.EINVAL, "descriptor %d (%s): %s", i, batch.get(i), problem);
      }
    }
    int free = ring.length - pending;
    if (batch.size() > free) {
      return Outcome.err(
          Errno.ENOSPC,
          "batch of %d descriptors: only %d of %d slots free",
          batch.size(),
          free,
          ring.length);
    }
    for (InvDescriptor d : batch) {
      ring[(head + pending) % ring.length] = d;
      pending++;
    }
    highWater = Math.max(highWater, pending);
    return Outcome.OK;
  }

  /** Why the hardware would reject {@code d} (an IQE / CERROR_ILL), or null if well-formed. */
  private String problemWith(InvDescriptor d) {
    if (d == null) {
      return "null descriptor";
    }
    if (d instanceof InvDescriptor.IotlbDomain x) {
      return domainProblem(x.domainId());
    } else if (d instanceof InvDescriptor.IotlbPasid x) {
      String p = domainProblem(x.domainId());
      return p != null ? p : pasidProblem(x.pasid(), false);
    } else if (d instanceof InvDescriptor.IotlbPages x) {
      String p = domainProblem(x.domainId());
      if (p == null) {
        p = pasidProblem(x.pasid(), true);
      }
      if (p != null) {
        return p;
      }
      if (x.addressMask() < 0 || x.addressMask() > maxAddressMask) {
        return "address mask " + x.addressMask() + " not in [0, " + maxAddressMask + "]";
      }
      long offsetMask = x.addressMask() + 12 >= 64 ? -1L : (1L << (x.addressMask() + 12)) - 1;
      if ((x.address() & offsetMask) != 0) {
        return String.format(
            "address 0x%x not aligned to its span of 2^%d pages", x.address(), x.addressMask());
      }
      return null;
    } else if (d instanceof InvDescriptor.DevTlb x) {
      String p = ridProblem(x.rid());
      if (p == null) {
        p = pasidProblem(x.pasid(), false);
      }
      if (p != null) {
        return p;
      }
      if (x.sizeOrder() < 0 || x.sizeOrder() > DeviceAtc.WHOLE_SPACE_ORDER) {
        return "size order " + x.sizeOrder() + " not in [0, " + DeviceAtc.WHOLE_SPACE_ORDER + "]";
      }
      if ((x.address() & 0xFFF) != 0) {
        return String.format("address 0x%x not 4 KiB aligned", x.address());
      }
      return null;
    } else if (d instanceof InvDescriptor.ContextCache x) {
      return ridProblem(x.rid());
    } else if (d instanceof InvDescriptor.PasidCache x) {
      String p = domainProblem(x.domainId());
      return p != null ? p : pasidProblem(x.pasid(), false);
    }
    return null;
  }

  private static String domainProblem(int domainId) {
    return domainId < 0 ? "negative domain id " + domainId : null;
  }

  private static String ridProblem(int rid) {
    return rid < 0 || rid > 0xFFFF ? "rid " + rid + " outside 16 bits" : null;
  }

  private static String pasidProblem(int pasid, boolean anyAllowed) {
    if (pasid == FaultRecord.NO_PASID || (anyAllowed && pasid == Iotlb.ANY_PASID)) {
      return null;
    }
    return pasid < 0 || pasid > MAX_PASID ? "PASID " + pasid + " not a 20-bit PASID" : null;
  }

  /** Descriptors submitted and not yet executed. */
  public int pending() {
    return pending;
  }

  /** The pending descriptors, oldest first (a snapshot). */
  public List<InvDescriptor> pendingDescriptors() {
    List<InvDescriptor> out = new ArrayList<>(pending);
    for (int i = 0; i < pending; i++) {
      out.add(ring[(head + i) % ring.length]);
    }
    return List.copyOf(out);
  }

  /**
   * Executes every pending descriptor in order, applying IOTLB ones and handing ATC ones on.
   *
   * @return one completion per Wait executed, in order; {@link SyncCompletion#descriptors()}
   *     counts the descriptors this call executed up to and including that Wait
   */
  public List<SyncCompletion> process(long now, Iotlb iotlb, AtcSink atc) {
    List<SyncCompletion> done = new ArrayList<>();
    int executed = 0;
    while (pending > 0) {
      InvDescriptor d = executeOne(now, iotlb, atc);
      executed++;
      if (d instanceof InvDescriptor.Wait w) {
        done.add(new SyncCompletion(w.token(), lastCompletionNs, executed));
      }
    }
    return done;
  }

  /**
   * Executes descriptors in order up to and including the next Wait, and stops there: what
   * follows stays pending. Empty when the queue ran dry without meeting a Wait (the executed
   * descriptors still took effect).
   *
   * @return the Wait's completion; {@link SyncCompletion#descriptors()} counts the descriptors
   *     this call executed, the Wait included
   */
  public Optional<SyncCompletion> step(long now, Iotlb iotlb, AtcSink atc) {
    int executed = 0;
    while (pending > 0) {
      InvDescriptor d = executeOne(now, iotlb, atc);
      executed++;
      if (d instanceof InvDescriptor.Wait w) {
        return Optional.of(new SyncCompletion(w.token(), lastCompletionNs, executed));
      }
    }
    return Optional.empty();
  }

  private InvDescriptor executeOne(long now, Iotlb iotlb, AtcSink atc) {
    InvDescriptor d = ring[head];
    ring[head] = null;
    head = (head + 1) % ring.length;
    pending--;
    Kind kind = Kind.of(d);
    long service = cost.descriptor();
    switch (kind) {
      case IOTLB_GLOBAL -> iotlb.invalidateAll();
      case IOTLB_DOMAIN -> iotlb.invalidateDomain(((InvDescriptor.IotlbDomain) d).domainId());
      case IOTLB_PASID -> {
        InvDescriptor.IotlbPasid x = (InvDescriptor.IotlbPasid) d;
        iotlb.invalidatePasid(x.domainId(), x.pasid());
      }
      case IOTLB_PAGES -> {
        InvDescriptor.IotlbPages x = (InvDescriptor.IotlbPages) d;
        iotlb.invalidatePages(x.domainId(), x.pasid(), x.address(), x.addressMask());
      }
      case DEV_TLB -> {
        atc.invalidate((InvDescriptor.DevTlb) d);
        service += cost.atcInvalidationRoundTrip();
      }
      case CONTEXT_CACHE, PASID_CACHE -> {
        // Nothing cached: the model re-reads context and PASID entries on every walk.
      }
      case WAIT -> service += cost.sync();
    }
    processed[kind.ordinal()]++;
    busyNs += service;
    lastCompletionNs = resource.acquire(now, service);
    return d;
  }

  public int depth() {
    return ring.length;
  }

  public int maxAddressMask() {
    return maxAddressMask;
  }

  /** Descriptors of {@code kind} executed so far. */
  public long processed(Kind kind) {
    return processed[kind.ordinal()];
  }

  /** Descriptors of every kind executed so far. */
  public long processedTotal() {
    long n = 0;
    for (long c : processed) {
      n += c;
    }
    return n;
  }

  /** Waits completed so far. */
  public long syncs() {
    return processed[Kind.WAIT.ordinal()];
  }

  /** Largest number of descriptors ever pending at once. */
  public int pendingHighWater() {
    return highWater;
  }

  /** Total modeled service time of executed descriptors (excluding idle and queueing). */
  public long busyNs() {
    return busyNs;
  }

  /** Modeled time at which the queue finishes what it has executed so far. */
  public long busyUntil() {
    return resource.busyUntil();
  }

  /**
   * Modeled time descriptors waited behind the ones ahead of them (their own batch's included),
   * summed over descriptors.
   */
  public long totalQueueingNs() {
    return resource.totalQueueingNs();
  }

  /** Longest modeled wait of one descriptor behind earlier ones. */
  public long maxQueueingNs() {
    return resource.maxQueueingNs();
  }
}
