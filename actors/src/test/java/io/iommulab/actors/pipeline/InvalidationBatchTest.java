package io.iommulab.actors.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.pipeline.InvalidationRequest.AtcTarget;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.InvDescriptor.DevTlb;
import io.iommulab.hardware.cache.InvDescriptor.IotlbDomain;
import io.iommulab.hardware.cache.InvDescriptor.IotlbPages;
import io.iommulab.hardware.cache.InvalidationPlan;
import io.iommulab.hardware.cache.Iotlb;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;

class InvalidationBatchTest {
  private static final long PAGE = 4096;
  private static final long IOVA = 0x10_0000L;
  private static final int ANY = Iotlb.ANY_PASID;
  private static final int NONE = -1;
  private static final int MAX_MASK = 18;

  private static InvalidationRequest unmap(long id, int domain, long iova, long length, int... rids) {
    List<AtcTarget> atc = new ArrayList<>();
    for (int rid : rids) {
      atc.add(new AtcTarget(rid, NONE, iova, iova + length - 1));
    }
    return new InvalidationRequest(id, true,
        List.of(new IotlbTarget(domain, ANY, iova, iova + length - 1, false, true)), atc, List.of());
  }

  private static InvalidationBatch merge(InvalidationRequest... requests) {
    return InvalidationBatch.merge(List.of(requests), FlushReason.STRICT, MAX_MASK);
  }

  @Test
  void adjacentRangesOfOneDomainAreMergedBeforeWideningIntoOneDescriptor() {
    InvalidationBatch b = merge(unmap(1, 3, IOVA, PAGE, 0x200), unmap(2, 3, IOVA + PAGE, PAGE, 0x200));
    // Pages 0x100 and 0x101 merged: one aligned span of 2 pages, not two 1-page descriptors.
    assertEquals(List.of(new IotlbPages(3, ANY, IOVA, 1, false)), b.iotlb());
    assertEquals(List.of(new DevTlb(0x200, NONE, IOVA, 1)), b.atc());
    assertEquals(4, b.rangesIn());
    assertEquals(2, b.rangesOut());
    assertArrayEquals(new long[] {1, 2}, b.requestIds());
  }

  @Test
  void overlappingRangesAreMergedAndDistantOnesStaySeparate() {
    InvalidationBatch b = merge(
        unmap(1, 3, IOVA, 4 * PAGE),
        unmap(2, 3, IOVA + 2 * PAGE, 4 * PAGE),
        unmap(3, 3, IOVA + 64 * PAGE, PAGE));
    assertEquals(List.of(
        // [0x100, 0x105] widens to the aligned 8 pages at 0x100.
        new IotlbPages(3, ANY, IOVA, 3, false),
        new IotlbPages(3, ANY, IOVA + 64 * PAGE, 0, false)), b.iotlb());
    assertEquals(2, b.rangesOut());
  }

  @Test
  void rangesOfDifferentDomainsOrPasidsAreNotMerged() {
    InvalidationRequest otherPasid = new InvalidationRequest(3, true,
        List.of(new IotlbTarget(3, 5, IOVA + PAGE, IOVA + 2 * PAGE - 1, false, false)),
        List.of(new AtcTarget(0x200, 5, IOVA + PAGE, IOVA + 2 * PAGE - 1)), List.of());
    InvalidationBatch b = merge(unmap(1, 3, IOVA, PAGE, 0x200), unmap(2, 4, IOVA + PAGE, PAGE),
        otherPasid);
    assertEquals(List.of(
        new IotlbPages(3, ANY, IOVA, 0, false),
        new IotlbPages(3, 5, IOVA + PAGE, 0, false),
        new IotlbPages(4, ANY, IOVA + PAGE, 0, false)),
        b.iotlb().stream().sorted((x, y) -> x.toString().compareTo(y.toString())).toList());
    assertEquals(2, b.atc().size());
  }

