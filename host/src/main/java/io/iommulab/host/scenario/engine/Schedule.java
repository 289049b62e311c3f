package io.iommulab.host.scenario.engine;

import java.util.SplittableRandom;

/**
 * The arrivals of one operation kind of one VM: an open workload. Operations arrive as a Poisson
 * process of {@code rate} per second (exponential gaps drawn from the VM's seeded stream), whether
 * or not earlier ones have completed. At most {@code cap} are in flight at once; an arrival that
 * finds the VM at its cap waits in a bounded backlog (it is <em>late</em>, and its latency counts
 * from its scheduled time, so a slow system is not hidden by coordinated omission), and one that
 * finds the backlog full is <em>dropped</em> (counted, never issued).
 *
 * <p>An arrival issued at once counts its latency from its issue: the driver's timer granularity
 * is the load generator's, not the system's. Owned by one actor; plain data.
 */
final class Schedule {
  /** Backlog entries per kind and VM; arrivals beyond are dropped. */
  static final int BACKLOG = 1024;

  private final double gapMeanNanos;
  private final SplittableRandom random;
  private final int cap;
  /** Scheduled times waiting, a ring that grows up to {@link #BACKLOG} (most VMs never need it). */
  private long[] backlog = new long[4];
  private int head;
  private int size;
  private long nextDue;
  private int inFlight;
  private long late;
  private long dropped;

  /**
   * @param rate arrivals per second, above 0
   * @param cap operations in flight at most
   * @param random the stream of gaps (split from the VM's)
   * @param startNanos when arrivals begin (on the run's clock)
   */
  Schedule(double rate, int cap, SplittableRandom random, long startNanos) {
    if (!(rate > 0) || cap < 1) {
      throw new IllegalArgumentException("rate " + rate + ", cap " + cap);
    }
    this.gapMeanNanos = 1e9 / rate;
    this.cap = cap;
    this.random = random;
    this.nextDue = startNanos + gap();
  }

  private long gap() {
    // Exponential gaps: 1 - U is in (0, 1], so the log is finite.
    return Math.max(1, (long) (-Math.log(1 - random.nextDouble()) * gapMeanNanos));
  }

  /** When the next arrival is due, or the run's clock now when the backlog can be served. */
  long nextDue() {
    return nextDue;
  }

  /** Whether an operation could be issued now (the backlog is waiting and a slot is free). */
  boolean backlogReady() {
    return size > 0 && inFlight < cap;
  }

  boolean hasBacklog() {
    return size > 0;
  }

  /**
   * Moves every arrival due by {@code now} into the backlog (dropping those it cannot hold);
   * call {@link #poll} after it.
   */
  void arrive(long now) {
    while (nextDue <= now) {
      if (size == BACKLOG) {
        dropped++;
      } else {
        if (size == backlog.length) {
          grow();
        }
        backlog[(head + size) % backlog.length] = nextDue;
        size++;
      }
      nextDue += gap();
    }
  }

  /**
   * The start time of the next operation to issue now, or -1 when none may be: the backlog is
   * empty or {@code cap} are in flight. An operation that waited (because {@code cap} were in
   * flight when it arrived, or at an earlier poll) starts at its scheduled time and is late; one
   * issued at the first chance starts {@code now}.
   *
   * @param onTimeAfter arrivals due after this time are on time if issued now: at a tick, the
   *     time of the previous tick (an arrival is issued at the first tick after it is due unless
   *     the cap holds it back); when a completion frees a slot, {@code Long.MAX_VALUE} (whatever
   *     waits now was held back by the cap)
   */
  long poll(long now, long onTimeAfter) {
    if (size == 0 || inFlight >= cap) {
      return -1;
    }
    long due = backlog[head];
    head = (head + 1) % backlog.length;
    size--;
    inFlight++;
    if (due <= onTimeAfter) {
      late++;
      return due;
    }
    return now;
  }

  private void grow() {
    long[] bigger = new long[Math.min(BACKLOG, backlog.length * 2)];
    for (int i = 0; i < size; i++) {
      bigger[i] = backlog[(head + i) % backlog.length];
    }
    backlog = bigger;
    head = 0;
  }

  /** An operation of this kind completed (or was refused). */
  void done() {
    if (inFlight <= 0) {
      throw new IllegalStateException("more completions than operations issued");
    }
    inFlight--;
  }

  int inFlight() {
    return inFlight;
  }

  /** Drops the backlog (the run is over): what was waiting is counted as dropped. */
  void abandon() {
    dropped += size;
    size = 0;
    nextDue = Long.MAX_VALUE;
  }

  /** Late operations since the last call (reset). */
  long takeLate() {
    long n = late;
    late = 0;
    return n;
  }

  /** Dropped arrivals since the last call (reset). */
  long takeDropped() {
    long n = dropped;
    dropped = 0;
    return n;
  }
}
