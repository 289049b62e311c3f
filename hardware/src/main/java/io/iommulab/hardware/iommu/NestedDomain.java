package io.iommulab.hardware.iommu;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.pagetable.IoPageTable;

/**
 * A user-managed stage-1 domain ({@code IOMMU_DOMAIN_NESTED}, iommufd HWPT_NESTED): the guest's
 * I/O page table (IOVA → GPA) walked over a {@link PagingDomain} parent allocated with
 * NEST_PARENT (GPA → HPA). VT-d: PGTT=nested with the guest's first-stage pointer and the
 * parent's second-stage pointer ({@code drivers/iommu/intel/nested.c},
 * {@code intel_pasid_setup_nested}); SMMUv3: a stage-1 CD table under a stage-2 STE.
 *
 * <p>The guest driver writes the stage-1 table directly ({@link #stage1()}); changes become
 * visible to cached translations only after the guest's invalidation
 * ({@link IommuUnit#invalidateRange} on this domain, the {@code cache_invalidate_user} path).
 *
 * <h2>Composition</h2>
 *
 * A walk reads stage 1 for the IOVA, then stage 2 for the resulting GPA:
 *
 * <ul>
 *   <li>stage 1 not present → {@link FaultReason#NOT_PRESENT}; stage 2 not present (or the GPA
 *       beyond the parent's width) → {@link FaultReason#STAGE2_NOT_PRESENT};
 *   <li>prot = stage-1 prot ∩ stage-2 prot (READ/WRITE/EXEC), plus SNOOP when the stage-2 leaf or
 *       the parent's force-snoop (PGSNP in the nested PASID entry) says so;
 *   <li>page size = the smaller of the two leaves (the combined translation is valid for that
 *       much); hpa = stage 2 of the GPA, offset included;
 *   <li>latency = {@link CostModel#nestedWalk}(stage-1 entries, stage-2 entries): each stage-1
 *       table read is at a GPA and needs its own stage-2 walk. The stage-1 table pages
 *       themselves are assumed mapped in stage 2 (the model keeps them outside guest memory);
 *       a stage-1 fault after {@code s1} reads costs {@code s1·(parent levels + 1)} reads.
 *   <li>a write with the parent's dirty tracking on sets the stage-2 leaf's dirty bit.
 * </ul>
 *
 * <p>Invariants: the parent is a live NEST_PARENT domain of the same unit for as long as this
 * domain lives (the parent cannot be freed while it has children).
 */
public final class NestedDomain extends Domain {
  private final PagingDomain parent;
  private final IoPageTable stage1;
  /** Scratch for the stage-1 half of a walk: the hot path allocates nothing. */
  private final Translation s1 = new Translation();

  NestedDomain(int id, IommuUnit unit, PagingDomain parent, IoPageTable stage1) {
    super(id, unit);
    this.parent = parent;
    this.stage1 = stage1;
  }

  public PagingDomain parent() {
    return parent;
  }

  /** The guest-owned stage-1 table (IOVA → GPA), written by the guest IOMMU driver. */
  public IoPageTable stage1() {
    checkLive();
    return stage1;
  }

  @Override
  PasidEntry.Pgtt pgtt() {
    return PasidEntry.Pgtt.NESTED;
  }

  @Override
  boolean dirtyTrackingActive() {
    return parent.isDirtyTrackingEnabled();
  }

  @Override
  FaultReason walk(long iova, boolean write, CostModel cost, Translation out) {
    int s2Full = parent.levels();
    if (!stage1.walk(iova, s1)) {
      int reads = s1.levels * (s2Full + 1);
      out.levels = reads;
      out.latencyNs = cost.walk(reads);
      return FaultReason.NOT_PRESENT;
    }
    int s1Levels = s1.levels;
    long gpa = s1.hpa;
    IoPageTable s2 = parent.table();
    boolean ok =
        write && parent.isDirtyTrackingEnabled() ? s2.walkForWrite(gpa, out) : s2.walk(gpa, out);
    int s2Levels = ok ? out.levels : Math.max(out.levels, 1);
    out.levels = CostModel.nestedWalkReads(s1Levels, s2Levels);
    out.latencyNs = cost.nestedWalk(s1Levels, s2Levels);
    if (!ok) {
      return FaultReason.STAGE2_NOT_PRESENT;
    }
    int rwx = Access.READ | Access.WRITE | Access.EXEC;
    int prot = s1.prot & out.prot & rwx;
    if ((out.prot & Access.SNOOP) != 0 || parent.isCacheCoherencyEnforced()) {
      prot |= Access.SNOOP;
    }
    out.prot = prot;
    if (s1.pageSize.bytes() < out.pageSize.bytes()) {
      out.pageSize = s1.pageSize;
    }
    out.source = Translation.Source.NESTED_WALK;
    return null;
  }

  @Override
  public String toString() {
    return "NestedDomain[" + id() + " parent=" + parent.id() + " " + stage1 + "]";
  }
}
