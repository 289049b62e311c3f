package io.iommulab.hardware.cache;

import static io.iommulab.hardware.fault.FaultRecord.NO_PASID;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.iommulab.hardware.cache.InvDescriptor.DevTlb;
import io.iommulab.hardware.cache.InvDescriptor.IotlbDomain;
import io.iommulab.hardware.cache.InvDescriptor.IotlbGlobal;
import io.iommulab.hardware.cache.InvDescriptor.IotlbPages;
import io.iommulab.hardware.cache.InvDescriptor.IotlbPasid;
import io.iommulab.hardware.cache.InvDescriptor.Wait;
import io.iommulab.hardware.cache.InvalidationPlan.AtsRequester;
import io.iommulab.hardware.cache.InvalidationPlan.PsiRange;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class InvalidationPlanTest {
  private static final List<AtsRequester> TWO_ATS =
      List.of(new AtsRequester(0x0100, NO_PASID), new AtsRequester(0x0208, 7));

  @Test
  void anAlignedRangeIsOnePageSelectiveInvalidationThenEachAtcThenAWait() {
    List<InvDescriptor> plan = InvalidationPlan.range(3, 7, 0x10000, 0x4000, 9, TWO_ATS, 42);
    assertEquals(
        List.of(
            new IotlbPages(3, 7, 0x10000, 2, false),
            new DevTlb(0x0100, NO_PASID, 0x10000, 2),
            new DevTlb(0x0208, 7, 0x10000, 2),
            new Wait(42)),
        plan);
  }

  @Test
  void anUnalignedRangeIsWidenedToTheSmallestAlignedPowerOfTwoSpan() {
    // Pages [7, 10] need the aligned span [0, 15].
    assertEquals(new PsiRange(0, 4), InvalidationPlan.psiRange(7 * 4096L, 11 * 4096L - 1));
    // Two pages straddling an 8 KiB boundary need 16 KiB (the kernel's shared_bits case).
    assertEquals(new PsiRange(0, 2), InvalidationPlan.psiRange(0x1800, 0x27ff));
    // Sub-page ranges stay one page.
    assertEquals(new PsiRange(0x5000, 0), InvalidationPlan.psiRange(0x5123, 0x5124));
  }

  @Test
  void aRangeBeyondTheMaximumMaskFallsBackToDomainSelectiveAndTheAtcKeepsTheRange() {
    List<InvDescriptor> plan =
        InvalidationPlan.range(3, Iotlb.ANY_PASID, 0, 1L << 30, 9, TWO_ATS, 1);
    assertEquals(new IotlbDomain(3), plan.get(0));
    assertEquals(new DevTlb(0x0100, NO_PASID, 0, 18), plan.get(1));
    assertEquals(
        new IotlbDomain(3), InvalidationPlan.range(3, NO_PASID, 0, 1L << 30, 9, List.of(), 1).get(0));
  }

  @Test
  void aPasidRangeBeyondTheMaximumMaskFallsBackToPasidSelective() {
    List<InvDescriptor> plan = InvalidationPlan.range(3, 7, 0, 1L << 22, 9, List.of(), 1);
    assertEquals(List.of(new IotlbPasid(3, 7), new Wait(1)), plan);
  }

  @Test
  void aRangeExactlyAtTheMaximumMaskStaysPageSelective() {
    List<InvDescriptor> plan = InvalidationPlan.range(3, 7, 0, 512 * 4096L, 9, List.of(), 1);
    assertEquals(new IotlbPages(3, 7, 0, 9, false), plan.get(0));
  }

  @Test
  void rangesAtTheTopOfTheAddressSpaceDoNotOverflow() {
    assertEquals(
        new IotlbPages(1, NO_PASID, 0xFFFF_FFFF_FFFF_F000L, 0, false),
        InvalidationPlan.range(1, NO_PASID, 0xFFFF_FFFF_FFFF_F000L, 0x1000, 63, List.of(), 1)
            .get(0));
    // [2^63, 2^64): length 2^63 is negative as a signed long.
    assertEquals(
        new IotlbPages(1, NO_PASID, Long.MIN_VALUE, 51, false),
        InvalidationPlan.range(1, NO_PASID, Long.MIN_VALUE, Long.MIN_VALUE, 63, List.of(), 1)
            .get(0));
    assertEquals(
        new IotlbPages(1, NO_PASID, 0, 52, true),
        InvalidationPlan.rangeLast(1, NO_PASID, 0, -1L, 63, true, List.of(), 1).get(0));
    assertEquals(
        new DevTlb(5, NO_PASID, 0, 52),
        InvalidationPlan.rangeLast(1, NO_PASID, 0, -1L, 9, false, List.of(new AtsRequester(5, -1)), 1)
            .get(1));
  }

  @Test
  void aRangeThatWrapsPast2To64OrIsEmptyIsABug() {
    assertThrows(
        IllegalArgumentException.class,
        () -> InvalidationPlan.range(1, NO_PASID, 0xFFFF_FFFF_FFFF_F000L, 0x2000, 63, List.of(), 1));
    assertThrows(
        IllegalArgumentException.class,
        () -> InvalidationPlan.range(1, NO_PASID, 0x1000, 0, 63, List.of(), 1));
    assertThrows(
        IllegalArgumentException.class,
        () -> InvalidationPlan.rangeLast(1, NO_PASID, 0x2000, 0x1000, 63, false, List.of(), 1));
    assertThrows(
        IllegalArgumentException.class,
        () -> InvalidationPlan.range(-1, NO_PASID, 0x1000, 1, 63, List.of(), 1));
  }

  @Test
  void domainPasidAndGlobalFlushesAlsoPutTheIotlbFirstAndTheWaitLast() {
    AtsRequester a = new AtsRequester(9, NO_PASID);
    assertEquals(
        List.of(new IotlbDomain(2), new DevTlb(9, NO_PASID, 0, 52), new Wait(5)),
        InvalidationPlan.domain(2, List.of(a), 5));
    assertEquals(
        List.of(new IotlbPasid(2, 4), new DevTlb(9, NO_PASID, 0, 52), new Wait(6)),
        InvalidationPlan.pasid(2, 4, List.of(a), 6));
    assertEquals(
        List.of(new IotlbDomain(2), new Wait(6)),
        InvalidationPlan.pasid(2, Iotlb.ANY_PASID, List.of(), 6));
    assertEquals(
        List.of(new IotlbGlobal(), new DevTlb(9, NO_PASID, 0, 52), new Wait(7)),
        InvalidationPlan.global(List.of(a), 7));
  }

  @Test
  void everyPlanIsAcceptedByAQueueOfTheSameMaximumMask() {
    InvalidationQueue q = new InvalidationQueue(256, 9, io.iommulab.hardware.cost.CostModel.defaults());
    assertEquals(true, q.submit(InvalidationPlan.range(1, 3, 0x7000, 0x9000, 9, TWO_ATS, 1)).isOk());
    assertEquals(true, q.submit(InvalidationPlan.range(1, 3, 0, 1L << 40, 9, TWO_ATS, 2)).isOk());
    assertEquals(true, q.submit(InvalidationPlan.rangeLast(1, 3, 0, -1L, 9, false, TWO_ATS, 3)).isOk());
  }

  /** The span is aligned, covers the range, and half of it (aligned) would not. */
  @Property(tries = 500)
  void thePsiSpanIsTheSmallestAlignedPowerOfTwoCoveringTheRange(
      @ForAll long iova, @ForAll @IntRange(min = 0, max = 40) int lengthBits, @ForAll long raw) {
    long length = 1 + Long.remainderUnsigned(raw, 1L << lengthBits);
    long last = iova + (length - 1);
    if (Long.compareUnsigned(last, iova) < 0) {
      last = -1L;
    }
    PsiRange r = InvalidationPlan.psiRange(iova, last);
    long spanLast = r.last();
    assertEquals(true, Long.compareUnsigned(r.address(), iova) <= 0, "starts at or below iova");
    assertEquals(true, Long.compareUnsigned(spanLast, last) >= 0, "ends at or above last");
    if (r.addressMask() > 0) {
      long half = 1L << (r.addressMask() - 1 + 12);
      long lowerHalfStart = iova & -half;
      // The aligned half-size span holding iova must miss the last byte.
      assertEquals(true, Long.compareUnsigned(lowerHalfStart + half - 1, last) < 0);
    }
  }
}
