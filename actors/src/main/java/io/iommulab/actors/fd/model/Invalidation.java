package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.List;

/**
 * IOMMU_HWPT_INVALIDATE's array contract ({@code hw_pagetable.c} {@code iommufd_hwpt_invalidate},
 * {@code include/linux/iommu.h} {@code iommu_copy_struct_from_user_array}, the drivers' {@code
 * cache_invalidate_user}): validates the entries in order and translates them into unit entries —
 * vdev_id → RID through the vIOMMU, IOTLB entries before ATC entries as the array orders them.
 *
 * <ul>
 *   <li>Target: a HWPT_NESTED or a vIOMMU; a HWPT_PAGING (or anything else) is EINVAL.
 *   <li>{@code entry_num == 0} only checks the data type (a type probe): EINVAL when wrong.
 *   <li>{@code entry_len == 0} with entries: EINVAL before any entry. {@code entry_len} below the
 *       entry struct's minimum or above its size, or a data type the target does not take: EINVAL
 *       at entry 0.
 *   <li>Entries run in order and stop at the first bad one; {@code entry_num} is written back as
 *       the number handled before it.
 *   <li>VT-d stage 1: unknown flags or nonzero {@code __reserved} EOPNOTSUPP; {@code addr} not
 *       4 KiB aligned, or {@code npages == U64_MAX} with {@code addr ≠ 0}, EINVAL; {@code addr = 0,
 *       npages = U64_MAX} is everything. SMMUv3 vIOMMU: opcodes other than TLBI_NSNH_ALL,
 *       TLBI_NH_VA/VAA/ALL/ASID, ATC_INV, CFGI_CD(_ALL) are EIO, an unknown vSID is EIO. Selftest
 *       mocks: cache/iotlb id above 3 or an unknown vdev_id EINVAL, unknown flags EOPNOTSUPP.
 *   <li>Unit entries carry npages in [1, 2^52] ({@link #WHOLE} = everything); an ATC entry for a
 *       function without ATS is dropped (nothing to invalidate; the SMMU command would be a no-op).
 * </ul>
 */
public final class Invalidation {
  private Invalidation() {}

  /** What a unit invalidates for one entry. */
  public enum Kind {
    IOTLB_RANGE,
    IOTLB_ALL,
    ATC
  }

  /** One unit entry (already translated: {@code rid} is physical). */
  public record Entry(Kind kind, int pasid, long address, long npages, int rid, boolean leaf) {}

  /** Unit entries for one domain. */
  public record Batch(int unitId, int domainId, List<Entry> entries) {}

  /**
   * uAPI entries {@code [from, to)}; each contributes exactly one unit entry to every batch (a
   * step without batches is entries that need nothing from a unit).
   */
  public record Step(int from, int to, List<Batch> batches) {}

  /**
   * The steps for the valid prefix {@code [0, valid)} and, when an entry is bad, its errno (the
   * array stops there; {@code entry_num} = {@code valid} unless a unit fails earlier).
   */
  public record Plan(List<Step> steps, int valid, Errno errno, String message) {}

  private static final long U64_MAX = -1L;

  /** npages meaning the whole address space in a unit entry (2^52 pages of 4 KiB = 2^64 bytes). */
  public static final long WHOLE = 1L << 52;

  /** A guest npages as a unit npages: 0 or beyond 2^52 (U64_MAX included) is the whole space. */
  private static long npages(long n) {
    return n <= 0 || n > WHOLE ? WHOLE : n;
  }