  @Test
  void aMergedRangeBeyondTheMaskFallsBackToADomainFlush() {
    // 2^19 pages merged from two halves: wider than a mask of 18.
    long half = (1L << 18) * PAGE;
    InvalidationBatch b = merge(unmap(1, 7, 0, half), unmap(2, 7, half, half));
    assertEquals(List.of(new IotlbDomain(7)), b.iotlb());
  }

  @Test
  void aDomainFlushSubsumesThePageFlushesOfItsDomainAndAWholeAtcFlushTheRidsRanges() {
    InvalidationRequest detach = InvalidationRequest.fromPlan(2, true, List.of(
        new InvDescriptor.PasidCache(3, 0),
        new IotlbDomain(3),
        new DevTlb(0x200, NONE, 0, 52),
        new InvDescriptor.Wait(9)));
    InvalidationBatch b = merge(unmap(1, 3, IOVA, PAGE, 0x200, 0x300), detach,
        unmap(3, 4, IOVA, PAGE));
    assertEquals(List.of(new InvDescriptor.PasidCache(3, 0)), b.fixed());
    assertEquals(List.of(new IotlbDomain(3), new IotlbPages(4, ANY, IOVA, 0, false)), b.iotlb());
    assertEquals(List.of(new DevTlb(0x200, NONE, 0, 52), new DevTlb(0x300, NONE, IOVA, 0)),
        b.atc().stream().sorted((x, y) -> Integer.compare(((DevTlb) x).rid(), ((DevTlb) y).rid()))
            .toList());
    // The rescan keeps the unmapped range: merged with the domain flush it would reach every
    // device TLB of the domain in full.
    assertEquals(List.of(new IotlbTarget(3, ANY, IOVA, IOVA + PAGE - 1, false, true),
        new IotlbTarget(4, ANY, IOVA, IOVA + PAGE - 1, false, true)), b.rescan());
  }

  @Test
  void aPlanIsPassThroughThenIotlbThenAtcThenOneWait() {
    InvalidationRequest detach = InvalidationRequest.fromPlan(2, true, List.of(
        new InvDescriptor.PasidCache(3, 0), new IotlbDomain(3), new DevTlb(0x200, NONE, 0, 52),
        new InvDescriptor.Wait(9)));
    List<InvDescriptor> plan = merge(unmap(1, 4, IOVA, PAGE, 0x300), detach).plan(77);
    assertEquals(List.of(
        new InvDescriptor.PasidCache(3, 0),
        new IotlbPages(4, ANY, IOVA, 0, false),
        new IotlbDomain(3),
        new DevTlb(0x300, NONE, IOVA, 0),
        new DevTlb(0x200, NONE, 0, 52),
        new InvDescriptor.Wait(77)), plan);
  }

  @Test
  void fromPlanTurnsAModelRangePlanBackIntoTheUnwidenedRange() {
    // What IommuUnit.planRange builds for 3 pages at 0x101: an 4-page span from 0x100.
    List<InvDescriptor> plan = InvalidationPlan.range(3, ANY, IOVA + PAGE, 3 * PAGE, MAX_MASK,
        List.of(new InvalidationPlan.AtsRequester(0x200, NONE)), 5);
    IotlbTarget changed = new IotlbTarget(3, ANY, IOVA + PAGE, IOVA + 4 * PAGE - 1, false, true);
    InvalidationRequest r = InvalidationRequest.fromPlan(9, false, plan, changed);
    assertEquals(List.of(changed), r.iotlb());
    assertEquals(List.of(new AtcTarget(0x200, NONE, IOVA + PAGE, IOVA + 4 * PAGE - 1)), r.atc());
    assertEquals(List.of(), r.fixed());
    assertFalse(r.synchronous());
    // Merged alone it widens exactly as the model did.
    InvalidationBatch b = merge(r);
    assertEquals(plan.get(0), b.iotlb().get(0));
    assertEquals(plan.get(1), b.atc().get(0));
    assertEquals(List.of(changed), b.rescan());
  }

