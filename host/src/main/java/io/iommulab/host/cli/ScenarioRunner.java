package io.iommulab.host.cli;

import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.TenantSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.host.EdgeClock;
import io.iommulab.host.Host;
import io.iommulab.host.HostGuardian;
import io.iommulab.host.report.HtmlReport;
import io.iommulab.host.report.IntervalLog;
import io.iommulab.host.report.JUnitXml;
import io.iommulab.host.report.JsonSummary;
import io.iommulab.host.report.RunAggregator;
import io.iommulab.host.report.RunReport;
import io.iommulab.host.scenario.EngineOutcome;
import io.iommulab.host.scenario.HostOracles;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.RunListener;
import io.iommulab.host.scenario.ScenarioEngine;
import io.iommulab.host.scenario.ScenarioRun;
import io.iommulab.host.scenario.StopSignal;
import io.iommulab.host.scenario.Violation;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Runs one validated scenario with an engine and writes its results: the part of {@code iommulab
 * run} after the command line.
 *
 * <ol>
 *   <li>Creates the output directory, starts Kamon when a metrics port is given, starts the host
 *       from the scenario's resolved configuration with the run's {@link EdgeClock}.
 *   <li>Runs the engine; every interval it reports is folded into the totals, appended to {@code
 *       intervals.jsonl} (flushed), published to Kamon and drawn on the progress bar, on one
 *       results thread; the summary and HTML report are rewritten every {@code report-every}.
 *   <li>Shuts the host down for its oracle and leak report, judges oracles and assertions,
 *       writes {@code summary.json}, {@code report.html}, {@code junit.xml}, closes the log with
 *       the verdict, terminates the host, stops Kamon.
 * </ol>
 *
 * The wall clock is read here, at the edge: the run's {@link EdgeClock} and the start time the
 * results carry.
 */
public final class ScenarioRunner {

  /**
   * How to run.
   *
   * @param outputDir where the results go (created)
   * @param metricsPort the Prometheus port on 127.0.0.1, if any
   * @param progress BAR, LINES or OFF
   * @param err where the progress bar goes
   * @param wallClock the edge's clock for the start time
   */
  public record Options(
      Path outputDir, OptionalInt metricsPort, ProgressBar.Mode progress, PrintStream err, Clock wallClock) {
    public Options {
      Objects.requireNonNull(outputDir, "outputDir");
      Objects.requireNonNull(metricsPort, "metricsPort");
      Objects.requireNonNull(progress, "progress");
      Objects.requireNonNull(err, "err");
      Objects.requireNonNull(wallClock, "wallClock");
    }
  }

  private ScenarioRunner() {}

  /**
   * Runs {@code scenario} with {@code engine}. Returns the final report (its status gives the exit
   * code); an engine that throws gives an ERROR report with everything measured until then.
   *
   * @throws IOException when the output directory cannot be created or a result file written
   */
  public static RunReport run(ScenarioSettings scenario, ScenarioEngine engine, Options options, StopSignal stop)
      throws IOException {
    Files.createDirectories(options.outputDir());
    Instant startedAt = options.wallClock().instant();
    KamonMetrics kamon = options.metricsPort().isPresent()
        ? KamonMetrics.start(options.metricsPort().getAsInt(),
            scenario.interval().compareTo(Duration.ofSeconds(1)) < 0 ? Duration.ofSeconds(1) : scenario.interval())
        : null;
    try {
      EdgeClock clock = new EdgeClock();
      Map<String, Object> overrides = new HashMap<>(scenario.hostOverrides());
      // On Ctrl-C the command line's own hook stops the workload, shuts the host down for its
      // report and writes the results; Pekko's hook would terminate the host under it.
      overrides.put("pekko.coordinated-shutdown.run-by-jvm-shutdown-hook", "off");
      try (Host host = Host.start(systemName(scenario), overrides, clock, FaultInjector.NONE);
          Results results = new Results(scenario, engine.name(), startedAt, options, kamon)) {
        long start = clock.nanos();
        ScheduledExecutorService ticker = results.startTicker(clock, start);
        EngineOutcome outcome = null;
        String error = null;
        try {
          outcome = engine.run(new ScenarioRun(scenario, host, clock, start, results, stop));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          error = "interrupted";
        } catch (Exception e) {
          error = e.toString();
        } finally {
          ticker.shutdownNow();
        }
        List<OracleResult> oracles = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        if (outcome != null) {
          oracles.addAll(outcome.oracles());
          notes.addAll(outcome.notes());
        }
        oracles.addAll(hostOracles(host, scenario, clock.nanos() - start, notes));
        boolean completed = outcome != null && outcome.completed();
        long modeled = outcome == null ? -1 : outcome.modeledNanos();
        return results.finish(completed, modeled, oracles, error, notes);
      }
    } finally {
      if (kamon != null) {
        kamon.stop();
      }
    }
  }