  /** Validates and translates; Err for a header error (nothing handled, entry_num untouched). */
  static Outcome<Plan> plan(FdObject target, int dataType, int entryLen, List<InvalidationEntry> entries) {
    int expected;
    int minLen;
    int maxLen;
    HwPagetable nested = null;
    Viommu viommu = null;
    if (target instanceof HwPagetable h && !h.isPaging()) {
      nested = h;
      if (h.dataType == Uapi.HWPT_DATA_SELFTEST) {
        expected = Uapi.HWPT_INVALIDATE_DATA_SELFTEST;
        minLen = maxLen = Uapi.SELFTEST_HWPT_INVALIDATE_LEN;
      } else if (h.dataType == Uapi.HWPT_DATA_VTD_S1) {
        expected = Uapi.HWPT_INVALIDATE_DATA_VTD_S1;
        minLen = Uapi.VTD_S1_INVALIDATE_MIN_LEN;
        maxLen = Uapi.VTD_S1_INVALIDATE_LEN;
      } else {
        return Outcome.err(Errno.EOPNOTSUPP, "hwpt %d: its driver has no user invalidation; use its vIOMMU", h.id());
      }
    } else if (target instanceof Viommu v) {
      viommu = v;
      if (v.viommuType == Uapi.VIOMMU_TYPE_SELFTEST) {
        expected = Uapi.VIOMMU_INVALIDATE_DATA_SELFTEST;
        minLen = maxLen = Uapi.SELFTEST_VIOMMU_INVALIDATE_LEN;
      } else {
        expected = Uapi.VIOMMU_INVALIDATE_DATA_ARM_SMMUV3;
        minLen = maxLen = Uapi.ARM_SMMUV3_INVALIDATE_LEN;
      }
    } else {
      return Outcome.err(
          Errno.EINVAL, "id %d: a %s cannot be invalidated by the user (HWPT_NESTED or vIOMMU only)",
          target.id(), target.type());
    }
    if (entries.isEmpty()) {
      if (dataType != expected) {
        return Outcome.err(Errno.EINVAL, "data_type 0x%x: the target takes 0x%x", dataType, expected);
      }
      return Outcome.ok(new Plan(List.of(), 0, null, null));
    }
    if (entryLen == 0) {
      return Outcome.err(Errno.EINVAL, "entry_len 0 with %d entries", entries.size());
    }
    if (dataType != expected) {
      return Outcome.ok(bad(List.of(), 0, Errno.EINVAL, String.format("data_type 0x%x: the target takes 0x%x", dataType, expected)));
    }
    if (entryLen < minLen || entryLen > maxLen) {
      return Outcome.ok(bad(List.of(), 0, Errno.EINVAL,
          String.format("entry_len %d: must be from %d to %d", entryLen, minLen, maxLen)));
    }
    List<Step> steps = new ArrayList<>();
    for (int i = 0; i < entries.size(); i++) {
      InvalidationEntry e = entries.get(i);
      List<Batch> targets = new ArrayList<>(1);
      String problem;
      Errno errno;
      if (nested != null && expected == Uapi.HWPT_INVALIDATE_DATA_VTD_S1) {
        if ((e.flags() & ~Uapi.VTD_INV_FLAGS_LEAF) != 0 || e.reserved() != 0) {
          errno = Errno.EOPNOTSUPP;
          problem = String.format("entry %d: flags 0x%x or __reserved set", i, e.flags());
        } else if ((e.addr() & 0xfff) != 0 || (e.npages() == U64_MAX && e.addr() != 0)) {
          errno = Errno.EINVAL;
          problem = String.format("entry %d: addr 0x%x / npages 0x%x", i, e.addr(), e.npages());
        } else {
          errno = null;
          problem = null;
          Entry u = e.addr() == 0 && e.npages() == U64_MAX
              ? new Entry(Kind.IOTLB_ALL, Device.NO_PASID, 0, WHOLE, 0, false)
              : new Entry(Kind.IOTLB_RANGE, Device.NO_PASID, e.addr(), npages(e.npages()), 0,
                  (e.flags() & Uapi.VTD_INV_FLAGS_LEAF) != 0);
          if (e.npages() != 0) {
            targets.add(one(nested, u));
          }
        }
      } else if (nested != null) { // selftest nested {flags, iotlb_id}
        if ((e.flags() & ~Uapi.TEST_INVALIDATE_FLAG_ALL) != 0) {
          errno = Errno.EOPNOTSUPP;
          problem = String.format("entry %d: flags 0x%x", i, e.flags());
        } else if ((e.flags() & Uapi.TEST_INVALIDATE_FLAG_ALL) == 0 && (e.cacheId() < 0 || e.cacheId() > 3)) {
          errno = Errno.EINVAL;
          problem = String.format("entry %d: iotlb_id %d above 3", i, e.cacheId());
        } else {
          errno = null;
          problem = null;
          targets.add(one(nested, new Entry(Kind.IOTLB_ALL, Device.NO_PASID, 0, WHOLE, 0, false)));
        }
      } else if (viommu.viommuType == Uapi.VIOMMU_TYPE_SELFTEST) {
        Vdevice vd = viommu.find(e.vdevId());
        if ((e.flags() & ~Uapi.TEST_INVALIDATE_FLAG_ALL) != 0) {
          errno = Errno.EOPNOTSUPP;
          problem = String.format("entry %d: flags 0x%x", i, e.flags());
        } else if ((e.flags() & Uapi.TEST_INVALIDATE_FLAG_ALL) == 0 && (e.cacheId() < 0 || e.cacheId() > 3)) {
          errno = Errno.EINVAL;
          problem = String.format("entry %d: cache_id %d above 3", i, e.cacheId());
        } else if (vd == null) {
          errno = Errno.EINVAL;
          problem = String.format("entry %d: vdev_id 0x%x has no vDEVICE in vIOMMU %d", i, e.vdevId(), viommu.id());
        } else {
          errno = null;
          problem = null;
          if (vd.device.info.ats()) {
            targets.add(one(viommu.hwpt, new Entry(Kind.ATC, Device.NO_PASID, 0, WHOLE, vd.device.rid, false)));
          }
        }
      } else { // SMMUv3 CMDQ command
        errno = null;
        problem = null;
        switch (e.opcode()) {
          case Uapi.CMDQ_OP_TLBI_NSNH_ALL, Uapi.CMDQ_OP_TLBI_NH_ALL, Uapi.CMDQ_OP_TLBI_NH_ASID -> {
            for (HwPagetable child : viommu.nested) {
              targets.add(one(child, new Entry(Kind.IOTLB_ALL, Device.NO_PASID, 0, WHOLE, 0, false)));
            }
          }
          case Uapi.CMDQ_OP_TLBI_NH_VA, Uapi.CMDQ_OP_TLBI_NH_VAA -> {
            for (HwPagetable child : viommu.nested) {
              targets.add(one(child, new Entry(Kind.IOTLB_RANGE, Device.NO_PASID, e.addr() & ~0xfffL,
                  npages(e.npages()), 0, (e.flags() & 1) != 0)));
            }
          }
          case Uapi.CMDQ_OP_ATC_INV, Uapi.CMDQ_OP_CFGI_CD, Uapi.CMDQ_OP_CFGI_CD_ALL -> {
            Vdevice vd = viommu.find(e.vdevId());
            if (vd == null) {
              errno = Errno.EIO;
              problem = String.format("entry %d: vSID 0x%x has no vDEVICE in vIOMMU %d", i, e.vdevId(), viommu.id());
            } else if (e.opcode() == Uapi.CMDQ_OP_ATC_INV && vd.device.info.ats()) {
              // An ATC_INV for a function without ATS has nothing to invalidate.
              targets.add(one(viommu.hwpt, new Entry(Kind.ATC, e.pasid(), e.addr() & ~0xfffL,
                  npages(e.npages()), vd.device.rid, false)));
            }
          }
          default -> {
            errno = Errno.EIO;
            problem = String.format("entry %d: opcode 0x%x is not allowed on a vIOMMU", i, e.opcode());
          }
        }
      }
      if (errno != null) {
        return Outcome.ok(new Plan(steps, i, errno, problem));
      }
      append(steps, i, targets);
    }
    return Outcome.ok(new Plan(steps, entries.size(), null, null));
  }

