package io.iommulab.hardware;

/** A clock that moves only when told to: tests and seeded replays. Not thread-safe. */
public final class ManualClock implements ModeledClock {
  private long now;

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
    now += nanos;
  }

  public void set(long nanos) {
    if (nanos < now) {
      throw new IllegalArgumentException("time runs forward: " + nanos + " < " + now);
    }
    now = nanos;
  }
}
