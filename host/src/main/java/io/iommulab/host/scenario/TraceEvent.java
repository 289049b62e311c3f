package io.iommulab.host.scenario;

import io.iommulab.actors.CborSerializable;
import java.util.Objects;

/**
 * One step of the history that led to a violation, in the order it happened.
 *
 * @param seq its sequence number in the history of the VM (or host) that recorded it
 * @param timeNanos when it happened, in modeled nanoseconds of the run
 * @param what the step, in words: {@code "unmap [0x1000, +0x2000) returned (issued as #12)"}
 */
public record TraceEvent(long seq, long timeNanos, String what) implements CborSerializable {
  public TraceEvent {
    Objects.requireNonNull(what, "what");
  }
}
