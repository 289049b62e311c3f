package io.iommulab.actors.pipeline;

import io.iommulab.actors.pipeline.InvalidationRequest.AtcTarget;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.hardware.cache.DeviceAtc;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.InvalidationPlan;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.fault.FaultRecord;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The first, object-per-range implementation of {@link InvalidationBatch#merge}, kept as the
 * specification the array-based one must match exactly (same descriptors, same order).
 */
final class ReferenceMerge {
  private ReferenceMerge() {}

  private static final Comparator<long[]> BY_FIRST =
      (a, b) -> Long.compareUnsigned(a[0], b[0]);

  static InvalidationBatch merge(
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

}
