package io.iommulab.hardware.iommu;

import java.util.Objects;

/**
 * An IOVA range a unit reports as reserved for every device behind it ({@code struct
 * iommu_resv_region}, {@code include/linux/iommu.h}). iommufd reserves every type but
 * {@link Type#DIRECT_RELAXABLE} in the IOAS of an attached device
 * ({@code iopt_table_enforce_dev_resv_regions}).
 *
 * <ul>
 *   <li>VT-d reports the interrupt window {@code 0xFEE00000–0xFEEFFFFF} as {@link Type#MSI}: the
 *       hardware treats a DMA write there as an interrupt request, never as memory
 *       ({@code drivers/iommu/intel/iommu.c} {@code intel_iommu_get_resv_regions}, IOAPIC_RANGE).
 *   <li>SMMUv3 reports {@code MSI_IOVA_BASE 0x8000000}, {@code MSI_IOVA_LENGTH 0x100000} as
 *       {@link Type#SW_MSI}: software maps the ITS doorbell there through the page table
 *       ({@code drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c} {@code arm_smmu_get_resv_regions},
 *       {@code drivers/iommu/dma-iommu.c}).
 * </ul>
 *
 * <p>Invariant: {@code start <= last} (unsigned), both inclusive bounds.
 *
 * @param start first IOVA of the region
 * @param last last IOVA of the region, inclusive
 */
public record ReservedRegion(long start, long last, Type type) {

  /** Region types, as {@code enum iommu_resv_type}. */
  public enum Type {
    /** Hardware MSI window: DMA there is an interrupt (IOMMU_RESV_MSI). */
    MSI,
    /** Software-managed MSI window: doorbells are mapped there (IOMMU_RESV_SW_MSI). */
    SW_MSI,
    /** Must be identity mapped (RMRR; IOMMU_RESV_DIRECT). */
    DIRECT,
    /** Identity mapped, but may be dropped for device assignment (IOMMU_RESV_DIRECT_RELAXABLE). */
    DIRECT_RELAXABLE
  }

  /** The x86 interrupt window a VT-d unit reports. */
  public static final ReservedRegion VTD_MSI = new ReservedRegion(0xFEE0_0000L, 0xFEEF_FFFFL, Type.MSI);

  /** MSI_IOVA_BASE / MSI_IOVA_LENGTH of {@code arm-smmu-v3.c}. */
  public static final ReservedRegion SMMUV3_SW_MSI =
      new ReservedRegion(0x800_0000L, 0x800_0000L + 0x10_0000L - 1, Type.SW_MSI);

  public ReservedRegion {
    Objects.requireNonNull(type, "type");
    if (Long.compareUnsigned(start, last) > 0) {
      throw new IllegalArgumentException(
          String.format("reserved region [0x%x, 0x%x]: start above last", start, last));
    }
  }

  public boolean contains(long iova) {
    return Long.compareUnsigned(iova, start) >= 0 && Long.compareUnsigned(iova, last) <= 0;
  }

  /** Whether {@code [iova, iovaLast]} (inclusive) intersects this region. */
  public boolean intersects(long iova, long iovaLast) {
    return Long.compareUnsigned(iova, last) <= 0 && Long.compareUnsigned(iovaLast, start) >= 0;
  }

  @Override
  public String toString() {
    return String.format("ReservedRegion[0x%x-0x%x %s]", start, last, type);
  }
}
