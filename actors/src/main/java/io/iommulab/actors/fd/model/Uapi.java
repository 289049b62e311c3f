package io.iommulab.actors.fd.model;

/**
 * Constants of {@code include/uapi/linux/iommufd.h} (and the VFIO cdev attach flags) that the fd
 * model checks: flag bits, data types, struct sizes. Values are the kernel's, so a trace of this
 * emulator reads like an strace of a VMM.
 */
public final class Uapi {
  private Uapi() {}

  /** The host PAGE_SIZE. */
  public static final long PAGE_SIZE = 4096;

  /** ULONG_MAX on a 64-bit host, as an unsigned value. */
  public static final long ULONG_MAX = -1L;

  // ---------------------------------------------------------------- IOAS_MAP / IOAS_COPY flags
  public static final int IOAS_MAP_FIXED_IOVA = 1;
  public static final int IOAS_MAP_WRITEABLE = 1 << 1;
  public static final int IOAS_MAP_READABLE = 1 << 2;

  // ---------------------------------------------------------------- OPTION
  public static final int OPTION_RLIMIT_MODE = 0;
  public static final int OPTION_HUGE_PAGES = 1;
  public static final int OPTION_OP_SET = 0;
  public static final int OPTION_OP_GET = 1;

  // ---------------------------------------------------------------- HWPT_ALLOC
  public static final int HWPT_ALLOC_NEST_PARENT = 1;
  public static final int HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
  public static final int HWPT_ALLOC_FAULT_ID_VALID = 1 << 2;
  public static final int HWPT_ALLOC_PASID = 1 << 3;

  /** {@code enum iommu_hwpt_data_type}. */
  public static final int HWPT_DATA_NONE = 0;
  public static final int HWPT_DATA_VTD_S1 = 1;
  public static final int HWPT_DATA_ARM_SMMUV3 = 2;
  /** The selftest mock's nested data type ({@code IOMMU_HWPT_DATA_SELFTEST}). */
  public static final int HWPT_DATA_SELFTEST = 0xdead;

  /** sizeof(struct iommu_hwpt_vtd_s1): flags, pgtbl_addr, addr_width, __reserved. */
  public static final int HWPT_VTD_S1_LEN = 24;
  /** sizeof(struct iommu_hwpt_arm_smmuv3): ste[2]. */
  public static final int HWPT_ARM_SMMUV3_LEN = 16;
  /** sizeof(struct iommu_hwpt_selftest): iotlb. */
  public static final int HWPT_SELFTEST_LEN = 4;

  // ---------------------------------------------------------------- HWPT_INVALIDATE
  /** {@code enum iommu_hwpt_invalidate_data_type}. */
  public static final int HWPT_INVALIDATE_DATA_VTD_S1 = 0;
  public static final int VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1;
  /** The selftest mock's nested-hwpt invalidation ({@code IOMMU_HWPT_INVALIDATE_DATA_SELFTEST}). */
  public static final int HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
  /** The selftest mock's vIOMMU invalidation ({@code IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST}). */
  public static final int VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef + 1;

  /** sizeof(struct iommu_hwpt_vtd_s1_invalidate): addr, npages, flags, __reserved. */
  public static final int VTD_S1_INVALIDATE_LEN = 24;
  /** Minimum entry_len for VT-d: offsetofend(..., flags). */
  public static final int VTD_S1_INVALIDATE_MIN_LEN = 20;
  /** sizeof(struct iommu_viommu_arm_smmuv3_invalidate): cmd[2]. */
  public static final int ARM_SMMUV3_INVALIDATE_LEN = 16;
  /** sizeof(struct iommu_viommu_invalidate_selftest): flags, vdev_id, cache_id. */
  public static final int SELFTEST_VIOMMU_INVALIDATE_LEN = 12;
  /** sizeof(struct iommu_hwpt_invalidate_selftest): flags, iotlb_id. */
  public static final int SELFTEST_HWPT_INVALIDATE_LEN = 8;

  /** {@code IOMMU_VTD_INV_FLAGS_LEAF}. */
  public static final int VTD_INV_FLAGS_LEAF = 1;
  /** {@code IOMMU_TEST_INVALIDATE_FLAG_ALL}. */
  public static final int TEST_INVALIDATE_FLAG_ALL = 1;

