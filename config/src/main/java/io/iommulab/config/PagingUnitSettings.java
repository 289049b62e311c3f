package io.iommulab.config;

import java.util.List;

/**
 * A page-table IOMMU unit (VT-d-like or SMMUv3-like).
 *
 * @param name unique unit name
 * @param kind {@link UnitKind#VTD} or {@link UnitKind#SMMUV3}
 * @param addressWidth input address width in bits (39, 48 or 57): 3, 4 or 5 table levels
 * @param pageSizes supported page sizes in bytes, a subset of 4 KiB, 2 MiB, 1 GiB, 4 KiB always
 * @param snoopControl VT-d ECAP.SC: can enforce cache coherency (force snoop)
 * @param nesting supports nested (stage-1 over NEST_PARENT stage-2) translation
 * @param dirtyTracking supports dirty tracking on paging domains
 * @param msiIsolation MSIs are isolated (interrupt remapping / ITS)
 * @param pasidBits PASID width supported by the unit, 0 to 20
 * @param domainIds number of domain ids (VT-d cap_ndoms, SMMUv3 VMIDs/ASIDs); id 0 reserved
 * @param iotlb IOTLB geometry
 * @param invalidationQueueDepth descriptors in the invalidation queue (VT-d QI: 256)
 * @param maxAddressMask largest page-selective invalidation mask (VT-d cap_max_amask_val):
 *     wider ranges fall back to domain-selective invalidation
 * @param cachingMode VT-d CM=1 (a vIOMMU): non-present to present changes also need invalidation
 */
public record PagingUnitSettings(
    String name,
    UnitKind kind,
    int addressWidth,
    List<Long> pageSizes,
    boolean snoopControl,
    boolean nesting,
    boolean dirtyTracking,
    boolean msiIsolation,
    int pasidBits,
    int domainIds,
    IotlbSettings iotlb,
    int invalidationQueueDepth,
    int maxAddressMask,
    boolean cachingMode)
    implements IommuUnitSettings {

  public PagingUnitSettings {
    pageSizes = List.copyOf(pageSizes);
  }

  /** Table levels implied by the address width with 4 KiB pages and 9 bits per level. */
  public int levels() {
    return (addressWidth - 12 + 8) / 9;
  }
}
