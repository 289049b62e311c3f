package io.iommulab.config.scenario;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A class of VMs that share a shape and a workload, under {@code scenario.tenants[i]}. The
 * tenant's name tags its metrics (a group, never one tag per VM, so cardinality stays bounded).
 *
 * <p>Invariants (checked by the scenario reader, with key paths): the name is unique and matches
 * {@code [a-z][a-z0-9-]*}; {@code vms} is 1 to 100000; {@code memoryBytes} is a multiple of
 * {@code backingBytes} (4 KiB, 2 MiB, 64 MiB or 1 GiB); every VM got its devices ({@code
 * vmDevices} has {@code vms} entries of {@link #devicesPerVm()} names each, whole IOMMU groups,
 * no device twice in the scenario); {@code nested} only on units with nesting, {@code
 * pasidsPerDevice > 0} only on devices and units with PASIDs.
 *
 * @param name the tenant's name, the tag of its metrics
 * @param vms number of VMs
 * @param firstVmId id of the first VM; the tenant's VMs are {@code firstVmId .. firstVmId + vms -
 *     1} (ids run on across tenants, from 1)
 * @param memoryBytes guest memory of each VM
 * @param backingBytes the host page size backing guest memory (hugetlbfs)
 * @param devices where each VM's devices come from
 * @param domains how a VM's devices share IOASes and domains
 * @param pasidsPerDevice PASIDs each device uses beyond its RID (SVA, per-PASID attach); 0 for
 *     none
 * @param nested the VM's devices translate through nested domains (a guest stage 1 over a host
 *     stage 2)
 * @param pamuWindows windows of each PAMU domain (a power of two; n > 1 windows take n - 1
 *     entries of the shared SPAACT), for devices behind a PAMU
 * @param workload what each VM does
 * @param vmDevices the device names of each VM, in VM order: assigned when the scenario was
 *     read, deterministically (topology order)
 */
public record TenantSettings(
    String name,
    int vms,
    int firstVmId,
    long memoryBytes,
    long backingBytes,
    List<DeviceSlot> devices,
    DomainLayout domains,
    int pasidsPerDevice,
    boolean nested,
    int pamuWindows,
    WorkloadSettings workload,
    List<List<String>> vmDevices) {

  public static final int MAX_VMS = 100_000;

  public TenantSettings {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(domains, "domains");
    Objects.requireNonNull(workload, "workload");
    devices = List.copyOf(devices);
    List<List<String>> copy = new ArrayList<>(vmDevices.size());
    for (List<String> d : vmDevices) {
      copy.add(List.copyOf(d));
    }
    vmDevices = List.copyOf(copy);
    if (vms < 1 || vms > MAX_VMS || firstVmId < 1) {
      throw new IllegalArgumentException(name + ": vms or first VM id out of range");
    }
    if (backingBytes <= 0 || memoryBytes <= 0 || memoryBytes % backingBytes != 0) {
      throw new IllegalArgumentException(name + ": memory must be a positive multiple of backing");
    }
    if (pamuWindows < 1 || pamuWindows > 256 || Integer.bitCount(pamuWindows) != 1) {
      throw new IllegalArgumentException(name + ": pamu-windows = " + pamuWindows);
    }
    if (vmDevices.size() != vms) {
      throw new IllegalArgumentException(name + ": " + vmDevices.size() + " device lists for " + vms + " VMs");
    }
  }

  /** Devices each VM gets: the sum of the slots' {@code per-vm}. */
  public int devicesPerVm() {
    int n = 0;
    for (DeviceSlot s : devices) {
      n += s.perVm();
    }
    return n;
  }

  /** The id of the tenant's {@code i}-th VM (from 0). */
  public int vmId(int i) {
    return firstVmId + i;
  }
}
