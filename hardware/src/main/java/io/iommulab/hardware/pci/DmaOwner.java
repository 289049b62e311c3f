package io.iommulab.hardware.pci;

import io.iommulab.hardware.memory.HostMemory;
import java.util.Objects;

/**
 * Who may drive a PCI function's DMA ({@code drivers/iommu/iommu.c}: a group's {@code owner}
 * cookie and {@code owner_cnt}). A kernel driver using the DMA API owns through the default
 * domain with no cookie ({@code iommu_device_use_default_domain}); a user owner claims with a
 * cookie, which for iommufd is the context ({@code iommufd_device_bind} passes the {@code ictx}).
 * {@link #memoryOwner()} is the {@link HostMemory} owner its DMA is expected to touch.
 */
public sealed interface DmaOwner permits DmaOwner.Unowned, DmaOwner.KernelDriver, DmaOwner.User {

  /** No owner: the function must not master DMA. */
  DmaOwner NONE = Unowned.INSTANCE;

  /** The {@link HostMemory} owner id this owner's DMA may touch. */
  int memoryOwner();

  /** No driver bound and no user claim. */
  enum Unowned implements DmaOwner {
    INSTANCE;

    @Override
    public int memoryOwner() {
      return HostMemory.NOBODY;
    }
  }

  /** A host kernel driver doing DMA through the DMA API into host memory. */
  record KernelDriver(String driver) implements DmaOwner {
    public KernelDriver {
      Objects.requireNonNull(driver, "driver");
    }

    @Override
    public int memoryOwner() {
      return HostMemory.HOST;
    }
  }

  /**
   * A user owner: the iommufd context {@code ictxId} of the VMM running VM {@code vmId}. Two
   * claims are by the same owner when they name the same context.
   */
  record User(int ictxId, int vmId) implements DmaOwner {
    public User {
      if (ictxId < 0) {
        throw new IllegalArgumentException("ictxId < 0: " + ictxId);
      }
      if (vmId < 1 || vmId > HostMemory.MAX_OWNER) {
        throw new IllegalArgumentException("vmId " + vmId + " is not a VM id");
      }
    }

    @Override
    public int memoryOwner() {
      return vmId;
    }
  }
}
