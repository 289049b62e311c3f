package io.iommulab.host.scenario.engine;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The guest driver's IOVA allocator for the buffers a workload maps in one IOAS (the VM is given
 * fixed IOVAs, {@code IOMMU_IOAS_MAP} with FIXED_IOVA). It hands out naturally aligned ranges from
 * 4 GiB up to 2^39, above the MSI windows every VT-d and SMMUv3 unit reserves, and keeps each
 * freed range in quarantine until {@value #QUARANTINE} more ranges of its size were freed: a range
 * just unmapped is not mapped again at once, so a DMA the workload aims at it afterwards must
 * fault (strict unmaps), which is what lets the stale-translation oracle judge something. Plain
 * data, owned by one actor.
 */
final class IovaSpace {
  static final long BASE = 1L << 32;
  static final long LIMIT = 1L << 39;
  static final int QUARANTINE = 32;
  /** Recently unmapped ranges kept for stray DMA. */
  static final int RECENT = 16;

  private long bump = BASE;
  private final Map<Long, ArrayDeque<Long>> freed = new HashMap<>();
  private final long[] recentIova = new long[RECENT];
  private final long[] recentLength = new long[RECENT];
  private int recentCount;
  private int recentNext;

  /** A free range of {@code size} bytes (a multiple of 4 KiB), or -1 when the space is full. */
  long allocate(long size) {
    ArrayDeque<Long> q = freed.get(size);
    if (q != null && q.size() > QUARANTINE) {
      return q.poll();
    }
    long align = Math.min(Long.highestOneBit(size), 1L << 30);
    long iova = (bump + align - 1) & -align;
    if (iova > LIMIT - size) {
      return -1;
    }
    bump = iova + size;
    return iova;
  }

  /** Returns {@code [iova, +size)}: reused only after {@value #QUARANTINE} later frees of its size. */
  void free(long iova, long size) {
    freed.computeIfAbsent(size, s -> new ArrayDeque<>()).add(iova);
  }

  /** Notes that {@code [iova, +size)} was unmapped and the unmap returned: a stray DMA target. */
  void unmapped(long iova, long size) {
    recentIova[recentNext] = iova;
    recentLength[recentNext] = size;
    recentNext = (recentNext + 1) % RECENT;
    recentCount = Math.min(RECENT, recentCount + 1);
  }

  int recentCount() {
    return recentCount;
  }

  long recentIova(int i) {
    return recentIova[i];
  }

  long recentLength(int i) {
    return recentLength[i];
  }
}
