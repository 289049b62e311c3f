package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.host.uapi.IommuFd;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Hot-unplug and detach racing a VM's maps, unmaps and DMA, once per seed. A VM holds two ATS
 * devices, D and E, attached to one IOAS (one shared domain). While the VM maps and unmaps
 * buffers and DMA flows on both devices — on D straight into its device actor, on E through the
 * VM and its stale-translation oracle — D is unplugged (even seeds) or detached (odd seeds) at a
 * seeded point of the VM's work. Then:
 *
 * <ul>
 *   <li>no DMA of D issued after the unplug or detach reply completes: every access faults or
 *       aborts (judged at the device), a translation request with D's RID sent straight to the
 *       unit faults, the unit holds no PASID entry or attach handle of D and D's ATC is empty;
 *   <li>no mapping is lost: every buffer mapped and not unmapped is in the fd's IOAS and E's DMA
 *       to it completes; the fd's pins and charges equal its areas;
 *   <li>after replug (a new VM takes D) or re-attach, D's DMA to the live buffers completes again,
 *       and the VM carries on mapping and unmapping;
 *   <li>in the end every buffer is unmapped, nothing is pinned or charged, and the host's report
 *       is clean: no leak, no isolation or stale-translation violation.
 * </ul>
 *
 * Failures name the seed; {@code -Diommulab.race.seed=S -Diommulab.race.rounds=1} replays one.
 * No sleeps: every wait is on a reply or a condition.
 */
class UnplugRaceTest {

  static final long SEED = Long.getLong("iommulab.race.seed", 7_000L);
  static final int ROUNDS = Integer.getInteger("iommulab.race.rounds", 24);
  static final long MB = 1L << 20;
  static final long BUF = 2 * MB;
  static final int PAIRS = 4;

  static Host host;
  static Executor ex;

  @BeforeAll
  static void startHost() {
    Config cfg = ConfigFactory.parseString(
            "iommulab.host.seed = 5\n"
                + "iommulab.topology.device-pools = [ { name-prefix = rc, count = " + (2 * PAIRS)
                + ", unit = vtd0, first-rid = \"20:00.0\", first-group = 300, ats = on } ]\n")
        .withFallback(Host.config(Map.of()))
        .resolve();
    host = Host.start("UnplugRace", cfg, new ManualClock(), FaultInjector.NONE, HostParts.REAL);
    ex = host.executor();
  }

  @AfterAll
  static void stopHost() throws Exception {
    HostGuardian.HostReport report = await(host.shutdown());
    try {
      assertEquals(0, report.isolationViolations(), "isolation violations");
      assertEquals(0, report.staleViolations(), "stale translations " + report.staleViolationRecords());
      assertTrue(report.clean(), report.leaks() + " " + report.failures());
    } finally {
      host.close();
    }
  }

  static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  static <T> T ok(String what, CompletionStage<Outcome<T>> stage) throws Exception {
    Outcome<T> o = await(stage);
    if (!o.isOk()) {
      throw new AssertionError(what + ": " + o);
    }
    return o.value();
  }

  /** A buffer of the VM: IOVA and sequence numbers of its map reply and unmap issue. */
  static final class Buf {
    final long iova;
    final long gpa;
    volatile long unmapIssued = Long.MAX_VALUE;

    Buf(long iova, long gpa) {
      this.iova = iova;
      this.gpa = gpa;
    }
  }

  private final AtomicInteger overlappedRounds = new AtomicInteger();
  private final AtomicLong judgedBursts = new AtomicLong();

  @Test
  void unplugOrDetachWhileTheVmMapsAndDmasServesNoDmaAfterTheReplyAndLosesNoMapping() throws Exception {
    for (int r = 0; r < ROUNDS; r++) {
      long seed = SEED + r;
      new Round(seed, r).run();
    }
    System.out.printf("unplug race: %d rounds from seed %d, %d with the reply while the VM still worked, "
        + "%d bursts of the cut device judged after its reply%n", ROUNDS, SEED, overlappedRounds.get(),
        judgedBursts.get());
    assertTrue(ROUNDS < 4 || overlappedRounds.get() >= ROUNDS / 4,
        "the cut must land in the middle of the VM's work in a good share of rounds: " + overlappedRounds.get());
  }

