package io.iommulab.hardware.fault;

import io.iommulab.hardware.Access;

/**
 * An unrecoverable DMA fault: the VT-d primary fault record (F bit, reason, read/write, PASID,
 * source-id, page address; {@code drivers/iommu/intel/dmar.c}), the SMMUv3 event record (SID,
 * SSID, RnW, address; {@code arm-smmu-v3.c}), or a PAMU access violation (AVS1/AVA;
 * {@code drivers/iommu/fsl_pamu.c}).
 *
 * @param access {@link Access} bits of the faulting request
 */
public record DmaFault(
    int unitId, int rid, int pasid, long iova, int access, FaultReason reason, long timeNs)
    implements FaultRecord {

  public boolean write() {
    return (access & Access.WRITE) != 0;
  }
}
