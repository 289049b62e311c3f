package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;

/**
 * The snoop-control mode (seed 002, "IOASID uAPI proposal review", Kevin Tian / Alex Williamson,
 * June 2021) on top of iommufd's own coherency rules ({@code drivers/iommu/iommufd/hw_pagetable.c}
 * {@code iommufd_hwpt_paging_alloc}, {@code device.c}; {@code drivers/iommu/intel/iommu.c}
 * {@code intel_iommu_enforce_cache_coherency}).
 *
 * <p>Rules:
 *
 * <ul>
 *   <li>Device info reports whether the device's IOMMU can enforce coherency (VT-d ECAP.SC):
 *       "IOMMU_CACHE is a fixed attribute given an IOMMU. So it's better to convey this info to
 *       userspace via GET_INFO for a device_label, before creating any IOASID".
 *   <li>Allocation takes a snoop flag ("a 'snoop' flag is specified to decide the page table
 *       format"): an IOAS with {@link Policy#ENFORCE} gives only coherency-enforcing domains, one
 *       with {@link Policy#NO_SNOOP} only non-enforcing ones; {@link Policy#DEVICE} is the merged
 *       kernel's rule (a domain enforces exactly when the IOMMU of the device it is built for
 *       can). HWPT_ALLOC takes the same choice per HWPT; it must not contradict its IOAS ("all
 *       devices under an IOASID should have the same snoop requirement", EINVAL).
 *   <li>Attach refuses a mismatch with EINVAL ("If not supported by related iommu or different
 *       from what gpa_ioasid has, attach fails"): a device whose IOMMU cannot enforce coherency
 *       never joins an enforcing domain, and an ENFORCE IOAS refuses it ("the user needs to create
 *       separate IOASIDs for such devices"). In DEVICE mode iommufd's auto-domain logic takes the
 *       next compatible domain or builds a separate one, as type1 keeps separate domains.
 *   <li>KVM is told when a device's non-coherent DMA appears and disappears ({@code
 *       kvm_arch_register_noncoherent_dma}; seed: "KVM_UPDATE_IOASID_FD"), per device as KVM
 *       keeps one file per device: a device is non-coherent from bind to unbind when its IOMMU
 *       cannot enforce coherency (the merged kernel's rule), and while attached to a
 *       non-enforcing domain otherwise. Each device's events fire on its own transitions only.
 *       So "VM1 boots with {A,B} and later removing device {B}" stops WBINVD emulation when A's
 *       domain enforces, and keeps it when A shares a NO_SNOOP IOAS ("the history of the VM
 *       becomes a factor"), while "VM2 only booted with {A}" never starts it.
 * </ul>
 */
public final class SnoopControl {
  private SnoopControl() {}

  /** The snoop requirement of an IOAS or a HWPT_PAGING. */
  public enum Policy {
    /** The merged kernel's rule: enforce exactly when the device's IOMMU can. */
    DEVICE,
    /** Enforce coherency; devices whose IOMMU cannot are refused. */
    ENFORCE,
    /** Never enforce coherency: the domain lets no-snoop DMA through. */
    NO_SNOOP
  }

  static final int IOAS_FLAGS = ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP | ModeUapi.IOAS_ALLOC_NO_SNOOP;
  static final int HWPT_FLAGS = ModeUapi.HWPT_ALLOC_ENFORCE_SNOOP | ModeUapi.HWPT_ALLOC_NO_SNOOP;

  /** The policy of IOAS_ALLOC {@code flags}: EOPNOTSUPP for unknown bits, EINVAL for both. */
  static Outcome<Policy> ioasPolicy(int flags) {
    if ((flags & ~IOAS_FLAGS) != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown bits", flags);
    }
    if (flags == IOAS_FLAGS) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: ENFORCE_SNOOP and NO_SNOOP together", flags);
    }
    return Outcome.ok(
        flags == ModeUapi.IOAS_ALLOC_ENFORCE_SNOOP
            ? Policy.ENFORCE
            : flags == ModeUapi.IOAS_ALLOC_NO_SNOOP ? Policy.NO_SNOOP : Policy.DEVICE);
  }

  /**
   * The policy of a HWPT_PAGING allocated with {@code flags} over {@code ioas} for {@code dev}:
   * EINVAL for both flags or one contradicting the IOAS, EOPNOTSUPP for ENFORCE on an IOMMU
   * without snoop control (as DIRTY_TRACKING without the capability).
   */
  static Outcome<Policy> hwptPolicy(int flags, Ioas ioas, Device dev) {
    int f = flags & HWPT_FLAGS;
    if (f == HWPT_FLAGS) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: ENFORCE_SNOOP and NO_SNOOP together", flags);
    }
    Policy p =
        f == ModeUapi.HWPT_ALLOC_ENFORCE_SNOOP
            ? Policy.ENFORCE
            : f == ModeUapi.HWPT_ALLOC_NO_SNOOP ? Policy.NO_SNOOP : ioas.snoop;
    if (ioas.snoop != Policy.DEVICE && p != ioas.snoop) {
      return Outcome.err(
          Errno.EINVAL, "IOAS %d is %s: a HWPT of it cannot be %s", ioas.id(), ioas.snoop, p);
    }
    if (p == Policy.ENFORCE && !dev.info.enforceCacheCoherency()) {
      return Outcome.err(
          Errno.EOPNOTSUPP, "ENFORCE_SNOOP: %s cannot enforce cache coherency", dev.info.unitName());
    }
    return Outcome.ok(p);
  }

  /** An attach of {@code dev} to (an auto domain of) {@code ioas}: EINVAL on a mismatch. */
  static Outcome<Void> checkIoasAttach(Ioas ioas, Device dev) {
    if (ioas.snoop == Policy.ENFORCE && !dev.info.enforceCacheCoherency()) {
      return Outcome.err(
          Errno.EINVAL,
          "IOAS %d enforces snoop; %s cannot: create a separate IOAS for device %d",
          ioas.id(),
          dev.info.unitName(),
          dev.id());
    }
    return Outcome.OK;
  }

  /** Whether a new domain of {@code h}, built for {@code dev}, is to enforce coherency. */
  public static boolean shouldEnforce(HwPagetable h, Device dev) {
    return switch (h.snoop) {
      case ENFORCE -> true;
      case NO_SNOOP -> false;
      case DEVICE -> dev.info.enforceCacheCoherency();
    };
  }

  /** A domain of {@code h} that failed to enforce coherency must not be used. */
  public static boolean required(HwPagetable h) {
    return h.snoop == Policy.ENFORCE;
  }

  /**
   * Whether bound device {@code d}'s DMA is non-coherent for KVM: its IOMMU cannot enforce
   * coherency ({@code kvm_vfio_file_enforced_coherent}: {@code device_iommu_capable(dev,
   * IOMMU_CAP_ENFORCE_CACHE_COHERENCY)}), or — the snoop-control mode — it is attached (RID or
   * PASID) to a domain that does not enforce it (a NO_SNOOP IOAS or HWPT).
   */
  public static boolean nonCoherent(Device d) {
    if (!d.info.enforceCacheCoherency()) {
      return true;
    }
    for (HwPagetable h : d.attachments.values()) {
      HwPagetable root = h.pagingRoot();
      if (root != null && !root.enforceCacheCoherency) {
        return true;
      }
    }
    return false;
  }
}
