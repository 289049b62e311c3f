package io.iommulab.hardware.fault;

/**
 * Why a DMA could not be translated. Each reason carries the code the hardware would report: the
 * VT-d fault reason (legacy 0x00–0x0D, scalable mode 0x30–0x90; {@code drivers/iommu/intel/dmar.c}
 * {@code dma_remap_fault_reasons}), the SMMUv3 event id ({@code arm-smmu-v3.h}: 0x10 translation,
 * 0x11 address size, 0x12 access, 0x13 permission) and, for PAMU, the AVS1 field that flags it ({@code drivers/iommu/fsl_pamu.h}: APV 0x78
 * access permission, WAV 0x380 window, LAV 0x1c00 LIODN). A code of -1 means the unit kind cannot raise it.
 */
public enum FaultReason {
  /** No context entry / STE for the requester: the device is not attached. */
  CONTEXT_NOT_PRESENT(0x02, 0x04, -1),
  /** PASID beyond the table's size or the device's width. */
  PASID_OUT_OF_RANGE(0x58, 0x05, -1),
  /** PASID entry not present for this RID (a device reaches only its own PASID table). */
  PASID_NOT_VALID(0x59, 0x06, -1),
  /** Input address beyond the domain's address width. */
  ADDRESS_BEYOND_WIDTH(0x0b, 0x11, -1),
  /** No present leaf for the IOVA in the (first or only) stage. */
  NOT_PRESENT(0x06, 0x10, -1),
  /** Nested: the stage-1 output (a GPA) has no stage-2 mapping. */
  STAGE2_NOT_PRESENT(0x07, 0x10, -1),
  /** Read request to a page without read permission. */
  READ_DENIED(0x06, 0x13, 0x78),
  /** Write request to a page without write permission. */
  WRITE_DENIED(0x05, 0x13, 0x78),
  /** DMA to a reserved region (the MSI window) that is not a valid MSI write. */
  RESERVED_REGION(0x0d, 0x10, -1),
  /** PAMU: the address is outside the aperture. */
  OUTSIDE_APERTURE(-1, -1, 0x380),
  /** PAMU: the window (or subwindow) holding the address is not valid. */
  WINDOW_DISABLED(-1, -1, 0x380),
  /** PAMU: the LIODN is disabled (never enabled, or disabled after a violation). */
  LIODN_DISABLED(-1, -1, 0x1c00);

  private final int vtdCode;
  private final int smmuEventId;
  private final int pamuAvsBits;

  FaultReason(int vtdCode, int smmuEventId, int pamuAvsBits) {
    this.vtdCode = vtdCode;
    this.smmuEventId = smmuEventId;
    this.pamuAvsBits = pamuAvsBits;
  }

  public int vtdCode() {
    return vtdCode;
  }

  public int smmuEventId() {
    return smmuEventId;
  }

  public int pamuAvsBits() {
    return pamuAvsBits;
  }
}