  /** One race, from its seed. */
  final class Round {
    final long seed;
    final boolean unplug;
    /** The VM's work; each DMA pump has its own generator (each pump runs one step at a time). */
    final SplittableRandom rnd;
    final SplittableRandom rndD;
    final SplittableRandom rndE;
    final String d;
    final String e;
    final int vmId;
    final String tag;
    final AtomicLong seq = new AtomicLong();
    final Queue<String> problems = new ConcurrentLinkedQueue<>() {
      private static final long serialVersionUID = 1L;

      @Override
      public boolean add(String p) {
        // The first few say what went wrong; thousands more would only bury them.
        return size() < 8 && super.add(p);
      }
    };
    final List<Buf> live = new CopyOnWriteArrayList<>();
    final AtomicInteger workDone = new AtomicInteger();
    final AtomicInteger afterReply = new AtomicInteger();
    final AtomicLong burstsD = new AtomicLong();
    final AtomicLong burstsE = new AtomicLong();
    volatile long replySeq = Long.MAX_VALUE;
    volatile boolean workFinished;
    Host.Vm vm;
    int fd;
    int ioas;
    IommuFd fdHandle;
    DeviceHandle dHandle;
    int nextGpa;

    Round(long seed, int round) {
      this.seed = seed;
      this.unplug = (seed & 1) == 0;
      this.rnd = new SplittableRandom(seed);
      this.rndD = rnd.split();
      this.rndE = rnd.split();
      int pair = round % PAIRS;
      this.d = "rc-" + (2 * pair);
      this.e = "rc-" + (2 * pair + 1);
      this.vmId = 1000 + round;
      this.tag = "seed " + seed + " (" + (unplug ? "unplug" : "detach") + " of " + d + ")";
    }

    void run() throws Exception {
      vm = ok(tag + " create", host.createVm(vmId, 64 * MB, PageSize.SIZE_2M, List.of(d, e)));
      VmActor.FdOpened opened = (VmActor.FdOpened) await(AskPattern.<VmActor.Command, VmActor.VmReply>ask(
          vm.ref(), VmActor.OpenFd::new, Duration.ofSeconds(10), host.system().scheduler()));
      fd = opened.fd();
      fdHandle = new IommuFd(opened.ref(), host.system().scheduler(), ex, Duration.ofSeconds(10));
      ioas = ok(tag + " ioas", vm.allocIoas(fd));
      for (String dev : List.of(d, e)) {
        ok(tag + " bind " + dev, vm.bind(fd, dev));
        ok(tag + " attach " + dev, vm.attach(fd, dev, ioas));
      }
      dHandle = vm.devices().stream().filter(h -> h.name().equals(d)).findFirst().orElseThrow();
      for (int i = 0; i < 2; i++) {
        await(map());
      }

      int ops = 6 + rnd.nextInt(8);
      int trigger = rnd.nextInt(ops);
      CompletableFuture<Void> work = work(ops, trigger, 0).toCompletableFuture();
      CompletableFuture<Void> pumpD = pumpD().toCompletableFuture();
      CompletableFuture<Void> pumpE = pumpE().toCompletableFuture();
      await(work);
      boolean overlapped = replySeq < seq.incrementAndGet();
      workFinished = true;
      await(pumpD);
      await(pumpE);
      assertEquals(List.of(), List.copyOf(problems), tag);
      assertTrue(afterReply.get() >= 3, tag + ": bursts of D issued after the reply: " + afterReply.get());
      if (overlapped) {
        overlappedRounds.incrementAndGet();
      }
      judgedBursts.addAndGet(afterReply.get());

      checkDetached();
      checkNothingLost();
      if (unplug) {
        replugAndUse();
      } else {
        ok(tag + " re-attach", vm.attach(fd, d, ioas));
        for (Buf b : live) {
          assertEquals(DeviceActor.STATUS_OK, dmaD(b.iova + 0x40).status()[0],
              tag + ": D reaches live buffer 0x" + Long.toHexString(b.iova) + " again after re-attach");
        }
      }
      await(map());
      assertEquals(DeviceActor.STATUS_OK, await(dmaE(new long[] {live.get(live.size() - 1).iova})).status()[0], tag);
      while (!live.isEmpty()) {
        await(unmap(live.get(0)));
      }
      FdSnapshot s = await(fdHandle.snapshot());
      assertEquals(0, s.accounting().pinnedPages(), tag + ": pinned pages");
      assertEquals(0, s.accounting().userLockedPages(), tag + ": charged pages");
      HostGuardian.VmDestroyed destroyed = ok(tag + " destroy", host.destroyVm(vmId));
      assertEquals(List.of(), destroyed.leaks(), tag);
    }

