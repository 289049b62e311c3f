package io.iommulab.host.scenario;

/**
 * Where an engine reports while it runs: the runner's listener draws the progress bar, appends
 * to the JSON-lines log (flushed every interval, so a killed run keeps what it measured), feeds
 * the Prometheus metrics and rewrites the summary of a soak run.
 *
 * <p>Calls come from the engine's one collector (never concurrently; they may come from
 * different threads over time, as an actor's do). Implementations return at once: they hand the
 * work to their own thread, so an actor may call them.
 */
public interface RunListener {

  /** The next interval, in index order, none skipped. */
  void onInterval(IntervalSnapshot snapshot);

  /**
   * A violation, as soon as it is detected (so it reaches disk even if the run is killed). Also
   * counted in its tenant's {@code violations.<oracle>} of the interval it happened in, and in
   * the engine's final {@link OracleResult} when the engine judges that oracle.
   */
  void onViolation(Violation violation);

  /** A listener that ignores everything. */
  RunListener NONE =
      new RunListener() {
        @Override
        public void onInterval(IntervalSnapshot snapshot) {}

        @Override
        public void onViolation(Violation violation) {}
      };
}