  @Test
  void anUnalignedUserAtcEntryIsWidenedAsTheDeviceWidensIt() {
    // 3 pages from page 0x101 (order 2): the device invalidates the aligned 8 pages at 0x100.
    InvalidationRequest r = InvalidationRequest.fromPlan(1, true,
        List.of(new DevTlb(0x200, 3, IOVA + PAGE, 2), new InvDescriptor.Wait(1)));
    InvalidationBatch b = merge(r);
    assertEquals(List.of(new DevTlb(0x200, 3, IOVA, 3)), b.atc());
    assertTrue(b.coversAtc(new DevTlb(0x200, 3, IOVA + PAGE, 2)));
    assertFalse(b.coversAtc(new DevTlb(0x200, 3, IOVA + 8 * PAGE, 0)));
    assertFalse(b.coversAtc(new DevTlb(0x201, 3, IOVA, 0)));
  }

  @Test
  void coverageKnowsWhatADomainFlushOrAWiderSpanAlreadyDrops() {
    InvalidationBatch b = merge(unmap(1, 3, IOVA, 8 * PAGE, 0x200));
    assertTrue(b.coversIotlb(new IotlbPages(3, ANY, IOVA, 3, false)));
    assertTrue(b.coversIotlb(new IotlbPages(3, 0, IOVA + PAGE, 0, false)));
    assertFalse(b.coversIotlb(new IotlbPages(3, ANY, IOVA, 4, false)));
    assertFalse(b.coversIotlb(new IotlbDomain(3)));
    assertFalse(b.coversIotlb(new IotlbPages(4, ANY, IOVA, 0, false)));
    assertTrue(b.coversAtc(new DevTlb(0x200, NONE, IOVA, 3)));
    assertTrue(b.coversAtc(new DevTlb(0x200, 4, IOVA, 1)), "no-PASID ATC flush covers PASIDs");
    assertTrue(merge(unmap(1, 3, 0, -1L)).coversIotlb(new IotlbDomain(3)));
  }

  @Test
  void aRequestRefusesDescriptorsThatAreNeitherTargetsNorPassThrough() {
    assertThrows(IllegalArgumentException.class, () -> new InvalidationRequest(1, true, List.of(),
        List.of(), List.of(new InvDescriptor.Wait(1))));
    assertThrows(IllegalArgumentException.class,
        () -> new IotlbTarget(1, ANY, IOVA + PAGE, IOVA, false, false));
  }

  /**
   * Whatever the requests, the merged batch drops every page each request named, for its tag, and
   * never issues more IOTLB or ATC descriptors than there were ranges.
   */
  @Property(tries = 300)
  void aMergedBatchCoversEveryPageOfEveryRequestWithNoMoreDescriptors(
      @ForAll @Size(min = 1, max = 12) List<@IntRange(min = 0, max = 95) Integer> firstPages,
      @ForAll @Size(min = 12, max = 12) List<@IntRange(min = 1, max = 9) Integer> pageCounts,
      @ForAll @Size(min = 12, max = 12) List<@IntRange(min = 1, max = 2) Integer> domains) {
    List<InvalidationRequest> requests = new ArrayList<>();
    for (int i = 0; i < firstPages.size(); i++) {
      requests.add(unmap(i + 1, domains.get(i), IOVA + firstPages.get(i) * PAGE,
          pageCounts.get(i) * PAGE, 0x200));
    }
    InvalidationBatch b = InvalidationBatch.merge(requests, FlushReason.FULL, 3);
    assertTrue(b.iotlb().size() + b.atc().size() <= 2 * requests.size());
    for (InvalidationRequest r : requests) {
      IotlbTarget t = r.iotlb().get(0);
      for (long a = t.first(); Long.compareUnsigned(a, t.last()) <= 0; a += PAGE) {
        assertTrue(b.coversIotlb(new IotlbPages(t.domainId(), ANY, a, 0, false)),
            () -> "page not covered in " + b);
        assertTrue(b.coversAtc(new DevTlb(0x200, NONE, a, 0)), () -> "ATC page not covered " + b);
      }
    }
  }
}
