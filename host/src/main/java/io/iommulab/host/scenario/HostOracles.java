package io.iommulab.host.scenario;

import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.vm.StaleDmaOracle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.host.HostGuardian;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The verdicts the host's shutdown report gives ({@link HostGuardian.HostReport}): isolation,
 * stale translation, accounting and actor failures. The runner asks for the report once the
 * engine is done, and adds these to the engine's own verdicts.
 */
public final class HostOracles {
  private HostOracles() {}

  /**
   * @param report the host's shutdown report
   * @param seed the run's seed, recorded with each violation
   * @param tenantOfVm the tenant of each VM id (violations name it)
   * @param atNanos when the report was taken, on the run's clock
   */
  public static List<OracleResult> from(
      HostGuardian.HostReport report, long seed, Map<Integer, String> tenantOfVm, long atNanos) {
    return List.of(
        isolation(report, seed, tenantOfVm, atNanos),
        stale(report, tenantOfVm, atNanos),
        accounting(report, seed, atNanos),
        failures(report, seed, atNanos));
  }

  /**
   * Every completed DMA was checked against frame ownership: one that touched another VM's frame,
   * a host frame (an IO page table, CCSR) or a free frame (a use after free through a stale
   * translation) is a violation. Unbacked addresses (a master abort) are noted, not violations.
   */
  static OracleResult isolation(
      HostGuardian.HostReport report, long seed, Map<Integer, String> tenantOfVm, long atNanos) {
    HostMemoryActor.MemoryReport memory = report.memory();
    if (memory == null) {
      return OracleResult.notJudged(Oracle.ISOLATION, "host memory did not report at shutdown");
    }
    Map<DmaCheck, Long> checks = memory.checks();
    long all = 0;
    for (long n : checks.values()) {
      all += n;
    }
    long violations = checks.getOrDefault(DmaCheck.ISOLATION_VIOLATION, 0L)
        + checks.getOrDefault(DmaCheck.HOST_FRAME, 0L)
        + checks.getOrDefault(DmaCheck.FREED_FRAME, 0L);
    List<Violation> recorded = new ArrayList<>();
    for (io.iommulab.hardware.memory.Violation v : memory.violations()) {
      if (v.kind() == DmaCheck.UNBACKED || recorded.size() >= violations) {
        continue;
      }
      recorded.add(new Violation(
          Oracle.ISOLATION.configName(), seed, tenantOfVm.getOrDefault(v.expectedOwner(), ""),
          Math.max(0, v.expectedOwner()), atNanos,
          String.format("DMA expected in frames of owner %d reached hpa 0x%x owned by %d (%s)",
              v.expectedOwner(), v.hpa(), v.actualOwner(), v.kind()),
          List.of()));
    }
    List<String> notes = new ArrayList<>();
    notes.add("DMA checks by verdict: " + checks);
    if (memory.violationsDropped() > 0) {
      notes.add(memory.violationsDropped() + " more offending accesses were counted but not logged");
    }
    return OracleResult.judged(Oracle.ISOLATION, all, violations, recorded, notes);
  }

  /** Each VM's stale-translation oracle, with the events that led to each violation. */
  static OracleResult stale(HostGuardian.HostReport report, Map<Integer, String> tenantOfVm, long atNanos) {
    long judged = 0;
    long violations = 0;
    long tolerated = 0;
    List<Violation> recorded = new ArrayList<>();
    for (VmActor.VmShutDown vm : report.vms()) {
      StaleDmaOracle.Report r = vm.oracle();
      judged += r.judgedAccesses();
      violations += r.violations();
      tolerated += r.toleratedStaleHits();
      for (StaleDmaOracle.StaleViolation v : r.recorded()) {
        recorded.add(Violation.of(v, tenantOfVm.getOrDefault(v.vmId(), ""), atNanos));
      }
    }
    List<String> notes = new ArrayList<>();
    if (tolerated > 0) {
      notes.add(tolerated + " stale hits tolerated (deferred invalidation)");
    }
    return OracleResult.judged(
        Oracle.STALE_TRANSLATION, judged, violations,
        recorded.size() > violations ? recorded.subList(0, (int) violations) : recorded, notes);
  }

  /** Everything that should have been returned at the end and was not, and pin bookkeeping bugs. */
  static OracleResult accounting(HostGuardian.HostReport report, long seed, long atNanos) {
    List<String> problems = new ArrayList<>(report.leaks());
    if (report.memory() != null) {
      problems.addAll(report.memory().bugs());
    }
    List<Violation> recorded = new ArrayList<>();
    for (String p : problems) {
      recorded.add(new Violation(Oracle.ACCOUNTING.configName(), seed, "", 0, atNanos, p, List.of()));
    }
    long checked = report.vms().size() + report.units().size() + (report.memory() == null ? 0 : 1);
    return OracleResult.judged(Oracle.ACCOUNTING, checked, problems.size(), recorded,
        List.of("checked at shutdown: pins, guest memory, domains and attach handles in units,"
            + " device-TLB invalidations, what each VM returned"));
  }

  /** Actors that stopped on a bug or did not answer. */
  static OracleResult failures(HostGuardian.HostReport report, long seed, long atNanos) {
    List<Violation> recorded = new ArrayList<>();
    for (String f : report.failures()) {
      recorded.add(new Violation(Oracle.ACTOR_FAILURES.configName(), seed, "", 0, atNanos, f, List.of()));
    }
    long actors = report.vms().size() + report.units().size() + report.msiBanks().size() + 1;
    return OracleResult.judged(Oracle.ACTOR_FAILURES, actors, recorded.size(), recorded, List.of());
  }
}
