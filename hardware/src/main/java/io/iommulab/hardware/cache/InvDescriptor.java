package io.iommulab.hardware.cache;

/**
 * One invalidation-queue descriptor (VT-d QI descriptors, SMMUv3 CMDQ commands). A
 * {@link Wait} completes when every descriptor before it has.
 */
public sealed interface InvDescriptor {

  /** Drop every IOTLB entry (VT-d global IOTLB invalidation, SMMUv3 TLBI_NSNH_ALL). */
  record IotlbGlobal() implements InvDescriptor {}

  /** Domain-selective (VT-d DSI / SMMUv3 TLBI_S12_VMALL). */
  record IotlbDomain(int domainId) implements InvDescriptor {}

  /** PASID-selective (VT-d PASID-IOTLB, SMMUv3 TLBI_NH_ASID). */
  record IotlbPasid(int domainId, int pasid) implements InvDescriptor {}

  /** Page-selective: 2^addressMask pages from an aligned {@code address}; pasid may be ANY. */
  record IotlbPages(int domainId, int pasid, long address, int addressMask, boolean leaf)
      implements InvDescriptor {}

  /** Device-TLB (ATC) invalidation of one function: ATC_INV / VT-d dev-IOTLB descriptor. */
  record DevTlb(int rid, int pasid, long address, int sizeOrder) implements InvDescriptor {}

  /** Context-cache (STE) invalidation for one requester. */
  record ContextCache(int rid) implements InvDescriptor {}

  /** PASID-cache (CD) invalidation. */
  record PasidCache(int domainId, int pasid) implements InvDescriptor {}

  /** VT-d wait descriptor / SMMUv3 CMD_SYNC: completes after everything queued before it. */
  record Wait(long token) implements InvDescriptor {}
}
