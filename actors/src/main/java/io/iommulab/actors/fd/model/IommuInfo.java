package io.iommulab.actors.fd.model;

import io.iommulab.config.UnitKind;
import io.iommulab.hardware.iommu.ReservedRegion;
import java.util.List;

/**
 * What iommufd learns about a device's IOMMU when it binds the device (the unit's answer to the
 * DMA-ownership claim): the capabilities GET_HW_INFO reports, the geometry of the domains it
 * allocates, and the reserved regions every IOAS the device attaches to must honour.
 */
public record IommuInfo(
    int unitId,
    String unitName,
    UnitKind kind,
    long pageSizeBitmap,
    int addressWidth,
    long apertureStart,
    long apertureLast,
    int pasidBits,
    boolean enforceCacheCoherency,
    boolean dirtyTracking,
    boolean nesting,
    boolean msiIsolation,
    boolean ats,
    boolean pri,
    List<ReservedRegion> reservedRegions) {

  public IommuInfo {
    reservedRegions = List.copyOf(reservedRegions);
  }
}
