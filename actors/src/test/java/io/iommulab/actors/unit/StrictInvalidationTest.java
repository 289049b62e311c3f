package io.iommulab.actors.unit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.InvalidateUser;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidated;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidation;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidationKind;
import io.iommulab.actors.unit.UnitHarness.Attached;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** Strict mode through the unit's invalidation stream: batching, merging, ordering, the oracle. */
class StrictInvalidationTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int GPU = 0x0200;
  private static final int NIC = 0x0100;
  private static final long IOVA = 0x10_0000L;
  private static final long PAGE = 4096;
  private static final int NONE = IommuUnitActor.NO_PASID;

  /** Every read of the fake wall clock moves it 1 µs: wall latencies are then counts of reads. */
  private final AtomicLong wall = new AtomicLong();
  private final UnitHarness h = new UnitHarness(testKit, Fixtures.vtd("vtd0"),
      InvalidationPipelineSettings.strict(), () -> wall.addAndGet(1_000));

  private static byte status(FaultReason reason) {
    return (byte) (reason.ordinal() + 1);
  }

  private void awaitAllQueued(int pending) {
    h.replies.awaitAssert(() -> {
      InvalidationStats s = h.invalidationStats();
      assertEquals(0, s.ingressDepth(), "the stream took every request");
      assertEquals(pending, s.pending());
      return null;
    });
  }

  @Test
  void concurrentUnmapsFromSeveralIssuersAreBatchedAndTheirAdjacentRangesMergedIntoOneDescriptor() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 128, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    // Cached translations inside and just outside the range about to be unmapped.
    h.burst(GPU, NONE, new long[] {IOVA + PAGE, IOVA + 63 * PAGE, IOVA + 64 * PAGE}, Access.READ,
        false);
    List<TestProbe<UnitReply>> issuers = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      issuers.add(testKit.createTestProbe());
    }
    h.unit.tell(UnmapRange.strict(d, IOVA, PAGE, issuers.get(0).getRef()));
    AtcInvalidate first = gpu.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA, first.address());
    assertEquals(0, first.sizeOrder());
    // 63 more, one page each, from four issuers, while the first batch waits for the GPU.
    for (int p = 1; p < 64; p++) {
      h.unit.tell(UnmapRange.strict(d, IOVA + p * PAGE, PAGE, issuers.get(p % 4).getRef()));
    }
    awaitAllQueued(64);
    UnitStats before = h.stats();
    h.unit.tell(new AtcInvalidationAcked(GPU, first.token()));
    assertEquals(PAGE, issuers.get(0).expectMessageClass(Unmapped.class).bytes());

    // The 63 adjacent pages went out as one batch: one ATC invalidation over pages 0x101..0x13f
    // widened to the aligned 64 pages at 0x100.
    AtcInvalidate merged = gpu.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA, merged.address());
    assertEquals(6, merged.sizeOrder());
    gpu.expectNoMessage(Duration.ofMillis(20));
    // IOTLB: one page-selective descriptor of the same span; the page after it is still cached.
    UnitStats during = h.stats();
    assertEquals(3, during.invalidationDescriptors() - before.invalidationDescriptors(),
        "IOTLB PSI + one device TLB + Wait");
    for (TestProbe<UnitReply> issuer : issuers) {
      issuer.expectNoMessage(Duration.ofMillis(10));
    }
    long hits = h.stats().iotlbHits();
    assertEquals(0, h.burst(GPU, NONE, new long[] {IOVA + 64 * PAGE}, Access.READ, false)
        .status()[0]);
    assertEquals(hits + 1, h.stats().iotlbHits(), "outside the merged span: still an IOTLB hit");

    h.unit.tell(new AtcInvalidationAcked(GPU, merged.token()));
    for (int i = 0; i < 4; i++) {
      int expected = i == 0 ? 15 : 16;
      for (int k = 0; k < expected; k++) {
        Unmapped u = issuers.get(i).expectMessageClass(Unmapped.class);
        assertEquals(PAGE, u.bytes());
        assertEquals(false, u.deferred());
      }
    }
    InvalidationStats s = h.invalidationStats();
    assertEquals(64, s.requests());
    assertEquals(2, s.batches(), "64 unmaps in 2 batches");
    assertEquals(64, s.largestBatch() + 1);
    assertEquals(128, s.rangesIn());
    assertEquals(4, s.rangesOut());
    assertEquals(6, s.descriptors());
    assertEquals(2, s.syncs());
    assertEquals(2, s.flushesStrict());
    assertEquals(64, s.completed());
    assertEquals(0, s.pending());
  }

  @Test
  void theIotlbIsDroppedBeforeDeviceTlbsAreAskedAndNoReplyComesBeforeEveryDeviceAcked() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 4, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    TestProbe<DeviceActor.Command> gpu2 = h.device(GPU + 1, 3, true);
    h.claim(GPU + 1, 5, 1, gpu2);
    h.attach(GPU + 1, NONE, d, null);
    h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, true);
    assertEquals(1, h.stats().iotlbSize());

    h.unit.tell(UnmapRange.strict(d, IOVA, 4 * PAGE, h.replies.getRef()));
    AtcInvalidate a = gpu.expectMessageClass(AtcInvalidate.class);
    AtcInvalidate b = gpu2.expectMessageClass(AtcInvalidate.class);
    // By the time a device is asked, the IOTLB entry is gone (IOTLB descriptors come first) and
    // the batch's Wait has not completed (the unmap is still pending, unanswered).
    UnitStats atAtc = h.stats();
    assertEquals(0, atAtc.iotlbSize());
    assertEquals(1, atAtc.pendingInvalidations());
    assertEquals(1, atAtc.syncs() - 0, "the Wait was issued after both device TLB descriptors");
    h.unit.tell(new AtcInvalidationAcked(GPU, a.token()));
    h.replies.expectNoMessage(Duration.ofMillis(30));
    h.unit.tell(new AtcInvalidationAcked(GPU + 1, b.token()));
    Unmapped u = h.replies.expectMessageClass(Unmapped.class);
    CostModel c = CostModel.defaults();
    assertTrue(u.modeledLatencyNs() >= 2 * c.atcInvalidationRoundTrip() + c.sync(),
        "modeled: two device TLB round trips and the sync, queued one after the other");
    InvalidationStats s = h.invalidationStats();
    assertEquals(1, s.completed());
    assertEquals(c.pteWrites(4) + s.modeledLatencySumNs(), u.modeledLatencyNs(),
        "the unmap's charge: clearing its four 4 KiB entries, then the invalidation");
    assertTrue(s.wallLatencySumNs() > 0, "the wall clock handed in was read at both ends");
  }

  @Test
  void aDetachAndAnUnmapInOneBatchInvalidateTheWholeDeviceTlbOnceAndBothAreAnswered() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 8, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    TestProbe<DeviceActor.Command> nic = h.device(NIC, 1, true);
    h.claim(NIC, 6, 1, nic);
    h.attach(NIC, NONE, d, null);
    // A first unmap holds the queue while the other two requests arrive.
    h.unit.tell(UnmapRange.strict(d, IOVA, PAGE, h.replies.getRef()));
    AtcInvalidate g0 = gpu.expectMessageClass(AtcInvalidate.class);
    AtcInvalidate n0 = nic.expectMessageClass(AtcInvalidate.class);
    TestProbe<UnitReply> detacher = testKit.createTestProbe();
    h.unit.tell(UnmapRange.strict(d, IOVA + PAGE, PAGE, h.replies.getRef()));
    h.unit.tell(new Detach(GPU, NONE, detacher.getRef()));
    awaitAllQueued(3);
    h.unit.tell(new AtcInvalidationAcked(GPU, g0.token()));
    h.unit.tell(new AtcInvalidationAcked(NIC, n0.token()));
    h.replies.expectMessageClass(Unmapped.class);
    // One batch: the GPU's ranges are subsumed by its whole-ATC flush; the NIC gets the range.
    AtcInvalidate gWhole = gpu.expectMessageClass(AtcInvalidate.class);
    assertTrue(gWhole.sizeOrder() >= 52);
    AtcInvalidate nRange = nic.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA + PAGE, nRange.address());
    assertEquals(0, nRange.sizeOrder());
    gpu.expectNoMessage(Duration.ofMillis(20));
    nic.expectNoMessage(Duration.ofMillis(1));
    h.unit.tell(new AtcInvalidationAcked(GPU, gWhole.token()));
    detacher.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(NIC, nRange.token()));
    detacher.expectMessage(IommuUnitActor.Done.INSTANCE);
    h.replies.expectMessageClass(Unmapped.class);
    assertEquals(2, h.invalidationStats().batches());
  }

  @Test
  void aDeviceAttachedAfterTheUnmapButBeforeItsBatchIsInvalidatedToo() {
    Attached attached = h.attachedDevice(GPU, 2, true, IOVA, 4, Access.READ_WRITE, null);
    TestProbe<DeviceActor.Command> gpu = attached.device();
    int d = attached.domain();
    TestProbe<DeviceActor.Command> late = h.device(NIC, 1, true);
    h.claim(NIC, 6, 1, late);
    h.unit.tell(UnmapRange.strict(d, IOVA, PAGE, h.replies.getRef()));
    AtcInvalidate g0 = gpu.expectMessageClass(AtcInvalidate.class);
    TestProbe<UnitReply> other = testKit.createTestProbe();
    // Queued behind the first batch; then a device attaches that could fill its ATC from the
    // IOTLB before that request's batch runs.
    h.unit.tell(UnmapRange.strict(d, IOVA + PAGE, PAGE, other.getRef()));
    h.attach(NIC, NONE, d, null);
    h.unit.tell(new AtcInvalidationAcked(GPU, g0.token()));
    AtcInvalidate forLate = late.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA + PAGE, forLate.address());
    AtcInvalidate g1 = gpu.expectMessageClass(AtcInvalidate.class);
    h.unit.tell(new AtcInvalidationAcked(GPU, g1.token()));
    other.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(NIC, forLate.token()));
    assertEquals(PAGE, other.expectMessageClass(Unmapped.class).bytes());
  }

  @Test
  void userInvalidationsGoThroughTheSameStreamAndWaitForTheDevice() {
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    int d = h.pagingDomain();
    h.unit.tell(new InvalidateUser(d, List.of(
        new UserInvalidation(UserInvalidationKind.ATC, 3, IOVA, 2, GPU, true),
        new UserInvalidation(UserInvalidationKind.ATC, 3, IOVA + 2 * PAGE, 2, GPU, true)),
        h.replies.getRef()));
    // Two adjacent user ATC entries: one device-TLB invalidation of the 4 pages.
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    assertEquals(IOVA, inv.address());
    assertEquals(2, inv.sizeOrder());
    gpu.expectNoMessage(Duration.ofMillis(20));
    h.replies.expectNoMessage(Duration.ofMillis(10));
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    UserInvalidated done = h.replies.expectMessageClass(UserInvalidated.class);
    assertEquals(2, done.handled());
    assertEquals(1, h.invalidationStats().requests());
  }

  /**
   * The oracle, with a real device (ATS, its ATC filled by earlier DMA): once an issuer has its
   * answer, neither the IOTLB nor the device's ATC serves the unmapped IOVA any more.
   */
  @Test
  void afterAnIssuersAnswerNoDmaOfThatIovaIsServedFromAStaleIotlbOrAtcEntry() {
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    ActorRef<DeviceActor.Command> gpu = testKit.spawn(DeviceActor.create(
        Fixtures.ats("gpu", "vtd0", "02:00.0", 2, false), 0, h.unit, h.memory, h.clock, 3));
    h.ok(new IommuUnitActor.RegisterDevice(GPU, -1, 2, 8, true, false, gpu, h.replies.getRef()));
    h.ask(new IommuUnitActor.ClaimDmaOwner(GPU, 5, 1, h.replies.getRef()),
        IommuUnitActor.DmaOwnerClaimed.class);
    int d = h.pagingDomain();
    int pages = 32;
    h.map(d, IOVA, vm.pageHpa(0), pages * PAGE, Access.READ_WRITE);
    h.attach(GPU, NONE, d, null);
    TestProbe<DeviceActor.DmaCompleted> dma = testKit.createTestProbe();
    long[] all = new long[pages];
    for (int p = 0; p < pages; p++) {
      all[p] = IOVA + p * PAGE;
    }
    // Fill the ATC (ATS) and the IOTLB, then check the ATC serves the pages.
    gpu.tell(burst(all, 1, dma));
    assertEquals(0, dma.receiveMessage().status()[0]);
    gpu.tell(burst(all, 2, dma));
    assertEquals(pages, dma.receiveMessage().atcHits());

    // Unmaps from several issuers, all in flight at once.
    List<TestProbe<UnitReply>> issuers = new ArrayList<>();
    for (int p = 0; p < pages; p++) {
      TestProbe<UnitReply> issuer = testKit.createTestProbe();
      issuers.add(issuer);
      h.unit.tell(UnmapRange.strict(d, all[p], PAGE, issuer.getRef()));
    }
    for (int p = 0; p < pages; p++) {
      issuers.get(p).expectMessageClass(Unmapped.class);
      gpu.tell(burst(new long[] {all[p]}, 100 + p, dma));
      DeviceActor.DmaCompleted c = dma.receiveMessage();
      assertEquals(0, c.atcHits(), "page " + p + " served from a stale ATC entry");
      assertNotEquals(DeviceActor.STATUS_OK, c.status()[0], "page " + p + " was served");
      BurstTranslated t = h.burst(GPU, NONE, new long[] {all[p]}, Access.READ, false);
      assertEquals(status(FaultReason.NOT_PRESENT), t.status()[0]);
    }
    assertTrue(h.invalidationStats().batches() < pages);
  }

  private static DeviceActor.DmaBurst burst(
      long[] iovas, long tag, TestProbe<DeviceActor.DmaCompleted> replyTo) {
    int[] lengths = new int[iovas.length];
    int[] access = new int[iovas.length];
    java.util.Arrays.fill(lengths, 64);
    java.util.Arrays.fill(access, Access.READ);
    return new DeviceActor.DmaBurst(NONE, iovas, lengths, access, tag, replyTo.getRef());
  }

  @Test
  void theOldFactoryRunsAStrictStream() {
    UnitHarness plain = new UnitHarness(testKit, Fixtures.vtd("vtd1"));
    assertEquals(Mode.STRICT, plain.invalidationStats().mode());
    assertEquals(1024, plain.invalidationStats().ingressCapacity());
  }
}
