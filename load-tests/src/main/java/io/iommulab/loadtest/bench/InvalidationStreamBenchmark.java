package io.iommulab.loadtest.bench;

import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import io.iommulab.config.IotlbSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.cost.CostModel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Invalidations per second through one IOMMU unit's invalidation stream, with many concurrent
 * issuers, end to end through the actors: the unit actor (page-table unmap, admission into the
 * stream), the stream (batching, merging), the unit actor again (executing each merged batch on
 * the model's queue), the device actor (ATC invalidation and its acknowledgement, when ATS is on)
 * and the answers back to the issuers.
 *
 * <pre>
 *   issuer 0 ─┐  UnmapRange(1 page)           ┌─ strict: Unmapped after the batch's sync + acks
 *   issuer 1 ─┤ ──────────▶ unit actor ──▶ stream (batch | flush queue) ──▶ unit actor: execute
 *     ...     │  one in flight per issuer       │   merge adjacent pages,      ├─▶ device actor
 *   issuer N ─┘                                 │   widen, IOTLB → ATC → Wait  │   (ATS: ack)
 *                                               └─ deferred: Unmapped at once, FlushCompleted later
 *
 *   One op = one single-page UnmapRange answered (and, deferred, its FlushCompleted received).
 *   An invocation = 4096 ops: N issuers × 4096/N pages, each issuer unmapping its own adjacent
 *   pages one after the other; the pages are mapped again (one MapRange per issuer) before each
 *   invocation, outside the measurement.
 * </pre>
 *
 * <p>Parameters: {@code mode} strict or deferred (flush queue 256 entries / 10 ms; 4096 is a
 * multiple of 256, so no invocation ends waiting for the timer); {@code ats}: an ATS device is
 * attached, so every batch also waits for a device-TLB acknowledgement (an actor round trip);
 * {@code issuers}: concurrent issuers, 1 (no batching possible in strict mode: the latency-bound
 * rate) to 256. The unit's wall clock is {@code System::nanoTime}, handed in at the edge as the
 * host does; Kamon runs without reporters.
 *
 * <p>Invalidates the number: an unmap refused or answered with a byte count other than one page
 * (the issuer fails the invocation); a deferred invocation that ends before every token was
 * flushed (it cannot: the issuer waits for them).
 *
 * <pre>
 *   mvn -q -pl load-tests -am package -DskipTests
 *   java -jar load-tests/target/benchmarks.jar InvalidationStream
 * </pre>
 *
 * <p>Measured (2 cores, JDK 17, 6 × 2 s warm-up, 8 × 2 s, medians of the iterations, ops/s;
 * iterations vary ±30% on this shared VM):
 *
 * <pre>
 *   issuers   strict    strict+ATS   deferred   deferred+ATS
 *         1    67 k        69 k        308 k        325 k      strict: no batching possible
 *        16   217 k       165 k        719 k        637 k
 *       256   328 k       241 k        333 k        251 k      deferred: one FlushCompleted per
 *                                                              issuer and flush (256 per batch)
 * </pre>
 */
@BenchmarkMode(org.openjdk.jmh.annotations.Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 6, time = 2)
@Measurement(iterations = 8, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g", "-XX:+AlwaysPreTouch"})
@State(Scope.Benchmark)
public class InvalidationStreamBenchmark {

  static final int OPS = 4096;
  static final long PAGE = 4096;
  static final long IOVA = 0x1000_0000L;
  static final int RID = 0x0200;

  @Param({"strict", "deferred"})
  public String mode;

  @Param({"false", "true"})
  public boolean ats;

  @Param({"1", "16", "256"})
  public int issuers;

  private ActorSystem<Void> system;
  private ActorRef<IommuUnitActor.Command> unit;
  private int domain;
  private final List<ActorRef<Issuer.Msg>> issuerRefs = new ArrayList<>();

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    system = ActorSystem.create(Behaviors.empty(), "bench",
        ConfigFactory.parseString("pekko.loglevel = WARNING\npekko.stdout-loglevel = WARNING")
            .withFallback(ConfigFactory.load()));
    // 4 KiB pages only: every unmap of the benchmark is one leaf, never a cut large page.
    PagingUnitSettings vtd = new PagingUnitSettings(
        "vtd0", UnitKind.VTD, 48, List.of(PAGE), true, true, true, true, 20,
        64, new IotlbSettings(64, 8, IotlbSettings.Eviction.LRU), 256, 18, false);
    ManualClock clock = new ManualClock(1_000);
    ActorRef<HostMemoryActor.Command> memory = spawn(HostMemoryActor.create(
        new TopologySettings(1L << 30, List.of(vtd), List.of(), List.of()), FaultInjector.NONE),
        "memory");
    InvalidationPipelineSettings pipeline =
        InvalidationPipelineSettings.defaults()
            .withMode("deferred".equals(mode) ? Mode.DEFERRED : Mode.STRICT);
    unit = spawn(IommuUnitActor.create(0, vtd, CostModel.defaults(), clock, 7, FaultInjector.NONE,
        memory, Map.of(), pipeline, FaultPipelineSettings.defaults(), System::nanoTime), "unit");
    DeviceSettings device = new DeviceSettings("gpu", "vtd0", "02:00.0", OptionalInt.empty(), 2,
        ats ? 8 : 0, ats, ats ? 64 : 0, false, 4, false, false);
    ActorRef<DeviceActor.Command> dev =
        spawn(DeviceActor.create(device, 0, unit, memory, clock, 3), "gpu");
    ask(r -> new IommuUnitActor.RegisterDevice(RID, -1, 2, ats ? 8 : 0, ats, false, dev, r));
    ask(r -> new IommuUnitActor.ClaimDmaOwner(RID, 5, 1, r));
    domain = ((IommuUnitActor.DomainAllocated) ask(r -> new IommuUnitActor.AllocDomain(
        IommuUnitActor.DomainType.PAGING, false, false, 0, r))).domainId();
    ask(r -> new IommuUnitActor.Attach(RID, IommuUnitActor.NO_PASID, domain, null, 0L, r));
    int pages = OPS / issuers;
    for (int i = 0; i < issuers; i++) {
      issuerRefs.add(spawn(Issuer.create(unit, domain, IOVA + (long) i * pages * PAGE, pages,
          "deferred".equals(mode)), "issuer-" + i));
    }
  }

  @Setup(Level.Invocation)
  public void mapEveryIssuersPages() throws Exception {
    int pages = OPS / issuers;
    for (int i = 0; i < issuers; i++) {
      long iova = IOVA + (long) i * pages * PAGE;
      IommuUnitActor.UnitReply r = ask(to -> new IommuUnitActor.MapRange(domain, iova,
          new long[] {0x100_0000L}, new long[] {pages * PAGE}, Access.READ_WRITE, to));
      if (!(r instanceof IommuUnitActor.Mapped)) {
        throw new IllegalStateException("map refused: " + r);
      }
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() throws Exception {
    system.terminate();
    system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  @Benchmark
  @OperationsPerInvocation(OPS)
  public void unmapOnePageEach() throws Exception {
    List<CompletableFuture<Void>> done = new ArrayList<>(issuers);
    for (ActorRef<Issuer.Msg> issuer : issuerRefs) {
      CompletableFuture<Void> f = new CompletableFuture<>();
      issuer.tell(new Issuer.Start(f));
      done.add(f);
    }
    CompletableFuture.allOf(done.toArray(new CompletableFuture<?>[0])).get(60, TimeUnit.SECONDS);
  }

  private <T> ActorRef<T> spawn(Behavior<T> behavior, String name) {
    return system.systemActorOf(behavior, name, Props.empty());
  }

  private IommuUnitActor.UnitReply ask(
      Function<ActorRef<IommuUnitActor.UnitReply>, IommuUnitActor.Command> command)
      throws Exception {
    // Setup only: blocking on the answer is fine here, and get() needs no callback executor.
    return AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(unit,
            command::apply, Duration.ofSeconds(10), system.scheduler())
        .toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  /**
   * One issuer (an fd's unmap path): unmaps its pages one after the other, one call in flight,
   * and in deferred mode waits for every flush token before it reports the round done, as an fd
   * would before reusing the IOVA.
   */
  static final class Issuer extends AbstractBehavior<Issuer.Msg> {
    sealed interface Msg permits Start, Replied, Flushed {}

    record Start(CompletableFuture<Void> done) implements Msg {}

    record Replied(IommuUnitActor.UnitReply reply) implements Msg {}

    record Flushed(IommuUnitActor.FlushCompleted event) implements Msg {}

    static Behavior<Msg> create(
        ActorRef<IommuUnitActor.Command> unit, int domain, long base, int pages, boolean deferred) {
      return Behaviors.setup(ctx -> new Issuer(ctx, unit, domain, base, pages, deferred));
    }

    private final ActorRef<IommuUnitActor.Command> unit;
    private final int domain;
    private final long base;
    private final int pages;
    private final ActorRef<IommuUnitActor.UnitReply> replies;
    private final ActorRef<IommuUnitActor.FlushCompleted> flushes;
    private CompletableFuture<Void> done;
    private int next;
    private int unflushed;

    private Issuer(ActorContext<Msg> ctx, ActorRef<IommuUnitActor.Command> unit, int domain,
        long base, int pages, boolean deferred) {
      super(ctx);
      this.unit = unit;
      this.domain = domain;
      this.base = base;
      this.pages = pages;
      this.replies = ctx.messageAdapter(IommuUnitActor.UnitReply.class, Replied::new);
      this.flushes = deferred ? ctx.messageAdapter(IommuUnitActor.FlushCompleted.class, Flushed::new)
          : null;
    }

    @Override
    public Receive<Msg> createReceive() {
      return newReceiveBuilder()
          .onMessage(Start.class, this::onStart)
          .onMessage(Replied.class, this::onReplied)
          .onMessage(Flushed.class, this::onFlushed)
          .build();
    }

    private Behavior<Msg> onStart(Start s) {
      done = s.done();
      next = 0;
      unmapNext();
      return this;
    }

    private void unmapNext() {
      unit.tell(new IommuUnitActor.UnmapRange(domain, base + next * PAGE, PAGE, flushes, replies));
    }

    private Behavior<Msg> onReplied(Replied r) {
      if (!(r.reply() instanceof IommuUnitActor.Unmapped u) || u.bytes() != PAGE) {
        done.completeExceptionally(new IllegalStateException("unmap answered " + r.reply()));
        return this;
      }
      if (u.deferred()) {
        unflushed++;
      }
      if (++next < pages) {
        unmapNext();
      } else {
        finishIfFlushed();
      }
      return this;
    }

    private Behavior<Msg> onFlushed(Flushed f) {
      unflushed -= f.event().tokens().length;
      finishIfFlushed();
      return this;
    }

    private void finishIfFlushed() {
      if (next == pages && unflushed == 0) {
        done.complete(null);
      }
    }
  }
}
