package io.iommulab.hardware;

/**
 * A clock that moves only when told to: tests and seeded replays. One thread advances it; the
 * field is volatile because actors on other threads read it.
 */
public final class ManualClock implements ModeledClock {
  private volatile long now;

  public ManualClock() {
    this(0);
  }

  public ManualClock(long start) {
    this.now = start;
  }

  @Override
  public long nanos() {
    return now;
  }

  public void advance(long nanos) {
    if (nanos < 0) {
      throw new IllegalArgumentException("time runs forward: " + nanos);
    }
    now = now + nanos; // single writer: no lost update
  }

  public void set(long nanos) {
    if (nanos < now) {
      throw new IllegalArgumentException("time runs forward: " + nanos + " < " + now);
    }
    now = nanos;
  }
}
