package io.iommulab.config.scenario;

import java.util.Arrays;
import java.util.Optional;

/**
 * The operations of a scenario's workload, named as in metric names ({@code map.latency.modeled})
 * and in results. Each is counted ({@code <op>.count}), its refusals counted ({@code <op>.errors}),
 * and its latency recorded twice: modeled (what the cost model charged) and wall (what the run
 * measured at its edge).
 */
public enum Operation {
  /**
   * Attaching a device to its IOAS or HWPT (bind, attach, and for a PAMU the window setup): at VM
   * start and after every replug. Every workload has it.
   */
  ATTACH("attach", "device attaches (at VM start and after each replug)"),
  /** IOAS map of a guest buffer (pin, charge, page-table writes in every domain of the IOAS). */
  MAP("map", "maps of a guest buffer into an IOAS"),
  /** IOAS unmap; strict unmaps return after the IOTLB and device-TLB invalidation sync. */
  UNMAP("unmap", "unmaps (strict ones return after the invalidation sync)"),
  /** A burst of DMA accesses by one device. */
  DMA("dma", "DMA bursts"),
  /** A page request (PRI/IOPF) from the first touch of a lazily mapped buffer, until answered. */
  PAGE_REQUEST("page-request", "page requests, from fault to response"),
  /** A guest invalidation of a nested (stage-1) domain, passed down to the unit. */
  INVALIDATION("invalidation", "guest stage-1 invalidations of nested domains"),
  /** A hot-unplug of a device while its VM runs. */
  UNPLUG("unplug", "device hot-unplugs"),
  /** A hot-plug of a device back into the host and its VM. */
  HOTPLUG("hotplug", "device hot-plugs"),
  /** A guest WBINVD instruction: emulated by KVM only while the VM has non-coherent DMA. */
  WBINVD("wbinvd", "guest WBINVD instructions");

  private final String configName;
  private final String description;

  Operation(String configName, String description) {
    this.configName = configName;
    this.description = description;
  }

  /** The spelling in metric names and results. */
  public String configName() {
    return configName;
  }

  public String description() {
    return description;
  }

  public static Optional<Operation> fromConfigName(String name) {
    return Arrays.stream(values()).filter(o -> o.configName.equals(name)).findFirst();
  }
}
