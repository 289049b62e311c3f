package io.iommulab.loadtest;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.host.EdgeClock;
import io.iommulab.host.Host;
import io.iommulab.host.uapi.IommuFd;
import io.iommulab.host.uapi.VfioDevice;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * uAPI and DMA throughput of a host with many VMs, each figure printed beside the raw Pekko rates
 * measured in the same JVM with the same warm-up and repetition: see {@link
 * io.iommulab.loadtest} for what each figure measures and how to run it.
 */
public final class UapiThroughput {

  /** Command-line settings (key=value arguments). */
  record Options(int vms, int warmupSeconds, int iterations, double iterationSeconds, int burst, long seed,
      String only) {
    static Options parse(String[] args) {
      Map<String, String> kv = new LinkedHashMap<>();
      for (String a : args) {
        int eq = a.indexOf('=');
        if (eq < 0) {
          throw new IllegalArgumentException("argument " + a + ": expected key=value");
        }
        kv.put(a.substring(0, eq).replaceFirst("^--", ""), a.substring(eq + 1));
      }
      Options o = new Options(
          Integer.parseInt(kv.getOrDefault("vms", "1000")),
          Integer.parseInt(kv.getOrDefault("warmup", "5")),
          Integer.parseInt(kv.getOrDefault("iterations", "5")),
          Double.parseDouble(kv.getOrDefault("seconds", "2")),
          Integer.parseInt(kv.getOrDefault("burst", "32")),
          Long.parseLong(kv.getOrDefault("seed", "1")),
          kv.getOrDefault("only", "tell,ask,dma,mapunmap"));
      if (o.vms < 2 || o.vms > 60_000 || o.burst < 1 || o.burst > 512 || o.iterations < 1) {
        throw new IllegalArgumentException("vms 2..60000, burst 1..512, iterations >= 1: " + o);
      }
      return o;
    }
  }

  /** Mean and spread of one measurement's iterations, in operations per second. */
  record Rate(String name, double[] perIteration) {
    double mean() {
      double s = 0;
      for (double r : perIteration) {
        s += r;
      }
      return s / perIteration.length;
    }

    double stddev() {
      double m = mean();
      double s = 0;
      for (double r : perIteration) {
        s += (r - m) * (r - m);
      }
      return perIteration.length < 2 ? 0 : Math.sqrt(s / (perIteration.length - 1));
    }

    double min() {
      double m = Double.MAX_VALUE;
      for (double r : perIteration) {
        m = Math.min(m, r);
      }
      return m;
    }

    double max() {
      double m = 0;
      for (double r : perIteration) {
        m = Math.max(m, r);
      }
      return m;
    }

    @Override
    public String toString() {
      return String.format("%-34s %12.0f /s  ± %9.0f (sd)  [%.0f .. %.0f] over %d iterations", name, mean(),
          stddev(), min(), max(), perIteration.length);
    }
  }

  private static final Executor DIRECT = Runnable::run;

  public static void main(String[] args) throws Exception {
    Options o = Options.parse(args);
    System.out.printf("UapiThroughput: %d VMs, warm-up %d s per measurement, %d iterations of %.1f s, DMA bursts of %d"
        + " accesses, %d CPUs, %s%n", o.vms, o.warmupSeconds, o.iterations, o.iterationSeconds, o.burst,
        Runtime.getRuntime().availableProcessors(), System.getProperty("java.vm.name") + " "
            + System.getProperty("java.version"));
    try (Host host = Host.start("uapi-throughput", overrides(o), new EdgeClock(), FaultInjector.NONE)) {
      Bench b = new Bench(host, o);
      b.setUp();
      List<String> names = new ArrayList<>();
      List<Iteration> runs = new ArrayList<>();
      if (o.only.contains("tell")) {
        names.add("raw tell fan-out (msg)");
        runs.add(b::rawTellIteration);
      }
      if (o.only.contains("ask")) {
        names.add("raw ask, " + o.vms + " in flight (ask)");
        runs.add(b::rawAskIteration);
      }
      if (o.only.contains("dma")) {
        names.add("DMA translations (access)");
        runs.add(b::dmaIteration);
      }
      if (o.only.contains("mapunmap")) {
        names.add("map+unmap round trips (pair)");
        runs.add(b::mapUnmapIteration);
      }
      if (o.only.contains("skeleton")) {
        names.add("pair skeleton, no model (pair)");
        runs.add(b::skeletonIteration);
      }
      Map<String, Rate> rates = b.measureInterleaved(names, runs);
      b.tearDown();
      System.out.println();
      for (Rate r : rates.values()) {
        System.out.println(r);
      }
      System.out.println();
      ratio(rates, "DMA translations (access)", "raw tell fan-out (msg)", "DMA translations / raw tell", 0.5);
      ratio(rates, "map+unmap round trips (pair)", "raw ask, " + o.vms + " in flight (ask)",
          "map+unmap pairs  / raw ask ", 0.25);
      ratio(rates, "pair skeleton, no model (pair)", "raw ask, " + o.vms + " in flight (ask)",
          "skeleton pairs   / raw ask ", 0.25);
    }
  }

