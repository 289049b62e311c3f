package io.iommulab.config.scenario;

/** Which of a VM's devices the hotplug workload may unplug. */
public enum HotplugTargets {
  /** Any of the VM's devices. */
  ANY("any"),
  /** Only devices doing no-snoop (non-coherent) DMA: what turns KVM's WBINVD emulation on. */
  NO_SNOOP("no-snoop"),
  /** Only devices without no-snoop DMA. */
  COHERENT("coherent");

  private final String configName;

  HotplugTargets(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }

  /** Whether a device with {@code noSnoop} is a target. */
  public boolean accepts(boolean noSnoop) {
    return switch (this) {
      case ANY -> true;
      case NO_SNOOP -> noSnoop;
      case COHERENT -> !noSnoop;
    };
  }
}
