package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;

/**
 * {@code struct iommu_iova_range}: an IOVA interval, {@code last} inclusive, both unsigned.
 *
 * @param start first IOVA
 * @param last inclusive last IOVA
 */
public record IovaRange(long start, long last) implements CborSerializable {

  /** Whether the range is well formed: {@code start <= last} unsigned. */
  public boolean valid() {
    return Long.compareUnsigned(start, last) <= 0;
  }

  @Override
  public String toString() {
    return String.format("[0x%x, 0x%x]", start, last);
  }
}
