package io.iommulab.actors.fd.model;

import io.iommulab.hardware.FaultInjector;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code struct iommufd_veventq} ({@code drivers/iommu/iommufd/eventq.c}, {@code driver.c}
 * {@code iommufd_viommu_report_event}): a vIOMMU's event queue of one type, {@code depth} events
 * deep.
 *
 * <ul>
 *   <li>Each queued node takes {@code sequence}, then {@code sequence = (sequence + 1) &
 *       INT_MAX}: 0..INT_MAX, wrapping to 0.
 *   <li>A full queue ({@code numEvents == depth}) or a failed allocation queues the lost-events
 *       header instead (flag LOST_EVENTS, no data). The header is only ever the last node:
 *       queuing anything first removes a trailing one. Loss shows as a sequence gap or a trailing
 *       header.
 *   <li>read: whole events only (header plus data); the header is copied alone and does not count
 *       in {@code numEvents}.
 * </ul>
 *
 * <p>Invariants: {@code numEvents} = the data events queued ≤ {@code depth}; the lost-events
 * header, when queued, is last.
 */
public final class Veventq extends FdObject {

  /** Injector site of an event allocation. */
  public static final String SITE_EVENT = "fd.vevent";

  final Viommu viommu;
  final int veventqType;
  final int depth;
  private final FaultInjector injector;
  private final ArrayDeque<Vevent> deliver = new ArrayDeque<>();
  /** Package-private so tests can start near the wrap. */
  int sequence;
  private int numEvents;
  private boolean lostQueued;
  private long lostTotal;

  Veventq(Viommu viommu, int veventqType, int depth, FaultInjector injector) {
    super(ObjectType.VEVENTQ);
    this.viommu = viommu;
    this.veventqType = veventqType;
    this.depth = depth;
    this.injector = injector;
  }

  /** Size of one event's data for this queue's type. */
  int dataLen() {
    return veventqType == Uapi.VEVENTQ_TYPE_ARM_SMMUV3 ? Uapi.VEVENT_ARM_SMMUV3_LEN : Uapi.VEVENT_SELFTEST_LEN;
  }

  private int nextSequence() {
    int s = sequence;
    sequence = (sequence + 1) & Uapi.VEVENTQ_SEQUENCE_MASK;
    return s;
  }

  /**
   * Reports one event about {@code virtId}; returns true when the queue went from empty to
   * non-empty (readers are woken).
   */
  public boolean report(long virtId, String reason, long address, int access) {
    boolean wasEmpty = deliver.isEmpty();
    if (lostQueued) {
      deliver.pollLast();
      lostQueued = false;
    }
    if (numEvents == depth || injector.shouldFail(SITE_EVENT)) {
      lostTotal++;
      deliver.addLast(
          new Vevent(Uapi.VEVENTQ_FLAG_LOST_EVENTS, nextSequence(), 0, "", 0, 0, Uapi.VEVENT_HEADER_LEN));
      lostQueued = true;
    } else {
      deliver.addLast(
          new Vevent(0, nextSequence(), virtId, reason, address, access, Uapi.VEVENT_HEADER_LEN + dataLen()));
      numEvents++;
    }
    return wasEmpty;
  }

  /** read(veventq_fd, count): the events that fit whole, in order. */
  public List<Vevent> read(int count) {
    List<Vevent> out = new ArrayList<>();
    int left = Math.max(count, 0);
    while (!deliver.isEmpty() && deliver.peekFirst().bytes() <= left) {
      Vevent v = deliver.pollFirst();
      left -= v.bytes();
      if (v.lostEvents()) {
        lostQueued = false;
      } else {
        numEvents--;
      }
      out.add(v);
    }
    return out;
  }

  public boolean readable() {
    return !deliver.isEmpty();
  }

  public int numEvents() {
    return numEvents;
  }

  public int depth() {
    return depth;
  }

  /**
   * Events lost over the queue's life (full, or the allocation failed). A reader counts the same
   * number from the sequences: each lost event (re)queued the lost-events header with a fresh
   * sequence, so between two nodes read, {@code later - earlier} events were lost when the later
   * is the header, {@code later - earlier - 1} when it is an event (modulo 2^31).
   */
  public long lostEvents() {
    return lostTotal;
  }

  public int veventqType() {
    return veventqType;
  }

  public Viommu viommu() {
    return viommu;
  }

  @Override
  public String summary() {
    return String.format(
        "viommu=%d type=0x%x depth=%d events=%d lost-header=%b next-seq=%d lost=%d",
        viommu.id(), veventqType, depth, numEvents, lostQueued, sequence, lostTotal);
  }
}