  /** The ratio of two measurements' means, and its spread over the rounds (same round, same load). */
  static void ratio(Map<String, Rate> rates, String num, String den, String label, double goal) {
    Rate n = rates.get(num);
    Rate d = rates.get(den);
    if (n == null || d == null) {
      return;
    }
    double[] perRound = new double[n.perIteration().length];
    for (int i = 0; i < perRound.length; i++) {
      perRound[i] = n.perIteration()[i] / d.perIteration()[i];
    }
    Rate r = new Rate(label, perRound);
    double mean = n.mean() / d.mean();
    System.out.printf("%s = %5.1f%% of the means; per round %5.1f%% ± %4.1f%% [%.1f%% .. %.1f%%]   (goal >= %.0f%%: %s)%n",
        label, 100 * mean, 100 * r.mean(), 100 * r.stddev(), 100 * r.min(), 100 * r.max(), 100 * goal,
        mean >= goal ? "met" : "MISSED");
  }

  /**
   * The host: device pools of non-ATS functions (so every access is translated by its unit, not
   * by a device TLB), half behind vtd0, half behind smmu0; enough memory for every VM.
   */
  static Map<String, Object> overrides(Options o) {
    int half = o.vms / 2;
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("iommulab.host.seed", o.seed);
    m.put("iommulab.topology.host-memory", "64GiB");
    m.put("iommulab.topology.device-pools", List.of(
        Map.of("name-prefix", "bv", "count", half, "unit", "vtd0", "first-rid", "10:00.0", "first-group", 100),
        Map.of("name-prefix", "bs", "count", o.vms - half, "unit", "smmu0", "first-rid", "10:00.0",
            "first-group", 100 + half)));
    m.put("pekko.loglevel", "WARNING");
    return m;
  }

  /** What one measurement runs: one iteration of about {@code seconds}, returning operations done. */
  @FunctionalInterface
  interface Iteration {
    long run(long nanos) throws Exception;
  }

  static final class Bench {
    final Host host;
    final Options o;
    final List<ActorRef<Counter.Msg>> counters = new ArrayList<>();
    final List<ActorRef<Echo.Ping>> echoes = new ArrayList<>();
    final List<Guest> guests = new ArrayList<>();

    /** One VM: its fd handle, its IOAS with a device attached (a domain), its device. */
    record Guest(Host.Vm vm, IommuFd fd, int ioas, DeviceHandle device, long va, long bufferIova) {}

    Bench(Host host, Options o) {
      this.host = host;
      this.o = o;
    }

    /**
     * Warms every measurement up (round-robin, {@code warmup} seconds in all), then runs {@code
     * iterations} rounds, each running every measurement once for {@code seconds}: on a shared
     * machine the figures of one round saw the same load, so their ratios are comparable.
     */
    Map<String, Rate> measureInterleaved(List<String> names, List<Iteration> runs) throws Exception {
      long nanos = (long) (o.iterationSeconds * 1e9);
      long warmEnd = System.nanoTime() + TimeUnit.SECONDS.toNanos(o.warmupSeconds);
      do {
        for (Iteration it : runs) {
          it.run(Math.min(nanos, TimeUnit.SECONDS.toNanos(1)));
        }
      } while (System.nanoTime() < warmEnd);
      double[][] rates = new double[runs.size()][o.iterations];
      for (int i = 0; i < o.iterations; i++) {
        for (int k = 0; k < runs.size(); k++) {
          long c0 = cpuNanos();
          long a0 = allocatedBytes();
          long t0 = System.nanoTime();
          long ops = runs.get(k).run(nanos);
          long t1 = System.nanoTime();
          long c1 = cpuNanos();
          long a1 = allocatedBytes();
          rates[k][i] = ops * 1e9 / (t1 - t0);
          // The process's CPU time per operation depends less on how much of the shared machine
          // the other jobs took (the cores figure says how much of it this run got); the bytes
          // allocated per operation not at all.
          System.out.printf("  round %d  %-34s %12.0f /s   %7.2f us CPU/op on %.2f cores, %6.0f B/op%n", i + 1,
              names.get(k), rates[k][i], (c1 - c0) / 1e3 / Math.max(1, ops), (c1 - c0) / (double) (t1 - t0),
              (a1 - a0) / (double) Math.max(1, ops));
        }
      }
      Map<String, Rate> out = new LinkedHashMap<>();
      for (int k = 0; k < runs.size(); k++) {
        out.put(names.get(k), new Rate(names.get(k), rates[k]));
      }
      return out;
    }

