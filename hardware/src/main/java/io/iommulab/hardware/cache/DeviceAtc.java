package io.iommulab.hardware.cache;

import io.iommulab.config.IotlbSettings;
import io.iommulab.config.IotlbSettings.Eviction;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.iommu.Translation;

/**
 * A PCI function's ATS translation cache (the "device TLB"): translations the device obtained
 * through ATS translation requests, tagged by PASID ({@link FaultRecord#NO_PASID} for requests
 * without one), bounded and set-associative with a seeded replacement policy (the same engine
 * as {@link Iotlb}; no allocation on a lookup).
 *
 * <p>Invalidation follows the PCIe ATS Invalidate Request as the kernels issue it:
 *
 * <ul>
 *   <li>It works in 4 KiB grains, and its range is a naturally aligned power-of-two span: a
 *       request for {@code 2^sizeOrder} pages from {@code address} is widened to the smallest
 *       aligned power-of-two span covering it ({@code arm_smmu_atc_inv_to_cmd} in
 *       {@code drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c}: "ATC invalidates are always on
 *       4096-bytes pages", span {@code 1 << fls(start ^ end)}; VT-d encodes the same span in the
 *       address's low bits, {@code qi_desc_dev_iotlb} in {@code drivers/iommu/intel/iommu.h},
 *       VT-d spec 6.5.2.5/6.5.2.6).
 *   <li>An invalidation without PASID also wipes PASID-tagged entries in the range: "If
 *       substream_valid is clear, the PCIe TLP is sent without a PASID prefix. In that case all
 *       ATC entries within the address range are invalidated, including those that were
 *       requested with a PASID" ({@code arm-smmu-v3.c}). One with a PASID drops only that
 *       PASID's entries.
 *   <li>{@code sizeOrder >= }{@link #WHOLE_SPACE_ORDER} invalidates the whole address space
 *       ({@code MAX_AGAW_PFN_WIDTH}, as {@code cache_tag_flush_devtlb_all} in
 *       {@code drivers/iommu/intel/cache.c}; SMMUv3 {@code ATC_INV_SIZE_ALL}).
 * </ul>
 *
 * <p>Invariants: {@code size() <= capacity()}; at most one entry per (PASID, page size, page);
 * no hit from an entry overlapping a completed invalidation's widened span of a matching PASID.
 * Single-threaded: the owning device's actor is the lock.
 */
public final class DeviceAtc extends TranslationCache {
  /** A size order covering the whole 64-bit space: 2^52 pages of 4 KiB. */
  public static final int WHOLE_SPACE_ORDER = 52;

  /** Ways per set the capacity-only constructor aims for. */
  private static final int DEFAULT_WAYS = 8;

  /**
   * An LRU cache of {@code capacity} entries: fully associative up to {@value #DEFAULT_WAYS}
   * entries, otherwise the most sets (a power of two) that keep at least {@value #DEFAULT_WAYS}
   * ways and divide the capacity exactly (64 entries: 8 sets × 8 ways).
   */
  public DeviceAtc(int capacity, long seed) {
    this(geometryFor(capacity), seed);
  }

  /** A cache of the given geometry and policy. */
  public DeviceAtc(IotlbSettings geometry, long seed) {
    super(new SetAssociativeCache(geometry.sets(), geometry.ways(), geometry.eviction(), seed));
  }

  /** The geometry the capacity-only constructor uses. */
  public static IotlbSettings geometryFor(int capacity) {
    if (capacity <= 0) {
      throw new IllegalArgumentException("ATC capacity must be positive, got " + capacity);
    }
    int sets = 1;
    while (capacity % (sets * 2) == 0 && capacity / (sets * 2) >= DEFAULT_WAYS) {
      sets *= 2;
    }
    return new IotlbSettings(sets, capacity / sets, Eviction.LRU);
  }

  private static long tagOf(int pasid) {
    return pasid & 0xFFFF_FFFFL;
  }

  private static void checkPasid(int pasid) {
    if (pasid < FaultRecord.NO_PASID) {
      throw new IllegalArgumentException("bad PASID " + pasid);
    }
  }

  /**
   * On a hit fills {@code out.hpa} (offset included), prot, pageSize and source
   * {@link Translation.Source#ATC}; on a miss returns false and leaves {@code out} untouched.
   */
  public boolean lookup(int pasid, long iova, Translation out) {
    return fill(tagOf(pasid), iova, out, Translation.Source.ATC);
  }

  /** Caches a translation completion: the page of {@code size} containing {@code iova}. */
  public void insert(int pasid, long iova, long hpa, PageSize size, int prot) {
    checkPasid(pasid);
    if (size == null) {
      throw new IllegalArgumentException("page size is null");
    }
    cache.insert(tagOf(pasid), iova, hpa, size, prot);
  }

  /**
   * ATC_INV: 2^sizeOrder 4 KiB pages from {@code address}, widened to an aligned power-of-two
   * span; {@code pasid == FaultRecord.NO_PASID} also wipes PASID-tagged entries in the range.
   *
   * @return entries dropped
   */
  public int invalidate(int pasid, long address, int sizeOrder) {
    checkPasid(pasid);
    long start;
    long last;
    if (sizeOrder < 0) {
      throw new IllegalArgumentException("negative size order " + sizeOrder);
    } else if (sizeOrder >= WHOLE_SPACE_ORDER) {
      start = 0;
      last = -1L;
    } else {
      long firstPage = address >>> 12;
      long maxPage = (1L << WHOLE_SPACE_ORDER) - 1;
      // Pages past 2^64 do not exist: clamp rather than wrap around to page 0.
      long lastPage = Math.min(maxPage, firstPage + (1L << sizeOrder) - 1);
      long spanMask = spanMask(firstPage, lastPage);
      start = (firstPage & ~spanMask) << 12;
      last = ((lastPage | spanMask) << 12) | 0xFFF;
    }
    long tagMask = pasid == FaultRecord.NO_PASID ? 0 : -1L;
    return cache.invalidate(tagOf(pasid), tagMask, start, last);
  }

  /** Mask of the smallest aligned power-of-two span of pages holding both pages. */
  static long spanMask(long firstPage, long lastPage) {
    long diff = firstPage ^ lastPage;
    return diff == 0 ? 0 : -1L >>> Long.numberOfLeadingZeros(diff);
  }

  /** Drops every entry (ATC_INV with ATC_INV_SIZE_ALL, or ATS being disabled). */
  public int invalidateAll() {
    return cache.invalidate(0, 0, 0, -1L);
  }

  public int sets() {
    return cache.sets();
  }

  public int ways() {
    return cache.ways();
  }
}
