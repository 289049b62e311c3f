package io.iommulab.hardware.iommu;

import io.iommulab.config.Rids;

/**
 * The per-requester root of translation: a VT-d scalable-mode context entry (found by bus and
 * devfn, pointing at that device's PASID directory; {@code drivers/iommu/intel/iommu.c}
 * {@code domain_context_mapping_one}) or an SMMUv3 stream table entry (found by StreamID,
 * pointing at its context-descriptor table indexed by SSID; {@code arm-smmu-v3.c}). Created when
 * the device is probed ({@link IommuUnit#addDevice}), gone when it is released.
 *
 * <p>Invariant: {@code pasidTable().width() == min(device PASID width, unit PASID width)}.
 *
 * @see PasidTable for the isolation property
 */
public final class ContextEntry {
  private final int rid;
  private final int devicePasidBits;
  private final boolean ats;
  private final PasidTable pasidTable;

  ContextEntry(int rid, int devicePasidBits, boolean ats, PasidTable pasidTable) {
    this.rid = rid;
    this.devicePasidBits = devicePasidBits;
    this.ats = ats;
    this.pasidTable = pasidTable;
  }

  public int rid() {
    return rid;
  }

  /** PASID width the function advertises. */
  public int devicePasidBits() {
    return devicePasidBits;
  }

  /** The function has ATS enabled: its device TLB must be invalidated after the IOTLB. */
  public boolean ats() {
    return ats;
  }

  public PasidTable pasidTable() {
    return pasidTable;
  }

  @Override
  public String toString() {
    return "ContextEntry[" + Rids.format(rid) + " pasidBits=" + pasidTable.width()
        + (ats ? " ats" : "") + " present=" + pasidTable.present() + "]";
  }
}
