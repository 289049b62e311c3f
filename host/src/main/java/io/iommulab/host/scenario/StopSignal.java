package io.iommulab.host.scenario;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A request to end a run early (Ctrl-C, a test). The engine polls {@link #isRequested()} or waits
 * on it; once requested it stays requested. Thread-safe.
 */
public final class StopSignal {
  private final CountDownLatch latch = new CountDownLatch(1);

  public void request() {
    latch.countDown();
  }

  public boolean isRequested() {
    return latch.getCount() == 0;
  }

  /** Waits up to {@code nanos} for a request; true if requested. */
  public boolean await(long nanos) throws InterruptedException {
    return latch.await(nanos, TimeUnit.NANOSECONDS);
  }
}
