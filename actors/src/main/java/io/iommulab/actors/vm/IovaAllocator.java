package io.iommulab.actors.vm;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.Map;
import java.util.TreeMap;

/**
 * The guest IOMMU driver's IOVA allocator for its DMA buffers: it picks the IOVA of each buffer it
 * maps (a fixed-IOVA map on the fd) and gets it back on unmap. Allocations are size-aligned like
 * {@code alloc_iova(..., size_aligned=true)} of {@code drivers/iommu/iova.c}: a buffer of n bytes
 * starts at a multiple of the smallest power of two ≥ n (capped at 1 GiB), so large buffers can be
 * mapped with large pages. First fit from the low end, so runs replay without a random source.
 *
 * <p>Ranges the IOMMU reserves (the MSI windows of {@code ReservedRegion}) are carved out with
 * {@link #reserve} and never handed out.
 *
 * <p>Vocabulary as iommufd: {@code end} is exclusive. The space is {@code [base, limit)} with
 * {@code limit <= 2^57} (57-bit address width at most), so no arithmetic here reaches 2^63.
 * Invariants: free, allocated and reserved ranges are disjoint, cover the space, free ranges are coalesced
 * (no two touch), every range is granule-aligned. Cost: O(free fragments) per allocation,
 * O(log n) per free. A refused call changes nothing.
 */
public final class IovaAllocator {
  /** Largest alignment a buffer is given: a 1 GiB page. */
  public static final long MAX_ALIGN = 1L << 30;

  private final long base;
  private final long limit;
  private final long granule;
  private final TreeMap<Long, Long> free = new TreeMap<>(); // start -> end
  private final TreeMap<Long, Long> allocated = new TreeMap<>(); // start -> length
  private final TreeMap<Long, Long> reserved = new TreeMap<>(); // start -> end, carved from free
  private long allocatedBytes;

  /**
   * @param base lowest IOVA handed out (granule-aligned, > 0: IOVA 0 is never used, as iommufd's
   *     own allocator never returns it)
   * @param limit end (exclusive) of the space, at most 2^57
   * @param granule smallest unit, a power of two (the IOMMU page, 4 KiB)
   */
  public IovaAllocator(long base, long limit, long granule) {
    if (granule <= 0 || Long.bitCount(granule) != 1) {
      throw new IllegalArgumentException("granule must be a power of two: " + granule);
    }
    if (base <= 0 || (base & (granule - 1)) != 0 || limit > (1L << 57) || limit <= base
        || (limit & (granule - 1)) != 0) {
      throw new IllegalArgumentException(
          String.format("bad IOVA space [0x%x, 0x%x) for granule 0x%x", base, limit, granule));
    }
    this.base = base;
    this.limit = limit;
    this.granule = granule;
    free.put(base, limit);
  }

  /**
   * A size-aligned range of {@code length} bytes. EINVAL when {@code length} is not a positive
   * multiple of the granule; ENOSPC when no free range fits.
   */
  public Outcome<Long> allocate(long length) {
    if (length <= 0 || (length & (granule - 1)) != 0 || length > limit - base) {
      return Outcome.err(
          Errno.EINVAL, "length 0x%x: not a positive multiple of 0x%x within the space", length, granule);
    }
    long align = Math.min(MAX_ALIGN, Math.max(granule, Long.highestOneBit(length - 1) << 1));
    for (Map.Entry<Long, Long> range : free.entrySet()) {
      long start = (range.getKey() + align - 1) & -align;
      long end = range.getValue();
      if (start < end && end - start >= length) {
        take(range.getKey(), end, start, start + length);
        allocated.put(start, length);
        allocatedBytes += length;
        return Outcome.ok(start);
      }
    }
    return Outcome.err(
        Errno.ENOSPC, "length 0x%x: no free IOVA range aligned to 0x%x", length, align);
  }

  /** Returns the range allocated at {@code iova}; ENOENT when no allocation starts there. */
  public Outcome<Long> free(long iova) {
    Long length = allocated.remove(iova);
    if (length == null) {
      return Outcome.err(Errno.ENOENT, "iova 0x%x: no buffer allocated there", iova);
    }
    allocatedBytes -= length;
    long start = iova;
    long end = iova + length;
    Map.Entry<Long, Long> before = free.floorEntry(start);
    if (before != null && before.getValue() == start) {
      start = before.getKey();
      free.remove(before.getKey());
    }
    Long afterEnd = free.get(end);
    if (afterEnd != null) {
      free.remove(end);
      end = afterEnd;
    }
    free.put(start, end);
    return Outcome.ok(length);
  }

  /**
   * Never hands out {@code [start, last]} (inclusive, unsigned): the parts of it that are free now
   * leave the free list for good. Parts already allocated stay with their buffer. Idempotent.
   */
  public void reserve(long start, long last) {
    if (Long.compareUnsigned(start, last) > 0) {
      throw new IllegalArgumentException("reserve: start above last");
    }
    if (Long.compareUnsigned(start, limit) >= 0 || Long.compareUnsigned(last, base) < 0) {
      return;
    }
    long from = Math.max(start & -granule, base);
    long to = Long.compareUnsigned(last, limit - 1) >= 0 ? limit : ((last | (granule - 1)) + 1);
    Map.Entry<Long, Long> e = free.lowerEntry(to);
    while (e != null && e.getValue() > from) {
      long fStart = e.getKey();
      long fEnd = e.getValue();
      long cutStart = Math.max(fStart, from);
      long cutEnd = Math.min(fEnd, to);
      take(fStart, fEnd, cutStart, cutEnd);
      reserved.put(cutStart, cutEnd);
      e = free.lowerEntry(cutStart);
    }
  }

  /** The length allocated at {@code iova}, or -1. */
  public long lengthAt(long iova) {
    Long length = allocated.get(iova);
    return length == null ? -1 : length;
  }

  public long allocatedBytes() {
    return allocatedBytes;
  }

  /** Free ranges: 1 for an empty allocator (they are coalesced). */
  public int freeRanges() {
    return free.size();
  }

  public int allocations() {
    return allocated.size();
  }

  private void take(long rangeStart, long rangeEnd, long start, long end) {
    free.remove(rangeStart);
    if (rangeStart < start) {
      free.put(rangeStart, start);
    }
    if (end < rangeEnd) {
      free.put(end, rangeEnd);
    }
  }

  /** Throws when an invariant of the class Javadoc is broken: a bug. */
  public void checkInvariants() {
    long covered = 0;
    long prevEnd = -1;
    for (Map.Entry<Long, Long> f : free.entrySet()) {
      if (f.getKey() >= f.getValue() || f.getKey() <= prevEnd) {
        throw new IllegalStateException("free ranges overlap, touch or are empty at 0x" + Long.toHexString(f.getKey()));
      }
      prevEnd = f.getValue();
      covered += f.getValue() - f.getKey();
    }
    for (Map.Entry<Long, Long> a : allocated.entrySet()) {
      Map.Entry<Long, Long> f = free.floorEntry(a.getKey() + a.getValue() - 1);
      if (f != null && f.getValue() > a.getKey()) {
        throw new IllegalStateException("allocation at 0x" + Long.toHexString(a.getKey()) + " is free");
      }
      covered += a.getValue();
    }
    for (Map.Entry<Long, Long> r : reserved.entrySet()) {
      covered += r.getValue() - r.getKey();
    }
    if (covered != limit - base) {
      throw new IllegalStateException("free + allocated do not cover the space");
    }
  }
}
