package io.iommulab.host;

import io.iommulab.hardware.ModeledClock;

/**
 * The clock of a run: nanoseconds of the monotonic system timer since the clock was made. This is
 * the one place in iommulab where wall time is read — at the edge, by the process that starts a
 * host — and it is handed to the actors as a {@link ModeledClock}; tests and replays hand them a
 * {@link io.iommulab.hardware.ManualClock} instead.
 */
public final class EdgeClock implements ModeledClock {
  /**
   * The wall clock units measure wall-clock latencies with (invalidations, fault records), handed
   * to them by the guardian: the actors never read a clock themselves.
   */
  public static final java.util.function.LongSupplier WALL_NANOS = System::nanoTime;

  private final long origin = System.nanoTime();

  @Override
  public long nanos() {
    return System.nanoTime() - origin;
  }
}
