package io.iommulab.hardware.memory;

/**
 * Bytes held per owner id: an open-addressing int→long map with linear probing and no removal
 * (an owner that drops to zero keeps its slot; owners are VMs and the host, so the table is
 * bounded by the number of VMs a run creates). Primitive arrays, no boxing.
 */
final class OwnerLedger {
  private static final int EMPTY = Integer.MIN_VALUE;
  private int[] keys;
  private long[] values;
  private int used;

  OwnerLedger() {
    keys = new int[64];
    values = new long[64];
    java.util.Arrays.fill(keys, EMPTY);
  }

  long get(int owner) {
    int mask = keys.length - 1;
    for (int i = hash(owner) & mask; ; i = (i + 1) & mask) {
      int k = keys[i];
      if (k == owner) {
        return values[i];
      }
      if (k == EMPTY) {
        return 0;
      }
    }
  }

  /** Adds {@code delta}; a negative result is a bug. */
  void add(int owner, long delta) {
    int slot = slotFor(owner);
    long v = values[slot] + delta;
    if (v < 0) {
      throw new IllegalStateException("owner " + owner + " would hold " + v + " bytes");
    }
    values[slot] = v;
  }

  private int slotFor(int owner) {
    if ((used + 1) * 4 > keys.length * 3) {
      grow();
    }
    int mask = keys.length - 1;
    for (int i = hash(owner) & mask; ; i = (i + 1) & mask) {
      int k = keys[i];
      if (k == owner) {
        return i;
      }
      if (k == EMPTY) {
        keys[i] = owner;
        used++;
        return i;
      }
    }
  }

  private void grow() {
    int[] oldKeys = keys;
    long[] oldValues = values;
    keys = new int[oldKeys.length * 2];
    values = new long[oldValues.length * 2];
    java.util.Arrays.fill(keys, EMPTY);
    int mask = keys.length - 1;
    for (int j = 0; j < oldKeys.length; j++) {
      if (oldKeys[j] != EMPTY) {
        int i = hash(oldKeys[j]) & mask;
        while (keys[i] != EMPTY) {
          i = (i + 1) & mask;
        }
        keys[i] = oldKeys[j];
        values[i] = oldValues[j];
      }
    }
  }

  private static int hash(int k) {
    int h = k * 0x9E3779B9;
    return h ^ (h >>> 16);
  }

  int capacity() {
    return keys.length;
  }

  /** Key at slot {@code i}, or {@link Integer#MIN_VALUE} for an empty slot. */
  int keyAt(int i) {
    return keys[i];
  }

  long valueAt(int i) {
    return values[i];
  }

  long heapBytes() {
    return 16 + 16 + 4L * keys.length + 16 + 8L * values.length + 4;
  }
}
