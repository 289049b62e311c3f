package io.iommulab.hardware.cache;

import io.iommulab.hardware.fault.FaultRecord;
import java.util.ArrayList;
import java.util.List;

/**
 * Builds the descriptor sequences a unit submits to its {@link InvalidationQueue}, so the
 * ordering and widening rules live in one place.
 *
 * <p>Every plan is ordered <b>IOTLB first, then device TLBs (ATC), then a {@link
 * InvDescriptor.Wait}</b>:
 *
 * <ul>
 *   <li>VT-d: cache tags are added IOTLB first, then DEVTLB, so {@code cache_tag_flush_range()}
 *       invalidates the IOTLB (or PASID-IOTLB) before the device TLB
 *       ({@code drivers/iommu/intel/cache.c}); {@code qi_submit_sync()} appends a wait
 *       descriptor and spins until it completes ({@code drivers/iommu/intel/dmar.c}).
 *   <li>SMMUv3: {@code arm_smmu_atc_inv_domain()} "Ensure that we've completed prior
 *       invalidation of the main TLBs before we read 'nr_ats_masters'"; TLBI commands and their
 *       CMD_SYNC precede ATC_INV ({@code drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c}).
 * </ul>
 *
 * <p>The queue executes in order, so a device TLB can never re-fetch a translation from an IOTLB
 * entry the same plan has not yet dropped, and the trailing wait completes only after both.
 *
 * <p>Range widening (VT-d PSI, {@code calculate_psi_aligned_address()} in
 * {@code drivers/iommu/intel/cache.c}): page-selective invalidation covers {@code 2^am} 4 KiB
 * pages from an address aligned to that span, so {@code [iova, last]} becomes the smallest
 * aligned power-of-two span of pages containing it. When its mask exceeds the unit's
 * {@code cap_max_amask_val}, the IOTLB part falls back to domain-selective invalidation (no
 * PASID or every PASID) or PASID-selective invalidation (one PASID; the first-stage
 * {@code qi_flush_piotlb} path), as {@code cache_tag_flush_iotlb()} does. The device-TLB part
 * keeps the widened range: ATS invalidations are not bounded by the IOTLB's mask
 * ({@code cache_tag_flush_devtlb_psi()}).
 *
 * <p>Addresses are unsigned 64-bit: {@code last} is inclusive, and a range may end at
 * {@code 0xffff_ffff_ffff_ffff}; a range that would wrap past 2^64 is refused as a bug.
 */
public final class InvalidationPlan {
  /** A mask (in 4 KiB pages) covering the whole 64-bit space: {@code MAX_AGAW_PFN_WIDTH}. */
  public static final int WHOLE_SPACE_MASK = Iotlb.WHOLE_SPACE_MASK;

  private InvalidationPlan() {}

  /**
   * A PCI function with ATS enabled whose device TLB must be invalidated after the IOTLB: its
   * requester id and the PASID its translations are tagged with ({@link FaultRecord#NO_PASID}
   * for requests without PASID, whose invalidation also wipes PASID-tagged ATC entries).
   */
  public record AtsRequester(int rid, int pasid) {
    public AtsRequester {
      if (rid < 0 || rid > 0xFFFF) {
        throw new IllegalArgumentException("rid " + rid + " outside 16 bits");
      }
      if (pasid < FaultRecord.NO_PASID) {
        throw new IllegalArgumentException("bad PASID " + pasid);
      }
    }
  }

  /**
   * An aligned power-of-two span of 4 KiB pages.
   *
   * @param address first byte, aligned to the span
   * @param addressMask log2 of the span in 4 KiB pages
   */
  public record PsiRange(long address, int addressMask) {
    /** Inclusive last byte of the span. */
    public long last() {
      return Iotlb.spanLast(address, addressMask);
    }
  }

  /**
   * The smallest aligned power-of-two span of 4 KiB pages containing {@code [iova, last]}
   * (inclusive, unsigned). Equivalent to the kernel's PSI computation: a span of {@code 2^m}
   * pages is aligned and covers the range iff the first and last page numbers agree above bit
   * {@code m}, so {@code m = fls(firstPfn ^ lastPfn)}.
   */
  public static PsiRange psiRange(long iova, long last) {
    if (Long.compareUnsigned(last, iova) < 0) {
      throw new IllegalArgumentException(
          String.format("range [0x%x, 0x%x]: last below iova", iova, last));
    }
    long firstPfn = iova >>> 12;
    long lastPfn = last >>> 12;
    int mask = 64 - Long.numberOfLeadingZeros(firstPfn ^ lastPfn);
    long address = mask >= WHOLE_SPACE_MASK ? 0 : (firstPfn >>> mask) << (mask + 12);
    return new PsiRange(address, mask);
  }

  /**
   * Invalidation of {@code length} bytes from {@code iova} (see {@link #rangeLast}); {@code
   * length} is unsigned and nonzero, and the range must not wrap past 2^64.
   */
  public static List<InvDescriptor> range(
      int domainId,
      int pasid,
      long iova,
      long length,
      int maxAddressMask,
      List<AtsRequester> ats,
      long waitToken) {
    if (length == 0) {
      throw new IllegalArgumentException("zero-length invalidation at iova 0x" + Long.toHexString(iova));
    }
    long last = iova + (length - 1);
    if (Long.compareUnsigned(last, iova) < 0) {
      throw new IllegalArgumentException(
          String.format("iova 0x%x + length 0x%x wraps past 2^64", iova, length));
    }
    return rangeLast(domainId, pasid, iova, last, maxAddressMask, false, ats, waitToken);
  }

