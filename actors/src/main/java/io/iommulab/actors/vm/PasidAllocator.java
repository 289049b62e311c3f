package io.iommulab.actors.vm;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.BitSet;

/**
 * A VM's PASID set, as the 2021 /dev/ioasid series proposed (000 seed: "the ioasid allocated to the
 * VM should be able to be shared by all assigned device for the VM"; {@code ioasid_set} with a
 * quota): the guest IOMMU driver allocates PASIDs from its own set and programs them into any of
 * its devices. PASID 0 is never handed out: VT-d uses it as the RID's own PASID (RID_PASID) and
 * SMMUv3 reserves SSID 0 for the STE's own context.
 *
 * <p>Allocation is lowest-free, so runs replay without a random source. Invariants: {@code 0 <
 * pasid < 2^bits} for every allocated PASID; {@code allocated() <= quota}. A refused call changes
 * nothing.
 */
public final class PasidAllocator {
  private final int bits;
  private final int quota;
  private final BitSet used = new BitSet();
  private long allocations;

  /**
   * @param bits PASID width, 1 to 20
   * @param quota how many PASIDs the VM may hold at once, at least 1
   */
  public PasidAllocator(int bits, int quota) {
    if (bits < 1 || bits > 20) {
      throw new IllegalArgumentException("bits must be 1 to 20: " + bits);
    }
    if (quota < 1) {
      throw new IllegalArgumentException("quota must be at least 1: " + quota);
    }
    this.bits = bits;
    this.quota = quota;
  }

  /** The lowest free PASID; ENOSPC when the quota or the PASID space is exhausted. */
  public Outcome<Integer> allocate() {
    if (used.cardinality() >= quota) {
      return Outcome.err(Errno.ENOSPC, "pasid: quota of %d PASIDs exhausted", quota);
    }
    int pasid = used.nextClearBit(1);
    if (pasid >= (1 << bits)) {
      return Outcome.err(Errno.ENOSPC, "pasid: all %d-bit PASIDs in use", bits);
    }
    used.set(pasid);
    allocations++;
    return Outcome.ok(pasid);
  }

  /** Returns {@code pasid} to the set; ENOENT when it is not allocated. */
  public Outcome<Void> free(int pasid) {
    if (pasid < 1 || pasid >= (1 << bits) || !used.get(pasid)) {
      return Outcome.err(Errno.ENOENT, "pasid %d: not allocated to this VM", pasid);
    }
    used.clear(pasid);
    return Outcome.OK;
  }

  public boolean isAllocated(int pasid) {
    return pasid >= 1 && pasid < (1 << bits) && used.get(pasid);
  }

  public int allocated() {
    return used.cardinality();
  }

  public long allocations() {
    return allocations;
  }

  public int bits() {
    return bits;
  }
}
