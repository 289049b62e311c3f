package io.iommulab.config;

import java.util.Arrays;
import java.util.Optional;

/** The kinds of IOMMU unit iommulab models, named as in HOCON ({@code kind = vtd}). */
public enum UnitKind {
  /** Intel VT-d-like page-table IOMMU (scalable mode: context entries, per-RID PASID tables). */
  VTD("vtd"),
  /** Arm SMMUv3-like page-table IOMMU (STE per StreamID, CD table per SSID). */
  SMMUV3("smmuv3"),
  /** Freescale PAMU: windowed, per-LIODN PAACE entries and a shared SPAACT pool. */
  PAMU("pamu");

  private final String configName;

  UnitKind(String configName) {
    this.configName = configName;
  }

  /** The spelling used in HOCON. */
  public String configName() {
    return configName;
  }

  public boolean isPaging() {
    return this != PAMU;
  }

  public static Optional<UnitKind> fromConfigName(String name) {
    return Arrays.stream(values()).filter(k -> k.configName.equals(name)).findFirst();
  }
}