    /** CPU time of the whole JVM (every thread: dispatchers, GC, JIT), or 0 where unknown. */
    static long cpuNanos() {
      return java.lang.management.ManagementFactory.getOperatingSystemMXBean()
          instanceof com.sun.management.OperatingSystemMXBean os ? os.getProcessCpuTime() : 0;
    }

    /** Bytes allocated so far by the live threads (the dispatchers' threads live for the run). */
    static long allocatedBytes() {
      if (!(java.lang.management.ManagementFactory.getThreadMXBean()
          instanceof com.sun.management.ThreadMXBean t)) {
        return 0;
      }
      long sum = 0;
      for (long b : t.getThreadAllocatedBytes(t.getAllThreadIds())) {
        sum += Math.max(0, b);
      }
      return sum;
    }

    void setUp() throws Exception {
      for (int i = 0; i < o.vms; i++) {
        counters.add(host.system().systemActorOf(Counter.create(), "counter-" + i, Props.empty()));
        echoes.add(host.system().systemActorOf(Echo.create(), "echo-" + i, Props.empty()));
      }
      List<String> devices = new ArrayList<>();
      for (String name : host.topology().toCompletableFuture().get(60, TimeUnit.SECONDS).devices().keySet()) {
        if (name.startsWith("bv-") || name.startsWith("bs-")) {
          devices.add(name);
        }
      }
      List<CompletableFuture<Guest>> starting = new ArrayList<>();
      for (int i = 0; i < o.vms; i++) {
        starting.add(guest(1 + i, devices.get(i)).toCompletableFuture());
      }
      for (CompletableFuture<Guest> g : starting) {
        guests.add(g.get(120, TimeUnit.SECONDS));
      }
    }

    /** A VM with one device: a uAPI fd, the device bound and attached to an IOAS, a 2 MiB buffer mapped. */
    private CompletionStage<Guest> guest(int vmId, String device) {
      Executor ex = host.executor();
      return host.createVm(vmId, 8L << 20, PageSize.SIZE_2M, List.of(device))
          .thenComposeAsync(v -> {
            Host.Vm vm = value(v, "create vm " + vmId);
            return vm.openUapiFd().thenComposeAsync(f -> {
              // The handle converts replies where they arrive (a direct executor), as the raw ask's
              // continuation runs: both sides pay one ask per call and nothing more.
              IommuFd fd = new IommuFd(value(f, "open").ref(), host.system().scheduler(), DIRECT,
                  Duration.ofSeconds(30));
              DeviceHandle dev = vm.devices().get(0);
              VfioDevice vfio = new VfioDevice(fd, dev.bindHandle());
              long va = vm.layout().userVaBase();
              return vfio.bind()
                  .thenComposeAsync(b -> fd.ioasAlloc(), ex)
                  .thenComposeAsync(ioas -> vfio.attach(value(ioas, "ioas"))
                      .thenComposeAsync(a -> {
                        value(a, "attach " + device);
                        // A resident buffer for DMA, apart from the IOVA the map+unmap loop uses.
                        return fd.ioasMap(IommuFd.IoasMap.fixed(ioas.value(), va, 2L << 20, 64L << 20));
                      }, ex)
                      .thenApplyAsync(m -> new Guest(vm, fd, ioas.value(), dev, va, value(m, "map")), ex), ex);
            }, ex);
          }, ex);
    }

    void tearDown() throws Exception {
      var report = host.shutdown().toCompletableFuture().get(120, TimeUnit.SECONDS);
      if (!report.clean()) {
        throw new IllegalStateException("the host's report is not clean: " + report.leaks() + " " + report.failures());
      }
    }

