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
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
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
   *
   * <p>Groups keep the order of their first appearance, ranges within a group are sorted by first
   * address; the work is a few primitive arrays per batch, not objects per request (a batch of a
   * busy unit holds hundreds of requests).
   */
  public static InvalidationBatch merge(
      List<InvalidationRequest> requests, FlushReason reason, int maxAddressMask) {
    int n = requests.size();
    long[] ids = new long[n];
    Set<InvDescriptor> fixed = null;
    int rangesIn = 0;
    int iotlbCount = 0;
    int atcCount = 0;
    for (int i = 0; i < n; i++) {
      InvalidationRequest r = requests.get(i);
      ids[i] = r.id();
      rangesIn += r.ranges();
      iotlbCount += r.iotlb().size();
      atcCount += r.atc().size();
      if (!r.fixed().isEmpty()) {
        if (fixed == null) {
          fixed = new LinkedHashSet<>();
        }
        fixed.addAll(r.fixed());
      }
    }
    boolean global = fixed != null && fixed.contains(new InvDescriptor.IotlbGlobal());
    Ranges iotlbRanges = new Ranges(iotlbCount);
    // Table-change ranges merged among themselves only: merged with a domain flush they would
    // make the rescan cover the whole domain and flush every device TLB of it.
    Ranges changedRanges = null;
    Ranges atcRanges = new Ranges(atcCount);
    for (int i = 0; i < n; i++) {
      InvalidationRequest r = requests.get(i);
      List<IotlbTarget> targets = r.iotlb();
      for (int k = 0; k < targets.size(); k++) {
        IotlbTarget t = targets.get(k);
        long key = key(t.domainId(), t.pasid());
        iotlbRanges.add(key, t.first(), t.last(), t.leaf());
        if (t.tableChange()) {
          if (changedRanges == null) {
            changedRanges = new Ranges(iotlbCount);
          }
          changedRanges.add(key, t.first(), t.last(), t.leaf());
        }
      }
      List<AtcTarget> atcTargets = r.atc();
      for (int k = 0; k < atcTargets.size(); k++) {
        AtcTarget t = atcTargets.get(k);
        atcRanges.add(key(t.rid(), t.pasid()), t.first(), t.last(), false);
      }
    }
    int rangesOut = 0;
    List<InvDescriptor> iotlb = new ArrayList<>(iotlbCount);
    boolean iotlbMayRepeat = false;
    iotlbRanges.merge();
    for (int m = 0; m < iotlbRanges.merged; m++) {
      rangesOut++;
      if (global) {
        continue;
      }
      long key = iotlbRanges.mKey[m];
      InvDescriptor d = InvalidationPlan.iotlbRangeLast((int) (key >> 32), (int) key,
          iotlbRanges.mFirst[m], iotlbRanges.mLast[m], maxAddressMask, iotlbRanges.mLeaf[m]);
      // Two ranges of one group may widen to the same span, and the wide fallbacks of two groups
      // of one domain are the same descriptor: only then can a descriptor repeat.
      iotlbMayRepeat |= !(d instanceof InvDescriptor.IotlbPages)
          || (m > 0 && iotlbRanges.mKey[m - 1] == key);
      iotlb.add(d);
    }
    List<IotlbTarget> rescan;
    if (changedRanges == null) {
      rescan = List.of();
    } else {
      changedRanges.merge();
      rescan = new ArrayList<>(changedRanges.merged);
      for (int m = 0; m < changedRanges.merged; m++) {
        long key = changedRanges.mKey[m];
        rescan.add(new IotlbTarget((int) (key >> 32), (int) key, changedRanges.mFirst[m],
            changedRanges.mLast[m], changedRanges.mLeaf[m], true));
      }
    }
    List<InvDescriptor> atc = new ArrayList<>(atcCount);
    boolean atcMayRepeat = false;
    atcRanges.merge();
    for (int m = 0; m < atcRanges.merged; m++) {
      rangesOut++;
      long key = atcRanges.mKey[m];
      InvalidationPlan.PsiRange span = InvalidationPlan.psiRange(atcRanges.mFirst[m], atcRanges.mLast[m]);
      atcMayRepeat |= m > 0 && atcRanges.mKey[m - 1] == key;
      atc.add(new InvDescriptor.DevTlb((int) (key >> 32), (int) key, span.address(),
          Math.min(span.addressMask(), DeviceAtc.WHOLE_SPACE_ORDER)));
    }
    return new InvalidationBatch(reason, ids, fixed == null ? List.of() : List.copyOf(fixed),
        dropSubsumedIotlb(iotlbMayRepeat ? new LinkedHashSet<>(iotlb) : iotlb),
        dropSubsumedAtc(atcMayRepeat ? new LinkedHashSet<>(atc) : atc), rescan, rangesIn, rangesOut);
  }

  private static long key(int a, int b) {
    return ((long) a << 32) | (b & 0xFFFF_FFFFL);
  }

  /**
   * Ranges tagged by a group key, merged per group: groups in the order of their first range,
   * within a group sorted by first address (unsigned), overlapping or adjacent ranges merged with
   * leaf the AND of the merged parts.
   */
  private static final class Ranges {
    private int size;
    private final long[] key;
    private final long[] first;
    private final long[] last;
    private final boolean[] leaf;
    /** Group of each range: the index of its key's first appearance. */
    private final int[] group;
    private int groups;
    /** Open-addressing table key -> group + 1 (0 empty), capacity a power of two over 2x size. */
    private final long[] tableKey;
    private final int[] tableGroup;

    int merged;
    long[] mKey;
    long[] mFirst;
    long[] mLast;
    boolean[] mLeaf;

    Ranges(int capacity) {
      key = new long[capacity];
      first = new long[capacity];
      last = new long[capacity];
      leaf = new boolean[capacity];
      group = new int[capacity];
      int t = Integer.highestOneBit(Math.max(1, capacity) * 2 + 1) << 1;
      tableKey = new long[t];
      tableGroup = new int[t];
    }

    void add(long k, long f, long l, boolean isLeaf) {
      int i = size++;
      key[i] = k;
      first[i] = f;
      last[i] = l;
      leaf[i] = isLeaf;
      group[i] = groupOf(k);
    }

    private int groupOf(long k) {
      int mask = tableKey.length - 1;
      int h = (int) ((k * 0x9E3779B97F4A7C15L) >>> 40) & mask;
      while (tableGroup[h] != 0) {
        if (tableKey[h] == k) {
          return tableGroup[h] - 1;
        }
        h = (h + 1) & mask;
      }
      tableKey[h] = k;
      tableGroup[h] = ++groups;
      return groups - 1;
    }

    /** Fills the merged ranges (m*), group by group. */
    void merge() {
      mKey = new long[size];
      mFirst = new long[size];
      mLast = new long[size];
      mLeaf = new boolean[size];
      merged = 0;
      if (size == 0) {
        return;
      }
      // Bucket the ranges by group (counting sort, stable), then order each bucket by first.
      int[] start = new int[groups + 1];
      for (int i = 0; i < size; i++) {
        start[group[i] + 1]++;
      }
      for (int g = 0; g < groups; g++) {
        start[g + 1] += start[g];
      }
      int[] order = new int[size];
      int[] fill = Arrays.copyOf(start, groups);
      for (int i = 0; i < size; i++) {
        order[fill[group[i]]++] = i;
      }
      for (int g = 0; g < groups; g++) {
        int from = start[g];
        int to = start[g + 1];
        sortByFirst(order, from, to);
        int cur = -1;
        for (int j = from; j < to; j++) {
          int r = order[j];
          if (cur >= 0
              && (Long.compareUnsigned(first[r], mLast[cur]) <= 0 || first[r] == mLast[cur] + 1)) {
            if (Long.compareUnsigned(last[r], mLast[cur]) > 0) {
              mLast[cur] = last[r];
            }
            mLeaf[cur] &= leaf[r];
            continue;
          }
          cur = merged++;
          mKey[cur] = key[r];
          mFirst[cur] = first[r];
          mLast[cur] = last[r];
          mLeaf[cur] = leaf[r];
        }
      }
    }

    /** Stable sort of {@code order[from, to)} by first address (unsigned): insertion or merge. */
    private void sortByFirst(int[] order, int from, int to) {
      if (to - from <= 32) {
        for (int j = from + 1; j < to; j++) {
          int r = order[j];
          int k = j - 1;
          while (k >= from && Long.compareUnsigned(first[order[k]], first[r]) > 0) {
            order[k + 1] = order[k];
            k--;
          }
          order[k + 1] = r;
        }
        return;
      }
      Integer[] boxed = new Integer[to - from];
      for (int j = from; j < to; j++) {
        boxed[j - from] = order[j];
      }
      Arrays.sort(boxed, (a, b) -> Long.compareUnsigned(first[a], first[b]));
      for (int j = from; j < to; j++) {
        order[j] = boxed[j - from];
      }
    }
  }

  private static List<InvDescriptor> dropSubsumedIotlb(Collection<InvDescriptor> all) {
    boolean anyWide = false;
    for (InvDescriptor d : all) {
      anyWide |= d instanceof InvDescriptor.IotlbDomain || d instanceof InvDescriptor.IotlbPasid;
    }
    if (!anyWide) {
      return all instanceof List<InvDescriptor> l ? l : new ArrayList<>(all);
    }
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

  private static List<InvDescriptor> dropSubsumedAtc(Collection<InvDescriptor> all) {
    boolean anyWhole = false;
    for (InvDescriptor d : all) {
      anyWhole |= ((InvDescriptor.DevTlb) d).sizeOrder() >= DeviceAtc.WHOLE_SPACE_ORDER;
    }
    if (!anyWhole) {
      return all instanceof List<InvDescriptor> l ? l : new ArrayList<>(all);
    }
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
