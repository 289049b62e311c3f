package io.iommulab.actors.fd.model;

/**
 * {@code struct iommufd_hw_pagetable} ({@code drivers/iommu/iommufd/hw_pagetable.c}): a domain of
 * an IOMMU unit, {@code (unitId, domainId)}.
 *
 * <ul>
 *   <li>HWPT_PAGING: kernel-managed, mirrors an {@link Ioas} (holds a user on it). <em>Auto</em>
 *       (made by attach to an IOAS, reused by later compatible attaches, destroyed with its last
 *       attachment) or <em>manual</em> (HWPT_ALLOC). Flags NEST_PARENT, DIRTY_TRACKING, PASID;
 *       {@code enforceCacheCoherency} is fixed at allocation.
 *   <li>HWPT_NESTED: a user-managed stage 1 over a NEST_PARENT paging parent, or over a vIOMMU
 *       (holds a user on the parent / the vIOMMU).
 * </ul>
 *
 * <p>A FAULT object, when given (FAULT_ID_VALID), receives the page requests of the devices
 * attached to it; the HWPT holds a user on it. {@code domainId} is -1 until the unit has
 * allocated the domain.
 */
public final class HwPagetable extends FdObject {

  final int unitId;
  int domainId = -1;
  final Ioas ioas;
  final HwPagetable parent;
  final Viommu viommu;
  final Fault fault;
  final boolean nestParent;
  final boolean dirtyTracking;
  final boolean pasidCapable;
  final int dataType;
  boolean auto;
  boolean enforceCacheCoherency;
  /** Snoop requirement of a HWPT_PAGING (the snoop-control mode, {@link SnoopControl}). */
  SnoopControl.Policy snoop = SnoopControl.Policy.DEVICE;
  boolean dirtyTrackingEnabled;
  long pgsizeBitmap;
  long apertureStart;
  long apertureLast = Uapi.ULONG_MAX;
  /** Added to its IOAS's page table as a domain. */
  boolean inIoas;
  /** Devices (and PASIDs) attached: part of {@code users}. */
  int attachments;
  /** The guest stage 1 of a software-nested HWPT (null otherwise): {@link ShadowNesting}. */
  ShadowNesting shadow;

  private HwPagetable(
      ObjectType type,
      int unitId,
      Ioas ioas,
      HwPagetable parent,
      Viommu viommu,
      Fault fault,
      boolean nestParent,
      boolean dirtyTracking,
      boolean pasidCapable,
      int dataType) {
    super(type);
    this.unitId = unitId;
    this.ioas = ioas;
    this.parent = parent;
    this.viommu = viommu;
    this.fault = fault;
    this.nestParent = nestParent;
    this.dirtyTracking = dirtyTracking;
    this.pasidCapable = pasidCapable;
    this.dataType = dataType;
  }

  static HwPagetable paging(
      int unitId, Ioas ioas, boolean auto, boolean nestParent, boolean dirtyTracking, boolean pasid, Fault fault) {
    HwPagetable h =
        new HwPagetable(
            ObjectType.HWPT_PAGING, unitId, ioas, null, null, fault, nestParent, dirtyTracking, pasid,
            Uapi.HWPT_DATA_NONE);
    h.auto = auto;
    return h;
  }

  static HwPagetable nested(
      int unitId, HwPagetable parent, Viommu viommu, Fault fault, boolean pasid, int dataType) {
    return new HwPagetable(
        ObjectType.HWPT_NESTED, unitId, null, parent, viommu, fault, false, false, pasid, dataType);
  }

  /**
   * A software-nested HWPT (seed 001): a HWPT_NESTED whose stage 1 the fd keeps and composes with
   * {@code parent}'s mappings into its own shadow paging domain (no hardware nesting). It holds a
   * user on the parent IOAS.
   */
  static HwPagetable softNested(int unitId, Ioas parent, java.util.List<io.iommulab.hardware.iommu.ReservedRegion> reserved) {
    HwPagetable h =
        new HwPagetable(
            ObjectType.HWPT_NESTED, unitId, parent, null, null, null, false, false, false, Uapi.HWPT_DATA_NONE);
    h.shadow = new ShadowNesting(parent, reserved);
    h.snoop = parent.snoop;
    return h;
  }

  /** The software nesting of this HWPT, or null for a hardware one. */
  public ShadowNesting shadow() {
    return shadow;
  }

  public boolean isPaging() {
    return type() == ObjectType.HWPT_PAGING;
  }

  public int unitId() {
    return unitId;
  }

  public int domainId() {
    return domainId;
  }

  public Ioas ioas() {
    return ioas;
  }

  /** The NEST_PARENT parent of a nested HWPT (the vIOMMU's parent for a vIOMMU-based one). */
  public HwPagetable parent() {
    return parent != null ? parent : viommu != null ? viommu.hwpt : null;
  }

  public Viommu viommu() {
    return viommu;
  }

  public Fault fault() {
    return fault;
  }

  public boolean auto() {
    return auto;
  }

  public boolean nestParent() {
    return nestParent;
  }

  public boolean dirtyTracking() {
    return dirtyTracking;
  }

  public boolean pasidCapable() {
    return pasidCapable;
  }

  public boolean enforceCacheCoherency() {
    return enforceCacheCoherency;
  }

  /** The paging HWPT whose IOAS backs this one (itself, or the nested one's parent). */
  public HwPagetable pagingRoot() {
    return isPaging() || shadow != null ? this : parent(); // a shadow domain translates alone
  }

  /** Label of its reservations in snapshots. */
  String label() {
    return "hwpt " + id();
  }

  @Override
  public String summary() {
    StringBuilder sb = new StringBuilder();
    sb.append("unit=").append(unitId).append(" domain=").append(domainId);
    if (isPaging()) {
      sb.append(" ioas=").append(ioas.id()).append(auto ? " auto" : " manual");
      if (nestParent) {
        sb.append(" nest-parent");
      }
      if (dirtyTracking) {
        sb.append(" dirty-tracking").append(dirtyTrackingEnabled ? "(on)" : "(off)");
      }
      if (enforceCacheCoherency) {
        sb.append(" coherent");
      }
      if (snoop != SnoopControl.Policy.DEVICE) {
        sb.append(" snoop=").append(snoop);
      }
    } else if (shadow != null) {
      sb.append(shadow.summary());
      if (enforceCacheCoherency) {
        sb.append(" coherent");
      }
    } else {
      sb.append(viommu != null ? " viommu=" + viommu.id() : " parent=" + parent.id());
    }
    if (pasidCapable) {
      sb.append(" pasid");
    }
    if (fault != null) {
      sb.append(" fault=").append(fault.id());
    }
    sb.append(" attachments=").append(attachments);
    return sb.toString();
  }
}