    /** The VM's work: map and unmap in turn (at most 3 live), unplugging or detaching D at op {@code trigger}. */
    CompletionStage<Void> work(int ops, int trigger, int i) {
      if (i == ops) {
        return CompletableFuture.completedFuture(null);
      }
      if (i == trigger) {
        CompletionStage<? extends Outcome<?>> cut = unplug ? host.unplug(d) : vm.detach(fd, d);
        cut.whenCompleteAsync((o, t) -> {
          if (t != null || !o.isOk()) {
            problems.add(tag + ": the " + (unplug ? "unplug" : "detach") + " failed: " + (t != null ? t : o));
          }
          replySeq = seq.incrementAndGet();
        }, ex);
      }
      Supplier<CompletionStage<Void>> op = live.size() >= 3 || (live.size() > 0 && rnd.nextBoolean())
          ? () -> unmap(live.get(0)) : this::map;
      return op.get().thenComposeAsync(x -> {
        workDone.incrementAndGet();
        return work(ops, trigger, i + 1);
      }, ex);
    }

    CompletionStage<Void> map() {
      long gpa = (nextGpa++ % 32) * BUF;
      return vm.map(fd, ioas, gpa, BUF, VmActor.AUTO_IOVA, Access.READ_WRITE).thenApplyAsync(o -> {
        if (!o.isOk()) {
          problems.add(tag + ": map " + o);
        } else {
          live.add(new Buf(o.value(), gpa));
        }
        return null;
      }, ex);
    }

    CompletionStage<Void> unmap(Buf b) {
      b.unmapIssued = seq.incrementAndGet();
      live.remove(b);
      return vm.unmap(fd, ioas, b.iova, BUF).thenApplyAsync(o -> {
        if (!o.isOk() || o.value().bytes() != BUF) {
          problems.add(tag + ": unmap 0x" + Long.toHexString(b.iova) + " " + o);
        }
        return null;
      }, ex);
    }

    /**
     * DMA on D straight into its device actor, until the work is done and three bursts were
     * issued after the unplug/detach reply; a burst issued after the reply must not complete.
     */
    CompletionStage<Void> pumpD() {
      if (workFinished && afterReply.get() >= 3 || burstsD.get() > 100_000) {
        return CompletableFuture.completedFuture(null);
      }
      List<Buf> now = List.copyOf(live);
      long[] iovas = new long[4];
      for (int i = 0; i < iovas.length; i++) {
        iovas[i] = now.isEmpty() ? 0x10_0000L : now.get(rndD.nextInt(now.size())).iova + rndD.nextInt(512) * 4096L;
      }
      long issued = seq.incrementAndGet();
      boolean judged = issued > replySeq;
      burstsD.incrementAndGet();
      return dmaStageD(iovas).thenComposeAsync(done -> {
        if (judged) {
          afterReply.incrementAndGet();
          for (byte st : done.status()) {
            if (st == DeviceActor.STATUS_OK) {
              problems.add(tag + ": a DMA of " + d + " issued after the " + (unplug ? "unplug" : "detach")
                  + " reply completed: " + Arrays.toString(iovas) + " " + Arrays.toString(done.status()));
              break;
            }
          }
        }
        return pumpD();
      }, ex);
    }

    /** DMA on E through the VM (its oracle watches), while the work runs: live buffers must complete. */
    CompletionStage<Void> pumpE() {
      if (workFinished) {
        return CompletableFuture.completedFuture(null);
      }
      List<Buf> now = List.copyOf(live);
      if (now.isEmpty()) {
        return dmaE(new long[] {0x10_0000L}).thenComposeAsync(x -> pumpE(), ex);
      }
      Buf b = now.get(rndE.nextInt(now.size()));
      burstsE.incrementAndGet();
      return dmaE(new long[] {b.iova + rndE.nextInt(512) * 4096L}).thenComposeAsync(done -> {
        if (done.staleViolations() != 0) {
          problems.add(tag + ": E used a stale translation " + done);
        } else if (b.unmapIssued == Long.MAX_VALUE && done.status()[0] != DeviceActor.STATUS_OK) {
          problems.add(tag + ": E's DMA to live buffer 0x" + Long.toHexString(b.iova) + " failed: "
              + done.status()[0]);
        }
        return pumpE();
      }, ex);
    }

    CompletionStage<DeviceActor.DmaCompleted> dmaStageD(long[] iovas) {
      int[] lengths = new int[iovas.length];
      int[] access = new int[iovas.length];
      Arrays.fill(lengths, 64);
      Arrays.fill(access, Access.READ);
      return AskPattern.<DeviceActor.Command, DeviceActor.DmaCompleted>ask(dHandle.device(),
          r -> new DeviceActor.DmaBurst(IommuUnitActor.NO_PASID, iovas, lengths, access, 0, r),
          Duration.ofSeconds(10), host.system().scheduler());
    }

    DeviceActor.DmaCompleted dmaD(long iova) throws Exception {
      return await(dmaStageD(new long[] {iova}));
    }

