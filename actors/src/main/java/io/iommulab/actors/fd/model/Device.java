package io.iommulab.actors.fd.model;

import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code struct iommufd_device} ({@code drivers/iommu/iommufd/device.c}): a function bound to the
 * fd through its VFIO cdev. Binding claimed DMA ownership of its group through its unit.
 *
 * <p>{@code users}: 1 held by the VFIO driver from bind to unbind ("the calling driver is a user
 * until iommufd_device_unbind()", so DESTROY of a device is EBUSY), plus 1 per attachment.
 * {@code attachments}: PASID ({@link #NO_PASID} for the RID) → HWPT. {@code resv}: the IOASes in
 * which this device's reserved regions are enforced, with the number of its attachments there
 * (enforced at the first, removed at the last). {@code vdevice}: its vDEVICE, if any.
 * {@code destroying}: unbind has started ({@code idev->destroying}); VDEVICE_ALLOC sees ENOENT.
 */
public final class Device extends FdObject {

  /** The RID's own attachment ({@code IOMMU_NO_PASID}). */
  public static final int NO_PASID = -1;

  final String name;
  final int rid;
  final int liodn;
  final int group;
  UnitInfo info;
  int unitIdAtBind;
  Igroup igroup;
  final TreeMap<Integer, HwPagetable> attachments = new TreeMap<>();
  final Map<Ioas, Integer> resv = new LinkedHashMap<>();
  Vdevice vdevice;
  boolean destroying;
  /** PASIDs with an attach, replace or detach in flight: a second one is EBUSY. */
  final java.util.Set<Integer> busyPasids = new java.util.HashSet<>();

  Device(String name, int rid, int liodn, int group, UnitInfo info) {
    super(ObjectType.DEVICE);
    this.name = name;
    this.rid = rid;
    this.liodn = liodn;
    this.group = group;
    this.info = info;
  }

  public String name() {
    return name;
  }

  public int rid() {
    return rid;
  }

  public int liodn() {
    return liodn;
  }

  public int group() {
    return group;
  }

  public int unitId() {
    return info == null ? unitIdAtBind : info.unitId();
  }

  public UnitInfo info() {
    return info;
  }

  /** The HWPT attached at {@code pasid} ({@link #NO_PASID} for the RID), or null. */
  public HwPagetable attached(int pasid) {
    return attachments.get(pasid);
  }

  /** PASID → HWPT, RID first (a view). */
  public Map<Integer, HwPagetable> attachments() {
    return java.util.Collections.unmodifiableMap(attachments);
  }

  public Vdevice vdevice() {
    return vdevice;
  }

  public boolean destroying() {
    return destroying;
  }

  String label() {
    return "device " + id() + " (" + name + ")";
  }

  @Override
  public String summary() {
    StringBuilder sb = new StringBuilder();
    sb.append(name).append(" rid=").append(String.format("%04x", rid)).append(" unit=").append(unitId());
    sb.append(" group=").append(group);
    for (Map.Entry<Integer, HwPagetable> e : attachments.entrySet()) {
      sb.append(e.getKey() == NO_PASID ? " rid->" : " pasid" + e.getKey() + "->").append(e.getValue().id());
    }
    if (vdevice != null) {
      sb.append(" vdev=").append(vdevice.virtId);
    }
    return sb.toString();
  }
}