  /** SMMUv3 CMDQ opcodes a vIOMMU accepts ({@code arm-smmu-v3-iommufd.c}). */
  public static final int CMDQ_OP_CFGI_CD = 0x05;
  public static final int CMDQ_OP_CFGI_CD_ALL = 0x06;
  public static final int CMDQ_OP_TLBI_NH_ALL = 0x10;
  public static final int CMDQ_OP_TLBI_NH_ASID = 0x11;
  public static final int CMDQ_OP_TLBI_NH_VA = 0x12;
  public static final int CMDQ_OP_TLBI_NH_VAA = 0x13;
  public static final int CMDQ_OP_TLBI_NSNH_ALL = 0x30;
  public static final int CMDQ_OP_ATC_INV = 0x40;

  // ---------------------------------------------------------------- dirty tracking
  public static final int HWPT_DIRTY_TRACKING_ENABLE = 1;
  public static final int HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

  // ---------------------------------------------------------------- GET_HW_INFO
  public static final int HW_INFO_TYPE_NONE = 0;
  public static final int HW_INFO_TYPE_INTEL_VTD = 1;
  public static final int HW_INFO_TYPE_ARM_SMMUV3 = 2;
  public static final long HW_CAP_DIRTY_TRACKING = 1;
  public static final long HW_CAP_PCI_PASID_EXEC = 1 << 1;
  public static final long HW_CAP_PCI_PASID_PRIV = 1 << 2;
  /** sizeof(struct iommu_hw_info_vtd): flags, __reserved, cap_reg, ecap_reg. */
  public static final int HW_INFO_VTD_LEN = 24;
  /** sizeof(struct iommu_hw_info_arm_smmuv3): flags, __reserved, idr[6], iidr, aidr. */
  public static final int HW_INFO_ARM_SMMUV3_LEN = 40;

  // ---------------------------------------------------------------- FAULT
  /** sizeof(struct iommu_hwpt_pgfault). */
  public static final int HWPT_PGFAULT_LEN = 40;
  /** sizeof(struct iommu_hwpt_page_response). */
  public static final int HWPT_PAGE_RESPONSE_LEN = 8;
  public static final int PGFAULT_FLAGS_PASID_VALID = 1;
  public static final int PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
  public static final int PGFAULT_PERM_READ = 1;
  public static final int PGFAULT_PERM_WRITE = 1 << 1;
  public static final int PGFAULT_PERM_EXEC = 1 << 2;
  public static final int PGFAULT_PERM_PRIV = 1 << 3;
  /** {@code enum iommufd_page_response_code}. */
  public static final int PAGE_RESP_SUCCESS = 0;
  public static final int PAGE_RESP_INVALID = 1;

  // ---------------------------------------------------------------- vIOMMU / vEVENTQ
  public static final int VIOMMU_TYPE_DEFAULT = 0;
  public static final int VIOMMU_TYPE_ARM_SMMUV3 = 1;
  /** The selftest mock's vIOMMU type ({@code IOMMU_VIOMMU_TYPE_SELFTEST}). */
  public static final int VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
  public static final int VEVENTQ_TYPE_DEFAULT = 0;
  public static final int VEVENTQ_TYPE_ARM_SMMUV3 = 1;
  /** The selftest mock's vEVENTQ type. */
  public static final int VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
  public static final int VEVENTQ_FLAG_LOST_EVENTS = 1;
  /** sizeof(struct iommufd_vevent_header): flags, sequence. */
  public static final int VEVENT_HEADER_LEN = 8;
  /** sizeof(struct iommu_vevent_arm_smmuv3): evt[4]. */
  public static final int VEVENT_ARM_SMMUV3_LEN = 32;
  /** sizeof(struct iommu_viommu_event_selftest): virt_id. */
  public static final int VEVENT_SELFTEST_LEN = 4;
  /** The vEVENTQ sequence wraps at INT_MAX: {@code sequence = (sequence + 1) & INT_MAX}. */
  public static final int VEVENTQ_SEQUENCE_MASK = Integer.MAX_VALUE;

  // ---------------------------------------------------------------- VFIO cdev attach
  /** {@code VFIO_DEVICE_ATTACH_PASID}. */
  public static final int VFIO_DEVICE_ATTACH_PASID = 1;
}
