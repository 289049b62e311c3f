package io.iommulab.hardware.cache;

import io.iommulab.hardware.iommu.Translation;

/**
 * What {@link Iotlb} and {@link DeviceAtc} share as fronts of one {@link SetAssociativeCache}:
 * the hit path and the counters. Each subclass owns its cache and its tag layout (domain id and
 * PASID for the IOTLB, PASID alone for the ATC) and its invalidation semantics; this class only
 * reads the engine. Single-threaded: the owning actor is the lock.
 */
abstract sealed class TranslationCache permits Iotlb, DeviceAtc {
  final SetAssociativeCache cache;

  TranslationCache(SetAssociativeCache cache) {
    this.cache = cache;
  }

  /**
   * The hit path of both caches, kept allocation-free (the translate benchmarks measure it): on a
   * hit fills {@code out.hpa} (for {@code iova} itself, offset included), prot, pageSize and
   * {@code source} and returns true; on a miss returns false and leaves {@code out} untouched.
   */
  final boolean fill(long tag, long iova, Translation out, Translation.Source source) {
    int slot = cache.probe(tag, iova);
    if (slot < 0) {
      return false;
    }
    out.hpa = cache.hpaOf(slot, iova);
    out.prot = cache.protOf(slot);
    out.pageSize = cache.sizeOf(slot);
    out.source = source;
    return true;
  }

  public int size() {
    return cache.size();
  }

  public int capacity() {
    return cache.capacity();
  }

  public long hits() {
    return cache.hits();
  }

  public long misses() {
    return cache.misses();
  }

  public long insertions() {
    return cache.insertions();
  }

  /** Entries displaced by a fill into a full set. */
  public long evictions() {
    return cache.evictions();
  }

  /** Entries dropped by invalidations. */
  public long invalidated() {
    return cache.invalidated();
  }

  /** Verifies the structural invariants (tests, debug); throws IllegalStateException if broken. */
  public void checkInvariants() {
    cache.checkInvariants();
  }
}
