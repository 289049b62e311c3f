package io.iommulab.actors.fd.model;

/**
 * Constants of the fd's modes — the seed threads' designs served on the same fd beside the merged
 * iommufd uAPI of {@link Uapi}. Values are the kernel's where the design reached a kernel
 * ({@code include/uapi/linux/vfio.h} of torvalds/linux for VFIO type1 and the compat layer, of
 * nxp-archive/openil_linux for VFIO-PAMU); the bits of designs that never merged (the 2021
 * snoop-control flags) are the emulator's own and sit above every bit the kernel uses.
 */
public final class ModeUapi {
  private ModeUapi() {}

  // ---------------------------------------------------------------- snoop control (seed 002)

  /**
   * IOAS_ALLOC flag of the 2021 proposal ("a 'snoop' flag is specified to decide the page table
   * format"): every domain of the IOAS enforces cache coherency; a device whose IOMMU cannot is
   * refused at attach ("the user needs to create separate IOASIDs for such devices").
   */
  public static final int IOAS_ALLOC_ENFORCE_SNOOP = 1 << 16;
  /** IOAS_ALLOC flag: no domain of the IOAS enforces coherency (the guest wants no-snoop DMA). */
  public static final int IOAS_ALLOC_NO_SNOOP = 1 << 17;
  /** HWPT_ALLOC (PAGING) flag: enforce coherency; EOPNOTSUPP when the device's IOMMU cannot. */
  public static final int HWPT_ALLOC_ENFORCE_SNOOP = 1 << 16;
  /** HWPT_ALLOC (PAGING) flag: do not enforce coherency even where the IOMMU could. */
  public static final int HWPT_ALLOC_NO_SNOOP = 1 << 17;

  // ---------------------------------------------------------------- VFIO container (vfio.h)

  public static final int VFIO_API_VERSION = 0;
  public static final int VFIO_TYPE1_IOMMU = 1;
  public static final int VFIO_SPAPR_TCE_IOMMU = 2;
  public static final int VFIO_TYPE1v2_IOMMU = 3;
  /** CHECK_EXTENSION: the IOMMU enforces DMA cache coherence (PCIe No-Snoop stripping). */
  public static final int VFIO_DMA_CC_IOMMU = 4;
  public static final int VFIO_EEH = 5;
  /** Removed from mainline; iommufd's compat layer answers 0 ("an incomplete idea"). */
  public static final int VFIO_TYPE1_NESTING_IOMMU = 6;
  /**
   * {@code VFIO_FSL_PAMU_IOMMU} of openil_linux's vfio.h. Mainline later gave 7 to
   * VFIO_SPAPR_TCE_v2_IOMMU; the emulator has no SPAPR, so 7 means PAMU here.
   */
  public static final int VFIO_FSL_PAMU_IOMMU = 7;
  public static final int VFIO_UNMAP_ALL = 9;
  public static final int VFIO_UPDATE_VADDR = 10;

  public static final int VFIO_DMA_MAP_FLAG_READ = 1;
  public static final int VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
  public static final int VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

  public static final int VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1;
  public static final int VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
  public static final int VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

  public static final int VFIO_IOMMU_INFO_PGSIZES = 1;
  public static final int VFIO_IOMMU_INFO_CAPS = 1 << 1;

  /** {@code IOMMU_VFIO_IOAS} ops (iommufd 0x88). */
  public static final int VFIO_IOAS_GET = 0;
  public static final int VFIO_IOAS_SET = 1;
  public static final int VFIO_IOAS_CLEAR = 2;

  // ---------------------------------------------------------------- VFIO-PAMU (seed 003)

  /** {@code enum} of {@code struct vfio_pamu_attr}: aperture start and end. */
  public static final int VFIO_ATTR_GEOMETRY = 0;
  /** Number of (sub)windows; read before it is set, the maximum. */
  public static final int VFIO_ATTR_WINDOWS = 1;
  /** VFIO-PAMU refuses more than 256 windows ({@code vfio_handle_set_attr}). */
  public static final int VFIO_PAMU_MAX_WINDOWS = 256;
}
