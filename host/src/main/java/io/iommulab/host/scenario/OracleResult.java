package io.iommulab.host.scenario;

import io.iommulab.actors.CborSerializable;
import io.iommulab.config.scenario.Oracle;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The verdict of one oracle over a run.
 *
 * @param oracle the oracle's name ({@link Oracle#configName()})
 * @param judged whether anything judged it: an oracle nobody judged fails the run, since every
 *     oracle is on in every run
 * @param checks how many things it judged (DMA accesses checked, fds closed, faults published...)
 * @param violations how many violations, all counted
 * @param recorded the first violations with their events (bounded)
 * @param notes what else the judge says (how it judged, what it could not see)
 */
public record OracleResult(
    String oracle,
    boolean judged,
    long checks,
    long violations,
    List<Violation> recorded,
    List<String> notes)
    implements CborSerializable {

  /** Violations kept per oracle with their events; more are only counted. */
  public static final int MAX_RECORDED = 100;

  public OracleResult {
    if (Oracle.fromConfigName(oracle).isEmpty()) {
      throw new IllegalArgumentException("no oracle " + oracle);
    }
    if (checks < 0 || violations < 0 || recorded.size() > violations) {
      throw new IllegalArgumentException(
          oracle + ": checks " + checks + ", violations " + violations + ", recorded " + recorded.size());
    }
    recorded = List.copyOf(recorded.size() > MAX_RECORDED ? recorded.subList(0, MAX_RECORDED) : recorded);
    notes = List.copyOf(notes);
  }

  /** A judged oracle. */
  public static OracleResult judged(
      Oracle oracle, long checks, long violations, List<Violation> recorded, List<String> notes) {
    return new OracleResult(oracle.configName(), true, checks, violations, recorded, notes);
  }

  /** An oracle nobody judged in this run: it fails the run. */
  public static OracleResult notJudged(Oracle oracle, String why) {
    return new OracleResult(oracle.configName(), false, 0, 0, List.of(), List.of(why));
  }

  /** Judged and without violation. */
  public boolean passed() {
    return judged && violations == 0;
  }

  /** Both verdicts on one oracle summed: checks and violations add, records and notes append. */
  public OracleResult plus(OracleResult other) {
    if (!oracle.equals(other.oracle)) {
      throw new IllegalArgumentException(oracle + " + " + other.oracle);
    }
    if (!other.judged) {
      return judged ? this : new OracleResult(oracle, false, 0, 0, List.of(), concat(notes, other.notes));
    }
    if (!judged) {
      return other;
    }
    List<Violation> all = new ArrayList<>(recorded);
    all.addAll(other.recorded);
    return new OracleResult(
        oracle, true, checks + other.checks, violations + other.violations, all, concat(notes, other.notes));
  }

  private static List<String> concat(List<String> a, List<String> b) {
    List<String> out = new ArrayList<>(a);
    out.addAll(b);
    return out;
  }

  @Override
  public String toString() {
    return oracle + (judged ? ": " + violations + " violations in " + checks + " checks" : ": not judged");
  }

  /** The oracle this result is about. */
  public Oracle kind() {
    return Oracle.fromConfigName(oracle).orElseThrow(() -> new IllegalStateException(Objects.toString(oracle)));
  }
}
