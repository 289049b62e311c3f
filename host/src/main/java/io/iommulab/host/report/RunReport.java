package io.iommulab.host.report;

import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.OracleResult;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A run's results as the writers render them: the scenario and its seed, how far the run got,
 * the verdict, the oracles, the assertions and (through {@link #data()}) every measurement. Built
 * while a run goes on (a soak's periodic report: {@link Status#RUNNING}) and once at the end.
 */
public final class RunReport {

  /** Where a run stands. The exit code of the command line follows from it. */
  public enum Status {
    /** Still running: a periodic report; assertions and host oracles are not judged yet. */
    RUNNING(-1),
    /** Every assertion held and every oracle passed. */
    PASSED(0),
    /** An assertion failed or an oracle found a violation (or was not judged). */
    FAILED(1),
    /** The run could not be carried out (the engine failed); what was measured is kept. */
    ERROR(3);

    private final int exitCode;

    Status(int exitCode) {
      this.exitCode = exitCode;
    }

    public int exitCode() {
      return exitCode;
    }

    public String word() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /** The format of every result file; bumped when a field changes meaning. */
  public static final String FORMAT = "iommulab-results/1";

  private final ScenarioSettings scenario;
  private final RunAggregator data;
  private final String engine;
  private final Instant startedAt;
  private final boolean completed;
  private final Status status;
  private final long modeledNanos;
  private final List<OracleResult> oracles;
  private final List<AssertionResult> assertions;
  private final List<String> notes;
  private final List<String> ownNotes;
  private final String error;

  private RunReport(
      RunAggregator data,
      String engine,
      Instant startedAt,
      boolean completed,
      Status status,
      long modeledNanos,
      List<OracleResult> oracles,
      List<AssertionResult> assertions,
      List<String> notes,
      List<String> ownNotes,
      String error) {
    this.scenario = data.scenario();
    this.data = data;
    this.engine = Objects.requireNonNull(engine, "engine");
    this.startedAt = Objects.requireNonNull(startedAt, "startedAt");
    this.completed = completed;
    this.status = status;
    this.modeledNanos = modeledNanos;
    this.oracles = List.copyOf(oracles);
    this.assertions = List.copyOf(assertions);
    List<String> all = new ArrayList<>(notes);
    all.addAll(data.notes());
    this.notes = Collections.unmodifiableList(all);
    this.ownNotes = List.copyOf(ownNotes);
    this.error = error;
  }

  /** A report of a run still going on: measurements so far, nothing judged yet. */
  public static RunReport running(RunAggregator data, String engine, Instant startedAt) {
    return new RunReport(
        data, engine, startedAt, false, Status.RUNNING, -1, List.of(), List.of(), List.of(), List.of(), null);
  }

  /**
   * The final report: oracles (every one of {@link Oracle}, those missing counted as not judged),
   * assertions judged, the verdict.
   *
   * @param completed the workload ran its whole duration
   * @param error why the run could not be carried out, or null
   */
  public static RunReport finished(
      RunAggregator data,
      String engine,
      Instant startedAt,
      boolean completed,
      long modeledNanos,
      List<OracleResult> oracleResults,
      String error,
      List<String> notes) {
    Map<String, OracleResult> byName = new LinkedHashMap<>();
    for (Oracle o : Oracle.values()) {
      byName.put(o.configName(), null);
    }
    for (OracleResult r : oracleResults) {
      byName.merge(r.oracle(), r, OracleResult::plus);
    }
    List<OracleResult> oracles = new ArrayList<>();
    for (Map.Entry<String, OracleResult> e : byName.entrySet()) {
      OracleResult r = e.getValue();
      if (r == null) {
        r = OracleResult.notJudged(Oracle.fromConfigName(e.getKey()).orElseThrow(),
            "nothing judged this oracle in this run");
      }
      long duringRun = data.violationCounts().getOrDefault(e.getKey(), 0L);
      if (r.judged() && duringRun > r.violations()) {
        // Reported during the run but missing from the final verdict: the larger count stands.
        r = new OracleResult(r.oracle(), true, r.checks(), duringRun,
            data.violations().stream().filter(v -> v.oracle().equals(e.getKey())).limit(OracleResult.MAX_RECORDED).toList(),
            append(r.notes(), duringRun + " violations were reported during the run"));
      }
      oracles.add(r);
      byName.put(e.getKey(), r);
    }
    List<AssertionResult> assertions = AssertionEvaluator.evaluate(data, byName);
    Status status;
    if (error != null) {
      status = Status.ERROR;
    } else if (oracles.stream().allMatch(OracleResult::passed)
        && assertions.stream().allMatch(AssertionResult::passed)) {
      status = Status.PASSED;
    } else {
      status = Status.FAILED;
    }
    List<String> allNotes = new ArrayList<>();
    if (error != null) {
      allNotes.add("the run could not be carried out: " + error);
    }
    if (!completed) {
      allNotes.add(String.format("stopped early, after %.1fs of %s", data.endNanos() / 1e9,
          io.iommulab.config.scenario.Units.nanos(data.scenario().duration().toNanos())));
    }
    allNotes.addAll(notes);
    return new RunReport(
        data, engine, startedAt, completed, status, modeledNanos, oracles, assertions, allNotes, notes, error);
  }

  private static List<String> append(List<String> a, String s) {
    List<String> out = new ArrayList<>(a);
    out.add(s);
    return out;
  }

  public ScenarioSettings scenario() {
    return scenario;
  }

  /** Every measurement: totals, per-tenant tables, time series, histograms. */
  public RunAggregator data() {
    return data;
  }

  public String engine() {
    return engine;
  }

  public Instant startedAt() {
    return startedAt;
  }

  /** Whether the workload ran its whole duration. */
  public boolean completed() {
    return completed;
  }

  public Status status() {
    return status;
  }

  public int exitCode() {
    return status.exitCode();
  }

  /** Modeled time the run covered, -1 if unknown. */
  public long modeledNanos() {
    return modeledNanos;
  }

  /** Every oracle, in {@link Oracle} order (empty while running). */
  public List<OracleResult> oracles() {
    return oracles;
  }

  public List<AssertionResult> assertions() {
    return assertions;
  }

  public List<String> notes() {
    return notes;
  }

  /** The notes given to {@link #finished} (without those derived from the data and the status). */
  public List<String> ownNotes() {
    return ownNotes;
  }

  /** Why the run could not be carried out, or null. */
  public String error() {
    return error;
  }

  public long failedAssertions() {
    return assertions.stream().filter(a -> !a.passed()).count();
  }

  public long failedOracles() {
    return oracles.stream().filter(o -> !o.passed()).count();
  }
}
