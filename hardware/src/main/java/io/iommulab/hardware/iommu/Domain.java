package io.iommulab.hardware.iommu;

import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import java.util.ArrayList;
import java.util.List;

/**
 * An address space a unit translates through: a host-owned {@link PagingDomain} or a
 * guest-owned {@link NestedDomain} over a paging parent ({@code struct iommu_domain}). Every
 * domain belongs to one {@link IommuUnit}, which allocated it and its domain id (VT-d DID,
 * SMMUv3 VMID/ASID), and is attached at zero or more (RID, PASID) pairs of that unit.
 *
 * <p>Invariants (kept by the unit): {@link #id()} is unique among the unit's live domains and
 * never 0; {@link #attachments()} lists exactly the PASID entries pointing at this domain; a
 * freed domain has no attachments and is never attached again.
 */
public abstract sealed class Domain permits PagingDomain, NestedDomain {

  /** One PASID entry pointing at a domain: requester id and PASID (0 = RID_PASID). */
  public record Attachment(int rid, int pasid) {}

  private final int id;
  private final IommuUnit unit;
  private final List<Attachment> attachments = new ArrayList<>();
  /** Attachments whose requester has ATS enabled: none means no device TLB can cache this domain. */
  private int atsAttachments;
  private boolean live = true;

  Domain(int id, IommuUnit unit) {
    this.id = id;
    this.unit = unit;
  }

  /** The domain id: VT-d DID / SMMUv3 VMID or ASID. */
  public int id() {
    return id;
  }

  public IommuUnit unit() {
    return unit;
  }

  /** False once freed. */
  public boolean isLive() {
    return live;
  }

  /** The (RID, PASID) pairs attached to this domain, in attach order. */
  public List<Attachment> attachments() {
    return List.copyOf(attachments);
  }

  public boolean isAttached() {
    return !attachments.isEmpty();
  }

  void addAttachment(int rid, int pasid, boolean ats) {
    attachments.add(new Attachment(rid, pasid));
    if (ats) {
      atsAttachments++;
    }
  }

  void removeAttachment(int rid, int pasid, boolean ats) {
    if (!attachments.remove(new Attachment(rid, pasid))) {
      throw new IllegalStateException(
          "domain " + id + " not attached at rid " + rid + " pasid " + pasid);
    }
    if (ats) {
      atsAttachments--;
    }
  }

  /**
   * How many of the attachments are of requesters with ATS enabled (a requester's ATS capability
   * is fixed when it is probed): 0 lets an invalidation skip looking for device TLBs.
   */
  int atsAttachments() {
    return atsAttachments;
  }

  List<Attachment> attachmentsView() {
    return attachments;
  }

  void markFreed() {
    live = false;
  }

  void checkLive() {
    if (!live) {
      throw new IllegalStateException("domain " + id + " used after free");
    }
  }

  /** The PGTT a PASID entry for this domain carries. */
  abstract PasidEntry.Pgtt pgtt();

  /**
   * Whether writes must set dirty bits: the IOTLB then caches read translations without WRITE,
   * so that a later write misses and walks (see {@link IommuUnit#translate}).
   */
  abstract boolean dirtyTrackingActive();

  /**
   * Walks this domain's table(s) for {@code iova}. On success fills {@code out} (hpa, prot,
   * pageSize, source, levels) and returns null; on failure fills {@code out.levels} and returns
   * the fault. Either way {@code out.latencyNs} is the walk's service time (no queueing).
   * Allocates nothing.
   */
  abstract FaultReason walk(long iova, boolean write, CostModel cost, Translation out);
}