    static <T> T value(Outcome<T> o, String what) {
      if (!o.isOk()) {
        throw new IllegalStateException(what + ": " + o);
      }
      return o.value();
    }

    // ---------------------------------------------------------------- raw tell

    /** Windows of {@code PER_ACTOR} tells to each counter from this thread, each window awaited. */
    long rawTellIteration(long nanos) throws Exception {
      final int perActor = 1000;
      long end = System.nanoTime() + nanos;
      long sent = 0;
      while (System.nanoTime() < end) {
        CountDownLatch done = new CountDownLatch(counters.size());
        Counter.Window w = new Counter.Window(perActor, done);
        for (ActorRef<Counter.Msg> c : counters) {
          c.tell(w);
        }
        for (int k = 0; k < perActor; k++) {
          for (ActorRef<Counter.Msg> c : counters) {
            c.tell(Counter.Tick.INSTANCE);
          }
        }
        if (!done.await(60, TimeUnit.SECONDS)) {
          throw new IllegalStateException("counters did not finish their window");
        }
        sent += (long) perActor * counters.size();
      }
      return sent;
    }

    // ---------------------------------------------------------------- raw ask

    long rawAskIteration(long nanos) throws Exception {
      return drive(echoes.size(), nanos,
          i -> AskPattern.<Echo.Ping, Echo.Ping>ask(echoes.get(i), Echo.Ping::new, Duration.ofSeconds(30),
              host.system().scheduler()));
    }

    // ---------------------------------------------------------------- map + unmap

    long mapUnmapIteration(long nanos) throws Exception {
      return drive(guests.size(), nanos, i -> {
        Guest g = guests.get(i);
        return g.fd().ioasMap(IommuFd.IoasMap.fixed(g.ioas(), g.va() + (2L << 20), 2L << 20, 16L << 20))
            .thenComposeAsync(m -> {
              if (!m.isOk()) {
                return CompletableFuture.completedFuture(m);
              }
              return g.fd().ioasUnmap(new IommuFd.IoasUnmap(g.ioas(), 16L << 20, 2L << 20));
            }, DIRECT);
      });
    }

    // ---------------------------------------------------------------- the pair's skeleton

    List<ActorRef<PairSkeleton.FdMsg>> skeleton;

    long skeletonIteration(long nanos) throws Exception {
      if (skeleton == null) {
        skeleton = PairSkeleton.start(host.system(), guests.size(), 2);
      }
      return drive(skeleton.size(), nanos, i -> PairSkeleton.pair(host.system(), skeleton.get(i), DIRECT));
    }

    // ---------------------------------------------------------------- DMA

    /**
     * One DMA engine per VM (an actor telling its device bursts, one in flight), each burst
     * {@code burst} reads and writes spread over the VM's resident 2 MiB buffer; counts accesses
     * that completed OK.
     */
    long dmaIteration(long nanos) throws Exception {
      long end = System.nanoTime() + nanos;
      AtomicLong accesses = new AtomicLong();
      CountDownLatch stopped = new CountDownLatch(guests.size());
      for (int i = 0; i < guests.size(); i++) {
        Guest g = guests.get(i);
        host.system().systemActorOf(DmaEngine.create(g.device().device(), g.bufferIova(), o.burst, end, i,
            accesses, stopped), "dma-" + i + "-" + end, Props.empty());
      }
      if (!stopped.await(120, TimeUnit.SECONDS)) {
        throw new IllegalStateException("DMA engines did not stop");
      }
      return accesses.get();
    }

    // ---------------------------------------------------------------- driving asks

    /** Keeps one call in flight per index until {@code nanos} passed; returns the calls completed. */
    static long drive(int n, long nanos, IntFunction<CompletionStage<?>> call) throws Exception {
      AtomicLong done = new AtomicLong();
      long end = System.nanoTime() + nanos;
      List<CompletableFuture<Void>> loops = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        CompletableFuture<Void> finished = new CompletableFuture<>();
        loops.add(finished);
        loop(i, call, done, end, finished);
      }
      CompletableFuture.allOf(loops.toArray(new CompletableFuture<?>[0])).get(120, TimeUnit.SECONDS);
      return done.get();
    }

