package io.iommulab.actors.fd;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * The fd's requests in flight to its units, by correlation id: an open-addressing table of
 * primitive keys (linear probing, deletion by backward shift), so a map or unmap pays no boxing
 * and no node per request. Ids are positive and never reused. Confined to the owning actor.
 */
final class CorrelationTable<V> {
  private long[] keys = new long[16];
  private Object[] values = new Object[16];
  private int size;

  int size() {
    return size;
  }

  void put(long key, V value) {
    if (key <= 0 || value == null) {
      throw new IllegalArgumentException("correlation id " + key + " or value null");
    }
    if (2 * (size + 1) > keys.length) {
      grow();
    }
    int mask = keys.length - 1;
    int i = slot(key, mask);
    while (keys[i] != 0) {
      if (keys[i] == key) {
        throw new IllegalStateException("correlation id " + key + " already in flight");
      }
      i = (i + 1) & mask;
    }
    keys[i] = key;
    values[i] = value;
    size++;
  }

  /** The value of {@code key}, removed; null when absent. */
  @SuppressWarnings("unchecked")
  V remove(long key) {
    int mask = keys.length - 1;
    int i = slot(key, mask);
    while (keys[i] != 0) {
      if (keys[i] == key) {
        V v = (V) values[i];
        delete(i);
        return v;
      }
      i = (i + 1) & mask;
    }
    return null;
  }

  /** Removes and returns every value {@code which} accepts (in no particular order). */
  @SuppressWarnings("unchecked")
  List<V> removeIf(Predicate<V> which) {
    List<V> out = new ArrayList<>();
    for (int i = 0; i < keys.length; i++) {
      if (keys[i] != 0 && which.test((V) values[i])) {
        out.add((V) values[i]);
      }
    }
    for (V v : out) {
      for (int i = 0; i < keys.length; i++) {
        if (keys[i] != 0 && values[i] == v) {
          delete(i);
          break;
        }
      }
    }
    return out;
  }

  /** Empties slot {@code i}, moving back the entries of its probe run that would be unreachable. */
  private void delete(int i) {
    int mask = keys.length - 1;
    int hole = i;
    int j = i;
    while (true) {
      j = (j + 1) & mask;
      if (keys[j] == 0) {
        break;
      }
      int home = slot(keys[j], mask);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      boolean stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!stays) {
        keys[hole] = keys[j];
        values[hole] = values[j];
        hole = j;
      }
    }
    keys[hole] = 0;
    values[hole] = null;
    size--;
  }

  private void grow() {
    long[] oldKeys = keys;
    Object[] oldValues = values;
    keys = new long[oldKeys.length * 2];
    values = new Object[oldKeys.length * 2];
    int mask = keys.length - 1;
    for (int k = 0; k < oldKeys.length; k++) {
      if (oldKeys[k] != 0) {
        int i = slot(oldKeys[k], mask);
        while (keys[i] != 0) {
          i = (i + 1) & mask;
        }
        keys[i] = oldKeys[k];
        values[i] = oldValues[k];
      }
    }
  }

  private static int slot(long key, int mask) {
    return (int) ((key * 0x9E3779B97F4A7C15L) >>> 32) & mask;
  }
}
