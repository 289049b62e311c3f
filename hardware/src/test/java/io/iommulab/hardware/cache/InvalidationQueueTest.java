package io.iommulab.hardware.cache;

import static io.iommulab.hardware.fault.FaultRecord.NO_PASID;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.CostModelSettings;
import io.iommulab.config.IotlbSettings;
import io.iommulab.config.IotlbSettings.Eviction;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.InvDescriptor.ContextCache;
import io.iommulab.hardware.cache.InvDescriptor.DevTlb;
import io.iommulab.hardware.cache.InvDescriptor.IotlbDomain;
import io.iommulab.hardware.cache.InvDescriptor.IotlbGlobal;
import io.iommulab.hardware.cache.InvDescriptor.IotlbPages;
import io.iommulab.hardware.cache.InvDescriptor.IotlbPasid;
import io.iommulab.hardware.cache.InvDescriptor.PasidCache;
import io.iommulab.hardware.cache.InvDescriptor.Wait;
import io.iommulab.hardware.cache.InvalidationQueue.Kind;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.iommu.Translation;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class InvalidationQueueTest {
  /** Distinct powers of ten so every sum names its terms: descriptor 10, sync 1000, ATC 100. */
  static final CostModel COST =
      new CostModel(new CostModelSettings(5, 25, 3, 400, 10, 1_000, 100, 2_000, 300, 10, 8));

  final Iotlb iotlb = new Iotlb(new IotlbSettings(16, 4, Eviction.LRU), 1);
  final List<DevTlb> sent = new ArrayList<>();
  final AtcSink sink = sent::add;

  static boolean hits(Iotlb t, int did, int pasid, long iova) {
    return t.lookup(did, pasid, iova, new Translation().reset());
  }

  @Test
  void aBatchLargerThanTheFreeSlotsIsRefusedWithEnospcAndQueuesNothing() {
    InvalidationQueue q = new InvalidationQueue(4, COST);
    assertTrue(q.submit(List.of(new IotlbDomain(1), new IotlbDomain(2), new Wait(1))).isOk());
    List<InvDescriptor> before = q.pendingDescriptors();
    Outcome<Void> r = q.submit(List.of(new IotlbDomain(3), new Wait(2)));
    assertEquals(Errno.ENOSPC, r.errnoOrNull());
    assertEquals(3, q.pending());
    assertEquals(before, q.pendingDescriptors());
    assertTrue(q.submit(List.of(new Wait(3))).isOk(), "the last free slot is still usable");
    assertEquals(4, q.pending());
  }

  @Test
  void aMisalignedPageDescriptorIsRefusedWithEinvalNamingItsIndexAndQueuesNothing() {
    InvalidationQueue q = new InvalidationQueue(16, COST);
    q.submit(List.of(new IotlbDomain(9)));
    List<InvDescriptor> before = q.pendingDescriptors();
    Outcome<Void> r =
        q.submit(List.of(new IotlbDomain(1), new IotlbPages(1, NO_PASID, 0x3000, 1, false), new Wait(1)));
    assertEquals(Errno.EINVAL, r.errnoOrNull());
    assertTrue(r.toString().contains("descriptor 1"), r.toString());
    assertTrue(r.toString().contains("not aligned"), r.toString());
    assertEquals(before, q.pendingDescriptors());
    assertEquals(1, q.pending());
  }

  @Test
  void malformedDescriptorsOfEveryKindAreRefusedWithEinvalAndQueueNothing() {
    InvalidationQueue q = new InvalidationQueue(16, 9, COST);
    List<InvDescriptor> bad =
        List.of(
            new IotlbPages(1, NO_PASID, 0, 10, false),
            new IotlbPages(1, NO_PASID, 0, -1, false),
            new IotlbPages(-1, NO_PASID, 0, 0, false),
            new IotlbPages(1, -3, 0, 0, false),
            new IotlbDomain(-1),
            new IotlbPasid(1, Iotlb.ANY_PASID),
            new IotlbPasid(1, 1 << 20),
            new DevTlb(-1, NO_PASID, 0, 0),
            new DevTlb(0x10000, NO_PASID, 0, 0),
            new DevTlb(1, NO_PASID, 0x800, 0),
            new DevTlb(1, NO_PASID, 0, 53),
            new DevTlb(1, Iotlb.ANY_PASID, 0, 0),
            new ContextCache(-5),
            new PasidCache(-1, 0),
            new PasidCache(1, -7));
    for (InvDescriptor d : bad) {
      Outcome<Void> r = q.submit(List.of(new Wait(1), d));
      assertEquals(Errno.EINVAL, r.errnoOrNull(), d.toString());
      assertTrue(r.toString().contains("descriptor 1"), r.toString());
      assertEquals(0, q.pending(), d.toString());
    }
  }

  @Test
  void aBatchThatIsBothMalformedAndTooLargeGetsEinval() {
    InvalidationQueue q = new InvalidationQueue(2, COST);
    Outcome<Void> r = q.submit(List.of(new Wait(1), new Wait(2), new IotlbDomain(-1)));
    assertEquals(Errno.EINVAL, r.errnoOrNull());
    assertEquals(0, q.pending());
  }

  @Test
  void processAppliesIotlbDescriptorsHandsDevTlbsToTheSinkAndCompletesWaitsInOrder() {
    iotlb.insert(1, NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    iotlb.insert(1, NO_PASID, 0x9000, 0x9000, PageSize.SIZE_4K, Access.READ);
    iotlb.insert(2, 5, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    InvalidationQueue q = new InvalidationQueue(16, COST);
    DevTlb atc = new DevTlb(0x100, NO_PASID, 0x1000, 0);
    q.submit(List.of(new IotlbPages(1, NO_PASID, 0x1000, 0, true), atc, new Wait(7)));
    q.submit(List.of(new IotlbPasid(2, 5), new Wait(8)));
    List<SyncCompletion> done = q.process(0, iotlb, sink);
    assertEquals(List.of(7L, 8L), done.stream().map(SyncCompletion::token).toList());
    assertEquals(3, done.get(0).descriptors());
    assertEquals(5, done.get(1).descriptors());
    assertFalse(hits(iotlb, 1, NO_PASID, 0x1000));
    assertTrue(hits(iotlb, 1, NO_PASID, 0x9000));
    assertFalse(hits(iotlb, 2, 5, 0x1000));
    assertEquals(List.of(atc), sent);
    assertEquals(0, q.pending());
    assertEquals(List.of(), q.process(0, iotlb, sink), "nothing pending, nothing completes");
  }

  @Test
  void theIotlbIsAlreadyInvalidatedWhenTheDevTlbReachesTheSink() {
    iotlb.insert(1, NO_PASID, 0x4000, 0x4000, PageSize.SIZE_4K, Access.READ);
    List<Boolean> iotlbHitWhenAtcInvalidated = new ArrayList<>();
    AtcSink probe = d -> iotlbHitWhenAtcInvalidated.add(hits(iotlb, 1, NO_PASID, 0x4000));
    InvalidationQueue q = new InvalidationQueue(16, COST);
    q.submit(
        InvalidationPlan.range(
            1, NO_PASID, 0x4000, 0x1000, 9, List.of(new InvalidationPlan.AtsRequester(3, -1)), 1));
    q.process(0, iotlb, probe);
    assertEquals(List.of(false), iotlbHitWhenAtcInvalidated);
  }

  @Test
  void stepStopsAtTheNextWaitAndLeavesEverythingAfterItPending() {
    iotlb.insert(1, NO_PASID, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    iotlb.insert(1, NO_PASID, 0x2000, 0x2000, PageSize.SIZE_4K, Access.READ);
    InvalidationQueue q = new InvalidationQueue(16, COST);
    DevTlb second = new DevTlb(4, NO_PASID, 0x2000, 0);
    q.submit(
        List.of(
            new IotlbPages(1, NO_PASID, 0x1000, 0, false),
            new Wait(1),
            new IotlbPages(1, NO_PASID, 0x2000, 0, false),
            second,
            new Wait(2)));
    Optional<SyncCompletion> first = q.step(0, iotlb, sink);
    assertEquals(1, first.orElseThrow().token());
    assertEquals(2, first.orElseThrow().descriptors());
    assertFalse(hits(iotlb, 1, NO_PASID, 0x1000));
    assertTrue(hits(iotlb, 1, NO_PASID, 0x2000), "after the wait: not yet applied");
    assertEquals(List.of(), sent);
    assertEquals(3, q.pending());
    assertEquals(2, q.step(0, iotlb, sink).orElseThrow().token());
    assertFalse(hits(iotlb, 1, NO_PASID, 0x2000));
    assertEquals(List.of(second), sent);
    q.submit(List.of(new IotlbGlobal()));
    assertEquals(Optional.empty(), q.step(0, iotlb, sink));
    assertEquals(0, q.pending());
    assertEquals(0, iotlb.size());
  }

  @Test
  void aWaitCompletesWhenTheQueueHasServedEverythingBeforeIt() {
    InvalidationQueue q = new InvalidationQueue(16, COST);
    q.submit(List.of(new IotlbPages(1, NO_PASID, 0, 0, false), new DevTlb(1, NO_PASID, 0, 0), new Wait(1)));
    // pages 10, devtlb 10 + 100, wait 10 + 1000
    assertEquals(
        List.of(new SyncCompletion(1, 5_000 + 1_130, 3)), q.process(5_000, iotlb, sink));
    assertEquals(1_130, q.busyNs());
    assertEquals(6_130, q.busyUntil());
  }

  @Test
  void aLaterSubmissionQueuesBehindABusyQueue() {
    InvalidationQueue q = new InvalidationQueue(16, COST);
    q.submit(List.of(new DevTlb(1, NO_PASID, 0, 0), new Wait(1)));
    assertEquals(1_120, q.process(0, iotlb, sink).get(0).completedAtNs());
    q.submit(List.of(new IotlbDomain(1), new Wait(2)));
    // Arrives at 500 while the queue is busy until 1120: starts then.
    assertEquals(1_120 + 1_020, q.process(500, iotlb, sink).get(0).completedAtNs());
    // Per descriptor: the first wait waited 110 behind its DevTlb; then 620 and 630.
    assertEquals(110 + 620 + 630, q.totalQueueingNs());
    assertEquals(630, q.maxQueueingNs());
    q.submit(List.of(new Wait(3)));
    // Arrives after the queue went idle: no queueing.
    assertEquals(10_000 + 1_010, q.process(10_000, iotlb, sink).get(0).completedAtNs());
  }

  @Test
  void waitsInOneProcessCallCompleteOneAfterAnother() {
    InvalidationQueue q = new InvalidationQueue(16, COST);
    q.submit(List.of(new Wait(1), new IotlbDomain(1), new Wait(2)));
    List<SyncCompletion> done = q.process(0, iotlb, sink);
    assertEquals(1_010, done.get(0).completedAtNs());
    assertEquals(1_010 + 10 + 1_010, done.get(1).completedAtNs());
  }

  @Test
  void contextAndPasidCacheDescriptorsAreAcceptedAndDropNothingFromTheIotlb() {
    iotlb.insert(1, 3, 0x1000, 0x1000, PageSize.SIZE_4K, Access.READ);
    InvalidationQueue q = new InvalidationQueue(16, COST);
    q.submit(List.of(new ContextCache(0x100), new PasidCache(1, 3), new Wait(1)));
    assertEquals(1, q.process(0, iotlb, sink).size());
    assertTrue(hits(iotlb, 1, 3, 0x1000));
    assertEquals(1, q.processed(Kind.CONTEXT_CACHE));
    assertEquals(1, q.processed(Kind.PASID_CACHE));
  }

  @Test
  void countersTrackKindsSyncsAndTheHighWaterMark() {
    InvalidationQueue q = new InvalidationQueue(8, COST);
    q.submit(List.of(new IotlbGlobal(), new IotlbDomain(1), new IotlbPasid(1, 2)));
    q.submit(List.of(new IotlbPages(1, Iotlb.ANY_PASID, 0, 3, false), new DevTlb(1, 2, 0, 3), new Wait(1)));
    assertEquals(6, q.pendingHighWater());
    q.process(0, iotlb, sink);
    q.submit(List.of(new Wait(2)));
    q.process(0, iotlb, sink);
    for (Kind k : List.of(Kind.IOTLB_GLOBAL, Kind.IOTLB_DOMAIN, Kind.IOTLB_PASID, Kind.IOTLB_PAGES, Kind.DEV_TLB)) {
      assertEquals(1, q.processed(k), k.toString());
    }
    assertEquals(2, q.syncs());
    assertEquals(7, q.processedTotal());
    assertEquals(6, q.pendingHighWater());
    assertEquals(7 * 10 + 100 + 2 * 1_000, q.busyNs());
  }

  @Test
  void theRingWrapsAroundWithoutLosingOrder() {
    InvalidationQueue q = new InvalidationQueue(3, COST);
    List<Long> tokens = new ArrayList<>();
    for (long t = 0; t < 20; t += 2) {
      assertTrue(q.submit(List.of(new Wait(t), new Wait(t + 1))).isOk());
      q.process(0, iotlb, sink).forEach(c -> tokens.add(c.token()));
    }
    for (int i = 0; i < 20; i++) {
      assertEquals(i, tokens.get(i));
    }
  }

  @Test
  void theDefaultQueueAcceptsMasksUpTo63AndBadConstructionIsABug() {
    InvalidationQueue q = new InvalidationQueue(InvalidationQueue.VTD_DEPTH, COST);
    assertEquals(63, q.maxAddressMask());
    assertEquals(256, q.depth());
    assertTrue(q.submit(List.of(new IotlbPages(1, NO_PASID, 0, 63, false))).isOk());
    iotlb.insert(1, NO_PASID, -4096L, 0, PageSize.SIZE_4K, Access.READ);
    q.process(0, iotlb, sink);
    assertEquals(0, iotlb.size());
    assertThrows(IllegalArgumentException.class, () -> new InvalidationQueue(0, COST));
    assertThrows(IllegalArgumentException.class, () -> new InvalidationQueue(4, 64, COST));
  }

  @Test
  void aPlanRunThroughTheQueueLeavesNeitherTheIotlbNorTheDeviceAtcHoldingTheRange() {
    DeviceAtc atc = new DeviceAtc(64, 1);
    iotlb.insert(1, NO_PASID, 0x20_0000, 0x40_0000, PageSize.SIZE_2M, Access.READ);
    atc.insert(NO_PASID, 0x20_0000, 0x40_0000, PageSize.SIZE_2M, Access.READ);
    // [0x203000, 0x204fff] widens to [0x200000, 0x207fff]: 0x205000 is inside, 0x208000 not.
    atc.insert(4, 0x20_5000, 0x41_0000, PageSize.SIZE_4K, Access.READ);
    atc.insert(4, 0x20_8000, 0x41_0000, PageSize.SIZE_4K, Access.READ);
    InvalidationQueue q = new InvalidationQueue(16, 9, COST);
    q.submit(
        InvalidationPlan.range(
            1, Iotlb.ANY_PASID, 0x20_3000, 0x2000, 9,
            List.of(new InvalidationPlan.AtsRequester(0x100, NO_PASID)), 1));
    q.process(0, iotlb, AtcSink.forDevice(atc));
    assertEquals(0, iotlb.size());
    assertFalse(atc.lookup(NO_PASID, 0x20_0000, new Translation().reset()));
    assertFalse(atc.lookup(4, 0x20_5000, new Translation().reset()), "no-PASID ATC_INV wipes it");
    assertTrue(atc.lookup(4, 0x20_8000, new Translation().reset()), "outside the widened span");
  }
}
