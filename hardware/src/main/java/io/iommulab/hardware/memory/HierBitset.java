package io.iommulab.hardware.memory;

/**
 * A fixed-size bitset with 64-ary summary levels: level 0 holds the bits, and bit {@code w} of
 * level {@code l + 1} is set exactly when word {@code w} of level {@code l} is non-zero. The top
 * level is a single word. {@link #set}, {@link #clear}, {@link #get} and {@link #first} cost
 * O(levels) = O(log64 n): five levels cover 2^30 bits. The buddy allocator keeps one per order as
 * its free list, so "lowest free block of order k" is O(1) for all practical sizes.
 *
 * <p>Invariant: a summary bit is set if and only if the word it summarises is non-zero.
 */
final class HierBitset {
  private final int size;
  private final long[][] levels;

  HierBitset(int size) {
    if (size < 0) {
      throw new IllegalArgumentException("size < 0: " + size);
    }
    this.size = size;
    int words = Math.max(1, (size + 63) >>> 6);
    int count = 1;
    for (int m = words; m > 1; m = (m + 63) >>> 6) {
      count++;
    }
    levels = new long[count][];
    int m = words;
    for (int i = 0; i < count; i++) {
      levels[i] = new long[m];
      m = (m + 63) >>> 6;
    }
  }

  int size() {
    return size;
  }

  boolean get(int i) {
    return (levels[0][i >>> 6] & (1L << i)) != 0;
  }

  void set(int i) {
    int idx = i;
    for (long[] words : levels) {
      int w = idx >>> 6;
      long before = words[w];
      words[w] = before | (1L << idx);
      if (before != 0) {
        return;
      }
      idx = w;
    }
  }

  void clear(int i) {
    int idx = i;
    for (long[] words : levels) {
      int w = idx >>> 6;
      long after = words[w] & ~(1L << idx);
      words[w] = after;
      if (after != 0) {
        return;
      }
      idx = w;
    }
  }

  /** The lowest set bit, or -1. */
  int first() {
    int top = levels.length - 1;
    if (levels[top][0] == 0) {
      return -1;
    }
    int idx = 0;
    for (int l = top; l >= 0; l--) {
      idx = (idx << 6) + Long.numberOfTrailingZeros(levels[l][idx]);
    }
    return idx;
  }

  /** The lowest set bit at or after {@code from}, or -1 (linear in words; not for hot paths). */
  int next(int from) {
    if (from >= size) {
      return -1;
    }
    long[] leaf = levels[0];
    int w = from >>> 6;
    long word = leaf[w] & (-1L << from);
    while (true) {
      if (word != 0) {
        return (w << 6) + Long.numberOfTrailingZeros(word);
      }
      if (++w == leaf.length) {
        return -1;
      }
      word = leaf[w];
    }
  }

  int cardinality() {
    int n = 0;
    for (long w : levels[0]) {
      n += Long.bitCount(w);
    }
    return n;
  }

  /** Leaf word {@code i}, for digests. */
  long leafWord(int i) {
    return levels[0][i];
  }

  int leafWords() {
    return levels[0].length;
  }

  /** Checks the summary invariant; throws IllegalStateException when broken. */
  void checkSummaries() {
    for (int l = 0; l + 1 < levels.length; l++) {
      long[] lower = levels[l];
      long[] upper = levels[l + 1];
      for (int w = 0; w < lower.length; w++) {
        boolean summary = (upper[w >>> 6] & (1L << w)) != 0;
        if (summary != (lower[w] != 0)) {
          throw new IllegalStateException(
              "summary bit " + w + " of level " + (l + 1) + " is wrong");
        }
      }
    }
  }

  /** Heap bytes of this structure on a 64-bit JVM with compressed oops (approximate). */
  long heapBytes() {
    long bytes = 16 + 16 + 4L * levels.length;
    for (long[] words : levels) {
      bytes += 16 + 8L * words.length;
    }
    return bytes;
  }
}
