package io.iommulab.hardware.cache;

import io.iommulab.config.IotlbSettings.Eviction;
import io.iommulab.hardware.PageSize;
import java.util.SplittableRandom;

/**
 * The translation-cache engine shared by {@link Iotlb} and {@link DeviceAtc}: a bounded,
 * set-associative cache of page translations keyed by an opaque 64-bit tag (the owner packs its
 * domain id / PASID into it), a page size and the page's base address.
 *
 * <p>Layout: slot {@code s = set * ways + way} of parallel primitive arrays. {@code pageKey[s]}
 * is the page's base address (aligned to its size, hence at least 4 KiB) OR'ed with
 * {@code ordinal + 1} of its {@link PageSize} in the low bits; 0 marks an empty slot. A page lives
 * in the set selected by a hash of (page number, tag, size), so a lookup probes one set per page
 * size, and only for sizes that currently hold entries.
 *
 * <p>Invariants:
 *
 * <ul>
 *   <li>{@code size() <= capacity()}; {@code size()} equals the number of non-empty slots and
 *       {@code sizeCount[o]} the number of non-empty slots of size ordinal {@code o}.
 *   <li>At most one slot per (tag, size, page base): an insert of an existing key replaces it.
 *   <li>An invalidation drops every slot whose tag matches and whose page range
 *       {@code [base, base + size - 1]} overlaps the invalidated inclusive range (unsigned 64-bit
 *       compare), so no later lookup can hit a translation it covered.
 *   <li>Replacement is deterministic for a given seed: LRU stamps on insert and on every hit,
 *       FIFO stamps on insert only, RANDOM draws the victim from a {@link SplittableRandom}
 *       seeded by the owner. Empty ways are always filled before any victim is chosen.
 * </ul>
 *
 * <p>Hot path ({@link #lookup}): no allocation, no boxing, no exceptions. Invalidations scan
 * the entries held (an occupancy list), not the whole array. Single-threaded: the owning actor is
 * the lock.
 */
final class SetAssociativeCache {
  /** Page sizes, ascending: a lookup probes the smallest first (enum order is ascending). */
  private static final PageSize[] SIZES = PageSize.values();

  private static final long ORDINAL_BITS = 0x7L;

  private final int sets;
  private final int ways;
  private final int setMask;
  private final Eviction eviction;
  private final SplittableRandom random;

  private final long[] tag;
  private final long[] pageKey;
  private final long[] hpaBase;
  private final int[] prot;
  private final long[] stamp;
  private final int[] sizeCount = new int[SIZES.length];
  /** The non-empty slots, in {@code occupied[0 .. size)}; {@code position[slot]} is the index. */
  private final int[] occupied;
  private final int[] position;

  private long tick;
  private int size;

  private long hits;
  private long misses;
  private long insertions;
  private long evictions;
  private long invalidated;

  SetAssociativeCache(int sets, int ways, Eviction eviction, long seed) {
    if (sets <= 0 || Integer.bitCount(sets) != 1) {
      throw new IllegalArgumentException("sets must be a power of two, got " + sets);
    }
    if (ways <= 0) {
      throw new IllegalArgumentException("ways must be positive, got " + ways);
    }
    if ((long) sets * ways > (1 << 24)) {
      throw new IllegalArgumentException("capacity " + (long) sets * ways + " beyond 2^24");
    }
    if (eviction == null) {
      throw new IllegalArgumentException("eviction policy is null");
    }
    this.sets = sets;
    this.ways = ways;
    this.setMask = sets - 1;
    this.eviction = eviction;
    this.random = new SplittableRandom(seed);
    int capacity = sets * ways;
    this.tag = new long[capacity];
    this.pageKey = new long[capacity];
    this.hpaBase = new long[capacity];
    this.prot = new int[capacity];
    this.stamp = new long[capacity];
    this.occupied = new int[capacity];
    this.position = new int[capacity];
  }

  /**
   * The set of a page: a full mix of page number, tag and size. Striping by the low page-number
   * bits alone (plus a per-tag offset) collapses onto a few sets whenever tags correlate with
   * page numbers (e.g. PASID = page mod 4 used half the sets); a mixed index has no such
   * systematic pathology, at the price of random conflict misses before the cache is full.
   */
  private int setOf(long tagValue, long pageNumber, int ordinal) {
    long h = pageNumber * 0x9E3779B97F4A7C15L + tagValue * 0xC2B2AE3D27D4EB4FL + ordinal;
    h ^= h >>> 32;
    h *= 0xD6E8FEB86659FD93L;
    h ^= h >>> 32;
    return (int) h & setMask;
  }

  /**
   * Probes every page size holding entries, smallest first. Returns the slot that hit (read it
   * with {@link #hpaOf}, {@link #protOf}, {@link #sizeOf} before the next mutation), or -1.
   */
  int probe(long tagValue, long iova) {
    for (int o = 0; o < SIZES.length; o++) {
      if (sizeCount[o] == 0) {
        continue;
      }
      int shift = SIZES[o].shift();
      long base = iova & (-1L << shift);
      long key = base | (o + 1);
      int first = setOf(tagValue, iova >>> shift, o) * ways;
      int end = first + ways;
      for (int s = first; s < end; s++) {
        if (pageKey[s] == key && tag[s] == tagValue) {
          hits++;
          if (eviction == Eviction.LRU) {
            stamp[s] = ++tick;
          }
          return s;
        }
      }
    }
    misses++;
    return -1;
  }

  long hpaOf(int slot, long iova) {
    int o = (int) (pageKey[slot] & ORDINAL_BITS) - 1;
    return hpaBase[slot] | (iova & SIZES[o].mask());
  }

