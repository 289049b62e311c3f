package io.iommulab.actors.pipeline;

/** Why the stream closed a batch. Metrics count flushes per reason. */
public enum FlushReason {
  /** Strict mode: issued as soon as the queue was free (alone, or merged behind a busy queue). */
  STRICT,
  /** Deferred mode: the flush queue held {@code flush-entries} requests. */
  FULL,
  /** Deferred mode: {@code flush-timeout} passed since the first entry of the queue. */
  TIMEOUT,
  /**
   * Deferred mode: a request whose issuer waits (detach, replace, user invalidation, an unmap
   * with no one to tell of its flush) flushed the queue at once, taking every entry along.
   */
  URGENT;

  /** The tag value used in metrics: {@code strict}, {@code full}, {@code timeout}, {@code urgent}. */
  public String tag() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
