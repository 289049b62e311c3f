package io.iommulab.hardware.pci;

import io.iommulab.config.DeviceSettings;
import java.util.OptionalInt;

/** Device settings for tests. */
final class Devices {
  private Devices() {}

  static DeviceSettings plain(String name, String rid, int group) {
    return new DeviceSettings(
        name, "vtd0", rid, OptionalInt.empty(), group, 0, false, 0, false, 4, false, false);
  }

  /** ATS with a 64-entry ATC, PRI, 20-bit PASID, 8 MSI vectors. */
  static DeviceSettings svaCapable(String name, String rid, int group) {
    return new DeviceSettings(
        name, "vtd0", rid, OptionalInt.empty(), group, 20, true, 64, true, 8, false, false);
  }

  static DeviceSettings pamu(String name, String rid, int group, int liodn) {
    return new DeviceSettings(
        name, "pamu0", rid, OptionalInt.of(liodn), group, 0, false, 0, false, 1, true, false);
  }
}
