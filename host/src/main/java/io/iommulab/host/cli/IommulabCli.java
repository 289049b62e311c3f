package io.iommulab.host.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.SettingsException;
import io.iommulab.config.scenario.AssertionSettings;
import io.iommulab.config.scenario.MetricCatalog;
import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.TenantSettings;
import io.iommulab.config.scenario.Units;
import io.iommulab.config.scenario.WorkloadSettings;
import io.iommulab.host.report.AssertionResult;
import io.iommulab.host.report.HtmlReport;
import io.iommulab.host.report.IntervalLog;
import io.iommulab.host.report.JUnitXml;
import io.iommulab.host.report.JsonSummary;
import io.iommulab.host.report.Rebuild;
import io.iommulab.host.report.ResultFiles;
import io.iommulab.host.report.RunReport;
import io.iommulab.host.scenario.OracleResult;
import io.iommulab.host.scenario.ScenarioEngine;
import io.iommulab.host.scenario.ScenarioEngines;
import io.iommulab.host.scenario.StopSignal;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * The {@code iommulab} command line: {@code run}, {@code list}, {@code validate}, {@code report}.
 *
 * <p>Exit codes: 0 the run passed (or the command did its job); 1 an assertion failed or an
 * oracle found a violation; 2 the scenario or the command line is wrong (every problem is printed
 * with its key path and rule, without a stack trace); 3 the run could not be carried out (no
 * engine, the engine failed, results could not be written).
 */
@Command(
    name = "iommulab",
    mixinStandardHelpOptions = true,
    version = "iommulab 0.1.0",
    description = {
      "Runs IOMMU-subsystem scenarios on an emulated host: tenants of VMs, a workload mix, the"
          + " invariant oracles and Gatling-style assertions; results as JSON, HTML and JUnit XML.",
      ""
    },
    footer = {
      "",
      "Exit codes: 0 passed, 1 an assertion failed or an oracle found a violation, 2 invalid"
          + " scenario or command line, 3 the run could not be carried out."
    },
    subcommands = {
      IommulabCli.Run.class,
      IommulabCli.ListScenarios.class,
      IommulabCli.Validate.class,
      IommulabCli.Report.class,
      CommandLine.HelpCommand.class
    })
public final class IommulabCli implements Callable<Integer> {

  public static final int PASSED = 0;
  public static final int FAILED = 1;
  public static final int INVALID = 2;
  public static final int NOT_RUN = 3;

  /**
   * What the commands use of the world, so tests can give their own.
   *
   * @param out results and listings
   * @param err problems and the progress bar
   * @param catalog the bundled scenarios
   * @param engines the engines available (the class path's, by default)
   * @param baseConfig the configuration scenario defaults and the host come from
   * @param wallClock the edge's clock: result directory names and start times
   * @param workingDirectory where relative paths start
   * @param terminal whether stderr is a terminal (the progress bar redraws in place)
   */
  public record Environment(
      PrintStream out,
      PrintStream err,
      ScenarioCatalog catalog,
      Supplier<List<ScenarioEngine>> engines,
      Supplier<Config> baseConfig,
      Clock wallClock,
      Path workingDirectory,
      boolean terminal) {
    public Environment {
      Objects.requireNonNull(out, "out");
      Objects.requireNonNull(err, "err");
      Objects.requireNonNull(catalog, "catalog");
      Objects.requireNonNull(engines, "engines");
      Objects.requireNonNull(baseConfig, "baseConfig");
      Objects.requireNonNull(wallClock, "wallClock");
      Objects.requireNonNull(workingDirectory, "workingDirectory");
    }

    /** The process's: System streams, the class path's scenarios and engines, ConfigFactory.load(). */
    public static Environment system() {
      return new Environment(System.out, System.err, ScenarioCatalog.bundled(), ScenarioEngines::registered,
          ConfigFactory::load, Clock.systemUTC(), Path.of("").toAbsolutePath(), System.console() != null);
    }
  }

  private final Environment env;

  public IommulabCli(Environment env) {
    this.env = env;
  }

  public static void main(String[] args) {
    System.exit(execute(Environment.system(), args));
  }