  /** The host's verdicts from its shutdown report; not judged when the host does not answer. */
  private static List<OracleResult> hostOracles(Host host, ScenarioSettings s, long atNanos, List<String> notes) {
    Map<Integer, String> tenantOfVm = new HashMap<>();
    for (TenantSettings t : s.tenants()) {
      for (int i = 0; i < t.vms(); i++) {
        tenantOfVm.put(t.vmId(i), t.name());
      }
    }
    try {
      long timeout = host.hostSettings().askTimeout().toMillis() * 2;
      HostGuardian.HostReport report = host.shutdown().toCompletableFuture().get(timeout, TimeUnit.MILLISECONDS);
      return HostOracles.from(report, s.seed(), tenantOfVm, atNanos);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return notJudged("interrupted while the host shut down", notes);
    } catch (ExecutionException | TimeoutException e) {
      return notJudged("the host did not report at shutdown: " + e, notes);
    }
  }

  private static List<OracleResult> notJudged(String why, List<String> notes) {
    notes.add(why);
    return List.of(
        OracleResult.notJudged(Oracle.ISOLATION, why),
        OracleResult.notJudged(Oracle.STALE_TRANSLATION, why),
        OracleResult.notJudged(Oracle.ACCOUNTING, why),
        OracleResult.notJudged(Oracle.ACTOR_FAILURES, why));
  }

  /** An actor-system name from the scenario's name: letters, digits and '-' only. */
  static String systemName(ScenarioSettings s) {
    return "iommulab-" + s.name().replaceAll("[^A-Za-z0-9-]", "-");
  }

  // ----------------------------------------------------------------------------- results thread

  /**
   * The run's listener: hands every report to one results thread, which owns the aggregator, the
   * log, the progress bar and the periodic rewrites. An I/O failure there is kept and noted; the
   * run goes on.
   */
  private static final class Results implements RunListener, AutoCloseable {
    private final ScenarioSettings scenario;
    private final String engine;
    private final Instant startedAt;
    private final Options options;
    private final KamonMetrics kamon;
    private final RunAggregator data;
    private final IntervalLog log;
    private final ProgressBar progress;
    private final ExecutorService thread;
    private final List<String> ioProblems = new ArrayList<>();
    private long lastReportNanos;
    private long violationsSoFar;
    private double lastOpsPerSecond;

