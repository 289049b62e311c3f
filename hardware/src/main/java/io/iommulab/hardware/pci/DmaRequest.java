package io.iommulab.hardware.pci;

import io.iommulab.config.Rids;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.fault.FaultRecord;

/**
 * One DMA transaction as a function puts it on the bus: requester id, optional PASID (PCIe PASID
 * TLP prefix), IOVA, length and {@link Access} bits, and whether the TLP has the No Snoop
 * attribute. Immutable, so it can cross actor boundaries. The composer (device → IOMMU unit →
 * memory) translates it and reports into a {@link DmaResult}; this package keeps no path logic.
 *
 * <p>Rules (bugs if broken): {@code length ≥ 1}; {@code [iova, iova + length - 1]} does not wrap
 * the unsigned 64-bit space; {@code access} is a non-empty subset of READ|WRITE|EXEC|PRIV; the
 * PASID is {@link FaultRecord#NO_PASID} or a 20-bit value; the RID fits 16 bits (a PAMU LIODN fits
 * too).
 *
 * @param rid requester id, {@code bus << 8 | dev << 3 | fn} ({@link Rids}), or LIODN for PAMU
 * @param pasid PASID, or {@link FaultRecord#NO_PASID}
 * @param iova first byte addressed (unsigned)
 * @param length bytes, at least 1
 * @param access {@link Access} bits requested
 * @param noSnoop the TLP carries No Snoop (non-coherent DMA unless the IOMMU forces snooping)
 */
public record DmaRequest(int rid, int pasid, long iova, long length, int access, boolean noSnoop) {
  /** PASIDs are 20 bits (PCIe PASID TLP prefix). */
  public static final int PASID_LIMIT = 1 << 20;

  private static final int ACCESS_BITS = Access.READ | Access.WRITE | Access.EXEC | Access.PRIV;

  public DmaRequest {
    if (rid < 0 || rid > 0xffff) {
      throw new IllegalArgumentException("rid " + rid + " does not fit 16 bits");
    }
    if (pasid != FaultRecord.NO_PASID && (pasid < 0 || pasid >= PASID_LIMIT)) {
      throw new IllegalArgumentException("pasid " + pasid + " is neither NO_PASID nor 20-bit");
    }
    if (length < 1) {
      throw new IllegalArgumentException("length must be >= 1: " + length);
    }
    if (Long.compareUnsigned(iova + (length - 1), iova) < 0) {
      throw new IllegalArgumentException(
          String.format("iova 0x%x + length 0x%x wraps 2^64", iova, length));
    }
    if (access == 0 || (access & ~ACCESS_BITS) != 0) {
      throw new IllegalArgumentException("access bits 0x" + Integer.toHexString(access));
    }
  }

  public static DmaRequest read(int rid, long iova, long length) {
    return new DmaRequest(rid, FaultRecord.NO_PASID, iova, length, Access.READ, false);
  }

  public static DmaRequest write(int rid, long iova, long length) {
    return new DmaRequest(rid, FaultRecord.NO_PASID, iova, length, Access.WRITE, false);
  }

  /** The same request tagged with {@code pasid}. */
  public DmaRequest withPasid(int pasid) {
    return new DmaRequest(rid, pasid, iova, length, access, noSnoop);
  }

  /** Last byte addressed (inclusive, unsigned). */
  public long lastIova() {
    return iova + (length - 1);
  }

  public boolean hasPasid() {
    return pasid != FaultRecord.NO_PASID;
  }

  public boolean isWrite() {
    return (access & Access.WRITE) != 0;
  }

  @Override
  public String toString() {
    return String.format(
        "DmaRequest[%s%s %s 0x%x+0x%x%s]",
        Rids.format(rid),
        hasPasid() ? " pasid " + pasid : "",
        Access.describe(access),
        iova,
        length,
        noSnoop ? " ns" : "");
  }
}
