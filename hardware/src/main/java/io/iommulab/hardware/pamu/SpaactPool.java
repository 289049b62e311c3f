package io.iommulab.hardware.pamu;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The secondary PAACT as an allocator: one pool of SPAACE indices shared by every LIODN, so the
 * LIODNs of all domains (and VMs) contend for it. A multi-window LIODN takes {@code count - 1}
 * CONTIGUOUS entries; the driver uses a {@code gen_pool} with one-entry granularity and its
 * default first-fit algorithm ({@code pamu_get_fspi_and_allocate} in
 * {@code drivers/iommu/fsl_pamu.c}), so fragmentation can refuse a request that the total free
 * count would satisfy.
 *
 * <p>Invariants: ranges are disjoint, non-empty and inside {@code [0, entries)}; {@code used} is
 * the sum of their lengths. Allocation and free are O(number of ranges).
 */
public final class SpaactPool {
  private final int entries;
  /** first index → length, ascending. */
  private TreeMap<Integer, Integer> ranges = new TreeMap<>();
  private int used;

  public SpaactPool(int entries) {
    if (entries < 0) {
      throw new IllegalArgumentException("entries " + entries);
    }
    this.entries = entries;
  }

  public int entries() {
    return entries;
  }

  public int used() {
    return used;
  }

  public int free() {
    return entries - used;
  }

  /**
   * First fit: the lowest index starting {@code count} free contiguous entries.
   *
   * @return the first index, or -1 when no gap is long enough
   */
  int allocate(int count) {
    if (count <= 0) {
      throw new IllegalArgumentException("count " + count);
    }
    int first = -1;
    int gapStart = 0;
    for (Map.Entry<Integer, Integer> r : ranges.entrySet()) {
      if (r.getKey() - gapStart >= count) {
        first = gapStart;
        break;
      }
      gapStart = r.getKey() + r.getValue();
    }
    if (first < 0) {
      if (entries - gapStart < count) {
        return -1;
      }
      first = gapStart;
    }
    ranges.put(first, count);
    used += count;
    return first;
  }

  /** Frees a range exactly as allocated; anything else is a bug. */
  void free(int first, int count) {
    Integer len = ranges.get(first);
    if (len == null || len != count) {
      throw new IllegalStateException(
          "SPAACT free of [" + first + ", +" + count + ") which is not an allocated range");
    }
    ranges.remove(first);
    used -= count;
  }

  public boolean isAllocated(int index) {
    Map.Entry<Integer, Integer> r = ranges.floorEntry(index);
    return r != null && index < r.getKey() + r.getValue();
  }

  /** Length of the longest run of free entries: the largest count−1 that can still succeed. */
  public int largestFreeRun() {
    int best = 0;
    int gapStart = 0;
    for (Map.Entry<Integer, Integer> r : ranges.entrySet()) {
      best = Math.max(best, r.getKey() - gapStart);
      gapStart = r.getKey() + r.getValue();
    }
    return Math.max(best, entries - gapStart);
  }

  /** The allocated ranges, ascending. */
  public List<Range> ranges() {
    List<Range> out = new ArrayList<>(ranges.size());
    for (Map.Entry<Integer, Integer> r : ranges.entrySet()) {
      out.add(new Range(r.getKey(), r.getValue()));
    }
    return out;
  }

  /** Saves the allocation state for an all-or-nothing caller. */
  Saved save() {
    return new Saved(new TreeMap<>(ranges), used);
  }

  void restore(Saved s) {
    ranges = new TreeMap<>(s.ranges);
    used = s.used;
  }

  record Saved(TreeMap<Integer, Integer> ranges, int used) {}

  void checkInvariants() {
    int sum = 0;
    int end = 0;
    for (Map.Entry<Integer, Integer> r : ranges.entrySet()) {
      if (r.getValue() <= 0 || r.getKey() < end || r.getKey() + r.getValue() > entries) {
        throw new IllegalStateException("SPAACT range [" + r.getKey() + ", +" + r.getValue() + ")");
      }
      end = r.getKey() + r.getValue();
      sum += r.getValue();
    }
    if (sum != used) {
      throw new IllegalStateException("SPAACT used " + used + " but ranges hold " + sum);
    }
  }

  /** An allocated run of SPAACEs: {@code [first, first + count)}. */
  public record Range(int first, int count) {
    public int last() {
      return first + count - 1;
    }
  }
}
