package io.iommulab.loadtest.bench;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.IommulabSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.SpawnProtocol;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Fault records per second through the fault pipeline, end to end: from the unit publishing a
 * record to the record sitting in its fd's queue.
 *
 * <pre>
 *   driver thread ──ReportPageRequest (prq) / TranslateBurst of 256 faulting IOVAs (dma)──▶
 *   IOMMU unit actor (vtd0) ──publish──▶ fault pipeline (ingress, batch, per-fd ask) ──▶
 *   2 fd actors (8 PRI devices each, one HWPT with a FAULT queue) ──▶ FAULT queue (prq) /
 *   the fd's fault statistics (dma: VT-d without a vIOMMU, FaultPolicy RECORD)
 * </pre>
 *
 * <p>The driver sends in chunks and keeps at most 65,536 records unsettled (sent but not yet
 * delivered or counted lost), as a set of devices with bounded outstanding requests would.
 * Each iteration publishes {@code records} records and is timed from the first send until the
 * unit's pipeline has every record settled (published = delivered + lost, nothing in flight);
 * the fd queues are drained and answered outside the timed region. The rate counted is records
 * delivered into the fd per second; records lost are reported (the ingress is sized so none is).
 * Warm-up iterations run first and are not counted; the median of the measured ones is the
 * result. On fewer than 2 CPUs the figure is not comparable (a warning is printed).
 *
 * <p>Run: {@code mvn -o -q -pl config,hardware,actors,host,load-tests package -DskipTests &&
 * java -cp load-tests/target/benchmarks.jar io.iommulab.loadtest.bench.FaultPipelineBench
 * [prq|dma] [records] [warmups] [iterations]} ({@code -Dbench.batch=N -Dbench.parallelism=N}
 * override the pipeline's defaults; the ingress is sized so nothing is lost).
 */
public final class FaultPipelineBench {
  private FaultPipelineBench() {}

  private static final Duration ASK = Duration.ofSeconds(30);
  private static final int DEVICES_PER_FD = 8;
  private static final int BURST = 256;
  /** Records sent between two looks at the unit's counters. */
  private static final int CHUNK = 16_384;
  /** Records the driver may have sent and not yet seen settled. */
  private static final int WINDOW = 65_536;

  private static ActorSystem<SpawnProtocol.Command> system;

  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "prq";
    int records = args.length > 1 ? Integer.parseInt(args[1]) : 1_000_000;
    int warmups = args.length > 2 ? Integer.parseInt(args[2]) : 5;
    int iterations = args.length > 3 ? Integer.parseInt(args[3]) : 7;
    int cpus = Runtime.getRuntime().availableProcessors();
    if (cpus < 2) {
      System.out.println("WARNING: " + cpus + " CPU; the figure is for 2 cores");
    }
    system = ActorSystem.create(SpawnProtocol.create(), "fault-bench");
    try {
      run(mode, records, warmups, iterations);
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  // ---------------------------------------------------------------- plumbing

  private static <T> ActorRef<T> spawn(Behavior<T> behavior, String name) throws Exception {
    return AskPattern.<SpawnProtocol.Command, ActorRef<T>>ask(
            system, r -> new SpawnProtocol.Spawn<>(behavior, name, Props.empty(), r), ASK,
            system.scheduler())
        .toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  private static <Req, Res> Res ask(ActorRef<Req> to, Function<ActorRef<Res>, Req> make)
      throws Exception {
    return AskPattern.<Req, Res>ask(to, make::apply, ASK, system.scheduler())
        .toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  @SuppressWarnings("unchecked")
  private static <T extends IoasidFdActor.Reply> T fdAsk(
      ActorRef<IoasidFdActor.Command> fd, Function<ActorRef<IoasidFdActor.Reply>, IoasidFdActor.Command> make,
      Class<T> type) throws Exception {
    IoasidFdActor.Reply r = ask(fd, make);
    if (!type.isInstance(r)) {
      throw new IllegalStateException("expected " + type.getSimpleName() + ", got " + r);
    }
    return (T) r;
  }

  /** A PRI function that acknowledges device-TLB invalidations and ignores the rest. */
  private static Behavior<DeviceActor.Command> deviceStub(int rid) {
    return Behaviors.receive(DeviceActor.Command.class)
        .onMessage(DeviceActor.AtcInvalidate.class, m -> {
          m.replyTo().tell(new IommuUnitActor.AtcInvalidationAcked(rid, m.token()));
          return Behaviors.same();
        })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  private record Fd(ActorRef<IoasidFdActor.Command> ref, int faultId, List<Integer> rids) {}

  // ---------------------------------------------------------------- the run

  private static void run(String mode, int records, int warmups, int iterations) throws Exception {
    TopologySettings defaults = IommulabSettings.defaults().topology();
    PagingUnitSettings vtd = (PagingUnitSettings) defaults.units().stream()
        .filter(u -> u instanceof PagingUnitSettings).findFirst().orElseThrow();
    TopologySettings topology =
        new TopologySettings(defaults.hostMemoryBytes(), List.of(vtd), List.of(), List.of());
    FaultPipelineSettings d = FaultPipelineSettings.defaults();
    FaultPipelineSettings pipeline = new FaultPipelineSettings(1 << 20, 1 << 20,
        Integer.getInteger("bench.batch", d.batchSize()),
        Integer.getInteger("bench.parallelism", d.parallelism()), d.ackTimeout(), d.tenantClasses());
    UapiSettings uapi = UapiSettings.defaults().withFaultQueueDepth(1 << 20);
    ManualClock clock = new ManualClock(1_000);
    ActorRef<HostMemoryActor.Command> memory =
        spawn(HostMemoryActor.create(topology, FaultInjector.NONE), "memory");
    ActorRef<IommuUnitActor.Command> unit = spawn(IommuUnitActor.create(0, vtd,
        CostModel.defaults(), clock, 1, FaultInjector.NONE, memory, Map.of(),
        InvalidationPipelineSettings.strict(), pipeline, System::nanoTime), "vtd0");
    ActorRef<IoasidFdActor.FdEvent> events = spawn(Behaviors.<IoasidFdActor.FdEvent>ignore(), "events");
    ActorRef<IommuUnitActor.BurstTranslated> bursts =
        spawn(Behaviors.<IommuUnitActor.BurstTranslated>ignore(), "bursts");

    List<Fd> fds = new ArrayList<>();
    int rid = 0x100;
    for (int vm = 1; vm <= 2; vm++) {
      int vmId = vm;
      HostMemoryActor.GuestMemoryReply g = ask(memory, r -> new HostMemoryActor.AllocateGuestMemory(
          vmId, 64L << 20, PageSize.SIZE_2M, r));
      GuestMemoryLayout layout = ((HostMemoryActor.GuestMemoryAllocated) g).layout();
      ActorRef<IoasidFdActor.Command> fd = spawn(IoasidFdActor.create(vm, vm, layout, uapi,
          IoasidFdActor.Credentials.NONE, memory, events, FaultInjector.NONE, clock, List.of(), pipeline),
          "fd" + vm);
      List<Integer> rids = new ArrayList<>();
      List<Integer> devIds = new ArrayList<>();
      for (int i = 0; i < DEVICES_PER_FD; i++, rid++) {
        int r0 = rid;
        ActorRef<DeviceActor.Command> dev = spawn(deviceStub(r0), "dev" + r0);
        Object done = ask(unit, (ActorRef<IommuUnitActor.UnitReply> r) ->
            new IommuUnitActor.RegisterDevice(r0, -1, r0, 8, true, true, dev, r));
        if (done != IommuUnitActor.Done.INSTANCE) {
          throw new IllegalStateException("register " + r0 + ": " + done);
        }
        devIds.add(fdAsk(fd, r -> new IoasidFdActor.DeviceBind(new IoasidFdActor.DeviceHandle(
            "dev" + r0, r0, -1, r0, 0, unit, dev), r), IoasidFdActor.DeviceBound.class).devId());
        rids.add(r0);
      }
      int ioas = fdAsk(fd, r -> new IoasidFdActor.IoasAlloc(0, r),
          IoasidFdActor.IoasAllocated.class).outIoasId();
      int faultId = fdAsk(fd, r -> new IoasidFdActor.FaultQueueAlloc(0, r),
          IoasidFdActor.FaultQueueAllocated.class).outFaultId();
      int hwpt = fdAsk(fd, r -> new IoasidFdActor.HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID,
          devIds.get(0), ioas, Uapi.HWPT_DATA_NONE, 0, faultId, r),
          IoasidFdActor.HwptAllocated.class).outHwptId();
      for (int devId : devIds) {
        fdAsk(fd, r -> new IoasidFdActor.DeviceAttach(devId, hwpt, r),
            IoasidFdActor.DeviceAttached.class);
      }
      fds.add(new Fd(fd, faultId, rids));
    }
    List<Integer> allRids = new ArrayList<>();
    fds.forEach(f -> allRids.addAll(f.rids()));

    System.out.printf("fault pipeline bench: mode %s, %d records per iteration, %d devices, 2 fds,"
        + " batch %d, parallelism %d, %d CPUs%n", mode, records, allRids.size(),
        pipeline.batchSize(), pipeline.parallelism(), Runtime.getRuntime().availableProcessors());
    double[] rates = new double[iterations];
    long published = 0;
    for (int it = -warmups; it < iterations; it++) {
      IommuUnitActor.FaultPipelineStats before = stats(unit);
      long start = System.nanoTime();
      long base = published;
      for (int sent = 0; sent < records; sent += CHUNK) {
        int n = Math.min(CHUNK, records - sent);
        if (mode.equals("dma")) {
          sendBursts(unit, bursts, allRids, n);
        } else {
          sendPageRequests(unit, allRids, sent, n);
        }
        window(unit, base + sent + n);
      }
      published += records;
      IommuUnitActor.FaultPipelineStats after = settle(unit, published);
      long ns = System.nanoTime() - start;
      long delivered = after.delivered() - before.delivered();
      long lost = after.lost() - before.lost();
      double rate = delivered * 1e9 / ns;
      System.out.printf("%s %2d: %,12.0f records/s delivered (%,d delivered, %,d lost, %,d batches,"
              + " %.1f records/batch) in %d ms%n",
          it < 0 ? "warm-up  " : "iteration", it < 0 ? it + warmups + 1 : it + 1, rate, delivered,
          lost, after.batches() - before.batches(),
          (double) delivered / Math.max(1, after.batches() - before.batches()),
          TimeUnit.NANOSECONDS.toMillis(ns));
      if (it >= 0) {
        rates[it] = rate;
      }
      if (!mode.equals("dma")) {
        for (Fd f : fds) {
          drain(f);
        }
      }
    }
    Arrays.sort(rates);
    System.out.printf("RESULT %s: median %,.0f records/s (min %,.0f, max %,.0f) over %d iterations"
        + "%n", mode, rates[iterations / 2], rates[0], rates[iterations - 1], iterations);
  }

  /**
   * Waits (1 ms polls) until at most {@link #WINDOW} of the {@code sent} records are not yet
   * settled, so the driver, like a set of devices, cannot run arbitrarily far ahead of the unit
   * and the pipeline (an unbounded mailbox backlog would measure the garbage collector).
   */
  private static void window(ActorRef<IommuUnitActor.Command> unit, long sent) throws Exception {
    while (true) {
      IommuUnitActor.FaultPipelineStats s = stats(unit);
      long settled = s.published() - s.inFlight();
      if (sent - settled <= WINDOW) {
        return;
      }
      Thread.sleep(1);
    }
  }

  /** One page request per record, each closing its group, round robin over the devices. */
  private static void sendPageRequests(
      ActorRef<IommuUnitActor.Command> unit, List<Integer> rids, int first, int records) {
    int n = rids.size();
    for (int k = first; k < first + records; k++) {
      int rid = rids.get(k % n);
      int seq = k / n;
      unit.tell(new IommuUnitActor.ReportPageRequest(rid, IommuUnitActor.NO_PASID, seq & 0x1FF,
          (long) seq << 12, Access.READ, true));
    }
  }

  /** Bursts of 256 untranslated reads of unmapped IOVAs: 256 DMA faults per message. */
  private static void sendBursts(ActorRef<IommuUnitActor.Command> unit,
      ActorRef<IommuUnitActor.BurstTranslated> replyTo, List<Integer> rids, int records) {
    int n = rids.size();
    for (int b = 0; b * BURST < records; b++) {
      int count = Math.min(BURST, records - b * BURST);
      long[] iovas = new long[count];
      int[] lengths = new int[count];
      int[] access = new int[count];
      for (int i = 0; i < count; i++) {
        iovas[i] = 0x4000_0000L + ((long) i << 12);
        lengths[i] = 64;
        access[i] = Access.READ;
      }
      unit.tell(new IommuUnitActor.TranslateBurst(rids.get(b % n), IommuUnitActor.NO_PASID, iovas,
          lengths, access, false, b, replyTo));
    }
  }

  private static IommuUnitActor.FaultPipelineStats stats(ActorRef<IommuUnitActor.Command> unit)
      throws Exception {
    return ask(unit, IommuUnitActor.GetFaultStats::new);
  }

  /** Polls (1 ms) until {@code published} records are published and none is in flight. */
  private static IommuUnitActor.FaultPipelineStats settle(
      ActorRef<IommuUnitActor.Command> unit, long published) throws Exception {
    while (true) {
      IommuUnitActor.FaultPipelineStats s = stats(unit);
      if (s.published() >= published && s.inFlight() == 0) {
        if (!s.conserved()) {
          throw new IllegalStateException("not conserved: " + s);
        }
        return s;
      }
      Thread.sleep(1);
    }
  }

  /** Reads every group of the fd's FAULT queue and answers it, so the next iteration starts empty. */
  private static void drain(Fd f) throws Exception {
    while (true) {
      IoasidFdActor.FaultRecords r = fdAsk(f.ref(),
          rr -> new IoasidFdActor.FaultRead(f.faultId(), (1 << 14) * Uapi.HWPT_PGFAULT_LEN, rr),
          IoasidFdActor.FaultRecords.class);
      if (r.records().isEmpty()) {
        return;
      }
      List<HwptPageResponse> answers = new ArrayList<>();
      for (var h : r.headers()) {
        if (!h.lostEvents()) {
          answers.add(new HwptPageResponse(h.cookie(), Uapi.PAGE_RESP_SUCCESS));
        }
      }
      fdAsk(f.ref(), rr -> new IoasidFdActor.FaultWrite(f.faultId(), answers, rr),
          IoasidFdActor.FaultWritten.class);
    }
  }
}
