package io.iommulab.hardware.cache;

import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;

/** API STUB: to be implemented (see the cache package task). A device's ATS translation cache. */
public final class DeviceAtc {
  public DeviceAtc(int capacity, long seed) {
    throw new UnsupportedOperationException("stub");
  }

  public boolean lookup(int pasid, long iova, Translation out) {
    throw new UnsupportedOperationException("stub");
  }

  public void insert(int pasid, long iova, long hpa, PageSize size, int prot) {
    throw new UnsupportedOperationException("stub");
  }

  /**
   * ATC_INV: 2^sizeOrder 4 KiB pages from {@code address}, widened to an aligned power-of-two
   * span; {@code pasid == FaultRecord.NO_PASID} also wipes PASID-tagged entries in the range.
   */
  public int invalidate(int pasid, long address, int sizeOrder) {
    throw new UnsupportedOperationException("stub");
  }

  public int invalidateAll() {
    throw new UnsupportedOperationException("stub");
  }

  public int size() {
    throw new UnsupportedOperationException("stub");
  }
}
