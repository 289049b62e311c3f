package io.iommulab.host.scenario;

import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.TenantSettings;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * TEST DOUBLE, never shipped: an engine that runs no workload. It makes up, from the scenario's
 * rates and seed, the counts and latencies a workload of that shape would report, so the runner,
 * the writers and the command line can be tested before the real engine exists. It drives no VM
 * (the host it is given stays empty) and its numbers mean nothing about the emulator.
 *
 * <p>It does follow the engine contract: one {@link IntervalRecorder} per tenant (standing for the
 * actors that own them), drained each interval into an {@link IntervalMerger}, contiguous
 * intervals, violations reported when "seen", verdicts for the oracles only an engine judges.
 */
public final class SyntheticEngine implements ScenarioEngine {

  /** How it behaves. */
  public static final class Options {
    /** Wait for each interval to pass on the run's clock (else emit intervals at once). */
    public boolean realTime;
    /** Report an isolation violation in this interval (-1: never). */
    public int violationAt = -1;
    /** Throw in this interval (-1: never). */
    public int throwAt = -1;
    /** Leave these oracles out of the verdicts (nobody judges them then). */
    public List<Oracle> unjudged = List.of();
    /** Called after each interval was reported, with its index (tests synchronize on it). */
    public java.util.function.IntConsumer afterInterval = i -> {};

    public Options realTime() {
      realTime = true;
      return this;
    }
  }

  private final Options options;

  public SyntheticEngine(Options options) {
    this.options = options;
  }

  public SyntheticEngine() {
    this(new Options());
  }

  @Override
  public String name() {
    return "synthetic-test-double";
  }

  @Override
  public EngineOutcome run(ScenarioRun run) throws Exception {
    ScenarioSettings s = run.scenario();
    SplittableRandom random = new SplittableRandom(s.seed());
    Map<String, IntervalRecorder> recorders = new LinkedHashMap<>();
    for (TenantSettings t : s.tenants()) {
      recorders.put(t.name(), new IntervalRecorder(t.name()));
    }
    IntervalMerger merger = new IntervalMerger();
    long interval = s.interval().toNanos();
    long duration = s.duration().toNanos();
    long start = 0;
    int index = 0;
    boolean stopped = false;
    long faults = 0;
    while (start < duration && !stopped) {
      long end = Math.min(start + interval, duration);
      if (options.realTime) {
        long wait = end - run.elapsedNanos();
        if (wait > 0 && run.stop().await(wait)) {
          stopped = true;
          end = Math.max(start + 1, Math.min(end, run.elapsedNanos()));
        }
      } else if (run.stop().isRequested()) {
        stopped = true;
      }
      double seconds = (end - start) / 1e9;
      for (TenantSettings t : s.tenants()) {
        IntervalRecorder r = recorders.get(t.name());
        for (Operation op : t.workload().operations()) {
          double rate = rate(t, op);
          long n = Math.round(rate * t.vms() * seconds * (0.9 + 0.2 * random.nextDouble()));
          if (op == Operation.ATTACH && index == 0) {
            n = (long) t.vms() * t.devicesPerVm();
          }
          if (n == 0) {
            continue;
          }
          String name = op.configName();
          r.count(name + ".count", n);
          long base = base(op);
          int samples = (int) Math.min(n, 50);
          for (int i = 0; i < samples; i++) {
            long modeled = base + (long) (-Math.log(1 - random.nextDouble()) * base * 0.3);
            long times = n / samples + (i < n % samples ? 1 : 0);
            r.record(name + ".latency.modeled", modeled, times);
            r.record(name + ".latency.wall", modeled * 5 + 10_000, times);
          }
          if (op == Operation.DMA) {
            long translations = n * t.workload().dma().burst();
            long stray = Math.round(translations * t.workload().dma().strayFraction());
            r.count("dma.translations", translations);
            r.count("dma.faults", stray);
            r.count("dma.bytes", translations * t.workload().dma().accessSize());
            r.count("faults.published", stray);
            r.count("faults.delivered", stray);
            faults += stray;
          }
        }
        if (index == options.violationAt && t == s.tenants().get(0)) {
          r.count(Oracle.ISOLATION.metric(), 1);
        }
      }
      for (IntervalRecorder r : recorders.values()) {
        merger.add(r.drain());
      }
      run.listener().onInterval(merger.close(index, start, end));
      if (index == options.violationAt) {
        TenantSettings t = s.tenants().get(0);
        run.listener().onViolation(new Violation(Oracle.ISOLATION.configName(), s.seed(), t.name(), t.firstVmId(), end,
            "synthetic: DMA of vm " + t.firstVmId() + " reached a frame of another VM",
            List.of(new TraceEvent(1, start, "map [0x1000, +0x1000) issued"),
                new TraceEvent(2, end - 1, "burst 7 issued at 0x1000"))));
      }
      if (index == options.throwAt) {
        throw new IllegalStateException("synthetic engine failure in interval " + index);
      }
      options.afterInterval.accept(index);
      start = end;
      index++;
    }
    List<OracleResult> oracles = new ArrayList<>();
    if (!options.unjudged.contains(Oracle.FD_CLOSE)) {
      oracles.add(OracleResult.judged(Oracle.FD_CLOSE, s.vmCount(), 0, List.of(), List.of("synthetic")));
    }
    if (!options.unjudged.contains(Oracle.FAULT_CONSERVATION)) {
      oracles.add(OracleResult.judged(Oracle.FAULT_CONSERVATION, faults, 0, List.of(), List.of("synthetic")));
    }
    return new EngineOutcome(!stopped, start, oracles, List.of("synthetic test double: no workload ran"));
  }

  private static double rate(TenantSettings t, Operation op) {
    return switch (op) {
      case ATTACH -> 0;
      case MAP, UNMAP -> t.workload().map().rate();
      case DMA -> t.workload().dma().rate();
      case PAGE_REQUEST -> t.workload().pageRequests().rate();
      case INVALIDATION -> t.workload().invalidations().rate();
      case UNPLUG, HOTPLUG -> Math.max(t.workload().hotplug().rate(), 0.5);
      case WBINVD -> t.workload().wbinvd().rate();
    };
  }

  private static long base(Operation op) {
    return switch (op) {
      case ATTACH -> 20_000;
      case MAP -> 2_000;
      case UNMAP -> 3_000;
      case DMA -> 200;
      case PAGE_REQUEST -> 5_000;
      case INVALIDATION -> 1_000;
      case UNPLUG -> 100_000;
      case HOTPLUG -> 200_000;
      case WBINVD -> 50;
    };
  }
}