    private static void loop(int i, IntFunction<CompletionStage<?>> call, AtomicLong done, long end,
        CompletableFuture<Void> finished) {
      call.apply(i).whenCompleteAsync((r, e) -> {
        if (e != null || (r instanceof Outcome<?> o && !o.isOk())) {
          finished.completeExceptionally(e != null ? e : new IllegalStateException(String.valueOf(r)));
          return;
        }
        done.incrementAndGet();
        if (System.nanoTime() < end) {
          loop(i, call, done, end, finished);
        } else {
          finished.complete(null);
        }
      }, DIRECT);
    }
  }

  // ================================================================ raw actors

  /** Counts ticks; a window says how many to expect and whom to tell when they arrived. */
  static final class Counter extends AbstractBehavior<Counter.Msg> {
    interface Msg {}

    enum Tick implements Msg {
      INSTANCE
    }

    record Window(int ticks, CountDownLatch done) implements Msg {}

    private long left;
    private CountDownLatch done;

    static Behavior<Msg> create() {
      return Behaviors.setup(Counter::new);
    }

    private Counter(ActorContext<Msg> context) {
      super(context);
    }

    @Override
    public Receive<Msg> createReceive() {
      return newReceiveBuilder()
          .onMessageEquals(Tick.INSTANCE, this::onTick)
          .onMessage(Window.class, w -> {
            left = w.ticks();
            done = w.done();
            return this;
          })
          .build();
    }

    private Behavior<Msg> onTick() {
      if (--left == 0) {
        done.countDown();
      }
      return this;
    }
  }

  /** Answers every ping. */
  static final class Echo {
    record Ping(ActorRef<Ping> replyTo) {}

    static Behavior<Ping> create() {
      return Behaviors.receive(Ping.class).onMessage(Ping.class, p -> {
        p.replyTo().tell(p);
        return Behaviors.same();
      }).build();
    }
  }

  /** A device's DMA engine: one burst in flight, the next one sent when the last completed. */
  static final class DmaEngine extends AbstractBehavior<DeviceActor.DmaCompleted> {
    private final ActorRef<DeviceActor.Command> device;
    private final long base;
    private final int burst;
    private final long end;
    private final AtomicLong accesses;
    private final CountDownLatch stopped;
    private long next;
    private long tag;

    static Behavior<DeviceActor.DmaCompleted> create(ActorRef<DeviceActor.Command> device, long base, int burst,
        long end, int index, AtomicLong accesses, CountDownLatch stopped) {
      return Behaviors.setup(ctx -> new DmaEngine(ctx, device, base, burst, end, index, accesses, stopped));
    }

    private DmaEngine(ActorContext<DeviceActor.DmaCompleted> ctx, ActorRef<DeviceActor.Command> device, long base,
        int burst, long end, int index, AtomicLong accesses, CountDownLatch stopped) {
      super(ctx);
      this.device = device;
      this.base = base;
      this.burst = burst;
      this.end = end;
      this.accesses = accesses;
      this.stopped = stopped;
      this.next = (long) index * 7;
      send();
    }

    private void send() {
      long[] iovas = new long[burst];
      int[] lengths = new int[burst];
      int[] access = new int[burst];
      for (int i = 0; i < burst; i++) {
        // 512 pages of the 2 MiB buffer, visited in a stride so bursts touch different pages.
        iovas[i] = base + ((next++ * 97) & 511) * 4096 + (i & 31) * 64;
        lengths[i] = 64;
        access[i] = (i & 1) == 0 ? Access.READ : Access.WRITE;
      }
      device.tell(new DeviceActor.DmaBurst(IommuUnitActor.NO_PASID, iovas, lengths, access, ++tag, getContext().getSelf()));
    }

    @Override
    public Receive<DeviceActor.DmaCompleted> createReceive() {
      return newReceiveBuilder().onMessage(DeviceActor.DmaCompleted.class, this::onCompleted).build();
    }

    private Behavior<DeviceActor.DmaCompleted> onCompleted(DeviceActor.DmaCompleted c) {
      int ok = 0;
      for (byte s : c.status()) {
        if (s == DeviceActor.STATUS_OK) {
          ok++;
        }
      }
      if (ok != c.status().length) {
        throw new IllegalStateException("DMA to a mapped buffer failed: " + java.util.Arrays.toString(c.status()));
      }
      accesses.addAndGet(ok);
      if (System.nanoTime() < end) {
        send();
        return this;
      }
      stopped.countDown();
      return Behaviors.stopped();
    }
  }
}
