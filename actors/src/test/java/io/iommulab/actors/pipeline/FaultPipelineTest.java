package io.iommulab.actors.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FaultQueueHeader;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.pipeline.PipelineHarness.DeviceLog;
import io.iommulab.actors.pipeline.PipelineHarness.Fd;
import io.iommulab.actors.unit.IommuUnitActor.FaultPipelineStats;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.UapiSettings;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The fault pipeline end to end: a real unit publishes page requests (the test plays the PRI
 * devices), its stream delivers them to real fds, whose FAULT queues the test reads. Checks
 * per-device order, conservation (published = delivered + lost, exactly), bounded memory under a
 * storm, and detach during a storm.
 */
class FaultPipelineTest {

  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final FaultPipelineSettings DEFAULTS = FaultPipelineSettings.defaults();

  /** Everything read from one FAULT queue, and the loss its sequences show. */
  static final class Drained {
    final Map<Integer, List<Long>> addressesByDev = new HashMap<>();
    long records;
    long groups;
    long lostBySequence;
    int prevSequence = -1;
    final List<HwptPageResponse> toAnswer = new ArrayList<>();

    /** Takes one read; {@code answer}: remember the cookies to answer. */
    void take(IoasidFdActor.FaultRecords r, boolean answer) {
      for (HwptPgfault f : r.records()) {
        addressesByDev.computeIfAbsent(f.devId(), k -> new ArrayList<>()).add(f.addr());
      }
      records += r.records().size();
      for (FaultQueueHeader h : r.headers()) {
        int delta = (h.sequence() - prevSequence) & Uapi.VEVENTQ_SEQUENCE_MASK;
        if (h.lostEvents()) {
          lostBySequence += delta;
        } else {
          lostBySequence += delta - 1;
          groups++;
          if (answer) {
            toAnswer.add(new HwptPageResponse(h.cookie(), Uapi.PAGE_RESP_SUCCESS));
          }
        }
        prevSequence = h.sequence();
      }
    }
  }

  /** Reads the queue until it is empty. */
  static Drained drain(Fd fd) {
    Drained d = new Drained();
    while (true) {
      IoasidFdActor.FaultRecords r = fd.read(1 << 14);
      if (r.records().isEmpty() && r.headers().isEmpty()) {
        return d;
      }
      d.take(r, false);
    }
  }

