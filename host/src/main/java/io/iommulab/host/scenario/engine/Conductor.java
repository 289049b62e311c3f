package io.iommulab.host.scenario.engine;

import io.iommulab.actors.Asks;
import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.TenantSettings;
import io.iommulab.config.scenario.Units;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.host.HostGuardian;
import io.iommulab.host.scenario.EngineOutcome;
import io.iommulab.host.scenario.IntervalMerger;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.RunListener;
import io.iommulab.host.scenario.ScenarioRun;
import io.iommulab.host.scenario.TenantSample;
import io.iommulab.host.scenario.TraceEvent;
import io.iommulab.host.scenario.Violation;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ChildFailed;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The engine's one collector and the run's lifecycle: it spawns the {@link Workload} actors (one
 * per VM, or per group of VMs of a tenant with many), ends every interval on the run's clock by
 * asking each workload to drain its recorder, merges the samples ({@link IntervalMerger}) and
 * hands each interval to the listener in order; it passes violations on as they are seen (the
 * VMs' stale-translation oracle through the workloads; the host memory's isolation oracle, which
 * it reads at each interval's end); at the end of the run it has the workloads finish and close
 * their fds, closes the last interval, and judges the oracles only the engine sees: fd close (what
 * each close left behind) and fault conservation (every unit's fault pipeline: published =
 * delivered + lost once nothing is in flight). Its notes give what the per-tenant metrics cannot:
 * the units' counters over the run (translations, IOTLB hits, faults, page requests, invalidation
 * descriptors), the fault pipelines, the MSI banks (vectors, owners, isolation), errnos.
 */
final class Conductor extends AbstractBehavior<Conductor.Command> {

  /** Tenants with more VMs than this are driven by groups of VMs per workload actor. */
  static final int MAX_ACTORS_PER_TENANT = 64;
  static final int MAX_RECORDED = OracleResult.MAX_RECORDED;
  /** How long the fault pipelines may take to settle what is in flight at the end. */
  static final Duration FAULT_SETTLE = Duration.ofSeconds(10);

  interface Command extends CborSerializable {}

  enum StopRequested implements Command {
    INSTANCE
  }

  private record TopologyAnswered(HostGuardian.Topology topology, String failure) implements Command {}

  private record Boundary(int index) implements Command {}

  private record Grace(int index) implements Command {}

  private enum EndOfRun implements Command {
    INSTANCE
  }

  private enum FinishTimeout implements Command {
    INSTANCE
  }

  private enum FaultCheck implements Command {
    INSTANCE
  }

  private record MemoryAnswered(HostMemoryActor.MemoryReport report, boolean last) implements Command {}

  private record UnitStatsAnswered(int unitId, IommuUnitActor.UnitStats stats, boolean atEnd) implements Command {}

  private record FaultStatsAnswered(int unitId, IommuUnitActor.FaultPipelineStats stats) implements Command {}

  /** {@code beforeTeardown}: asked when the workload ended, before the VMs gave their vectors back. */
  private record BankAnswered(int index, MsiBankActor.BankReply reply, boolean beforeTeardown) implements Command {}