  private static Plan bad(List<Step> steps, int valid, Errno errno, String message) {
    return new Plan(steps, valid, errno, message);
  }

  private static Batch one(HwPagetable h, Entry e) {
    List<Entry> l = new ArrayList<>(1);
    l.add(e);
    return new Batch(h.unitId, h.domainId, l);
  }

  /** Joins entry {@code i} to the last step when it targets the same domains, else a new step. */
  private static void append(List<Step> steps, int i, List<Batch> targets) {
    if (!steps.isEmpty()) {
      Step last = steps.get(steps.size() - 1);
      if (last.to() == i && sameDomains(last.batches(), targets)) {
        for (int k = 0; k < targets.size(); k++) {
          last.batches().get(k).entries().addAll(targets.get(k).entries());
        }
        steps.set(steps.size() - 1, new Step(last.from(), i + 1, last.batches()));
        return;
      }
    }
    steps.add(new Step(i, i + 1, new ArrayList<>(targets)));
  }

  private static boolean sameDomains(List<Batch> a, List<Batch> b) {
    if (a.size() != b.size() || a.isEmpty()) {
      return false;
    }
    for (int k = 0; k < a.size(); k++) {
      if (a.get(k).domainId() != b.get(k).domainId() || a.get(k).unitId() != b.get(k).unitId()) {
        return false;
      }
    }
    return true;
  }
}
