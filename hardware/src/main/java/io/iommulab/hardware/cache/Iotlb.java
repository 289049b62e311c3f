package io.iommulab.hardware.cache;

import io.iommulab.config.IotlbSettings;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;

/**
 * API STUB: to be implemented (see the cache package task). One unit's IOTLB, tagged by domain id
 * and PASID, bounded, set-associative with a replacement policy.
 */
public final class Iotlb {
  /** Selector for invalidations: every PASID of the domain, including "no PASID". */
  public static final int ANY_PASID = -2;

  public Iotlb(IotlbSettings settings, long seed) {
    throw new UnsupportedOperationException("stub");
  }

  /** On a hit fills {@code out.hpa} (for {@code iova} itself, offset included), prot, pageSize. */
  public boolean lookup(int domainId, int pasid, long iova, Translation out) {
    throw new UnsupportedOperationException("stub");
  }

  /** Caches the page of {@code size} containing {@code iova} which maps to {@code hpa}'s page. */
  public void insert(int domainId, int pasid, long iova, long hpa, PageSize size, int prot) {
    throw new UnsupportedOperationException("stub");
  }

  public int invalidateAll() {
    throw new UnsupportedOperationException("stub");
  }

  public int invalidateDomain(int domainId) {
    throw new UnsupportedOperationException("stub");
  }

  public int invalidatePasid(int domainId, int pasid) {
    throw new UnsupportedOperationException("stub");
  }

  /** Page-selective: 2^addressMask 4 KiB pages from {@code address} (aligned to that span). */
  public int invalidatePages(int domainId, int pasid, long address, int addressMask) {
    throw new UnsupportedOperationException("stub");
  }

  public int size() {
    throw new UnsupportedOperationException("stub");
  }
}
