package io.iommulab.hardware.memory;

/**
 * How a completed DMA access relates to the owners of the host memory it touched: the verdict of
 * the isolation oracle ({@link HostMemory#check}). An access spanning several frames is judged by
 * the first frame (in address order) whose owner is not the expected one.
 */
public enum DmaCheck {
  /** Every byte lies in frames (or MMIO) owned by the expected owner. */
  OK,
  /** A frame belongs to another VM: the isolation breach the emulator exists to catch. */
  ISOLATION_VIOLATION,
  /** A frame belongs to the host kernel (an IO page table, an MSI page, CCSR). */
  HOST_FRAME,
  /** A frame is free: a use-after-free through a stale translation or a missed invalidation. */
  FREED_FRAME,
  /** Neither RAM nor registered MMIO backs the address: the transaction would master-abort. */
  UNBACKED;

  private static final DmaCheck[] VALUES = values();

  static DmaCheck ofOrdinal(int ordinal) {
    return VALUES[ordinal];
  }
}
