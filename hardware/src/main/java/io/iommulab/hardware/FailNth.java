package io.iommulab.hardware;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Fails the Nth injectable call after arming, once, like writing N to {@code fail-nth}. A sweep
 * runs a call chain with N = 1, 2, ... until {@link #consumed()} stays false: the chain then
 * succeeded with every earlier site failed once. A sweep over actors crosses threads, so the
 * counters are atomic; it is a test hook, never state a model owns.
 */
public final class FailNth implements FaultInjector {
  private final AtomicLong remaining = new AtomicLong();
  private final AtomicReference<String> failedSite = new AtomicReference<>();
  private final AtomicLong calls = new AtomicLong();

  /** Fail the {@code n}th call from now (n ≥ 1). */
  public void arm(long n) {
    if (n < 1) {
      throw new IllegalArgumentException("n must be >= 1: " + n);
    }
    failedSite.set(null);
    remaining.set(n);
  }

  public void disarm() {
    remaining.set(0);
  }

  @Override
  public boolean shouldFail(String site) {
    calls.incrementAndGet();
    long left = remaining.getAndUpdate(r -> r > 0 ? r - 1 : 0);
    if (left == 1) {
      failedSite.set(site);
      return true;
    }
    return false;
  }

  /** Whether the armed failure has fired. */
  public boolean consumed() {
    return failedSite.get() != null;
  }

  /** The site that failed, or null. */
  public String failedSite() {
    return failedSite.get();
  }

  /** Injectable calls seen since creation. */
  public long calls() {
    return calls.get();
  }
}
