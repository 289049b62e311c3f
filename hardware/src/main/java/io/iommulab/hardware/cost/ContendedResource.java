package io.iommulab.hardware.cost;

/**
 * A hardware resource that serves one request at a time (the invalidation queue, the page
 * walker): a request arriving while the resource is busy waits until it is free. Time is modeled;
 * the caller passes {@code now}.
 *
 * <p>Invariant: {@code busyUntil} never decreases; each served request ends at
 * {@code max(now, busyUntil) + service}.
 */
public final class ContendedResource {
  private final String name;
  private long busyUntil = Long.MIN_VALUE;
  private long served;
  private long totalQueueingNs;
  private long maxQueueingNs;

  public ContendedResource(String name) {
    this.name = name;
  }

  /**
   * Serves a request of {@code serviceNs} arriving at {@code now}.
   *
   * @return the modeled completion time
   */
  public long acquire(long now, long serviceNs) {
    if (serviceNs < 0) {
      throw new IllegalArgumentException("negative service time " + serviceNs);
    }
    long start = Math.max(now, busyUntil);
    long waited = start - now;
    totalQueueingNs += waited;
    maxQueueingNs = Math.max(maxQueueingNs, waited);
    served++;
    busyUntil = start + serviceNs;
    return busyUntil;
  }

  /** Latency (queueing plus service) of a request of {@code serviceNs} arriving at {@code now}. */
  public long latency(long now, long serviceNs) {
    return acquire(now, serviceNs) - now;
  }

  public String name() {
    return name;
  }

  public long busyUntil() {
    return busyUntil;
  }

  public long served() {
    return served;
  }

  public long totalQueueingNs() {
    return totalQueueingNs;
  }

  public long maxQueueingNs() {
    return maxQueueingNs;
  }
}
