package io.iommulab.hardware;

import java.util.OptionalInt;

/**
 * Page sizes of the modeled hardware. VT-d and SMMUv3 map 4 KiB, 2 MiB and 1 GiB pages
 * ({@code drivers/iommu/intel/iommu.c}); guests are backed by 4 KiB, 2 MiB or 64 MiB pages (64
 * MiB as in the 2013 PAMU thread's example guest).
 */
public enum PageSize {
  SIZE_4K(12),
  SIZE_2M(21),
  SIZE_64M(26),
  SIZE_1G(30);

  private final int shift;

  PageSize(int shift) {
    this.shift = shift;
  }

  public int shift() {
    return shift;
  }

  public long bytes() {
    return 1L << shift;
  }

  public long mask() {
    return bytes() - 1;
  }

  /** Frames of 4 KiB in one page of this size. */
  public long frames() {
    return 1L << (shift - 12);
  }

  public boolean isAligned(long address) {
    return (address & mask()) == 0;
  }

  public static PageSize ofBytes(long bytes) {
    for (PageSize p : values()) {
      if (p.bytes() == bytes) {
        return p;
      }
    }
    throw new IllegalArgumentException("no page size of " + bytes + " bytes");
  }

  /** The page-table level whose leaf maps this size (1 = 4 KiB), if a radix table can map it. */
  public OptionalInt leafLevel() {
    return switch (this) {
      case SIZE_4K -> OptionalInt.of(1);
      case SIZE_2M -> OptionalInt.of(2);
      case SIZE_1G -> OptionalInt.of(3);
      case SIZE_64M -> OptionalInt.empty();
    };
  }
}
