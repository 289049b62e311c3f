package io.iommulab.hardware.pci;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * An IOMMU group: the functions the IOMMU cannot isolate from each other, owned for DMA as a whole
 * ({@code drivers/iommu/iommu.c}). The model keeps the kernel's two fields, {@code owner} (a user
 * cookie, or none for kernel DMA-API drivers) and {@code owner_cnt}, and applies its rules:
 *
 * <ul>
 *   <li>{@link #bindKernelDriver} ({@code iommu_device_use_default_domain}): EBUSY when the group
 *       has owners and one is a user, or a non-default domain / PASID attachment is in place;
 *       otherwise {@code owner_cnt++}.
 *   <li>{@link #claimDmaOwner} ({@code iommu_device_claim_dma_owner}, used by {@code
 *       iommufd_device_bind} with the context as cookie): EPERM when the group has owners and the
 *       cookie differs (another context, or kernel drivers); EBUSY when taking a free group that
 *       has a non-default domain or PASID attachments ({@code __iommu_take_dma_ownership}); several
 *       devices of one group may claim with the same cookie. EBUSY also for a device already bound.
 *   <li>{@link #claimGroupDmaOwner} ({@code iommu_group_claim_dma_owner}, the VFIO group API):
 *       EPERM when the group has any owner; then every member is owned.
 *   <li>Releases are not refusable: releasing what was not claimed, or the last owner while
 *       PASIDs are attached, is a bug ({@code WARN_ON} in the kernel) and throws.
 * </ul>
 *
 * Viability (VFIO): a group is viable for user ownership when no member is driven by a kernel
 * DMA-API driver. A refused call changes nothing.
 *
 * <p>Invariants ({@link #checkInvariants()}): members have distinct RIDs and this group's id; with
 * a user owner, no member has a kernel driver and {@code owner_cnt} counts the members owned by
 * that user (1 when claimed as a group, all members owned); without one, {@code owner_cnt} counts
 * the members with a kernel driver and no member has a user owner.
 */
public final class IommuGroup {
  /** {@link #owner()} of a group used by kernel drivers through the DMA API. */
  public static final DmaOwner.KernelDriver DMA_API = new DmaOwner.KernelDriver("dma-api");

  private final int id;
  private final List<PciDevice> members = new ArrayList<>();
  private DmaOwner.User userOwner;
  private int ownerCount;
  private boolean claimedAsGroup;
  private boolean foreignDomain;
  private int attachedPasids;

  public IommuGroup(int id) {
    this.id = id;
  }

  public int id() {
    return id;
  }

  /** Members in the order they joined. */
  public List<PciDevice> members() {
    return Collections.unmodifiableList(members);
  }

  /** The member with {@code rid}, or null. */
  public PciDevice member(int rid) {
    for (PciDevice d : members) {
      if (d.rid() == rid) {
        return d;
      }
    }
    return null;
  }

  /**
   * A function joins the group (probe, hotplug). A device of a group claimed as a whole is owned
   * by the group's owner from the start (it lands in the owner's domain).
   *
   * @return EEXIST when a member already has its RID
   */
  public Outcome<Void> addDevice(PciDevice device) {
    Objects.requireNonNull(device, "device");
    if (device.group() != id) {
      throw new IllegalArgumentException(device + " does not belong to group " + id);
    }
    if (member(device.rid()) != null) {
      return Outcome.err(
          Errno.EEXIST, "group %d: a member already has rid %s", id, device.ridText());
    }
    if (device.dmaOwner() != DmaOwner.NONE) {
      throw new IllegalStateException(device + " joins group " + id + " with an owner");
    }
    members.add(device);
    if (claimedAsGroup) {
      device.setOwner(userOwner);
    }
    return Outcome.OK;
  }

  /**
   * A function leaves the group (hot-unplug, after quiesce).
   *
   * @return ENOENT when it is not a member; EBUSY while it is owned (a driver bound or a user
   *     claim held: unbind first)
   */
  public Outcome<Void> removeDevice(PciDevice device) {
    if (!members.contains(device)) {
      return Outcome.err(Errno.ENOENT, "group %d: %s is not a member", id, device);
    }
    if (device.dmaOwner() != DmaOwner.NONE) {
      return Outcome.err(
          Errno.EBUSY, "group %d: %s is still owned by %s", id, device, device.dmaOwner());
    }
    members.remove(device);
    return Outcome.OK;
  }

  /** {@link DmaOwner#NONE}, the user owner, or {@link #DMA_API} for kernel drivers. */
  public DmaOwner owner() {
    if (ownerCount == 0) {
      return DmaOwner.NONE;
    }
    return userOwner != null ? userOwner : DMA_API;
  }

  /** The kernel's {@code owner_cnt}. */
  public int ownerCount() {
    return ownerCount;
  }

  public boolean claimedAsGroup() {
    return claimedAsGroup;
  }

  /** VFIO viability: no member is driven by a kernel DMA-API driver. */
  public boolean isViable() {
    return ownerCount == 0 || userOwner != null;
  }

  /**
   * A kernel user attached a domain other than the default one (or detached it again); taking
   * ownership is refused with EBUSY while it is attached.
   */
  public void setForeignDomainAttached(boolean attached) {
    foreignDomain = attached;
  }

  /** A PASID of a member was attached to a domain ({@code group->pasid_array}). */
  public void pasidAttached() {
    if (ownerCount == 0) {
      throw new IllegalStateException("group " + id + ": PASID attach without a DMA owner");
    }
    attachedPasids++;
  }

  public void pasidDetached() {
    if (attachedPasids == 0) {
      throw new IllegalStateException("group " + id + ": no PASID attached");
    }
    attachedPasids--;
  }

  public int attachedPasids() {
    return attachedPasids;
  }

  /** {@code iommu_device_use_default_domain}: a kernel driver binds to {@code device}. */
  public Outcome<Void> bindKernelDriver(PciDevice device, String driver) {
    Objects.requireNonNull(driver, "driver");
    requireMember(device);
    if (device.dmaOwner() != DmaOwner.NONE) {
      return Outcome.err(
          Errno.EBUSY, "group %d: %s already owned by %s", id, device, device.dmaOwner());
    }
    if (ownerCount > 0 && (userOwner != null || foreignDomain || attachedPasids > 0)) {
      return Outcome.err(
          Errno.EBUSY,
          "group %d: driver %s for %s: the group is %s",
          id,
          driver,
          device,
          userOwner != null ? "owned by " + userOwner : "not in its default domain");
    }
    ownerCount++;
    device.setOwner(new DmaOwner.KernelDriver(driver));
    return Outcome.OK;
  }

  /** {@code iommu_device_unuse_default_domain}: the kernel driver of {@code device} unbinds. */
  public void unbindKernelDriver(PciDevice device) {
    requireMember(device);
    if (!(device.dmaOwner() instanceof DmaOwner.KernelDriver)) {
      throw new IllegalStateException(device + " has no kernel driver: " + device.dmaOwner());
    }
    ownerCount--;
    device.setOwner(DmaOwner.NONE);
  }

  /** {@code iommu_device_claim_dma_owner}: a user (an iommufd context) claims {@code device}. */
  public Outcome<Void> claimDmaOwner(PciDevice device, DmaOwner.User owner) {
    Objects.requireNonNull(owner, "owner");
    requireMember(device);
    if (ownerCount > 0 && (userOwner == null || userOwner.ictxId() != owner.ictxId())) {
      return Outcome.err(
          Errno.EPERM,
          "group %d: claim of %s by %s: the group is owned by %s",
          id,
          device,
          owner,
          userOwner != null ? userOwner : "kernel drivers");
    }
    if (userOwner != null && !userOwner.equals(owner)) {
      throw new IllegalArgumentException(
          "context " + owner.ictxId() + " claims for VM " + owner.vmId() + " and " + userOwner);
    }
    if (device.dmaOwner() != DmaOwner.NONE) {
      return Outcome.err(
          Errno.EBUSY, "group %d: %s is already owned by %s", id, device, device.dmaOwner());
    }
    if (ownerCount == 0 && (foreignDomain || attachedPasids > 0)) {
      return Outcome.err(
          Errno.EBUSY, "group %d: claim of %s: the group is not in its default domain", id, device);
    }
    userOwner = owner;
    ownerCount++;
    device.setOwner(owner);
    return Outcome.OK;
  }

  /** {@code iommu_device_release_dma_owner}; clears the device's bus mastering. */
  public void releaseDmaOwner(PciDevice device) {
    requireMember(device);
    if (claimedAsGroup || !(device.dmaOwner() instanceof DmaOwner.User)) {
      throw new IllegalStateException(
          device + " holds no device claim (owner " + device.dmaOwner() + ")");
    }
    if (ownerCount == 1 && attachedPasids > 0) {
      throw new IllegalStateException(
          "group " + id + ": last owner released with " + attachedPasids + " PASIDs attached");
    }
    ownerCount--;
    if (ownerCount == 0) {
      userOwner = null;
    }
    device.setOwner(DmaOwner.NONE);
  }

  /** {@code iommu_group_claim_dma_owner}: a user claims the whole group (VFIO group API). */
  public Outcome<Void> claimGroupDmaOwner(DmaOwner.User owner) {
    Objects.requireNonNull(owner, "owner");
    if (ownerCount > 0) {
      return Outcome.err(
          Errno.EPERM, "group %d: group claim by %s: already owned by %s", id, owner, owner());
    }
    if (foreignDomain || attachedPasids > 0) {
      return Outcome.err(
          Errno.EBUSY, "group %d: group claim by %s: not in its default domain", id, owner);
    }
    userOwner = owner;
    ownerCount = 1;
    claimedAsGroup = true;
    for (PciDevice d : members) {
      d.setOwner(owner);
    }
    return Outcome.OK;
  }

  /** {@code iommu_group_release_dma_owner}; every member loses its owner and bus mastering. */
  public void releaseGroupDmaOwner() {
    if (!claimedAsGroup) {
      throw new IllegalStateException("group " + id + " is not claimed as a group");
    }
    if (attachedPasids > 0) {
      throw new IllegalStateException(
          "group " + id + ": released with " + attachedPasids + " PASIDs attached");
    }
    for (PciDevice d : members) {
      d.setOwner(DmaOwner.NONE);
    }
    userOwner = null;
    ownerCount = 0;
    claimedAsGroup = false;
  }

  private void requireMember(PciDevice device) {
    Objects.requireNonNull(device, "device");
    if (!members.contains(device)) {
      throw new IllegalArgumentException(device + " is not a member of group " + id);
    }
  }

  /** Checks the invariants in the class comment; throws IllegalStateException if one is broken. */
  public void checkInvariants() {
    int kernel = 0;
    int user = 0;
    for (int i = 0; i < members.size(); i++) {
      PciDevice d = members.get(i);
      if (d.group() != id) {
        fail("%s is in group %d but says %d", d, id, d.group());
      }
      for (int j = i + 1; j < members.size(); j++) {
        if (members.get(j).rid() == d.rid()) {
          fail("rid %s twice", d.ridText());
        }
      }
      DmaOwner o = d.dmaOwner();
      if (o instanceof DmaOwner.KernelDriver) {
        kernel++;
      } else if (o instanceof DmaOwner.User u) {
        if (!u.equals(userOwner)) {
          fail("%s owned by %s but the group by %s", d, u, userOwner);
        }
        user++;
      }
    }
    if (ownerCount < 0 || attachedPasids < 0) {
      fail("owner_cnt %d, pasids %d", ownerCount, attachedPasids);
    }
    if (userOwner != null) {
      if (kernel > 0) {
        fail("user-owned with %d kernel drivers bound", kernel);
      }
      if (claimedAsGroup ? ownerCount != 1 || user != members.size() : ownerCount != user) {
        fail("owner_cnt %d with %d user-owned members of %d (group claim %s)", ownerCount, user,
            members.size(), claimedAsGroup);
      }
      if (ownerCount == 0) {
        fail("user owner %s with owner_cnt 0", userOwner);
      }
    } else {
      if (claimedAsGroup || user > 0 || ownerCount != kernel) {
        fail("owner_cnt %d, %d kernel drivers, %d user-owned members, group claim %s",
            ownerCount, kernel, user, claimedAsGroup);
      }
    }
    if (attachedPasids > 0 && ownerCount == 0) {
      fail("%d PASIDs attached without an owner", attachedPasids);
    }
  }

  private void fail(String format, Object... args) {
    throw new IllegalStateException("group " + id + ": " + String.format(format, args));
  }

  /** Ownership state, for snapshots in tests and logs. */
  public String stateSummary() {
    StringBuilder sb = new StringBuilder("group ").append(id).append('{');
    sb.append("owner=").append(userOwner).append(" cnt=").append(ownerCount);
    sb.append(" groupClaim=").append(claimedAsGroup).append(" foreign=").append(foreignDomain);
    sb.append(" pasids=").append(attachedPasids).append(" members=");
    for (PciDevice d : members) {
      sb.append(d.ridText()).append(':').append(d.dmaOwner()).append(':').append(d.busMaster())
          .append(' ');
    }
    return sb.append('}').toString();
  }

  @Override
  public String toString() {
    return "IommuGroup[" + id + ", " + members.size() + " members, owner " + owner() + "]";
  }
}
