package io.iommulab.hardware.memory;

/**
 * How a completed DMA access relates to the owners of the host memory it touched: the verdict of
 * the isolation oracle ({@link HostMemory#check}). An access spanning several frames is judged by
 * the first frame (in address order) whose owner is not the expected one, or — for a VM's access
 * to its own RAM — that no one pins.
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
  UNBACKED,
  /**
   * A frame belongs to the expected VM but nobody pins it: the DMA went through a translation
   * that outlived the unpin of its frame (a stale IOTLB or device-TLB entry after a deferred
   * unmap released its pages too early), or through a mapping made without a pin. Only a pinned
   * frame is guaranteed not to be reused: an unpinned one may be reclaimed, migrated or given to
   * another VM at any moment, so such an access is an isolation failure waiting to happen, and
   * fails a run like {@link #ISOLATION_VIOLATION}. See {@link HostMemory#check} for why the verdict
   * is sound although pins and checks arrive as separate messages.
   */
  UNPINNED_FRAME;

  private static final DmaCheck[] VALUES = values();

  static DmaCheck ofOrdinal(int ordinal) {
    return VALUES[ordinal];
  }
}
