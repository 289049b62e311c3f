package io.iommulab.actors.pipeline;

import io.iommulab.actors.pipeline.InvalidationRequest.AtcTarget;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.hardware.cache.DeviceAtc;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.InvalidationPlan;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.fault.FaultRecord;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The merged invalidation of a batch of requests, ready to be issued: pass-through descriptors,
 * then every IOTLB descriptor, then every device-TLB descriptor, then (added by {@link #plan}) one
 * Wait. Built by {@link #merge} inside the stream; executed against the model by the unit actor.
 *
 * <p>Merge rules ({@link #merge}):
 *
 * <ol>
 *   <li>IOTLB targets are grouped by (domain, PASID selector), device-TLB targets by (rid, PASID).
 *   <li>Within a group, overlapping and adjacent ranges are merged <em>before</em> widening
 *       ({@code [0x1000, 0x1fff]} and {@code [0x2000, 0x2fff]} become one range, then one
 *       page-selective span of four pages), so N neighbouring unmaps cost one descriptor, not N.
 *       Ranges that neither overlap nor touch stay separate: merging them would widen the span
 *       over pages nobody unmapped.
 *   <li>Each merged range is widened as the model widens a single range ({@link
 *       InvalidationPlan#rangeLast}: the smallest aligned power-of-two span of 4 KiB pages, or the
 *       domain-/PASID-selective fallback beyond the unit's {@code maxAddressMask}); device-TLB
 *       ranges to the aligned span an ATS invalidation covers ({@link InvalidationPlan#psiRange}).
 *   <li>Subsumed descriptors are dropped: a global flush drops every other IOTLB descriptor, a
 *       domain-selective flush every other descriptor of its domain, a PASID-selective one every
 *       page-selective one of its (domain, PASID); a whole-space device-TLB invalidation without
 *       PASID every other one of its rid, one with a PASID every other one of its (rid, PASID).
 *       Identical descriptors appear once.
 * </ol>
 *
 * <p>Ordering (VT-d {@code cache.c}, SMMUv3 {@code arm_smmu_atc_inv_domain}): every IOTLB
 * descriptor of the batch precedes every device-TLB descriptor, so no device can refill its ATC
 * from an IOTLB entry the batch has not yet dropped, and the Wait completes after both. Merging
 * across requests is sound because invalidations commute: each only drops entries.
 *
 * @param reason why the stream closed the batch
 * @param requestIds the requests the batch completes, in admission order
 * @param fixed pass-through descriptors (context/PASID cache, global IOTLB), deduplicated
 * @param iotlb widened IOTLB descriptors
 * @param atc widened device-TLB descriptors
 * @param rescan table-change ranges merged among themselves (not with domain flushes): the
 *     executor adds the device TLBs that reach their domain at execution time ({@link
 *     IotlbTarget#tableChange})
 * @param rangesIn targets of the requests before merging
 * @param rangesOut targets left after merging adjacent and overlapping ranges
 */
public record InvalidationBatch(
    FlushReason reason,
    long[] requestIds,
    List<InvDescriptor> fixed,
    List<InvDescriptor> iotlb,
    List<InvDescriptor> atc,
    List<IotlbTarget> rescan,
    int rangesIn,
    int rangesOut) {

  private static final Comparator<long[]> BY_FIRST =
      (a, b) -> Long.compareUnsigned(a[0], b[0]);

  public InvalidationBatch {
    fixed = List.copyOf(fixed);
    iotlb = List.copyOf(iotlb);
    atc = List.copyOf(atc);
    rescan = List.copyOf(rescan);
  }

  /** Number of requests the batch completes. */
  public int size() {
    return requestIds.length;
  }

  /** Descriptors the batch issues, its Wait included. */
  public int descriptors() {
    return fixed.size() + iotlb.size() + atc.size() + 1;
  }

  /** The descriptors to submit, in order, ending with a Wait carrying {@code waitToken}. */
  public List<InvDescriptor> plan(long waitToken) {
    List<InvDescriptor> out = new ArrayList<>(descriptors());
    out.addAll(fixed);
    out.addAll(iotlb);
    out.addAll(atc);
    out.add(new InvDescriptor.Wait(waitToken));
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof InvalidationBatch b
        && reason == b.reason
        && Arrays.equals(requestIds, b.requestIds)
        && fixed.equals(b.fixed)
        && iotlb.equals(b.iotlb)
        && atc.equals(b.atc)
        && rescan.equals(b.rescan)
        && rangesIn == b.rangesIn
        && rangesOut == b.rangesOut;
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(requestIds) * 31 + iotlb.hashCode() * 7 + atc.hashCode();
  }

  @Override
  public String toString() {
    return "InvalidationBatch[" + reason + ", requests=" + Arrays.toString(requestIds)
        + ", fixed=" + fixed + ", iotlb=" + iotlb + ", atc=" + atc + ", rescan=" + rescan
        + ", ranges " + rangesIn + "->" + rangesOut + "]";
  }

  // ---------------------------------------------------------------- merge

  /**
   * Merges {@code requests} (admission order) into one batch, widening for a unit whose largest
   * page-selective mask is {@code maxAddressMask}. Pure: the stream calls it off the unit actor.
   */
  public static InvalidationBatch merge(
      List<InvalidationRequest> requests, FlushReason reason, int maxAddressMask) {
    long[] ids = new long[requests.size()];
    Set<InvDescriptor> fixed = new LinkedHashSet<>();
    Map<Long, List<long[]>> iotlbGroups = new LinkedHashMap<>();
    // Table-change ranges merged among themselves only: merged with a domain flush they would
    // make the rescan cover the whole domain and flush every device TLB of it.
    Map<Long, List<long[]>> changedGroups = new LinkedHashMap<>();
    Map<Long, List<long[]>> atcGroups = new LinkedHashMap<>();
    int rangesIn = 0;
    for (int i = 0; i < ids.length; i++) {
      InvalidationRequest r = requests.get(i);
      ids[i] = r.id();
      fixed.addAll(r.fixed());
      rangesIn += r.ranges();
      for (IotlbTarget t : r.iotlb()) {
        long[] range = {t.first(), t.last(), t.leaf() ? 1 : 0, t.tableChange() ? 1 : 0};
        iotlbGroups.computeIfAbsent(key(t.domainId(), t.pasid()), k -> new ArrayList<>())
            .add(range);
        if (t.tableChange()) {
          changedGroups.computeIfAbsent(key(t.domainId(), t.pasid()), k -> new ArrayList<>())
              .add(range);
        }
      }
      for (AtcTarget t : r.atc()) {
        atcGroups.computeIfAbsent(key(t.rid(), t.pasid()), k -> new ArrayList<>())
            .add(new long[] {t.first(), t.last(), 0, 0});
      }
    }
    boolean global = fixed.contains(new InvDescriptor.IotlbGlobal());
    int rangesOut = 0;

    Set<InvDescriptor> iotlb = new LinkedHashSet<>();
    List<IotlbTarget> rescan = new ArrayList<>();
    for (Map.Entry<Long, List<long[]>> g : iotlbGroups.entrySet()) {
      int domainId = (int) (g.getKey() >> 32);
      int pasid = (int) (long) g.getKey();
      for (long[] m : mergeRanges(g.getValue())) {
        rangesOut++;
        boolean leaf = m[2] != 0;
        if (!global) {
          iotlb.add(
              InvalidationPlan.rangeLast(domainId, pasid, m[0], m[1], maxAddressMask, leaf,
                  List.of(), 0).get(0));
        }
      }
    }
    for (Map.Entry<Long, List<long[]>> g : changedGroups.entrySet()) {
      int domainId = (int) (g.getKey() >> 32);
      int pasid = (int) (long) g.getKey();
      for (long[] m : mergeRanges(g.getValue())) {
        rescan.add(new IotlbTarget(domainId, pasid, m[0], m[1], m[2] != 0, true));
      }
    }
    Set<InvDescriptor> atc = new LinkedHashSet<>();
    for (Map.Entry<Long, List<long[]>> g : atcGroups.entrySet()) {
      int rid = (int) (g.getKey() >> 32);
      int pasid = (int) (long) g.getKey();
      for (long[] m : mergeRanges(g.getValue())) {
        rangesOut++;
        InvalidationPlan.PsiRange span = InvalidationPlan.psiRange(m[0], m[1]);
        atc.add(new InvDescriptor.DevTlb(rid, pasid, span.address(),
            Math.min(span.addressMask(), DeviceAtc.WHOLE_SPACE_ORDER)));
      }
    }
    return new InvalidationBatch(reason, ids, List.copyOf(fixed), dropSubsumedIotlb(iotlb),
        dropSubsumedAtc(atc), rescan, rangesIn, rangesOut);
  }

  private static long key(int a, int b) {
    return ((long) a << 32) | (b & 0xFFFF_FFFFL);
  }

  /**
   * Sorted by first address (unsigned), overlapping or adjacent ranges merged: {@code {first,
   * last, leaf, tableChange}} with leaf the AND and tableChange the OR of the merged parts.
   */
  static List<long[]> mergeRanges(List<long[]> ranges) {
    List<long[]> sorted = new ArrayList<>(ranges);
    sorted.sort(BY_FIRST);
    List<long[]> out = new ArrayList<>();
    long[] cur = null;
    for (long[] r : sorted) {
      if (cur != null
          && (Long.compareUnsigned(r[0], cur[1]) <= 0 || r[0] == cur[1] + 1)) {
        if (Long.compareUnsigned(r[1], cur[1]) > 0) {
          cur[1] = r[1];
        }
        cur[2] &= r[2];
        cur[3] |= r[3];
        continue;
      }
      cur = r.clone();
      out.add(cur);
    }
    return out;
  }

  private static List<InvDescriptor> dropSubsumedIotlb(Set<InvDescriptor> all) {
    Set<Integer> domainWide = new HashSet<>();
    Set<Long> pasidWide = new HashSet<>();
    for (InvDescriptor d : all) {
      if (d instanceof InvDescriptor.IotlbDomain x) {
        domainWide.add(x.domainId());
      } else if (d instanceof InvDescriptor.IotlbPasid x) {
        pasidWide.add(key(x.domainId(), x.pasid()));
      }
    }
    List<InvDescriptor> out = new ArrayList<>(all.size());
    for (InvDescriptor d : all) {
      if (d instanceof InvDescriptor.IotlbPasid x && domainWide.contains(x.domainId())) {
        continue;
      }
      if (d instanceof InvDescriptor.IotlbPages x
          && (domainWide.contains(x.domainId())
              || (x.pasid() != Iotlb.ANY_PASID
                  && pasidWide.contains(key(x.domainId(), x.pasid()))))) {
        continue;
      }
      out.add(d);
    }
    return out;
  }

  private static List<InvDescriptor> dropSubsumedAtc(Set<InvDescriptor> all) {
    Set<Integer> ridWide = new HashSet<>();
    Set<Long> pasidWide = new HashSet<>();
    for (InvDescriptor d : all) {
      InvDescriptor.DevTlb x = (InvDescriptor.DevTlb) d;
      if (x.sizeOrder() >= DeviceAtc.WHOLE_SPACE_ORDER) {
        if (x.pasid() == FaultRecord.NO_PASID) {
          ridWide.add(x.rid());
        } else {
          pasidWide.add(key(x.rid(), x.pasid()));
        }
      }
    }
    List<InvDescriptor> out = new ArrayList<>(all.size());
    for (InvDescriptor d : all) {
      InvDescriptor.DevTlb x = (InvDescriptor.DevTlb) d;
      boolean wholeNoPasid =
          x.sizeOrder() >= DeviceAtc.WHOLE_SPACE_ORDER && x.pasid() == FaultRecord.NO_PASID;
      boolean wholeOwnPasid = x.sizeOrder() >= DeviceAtc.WHOLE_SPACE_ORDER;
      if (!wholeNoPasid && ridWide.contains(x.rid())) {
        continue;
      }
      if (!wholeOwnPasid && pasidWide.contains(key(x.rid(), x.pasid()))) {
        continue;
      }
      out.add(d);
    }
    return out;
  }

  // ---------------------------------------------------------------- coverage

  /**
   * Whether this batch's IOTLB descriptors already drop everything {@code d} would: the executor
   * skips descriptors of an execution-time rescan that add nothing.
   */
  public boolean coversIotlb(InvDescriptor d) {
    if (fixed.contains(new InvDescriptor.IotlbGlobal()) || iotlb.contains(d)) {
      return true;
    }
    int domainId;
    if (d instanceof InvDescriptor.IotlbDomain x) {
      domainId = x.domainId();
    } else if (d instanceof InvDescriptor.IotlbPasid x) {
      domainId = x.domainId();
    } else if (d instanceof InvDescriptor.IotlbPages x) {
      domainId = x.domainId();
    } else {
      return false;
    }
    for (InvDescriptor e : iotlb) {
      if (e instanceof InvDescriptor.IotlbDomain y && y.domainId() == domainId) {
        return true;
      }
      if (e instanceof InvDescriptor.IotlbPasid y && y.domainId() == domainId) {
        if (d instanceof InvDescriptor.IotlbPasid x && x.pasid() == y.pasid()) {
          return true;
        }
        if (d instanceof InvDescriptor.IotlbPages x && x.pasid() == y.pasid()) {
          return true;
        }
      }
      if (e instanceof InvDescriptor.IotlbPages y
          && d instanceof InvDescriptor.IotlbPages x
          && y.domainId() == domainId
          && (y.pasid() == x.pasid() || y.pasid() == Iotlb.ANY_PASID)
          && contains(y.address(), y.addressMask(), x.address(), x.addressMask())) {
        return true;
      }
    }
    return false;
  }

  /** Whether this batch's device-TLB descriptors already drop everything {@code d} would. */
  public boolean coversAtc(InvDescriptor.DevTlb d) {
    InvalidationPlan.PsiRange want = atcSpan(d);
    for (InvDescriptor e : atc) {
      InvDescriptor.DevTlb y = (InvDescriptor.DevTlb) e;
      if (y.rid() != d.rid() || (y.pasid() != d.pasid() && y.pasid() != FaultRecord.NO_PASID)) {
        continue;
      }
      InvalidationPlan.PsiRange have = atcSpan(y);
      if (contains(have.address(), have.addressMask(), want.address(), want.addressMask())) {
        return true;
      }
    }
    return false;
  }

  /** The aligned span a device widens a device-TLB invalidation to (its address may be unaligned). */
  private static InvalidationPlan.PsiRange atcSpan(InvDescriptor.DevTlb d) {
    AtcTarget t = InvalidationRequest.atcOf(d);
    return InvalidationPlan.psiRange(t.first(), t.last());
  }

  /** Whether the aligned span (a, 2^m pages) contains the aligned span (b, 2^n pages). */
  private static boolean contains(long a, int m, long b, int n) {
    if (m >= Iotlb.WHOLE_SPACE_MASK) {
      return true;
    }
    if (n > m) {
      return false;
    }
    long offsetMask = (1L << (m + 12)) - 1;
    return (a & ~offsetMask) == (b & ~offsetMask);
  }
}
