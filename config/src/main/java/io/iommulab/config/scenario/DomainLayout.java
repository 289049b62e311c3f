package io.iommulab.config.scenario;

/**
 * How the devices of one VM share I/O address spaces and domains. VMs never share one: each VM
 * is its own process with its own {@code /dev/iommu} fd.
 */
public enum DomainLayout {
  /**
   * One IOAS per VM, every device attached to it; iommufd picks the domains (one automatic
   * domain per IOAS and compatible unit: devices behind one unit share a domain, devices behind
   * another unit get their own, both mirroring the IOAS). A map lands in every domain.
   */
  PER_VM_IOAS("per-vm-ioas"),
  /** One IOAS (so one domain) per device, as VFIO type1 keeps incompatible IOMMUs apart. */
  PER_DEVICE_IOAS("per-device-ioas"),
  /**
   * One IOAS and one explicitly allocated HWPT (paging domain) shared by every device of the VM:
   * the devices must sit behind one unit, since a HWPT belongs to the unit it was allocated on.
   */
  SHARED_HWPT("shared-hwpt");

  private final String configName;

  DomainLayout(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }
}
