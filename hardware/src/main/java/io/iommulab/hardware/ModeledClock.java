package io.iommulab.hardware;

/**
 * Modeled time in nanoseconds. Models never read the wall clock: whoever owns a model hands it a
 * clock (a {@link ManualClock} in tests and replays, a clock derived from the actor system's
 * scheduler in runs).
 */
@FunctionalInterface
public interface ModeledClock {
  long nanos();
}
