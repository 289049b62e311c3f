package io.iommulab.actors.fd.model;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code struct iommufd_group} ({@code drivers/iommu/iommufd/device.c}): what the fd knows of one
 * IOMMU group — the bound devices of the group and, per PASID, the one HWPT the group is attached
 * to and which of its devices are attached.
 *
 * <p>The group rule ({@code iommufd_hw_pagetable_attach}): all devices of a group share one HWPT
 * at a PASID — attaching a device to another HWPT while the group is attached is EINVAL; the same
 * device twice is EBUSY. In the kernel only the first device really attaches the group's domain
 * and the last really detaches it; the emulated units keep one context per RID, so each device's
 * RID is attached on its own and the rule is enforced here (inference: a group's unbound
 * functions are not attached).
 *
 * <p>Invariant: a PASID entry exists only while at least one device is attached there.
 */
public final class Igroup {

  /** The group's attachment at one PASID. */
  static final class GroupAttach {
    final HwPagetable hwpt;
    final Set<Device> devices = new LinkedHashSet<>();

    GroupAttach(HwPagetable hwpt) {
      this.hwpt = hwpt;
    }
  }

  final int unitId;
  final int group;
  final List<Device> devices = new ArrayList<>();
  final Map<Integer, GroupAttach> attaches = new HashMap<>();

  Igroup(int unitId, int group) {
    this.unitId = unitId;
    this.group = group;
  }

  /** The HWPT the group is attached to at {@code pasid}, or null. */
  public HwPagetable hwpt(int pasid) {
    GroupAttach a = attaches.get(pasid);
    return a == null ? null : a.hwpt;
  }

  public int unitId() {
    return unitId;
  }

  public int group() {
    return group;
  }
}
