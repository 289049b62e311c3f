package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.InvalidationEntry;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.iommu.IommuUnit;
import io.iommulab.hardware.iommu.PasidTable;
import io.iommulab.hardware.pagetable.IoPageTable;
import io.iommulab.host.uapi.IommuFd.HwptAlloc;
import io.iommulab.host.uapi.IommuFd.HwptInvalidate;
import io.iommulab.host.uapi.IommuFd.IoasAllowIovas;
import io.iommulab.host.uapi.IommuFd.IoasCopy;
import io.iommulab.host.uapi.IommuFd.IoasIovaRanges;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import io.iommulab.host.uapi.IommuFd.IoasUnmap;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The fail-nth sweep of {@code tools/testing/selftests/iommu/iommufd_fail_nth.c} over whole uAPI
 * call chains: each chain first runs without injection (it must succeed), then for N = 1, 2, ...
 * on a freshly built host ({@link SweepRig}) with the Nth injectable allocation failed — in the fd
 * or in a unit, one {@link FailNth} serves both — until a run consumes no failure. In every run:
 *
 * <ul>
 *   <li>the step that hit the failure answers ENOMEM and leaves the fd, every unit and the host's
 *       pins exactly as before the step (snapshots compared; snapshots check the models'
 *       invariants);
 *   <li>after the fd is closed (the PAMU chain: after the VFIO-PAMU teardown) nothing is left: no
 *       object, pin or charge in the fd, no pinned host frame, no host-memory bug, no domain, PASID
 *       entry, attach handle or DMA owner in any unit, no unacknowledged invalidation, no IOTLB or
 *       ATC entry, and the PAMU's tables as at boot.
 * </ul>
 *
 * The number of runs is bounded (the kernel asserts fewer than 400) and each chain must reach the
 * unit sites it passes through. Each chain prints the sites it swept.
 */
class FailNthSweepTest {

  static final ActorTestKit kit = ActorTestKit.create();
  static final long MB = 1L << 20;
  static final int NO_PASID = IommuUnitActor.NO_PASID;
  /** iommufd_fail_nth.c: {@code ASSERT_LT(iter, 400)}. */
  static final int MAX_RUNS = 400;

  @AfterAll
  static void shutdown() {
    kit.shutdownTestKit();
  }

  private final FailNth nth = new FailNth();

  // ================================================================ the sweep

