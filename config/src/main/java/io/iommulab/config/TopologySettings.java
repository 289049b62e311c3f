package io.iommulab.config;

import java.util.List;
import java.util.Optional;

/**
 * One host: its memory, IOMMU units, PCI functions (listed and expanded from pools), MSI banks.
 *
 * @param hostMemoryBytes host physical memory, a multiple of 2 MiB
 * @param units IOMMU units, names unique
 * @param devices every PCI function, pools already expanded, names unique
 * @param msiBanks the MPIC MSI banks (3 or 4)
 */
public record TopologySettings(
    long hostMemoryBytes,
    List<IommuUnitSettings> units,
    List<DeviceSettings> devices,
    List<MsiBankSettings> msiBanks) {

  public TopologySettings {
    units = List.copyOf(units);
    devices = List.copyOf(devices);
    msiBanks = List.copyOf(msiBanks);
  }

  public Optional<IommuUnitSettings> unit(String name) {
    return units.stream().filter(u -> u.name().equals(name)).findFirst();
  }

  public Optional<DeviceSettings> device(String name) {
    return devices.stream().filter(d -> d.name().equals(name)).findFirst();
  }
}
