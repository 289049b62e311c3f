package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.pagetable.IoPageTable;
import io.iommulab.host.uapi.IommuFd;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.Test;

/**
 * Hundreds of VMs at once on one host, each with one device from a pool (half behind a VT-d unit,
 * half behind the SMMUv3, all with ATS), each mapping, DMAing and unmapping through its own fd
 * while the others do the same. Meanwhile a checker takes snapshots of both units and of every
 * fd: every mapping whose map had returned before the snapshots began and whose unmap had not
 * been issued when they ended must be in its fd's IOAS and, with the VM's host frame, in a domain
 * of its device's unit — no mapping is lost to a concurrent operation of another VM. Every DMA to
 * a live buffer completes; every DMA to a buffer whose unmap returned faults (strict unmap, ATC
 * included). At the end every buffer is unmapped (no pin, no charge left), and the host's
 * shutdown report is clean: no isolation violation, no stale translation, no leak.
 */
class ManyVmsConcurrencyTest {

  /** VMs at once (-Diommulab.many-vms=N); 1,000 take a few seconds on two cores. */
  static final int VMS = Integer.getInteger("iommulab.many-vms", 1000);
  static final int ROUNDS = 12;
  /** Buffers a VM keeps mapped at once. */
  static final int LIVE = 3;
  static final long MB = 1L << 20;
  static final long BUF = 2 * MB;
  static final long SEED = Long.getLong("iommulab.seed", 20240611L);

  static Config config(int vms, long seed) {
    int half = vms / 2;
    return ConfigFactory.parseString(
            "iommulab.host.seed = " + seed + "\n"
                + "iommulab.topology.host-memory = 64GiB\n"
                + "iommulab.topology.device-pools = [\n"
                + "  { name-prefix = va, count = " + half + ", unit = vtd0, first-rid = \"10:00.0\","
                + " first-group = 100, ats = on }\n"
                + "  { name-prefix = sb, count = " + (vms - half) + ", unit = smmu0, first-rid = \"10:00.0\","
                + " first-group = 5000, ats = on }\n"
                + "]\n")
        .withFallback(Host.config(Map.of()))
        .resolve();
  }

  /** One buffer's life, as the workload saw it (sequence numbers of one counter). */
  static final class Mapping {
    final int vm;
    final int unitId;
    final long iova;
    final long hpa;
    volatile long mappedSeq = Long.MAX_VALUE;
    volatile long unmapIssuedSeq = Long.MAX_VALUE;

    Mapping(int vm, int unitId, long iova, long hpa) {
      this.vm = vm;
      this.unitId = unitId;
      this.iova = iova;
      this.hpa = hpa;
    }
  }

  /** One VM of the run: its handle, fd and IOAS. */
  record Guest(Host.Vm vm, String device, int unitId, int fd, IommuFd fdHandle, int ioas) {}

  private final AtomicLong seq = new AtomicLong();
  private final Queue<String> problems = new ConcurrentLinkedQueue<>();
  private final Queue<Mapping> mappings = new ConcurrentLinkedQueue<>();
  private final AtomicLong liveDmas = new AtomicLong();
  private final AtomicLong staleDmas = new AtomicLong();
  /** Every VM has {@link #LIVE} buffers mapped: one check sees them all before the VMs go on. */
  private final AtomicInteger arrived = new AtomicInteger();
  private final CompletableFuture<Void> allArrived = new CompletableFuture<>();
  private final CompletableFuture<Void> gate = new CompletableFuture<>();

