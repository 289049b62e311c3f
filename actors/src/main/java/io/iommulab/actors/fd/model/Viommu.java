package io.iommulab.actors.fd.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code struct iommufd_viommu} ({@code drivers/iommu/iommufd/viommu.c}): a VM's slice of one
 * physical IOMMU over a NEST_PARENT HWPT_PAGING (the shared stage 2), on which it holds a user.
 *
 * <p>{@code vdevs}: virt_id → vDEVICE ({@code viommu->vdevs}); {@code veventqs}: one vEVENTQ per
 * type; {@code nested}: HWPT_NESTED objects allocated on it. {@code users} counts all three, so
 * DESTROY of a vIOMMU with any of them is EBUSY.
 */
public final class Viommu extends FdObject {

  final HwPagetable hwpt;
  final int viommuType;
  final int unitId;
  final TreeMap<Long, Vdevice> vdevs = new TreeMap<>(Long::compareUnsigned);
  final Map<Integer, Veventq> veventqs = new TreeMap<>();
  final List<HwPagetable> nested = new ArrayList<>();

  Viommu(HwPagetable hwpt, int viommuType, int unitId) {
    super(ObjectType.VIOMMU);
    this.hwpt = hwpt;
    this.viommuType = viommuType;
    this.unitId = unitId;
  }

  public HwPagetable hwpt() {
    return hwpt;
  }

  public int viommuType() {
    return viommuType;
  }

  public int unitId() {
    return unitId;
  }

  /** The vDEVICE at {@code virtId}, or null ({@code iommufd_viommu_find_dev}). */
  public Vdevice find(long virtId) {
    return vdevs.get(virtId);
  }

  @Override
  public String summary() {
    return String.format(
        "type=0x%x hwpt=%d unit=%d vdevs=%s veventqs=%s nested=%d",
        viommuType, hwpt.id(), unitId, vdevs.keySet(), veventqs.keySet(), nested.size());
  }
}