    Results(ScenarioSettings scenario, String engine, Instant startedAt, Options options, KamonMetrics kamon)
        throws IOException {
      this.scenario = scenario;
      this.engine = engine;
      this.startedAt = startedAt;
      this.options = options;
      this.kamon = kamon;
      this.data = new RunAggregator(scenario);
      this.log = IntervalLog.create(options.outputDir());
      this.progress = new ProgressBar(options.err(), options.progress(), scenario.duration().toNanos(),
          Math.max(scenario.interval().toNanos(), 5_000_000_000L));
      this.thread = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "iommulab-results");
        t.setDaemon(true);
        return t;
      });
      log.start(scenario, engine, startedAt);
    }

    ScheduledExecutorService startTicker(EdgeClock clock, long start) {
      ScheduledExecutorService t = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread th = new Thread(r, "iommulab-progress");
        th.setDaemon(true);
        return th;
      });
      if (options.progress() == ProgressBar.Mode.BAR) {
        t.scheduleAtFixedRate(() -> progress.tick(clock.nanos() - start), 250, 250, TimeUnit.MILLISECONDS);
      }
      return t;
    }

    @Override
    public void onInterval(IntervalSnapshot snapshot) {
      thread.execute(() -> {
        data.accept(snapshot);
        io(() -> log.interval(snapshot));
        if (kamon != null) {
          kamon.record(snapshot);
        }
        double seconds = (snapshot.endNanos() - snapshot.startNanos()) / 1e9;
        long ops = 0;
        for (io.iommulab.config.scenario.Operation op : io.iommulab.config.scenario.Operation.values()) {
          ops += snapshot.total(op.configName() + ".count");
        }
        lastOpsPerSecond = seconds > 0 ? ops / seconds : 0;
        progress.update(snapshot.endNanos(), lastOpsPerSecond, violationsSoFar);
        long every = scenario.reportEvery().toNanos();
        if (every > 0 && snapshot.endNanos() - lastReportNanos >= every) {
          lastReportNanos = snapshot.endNanos();
          RunReport running = RunReport.running(data, engine, startedAt);
          io(() -> JsonSummary.write(running, options.outputDir()));
          io(() -> HtmlReport.write(running, options.outputDir()));
        }
      });
    }

    @Override
    public void onViolation(Violation violation) {
      thread.execute(() -> {
        data.violation(violation);
        violationsSoFar++;
        io(() -> log.violation(violation));
      });
    }

    RunReport finish(boolean completed, long modeledNanos, List<OracleResult> oracles, String error, List<String> notes)
        throws IOException {
      drain();
      List<String> all = new ArrayList<>(data.loadNotes());
      all.addAll(notes);
      all.addAll(ioProblems);
      RunReport report = RunReport.finished(data, engine, startedAt, completed, modeledNanos, oracles, error, all);
      long violations = Math.max(violationsSoFar, report.oracles().stream().mapToLong(OracleResult::violations).sum());
      progress.update(data.endNanos(), lastOpsPerSecond, violations);
      progress.finish();
      // Each file on its own: one that cannot be written does not cost the others.
      List<String> failed = new ArrayList<>();
      write(failed, JsonSummary.FILE, () -> JsonSummary.write(report, options.outputDir()));
      write(failed, HtmlReport.FILE, () -> HtmlReport.write(report, options.outputDir()));
      write(failed, JUnitXml.FILE, () -> JUnitXml.write(report, options.outputDir()));
      write(failed, IntervalLog.FILE, () -> log.end(report));
      if (!failed.isEmpty()) {
        throw new IOException("results could not be written: " + String.join("; ", failed));
      }
      return report;
    }

    private interface Writer {
      void write() throws IOException;
    }

    private static void write(List<String> failed, String file, Writer w) {
      try {
        w.write();
      } catch (IOException | RuntimeException e) {
        failed.add(file + ": " + e);
      }
    }

    private void drain() {
      try {
        thread.submit(() -> { }).get(1, TimeUnit.MINUTES);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } catch (ExecutionException | TimeoutException e) {
        ioProblems.add("the results thread did not finish: " + e);
      }
    }

    private interface Io {
      void run() throws IOException;
    }


    private void io(Io action) {
      try {
        action.run();
      } catch (IOException e) {
        if (ioProblems.size() < 10) {
          ioProblems.add("writing results failed: " + e);
        }
      }
    }

    @Override
    public void close() throws IOException {
      thread.shutdownNow();
      log.close();
    }
  }
}