  private static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(60, TimeUnit.SECONDS);
  }

  @Test
  void manyVmsMapDmaAndUnmapAtOnceWithoutLosingAMappingOrBreakingIsolation() throws Exception {
    try (Host host = Host.start("ManyVms", config(VMS, SEED), new ManualClock(), FaultInjector.NONE, HostParts.REAL)) {
      Executor ex = host.executor();
      HostGuardian.Topology topo = await(host.topology());
      List<String> devices = new ArrayList<>();
      for (String name : topo.devices().keySet()) {
        if (name.startsWith("va-") || name.startsWith("sb-")) {
          devices.add(name);
        }
      }
      assertEquals(VMS, devices.size());

      List<CompletableFuture<Guest>> starting = new ArrayList<>();
      for (int i = 0; i < VMS; i++) {
        starting.add(start(host, 100 + i, devices.get(i), ex).toCompletableFuture());
      }
      List<Guest> guests = new ArrayList<>();
      for (CompletableFuture<Guest> g : starting) {
        guests.add(await(g));
      }

      List<CompletableFuture<Void>> running = new ArrayList<>();
      for (int i = 0; i < guests.size(); i++) {
        running.add(rounds(guests.get(i), new SplittableRandom(SEED + i), 0, new ArrayList<>(), ex).toCompletableFuture());
      }
      CompletableFuture<Void> all = CompletableFuture.allOf(running.toArray(new CompletableFuture<?>[0]));
      await(allArrived);
      int atGate = checkNothingLost(host, topo, guests, ex);
      assertEquals(VMS * LIVE, atGate, "every VM's live buffers, checked while the VMs wait");
      gate.complete(null);
      int checks = 1;
      int checked = atGate;
      while (!all.isDone()) {
        checked += checkNothingLost(host, topo, guests, ex);
        checks++;
      }
      await(all);
      assertEquals(List.of(), List.copyOf(problems), "seed " + SEED);
      assertTrue(checked > 0, "the checker saw live mappings (" + checks + " rounds)");
      assertEquals((long) VMS * ROUNDS, staleDmas.get(), "one DMA after each unmap");
      assertTrue(liveDmas.get() >= (long) VMS * ROUNDS, "DMAs to live buffers: " + liveDmas.get());

      for (Guest g : guests) {
        FdSnapshot s = await(g.fdHandle().snapshot());
        assertEquals(0, s.accounting().pinnedPages(), "vm " + g.vm().id() + " pinned pages");
        assertEquals(0, s.accounting().userLockedPages(), "vm " + g.vm().id() + " charged pages");
        assertEquals(List.of(), s.ioases().get(0).areas(), "vm " + g.vm().id() + " areas");
      }
      HostMemoryActor.MemoryReport mem = await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.MemoryReport>ask(
          topo.memory(), HostMemoryActor.GetReport::new, Duration.ofSeconds(10), host.system().scheduler()));
      assertEquals(0, mem.pinnedFrames(), "host frames pinned after every unmap");

      HostGuardian.HostReport report = await(host.shutdown());
      assertEquals(0, report.isolationViolations(), "seed " + SEED);
      assertEquals(0, report.staleViolations(), "seed " + SEED + " " + report.staleViolationRecords());
      assertTrue(report.clean(), "seed " + SEED + ": " + report.leaks() + " " + report.failures());
      System.out.printf("many VMs: %d VMs, %d rounds each, %d snapshot checks over %d live mappings, seed %d%n",
          VMS, ROUNDS, checks, checked, SEED);
    }
  }

  /**
   * Regression: the guardian registered a StartReply adapter per CreateVm capturing its VM id, but
   * an actor has one adapter per message class, so with several VMs starting at once their answers
   * were credited to the last one and the guardian stopped on "start answer in state RUNNING".
   */
  @Test
  void vmsCreatedTogetherEachGetTheirOwnAnswer() throws Exception {
    try (Host host = Host.start("CreateTogether", config(40, SEED), new ManualClock(), FaultInjector.NONE,
        HostParts.REAL)) {
      List<CompletableFuture<Outcome<Host.Vm>>> created = new ArrayList<>();
      for (int i = 0; i < 40; i++) {
        created.add(host.createVm(1 + i, 16 * MB, PageSize.SIZE_2M, List.of((i < 20 ? "va-" : "sb-") + (i % 20)))
            .toCompletableFuture());
      }
      for (int i = 0; i < 40; i++) {
        Host.Vm vm = await(created.get(i)).value();
        assertEquals(1 + i, vm.id());
        assertEquals(1 + i, vm.layout().vmId());
        assertEquals((i < 20 ? "va-" : "sb-") + (i % 20), vm.devices().get(0).name());
      }
      assertEquals(List.of(), await(host.topology()).failures());
      assertTrue(await(host.shutdown()).clean());
    }
  }

  /** Creates VM {@code vmId} with {@code device}, opens an fd, binds, allocates an IOAS, attaches. */
  private CompletionStage<Guest> start(Host host, int vmId, String device, Executor ex) {
    return host.createVm(vmId, 16 * MB, PageSize.SIZE_2M, List.of(device))
        .thenComposeAsync(v -> {
          Host.Vm vm = v.value();
          int unitId = vm.devices().get(0).unitId();
          return AskPattern.<VmActor.Command, VmActor.VmReply>ask(vm.ref(), VmActor.OpenFd::new,
                  Duration.ofSeconds(30), host.system().scheduler())
              .thenComposeAsync(reply -> {
                VmActor.FdOpened opened = (VmActor.FdOpened) reply;
                IommuFd handle = new IommuFd(opened.ref(), host.system().scheduler(), ex, Duration.ofSeconds(30));
                return vm.allocIoas(opened.fd()).thenComposeAsync(ioas -> vm.bind(opened.fd(), device)
                    .thenComposeAsync(b -> vm.attach(opened.fd(), device, ioas.value()), ex)
                    .thenApplyAsync(a -> {
                      if (!a.isOk()) {
                        throw new IllegalStateException("vm " + vmId + " attach: " + a);
                      }
                      return new Guest(vm, device, unitId, opened.fd(), handle, ioas.value());
                    }, ex), ex);
              }, ex);
        }, ex);
  }

  /**
   * One round: map a buffer, DMA to it and to the VM's other live buffers (must complete), unmap
   * the oldest once {@link #LIVE} are live and DMA to it (must fault); the last round unmaps everything.
   */
  private CompletionStage<Void> rounds(Guest g, SplittableRandom rnd, int round, List<Mapping> live, Executor ex) {
    if (round == ROUNDS) {
      return unmapAll(g, live, 0, ex);
    }
    long gpa = (round % 8) * BUF;
    return g.vm().map(g.fd(), g.ioas(), gpa, BUF, VmActor.AUTO_IOVA, Access.READ_WRITE)
        .thenComposeAsync(mapped -> {
          if (!mapped.isOk()) {
            problems.add("vm " + g.vm().id() + " map: " + mapped);
            if (round < LIVE) {
              arrive(); // so the gate check runs and the problem is reported
            }
            return CompletableFuture.completedFuture(null);
          }
          Mapping m = new Mapping(g.vm().id(), g.unitId(), mapped.value(), g.vm().layout().gpaToHpa(gpa));
          m.mappedSeq = seq.incrementAndGet();
          mappings.add(m);
          live.add(m);
          long[] iovas = new long[live.size()];
          for (int i = 0; i < iovas.length; i++) {
            iovas[i] = live.get(i).iova + (rnd.nextInt((int) (BUF / 4096)) << 12) + rnd.nextInt(64) * 64L;
          }
          return dma(g, iovas, ex).thenComposeAsync(done -> {
            for (int i = 0; i < iovas.length; i++) {
              if (done.status()[i] != DeviceActor.STATUS_OK) {
                problems.add(String.format("vm %d: DMA to live buffer 0x%x status %d", g.vm().id(), iovas[i],
                    done.status()[i]));
              }
            }
            liveDmas.addAndGet(iovas.length);
            if (live.size() < LIVE) {
              return rounds(g, rnd, round + 1, live, ex);
            }
            if (round == LIVE - 1) {
              arrive();
              return gate.thenComposeAsync(x -> unmapOldest(g, rnd, round, live, ex), ex);
            }
            return unmapOldest(g, rnd, round, live, ex);
          }, ex);
        }, ex);
  }

  private void arrive() {
    if (arrived.incrementAndGet() == VMS) {
      allArrived.complete(null);
    }
  }

  private CompletionStage<Void> unmapOldest(Guest g, SplittableRandom rnd, int round, List<Mapping> live,
      Executor ex) {
    Mapping oldest = live.remove(0);
    return unmapAndProbe(g, oldest, ex).thenComposeAsync(x -> rounds(g, rnd, round + 1, live, ex), ex);
  }

  private CompletionStage<Void> unmapAll(Guest g, List<Mapping> live, int i, Executor ex) {
    if (i == live.size()) {
      return CompletableFuture.completedFuture(null);
    }
    return unmapAndProbe(g, live.get(i), ex).thenComposeAsync(x -> unmapAll(g, live, i + 1, ex), ex);
  }

  /** Unmaps {@code m}, then DMAs to it: the access was stale at issue and must not complete. */
  private CompletionStage<Void> unmapAndProbe(Guest g, Mapping m, Executor ex) {
    m.unmapIssuedSeq = seq.incrementAndGet();
    return g.vm().unmap(g.fd(), g.ioas(), m.iova, BUF).thenComposeAsync(u -> {
      if (!u.isOk() || u.value().bytes() != BUF) {
        problems.add("vm " + g.vm().id() + " unmap 0x" + Long.toHexString(m.iova) + ": " + u);
      }
      return dma(g, new long[] {m.iova + 0x100}, ex).thenApplyAsync(done -> {
        if (done.status()[0] == DeviceActor.STATUS_OK || done.staleViolations() != 0
            || done.staleAtIssue().length != 1) {
          problems.add(String.format("vm %d: DMA after the unmap of 0x%x: status %d, stale at issue %s, violations %d",
              g.vm().id(), m.iova, done.status()[0], java.util.Arrays.toString(done.staleAtIssue()),
              done.staleViolations()));
        }
        staleDmas.incrementAndGet();
        return null;
      }, ex);
    }, ex);
  }

  private CompletionStage<VmActor.DmaDone> dma(Guest g, long[] iovas, Executor ex) {
    int[] lengths = new int[iovas.length];
    int[] access = new int[iovas.length];
    java.util.Arrays.fill(lengths, 64);
    java.util.Arrays.fill(access, Access.WRITE);
    return g.vm().dma(g.device(), IommuUnitActor.NO_PASID, iovas, lengths, access)
        .thenApplyAsync(o -> {
          if (!o.isOk()) {
            throw new IllegalStateException("vm " + g.vm().id() + " DMA refused: " + o);
          }
          return o.value();
        }, ex);
  }

  /**
   * Snapshots both pool units and every fd; every mapping that was complete before and not being
   * unmapped after must be in both. Returns how many mappings it checked.
   */
  private int checkNothingLost(Host host, HostGuardian.Topology topo, List<Guest> guests, Executor ex)
      throws Exception {
    long s0 = seq.incrementAndGet();
    Map<Integer, Set<Long>> leaves = new HashMap<>();
    for (HostGuardian.UnitEntry u : topo.units()) {
      if (!u.name().equals("vtd0") && !u.name().equals("smmu0")) {
        continue;
      }
      IommuUnitActor.UnitSnapshotted snap = await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitSnapshotted>ask(
          u.unit(), IommuUnitActor.GetSnapshot::new, Duration.ofSeconds(30), host.system().scheduler()));
      Set<Long> keys = new HashSet<>();
      for (var d : snap.paging().domains()) {
        for (IoPageTable.Leaf l : d.table().leaves()) {
          keys.add(l.iova() * 31 + l.pa());
        }
      }
      leaves.put(u.unitId(), keys);
    }
    List<CompletableFuture<FdSnapshot>> fds = new ArrayList<>();
    for (Guest g : guests) {
      fds.add(g.fdHandle().snapshot().toCompletableFuture());
    }
    Map<Integer, Set<Long>> areas = new HashMap<>();
    for (int i = 0; i < guests.size(); i++) {
      Set<Long> starts = new HashSet<>();
      for (FdSnapshot.IoasSnapshot io : await(fds.get(i)).ioases()) {
        for (FdSnapshot.AreaSnapshot a : io.areas()) {
          starts.add(a.iova());
        }
      }
      areas.put(guests.get(i).vm().id(), starts);
    }
    long s1 = seq.incrementAndGet();
    AtomicInteger checked = new AtomicInteger();
    for (Mapping m : mappings) {
      if (m.mappedSeq < s0 && m.unmapIssuedSeq > s1) {
        checked.incrementAndGet();
        if (!areas.get(m.vm).contains(m.iova)) {
          problems.add(String.format("vm %d: mapping 0x%x missing from its fd", m.vm, m.iova));
        }
        if (!leaves.get(m.unitId).contains(m.iova * 31 + m.hpa)) {
          problems.add(String.format("vm %d: mapping 0x%x -> 0x%x missing from unit %d", m.vm, m.iova, m.hpa,
              m.unitId));
        }
      }
    }
    return checked.get();
  }
}
