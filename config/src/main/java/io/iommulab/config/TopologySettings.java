package io.iommulab.config;

import com.typesafe.config.Config;
import java.util.List;
import java.util.Optional;

/**
 * One host: its memory, IOMMU units, PCI functions (listed and expanded from pools), MSI banks.
 *
 * <p>Built from {@code iommulab.topology} by {@link #fromConfig}, which checks every rule of
 * {@code reference.conf} and the rules that span entries (unique names, RIDs unique per unit,
 * LIODN exactly behind a PAMU and shared only within a group, a group behind one unit, 3 or 4
 * distinct MSI banks) and reports all problems at once.
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

  /** Where the section lives in a full config; problems are named under it. */
  public static final String PATH = TopologyBuilder.PATH;

  public TopologySettings {
    units = List.copyOf(units);
    devices = List.copyOf(devices);
    msiBanks = List.copyOf(msiBanks);
  }

  /**
   * Builds the topology from the {@code iommulab.topology} section (for example {@code
   * ConfigFactory.load().getConfig(TopologySettings.PATH)}): per-kind unit defaults fill the keys
   * a unit omits, device defaults those a device or pool omits, and pools are expanded after the
   * listed devices. Problems are named by their full path under {@code iommulab.topology}.
   *
   * @throws SettingsException listing every problem; no partial topology is ever returned
   */
  public static TopologySettings fromConfig(Config topology) {
    return TopologyBuilder.topologyFromConfig(topology);
  }

  public Optional<IommuUnitSettings> unit(String name) {
    return units.stream().filter(u -> u.name().equals(name)).findFirst();
  }

  public Optional<DeviceSettings> device(String name) {
    return devices.stream().filter(d -> d.name().equals(name)).findFirst();
  }
}