  /**
   * Invalidation of {@code [iova, last]} (inclusive) in a domain: one page-selective IOTLB
   * descriptor for the widened span (or the domain-/PASID-selective fallback beyond {@code
   * maxAddressMask}), then one device-TLB descriptor per ATS requester for the same span, then a
   * wait.
   *
   * @param pasid the PASID whose translations changed, {@link FaultRecord#NO_PASID}, or {@link
   *     Iotlb#ANY_PASID} for every PASID of the domain (second-stage changes)
   * @param leaf the PSI invalidation hint: only leaf entries changed
   */
  public static List<InvDescriptor> rangeLast(
      int domainId,
      int pasid,
      long iova,
      long last,
      int maxAddressMask,
      boolean leaf,
      List<AtsRequester> ats,
      long waitToken) {
    checkDomain(domainId);
    checkPasidSelector(pasid);
    checkMaxMask(maxAddressMask);
    PsiRange span = psiRange(iova, last);
    List<InvDescriptor> plan = new ArrayList<>(ats.size() + 2);
    plan.add(iotlb(domainId, pasid, span, maxAddressMask, leaf));
    int order = Math.min(span.addressMask(), WHOLE_SPACE_MASK);
    for (AtsRequester r : ats) {
      plan.add(new InvDescriptor.DevTlb(r.rid(), r.pasid(), span.address(), order));
    }
    plan.add(new InvDescriptor.Wait(waitToken));
    return List.copyOf(plan);
  }

  /**
   * The IOTLB descriptor alone of {@link #rangeLast} (no device TLB, no wait): what a batch of
   * merged ranges issues per range, without building a plan for each.
   */
  public static InvDescriptor iotlbRangeLast(
      int domainId, int pasid, long iova, long last, int maxAddressMask, boolean leaf) {
    checkDomain(domainId);
    checkPasidSelector(pasid);
    checkMaxMask(maxAddressMask);
    return iotlb(domainId, pasid, psiRange(iova, last), maxAddressMask, leaf);
  }

  private static InvDescriptor iotlb(
      int domainId, int pasid, PsiRange span, int maxAddressMask, boolean leaf) {
    if (span.addressMask() <= maxAddressMask) {
      return new InvDescriptor.IotlbPages(domainId, pasid, span.address(), span.addressMask(), leaf);
    }
    return wideFallback(domainId, pasid);
  }

  private static InvDescriptor wideFallback(int domainId, int pasid) {
    if (pasid == Iotlb.ANY_PASID || pasid == FaultRecord.NO_PASID) {
      return new InvDescriptor.IotlbDomain(domainId);
    }
    return new InvDescriptor.IotlbPasid(domainId, pasid);
  }

  /** Domain-wide flush: DSI, then every ATS requester's whole device TLB, then a wait. */
  public static List<InvDescriptor> domain(int domainId, List<AtsRequester> ats, long waitToken) {
    checkDomain(domainId);
    return withAtcFlushes(new InvDescriptor.IotlbDomain(domainId), ats, waitToken);
  }

  /**
   * PASID-wide flush (VT-d PASID teardown step 4, {@code drivers/iommu/intel/pasid.c}): the
   * PASID-IOTLB of (domain, pasid), then each ATS requester's whole device TLB, then a wait.
   * {@link Iotlb#ANY_PASID} makes it a domain-wide flush.
   */
  public static List<InvDescriptor> pasid(
      int domainId, int pasid, List<AtsRequester> ats, long waitToken) {
    checkDomain(domainId);
    checkPasidSelector(pasid);
    InvDescriptor iotlb =
        pasid == Iotlb.ANY_PASID
            ? new InvDescriptor.IotlbDomain(domainId)
            : new InvDescriptor.IotlbPasid(domainId, pasid);
    return withAtcFlushes(iotlb, ats, waitToken);
  }

  /** Global flush: every IOTLB entry, then every listed device TLB in full, then a wait. */
  public static List<InvDescriptor> global(List<AtsRequester> ats, long waitToken) {
    return withAtcFlushes(new InvDescriptor.IotlbGlobal(), ats, waitToken);
  }

  private static List<InvDescriptor> withAtcFlushes(
      InvDescriptor iotlb, List<AtsRequester> ats, long waitToken) {
    List<InvDescriptor> plan = new ArrayList<>(ats.size() + 2);
    plan.add(iotlb);
    for (AtsRequester r : ats) {
      plan.add(new InvDescriptor.DevTlb(r.rid(), r.pasid(), 0, WHOLE_SPACE_MASK));
    }
    plan.add(new InvDescriptor.Wait(waitToken));
    return List.copyOf(plan);
  }

  private static void checkDomain(int domainId) {
    if (domainId < 0) {
      throw new IllegalArgumentException("negative domain id " + domainId);
    }
  }

  private static void checkPasidSelector(int pasid) {
    if (pasid < FaultRecord.NO_PASID && pasid != Iotlb.ANY_PASID) {
      throw new IllegalArgumentException("bad PASID selector " + pasid);
    }
  }

  private static void checkMaxMask(int maxAddressMask) {
    if (maxAddressMask < 0 || maxAddressMask > 63) {
      throw new IllegalArgumentException("max address mask " + maxAddressMask + " not in [0, 63]");
    }
  }
}
