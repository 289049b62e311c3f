package io.iommulab.actors.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.iommulab.actors.pipeline.InvalidationRequest.AtcTarget;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.Iotlb;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * The array-based merge issues exactly what the object-per-range reference merge issued: the same
 * descriptors in the same order, the same rescan targets and counts, for random batches mixing
 * domains, PASID selectors, whole-space and neighbouring ranges, device TLBs and pass-through
 * descriptors.
 */
class MergeEquivalenceTest {
  private static final long PAGE = 4096;
  private static final int[] PASIDS = {Iotlb.ANY_PASID, -1, 0, 5};

  @Property(tries = 400)
  void theArrayMergeEqualsTheReferenceMerge(
      @ForAll long seed, @ForAll @IntRange(min = 1, max = 80) int requests,
      @ForAll @IntRange(min = 0, max = 20) int maxMask) {
    SplittableRandom rnd = new SplittableRandom(seed);
    List<InvalidationRequest> batch = new ArrayList<>();
    for (int i = 0; i < requests; i++) {
      batch.add(request(rnd, i + 1));
    }
    InvalidationBatch fast = InvalidationBatch.merge(batch, FlushReason.FULL, maxMask);
    InvalidationBatch reference = ReferenceMerge.merge(batch, FlushReason.FULL, maxMask);
    assertEquals(reference, fast);
    assertEquals(reference.fixed(), fast.fixed());
    assertEquals(reference.rescan(), fast.rescan());
  }

  private static InvalidationRequest request(SplittableRandom rnd, long id) {
    List<IotlbTarget> iotlb = new ArrayList<>();
    List<AtcTarget> atc = new ArrayList<>();
    List<InvDescriptor> fixed = new ArrayList<>();
    int targets = rnd.nextInt(4);
    for (int k = 0; k < targets; k++) {
      long[] r = range(rnd);
      iotlb.add(new IotlbTarget(1 + rnd.nextInt(4), PASIDS[rnd.nextInt(PASIDS.length)], r[0], r[1],
          rnd.nextBoolean(), rnd.nextBoolean()));
    }
    int atcs = rnd.nextInt(3);
    for (int k = 0; k < atcs; k++) {
      long[] r = range(rnd);
      atc.add(new AtcTarget(0x200 + rnd.nextInt(3), rnd.nextInt(3) - 1, r[0], r[1]));
    }
    if (rnd.nextInt(10) == 0) {
      fixed.add(new InvDescriptor.ContextCache(0x200 + rnd.nextInt(2)));
    }
    if (rnd.nextInt(10) == 0) {
      fixed.add(new InvDescriptor.PasidCache(1 + rnd.nextInt(4), rnd.nextInt(2)));
    }
    if (rnd.nextInt(40) == 0) {
      fixed.add(new InvDescriptor.IotlbGlobal());
    }
    return new InvalidationRequest(id, rnd.nextBoolean(), iotlb, atc, fixed);
  }

  /** Mostly small ranges among a few pages (so they touch and overlap), some whole-space ones. */
  private static long[] range(SplittableRandom rnd) {
    if (rnd.nextInt(15) == 0) {
      return new long[] {0, -1L};
    }
    long first = rnd.nextInt(64) * PAGE;
    long last = first + (1 + rnd.nextInt(6)) * PAGE - 1;
    if (rnd.nextInt(20) == 0) {
      first = -PAGE * (1 + rnd.nextInt(4));
      last = -1L;
    }
    return new long[] {first, last};
  }
}
