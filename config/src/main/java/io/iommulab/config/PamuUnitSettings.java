package io.iommulab.config;

/**
 * A Freescale PAMU (the 2013 VFIO-PAMU seed).
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

  @Override
  public UnitKind kind() {
    return UnitKind.PAMU;
  }

  /** PAMU relies on MSI banks mapped into windows; nothing remaps interrupts. */
  @Override
  public boolean msiIsolation() {
    return false;
  }
}
