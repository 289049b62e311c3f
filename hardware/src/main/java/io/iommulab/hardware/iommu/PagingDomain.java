package io.iommulab.hardware.iommu;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * A kernel-managed I/O page table domain ({@code IOMMU_DOMAIN_UNMANAGED}, iommufd HWPT_PAGING),
 * translating IOVA to host physical addresses through an {@link IoPageTable}; on VT-d a
 * second-stage table, on SMMUv3 a stage-2 (VMID-tagged) table when it is a nest parent.
 *
 * <h2>Flags (fixed at allocation, iommufd {@code IOMMU_HWPT_ALLOC_*})</h2>
 *
 * <ul>
 *   <li>NEST_PARENT: may be the stage 2 of {@link NestedDomain}s; many children may share it.
 *   <li>DIRTY_TRACKING: dirty tracking may be switched on ({@link #setDirtyTracking}); without
 *       the flag that is EINVAL (iommufd selftest {@code set_dirty_tracking}).
 * </ul>
 *
 * <h2>Force snoop ({@link #enforceCacheCoherency})</h2>
 *
 * Once enforced, every new map carries {@link Access#SNOOP} ({@code DMA_PTE_SNP}). Enforcing is
 * refused when the unit lacks snoop control (ECAP.SC) or when the domain has ever had a mapping:
 * VT-d sets SNP only on new maps, and its {@code has_mappings} flag is sticky
 * ({@code drivers/iommu/intel/iommu.c} {@code intel_iommu_enforce_cache_coherency}). It is
 * idempotent once set and never undone. Callers' SNOOP bits are ignored: the domain alone
 * decides SNP, as {@code intel_iommu_map} ignores {@code IOMMU_CACHE}.
 *
 * <h2>Invariants</h2>
 *
 * <ul>
 *   <li>{@code isCacheCoherencyEnforced()} ⇒ every leaf mapped since carries SNOOP, and the unit
 *       has snoop control.
 *   <li>{@code nestedChildren() > 0} ⇒ NEST_PARENT, and the domain cannot be freed.
 *   <li>map and unmap are all-or-nothing ({@link IoPageTable}); they change only the table:
 *       stale IOTLB and ATC entries are removed by the invalidation the caller runs afterwards
 *       ({@link IommuUnit#invalidateRange}), as {@code iommu_unmap} + {@code iotlb_sync}.
 * </ul>
 */
public final class PagingDomain extends Domain {
  private final IoPageTable table;
  private final boolean nestParent;
  private final boolean dirtyTrackingCapable;
  private boolean dirtyTrackingEnabled;
  private boolean forceSnoop;
  private boolean hasMappings;
  private int nestedChildren;

  PagingDomain(int id, IommuUnit unit, IoPageTable table, boolean nestParent, boolean dirty) {
    super(id, unit);
    this.table = table;
    this.nestParent = nestParent;
    this.dirtyTrackingCapable = dirty;
  }

  public boolean isNestParent() {
    return nestParent;
  }

  /** Allocated with DIRTY_TRACKING. */
  public boolean isDirtyTrackingCapable() {
    return dirtyTrackingCapable;
  }

  public boolean isDirtyTrackingEnabled() {
    return dirtyTrackingEnabled;
  }

  public boolean isCacheCoherencyEnforced() {
    return forceSnoop;
  }

  /** Nested domains using this one as their stage 2. */
  public int nestedChildren() {
    return nestedChildren;
  }

  /** Smallest page size: the IOVA alignment iommufd derives from {@code pgsize_bitmap}. */
  public long iovaAlignment() {
    return Long.lowestOneBit(table.pageSizeBitmap());
  }

  public List<PageSize> pageSizes() {
    return table.pageSizes();
  }

  public int levels() {
    return table.levels();
  }

  public int addressWidth() {
    return table.addressWidth();
  }

  /**
   * Maps {@code [iova, iova + length)} to {@code [pa, pa + length)}; see {@link IoPageTable#map}
   * for the errnos. SNOOP is added when the domain enforces cache coherency.
   */
  public Outcome<Void> map(long iova, long pa, long length, int prot) {
    checkLive();
    int p = prot & ~Access.SNOOP;
    if (forceSnoop) {
      p |= Access.SNOOP;
    }
    Outcome<Void> r = table.map(iova, pa, length, p);
    if (r.isOk()) {
      hasMappings = true;
    }
    return r;
  }

  /** Unmaps; see {@link IoPageTable#unmap}: bytes removed, never splits a large page. */
  public Outcome<Long> unmap(long iova, long length) {
    checkLive();
    return table.unmap(iova, length);
  }

  /**
   * Forces snooping on every mapping made from now on. EINVAL when the unit has no snoop control
   * or the domain already has (or had) mappings; OK and no change when already enforced.
   */
  public Outcome<Void> enforceCacheCoherency() {
    checkLive();
    if (forceSnoop) {
      return Outcome.OK;
    }
    if (!unit().snoopControl()) {
      return Outcome.err(
          Errno.EINVAL,
          "domain %d: unit %d has no snoop control (ECAP.SC)",
          id(),
          unit().unitId());
    }
    if (hasMappings) {
      return Outcome.err(
          Errno.EINVAL,
          "domain %d: already has mappings; SNP is only set on new maps",
          id());
    }
    forceSnoop = true;
    return Outcome.OK;
  }

  /**
   * Switches dirty tracking on or off (VT-d SSADE in the PASID entries, SMMUv3 HTTU DBM). EINVAL
   * unless allocated with DIRTY_TRACKING.
   */
  public Outcome<Void> setDirtyTracking(boolean enable) {
    checkLive();
    if (!dirtyTrackingCapable) {
      return Outcome.err(
          Errno.EINVAL, "domain %d: not allocated with DIRTY_TRACKING", id());
    }
    dirtyTrackingEnabled = enable;
    return Outcome.OK;
  }

  /**
   * Reports dirty pages of the range ({@link IoPageTable#readAndClearDirty}); EOPNOTSUPP unless
   * allocated with DIRTY_TRACKING ({@code iommu_read_and_clear_dirty}: no dirty ops). After
   * clearing, the caller must invalidate the range so cached writable translations go.
   */
  public Outcome<Long> readAndClearDirty(
      long iova, long length, boolean clear, LongConsumer dirtyPageIova) {
    checkLive();
    if (!dirtyTrackingCapable) {
      return Outcome.err(
          Errno.EOPNOTSUPP, "domain %d: not allocated with DIRTY_TRACKING", id());
    }
    return table.readAndClearDirty(iova, length, clear, dirtyPageIova);
  }

  /** Walks without side effects (no dirty bit), as {@code iova_to_phys}. */
  public boolean iovaToPhys(long iova, Translation out) {
    return table.walk(iova, out);
  }

  public long mappedBytes() {
    return table.mappedBytes();
  }

  public long leafCount() {
    return table.leafCount();
  }

  public boolean isEmpty() {
    return table.isEmpty();
  }

  public void forEachLeaf(IoPageTable.LeafVisitor visitor) {
    table.forEachLeaf(visitor);
  }

  public List<IoPageTable.Leaf> leaves() {
    return table.leaves();
  }

  public IoPageTable.Snapshot tableSnapshot() {
    return table.snapshot();
  }

  /** Structural check of the table (tests). */
  public void checkInvariants() {
    table.checkInvariants();
  }

  void addChild() {
    nestedChildren++;
  }

  void removeChild() {
    if (nestedChildren == 0) {
      throw new IllegalStateException("domain " + id() + " has no nested children");
    }
    nestedChildren--;
  }

  void releaseTable() {
    table.clear();
  }

  /** The table, for the nested walk (same package) and the unit. */
  IoPageTable table() {
    return table;
  }

  @Override
  PasidEntry.Pgtt pgtt() {
    return PasidEntry.Pgtt.SECOND_STAGE;
  }

  @Override
  boolean dirtyTrackingActive() {
    return dirtyTrackingEnabled;
  }

  @Override
  FaultReason walk(long iova, boolean write, CostModel cost, Translation out) {
    boolean ok = write && dirtyTrackingEnabled ? table.walkForWrite(iova, out) : table.walk(iova, out);
    out.latencyNs = cost.walk(out.levels);
    return ok ? null : FaultReason.NOT_PRESENT;
  }

  @Override
  public String toString() {
    return "PagingDomain[" + id() + (nestParent ? " NEST_PARENT" : "")
        + (dirtyTrackingCapable ? " DIRTY_TRACKING" : "") + (forceSnoop ? " snoop" : "")
        + " " + table + "]";
  }
}
