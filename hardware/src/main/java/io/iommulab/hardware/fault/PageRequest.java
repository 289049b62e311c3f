package io.iommulab.hardware.fault;

/**
 * A recoverable page request (PCIe PRI, VT-d PRQ descriptor, SMMUv3 PRIQ entry): the device asks
 * software to make {@code addr} present and will retry. Requests of one group share
 * {@code groupId} (the 9-bit PRG index); the request with {@code lastPage} closes the group
 * ({@code drivers/iommu/io-pgfault.c}).
 *
 * @param perm {@link io.iommulab.hardware.Access} bits requested
 */
public record PageRequest(
    int unitId, int rid, int pasid, int groupId, long addr, int perm, boolean lastPage, long timeNs)
    implements FaultRecord {

  /** PRG index width: 9 bits. */
  public static final int MAX_GROUP_ID = (1 << 9) - 1;
}