  int protOf(int slot) {
    return prot[slot];
  }

  PageSize sizeOf(int slot) {
    return SIZES[(int) (pageKey[slot] & ORDINAL_BITS) - 1];
  }

  /**
   * Caches the page of {@code pageSize} containing {@code iova}, translating to the page of the
   * same size containing {@code hpa}. Replaces an existing entry of the same key; otherwise fills
   * an empty way or evicts a victim of the set.
   */
  void insert(long tagValue, long iova, long hpa, PageSize pageSize, int protBits) {
    int o = pageSize.ordinal();
    int shift = pageSize.shift();
    long base = iova & (-1L << shift);
    long key = base | (o + 1);
    int first = setOf(tagValue, iova >>> shift, o) * ways;
    int end = first + ways;
    int slot = -1;
    int empty = -1;
    for (int s = first; s < end; s++) {
      long k = pageKey[s];
      if (k == key && tag[s] == tagValue) {
        slot = s;
        break;
      }
      if (k == 0 && empty < 0) {
        empty = s;
      }
    }
    if (slot < 0) {
      if (empty >= 0) {
        slot = empty;
      } else {
        slot = victim(first);
        drop(slot);
        evictions++;
      }
      tag[slot] = tagValue;
      pageKey[slot] = key;
      sizeCount[o]++;
      occupied[size] = slot;
      position[slot] = size;
      size++;
    }
    hpaBase[slot] = hpa & (-1L << shift);
    prot[slot] = protBits;
    // A re-insert is a fresh fill for both LRU and FIFO: the entry now holds new content.
    stamp[slot] = ++tick;
    insertions++;
  }

  private int victim(int first) {
    if (eviction == Eviction.RANDOM) {
      return first + random.nextInt(ways);
    }
    int best = first;
    for (int s = first + 1; s < first + ways; s++) {
      if (stamp[s] < stamp[best]) {
        best = s;
      }
    }
    return best;
  }

  private void drop(int slot) {
    sizeCount[(int) (pageKey[slot] & ORDINAL_BITS) - 1]--;
    pageKey[slot] = 0;
    int at = position[slot];
    int moved = occupied[--size];
    occupied[at] = moved;
    position[moved] = at;
  }

  /**
   * Drops every entry with {@code (tag & tagMask) == (tagValue & tagMask)} whose page overlaps
   * {@code [start, last]} (inclusive, unsigned).
   *
   * @return entries dropped
   */
  int invalidate(long tagValue, long tagMask, long start, long last) {
    long want = tagValue & tagMask;
    boolean everything = start == 0 && last == -1L;
    int dropped = 0;
    // Only the non-empty slots: an unmap's invalidation costs the entries held, not the capacity.
    // Backwards, since a drop moves the last listed slot into the dropped one's place.
    for (int i = size - 1; i >= 0; i--) {
      int s = occupied[i];
      long k = pageKey[s];
      if ((tag[s] & tagMask) != want) {
        continue;
      }
      if (!everything) {
        long pageMask = SIZES[(int) (k & ORDINAL_BITS) - 1].mask();
        long eStart = k & ~pageMask;
        long eLast = eStart | pageMask;
        if (Long.compareUnsigned(eStart, last) > 0 || Long.compareUnsigned(start, eLast) > 0) {
          continue;
        }
      }
      drop(s);
      dropped++;
    }
    invalidated += dropped;
    return dropped;
  }

  int size() {
    return size;
  }

  int capacity() {
    return pageKey.length;
  }

  int sets() {
    return sets;
  }

  int ways() {
    return ways;
  }

  Eviction eviction() {
    return eviction;
  }

  long hits() {
    return hits;
  }

  long misses() {
    return misses;
  }

  long insertions() {
    return insertions;
  }

  long evictions() {
    return evictions;
  }

  long invalidated() {
    return invalidated;
  }

  /** Checks the structural invariants; a failure is a bug in this class. */
  void checkInvariants() {
    int n = 0;
    int[] perSize = new int[SIZES.length];
    for (int set = 0; set < sets; set++) {
      for (int a = set * ways; a < (set + 1) * ways; a++) {
        if (pageKey[a] == 0) {
          continue;
        }
        n++;
        int o = (int) (pageKey[a] & ORDINAL_BITS) - 1;
        if (o < 0 || o >= SIZES.length) {
          throw new IllegalStateException("slot " + a + ": bad size code");
        }
        perSize[o]++;
        long base = pageKey[a] & ~ORDINAL_BITS;
        if ((base & SIZES[o].mask()) != 0) {
          throw new IllegalStateException("slot " + a + ": base not aligned to its size");
        }
        if (setOf(tag[a], base >>> SIZES[o].shift(), o) != set) {
          throw new IllegalStateException("slot " + a + ": entry in the wrong set");
        }
        for (int b = a + 1; b < (set + 1) * ways; b++) {
          if (pageKey[b] == pageKey[a] && tag[b] == tag[a]) {
            throw new IllegalStateException("slots " + a + " and " + b + ": duplicate key");
          }
        }
      }
    }
    if (n != size || n > capacity()) {
      throw new IllegalStateException("size " + size + " but " + n + " entries");
    }
    for (int i = 0; i < size; i++) {
      int slot = occupied[i];
      if (pageKey[slot] == 0 || position[slot] != i) {
        throw new IllegalStateException("occupancy list entry " + i + " (slot " + slot + ") is wrong");
      }
    }
    for (int o = 0; o < SIZES.length; o++) {
      if (perSize[o] != sizeCount[o]) {
        throw new IllegalStateException("size count of " + SIZES[o] + " is wrong");
      }
    }
  }
}
