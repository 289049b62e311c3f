package io.iommulab.config;

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
}
