package io.iommulab.config;

/**
 * Modeled latencies in nanoseconds. These are the emulated hardware's costs, never measured wall
 * time. Contended resources (the invalidation queue, the page walker) add queueing on top.
 *
 * @param iotlbHitNs an IOTLB hit
 * @param walkLevelNs one page-table level read during a walk
 * @param atcHitNs a device ATC hit (translated request)
 * @param atsTranslationNs an ATS translation request round trip (device to IOMMU and back), on
 *     top of the IOMMU's own lookup
 * @param invalidationDescriptorNs processing one invalidation descriptor
 * @param syncNs a sync (VT-d wait descriptor / SMMUv3 CMD_SYNC) completion
 * @param atcInvalidationRoundTripNs a device ATC invalidation round trip (PCIe message and
 *     completion)
 * @param pageRequestNs delivering one page request to software
 * @param faultReportNs recording one unrecoverable fault
 * @param pteWriteNs writing one page-table entry on map or unmap
 * @param pamuLookupNs a PAMU PAACE window lookup
 */
public record CostModelSettings(
    long iotlbHitNs,
    long walkLevelNs,
    long atcHitNs,
    long atsTranslationNs,
    long invalidationDescriptorNs,
    long syncNs,
    long atcInvalidationRoundTripNs,
    long pageRequestNs,
    long faultReportNs,
    long pteWriteNs,
    long pamuLookupNs) {}
