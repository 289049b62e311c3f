package io.iommulab.config;

import com.typesafe.config.Config;

/**
 * One IOMMU unit of the host, as configured under {@code iommulab.topology.units[i]}. Paging
 * units (VT-d-like and SMMUv3-like) and the windowed PAMU have different capabilities, hence a
 * sealed family.
 */
public sealed interface IommuUnitSettings permits PagingUnitSettings, PamuUnitSettings {

  /** Unique name, referenced by devices ({@code unit = vtd0}). */
  String name();

  UnitKind kind();

  /** Whether MSIs from devices behind this unit are isolated (interrupt remapping, ITS). */
  boolean msiIsolation();

  /**
   * Builds one entry of {@code units}: {@code name}, {@code kind}, and the keys of that kind; keys
   * the entry omits come from {@code iommulab.topology.unit-defaults.<kind>} of the shipped {@code
   * reference.conf}. Problems are named relative to the entry. Name uniqueness is checked by
   * {@link TopologySettings}.
   *
   * @return a {@link PagingUnitSettings} for {@code vtd} and {@code smmuv3}, a {@link
   *     PamuUnitSettings} for {@code pamu}
   * @throws SettingsException listing every problem
   */
  static IommuUnitSettings fromConfig(Config unit) {
    return TopologyBuilder.unitFromConfig(unit);
  }
}
