package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;

/**
 * The header of one node read from a FAULT queue, the emulator's side band beside the 40-byte
 * {@link HwptPgfault} records (whose ABI has no room for it): the vEVENTQ header {flags, sequence}
 * applied to FAULT, plus the group's cookie and record count.
 *
 * @param flags {@link #LOST_EVENTS} for the lost-events node, else 0
 * @param sequence the node's sequence number, 0..INT_MAX, wrapping to 0
 * @param cookie the group's cookie (0 for the lost-events node)
 * @param records the group's records, in the read's record list (0 for the lost-events node)
 */
public record FaultQueueHeader(int flags, int sequence, int cookie, int records)
    implements CborSerializable {

  /** Same value as {@code IOMMU_VEVENTQ_FLAG_LOST_EVENTS}. */
  public static final int LOST_EVENTS = Uapi.VEVENTQ_FLAG_LOST_EVENTS;

  public boolean lostEvents() {
    return (flags & LOST_EVENTS) != 0;
  }
}