    CompletionStage<VmActor.DmaDone> dmaE(long[] iovas) {
      int[] lengths = new int[iovas.length];
      int[] access = new int[iovas.length];
      Arrays.fill(lengths, 64);
      Arrays.fill(access, Access.WRITE);
      return vm.dma(e, IommuUnitActor.NO_PASID, iovas, lengths, access).thenApplyAsync(o -> {
        if (!o.isOk()) {
          throw new IllegalStateException(tag + ": DMA on " + e + " refused: " + o);
        }
        return o.value();
      }, ex);
    }

    /** At the unit and the device: D's translation is gone. */
    void checkDetached() throws Exception {
      long iova = live.isEmpty() ? 0x10_0000L : live.get(0).iova;
      IommuUnitActor.BurstTranslated t = await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.BurstTranslated>ask(
          dHandle.unit(), r -> new IommuUnitActor.TranslateBurst(dHandle.rid(), IommuUnitActor.NO_PASID,
              new long[] {iova}, new int[] {64}, new int[] {Access.READ}, false, 1, r),
          Duration.ofSeconds(10), host.system().scheduler()));
      assertTrue(t.status()[0] != 0, tag + ": the unit still translates " + d + "'s RID");
      IommuUnitActor.UnitSnapshotted unit = await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitSnapshotted>ask(
          dHandle.unit(), IommuUnitActor.GetSnapshot::new, Duration.ofSeconds(10), host.system().scheduler()));
      assertTrue(unit.paging().pasidEntries().stream().noneMatch(p -> p.rid() == dHandle.rid()),
          tag + ": PASID entry of " + d + " left " + unit.paging().pasidEntries());
      String rid = String.format("%02x:%02x.%x", dHandle.rid() >> 8, (dHandle.rid() >> 3) & 0x1f, dHandle.rid() & 7);
      assertTrue(unit.attachHandles().stream().noneMatch(h -> h.startsWith(rid)),
          tag + ": attach handle of " + d + " left " + unit.attachHandles());
      DeviceActor.DeviceState st = await(AskPattern.<DeviceActor.Command, DeviceActor.DeviceState>ask(
          dHandle.device(), DeviceActor.GetState::new, Duration.ofSeconds(10), host.system().scheduler()));
      assertEquals(0, st.atcEntries(), tag + ": " + d + "'s ATC");
    }

    /** Every live buffer is in the fd and E reaches it; pins and charges match the areas. */
    void checkNothingLost() throws Exception {
      FdSnapshot s = await(fdHandle.snapshot());
      FdSnapshot.IoasSnapshot io = s.ioases().stream().filter(i -> i.id() == ioas).findFirst().orElseThrow();
      List<Long> areas = io.areas().stream().map(FdSnapshot.AreaSnapshot::iova).sorted().toList();
      List<Long> expected = live.stream().map(b -> b.iova).sorted().toList();
      assertEquals(expected, areas, tag + ": the IOAS holds exactly the live buffers");
      long pages = live.size() * (BUF / 4096);
      assertEquals(pages, s.accounting().pinnedPages(), tag + ": pinned pages");
      assertEquals(pages, s.accounting().userLockedPages(), tag + ": charged pages");
      for (Buf b : live) {
        VmActor.DmaDone done = await(dmaE(new long[] {b.iova + 0x80}));
        assertEquals(DeviceActor.STATUS_OK, done.status()[0], tag + ": E reaches live buffer 0x" + Long.toHexString(b.iova));
      }
    }

    /** Replug D, give it to a new VM, map and DMA through it, and let that VM go. */
    void replugAndUse() throws Exception {
      ok(tag + " replug", host.plug(d));
      int other = vmId + 100_000;
      Host.Vm vm2 = ok(tag + " create with the replugged device", host.createVm(other, 16 * MB, PageSize.SIZE_2M,
          List.of(d)));
      int fd2 = ok(tag + " open", vm2.openFd());
      int ioas2 = ok(tag + " ioas", vm2.allocIoas(fd2));
      ok(tag + " bind replugged", vm2.bind(fd2, d));
      ok(tag + " attach replugged", vm2.attach(fd2, d, ioas2));
      long iova = ok(tag + " map", vm2.map(fd2, ioas2, 0, BUF, VmActor.AUTO_IOVA, Access.READ_WRITE));
      VmActor.DmaDone done = ok(tag + " dma", vm2.dma(d, IommuUnitActor.NO_PASID, new long[] {iova + 0x40},
          new int[] {64}, new int[] {Access.WRITE}));
      assertEquals(DeviceActor.STATUS_OK, done.status()[0], tag + ": the replugged device DMAs");
      ok(tag + " unmap", vm2.unmap(fd2, ioas2, iova, BUF));
      assertEquals(List.of(), ok(tag + " destroy", host.destroyVm(other)).leaks(), tag);
    }
  }
}
