package io.iommulab.actors.vm;

import io.iommulab.actors.CborSerializable;
import io.iommulab.hardware.PageSize;
import java.util.List;
import java.util.Objects;

/**
 * What a VM is created with.
 *
 * @param vmId the VM's id, also its owner id in host memory (1 to {@code HostMemory.MAX_OWNER})
 * @param tenant the tenant class the VM belongs to: the tag of its metrics (a group, never one
 *     value per VM, so metric cardinality stays bounded)
 * @param memoryBytes guest memory, a positive multiple of {@code backing}
 * @param backing the host page size backing guest memory (hugetlbfs)
 * @param seed the VM's seed, derived by the host from the run's seed; recorded with every oracle
 *     violation so the run can be replayed
 * @param strictOracle unmaps are strict (return after the invalidation sync): a DMA completing at
 *     an IOVA whose unmap returned before the DMA was issued is a violation
 * @param pasidBits width of the VM's PASID space, 1 to 20
 * @param pasidQuota PASIDs the VM may hold at once (the ioasid_set quota)
 * @param askTimeoutMillis how long the VM waits for a unit's answer before treating the silence
 *     as a bug (answered EIO and reported)
 * @param msiBanks MSIIR addresses of the host's MSI banks, by bank index: what a PAMU container
 *     opened by the VM reports (GET_MSI_BANK_COUNT) and maps (MAP_MSI_BANK)
 */
public record VmSpec(
    int vmId,
    String tenant,
    long memoryBytes,
    PageSize backing,
    long seed,
    boolean strictOracle,
    int pasidBits,
    int pasidQuota,
    long askTimeoutMillis,
    List<Long> msiBanks)
    implements CborSerializable {

  public static final String DEFAULT_TENANT = "default";

  public VmSpec {
    Objects.requireNonNull(tenant, "tenant");
    Objects.requireNonNull(backing, "backing");
    msiBanks = List.copyOf(msiBanks);
    if (vmId < 1) {
      throw new IllegalArgumentException("vmId must be at least 1: " + vmId);
    }
    if (askTimeoutMillis < 1) {
      throw new IllegalArgumentException("askTimeoutMillis must be positive: " + askTimeoutMillis);
    }
  }

  /**
   * A strict VM of the default tenant with a 20-bit PASID space, a quota of 1024 and a 30 s ask
   * timeout.
   */
  public static VmSpec of(int vmId, long memoryBytes, PageSize backing, long seed) {
    return new VmSpec(
        vmId, DEFAULT_TENANT, memoryBytes, backing, seed, true, 20, 1024, 30_000, List.of());
  }

  public VmSpec withTenant(String newTenant) {
    return new VmSpec(
        vmId, newTenant, memoryBytes, backing, seed, strictOracle, pasidBits, pasidQuota, askTimeoutMillis,
        msiBanks);
  }

  public VmSpec withStrictOracle(boolean strict) {
    return new VmSpec(
        vmId, tenant, memoryBytes, backing, seed, strict, pasidBits, pasidQuota, askTimeoutMillis,
        msiBanks);
  }

  public VmSpec withMsiBanks(List<Long> banks) {
    return new VmSpec(
        vmId, tenant, memoryBytes, backing, seed, strictOracle, pasidBits, pasidQuota, askTimeoutMillis,
        banks);
  }
}
