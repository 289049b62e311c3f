package io.iommulab.hardware;

/**
 * Access and permission bits, shared by DMA requests, page-table entries and page requests. The
 * values match {@code IOMMU_READ}/{@code IOMMU_WRITE} of {@code include/linux/iommu.h} for the
 * first two; EXEC and PRIV follow the page-request permission flags of
 * {@code struct iommu_hwpt_pgfault}.
 */
public final class Access {
  public static final int READ = 1;
  public static final int WRITE = 2;
  public static final int EXEC = 4;
  public static final int PRIV = 8;
  public static final int READ_WRITE = READ | WRITE;

  /**
   * Protection bit of a mapping, not of a request: the entry forces snooping (VT-d
   * {@code DMA_PTE_SNP}, set only on maps made after the domain enforced cache coherency;
   * {@code drivers/iommu/intel/iommu.c}). A no-snoop request through such an entry is snooped.
   */
  public static final int SNOOP = 0x10;

  private Access() {}

  /** True when every bit of {@code requested} is granted by {@code granted}. */
  public static boolean permits(int granted, int requested) {
    return (requested & ~granted & (READ | WRITE | EXEC | PRIV)) == 0;
  }

  public static String describe(int bits) {
    StringBuilder sb = new StringBuilder();
    sb.append((bits & READ) != 0 ? 'r' : '-');
    sb.append((bits & WRITE) != 0 ? 'w' : '-');
    sb.append((bits & EXEC) != 0 ? 'x' : '-');
    sb.append((bits & PRIV) != 0 ? 'p' : '-');
    return sb.toString();
  }
}
