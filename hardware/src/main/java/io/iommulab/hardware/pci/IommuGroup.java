package io.iommulab.hardware.pci;

import io.iommulab.config.Rids;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
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
 * <p>Members are requester ids, not {@link PciDevice} objects: a function's model belongs to its
 * own owner (the device actor), and the group belongs to the unit behind which it sits, so the
 * group records each member's {@link DmaOwner} itself ({@link #memberOwner}) and whoever owns the
 * group tells the function when that changes ({@link PciDevice#setOwner}).
 *
 * <p>Invariants ({@link #checkInvariants()}): member RIDs are distinct 16-bit values; with a user
 * owner, no member has a kernel driver and {@code owner_cnt} counts the members owned by that
 * user (1 when claimed as a group, all members owned); without one, {@code owner_cnt} counts the
 * members with a kernel driver and no member has a user owner. Single-threaded: the owning actor
 * is the lock.
 */
public final class IommuGroup {
  /** {@link #owner()} of a group used by kernel drivers through the DMA API. */
  public static final DmaOwner.KernelDriver DMA_API = new DmaOwner.KernelDriver("dma-api");

  private final int id;
  /** Member RIDs in join order; {@code owners.get(i)} is the owner of {@code rids.get(i)}. */
  private final List<Integer> rids = new ArrayList<>();
  private final List<DmaOwner> owners = new ArrayList<>();
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

  /** Member RIDs in the order they joined. */
  public List<Integer> members() {
    return List.copyOf(rids);
  }

  public int size() {
    return rids.size();
  }

  public boolean isMember(int rid) {
    return rids.indexOf(rid) >= 0;
  }

  /** The DMA owner of member {@code rid}; asking for a non-member is a bug. */
  public DmaOwner memberOwner(int rid) {
    return owners.get(requireMember(rid));
  }

  /**
   * A function joins the group (probe, hotplug). A function joining a group claimed as a whole
   * is owned by the group's owner from the start (it lands in the owner's domain); the caller
   * tells the function ({@link #memberOwner}).
   *
   * @return EEXIST when a member already has {@code rid}; EINVAL for a RID outside 16 bits
   */
  public Outcome<Void> addDevice(int rid) {
    if (rid < 0 || rid > 0xFFFF) {
      return Outcome.err(Errno.EINVAL, "group %d: rid %d outside 16 bits", id, rid);
    }
    if (isMember(rid)) {
      return Outcome.err(Errno.EEXIST, "group %d: a member already has rid %s", id, Rids.format(rid));
    }
    rids.add(rid);
    owners.add(claimedAsGroup ? userOwner : DmaOwner.NONE);
    return Outcome.OK;
  }

  /**
   * A function leaves the group (hot-unplug, after quiesce).
   *
   * @return ENOENT when it is not a member; EBUSY while it is owned (a driver bound or a user
   *     claim held: unbind first)
   */
  public Outcome<Void> removeDevice(int rid) {
    int i = rids.indexOf(rid);
    if (i < 0) {
      return Outcome.err(Errno.ENOENT, "group %d: rid %s is not a member", id, fmt(rid));
    }
    if (owners.get(i) != DmaOwner.NONE) {
      return Outcome.err(
          Errno.EBUSY, "group %d: rid %s is still owned by %s", id, fmt(rid), owners.get(i));
    }
    rids.remove(i);
    owners.remove(i);
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

  /** {@code iommu_device_use_default_domain}: a kernel driver binds to member {@code rid}. */
  public Outcome<Void> bindKernelDriver(int rid, String driver) {
    Objects.requireNonNull(driver, "driver");
    int i = requireMember(rid);
    if (owners.get(i) != DmaOwner.NONE) {
      return Outcome.err(
          Errno.EBUSY, "group %d: rid %s already owned by %s", id, fmt(rid), owners.get(i));
    }
    if (ownerCount > 0 && (userOwner != null || foreignDomain || attachedPasids > 0)) {
      return Outcome.err(
          Errno.EBUSY,
          "group %d: driver %s for rid %s: the group is %s",
          id,
          driver,
          fmt(rid),
          userOwner != null ? "owned by " + userOwner : "not in its default domain");
    }
    ownerCount++;
    owners.set(i, new DmaOwner.KernelDriver(driver));
    return Outcome.OK;
  }

  /** {@code iommu_device_unuse_default_domain}: the kernel driver of member {@code rid} unbinds. */
  public void unbindKernelDriver(int rid) {
    int i = requireMember(rid);
    if (!(owners.get(i) instanceof DmaOwner.KernelDriver)) {
      throw new IllegalStateException(
          "rid " + fmt(rid) + " has no kernel driver: " + owners.get(i));
    }
    ownerCount--;
    owners.set(i, DmaOwner.NONE);
  }

  /** {@code iommu_device_claim_dma_owner}: a user (an iommufd context) claims member {@code rid}. */
  public Outcome<Void> claimDmaOwner(int rid, DmaOwner.User owner) {
    Objects.requireNonNull(owner, "owner");
    int i = requireMember(rid);
    if (ownerCount > 0 && (userOwner == null || userOwner.ictxId() != owner.ictxId())) {
      return Outcome.err(
          Errno.EPERM,
          "group %d: claim of rid %s by %s: the group is owned by %s",
          id,
          fmt(rid),
          owner,
          userOwner != null ? userOwner : "kernel drivers");
    }
    if (userOwner != null && !userOwner.equals(owner)) {
      throw new IllegalArgumentException(
          "context " + owner.ictxId() + " claims for VM " + owner.vmId() + " and " + userOwner);
    }
    if (owners.get(i) != DmaOwner.NONE) {
      return Outcome.err(
          Errno.EBUSY, "group %d: rid %s is already owned by %s", id, fmt(rid), owners.get(i));
    }
    if (ownerCount == 0 && (foreignDomain || attachedPasids > 0)) {
      return Outcome.err(
          Errno.EBUSY, "group %d: claim of rid %s: the group is not in its default domain", id,
          fmt(rid));
    }
    userOwner = owner;
    ownerCount++;
    owners.set(i, owner);
    return Outcome.OK;
  }

  /**
   * {@code iommu_device_release_dma_owner}; the function loses its owner (and, when told, its bus
   * mastering: {@link PciDevice#setOwner}).
   */
  public void releaseDmaOwner(int rid) {
    int i = requireMember(rid);
    if (claimedAsGroup || !(owners.get(i) instanceof DmaOwner.User)) {
      throw new IllegalStateException(
          "rid " + fmt(rid) + " holds no device claim (owner " + owners.get(i) + ")");
    }
    if (ownerCount == 1 && attachedPasids > 0) {
      throw new IllegalStateException(
          "group " + id + ": last owner released with " + attachedPasids + " PASIDs attached");
    }
    ownerCount--;
    if (ownerCount == 0) {
      userOwner = null;
    }
    owners.set(i, DmaOwner.NONE);
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
    for (int i = 0; i < owners.size(); i++) {
      owners.set(i, owner);
    }
    return Outcome.OK;
  }

  /** {@code iommu_group_release_dma_owner}; every member loses its owner. */
  public void releaseGroupDmaOwner() {
    if (!claimedAsGroup) {
      throw new IllegalStateException("group " + id + " is not claimed as a group");
    }
    if (attachedPasids > 0) {
      throw new IllegalStateException(
          "group " + id + ": released with " + attachedPasids + " PASIDs attached");
    }
    for (int i = 0; i < owners.size(); i++) {
      owners.set(i, DmaOwner.NONE);
    }
    userOwner = null;
    ownerCount = 0;
    claimedAsGroup = false;
  }

  private int requireMember(int rid) {
    int i = rids.indexOf(rid);
    if (i < 0) {
      throw new IllegalArgumentException("rid " + fmt(rid) + " is not a member of group " + id);
    }
    return i;
  }

  private static String fmt(int rid) {
    return rid >= 0 && rid <= 0xFFFF ? Rids.format(rid) : Integer.toString(rid);
  }

  /** Checks the invariants in the class comment; throws IllegalStateException if one is broken. */
  public void checkInvariants() {
    int kernel = 0;
    int user = 0;
    if (rids.size() != owners.size()) {
      fail("%d members, %d owners", rids.size(), owners.size());
    }
    for (int i = 0; i < rids.size(); i++) {
      int rid = rids.get(i);
      if (rid < 0 || rid > 0xFFFF) {
        fail("rid %d outside 16 bits", rid);
      }
      for (int j = i + 1; j < rids.size(); j++) {
        if (rids.get(j) == rid) {
          fail("rid %s twice", fmt(rid));
        }
      }
      DmaOwner o = owners.get(i);
      if (o instanceof DmaOwner.KernelDriver) {
        kernel++;
      } else if (o instanceof DmaOwner.User u) {
        if (!u.equals(userOwner)) {
          fail("rid %s owned by %s but the group by %s", fmt(rid), u, userOwner);
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
      if (claimedAsGroup ? ownerCount != 1 || user != rids.size() : ownerCount != user) {
        fail("owner_cnt %d with %d user-owned members of %d (group claim %s)", ownerCount, user,
            rids.size(), claimedAsGroup);
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
    for (int i = 0; i < rids.size(); i++) {
      sb.append(fmt(rids.get(i))).append(':').append(owners.get(i)).append(' ');
    }
    return sb.append('}').toString();
  }

  @Override
  public String toString() {
    return "IommuGroup[" + id + ", " + rids.size() + " members, owner " + owner() + "]";
  }
}
