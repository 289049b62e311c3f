package io.iommulab.config;

import java.util.OptionalInt;

/**
 * One PCI function of the host, under {@code iommulab.topology.devices[i]} or expanded from a
 * device pool.
 *
 * @param name unique device name
 * @param unit name of the IOMMU unit the device sits behind
 * @param rid requester id as {@code bus:dev.fn} (hex), unique per unit
 * @param liodn the PAMU logical I/O device number; present exactly for devices behind a PAMU
 * @param group IOMMU group number; all devices of a group sit behind the same unit
 * @param pasidBits PASID width the function supports, 0 for none
 * @param ats the function has ATS and a device ATC
 * @param atcEntries ATC capacity when {@code ats}
 * @param pri the function can issue page requests (PRI); requires ATS
 * @param msiVectors MSI/MSI-X vectors the function uses
 * @param noSnoop the function issues no-snoop requests (non-coherent DMA)
 * @param virtualFunction the function is an SR-IOV VF (PRI shared with its PF)
 */
public record DeviceSettings(
    String name,
    String unit,
    String rid,
    OptionalInt liodn,
    int group,
    int pasidBits,
    boolean ats,
    int atcEntries,
    boolean pri,
    int msiVectors,
    boolean noSnoop,
    boolean virtualFunction) {

  /** The RID packed as the 16-bit {@code bus << 8 | dev << 3 | fn}. */
  public int ridValue() {
    return Rids.parse(rid).orElseThrow(() -> new IllegalStateException("unvalidated rid " + rid));
  }
}
