package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;

/**
 * One entry of a HWPT_INVALIDATE array, the union of the driver entry structs this emulator
 * accepts; which fields count depends on the array's {@code data_type}:
 *
 * <ul>
 *   <li>{@link Uapi#HWPT_INVALIDATE_DATA_VTD_S1} ({@code struct iommu_hwpt_vtd_s1_invalidate}):
 *       {@code addr}, {@code npages}, {@code flags} ({@link Uapi#VTD_INV_FLAGS_LEAF}), {@code
 *       reserved} must be 0. {@code addr = 0, npages = U64_MAX} invalidates everything.
 *   <li>{@link Uapi#VIOMMU_INVALIDATE_DATA_ARM_SMMUV3} (a 128-bit CMDQ command): {@code opcode}
 *       ({@code Uapi.CMDQ_OP_*}), {@code vdevId} (the vSID of ATC_INV / CFGI_CD), {@code pasid}
 *       (SSID), {@code addr}, {@code npages}, {@code flags} (bit 0: leaf).
 *   <li>{@link Uapi#HWPT_INVALIDATE_DATA_SELFTEST} ({@code {flags, iotlb_id}}): {@code flags}
 *       ({@link Uapi#TEST_INVALIDATE_FLAG_ALL}), {@code cacheId} as iotlb_id (0..3).
 *   <li>{@link Uapi#VIOMMU_INVALIDATE_DATA_SELFTEST} ({@code {flags, vdev_id, cache_id}}): {@code
 *       flags}, {@code vdevId}, {@code cacheId} (0..3).
 * </ul>
 */
public record InvalidationEntry(
    int opcode, int flags, long addr, long npages, long vdevId, int pasid, int cacheId, int reserved)
    implements CborSerializable {

  /** A VT-d stage-1 entry. */
  public static InvalidationEntry vtdS1(long addr, long npages, int flags) {
    return new InvalidationEntry(0, flags, addr, npages, 0, 0, 0, 0);
  }

  /** An SMMUv3 vIOMMU command. */
  public static InvalidationEntry smmuv3(int opcode, long vsid, int ssid, long addr, long npages) {
    return new InvalidationEntry(opcode, 0, addr, npages, vsid, ssid, 0, 0);
  }

  /** A selftest vIOMMU entry {flags, vdev_id, cache_id}. */
  public static InvalidationEntry selftestViommu(int flags, long vdevId, int cacheId) {
    return new InvalidationEntry(0, flags, 0, 0, vdevId, 0, cacheId, 0);
  }

  /** A selftest nested-hwpt entry {flags, iotlb_id}. */
  public static InvalidationEntry selftestHwpt(int flags, int iotlbId) {
    return new InvalidationEntry(0, flags, 0, 0, 0, 0, iotlbId, 0);
  }
}
