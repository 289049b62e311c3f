package io.iommulab.hardware.cache;

import io.iommulab.config.IotlbSettings;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.iommu.Translation;

/**
 * One IOMMU unit's IOTLB: a bounded, set-associative cache of leaf translations tagged by domain
 * id and PASID ({@link FaultRecord#NO_PASID} for requests without one), holding pages of 4 KiB,
 * 2 MiB or 1 GiB (and 64 MiB, should a unit map such pages).
 *
 * <p>Tags follow the hardware: VT-d tags IOTLB entries with the DID and, in scalable mode, the
 * PASID, and invalidates them globally, domain-selectively (DSI), PASID-selectively or
 * page-selectively (PSI: {@code 2^am} 4 KiB pages from an address aligned to that span; VT-d spec
 * 6.5.2.3/6.5.2.4, {@code drivers/iommu/intel/cache.c} {@code cache_tag_flush_iotlb}). SMMUv3's
 * VMID/ASID tags and {@code TLBI_S12_VMALL}/{@code TLBI_NH_ASID}/{@code TLBI_NH_VA} map onto the
 * same operations ({@code drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c}).
 *
 * <p>Geometry: {@code sets × ways} from {@link IotlbSettings}; {@code sets} is a power of two.
 * A page is placed in the set chosen by a hash of (page number, domain, PASID, size);
 * within a set the victim is chosen by the policy: LRU (least recently hit or filled), FIFO
 * (oldest fill) or RANDOM ({@link java.util.SplittableRandom} from the seed passed in; never
 * unseeded). A lookup probes 4 KiB, then 2 MiB, then 64 MiB, then 1 GiB, skipping sizes with no
 * entry, so with overlapping entries of different sizes the smallest wins.
 *
 * <p>Invariants:
 *
 * <ul>
 *   <li>{@code size() <= capacity()}.
 *   <li>At most one entry per (domain, PASID, page size, page): re-inserting replaces it.
 *   <li>No hit from an entry covered by a completed invalidation: an invalidation drops every
 *       entry of the selected tags whose page overlaps the invalidated span, including a large
 *       page that only partly overlaps it (a 2 MiB entry and a 4 KiB PSI inside it). Hardware
 *       may cache less than this model, never more.
 *   <li>Deterministic: the same seed and the same call sequence give the same contents.
 * </ul>
 *
 * <p>The PSI "leaf" / invalidation-hint bit concerns paging-structure caches, which this model
 * does not have (every miss walks the table), so it has no effect here. A hit costs no
 * allocation, boxing or exception. Single-threaded: the owning unit's actor is the lock.
 */
public final class Iotlb extends TranslationCache {
  /** Selector for invalidations: every PASID of the domain, including "no PASID". */
  public static final int ANY_PASID = -2;

  /** Largest meaningful page-selective mask: 2^52 4 KiB pages cover the 64-bit space. */
  public static final int WHOLE_SPACE_MASK = 52;

  private static final long DOMAIN_TAG_MASK = 0xFFFF_FFFF_0000_0000L;

  private final IotlbSettings settings;

  public Iotlb(IotlbSettings settings, long seed) {
    super(new SetAssociativeCache(settings.sets(), settings.ways(), settings.eviction(), seed));
    this.settings = settings;
  }

  private static long tagOf(int domainId, int pasid) {
    return ((long) domainId << 32) | (pasid & 0xFFFF_FFFFL);
  }

  private static void checkDomain(int domainId) {
    if (domainId < 0) {
      throw new IllegalArgumentException("negative domain id " + domainId);
    }
  }

  private static void checkPasid(int pasid, boolean anyAllowed) {
    if (pasid < FaultRecord.NO_PASID && !(anyAllowed && pasid == ANY_PASID)) {
      throw new IllegalArgumentException("bad PASID selector " + pasid);
    }
  }

  /**
   * On a hit fills {@code out.hpa} (for {@code iova} itself, offset included), prot, pageSize and
   * source {@link Translation.Source#IOTLB} and returns true; on a miss returns false and leaves
   * {@code out} untouched. Latency is the caller's to add (it owns the cost model).
   */
  public boolean lookup(int domainId, int pasid, long iova, Translation out) {
    return fill(tagOf(domainId, pasid), iova, out, Translation.Source.IOTLB);
  }

  /** Caches the page of {@code size} containing {@code iova} which maps to {@code hpa}'s page. */
  public void insert(int domainId, int pasid, long iova, long hpa, PageSize size, int prot) {
    checkDomain(domainId);
    checkPasid(pasid, false);
    if (size == null) {
      throw new IllegalArgumentException("page size is null");
    }
    cache.insert(tagOf(domainId, pasid), iova, hpa, size, prot);
  }

  /** Global invalidation (VT-d global IOTLB invalidation, SMMUv3 TLBI_NSNH_ALL). */
  public int invalidateAll() {
    return cache.invalidate(0, 0, 0, -1L);
  }

  /** Domain-selective: every entry of the domain, whatever its PASID. */
  public int invalidateDomain(int domainId) {
    checkDomain(domainId);
    return cache.invalidate(tagOf(domainId, 0), DOMAIN_TAG_MASK, 0, -1L);
  }

  /**
   * PASID-selective: every entry of (domain, pasid); {@link FaultRecord#NO_PASID} selects the
   * entries of requests without PASID, {@link #ANY_PASID} is domain-selective.
   */
  public int invalidatePasid(int domainId, int pasid) {
    checkDomain(domainId);
    checkPasid(pasid, true);
    if (pasid == ANY_PASID) {
      return invalidateDomain(domainId);
    }
    return cache.invalidate(tagOf(domainId, pasid), -1L, 0, -1L);
  }

  /**
   * Page-selective: 2^addressMask 4 KiB pages from {@code address} (aligned to that span); any
   * entry overlapping the span is dropped. {@code pasid} may be {@link #ANY_PASID}. A mask of
   * {@link #WHOLE_SPACE_MASK} or more covers the whole 64-bit space (then address must be 0).
   *
   * @throws IllegalArgumentException on a negative mask or a misaligned address: the queue
   *     refuses such descriptors with EINVAL before they reach the IOTLB
   */
  public int invalidatePages(int domainId, int pasid, long address, int addressMask) {
    checkDomain(domainId);
    checkPasid(pasid, true);
    long last = spanLast(address, addressMask);
    if (pasid == ANY_PASID) {
      return cache.invalidate(tagOf(domainId, 0), DOMAIN_TAG_MASK, address, last);
    }
    return cache.invalidate(tagOf(domainId, pasid), -1L, address, last);
  }

  /** Inclusive last address of the aligned span of 2^mask 4 KiB pages at {@code address}. */
  static long spanLast(long address, int addressMask) {
    if (addressMask < 0) {
      throw new IllegalArgumentException("negative address mask " + addressMask);
    }
    long offsetMask = addressMask + 12 >= 64 ? -1L : (1L << (addressMask + 12)) - 1;
    if ((address & offsetMask) != 0) {
      throw new IllegalArgumentException(
          String.format(
              "address 0x%x not aligned to its span of 2^%d pages", address, addressMask));
    }
    return address | offsetMask;
  }

  public IotlbSettings settings() {
    return settings;
  }
}
