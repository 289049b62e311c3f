package io.iommulab.config;

import com.typesafe.config.Config;
import java.util.List;
import java.util.Optional;

/**
 * A Freescale PAMU (the 2013 VFIO-PAMU seed).
 *
 * <p>Invariants (checked on construction; reported with key paths by {@link #fromConfig}):
 * {@code maxWindows} is a power of two from 1 to 256 (VFIO-PAMU caps the count at 256); the
 * default aperture has a power-of-two size of at least 4 KiB and a start aligned to that size,
 * and is large enough that each of {@code maxWindows} windows is at least 4 KiB (the geometry
 * rules of {@code drivers/iommu/fsl_pamu_domain.c}). From config also: 1 to 4096 PPAACT entries
 * and 0 to 65536 SPAACT entries.
 *
 * @param name unique unit name
 * @param ppaactEntries primary PAACT entries, one per LIODN (0x500)
 * @param spaactEntries secondary PAACT pool shared by every LIODN (0x800)
 * @param maxWindows hardware maximum window count, a power of two up to 256
 * @param defaultApertureStart aperture start before the user sets the geometry (0)
 * @param defaultApertureSize aperture size before the user sets the geometry (2^36)
 */
public record PamuUnitSettings(
    String name,
    int ppaactEntries,
    int spaactEntries,
    int maxWindows,
    long defaultApertureStart,
    long defaultApertureSize)
    implements IommuUnitSettings {

  /** Keys of a PAMU unit besides {@code name} and {@code kind}: what unit-defaults may set. */
  static final List<String> FIELD_KEYS =
      List.of(
          "ppaact-entries",
          "spaact-entries",
          "max-windows",
          "aperture-start",
          "aperture-size");

  static final long MIN_WINDOW = 4096;

  static final ConfigReader.Rule APERTURE_SIZE =
      new ConfigReader.Rule(
          v -> v >= MIN_WINDOW && Long.bitCount(v) == 1, "must be a power of two of at least 4K");

  public PamuUnitSettings {
    if (name == null) {
      throw new IllegalArgumentException("name must not be null");
    }
    if (ppaactEntries < 1 || spaactEntries < 0) {
      throw new IllegalArgumentException(
          name + ": ppaact-entries must be at least 1 and spaact-entries at least 0");
    }
    if (maxWindows < 1 || maxWindows > 256 || Integer.bitCount(maxWindows) != 1) {
      throw new IllegalArgumentException(
          name + ": max-windows = " + maxWindows + ": must be a power of two from 1 to 256");
    }
    if (!APERTURE_SIZE.test().test(defaultApertureSize)
        || (defaultApertureStart & (defaultApertureSize - 1)) != 0
        || defaultApertureSize / maxWindows < MIN_WINDOW) {
      throw new IllegalArgumentException(
          name
              + ": aperture 0x"
              + Long.toHexString(defaultApertureStart)
              + " size 0x"
              + Long.toHexString(defaultApertureSize)
              + ": must be a power of two of at least max-windows × 4K, start aligned to size");
    }
  }

  @Override
  public UnitKind kind() {
    return UnitKind.PAMU;
  }

  /** PAMU relies on MSI banks mapped into windows; nothing remaps interrupts. */
  @Override
  public boolean msiIsolation() {
    return false;
  }

  /** The end of the default aperture, exclusive; 0 when the aperture reaches 2^64. */
  public long defaultApertureEnd() {
    return defaultApertureStart + defaultApertureSize;
  }

  /**
   * Builds one entry of {@code units} whose {@code kind} is {@code pamu}. Keys the entry omits come
   * from {@code iommulab.topology.unit-defaults.pamu} of the shipped {@code reference.conf}.
   * Problems are named relative to the entry.
   *
   * @throws SettingsException listing every problem, including a kind that is not pamu
   */
  public static PamuUnitSettings fromConfig(Config unit) {
    IommuUnitSettings settings = IommuUnitSettings.fromConfig(unit);
    if (settings instanceof PamuUnitSettings pamu) {
      return pamu;
    }
    throw new SettingsException(
        List.of(
            "kind = "
                + settings.kind().configName()
                + ": must be pamu (a vtd or smmuv3 unit is a PagingUnitSettings)"));
  }

  /** Reads a PAMU's fields; with {@code name == null} only validates and returns empty. */
  static Optional<PamuUnitSettings> read(ConfigReader r, String name) {
    int mark = r.mark();
    int ppaact = r.getInt("ppaact-entries", ConfigReader.Rule.between(1, 4096)).orElse(1);
    int spaact = r.getInt("spaact-entries", ConfigReader.Rule.between(0, 65536)).orElse(0);
    int maxWindows = r.getInt("max-windows", ConfigReader.Rule.powerOfTwoBetween(1, 256)).orElse(0);
    long start = r.getAddress("aperture-start", ConfigReader.Rule.any()).orElse(-1);
    long size = r.getBytes("aperture-size", APERTURE_SIZE).orElse(0);
    if (start >= 0 && size > 0 && (start & (size - 1)) != 0) {
      r.entryProblem(
          "aperture-start",
          "must be aligned to aperture-size (" + ConfigReader.bytesText(size) + ")");
    }
    if (maxWindows > 0 && size > 0 && size / maxWindows < MIN_WINDOW) {
      r.entryProblem(
          "aperture-size",
          "must be at least max-windows ("
              + maxWindows
              + ") × 4K = "
              + ConfigReader.bytesText(maxWindows * MIN_WINDOW)
              + ", so that every window is at least 4K");
    }
    if (name == null || r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(new PamuUnitSettings(name, ppaact, spaact, maxWindows, start, size));
  }
}