  /** Thrown by a step that failed with the injected ENOMEM, after its checks passed. */
  private static final class Stopped extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Stopped(String step) {
      super(step, null, false, false);
    }
  }

  /** One run of a chain on one rig. */
  final class Run {
    final SweepRig rig;
    final String chain;
    final int n;
    /** Teardown actions of a chain that does not go through an fd (the PAMU chain). */
    final Deque<Runnable> undo = new ArrayDeque<>();

    Run(SweepRig rig, String chain, int n) {
      this.rig = rig;
      this.chain = chain;
      this.n = n;
    }

    String where(String step) {
      return chain + " n=" + n + " step " + step + " (site " + nth.failedSite() + ")";
    }

    /**
     * Runs one step that must succeed unless the injected failure hits it; then it must answer
     * ENOMEM and change nothing, and the run stops.
     */
    <T> T step(String name, Supplier<CompletionStage<Outcome<T>>> call) {
      return expect(name, null, call);
    }

    /** As {@link #step}, for a step whose correct answer is {@code expected} (null: success). */
    <T> T expect(String name, Errno expected, Supplier<CompletionStage<Outcome<T>>> call) {
      SweepRig.State before = rig.state();
      boolean consumedBefore = nth.consumed();
      Outcome<T> o = await(call.get());
      Errno got = o.isOk() ? null : o.errnoOrNull();
      if (got == expected) {
        return o.isOk() ? o.value() : null;
      }
      if (consumedBefore || !nth.consumed()) {
        fail(where(name) + ": no failure was injected here, yet it answered " + o);
      }
      assertEquals(Errno.ENOMEM, got, where(name) + ": " + o);
      SweepRig.State after = rig.state();
      if (!before.equals(after)) {
        fail(where(name) + ": the failed step changed state:" + SweepRig.diff(before, after));
      }
      throw new Stopped(name);
    }

    /** A unit command as a step: Refused is the error, any other reply the value. */
    IommuUnitActor.UnitReply unit(String name, String unit,
        java.util.function.Function<org.apache.pekko.actor.typed.ActorRef<IommuUnitActor.UnitReply>,
            IommuUnitActor.Command> make) {
      return step(name, () -> rig.unitStage(unit, make).thenApplyAsync(
          r -> r instanceof IommuUnitActor.Refused f
              ? Outcome.<IommuUnitActor.UnitReply>err(f.errno(), f.message())
              : Outcome.ok(r),
          kit.system().executionContext()));
    }
  }

  /** What a sweep found: runs with a failure consumed, and the sites they failed. */
  record Swept(String chain, int failingRuns, Set<String> sites, long callsWithoutFailure) {}

  private Swept sweep(String chain, Consumer<Run> body) {
    long calls = runOnce(chain, 0, body);
    assertTrue(calls > 0, chain + ": the chain passed no injectable site");
    Set<String> sites = new LinkedHashSet<>();
    for (int n = 1; ; n++) {
      assertTrue(n < MAX_RUNS, chain + ": the sweep did not end within " + MAX_RUNS + " runs");
      runOnce(chain, n, body);
      if (!nth.consumed()) {
        Swept s = new Swept(chain, n - 1, sites, calls);
        System.out.printf("fail-nth %-8s %3d injectable calls, %3d runs failed one; sites %s%n",
            chain, calls, s.failingRuns(), sites);
        return s;
      }
      sites.add(nth.failedSite());
    }
  }

  /** One run: fresh rig, fail the nth call (0: none), run, tear down, check for leaks. */
  private long runOnce(String chain, int n, Consumer<Run> body) {
    SweepRig rig = new SweepRig(kit, nth);
    Run run = new Run(rig, chain, n);
    long callsBefore = nth.calls();
    boolean completed = false;
    try {
      if (n > 0) {
        nth.arm(n);
      } else {
        nth.disarm();
      }
      try {
        body.accept(run);
        completed = true;
      } catch (Stopped stopped) {
        completed = false;
      } finally {
        nth.disarm();
      }
      if (n == 0 || !nth.consumed()) {
        assertTrue(completed, chain + " n=" + n + ": a run without an injected failure must complete");
      }
      long calls = nth.calls() - callsBefore;
      teardownAndCheck(run);
      return calls;
    } finally {
      rig.stop();
    }
  }

  private void teardownAndCheck(Run run) {
    SweepRig rig = run.rig;
    String at = run.chain + " n=" + run.n + " (site " + (run.n > 0 ? nth.failedSite() : "none") + ")";
    while (!run.undo.isEmpty()) {
      run.undo.pop().run();
    }
    Outcome<IoasidFdActor.Closed> closed = await(rig.fd.close());
    assertTrue(closed.isOk(), at + ": close " + closed);
    FdSnapshot s = rig.fdSnapshot();
    assertTrue(s.isEmpty(), at + ": the fd kept " + s);
    var mem = rig.memoryReport();
    assertEquals(0, mem.pinnedFrames(), at + ": pinned host frames");
    assertEquals(List.of(), mem.bugs(), at + ": host-memory oracle");
    for (String u : rig.units.keySet()) {
      IommuUnitActor.UnitSnapshotted now = rig.unitSnapshot(u);
      IommuUnitActor.UnitSnapshotted boot = rig.pristine.get(u);
      assertEquals(boot.groups(), now.groups(), at + ": " + u + " groups (DMA owners)");
      assertEquals(List.of(), now.attachHandles(), at + ": " + u + " attach handles");
      assertEquals(boot.devices(), now.devices(), at + ": " + u + " devices");
      if (now.paging() != null) {
        IommuUnit.Snapshot p = now.paging();
        assertEquals(List.of(), p.domains(), at + ": " + u + " domains");
        assertEquals(List.of(), p.pasidEntries(), at + ": " + u + " PASID entries");
        assertEquals(0, p.iotlbSize(), at + ": " + u + " IOTLB entries");
        assertEquals(0, p.queuePending(), at + ": " + u + " invalidation queue");
        // PASID leaf tables stay until the device goes (intel/pasid.c): compare without them.
        assertEquals(withoutLeaves(boot.paging()), withoutLeaves(p), at + ": " + u + " context entries");
      } else {
        if (!boot.pamu().equals(now.pamu())) {
          fail(at + ": " + u + " PAMU tables:" + SweepRig.diff(
              new SweepRig.State(s, List.of(boot), 0), new SweepRig.State(s, List.of(now), 0)));
        }
      }
      assertEquals(0, rig.unitStats(u).pendingInvalidations(), at + ": " + u + " unacknowledged invalidations");
    }
    for (String d : rig.handles.keySet()) {
      DeviceActor.DeviceState st = rig.deviceState(d);
      assertEquals(0, st.atcEntries(), at + ": " + d + " ATC entries");
      assertEquals(0, st.ownerVmId(), at + ": " + d + " DMA owner");
      assertEquals(0, st.burstsInFlight(), at + ": " + d + " bursts in flight");
    }
  }

  private static List<IommuUnit.ContextSnapshot> withoutLeaves(IommuUnit.Snapshot s) {
    return s.contexts().stream()
        .map(c -> new IommuUnit.ContextSnapshot(c.rid(), c.devicePasidBits(), c.pasidWidth(), c.ats(), 0))
        .toList();
  }

  // ================================================================ helpers

  private static DeviceActor.DmaCompleted dma(SweepRig rig, String device, int pasid, long iova, int access) {
    return await(dmaStage(rig, device, pasid, iova, access));
  }

  private static CompletionStage<DeviceActor.DmaCompleted> dmaStage(SweepRig rig, String device, int pasid, long iova,
      int access) {
    return AskPattern.<DeviceActor.Command, DeviceActor.DmaCompleted>ask(
        rig.handles.get(device).device(),
        r -> new DeviceActor.DmaBurst(pasid, new long[] {iova}, new int[] {64}, new int[] {access}, 1, r),
        Duration.ofSeconds(5), kit.scheduler());
  }

  private static <T> CompletionStage<Outcome<T>> done(T value) {
    return CompletableFuture.completedFuture(Outcome.ok(value));
  }

  private static void assertSites(Swept s, String... expected) {
    for (String site : expected) {
      assertTrue(s.sites().contains(site), s.chain() + " did not reach site " + site + ": " + s.sites());
    }
  }

  // ================================================================ chains

  /** iommufd_fail_nth.c "basic": IOAS alloc, IOVA_RANGES, ALLOW_IOVAS, MAP, COPY, UNMAP. */
  @Test
  void ioasChainFailsCleanlyAtEveryAllocation() {
    Swept s = sweep("ioas", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      int ioas = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("IOVA_RANGES", () -> fd.ioasIovaRanges(new IoasIovaRanges(ioas, 4)));
      r.step("ALLOW_IOVAS", () -> fd.ioasAllowIovas(new IoasAllowIovas(ioas, List.of(new IovaRange(16 * MB, (1L << 40) - 1)))));
      r.step("MAP fixed", () -> fd.ioasMap(IoasMap.fixed(ioas, va, 2 * MB, 16 * MB)));
      long auto = r.step("MAP auto", () -> fd.ioasMap(IoasMap.auto(ioas, va + 4 * MB, 4 * MB)));
      int dst = r.step("IOAS_ALLOC dst", fd::ioasAlloc);
      r.step("COPY", () -> fd.ioasCopy(new IoasCopy(
          Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE, dst, ioas, 2 * MB, 16 * MB, 16 * MB)));
      r.step("UNMAP", () -> fd.ioasUnmap(new IoasUnmap(ioas, auto, 4 * MB)));
      r.step("UNMAP all", () -> fd.ioasUnmap(IoasUnmap.all(ioas)));
      r.expect("UNMAP nothing", Errno.ENOENT, () -> fd.ioasUnmap(new IoasUnmap(ioas, 16 * MB, 2 * MB)));
      r.step("DESTROY", () -> fd.destroy(ioas));
    });
    assertTrue(s.failingRuns() >= 6, s.toString());
  }

  /**
   * iommufd_fail_nth.c "map_domain"/"map_two_domains" and the replace of "device": bind, attach
   * to an IOAS with areas (auto domain, replay), map with a domain (and DMA through it), a second
   * domain on another unit, replace to another IOAS, unmap, detach, unbind.
   */
  @Test
  void domainChainFailsCleanlyInTheFdAndInTheUnits() {
    Swept s = sweep("domain", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      int ioas = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("MAP before attach", () -> fd.ioasMap(IoasMap.fixed(ioas, va, 2 * MB, 16 * MB)));
      r.step("MAP before attach 2", () -> fd.ioasMap(IoasMap.fixed(ioas, va + 8 * MB, 2 * MB, 20 * MB)));
      VfioDevice nic0 = r.rig.device("nic0");
      r.step("BIND nic0", nic0::bind);
      r.step("ATTACH nic0 (auto domain)", () -> nic0.attach(ioas));
      r.step("MAP with a domain", () -> fd.ioasMap(IoasMap.fixed(ioas, va + 16 * MB, 4 * MB, 32 * MB)));
      assertEquals(DeviceActor.STATUS_OK, dma(r.rig, "nic0", NO_PASID, 32 * MB + 0x40, Access.WRITE).status()[0],
          "DMA through the domain");
      VfioDevice nic2 = r.rig.device("nic2");
      r.step("BIND nic2", nic2::bind);
      r.step("ATTACH nic2 (second domain)", () -> nic2.attach(ioas));
      // Far from the other areas, so both units need new table nodes: one may fail after the other mapped.
      r.step("MAP into two domains", () -> fd.ioasMap(IoasMap.fixed(ioas, va + 24 * MB, 2 * MB, 1L << 32)));
      int other = r.step("IOAS_ALLOC other", fd::ioasAlloc);
      r.step("MAP other", () -> fd.ioasMap(IoasMap.fixed(other, va, 2 * MB, 16 * MB)));
      r.step("REPLACE nic0", () -> nic0.replace(other));
      r.step("COPY into a domain", () -> fd.ioasCopy(new IoasCopy(
          Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE, other, ioas, 4 * MB, 1L << 33,
          32 * MB)));
      r.step("UNMAP", () -> fd.ioasUnmap(new IoasUnmap(ioas, 32 * MB, 4 * MB)));
      r.step("UNMAP all", () -> fd.ioasUnmap(IoasUnmap.all(ioas)));
      r.step("DETACH nic0", nic0::detach);
      r.step("DETACH nic2", nic2::detach);
      r.step("UNBIND nic0", nic0::unbind);
      r.step("UNBIND nic2", nic2::unbind);
    });
    assertSites(s, "fd.object", "fd.pages", "fd.area", "fd.reserved", IommuUnit.SITE_DOMAIN, IoPageTable.SITE_NODE);
  }

  /** HWPT_ALLOC of a NEST_PARENT and a nested HWPT, attach, invalidate, map under it, teardown. */
  @Test
  void nestedChainFailsCleanly() {
    Swept s = sweep("nested", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      VfioDevice nic0 = r.rig.device("nic0");
      r.step("BIND", nic0::bind);
      int ioas = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("MAP", () -> fd.ioasMap(IoasMap.fixed(ioas, va, 2 * MB, 16 * MB)));
      int parent = r.step("HWPT_ALLOC nest parent",
          () -> fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), ioas, Uapi.HWPT_ALLOC_NEST_PARENT)));
      int nested = r.step("HWPT_ALLOC nested", () -> fd.hwptAlloc(
          new HwptAlloc(0, nic0.devId(), parent, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0)));
      r.step("ATTACH nested", () -> nic0.attach(nested));
      IommuFd.HwptInvalidated inv = r.step("HWPT_INVALIDATE", () -> fd.hwptInvalidate(new HwptInvalidate(
          nested, Uapi.HWPT_INVALIDATE_DATA_VTD_S1, Uapi.VTD_S1_INVALIDATE_LEN,
          List.of(InvalidationEntry.vtdS1(0, -1L, 0), InvalidationEntry.vtdS1(0x1000, 4, Uapi.VTD_INV_FLAGS_LEAF)))));
      assertEquals(2, inv.entryNum(), r.where("HWPT_INVALIDATE"));
      assertNull(inv.errno(), r.where("HWPT_INVALIDATE"));
      r.step("MAP under a nest parent", () -> fd.ioasMap(IoasMap.fixed(ioas, va + 4 * MB, 2 * MB, 32 * MB)));
      r.step("DETACH", nic0::detach);
      r.step("DESTROY nested", () -> fd.destroy(nested));
      r.step("DESTROY parent", () -> fd.destroy(parent));
      r.step("UNBIND", nic0::unbind);
    });
    assertSites(s, "fd.object", IommuUnit.SITE_DOMAIN, IoPageTable.SITE_NODE);
  }

  /**
   * FAULT queue, a fault-capable HWPT attached, a real page request (a PRI device's DMA to an
   * unmapped IOVA) read and answered, teardown.
   */
  @Test
  void faultChainFailsCleanly() {
    Swept s = sweep("fault", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      int fault = r.step("FAULT_QUEUE_ALLOC", () -> fd.faultQueueAlloc(new IommuFd.FaultAlloc(0)));
      int ioas = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("MAP", () -> fd.ioasMap(IoasMap.fixed(ioas, va, 2 * MB, 16 * MB)));
      VfioDevice nic0 = r.rig.device("nic0");
      r.step("BIND", nic0::bind);
      int hwpt = r.step("HWPT_ALLOC with fault", () -> fd.hwptAlloc(
          new HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID, nic0.devId(), ioas, Uapi.HWPT_DATA_NONE, 0, fault)));
      r.step("ATTACH", () -> nic0.attach(hwpt));
      // A DMA to an unmapped IOVA: the ATS miss becomes a page request on the FAULT queue.
      CompletableFuture<DeviceActor.DmaCompleted> burst =
          dmaStage(r.rig, "nic0", NO_PASID, 8 * MB, Access.READ).toCompletableFuture();
      long deadline = System.nanoTime() + 5_000_000_000L;
      boolean readable = false;
      while (!burst.isDone() && !(readable = Fixture.ok(fd.faultPoll(fault)))) {
        assertTrue(System.nanoTime() < deadline, r.where("page request") + ": neither queued nor answered");
      }
      List<HwptPgfault> read = r.step("read(fault)", () -> fd.faultRead(fault, 400));
      if (readable) {
        assertEquals(1, read.size(), r.where("read(fault)"));
        r.step("write(fault)", () -> fd.faultWrite(fault,
            List.of(new HwptPageResponse(read.get(0).cookie(), Uapi.PAGE_RESP_SUCCESS))));
      }
      byte status = await(burst).status()[0];
      assertTrue(status != DeviceActor.STATUS_OK, r.where("DMA") + ": an unmapped IOVA cannot complete");
      r.step("DETACH", nic0::detach);
      r.step("DESTROY hwpt", () -> fd.destroy(hwpt));
      r.step("DESTROY fault", () -> fd.destroy(fault));
      r.step("UNBIND", nic0::unbind);
    });
    assertSites(s, "fd.object", IommuUnit.SITE_DOMAIN);
  }

  /** vIOMMU, vDEVICE, vEVENTQ, a nested HWPT of the vIOMMU, its invalidation and a reported event. */
  @Test
  void viommuChainFailsCleanly() {
    Swept s = sweep("viommu", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      VfioDevice dev = r.rig.device("plain0");
      r.step("BIND", dev::bind);
      int ioas = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("MAP", () -> fd.ioasMap(IoasMap.fixed(ioas, va, 2 * MB, 16 * MB)));
      int parent = r.step("HWPT_ALLOC nest parent",
          () -> fd.hwptAlloc(HwptAlloc.paging(dev.devId(), ioas, Uapi.HWPT_ALLOC_NEST_PARENT)));
      int viommu = r.step("VIOMMU_ALLOC",
          () -> fd.viommuAlloc(new IommuFd.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, dev.devId(), parent)));
      int vdev = r.step("VDEVICE_ALLOC", () -> fd.vdeviceAlloc(new IommuFd.VdeviceAlloc(viommu, dev.devId(), 0x10)));
      int q = r.step("VEVENTQ_ALLOC",
          () -> fd.veventqAlloc(new IommuFd.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_ARM_SMMUV3, 4)));
      int nested = r.step("HWPT_ALLOC nested of the vIOMMU", () -> fd.hwptAlloc(
          new HwptAlloc(0, dev.devId(), viommu, Uapi.HWPT_DATA_ARM_SMMUV3, Uapi.HWPT_ARM_SMMUV3_LEN, 0)));
      r.step("ATTACH nested", () -> dev.attach(nested));
      IommuFd.HwptInvalidated inv = r.step("VIOMMU invalidate", () -> fd.hwptInvalidate(new HwptInvalidate(
          viommu, Uapi.VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, Uapi.ARM_SMMUV3_INVALIDATE_LEN,
          List.of(InvalidationEntry.smmuv3(Uapi.CMDQ_OP_TLBI_NH_ALL, 0x10, 0, 0, 0)))));
      assertNull(inv.errno(), r.where("VIOMMU invalidate") + ": " + inv);
      // The guest's stage 1 is empty: the DMA faults and the fault becomes a vEVENT.
      assertTrue(dma(r.rig, "plain0", NO_PASID, 0x1000, Access.READ).status()[0] != DeviceActor.STATUS_OK);
      r.rig.events.fishForMessage(Duration.ofSeconds(5), e -> e instanceof IoasidFdActor.VeventqReadable
          ? org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.complete()
          : org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.continueAndIgnore());
      List<Vevent> events = r.step("read(veventq)", () -> fd.veventqRead(q, 4096));
      assertEquals(1, events.size(), r.where("read(veventq)") + ": the event, or the lost-events header");
      r.step("DETACH", dev::detach);
      r.step("DESTROY nested", () -> fd.destroy(nested));
      r.step("DESTROY veventq", () -> fd.destroy(q));
      r.step("DESTROY vdevice", () -> fd.destroy(vdev));
      r.step("DESTROY viommu", () -> fd.destroy(viommu));
      r.step("DESTROY parent", () -> fd.destroy(parent));
      r.step("UNBIND", dev::unbind);
    });
    assertSites(s, "fd.object", "fd.vevent", IommuUnit.SITE_DOMAIN);
  }

  /** PASID attach (to a HWPT and to an IOAS), replace, detach beside a RID attachment. */
  @Test
  void pasidChainFailsCleanlyIncludingThePasidTable() {
    Swept s = sweep("pasid", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      VfioDevice nic0 = r.rig.device("nic0");
      r.step("BIND", nic0::bind);
      int a = r.step("IOAS_ALLOC a", fd::ioasAlloc);
      int b = r.step("IOAS_ALLOC b", fd::ioasAlloc);
      r.step("MAP a", () -> fd.ioasMap(IoasMap.fixed(a, va, 2 * MB, 16 * MB)));
      r.step("MAP b", () -> fd.ioasMap(IoasMap.fixed(b, va + 2 * MB, 2 * MB, 16 * MB)));
      int ha = r.step("HWPT_ALLOC pasid a", () -> fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), a, Uapi.HWPT_ALLOC_PASID)));
      int hb = r.step("HWPT_ALLOC pasid b", () -> fd.hwptAlloc(HwptAlloc.paging(nic0.devId(), b, Uapi.HWPT_ALLOC_PASID)));
      r.step("ATTACH rid", () -> nic0.attach(ha));
      r.step("PASID_ATTACH 5", () -> nic0.pasidAttach(5, ha));
      r.step("PASID_ATTACH 100 (new leaf)", () -> nic0.pasidAttach(100, hb));
      r.step("PASID_REPLACE 5", () -> nic0.pasidReplace(5, hb));
      r.step("PASID_DETACH 5", () -> nic0.pasidDetach(5));
      r.step("PASID_DETACH 100", () -> nic0.pasidDetach(100));
      r.step("DETACH rid", nic0::detach);
      r.step("DESTROY a", () -> fd.destroy(ha));
      r.step("DESTROY b", () -> fd.destroy(hb));
      r.step("UNBIND", nic0::unbind);
    });
    assertSites(s, "fd.object", IommuUnit.SITE_DOMAIN, PasidTable.SITE);
  }

  /**
   * The VFIO-PAMU path on the PAMU unit: domain, geometry, two claimed and attached LIODNs, the
   * window count (a SPAACE run for each), a third attach (its SPAACE run), window maps, the MSI
   * bank window, a DMA, and the teardown, which a failed step runs for what was set up.
   */
  @Test
  void pamuWindowChainFailsCleanlyIncludingTheSpaact() {
    Swept s = sweep("pamu", r -> {
      SweepRig rig = r.rig;
      String u = "pamu0";
      IoasidFdActor.DeviceHandle dpaa = rig.handles.get("dpaa0");
      IoasidFdActor.DeviceHandle pcie = rig.handles.get("pcie0");
      int d = ((IommuUnitActor.DomainAllocated) r.unit("AllocDomain", u,
          x -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAMU, false, false, 0, x))).domainId();
      r.undo.push(() -> assertEquals(IommuUnitActor.Done.INSTANCE, rig.unitCall(u, x -> new IommuUnitActor.FreeDomain(d, x))));
      r.unit("SetGeometry", u, x -> new IommuUnitActor.PamuSetGeometry(d, 0, 16 * MB, x));
      attach(r, u, d, dpaa);
      attach(r, u, d, pcie);
      // Two attached LIODNs: the window count takes a SPAACE run for each, the second may fail.
      r.unit("SetWindowCount", u, x -> new IommuUnitActor.PamuSetWindowCount(d, 8, x));
      attach(r, u, d, rig.handles.get("pcie1"));
      long[] hpas = {rig.layout.gpaToHpa(0), rig.layout.gpaToHpa(2 * MB)};
      r.unit("MapRange", u, x -> new IommuUnitActor.MapRange(d, 0, hpas, new long[] {2 * MB, 2 * MB},
          Access.READ | Access.WRITE, x));
      r.undo.push(() -> assertInstanceOf(IommuUnitActor.Unmapped.class,
          rig.unitCall(u, x -> IommuUnitActor.UnmapRange.strict(d, 0, 4 * MB, x))));
      long msiir = rig.bankSettings.get(0).msiirAddress();
      r.unit("MapMsiBank", u, x -> new IommuUnitActor.PamuMapMsiBank(d, 0, msiir, 14 * MB, x));
      r.undo.push(() -> assertEquals(IommuUnitActor.Done.INSTANCE,
          rig.unitCall(u, x -> new IommuUnitActor.PamuUnmapMsiBank(d, 14 * MB, x))));
      assertEquals(DeviceActor.STATUS_OK, dma(rig, "dpaa0", NO_PASID, 2 * MB + 0x80, Access.WRITE).status()[0],
          r.where("DMA"));
      r.undo.pop().run(); // UnmapMsiBank
      while (!r.undo.isEmpty()) {
        r.undo.pop().run();
      }
    });
    assertSites(s, "pamu.domain", "pamu.spaace");
    assertTrue(s.failingRuns() >= 4, "domain, two SPAACE runs at the window count, one at an attach: " + s);
  }

  /**
   * The same PAMU path through the fd's PAMU container (vfio_iommu_fsl_pamu.c): two groups bound,
   * SET_IOMMU (one domain, both LIODNs), geometry, window count (a SPAACE run per LIODN), a third
   * group joins (its SPAACE run), a whole-window MAP_DMA (pins), the MSI bank window, a DMA, and
   * the unmaps; close releases the rest.
   */
  @Test
  void pamuContainerChainFailsCleanly() {
    Swept s = sweep("pamu-fd", r -> {
      SweepRig rig = r.rig;
      IommuFd fd = rig.fd;
      VfioDevice dpaa = rig.device("dpaa0");
      VfioDevice pcie = rig.device("pcie0");
      r.step("BIND dpaa0", dpaa::bind);
      r.step("BIND pcie0", pcie::bind);
      r.step("SET_IOMMU(FSL_PAMU)", () -> fd.vfioSetIommu(io.iommulab.actors.fd.model.ModeUapi.VFIO_FSL_PAMU_IOMMU));
      r.step("geometry", () -> fd.pamuSetGeometry(0, 16 * MB - 1));
      r.step("windows", () -> fd.pamuSetWindows(16));
      // Opening the group (bind) and SET_CONTAINER are two ioctls: a failed join leaves it open.
      VfioDevice pcie1 = rig.device("pcie1");
      r.step("BIND pcie1", pcie1::bind);
      r.step("SET_CONTAINER pcie1", pcie1::setContainer);
      long window = contiguousWindow(rig, MB);
      r.step("MAP_DMA", () -> fd.vfioMapDma(IommuFd.VfioDmaMap.rw(rig.layout.userVaBase() + window, 0, MB)));
      r.step("MAP_MSI_BANK", () -> fd.pamuMapMsiBank(io.iommulab.actors.fd.model.ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 0,
          12 * MB));
      assertEquals(DeviceActor.STATUS_OK, dma(rig, "dpaa0", NO_PASID, 0x80, Access.WRITE).status()[0], r.where("DMA"));
      r.step("UNMAP_MSI_BANK", () -> fd.pamuUnmapMsiBank(12 * MB));
      r.step("UNMAP_DMA", () -> fd.vfioUnmapDma(new IommuFd.VfioDmaUnmap(0, 0, MB)));
    });
    assertSites(s, "pamu.domain", "pamu.spaace", "fd.pages");
  }

  /** The VFIO type1 container: group into the container, SET_IOMMU(TYPE1v2), MAP_DMA, DMA, UNMAP_DMA. */
  @Test
  void type1ContainerChainFailsCleanly() {
    Swept s = sweep("type1", r -> {
      SweepRig rig = r.rig;
      IommuFd fd = rig.fd;
      long va = rig.layout.userVaBase();
      VfioDevice nic0 = rig.device("nic0");
      r.step("BIND nic0", nic0::bind);
      r.step("SET_CONTAINER nic0", nic0::setContainer);
      r.step("SET_IOMMU(TYPE1v2)", () -> fd.vfioSetIommu(io.iommulab.actors.fd.model.ModeUapi.VFIO_TYPE1v2_IOMMU));
      r.step("MAP_DMA", () -> fd.vfioMapDma(IommuFd.VfioDmaMap.rw(va, 16 * MB, 2 * MB)));
      r.step("MAP_DMA far", () -> fd.vfioMapDma(IommuFd.VfioDmaMap.rw(va + 4 * MB, 1L << 32, 2 * MB)));
      assertEquals(DeviceActor.STATUS_OK, dma(rig, "nic0", NO_PASID, 16 * MB + 0x40, Access.WRITE).status()[0],
          r.where("DMA"));
      VfioDevice nvme0 = rig.device("nvme0");
      r.step("BIND nvme0", nvme0::bind);
      r.step("SET_CONTAINER nvme0", nvme0::setContainer);
      r.step("UNMAP_DMA", () -> fd.vfioUnmapDma(new IommuFd.VfioDmaUnmap(0, 16 * MB, 2 * MB)));
      r.step("UNMAP_DMA all", () -> fd.vfioUnmapDma(IommuFd.VfioDmaUnmap.all()));
    });
    assertSites(s, "fd.object", "fd.pages", IommuUnit.SITE_DOMAIN, IoPageTable.SITE_NODE);
  }

  /** SVA (seed 000): a PASID of the VM, a guest table bound at it over the GPA space, flushed, unbound. */
  @Test
  void svaChainFailsCleanly() {
    Swept s = sweep("sva", r -> {
      IommuFd fd = r.rig.fd;
      VfioDevice nic0 = r.rig.device("nic0");
      r.step("BIND", nic0::bind);
      int ioas = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("MAP", () -> fd.ioasMap(IoasMap.fixed(ioas, r.rig.layout.userVaBase(), 4 * MB, 0)));
      int gpa = r.step("HWPT_ALLOC nest parent + PASID", () -> fd.hwptAlloc(
          HwptAlloc.paging(nic0.devId(), ioas, Uapi.HWPT_ALLOC_NEST_PARENT | Uapi.HWPT_ALLOC_PASID)));
      r.step("ATTACH", () -> nic0.attach(gpa));
      int pasid = r.step("IOASID_ALLOC", fd::ioasidAlloc);
      r.step("BIND_PGTBL", () -> nic0.svaBindPgtbl(pasid, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN));
      IommuFd.HwptInvalidated inv = r.step("FLUSH", () -> nic0.svaFlush(pasid, Uapi.HWPT_INVALIDATE_DATA_VTD_S1,
          Uapi.VTD_S1_INVALIDATE_LEN, List.of(InvalidationEntry.vtdS1(0, -1L, 0))));
      assertNull(inv.errno(), r.where("FLUSH") + ": " + inv);
      r.step("UNBIND_PGTBL", () -> nic0.svaUnbindPgtbl(pasid));
      r.step("IOASID_FREE", () -> fd.ioasidFree(pasid));
      r.step("DETACH", nic0::detach);
      r.step("UNBIND", nic0::unbind);
    });
    assertSites(s, "fd.object", IommuUnit.SITE_DOMAIN, PasidTable.SITE);
  }

  /**
   * Software nesting (seed 001) on a unit without hardware nesting: a nested space over a parent
   * IOAS, guest maps composed into a shadow domain, a DMA through it, parent map and unmap (the
   * shadow rebuilt), guest unmap.
   */
  @Test
  void softwareNestingChainFailsCleanly() {
    Swept s = sweep("softnest", r -> {
      IommuFd fd = r.rig.fd;
      long va = r.rig.layout.userVaBase();
      VfioDevice dev = r.rig.device("legacy0");
      r.step("BIND", dev::bind);
      int parent = r.step("IOAS_ALLOC", fd::ioasAlloc);
      r.step("MAP parent", () -> fd.ioasMap(IoasMap.fixed(parent, va, 2 * MB, 0)));
      int h = r.step("CREATE_NESTING", () -> fd.ioasidCreateNesting(dev.devId(), parent));
      r.step("ATTACH", () -> dev.attach(h));
      r.step("guest MAP", () -> fd.softNestMap(h, 0x4000_0000L, 0x10_0000, MB, Access.READ | Access.WRITE));
      assertEquals(DeviceActor.STATUS_OK, dma(r.rig, "legacy0", NO_PASID, 0x4000_0040L, Access.WRITE).status()[0],
          r.where("DMA"));
      r.step("guest MAP over unmapped GPA", () -> fd.softNestMap(h, 0x4020_0000L, 4 * MB, 2 * MB,
          Access.READ | Access.WRITE));
      r.step("MAP parent more", () -> fd.ioasMap(IoasMap.fixed(parent, va + 4 * MB, 2 * MB, 4 * MB)));
      r.step("UNMAP parent", () -> fd.ioasUnmap(new IoasUnmap(parent, 4 * MB, 2 * MB)));
      r.step("guest UNMAP", () -> fd.softNestUnmap(h, 0x4000_0000L, MB));
      r.step("DETACH", dev::detach);
      r.step("DESTROY nested", () -> fd.destroy(h));
      r.step("UNBIND", dev::unbind);
    });
    assertSites(s, "fd.object", IommuUnit.SITE_DOMAIN, IoPageTable.SITE_NODE);
  }

  /** A user-VA offset where {@code size} bytes are physically contiguous and naturally aligned. */
  private static long contiguousWindow(SweepRig rig, long size) {
    long va = rig.layout.userVaBase();
    for (long off = 0; off + size <= SweepRig.GUEST; off += size) {
      if (rig.layout.contiguousBytes(va + off) >= size && (rig.layout.userVaToHpa(va + off) & (size - 1)) == 0) {
        return off;
      }
    }
    throw new AssertionError("no contiguous window");
  }

  /** Claims {@code h}'s group for the run's context and attaches it, with the undo of both. */
  private void attach(Run r, String u, int d, IoasidFdActor.DeviceHandle h) {
    SweepRig rig = r.rig;
    assertInstanceOf(IommuUnitActor.DmaOwnerClaimed.class,
        rig.unitCall(u, x -> new IommuUnitActor.ClaimDmaOwner(h.rid(), rig.ictxId, 1, x)));
    r.undo.push(() -> assertEquals(IommuUnitActor.Done.INSTANCE,
        rig.unitCall(u, x -> new IommuUnitActor.ReleaseDmaOwner(h.rid(), rig.ictxId, x))));
    r.unit("Attach " + h.name(), u, x -> new IommuUnitActor.Attach(h.rid(), NO_PASID, d, null, 0L, x));
    r.undo.push(() -> assertEquals(IommuUnitActor.Done.INSTANCE,
        rig.unitCall(u, x -> new IommuUnitActor.Detach(h.rid(), NO_PASID, x))));
  }
}
