package io.iommulab.config;

import com.typesafe.config.Config;
import java.util.OptionalInt;

/**
 * One PCI function of the host, under {@code iommulab.topology.devices[i]} or expanded from a
 * device pool.
 *
 * <p>Invariants (checked on construction; reported with key paths by the builders): {@code rid} is
 * a well-formed {@code bus:dev.fn}; {@code group >= 0}; {@code pasidBits} 0 to 20; {@code pri}
 * implies {@code ats}; counts are not negative. Within a {@link TopologySettings} also: names are
 * unique, the unit exists, the RID is unique on its unit, a LIODN is present exactly behind a PAMU
 * (and then there are no PASIDs and no ATS), and a group's devices share one unit.
 *
 * @param name unique device name
 * @param unit name of the IOMMU unit the device sits behind
 * @param rid requester id as {@code bus:dev.fn} (hex), unique per unit; from config always in
 *     the canonical {@code bb:dd.f} form
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

  public DeviceSettings {
    if (name == null || unit == null || liodn == null) {
      throw new IllegalArgumentException("name, unit and liodn must not be null");
    }
    if (Rids.parse(rid).isEmpty()) {
      throw new IllegalArgumentException(name + ": rid = " + rid + ": not a bus:dev.fn");
    }
    if (group < 0 || pasidBits < 0 || pasidBits > 20 || (ats && atcEntries < 1) || atcEntries < 0 || msiVectors < 0) {
      throw new IllegalArgumentException(
          name + ": group, pasid-bits (0..20), atc-entries (>= 1 with ats) or msi-vectors out of range");
    }
    if (pri && !ats) {
      throw new IllegalArgumentException(name + ": pri requires ats");
    }
  }

  /**
   * Builds one entry of {@code devices} on its own: keys it omits come from {@code
   * iommulab.topology.device-defaults} of the shipped {@code reference.conf}; problems are named
   * relative to the entry. Rules that need the rest of the topology (the unit exists, LIODN iff
   * PAMU, uniqueness, groups) are checked only by {@link TopologySettings#fromConfig}.
   *
   * @throws SettingsException listing every problem
   */
  public static DeviceSettings fromConfig(Config device) {
    return TopologyBuilder.deviceFromConfig(device);
  }

  /** The RID packed as the 16-bit {@code bus << 8 | dev << 3 | fn}. */
  public int ridValue() {
    return Rids.parse(rid).orElseThrow(() -> new IllegalStateException("unvalidated rid " + rid));
  }
}
