package io.iommulab.config;

import com.typesafe.config.Config;
import java.util.List;
import java.util.Optional;

/**
 * One MPIC-style MSI bank: a 4 KiB MSIIR page carrying many vectors. A device behind a PAMU
 * signals an MSI by writing this page, so each bank a device may target costs one whole PAMU
 * window (the 2013 "vfio API changes needed for powerpc" thread; {@code fsl_msi.c}).
 *
 * <p>Invariants: {@code index >= 0}; {@code msiirAddress} is 4 KiB aligned; {@code vectors} is 1
 * to 256. Across a topology, banks are 3 or 4 and their MSIIR pages distinct.
 *
 * @param index bank index, from 0
 * @param msiirAddress host physical address of the bank's MSIIR page, 4 KiB aligned
 * @param vectors vectors the bank carries (MPIC: 8 MSIR registers of 32 bits = 256; an
 *     MPIC 4.3 bank addressed through MSIIR1 has 16 MSIRs = 512, arch/powerpc/sysdev/fsl_msi.c)
 */
public record MsiBankSettings(int index, long msiirAddress, int vectors) {

  static final List<String> KEYS = List.of("msiir-address", "vectors");
  static final List<String> DEFAULT_KEYS = List.of("vectors");

  static final ConfigReader.Rule PAGE_ALIGNED =
      new ConfigReader.Rule(v -> (v & 0xfff) == 0, "must be 4 KiB aligned (an MSIIR page)");
  static final ConfigReader.Rule VECTORS = ConfigReader.Rule.between(1, 512);

  public MsiBankSettings {
    if (index < 0) {
      throw new IllegalArgumentException("index = " + index + ": must not be negative");
    }
    if ((msiirAddress & 0xfff) != 0) {
      throw new IllegalArgumentException(
          "msiir-address = 0x" + Long.toHexString(msiirAddress) + ": must be 4 KiB aligned");
    }
    if (vectors < 1 || vectors > 512) {
      throw new IllegalArgumentException("vectors = " + vectors + ": must be from 1 to 512");
    }
  }

  /**
   * Builds bank {@code index} from one entry of {@code msi-banks}; omitted keys come from {@code
   * iommulab.topology.msi-bank-defaults} of the shipped {@code reference.conf}. Problems are named
   * relative to the entry. Distinctness across banks is checked by {@link TopologySettings}.
   *
   * @throws SettingsException listing every problem
   */
  public static MsiBankSettings fromConfig(Config bank, int index) {
    ConfigReader.Problems problems = new ConfigReader.Problems();
    ConfigReader r =
        ConfigReader.of(bank, "", problems)
            .withFallback(TopologyBuilder.referenceSection("msi-bank-defaults", problems));
    Optional<MsiBankSettings> settings = read(r, index);
    problems.throwIfAny();
    return settings.orElseThrow();
  }

  static Optional<MsiBankSettings> read(ConfigReader r, int index) {
    int mark = r.mark();
    r.checkKnownKeys(KEYS, "an MSI bank");
    long address = r.getAddress("msiir-address", PAGE_ALIGNED).orElse(0);
    int vectors = r.getInt("vectors", VECTORS).orElse(1);
    if (r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(new MsiBankSettings(index, address, vectors));
  }
}