  static Behavior<Command> create(ScenarioRun run, CompletableFuture<EngineOutcome> outcome) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(t -> new Conductor(ctx, t, run, outcome)));
  }

  private enum Phase {
    RUN,
    FINISHING,
    CHECKING,
    DONE
  }

  private final TimerScheduler<Command> timers;
  private final ScenarioRun run;
  private final ScenarioSettings scenario;
  private final RunListener listener;
  private final ModeledClock clock;
  private final CompletableFuture<EngineOutcome> outcome;
  private final long start;
  private final long interval;
  private final long plannedEnd;
  private final Duration askTimeout;
  private final IntervalMerger merger = new IntervalMerger();
  private final Map<Integer, String> tenantOfVm = new HashMap<>();
  private final List<ActorRef<Workload.Command>> workloads = new ArrayList<>();
  private final List<Messages.WorkloadReport> reports = new ArrayList<>();
  private final List<String> notes = new ArrayList<>();
  private final Map<String, long[]> setups = new LinkedHashMap<>();
  private final Map<Integer, IommuUnitActor.UnitStats> unitsAtStart = new TreeMap<>();
  private final Map<Integer, IommuUnitActor.UnitStats> unitsAtEnd = new TreeMap<>();
  private final Map<Integer, IommuUnitActor.FaultPipelineStats> faultStats = new TreeMap<>();
  private final Map<Integer, MsiBankActor.BankState> banks = new TreeMap<>();
  private final Map<Integer, MsiBankActor.BankState> banksBeforeTeardown = new TreeMap<>();
  private HostGuardian.Topology topology;
  private Phase phase = Phase.RUN;
  private int open; // the interval being filled
  private int draining = -1; // the interval whose samples are awaited
  private int samplesPending;
  private int finishedPending;
  private int checksPending;
  private int faultChecks;
  private boolean stoppedEarly;
  private long endNanos;
  private long memoryViolationsSeen;
  private int memoryLogSeen;

  private Conductor(
      ActorContext<Command> context,
      TimerScheduler<Command> timers,
      ScenarioRun run,
      CompletableFuture<EngineOutcome> outcome) {
    super(context);
    this.timers = timers;
    this.run = run;
    this.scenario = run.scenario();
    this.listener = run.listener();
    this.clock = run.clock();
    this.outcome = outcome;
    this.start = run.startNanos();
    this.interval = scenario.interval().toNanos();
    this.plannedEnd = start + scenario.duration().toNanos();
    this.askTimeout = run.host().hostSettings().askTimeout();
    for (TenantSettings t : scenario.tenants()) {
      for (int i = 0; i < t.vms(); i++) {
        tenantOfVm.put(t.vmId(i), t.name());
      }
    }
    scheduleBoundary(0);
    Asks.ask(context, run.host().system(), askTimeout, HostGuardian.GetTopology::new,
        (t, f) -> new TopologyAnswered(t, f == null ? null : f.toString()));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(TopologyAnswered.class, this::onTopology)
        .onMessage(Boundary.class, b -> onBoundary(b.index()))
        .onMessage(Grace.class, g -> onGrace(g.index()))
        .onMessage(Messages.Sampled.class, this::onSampled)
        .onMessage(Messages.ViolationSeen.class, v -> {
          listener.onViolation(v.violation());
          return this;
        })
        .onMessage(Messages.SetupDone.class, this::onSetupDone)
        .onMessage(MemoryAnswered.class, this::onMemory)
        .onMessage(EndOfRun.class, e -> endRun(false))
        .onMessage(StopRequested.class, s -> endRun(true))
        .onMessage(Messages.Finished.class, this::onFinished)
        .onMessage(FinishTimeout.class, t -> onFinishTimeout())
        .onMessage(UnitStatsAnswered.class, this::onUnitStats)
        .onMessage(FaultStatsAnswered.class, this::onFaultStats)
        .onMessage(FaultCheck.class, c -> askFaultStats())
        .onMessage(BankAnswered.class, this::onBank)
        .onSignal(ChildFailed.class, this::onChildFailed)
        .onSignal(PostStop.class, s -> {
          if (!outcome.isDone()) {
            outcome.completeExceptionally(new IllegalStateException("the engine's conductor stopped before the run ended"));
          }
          return this;
        })
        .build();
  }

  // ================================================================ start

  private Behavior<Command> onTopology(TopologyAnswered a) {
    if (a.topology() == null) {
      outcome.completeExceptionally(new IllegalStateException("the host did not give its topology: " + a.failure()));
      return Behaviors.stopped();
    }
    topology = a.topology();
    for (HostGuardian.UnitEntry u : topology.units()) {
      int id = u.unitId();
      Asks.ask(getContext(), u.unit(), askTimeout, IommuUnitActor.GetStats::new,
          (s, f) -> new UnitStatsAnswered(id, s, false));
    }
    if (phase != Phase.RUN) {
      return finishAll();
    }
    Workload.Env env = new Workload.Env(clock, start, scenario.seed(), askTimeout, run.host().system(),
        getContext().getSelf(), topology.msiBanks());
    // Every VM's stream is split from the scenario's seed in VM-id order: the same seed replays.
    SplittableRandom seeds = new SplittableRandom(scenario.seed());
    List<String> layout = new ArrayList<>();
    for (TenantSettings t : scenario.tenants()) {
      int perActor = Math.max(1, (t.vms() + MAX_ACTORS_PER_TENANT - 1) / MAX_ACTORS_PER_TENANT);
      List<Workload.Vm> group = new ArrayList<>();
      int actors = 0;
      for (int i = 0; i < t.vms(); i++) {
        group.add(new Workload.Vm(t.vmId(i), t.vmDevices().get(i), seeds.split().nextLong()));
        if (group.size() == perActor || i == t.vms() - 1) {
          ActorRef<Workload.Command> ref =
              getContext().spawn(Workload.create(env, t, group), "workload-" + t.name() + "-" + actors++);
          getContext().watch(ref);
          workloads.add(ref);
          group = new ArrayList<>();
        }
      }
      layout.add(t.name() + " " + t.vms() + " VMs in " + actors + " actor" + (actors == 1 ? "" : "s"));
    }
    notes.add("engine: one workload actor per VM, or per group of VMs of a large tenant: " + String.join(", ", layout));
    return this;
  }

  private Behavior<Command> onSetupDone(Messages.SetupDone s) {
    // tenant → {actors reported, VMs, ready, longest setup}
    long[] t = setups.computeIfAbsent(s.tenant(), k -> new long[4]);
    t[0]++;
    t[1] += s.vms();
    t[2] += s.ready();
    t[3] = Math.max(t[3], s.tookNanos());
    return this;
  }

  // ================================================================ intervals

  private void scheduleBoundary(int index) {
    long at = start + (index + 1) * interval;
    if (at >= plannedEnd) {
      timers.startSingleTimer(EndOfRun.INSTANCE, EndOfRun.INSTANCE, Duration.ofNanos(Math.max(0, plannedEnd - clock.nanos())));
    } else {
      timers.startSingleTimer("boundary", new Boundary(index), Duration.ofNanos(Math.max(0, at - clock.nanos())));
    }
  }

  private Behavior<Command> onBoundary(int index) {
    if (phase != Phase.RUN) {
      return this;
    }
    if (draining >= 0) {
      close(draining, (draining + 1) * interval);
    }
    draining = index;
    samplesPending = workloads.size();
    for (ActorRef<Workload.Command> w : workloads) {
      w.tell(new Workload.Drain(index));
    }
    pollMemory(false);
    scheduleBoundary(index + 1);
    if (samplesPending == 0) {
      close(index, (index + 1) * interval);
    } else {
      timers.startSingleTimer("grace", new Grace(index), Duration.ofNanos(Math.min(interval / 2, 2_000_000_000L)));
    }
    return this;
  }

  private Behavior<Command> onSampled(Messages.Sampled s) {
    // A late sample (its interval closed already) counts in the interval being filled now.
    merger.add(s.sample());
    if (s.index() == draining && --samplesPending == 0) {
      close(draining, (draining + 1) * interval);
    }
    return this;
  }

  private Behavior<Command> onGrace(int index) {
    if (index == draining && phase == Phase.RUN) {
      close(index, (index + 1) * interval);
    }
    return this;
  }

  /** Closes interval {@code index}, ending at {@code endRelative} (from the run's start). */
  private void close(int index, long endRelative) {
    if (index != open) {
      throw new IllegalStateException("interval " + index + " closed while " + open + " is open");
    }
    for (TenantSettings t : scenario.tenants()) {
      merger.add(new TenantSample(t.name(), Map.of(), Map.of())); // every tenant, even idle
    }
    long startRelative = (long) index * interval;
    listener.onInterval(merger.close(index, startRelative, Math.max(startRelative + 1, endRelative)));
    open = index + 1;
    if (draining == index) {
      draining = -1;
      timers.cancel("grace");
    }
  }

  // ================================================================ isolation during the run

  private void pollMemory(boolean last) {
    if (topology == null) {
      if (last) {
        getContext().getSelf().tell(new MemoryAnswered(null, true));
      }
      return;
    }
    Asks.ask(getContext(), topology.memory(), askTimeout, HostMemoryActor.GetReport::new,
        (r, f) -> new MemoryAnswered(r, last));
  }

  /** DMA checks that break isolation: every verdict but OK and UNBACKED (a master abort). */
  private static long violationsIn(Map<DmaCheck, Long> checks) {
    long n = 0;
    for (Map.Entry<DmaCheck, Long> e : checks.entrySet()) {
      if (e.getKey() != DmaCheck.OK && e.getKey() != DmaCheck.UNBACKED) {
        n += e.getValue();
      }
    }
    return n;
  }

  private Behavior<Command> onMemory(MemoryAnswered a) {
    HostMemoryActor.MemoryReport r = a.report();
    if (r != null) {
      long total = violationsIn(r.checks());
      long fresh = total - memoryViolationsSeen;
      memoryViolationsSeen = total;
      Map<String, Long> byTenant = new LinkedHashMap<>();
      List<io.iommulab.hardware.memory.Violation> log = r.violations();
      for (int i = memoryLogSeen; i < log.size(); i++) {
        io.iommulab.hardware.memory.Violation v = log.get(i);
        if (v.kind() == DmaCheck.UNBACKED) {
          continue;
        }
        String tenant = tenantOfVm.getOrDefault(v.expectedOwner(), "");
        long at = clock.nanos() - start;
        listener.onViolation(new Violation(Oracle.ISOLATION.configName(), scenario.seed(), tenant,
            Math.max(0, v.expectedOwner()), at,
            String.format("DMA of vm %d reached hpa 0x%x owned by %d (%s)", v.expectedOwner(), v.hpa(),
                v.actualOwner(), v.kind()),
            List.of(new TraceEvent(1, at, "host memory's DMA check: " + v.kind()))));
        if (fresh > 0 && !tenant.isEmpty()) {
          byTenant.merge(tenant, 1L, Long::sum);
          fresh--;
        }
      }
      memoryLogSeen = log.size();
      if (fresh > 0) {
        // Counted but not logged by the host memory: charged to the first tenant, and said so.
        byTenant.merge(scenario.tenants().get(0).name(), fresh, Long::sum);
        notes.add(fresh + " isolation violations were counted without their owner (the host memory's log is"
            + " bounded): charged to tenant " + scenario.tenants().get(0).name());
      }
      for (Map.Entry<String, Long> e : byTenant.entrySet()) {
        merger.add(new TenantSample(e.getKey(), Map.of(Oracle.ISOLATION.metric(), e.getValue()), Map.of()));
      }
    }
    if (a.last()) {
      lastInterval();
    }
    return this;
  }

  // ================================================================ the end

  private Behavior<Command> endRun(boolean stopped) {
    if (phase != Phase.RUN) {
      return this;
    }
    stoppedEarly = stopped && clock.nanos() < plannedEnd;
    timers.cancel("boundary");
    timers.cancel(EndOfRun.INSTANCE);
    phase = Phase.FINISHING;
    if (draining >= 0) {
      close(draining, (draining + 1) * interval);
    }
    if (topology != null) {
      // The MSI banks as the workload left them, before the VMs give their vectors back.
      for (int i = 0; i < topology.msiBanks().size(); i++) {
        int index = i;
        Asks.ask(getContext(), topology.msiBanks().get(i), askTimeout,
            MsiBankActor.GetBankState::new, (r, f) -> new BankAnswered(index, r, true));
      }
    }
    return finishAll();
  }

  private Behavior<Command> finishAll() {
    finishedPending = workloads.size();
    for (ActorRef<Workload.Command> w : workloads) {
      w.tell(new Workload.Finish());
    }
    if (finishedPending == 0) {
      pollMemory(true);
    } else {
      // Every ask of a workload ends within the ask timeout; closing the fds takes one more.
      timers.startSingleTimer(FinishTimeout.INSTANCE, FinishTimeout.INSTANCE, askTimeout.multipliedBy(3));
    }
    return this;
  }

  private Behavior<Command> onFinished(Messages.Finished f) {
    merger.add(f.sample());
    reports.add(f.report());
    if (--finishedPending == 0 && phase == Phase.FINISHING) {
      timers.cancel(FinishTimeout.INSTANCE);
      pollMemory(true);
    }
    return this;
  }

  private Behavior<Command> onFinishTimeout() {
    if (phase == Phase.FINISHING && finishedPending > 0) {
      notes.add(finishedPending + " workload actors did not finish within " + Units.nanos(askTimeout.multipliedBy(3).toNanos())
          + ": their last samples and fd closes are missing");
      finishedPending = 0;
      pollMemory(true);
    }
    return this;
  }

  private void lastInterval() {
    if (phase != Phase.FINISHING) {
      return;
    }
    phase = Phase.CHECKING;
    endNanos = clock.nanos() - start;
    close(open, Math.max(endNanos, (long) open * interval + 1));
    if (topology == null) {
      complete();
      return;
    }
    checksPending = topology.units().size() + topology.msiBanks().size();
    for (HostGuardian.UnitEntry u : topology.units()) {
      int id = u.unitId();
      Asks.ask(getContext(), u.unit(), askTimeout, IommuUnitActor.GetStats::new,
          (s, f) -> new UnitStatsAnswered(id, s, true));
    }
    for (int i = 0; i < topology.msiBanks().size(); i++) {
      int index = i;
      Asks.ask(getContext(), topology.msiBanks().get(i), askTimeout,
          MsiBankActor.GetBankState::new, (r, f) -> new BankAnswered(index, r, false));
    }
    checksPending++;
    askFaultStats();
  }

  private Behavior<Command> askFaultStats() {
    faultStats.clear();
    for (HostGuardian.UnitEntry u : topology.units()) {
      int id = u.unitId();
      Asks.ask(getContext(), u.unit(), askTimeout, IommuUnitActor.GetFaultStats::new,
          (s, f) -> new FaultStatsAnswered(id, s));
    }
    return this;
  }

  private Behavior<Command> onFaultStats(FaultStatsAnswered a) {
    faultStats.put(a.unitId(), a.stats());
    if (faultStats.size() < topology.units().size()) {
      return this;
    }
    boolean settling = false;
    for (IommuUnitActor.FaultPipelineStats s : faultStats.values()) {
      settling |= s != null && s.inFlight() > 0;
    }
    long settleChecks = FAULT_SETTLE.toMillis() / 20;
    if (settling && faultChecks++ < settleChecks) {
      timers.startSingleTimer(FaultCheck.INSTANCE, FaultCheck.INSTANCE, Duration.ofMillis(20));
      return this;
    }
    return checkDone();
  }

  private Behavior<Command> onUnitStats(UnitStatsAnswered a) {
    if (a.stats() != null) {
      (a.atEnd() ? unitsAtEnd : unitsAtStart).put(a.unitId(), a.stats());
    }
    return a.atEnd() ? checkDone() : this;
  }

  private Behavior<Command> onBank(BankAnswered a) {
    if (a.beforeTeardown()) {
      if (a.reply() instanceof MsiBankActor.BankState s) {
        banksBeforeTeardown.put(a.index(), s);
      }
      return this;
    }
    if (a.reply() instanceof MsiBankActor.BankState s) {
      banks.put(a.index(), s);
    }
    return checkDone();
  }

  private Behavior<Command> checkDone() {
    if (--checksPending > 0 || phase != Phase.CHECKING) {
      return this;
    }
    return complete();
  }

  private Behavior<Command> complete() {
    phase = Phase.DONE;
    List<OracleResult> oracles = new ArrayList<>();
    oracles.add(fdClose());
    oracles.add(faultConservation());
    for (Map.Entry<String, long[]> e : setups.entrySet()) {
      long[] t = e.getValue();
      notes.add("setup: tenant " + e.getKey() + ": " + t[2] + " of " + t[1] + " VMs set up, the last after "
          + Units.nanos(t[3]) + " of the run");
    }
    unitNotes();
    bankNotes();
    workloadNotes();
    outcome.complete(new EngineOutcome(!stoppedEarly, endNanos, oracles, notes));
    return Behaviors.stopped();
  }

  // ================================================================ the engine's oracles

  private OracleResult fdClose() {
    long checks = 0;
    long violations = 0;
    long objects = 0;
    long pages = 0;
    List<Violation> recorded = new ArrayList<>();
    for (Messages.WorkloadReport r : reports) {
      for (Messages.FdCloseResult c : r.closes()) {
        checks++;
        objects += c.objectsDestroyed();
        pages += c.pagesUnpinned();
        if (c.clean()) {
          continue;
        }
        violations++;
        if (recorded.size() < MAX_RECORDED) {
          List<TraceEvent> events = new ArrayList<>();
          long seq = 1;
          for (String l : c.leftBehind()) {
            events.add(new TraceEvent(seq++, endNanos, "left behind: " + l));
          }
          String summary = c.refused() != null
              ? "vm " + c.vmId() + " fd " + c.fd() + ": close refused or unanswered: " + c.refused()
              : "vm " + c.vmId() + " fd " + c.fd() + ": close left " + String.join("; ", c.leftBehind());
          recorded.add(new Violation(Oracle.FD_CLOSE.configName(), scenario.seed(), r.tenant(), c.vmId(), endNanos,
              summary, events));
        }
      }
    }
    List<String> n = new ArrayList<>();
    n.add("the workload closed " + checks + " fds at its end (" + objects + " objects destroyed, " + pages
        + " pages unpinned over their lives); each fd's snapshot after its close must be empty");
    if (finishedPending > 0 || reports.size() < workloads.size()) {
      n.add("some workload actors did not report their closes");
    }
    if (checks == 0) {
      return OracleResult.notJudged(Oracle.FD_CLOSE, "no fd was closed by the workload (no VM got one)");
    }
    return OracleResult.judged(Oracle.FD_CLOSE, checks, violations, recorded, n);
  }

  private OracleResult faultConservation() {
    if (faultStats.isEmpty()) {
      return OracleResult.notJudged(Oracle.FAULT_CONSERVATION, "no unit gave its fault pipeline statistics");
    }
    long published = 0;
    long violations = 0;
    List<Violation> recorded = new ArrayList<>();
    List<String> n = new ArrayList<>();
    for (Map.Entry<Integer, IommuUnitActor.FaultPipelineStats> e : faultStats.entrySet()) {
      IommuUnitActor.FaultPipelineStats s = e.getValue();
      if (s == null) {
        n.add("unit " + e.getKey() + " did not answer");
        continue;
      }
      published += s.published();
      long unaccounted = Math.abs(s.published() - s.delivered() - s.lost());
      n.add(String.format("unit %s: published %d (faults %d, page requests %d) = delivered %d + lost %d"
              + " (ingress %d, queue full %d, handle gone %d, unacknowledged %d)%s",
          s.unitName(), s.published(), s.publishedFaults(), s.publishedPageRequests(), s.delivered(), s.lost(),
          s.lostIngressFaults() + s.lostIngressPageRequests(), s.lostQueueFull(), s.lostHandleGone(),
          s.lostUnacknowledged(), s.inFlight() > 0 ? ", " + s.inFlight() + " still in flight" : ""));
      if (unaccounted > 0) {
        violations += unaccounted;
        if (recorded.size() < MAX_RECORDED) {
          recorded.add(new Violation(Oracle.FAULT_CONSERVATION.configName(), scenario.seed(), "", 0, endNanos,
              String.format("unit %s: %d fault records published, %d delivered, %d lost, %d in flight after %s",
                  s.unitName(), s.published(), s.delivered(), s.lost(), s.inFlight(), Units.nanos(FAULT_SETTLE.toNanos())),
              List.of()));
        }
      }
    }
    return OracleResult.judged(Oracle.FAULT_CONSERVATION, published, violations, recorded, n);
  }

  // ================================================================ notes

  private void unitNotes() {
    for (Map.Entry<Integer, IommuUnitActor.UnitStats> e : unitsAtEnd.entrySet()) {
      IommuUnitActor.UnitStats end = e.getValue();
      IommuUnitActor.UnitStats begin = unitsAtStart.get(e.getKey());
      long tr = end.translations() - (begin == null ? 0 : begin.translations());
      long hits = end.iotlbHits() - (begin == null ? 0 : begin.iotlbHits());
      long misses = end.iotlbMisses() - (begin == null ? 0 : begin.iotlbMisses());
      notes.add(String.format(
          "unit %s over the run: %d translations, IOTLB hits %s, %d faults, %d page requests, %d invalidation"
              + " descriptors, %d syncs, %d device-TLB invalidations, %d unhandled faults",
          end.unitName(), tr, hits + misses == 0 ? "n/a" : Units.number(100.0 * hits / (hits + misses)) + "%",
          end.faults() - (begin == null ? 0 : begin.faults()),
          end.pageRequests() - (begin == null ? 0 : begin.pageRequests()),
          end.invalidationDescriptors() - (begin == null ? 0 : begin.invalidationDescriptors()),
          end.syncs() - (begin == null ? 0 : begin.syncs()),
          end.atcInvalidations() - (begin == null ? 0 : begin.atcInvalidations()),
          end.unhandledFaults() - (begin == null ? 0 : begin.unhandledFaults())));
    }
  }

  private void bankNotes() {
    boolean anyUsed = false;
    for (MsiBankActor.BankState s : banks.values()) {
      anyUsed |= s.breaches() > 0 || s.delivered() > 0;
    }
    for (MsiBankActor.BankState s : banksBeforeTeardown.values()) {
      anyUsed |= s.freeVectors() < s.vectors();
    }
    if (!anyUsed) {
      return;
    }
    for (MsiBankActor.BankState end : banks.values()) {
      MsiBankActor.BankState s = banksBeforeTeardown.getOrDefault(end.bankIndex(), end);
      List<String> owners = new ArrayList<>();
      for (int o : s.owners()) {
        owners.add(o > 0 ? "vm " + o : "host");
      }
      notes.add(String.format(
          "MSI bank %d when the workload ended: %d/%d vectors in use, groups %s, owners %s, isolation %s; over the"
              + " run a second owner took vectors of it %d times (a shared bank lets each owner raise the"
              + " other's interrupts), %d cross-owner interrupts; %d/%d vectors in use after teardown",
          s.bankIndex(), s.vectors() - s.freeVectors(), s.vectors(), s.groups(), owners,
          s.isolationBroken() ? "BROKEN (shared by " + s.owners().size() + " owners)" : "ok", end.breaches(),
          end.crossOwnerInterrupts(), end.vectors() - end.freeVectors(), end.vectors()));
    }
  }

  private void workloadNotes() {
    Map<String, Map<String, Long>> errnos = new TreeMap<>();
    Map<String, Long> stray = new TreeMap<>();
    Map<String, Long> aborted = new TreeMap<>();
    Map<String, long[]> kvm = new LinkedHashMap<>();
    List<String> problems = new ArrayList<>();
    for (Messages.WorkloadReport r : reports) {
      long[] k = kvm.computeIfAbsent(r.tenant(), t -> new long[] {0, 0, -1, -1, 0, 0});
      Messages.Kvm x = r.kvm();
      k[0] += x.wbinvd();
      k[1] += x.emulated();
      if (x.firstEmulatedAt() >= 0) {
        k[2] = k[2] < 0 ? x.firstEmulatedAt() : Math.min(k[2], x.firstEmulatedAt());
      }
      k[3] = Math.max(k[3], x.lastEmulatedAt());
      k[4] += x.registrations();
      k[5] += x.unregistrations();
      Map<String, Long> e = errnos.computeIfAbsent(r.tenant(), t -> new TreeMap<>());
      r.errnos().forEach((what, n) -> e.merge(what, n, Long::sum));
      stray.merge(r.tenant(), r.strayCompleted(), Long::sum);
      aborted.merge(r.tenant(), r.aborted(), Long::sum);
      for (String p : r.problems()) {
        if (problems.size() < 20) {
          problems.add("tenant " + r.tenant() + ": " + p);
        }
      }
    }
    for (TenantSettings t : scenario.tenants()) {
      long[] k = kvm.get(t.name());
      if (k == null || k[0] == 0) {
        continue;
      }
      notes.add(String.format("KVM WBINVD emulation, tenant %s: %d of %d guest WBINVDs emulated%s; non-coherent DMA"
              + " registrations %d, unregistrations %d (as the VMs last saw them)",
          t.name(), k[1], k[0],
          k[1] == 0 ? " (never on)"
              : ", the first at " + Units.nanos(k[2]) + " and the last at " + Units.nanos(k[3]) + " of the run",
          k[4], k[5]));
    }
    for (Map.Entry<String, Map<String, Long>> e : errnos.entrySet()) {
      if (!e.getValue().isEmpty()) {
        List<String> parts = new ArrayList<>();
        e.getValue().forEach((k, v) -> parts.add(k + " " + v));
        notes.add("refusals of tenant " + e.getKey() + " by operation and errno: " + String.join(", ", parts));
      }
    }
    stray.forEach((t, n) -> {
      if (n > 0) {
        notes.add("tenant " + t + ": " + n + " stray DMA accesses to IOVAs the VM never mapped completed (each"
            + " should have faulted)");
      }
    });
    aborted.forEach((t, n) -> {
      if (n > 0) {
        notes.add("tenant " + t + ": " + n + " DMA accesses were aborted by a device being unplugged");
      }
    });
    notes.addAll(problems);
  }

  private Behavior<Command> onChildFailed(ChildFailed failed) {
    if (!outcome.isDone()) {
      outcome.completeExceptionally(
          new IllegalStateException("workload actor " + failed.getRef().path().name() + " failed", failed.getCause()));
    }
    return Behaviors.stopped();
  }
}
