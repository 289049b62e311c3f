package io.iommulab.actors.pipeline;

import io.iommulab.hardware.cache.DeviceAtc;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.InvalidationPlan;
import io.iommulab.hardware.cache.Iotlb;
import java.util.ArrayList;
import java.util.List;

/**
 * The invalidation work of one issuer call (an unmap, a detach, a user invalidation ...), as a
 * unit actor hands it to its invalidation stream: what must be dropped, not yet how. Ranges are
 * kept <em>unwidened</em> ({@code first}, {@code last} inclusive, unsigned), so the stream can
 * merge adjacent and overlapping ranges of many requests before it widens them to page-selective
 * spans ({@link InvalidationBatch#merge}). Immutable; safe to pass between the actor and the
 * stream.
 *
 * @param id the unit's sequence number of the request (admission order)
 * @param synchronous the issuer waits for the flush: in deferred mode such a request flushes the
 *     queue at once instead of waiting for it to fill or time out
 * @param iotlb IOTLB targets, per (domain, PASID selector)
 * @param atc device-TLB targets, per (rid, PASID)
 * @param fixed descriptors passed through as they are (context- and PASID-cache invalidations,
 *     a global IOTLB flush), deduplicated within a batch, issued before every IOTLB descriptor
 */
public record InvalidationRequest(
    long id,
    boolean synchronous,
    List<IotlbTarget> iotlb,
    List<AtcTarget> atc,
    List<InvDescriptor> fixed) {

  public InvalidationRequest {
    iotlb = List.copyOf(iotlb);
    atc = List.copyOf(atc);
    fixed = List.copyOf(fixed);
    for (InvDescriptor d : fixed) {
      if (!(d instanceof InvDescriptor.ContextCache
          || d instanceof InvDescriptor.PasidCache
          || d instanceof InvDescriptor.IotlbGlobal)) {
        throw new IllegalArgumentException("not a pass-through descriptor: " + d);
      }
    }
  }

  /** IOTLB and device-TLB targets of the request: what the merge statistics count. */
  public int ranges() {
    return iotlb.size() + atc.size();
  }

  /**
   * IOTLB entries of {@code domainId} tagged {@code pasid} ({@link Iotlb#ANY_PASID}: every PASID)
   * overlapping {@code [first, last]}. {@code tableChange}: the domain's page table changed in the
   * range (unmap, stage-1 change, dirty-bit clear), so every device TLB that can reach the domain
   * when the batch executes must be invalidated too, not only those attached when the request was
   * made: a function attached in between may have filled its ATC from the stale IOTLB entry.
   */
  public record IotlbTarget(
      int domainId, int pasid, long first, long last, boolean leaf, boolean tableChange) {
    public IotlbTarget {
      if (domainId < 0) {
        throw new IllegalArgumentException("negative domain id " + domainId);
      }
      if (pasid < Iotlb.ANY_PASID) {
        throw new IllegalArgumentException("bad PASID selector " + pasid);
      }
      if (Long.compareUnsigned(last, first) < 0) {
        throw new IllegalArgumentException(
            String.format("range [0x%x, 0x%x]: last below first", first, last));
      }
    }

    /** The whole address space of the tag: a domain- or PASID-selective flush. */
    public boolean whole() {
      return first == 0 && last == -1L;
    }
  }

  /**
   * Device-TLB entries of function {@code rid} tagged {@code pasid} (no PASID: every PASID, as an
   * ATC invalidation without PASID wipes PASID-tagged entries too) overlapping {@code [first,
   * last]}.
   */
  public record AtcTarget(int rid, int pasid, long first, long last) {
    public AtcTarget {
      if (rid < 0 || rid > 0xFFFF) {
        throw new IllegalArgumentException("rid " + rid + " outside 16 bits");
      }
      if (pasid < -1) {
        throw new IllegalArgumentException("bad PASID " + pasid);
      }
      if (Long.compareUnsigned(last, first) < 0) {
        throw new IllegalArgumentException(
            String.format("range [0x%x, 0x%x]: last below first", first, last));
      }
    }

    public boolean whole() {
      return first == 0 && last == -1L;
    }
  }

  /**
   * A request from a plan a model built (attach/detach/replace teardown, a user ATC entry, a
   * caching-mode map): every descriptor becomes a target or a pass-through, the Wait is dropped
   * (the batch ends with its own). Nothing is marked as a table change.
   */
  public static InvalidationRequest fromPlan(
      long id, boolean synchronous, List<InvDescriptor> plan) {
    return fromPlan(id, synchronous, plan, null);
  }

  /**
   * A request from a model plan for a page-table change of {@code changed} ({@code
   * IommuUnit.planRange}): the plan's own IOTLB descriptor (the first one; the others are a nest
   * parent's children, flushed whole) and the device-TLB descriptors over its widened span become
   * targets over the unwidened range again, so the stream merges before it widens.
   */
  public static InvalidationRequest fromPlan(
      long id, boolean synchronous, List<InvDescriptor> plan, IotlbTarget changed) {
    // Sized for the common plan (one IOTLB descriptor, a few device TLBs, no pass-through).
    List<IotlbTarget> iotlb = new ArrayList<>(1);
    List<AtcTarget> atc = null;
    List<InvDescriptor> fixed = null;
    InvalidationPlan.PsiRange span =
        changed == null ? null : InvalidationPlan.psiRange(changed.first(), changed.last());
    int spanOrder = span == null ? -1 : Math.min(span.addressMask(), DeviceAtc.WHOLE_SPACE_ORDER);
    boolean ownSeen = false;
    for (InvDescriptor d : plan) {
      if (d instanceof InvDescriptor.Wait) {
        continue;
      }
      if (d instanceof InvDescriptor.DevTlb x) {
        if (atc == null) {
          atc = new ArrayList<>(plan.size());
        }
        if (span != null && x.address() == span.address() && x.sizeOrder() == spanOrder) {
          atc.add(new AtcTarget(x.rid(), x.pasid(), changed.first(), changed.last()));
        } else {
          atc.add(atcOf(x));
        }
        continue;
      }
      IotlbTarget t = iotlbOf(d);
      if (t == null) {
        if (fixed == null) {
          fixed = new ArrayList<>(2);
        }
        fixed.add(d);
      } else if (changed != null && !ownSeen) {
        ownSeen = true;
        iotlb.add(new IotlbTarget(changed.domainId(), t.pasid(), changed.first(), changed.last(),
            t.leaf(), changed.tableChange()));
      } else {
        iotlb.add(t);
      }
    }
    if (changed != null && !ownSeen) {
      throw new IllegalArgumentException("a range plan without its IOTLB descriptor: " + plan);
    }
    return new InvalidationRequest(id, synchronous, iotlb, atc == null ? List.of() : atc,
        fixed == null ? List.of() : fixed);
  }

  /**
   * One request doing the work of {@code parts} (the entries of a user invalidation array, each
   * built with {@link #fromPlan}): their targets concatenated. Their order does not matter: the
   * batch issues every IOTLB target before every device-TLB target.
   */
  public static InvalidationRequest combine(
      long id, boolean synchronous, List<InvalidationRequest> parts) {
    List<IotlbTarget> iotlb = new ArrayList<>();
    List<AtcTarget> atc = new ArrayList<>();
    List<InvDescriptor> fixed = new ArrayList<>();
    for (InvalidationRequest r : parts) {
      iotlb.addAll(r.iotlb());
      atc.addAll(r.atc());
      fixed.addAll(r.fixed());
    }
    return new InvalidationRequest(id, synchronous, iotlb, atc, fixed);
  }

  /** The IOTLB target a descriptor selects, or null for a pass-through descriptor. */
  static IotlbTarget iotlbOf(InvDescriptor d) {
    if (d instanceof InvDescriptor.IotlbDomain x) {
      return new IotlbTarget(x.domainId(), Iotlb.ANY_PASID, 0, -1L, false, false);
    } else if (d instanceof InvDescriptor.IotlbPasid x) {
      return new IotlbTarget(x.domainId(), x.pasid(), 0, -1L, false, false);
    } else if (d instanceof InvDescriptor.IotlbPages x) {
      long last = new InvalidationPlan.PsiRange(x.address(), x.addressMask()).last();
      return new IotlbTarget(x.domainId(), x.pasid(), x.address(), last, x.leaf(), false);
    }
    return null;
  }

  /**
   * The pages a device-TLB descriptor names: {@code 2^sizeOrder} 4 KiB pages from its address,
   * clamped at 2^64. The address need not be aligned to the span (a user ATC entry is not); the
   * device widens it, and so does the merge ({@link InvalidationPlan#psiRange}), to the same span.
   */
  static AtcTarget atcOf(InvDescriptor.DevTlb x) {
    if (x.sizeOrder() >= DeviceAtc.WHOLE_SPACE_ORDER) {
      return new AtcTarget(x.rid(), x.pasid(), 0, -1L);
    }
    long firstPage = x.address() >>> 12;
    long maxPage = (1L << DeviceAtc.WHOLE_SPACE_ORDER) - 1;
    long lastPage = Math.min(maxPage, firstPage + (1L << x.sizeOrder()) - 1);
    return new AtcTarget(x.rid(), x.pasid(), firstPage << 12, (lastPage << 12) | 0xFFF);
  }
}