  static void await(String what, BooleanSupplier condition) {
    long deadline = System.nanoTime() + PipelineHarness.WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.onSpinWait();
    }
  }

  /** Sends, per device and in order, {@code perDevice} requests in groups of two. */
  static Thread sender(PipelineHarness h, List<Integer> rids, int perDevice, boolean pairs) {
    Thread t = new Thread(() -> {
      for (int k = 0; k < perDevice; k++) {
        for (int rid : rids) {
          int group = (pairs ? k / 2 : k) % 512;
          boolean last = !pairs || k % 2 == 1;
          h.pageRequest(rid, group, (long) k << 12, last);
        }
      }
    }, "device-sender");
    t.setDaemon(true);
    return t;
  }

  @Test
  void everyDevicesRequestsReachItsFaultQueueInOrderWhileManyDevicesFaultAtOnce() throws Exception {
    PipelineHarness h = new PipelineHarness(testKit, Fixtures.vtd("vtd0"),
        DEFAULTS.withIngress(1 << 16, 1 << 16).withBatchSize(64),
        UapiSettings.defaults().withFaultQueueDepth(1 << 18));
    List<Integer> first = new ArrayList<>();
    List<Integer> second = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      first.add(0x100 + i);
      second.add(0x200 + i);
    }
    Fd a = h.fd(1, first);
    Fd b = h.fd(2, second);
    int perDevice = 2000;
    List<Thread> senders = List.of(
        sender(h, first.subList(0, 4), perDevice, true),
        sender(h, first.subList(4, 8), perDevice, true),
        sender(h, second.subList(0, 4), perDevice, true),
        sender(h, second.subList(4, 8), perDevice, true));
    senders.forEach(Thread::start);
    for (Thread t : senders) {
      t.join();
    }
    FaultPipelineStats s = h.settled(16L * perDevice);
    assertEquals(0, s.lost(), s::toString);
    assertEquals(16L * perDevice, s.delivered());
    assertTrue(s.batches() < 16L * perDevice, "records were batched: " + s);
    for (Fd fd : List.of(a, b)) {
      Drained d = drain(fd);
      assertEquals(8L * perDevice, d.records);
      assertEquals(0, d.lostBySequence);
      assertEquals(8, d.addressesByDev.size());
      for (Map.Entry<Integer, List<Long>> e : d.addressesByDev.entrySet()) {
        List<Long> addrs = e.getValue();
        assertEquals(perDevice, addrs.size(), "dev " + e.getKey());
        for (int k = 0; k < perDevice; k++) {
          assertEquals((long) k << 12, addrs.get(k), "dev " + e.getKey() + " record " + k);
        }
      }
      IoasidFdActor.FaultStats fs = fd.faultStats();
      assertEquals(8L * perDevice, fs.pageRequestsQueued());
      assertEquals(0, fs.lost());
    }
  }

  @Test
  void publishedEqualsDeliveredPlusLostExactlyWhenIngressAndQueuesOverflow() throws Exception {
    PipelineHarness h = new PipelineHarness(testKit, Fixtures.vtd("vtd0"),
        DEFAULTS.withIngress(128, 128).withBatchSize(32),
        UapiSettings.defaults().withFaultQueueDepth(64));
    Fd a = h.fd(1, List.of(0x100, 0x101, 0x102, 0x103));
    Fd b = h.fd(2, List.of(0x200, 0x201, 0x202, 0x203));
    int perDevice = 20_000;
    List<Thread> senders = List.of(
        sender(h, List.of(0x100, 0x101, 0x200, 0x201), perDevice, true),
        sender(h, List.of(0x102, 0x103, 0x202, 0x203), perDevice, true));
    senders.forEach(Thread::start);
    for (Thread t : senders) {
      t.join();
    }
    long published = 8L * perDevice;
    FaultPipelineStats s = h.settled(published);
    assertTrue(s.lostIngressPageRequests() > 0, "the ingress overflowed: " + s);
    assertTrue(s.lostQueueFull() > 0, "the FAULT queues overflowed: " + s);
    assertEquals(0, s.lostHandleGone());
    assertEquals(0, s.lostUnacknowledged());
    assertEquals(published, s.delivered() + s.lost());

    long delivered = 0;
    long lostAtQueues = 0;
    for (Fd fd : List.of(a, b)) {
      IoasidFdActor.FaultStats fs = fd.faultStats();
      delivered += fs.delivered();
      lostAtQueues += fs.lost();
      long held = fs.pageRequestsHeld();
      Drained d = drain(fd);
      // What the reader sees: every queued request is read, still partial, or was discarded
      // with its group; every request the queue lost shows in the sequences.
      assertEquals(fs.pageRequestsQueued(), d.records + fs.partialsDiscarded()
          + fd.faultStats().pageRequestsHeld(), fs::toString);
      assertTrue(held <= 64, "held " + held + " > depth");
      assertEquals(fs.pageRequestsLostQueueFull(), d.lostBySequence, fs::toString);
    }
    assertEquals(s.delivered(), delivered);
    assertEquals(s.lostQueueFull(), lostAtQueues);
    // Lost last pages were answered by the unit, so no device waits forever.
    long answered = 0;
    for (DeviceLog dev : h.devices.values()) {
      answered += dev.success.get();
    }
    assertEquals(s.ingressLastPagesAnswered(), answered);
  }

  // ---------------------------------------------------------------- storm: a slow reader

  private sealed interface ReaderMsg {}

  private enum Tick implements ReaderMsg { INSTANCE }

  private record Answered(IoasidFdActor.Reply reply) implements ReaderMsg {}

  private record Totals(long records, long lostBySequence) {}

  private record Finish(ActorRef<Totals> replyTo) implements ReaderMsg {}

  /** Reads {@code perTick} records every {@code tick} and answers them SUCCESS; drains at Finish. */
  static Behavior<ReaderMsg> reader(Fd fd, int perTick, Duration tick) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
      timers.startTimerAtFixedRate(Tick.INSTANCE, tick);
      ActorRef<IoasidFdActor.Reply> self = ctx.messageAdapter(IoasidFdActor.Reply.class, Answered::new);
      Drained d = new Drained();
      ActorRef<?>[] finishing = {null};
      return Behaviors.receive(ReaderMsg.class)
          .onMessage(Tick.class, t -> {
            if (finishing[0] == null) {
              fd.ref.tell(new IoasidFdActor.FaultRead(fd.faultId, perTick * Uapi.HWPT_PGFAULT_LEN, self));
            }
            return Behaviors.same();
          })
          .onMessage(Finish.class, f -> {
            timers.cancelAll();
            finishing[0] = f.replyTo();
            fd.ref.tell(new IoasidFdActor.FaultRead(fd.faultId, (1 << 14) * Uapi.HWPT_PGFAULT_LEN, self));
            return Behaviors.same();
          })
          .onMessage(Answered.class, a -> {
            if (!(a.reply() instanceof IoasidFdActor.FaultRecords r)) {
              return Behaviors.same();
            }
            d.take(r, true);
            if (!d.toAnswer.isEmpty()) {
              fd.ref.tell(new IoasidFdActor.FaultWrite(fd.faultId, List.copyOf(d.toAnswer), self));
              d.toAnswer.clear();
            }
            if (finishing[0] != null) {
              if (r.records().isEmpty() && r.headers().isEmpty()) {
                @SuppressWarnings("unchecked")
                ActorRef<Totals> to = (ActorRef<Totals>) finishing[0];
                to.tell(new Totals(d.records, d.lostBySequence));
              } else {
                fd.ref.tell(new IoasidFdActor.FaultRead(fd.faultId, (1 << 14) * Uapi.HWPT_PGFAULT_LEN, self));
              }
            }
            return Behaviors.same();
          })
          .build();
    }));
  }

  static long usedHeapAfterGc() {
    for (int i = 0; i < 3; i++) {
      System.gc();
    }
    return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
  }

  @Test
  void aStormTenTimesTheReadersRateKeepsMemoryBoundedAndItsLossExact() throws Exception {
    int depth = 256;
    PipelineHarness h = new PipelineHarness(testKit, Fixtures.vtd("vtd0"),
        DEFAULTS.withIngress(1024, 1024),
        UapiSettings.defaults().withFaultQueueDepth(depth));
    List<Integer> rids = List.of(0x100, 0x101, 0x102, 0x103);
    Fd fd = h.fd(1, rids);
    int perTick = 64;
    Duration tick = Duration.ofMillis(5);
    double readerRate = perTick * 1e9 / tick.toNanos();
    ActorRef<ReaderMsg> reader = testKit.spawn(reader(fd, perTick, tick));

    long before = usedHeapAfterGc();
    int perDevice = 150_000;
    long published = (long) perDevice * rids.size();
    long start = System.nanoTime();
    Thread t = sender(h, rids, perDevice, false);
    t.start();
    t.join();
    FaultPipelineStats s = h.settled(published);
    double stormRate = published * 1e9 / (System.nanoTime() - start);
    long after = usedHeapAfterGc();

    assertTrue(stormRate >= 10 * readerRate,
        String.format("storm %.0f/s is not ten times the reader's %.0f/s", stormRate, readerRate));
    // Bounded by construction: ingress 2 x 1024, 16 batches of 256, a FAULT of 256. An unbounded
    // queue would hold the 600,000 records (over 100 MB with groups and wrappers).
    long grown = after - before;
    assertTrue(grown < 24L << 20, "heap grew " + (grown >> 20) + " MiB during the storm");
    IoasidFdActor.FaultStats mid = fd.faultStats();
    assertTrue(mid.pageRequestsHeld() <= depth, mid::toString);

    TestProbeTotals totals = new TestProbeTotals();
    reader.tell(new Finish(totals.probe.getRef()));
    Totals read = totals.probe.receiveMessage(PipelineHarness.WAIT);
    IoasidFdActor.FaultStats fs = fd.faultStats();
    assertEquals(0, fs.pageRequestsHeld());
    assertTrue(s.lost() > published / 2, "most of the storm was lost: " + s);
    // Exact: every record published was read by the reader or counted lost, and the reader's own
    // count of the queue's loss (from sequences) is the queue's.
    assertEquals(published, read.records() + s.lost(), s + " / " + fs);
    assertEquals(fs.pageRequestsLostQueueFull(), read.lostBySequence());
    assertEquals(s.lostQueueFull(), fs.lost());
  }

  /** A probe for the reader's totals. */
  private static final class TestProbeTotals {
    final org.apache.pekko.actor.testkit.typed.javadsl.TestProbe<Totals> probe =
        testKit.createTestProbe();
  }

  // ---------------------------------------------------------------- detach during a storm

  @Test
  void detachDuringAPageRequestStormAnswersPendingGroupsInvalidAndDeliversNothingAfter()
      throws Exception {
    PipelineHarness h = new PipelineHarness(testKit, Fixtures.vtd("vtd0"),
        DEFAULTS.withIngress(1 << 20, 1 << 20).withBatchSize(32),
        UapiSettings.defaults().withFaultQueueDepth(1 << 18));
    DeviceLog victim = h.device(0x100, true);
    Fd fd = h.fd(1, List.of(0x100));
    Fd other = h.fd(2, List.of(0x200, 0x201));
    int perDevice = 100_000;
    Thread storm = sender(h, List.of(0x200, 0x201), perDevice, false);
    // The victim uses each of its 512 PRG indexes once (PRI allows no reuse before a response):
    // groups of four pages, the last one closing the group.
    int groups = 512;
    Thread victimSender = new Thread(() -> {
      for (int g = 0; g < groups; g++) {
        for (int p = 0; p < 4; p++) {
          h.pageRequest(0x100, g, ((long) g << 14) + ((long) p << 12), p == 3);
        }
      }
    }, "victim");
    storm.start();
    victimSender.start();
    await("the victim's records reaching its fd", () -> fd.faultStats().pageRequestsQueued() > 100);

    fd.ask(new IoasidFdActor.DeviceDetach(fd.devIds.get(0), fd.replies.getRef()),
        IoasidFdActor.Done.class);
    long queuedAtDetach = fd.faultStats().pageRequestsQueued();
    victimSender.join();
    storm.join();

    await("every group of the victim answered", () -> victim.responded() >= groups);
    FaultPipelineStats s = h.settled(h.faultStats().published());
    // Exactly one answer per group, INVALID: pending ones at the detach, later ones for want of
    // a handler; the fd's own INVALIDs for them arrive stale and are dropped by the unit.
    assertEquals(groups, victim.responses.size());
    Set<Integer> answered = new HashSet<>();
    for (var r : victim.responses) {
      assertEquals(io.iommulab.actors.unit.IommuUnitActor.PageResponseCode.INVALID, r.code());
      assertTrue(answered.add(r.groupId()), "group " + r.groupId() + " answered twice");
    }
    IoasidFdActor.FaultStats fs = fd.faultStats();
    assertEquals(queuedAtDetach, fs.pageRequestsQueued(), "nothing delivered after the detach");
    assertEquals(0, fs.pageRequestsHeld());
    assertEquals(0, drain(fd).records, "the detached handle's groups were withdrawn");
    // The other fd's devices went on faulting, undisturbed and in order.
    assertEquals(2L * perDevice, other.faultStats().pageRequestsQueued());
    assertEquals(0, s.lostIngressPageRequests() + s.lostQueueFull());
    assertEquals(s.published(), s.delivered() + s.lostHandleGone());
    for (List<Long> addrs : drain(other).addressesByDev.values()) {
      assertEquals(perDevice, addrs.size());
    }
  }

  // ---------------------------------------------------------------- replace to a new owner

  @Test
  void recordsOfAReplacedHandleStillInFlightNeverReachTheNewOwner() throws Exception {
    PipelineHarness h = new PipelineHarness(testKit, Fixtures.vtd("vtd0"),
        DEFAULTS.withIngress(1 << 20, 1 << 20).withBatchSize(16),
        UapiSettings.defaults().withFaultQueueDepth(1 << 18));
    DeviceLog dev = h.device(0x100, true);
    Fd fd = h.fd(1, List.of(0x100));
    var replies = fd.replies.getRef();
    int newFault = fd.ask(new IoasidFdActor.FaultQueueAlloc(0, replies),
        IoasidFdActor.FaultQueueAllocated.class).outFaultId();
    int newHwpt = fd.ask(new IoasidFdActor.HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID,
        fd.devIds.get(0), fd.ioasId, Uapi.HWPT_DATA_NONE, 0, newFault, replies),
        IoasidFdActor.HwptAllocated.class).outHwptId();
    int groups = 512;
    long phase2 = 1L << 40;
    // Phase 1: every PRG index once, four pages a group, sent before the replace: the unit
    // publishes all of them under the old handle, many still in the pipeline when it switches.
    for (int g = 0; g < groups; g++) {
      for (int p = 0; p < 4; p++) {
        h.pageRequest(0x100, g, ((long) g << 14) + ((long) p << 12), p == 3);
      }
    }
    fd.ask(new IoasidFdActor.DeviceReplace(fd.devIds.get(0), newHwpt, replies),
        IoasidFdActor.DeviceAttached.class);
    await("every old group answered", () -> dev.responded() >= groups);
    // Phase 2: the device's PRG indexes are free again; these belong to the new handle.
    for (int g = 0; g < groups; g++) {
      for (int p = 0; p < 4; p++) {
        h.pageRequest(0x100, g, phase2 + ((long) g << 14) + ((long) p << 12), p == 3);
      }
    }
    FaultPipelineStats s = h.settled(8L * groups);
    assertEquals(0, s.lostIngressPageRequests() + s.lostQueueFull());

    Fd newOwner = new Fd(fd.vmId, fd.ref, fd.replies, fd.events);
    newOwner.faultId = newFault;
    Drained now = drain(newOwner);
    List<Long> addrs = now.addressesByDev.get(fd.devIds.get(0));
    assertEquals(4 * groups, addrs.size(), "the new owner has exactly the new handle's requests");
    for (int k = 0; k < addrs.size(); k++) {
      assertEquals(phase2 + ((long) (k / 4) << 14) + ((long) (k % 4) << 12), addrs.get(k));
    }
    assertEquals(0, drain(fd).records, "the old FAULT's groups were withdrawn at the replace");
    assertEquals(groups, dev.responses.size(), "each old group answered once");
    for (var r : dev.responses) {
      assertEquals(io.iommulab.actors.unit.IommuUnitActor.PageResponseCode.INVALID, r.code());
    }
    assertEquals(s.published(), s.delivered() + s.lostHandleGone());
  }
}
