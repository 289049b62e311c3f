package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;

/**
 * One record read from a vEVENTQ: {@code struct iommufd_vevent_header} {flags, sequence} and, unless
 * it is the lost-events header, the type-specific data. The data is modeled as the fields the
 * emulated units report (the SMMUv3 event record rewritten with the vSID, or the selftest {virt_id}):
 * {@code virtId}, the fault {@code reason} (a FaultReason name), {@code address} and {@code access}.
 *
 * @param flags {@link Uapi#VEVENTQ_FLAG_LOST_EVENTS} for the lost-events header, else 0
 * @param sequence the node's sequence number, 0..INT_MAX, wrapping to 0
 * @param virtId the vDEVICE's virtual ID (vSID / vRID) the event is about
 * @param reason why the event was reported
 * @param address the faulting input address
 * @param access the Access bits of the faulting request
 * @param bytes the record's size in the read buffer (header plus data)
 */
public record Vevent(
    int flags, int sequence, long virtId, String reason, long address, int access, int bytes)
    implements CborSerializable {

  public boolean lostEvents() {
    return (flags & Uapi.VEVENTQ_FLAG_LOST_EVENTS) != 0;
  }
}