  /** Runs the command line; returns the exit code. */
  public static int execute(Environment env, String... args) {
    CommandLine cl = new CommandLine(new IommulabCli(env));
    cl.setOut(new java.io.PrintWriter(env.out(), true));
    cl.setErr(new java.io.PrintWriter(env.err(), true));
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
      // Not a mistake in the scenario (those are reported as problems): a failure worth a trace.
      env.err().println("iommulab: the command failed: " + e);
      e.printStackTrace(env.err());
      return NOT_RUN;
    });
    return cl.execute(args);
  }

  @Override
  public Integer call() {
    new CommandLine(this).usage(env.out());
    return INVALID;
  }

  // ------------------------------------------------------------------------------------ options

  /** Options shared by run and validate: which scenario, and overrides of its keys. */
  static final class ScenarioOptions {
    @Parameters(
        index = "0",
        paramLabel = "SCENARIO",
        description = "A bundled scenario's name (see list) or a path to a scenario file.")
    String scenario;

    @Option(
        names = "--duration",
        paramLabel = "DURATION",
        description = "Run for this long instead (such as 30s, 10m, 24h): -Dduration=DURATION.")
    String duration;

    @Option(names = "--seed", paramLabel = "SEED", description = "The run's seed instead: -Dseed=SEED.")
    Long seed;

    @Option(
        names = "-D",
        paramLabel = "KEY=VALUE",
        mapFallbackValue = "",
        description = {
          "Override a scenario key, in the notation problems use: -Dinterval=500ms,"
              + " -Dtenants[0].vms=16, -Dtenants[1].workload.map.rate=2000, -Dtopology.host-memory=64GiB."
        })
    Map<String, String> overrides = new LinkedHashMap<>();

    Map<String, String> all() {
      Map<String, String> all = new LinkedHashMap<>(overrides);
      if (duration != null) {
        all.put("duration", duration);
      }
      if (seed != null) {
        all.put("seed", Long.toString(seed));
      }
      return all;
    }
  }

  /** Loads and validates; prints every problem and returns null when the scenario is invalid. */
  ScenarioSettings load(ScenarioOptions o) {
    try {
      return env.catalog().load(o.scenario, o.all(), env.baseConfig().get(), env.workingDirectory());
    } catch (ScenarioCatalog.Source.NotFound e) {
      env.err().println("iommulab: " + e.getMessage());
      return null;
    } catch (SettingsException e) {
      env.err().println("scenario " + o.scenario + " is invalid (" + e.problems().size()
          + (e.problems().size() == 1 ? " problem):" : " problems):"));
      for (String p : e.problems()) {
        env.err().println("  " + p);
      }
      return null;
    }
  }

  // ---------------------------------------------------------------------------------------- run

  @Command(
      name = "run",
      mixinStandardHelpOptions = true,
      description = {
        "Runs a scenario: starts the host, runs the workload, shows progress on stderr, judges the"
            + " oracles and assertions, and writes intervals.jsonl (every interval), summary.json,"
            + " report.html and junit.xml to the output directory.",
        ""
      },
      footer = {
        "",
        "Exit codes: 0 passed, 1 an assertion failed or an oracle found a violation, 2 invalid"
            + " scenario or command line, 3 the run could not be carried out (no engine, engine failure)."
      })
  static final class Run implements Callable<Integer> {
    @ParentCommand IommulabCli parent;

    @CommandLine.Mixin ScenarioOptions scenario = new ScenarioOptions();

    @Option(
        names = {"-o", "--output"},
        paramLabel = "DIR",
        description = "Where the results go (default: results/<scenario>-<yyyyMMdd-HHmmss>, UTC).")
    Path output;

    @Option(
        names = "--metrics-port",
        paramLabel = "PORT",
        description = "Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the run lasts.")
    Integer metricsPort;

    @Option(
        names = "--progress",
        paramLabel = "MODE",
        description = "Progress on stderr: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}: a bar on a"
            + " terminal, lines otherwise).")
    ProgressBar.Mode progress = ProgressBar.Mode.AUTO;

    @Option(names = "--engine", paramLabel = "NAME", description = "The engine to use when several are available.")
    String engineName;

    @Override
    public Integer call() throws IOException {
      Environment env = parent.env;
      if (metricsPort != null && (metricsPort < 1 || metricsPort > 65535)) {
        env.err().println("iommulab run: --metrics-port " + metricsPort + ": must be from 1 to 65535");
        return INVALID;
      }
      ScenarioSettings s = parent.load(scenario);
      if (s == null) {
        return INVALID;
      }
      ScenarioEngine engine = engine(env);
      if (engine == null) {
        return NOT_RUN;
      }
      Path dir = output != null
          ? env.workingDirectory().resolve(output)
          : ResultFiles.defaultDirectory(env.workingDirectory(), s, env.wallClock().instant());
      ProgressBar.Mode mode = progress == ProgressBar.Mode.AUTO
          ? (env.terminal() ? ProgressBar.Mode.BAR : ProgressBar.Mode.LINES)
          : progress;
      env.err().println("iommulab run " + s.name() + ": seed " + s.seed() + ", " + Units.nanos(s.duration().toNanos())
          + ", " + s.tenants().size() + " tenants, " + s.vmCount() + " VMs, engine " + engine.name()
          + (metricsPort == null ? "" : ", metrics on http://127.0.0.1:" + metricsPort + "/metrics")
          + "; results in " + dir);
      StopSignal stop = new StopSignal();
      CountDownLatch done = new CountDownLatch(1);
      // Ctrl-C: stop the workload and let the results be written before the JVM goes.
      Thread hook = new Thread(() -> {
        stop.request();
        try {
          done.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }, "iommulab-stop");
      Runtime.getRuntime().addShutdownHook(hook);
      RunReport report;
      try {
        report = ScenarioRunner.run(s, engine,
            new ScenarioRunner.Options(dir, metricsPort == null ? OptionalInt.empty() : OptionalInt.of(metricsPort),
                mode, env.err(), env.wallClock()), stop);
        printVerdict(env.out(), report, dir);
      } finally {
        // Only now may a Ctrl-C'd JVM go: the results are written and the verdict printed.
        done.countDown();
        try {
          Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
          // The JVM is already exiting (Ctrl-C): the hook has done its job.
        }
      }
      return report.exitCode();
    }

    private ScenarioEngine engine(Environment env) {
      List<ScenarioEngine> engines = env.engines().get();
      if (engines.isEmpty()) {
        env.err().println("iommulab run: no engine available: no " + ScenarioEngine.class.getName()
            + " is registered on the class path (META-INF/services). The workload engine has not"
            + " landed yet; 'iommulab validate' checks a scenario without running it.");
        return null;
      }
      if (engineName != null) {
        for (ScenarioEngine e : engines) {
          if (e.name().equals(engineName)) {
            return e;
          }
        }
        env.err().println("iommulab run: no engine " + engineName + " (available: " + names(engines) + ")");
        return null;
      }
      if (engines.size() > 1) {
        env.err().println("iommulab run: several engines are available (" + names(engines)
            + "); choose one with --engine NAME");
        return null;
      }
      return engines.get(0);
    }

    private static String names(List<ScenarioEngine> engines) {
      return String.join(", ", engines.stream().map(ScenarioEngine::name).toList());
    }
  }

  /** The verdict in a few lines: what failed, where the results are. */
  static void printVerdict(PrintStream out, RunReport r, Path dir) {
    ScenarioSettings s = r.scenario();
    out.println(s.name() + ": " + r.status().word().toUpperCase(java.util.Locale.ROOT) + " (seed " + s.seed()
        + ", " + Units.nanos(r.data().endNanos()) + " measured"
        + (r.completed() ? "" : " of " + Units.nanos(s.duration().toNanos())) + ")");
    long failedAssertions = r.failedAssertions();
    out.println("  assertions: " + (r.assertions().size() - failedAssertions) + " passed, " + failedAssertions
        + " failed");
    for (AssertionResult a : r.assertions()) {
      if (!a.passed()) {
        out.println("    FAILED " + a.check() + ": " + a.message());
      }
    }
    out.println("  oracles: " + (r.oracles().size() - r.failedOracles()) + " passed, " + r.failedOracles()
        + " failed");
    for (OracleResult o : r.oracles()) {
      if (!o.passed()) {
        out.println("    FAILED " + o.oracle() + ": " + (o.judged()
            ? o.violations() + " violations" + (o.recorded().isEmpty() ? "" : ", first: " + o.recorded().get(0).summary())
            : "not judged (" + String.join("; ", o.notes()) + ")"));
      }
    }
    for (String n : r.notes()) {
      out.println("  note: " + n);
    }
    out.println("  results: " + dir + " (" + IntervalLog.FILE + ", " + JsonSummary.FILE + ", " + HtmlReport.FILE
        + ", " + JUnitXml.FILE + ")");
  }

  // --------------------------------------------------------------------------------------- list

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description = "Lists the bundled scenarios with their descriptions (or, with --metrics, the metrics"
          + " assertions can name).")
  static final class ListScenarios implements Callable<Integer> {
    @ParentCommand IommulabCli parent;

    @Option(names = "--metrics", description = "List the metrics and their statistics instead.")
    boolean metrics;

    @Override
    public Integer call() {
      PrintStream out = parent.env.out();
      if (metrics) {
        for (MetricCatalog.Metric m : MetricCatalog.all()) {
          String stats = m.kind() == MetricCatalog.Kind.LATENCY
              ? "pN min max mean count rate"
              : "count rate" + (m.ratioBase().isPresent() ? " ratio (over " + m.ratioBase().get() + ")" : "");
          out.printf("%-28s %-8s %s%n%-28s          %s%n", m.name(), m.kind().name().toLowerCase(java.util.Locale.ROOT),
              m.description(), "", stats);
        }
        return PASSED;
      }
      List<ScenarioCatalog.Entry> entries = parent.env.catalog().list();
      if (entries.isEmpty()) {
        out.println("no bundled scenarios on this class path (they ship in the load-tests module)");
        return PASSED;
      }
      int width = entries.stream().mapToInt(e -> e.name().length()).max().orElse(0);
      for (ScenarioCatalog.Entry e : entries) {
        out.printf("%-" + width + "s  %s%n", e.name(), e.description());
      }
      return PASSED;
    }
  }

  // ----------------------------------------------------------------------------------- validate

  @Command(
      name = "validate",
      mixinStandardHelpOptions = true,
      description = {
        "Checks a scenario without running it: prints every problem with its key path and rule"
            + " (exit code 2), or what the scenario will run: tenants, devices per VM, workloads,"
            + " assertion checks.",
        ""
      })
  static final class Validate implements Callable<Integer> {
    @ParentCommand IommulabCli parent;

    @CommandLine.Mixin ScenarioOptions scenario = new ScenarioOptions();

    @Option(names = "--show-config", description = "Also print the resolved configuration (HOCON).")
    boolean showConfig;

    @Override
    public Integer call() {
      ScenarioSettings s = parent.load(scenario);
      if (s == null) {
        return INVALID;
      }
      describe(parent.env.out(), s);
      if (showConfig) {
        parent.env.out().println();
        parent.env.out().println(s.renderResolved(false));
      }
      return PASSED;
    }
  }

  /** What a valid scenario will run, for a person. */
  static void describe(PrintStream out, ScenarioSettings s) {
    out.println(s.name() + ": valid");
    out.println("  " + s.description());
    out.println("  duration " + Units.nanos(s.duration().toNanos()) + ", interval " + Units.nanos(s.interval().toNanos())
        + (s.reportEvery().isZero() ? "" : ", report every " + Units.nanos(s.reportEvery().toNanos()))
        + ", seed " + s.seed() + ", invalidation " + s.invalidation().configName());
    List<String> units = new ArrayList<>();
    for (IommuUnitSettings u : s.iommulab().topology().units()) {
      units.add(u.name() + " (" + u.kind().configName() + ")");
    }
    out.println("  host: " + Units.bytes(s.iommulab().topology().hostMemoryBytes()) + ", units " + String.join(", ", units)
        + ", " + s.iommulab().topology().devices().size() + " devices");
    for (TenantSettings t : s.tenants()) {
      out.println("  tenant " + t.name() + ": " + t.vms() + (t.vms() == 1 ? " VM (id " : " VMs (ids ") + t.firstVmId()
          + (t.vms() > 1 ? "-" + (t.firstVmId() + t.vms() - 1) : "") + "), " + Units.bytes(t.memoryBytes())
          + " on " + Units.bytes(t.backingBytes()) + " pages, " + t.devicesPerVm()
          + (t.devicesPerVm() == 1 ? " device" : " devices") + " per VM, "
          + t.domains().configName() + (t.nested() ? ", nested" : "")
          + (t.pasidsPerDevice() > 0 ? ", " + t.pasidsPerDevice() + " PASIDs per device" : ""));
      out.println("    workload: " + workload(t.workload()));
      int shown = Math.min(3, t.vms());
      StringBuilder b = new StringBuilder("    devices: ");
      for (int i = 0; i < shown; i++) {
        b.append(i == 0 ? "" : "; ").append("vm ").append(t.vmId(i)).append(" ")
            .append(String.join(", ", t.vmDevices().get(i)));
      }
      if (t.vms() > shown) {
        b.append("; ... (").append(t.vms() - shown).append(" more)");
      }
      out.println(b);
    }
    List<AssertionSettings.Check> checks = s.checks();
    out.println("  assertions: " + s.assertions().size() + " (" + checks.size() + " checks)");
    for (AssertionSettings.Check c : checks) {
      out.println("    " + c.text());
    }
  }

  private static String workload(WorkloadSettings w) {
    List<String> parts = new ArrayList<>();
    if (w.map().rate() > 0) {
      parts.add("map " + Units.rate(w.map().rate()) + " (sizes " + String.join(", ",
          w.map().sizes().stream().map(Units::bytes).toList()) + ", hold " + Units.nanos(w.map().hold().toNanos()) + ")");
    }
    if (w.dma().rate() > 0) {
      parts.add("dma " + Units.rate(w.dma().rate()) + " (bursts of " + w.dma().burst() + " x " + w.dma().accessSize()
          + "B, read " + Units.number(w.dma().read()) + " write " + Units.number(w.dma().write())
          + (w.dma().strayFraction() > 0 ? ", stray " + Units.number(w.dma().strayFraction()) : "") + ")");
    }
    if (w.pageRequests().rate() > 0) {
      parts.add("page requests " + Units.rate(w.pageRequests().rate()) + " (lazy buffers of "
          + Units.bytes(w.pageRequests().bufferSize()) + ")");
    }
    if (w.invalidations().rate() > 0) {
      parts.add("invalidations " + Units.rate(w.invalidations().rate()) + " (" + Units.bytes(w.invalidations().size()) + ")");
    }
    if (w.hotplug().enabled()) {
      parts.add("hotplug" + (w.hotplug().rate() > 0 ? " " + Units.rate(w.hotplug().rate()) : "")
          + (w.hotplug().at().isEmpty() ? "" : " at " + String.join(", ",
              w.hotplug().at().stream().map(d -> Units.nanos(d.toNanos())).toList()))
          + " of " + w.hotplug().devices().configName() + " devices, replug "
          + w.hotplug().replugAfter().map(d -> "after " + Units.nanos(d.toNanos())).orElse("never"));
    }
    if (w.wbinvd().rate() > 0) {
      parts.add("wbinvd " + Units.rate(w.wbinvd().rate()));
    }
    return parts.isEmpty() ? "none (" + String.join(", ",
        java.util.Arrays.stream(Operation.values()).map(Operation::configName).toList()) + " all at rate 0)"
        : String.join("; ", parts);
  }

  // ------------------------------------------------------------------------------------- report

  @Command(
      name = "report",
      mixinStandardHelpOptions = true,
      description = {
        "Rebuilds summary.json, report.html and junit.xml of a run from its intervals.jsonl: after"
            + " a run was killed, or to render again. Exit code: the rebuilt verdict (0 passed, 1"
            + " failed, 3 error), 2 when the directory has no readable log.",
        ""
      })
  static final class Report implements Callable<Integer> {
    @ParentCommand IommulabCli parent;

    @Parameters(index = "0", paramLabel = "DIR", description = "The run's output directory.")
    Path dir;

    @Override
    public Integer call() throws IOException {
      Environment env = parent.env;
      Path d = env.workingDirectory().resolve(dir);
      RunReport report;
      try {
        report = Rebuild.fromLog(d, env.baseConfig().get());
      } catch (IOException | SettingsException | IllegalArgumentException e) {
        env.err().println("iommulab report: cannot rebuild from " + d + ": " + e.getMessage());
        return INVALID;
      }
      JsonSummary.write(report, d);
      HtmlReport.write(report, d);
      JUnitXml.write(report, d);
      printVerdict(env.out(), report, d);
      return report.exitCode();
    }
  }
}
