package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code struct iommufd_fault} ({@code drivers/iommu/iommufd/fault.c}, {@code eventq.c}, {@code
 * drivers/iommu/io-pgfault.c}): an IOPF queue. Page requests of the devices attached to a HWPT
 * with this FAULT arrive here; the VMM reads whole page-request groups and answers each group
 * once.
 *
 * <ul>
 *   <li>Grouping: a request without LAST_PAGE waits in {@code partial} (unacknowledged); the one
 *       with LAST_PAGE closes its group (same device and grpid) and the group joins the deliver
 *       list.
 *   <li>read: whole groups only, 40 bytes a record; a group that does not fit stays queued;
 *       {@code count % 40} → ESPIPE. Each group read gets a cookie (lowest free, from 1) and moves
 *       to the response table.
 *   <li>write: {cookie, code} records in order; code not SUCCESS/INVALID or an unknown cookie is
 *       EINVAL and stops; one response completes the whole group, once. Bytes consumed are
 *       returned when at least one record was consumed.
 *   <li>Detach / replace / destroy: every group of the attach handle (queued, read-but-unanswered)
 *       is answered INVALID ({@code iommufd_auto_response_faults}); its partials are dropped.
 *   <li>Bounded depth (the emulator applies the vEVENTQ rule of {@code eventq.c} to FAULT, whose
 *       kernel list is unbounded): at most {@code depth} requests are held, partial or queued
 *       (groups read and awaiting a response do not count). A request arriving at a full queue is
 *       lost: the lost-events node is (re)queued last with a fresh sequence number. Each group
 *       joining the deliver list takes the next sequence ({@code (s + 1) & INT_MAX}); a group
 *       queued after a trailing lost-events node removes it. So a reader sees every loss as a
 *       sequence gap or a trailing lost-events header, and the count is exact: the requests lost
 *       between two nodes it reads are the difference of their sequences, less one when the
 *       later is a group. A lost last page also drops its group's partials (discarded, not lost:
 *       they were queued) and the group is answered INVALID by the caller.
 *   <li>Partials discarded: after a unit's page request queue overflowed, the partial groups of
 *       that unit's devices are dropped ({@code iopf_queue_discard_partial}).
 * </ul>
 *
 * <p>Invariants: a group is in exactly one of partial / deliver / response; cookies in the
 * response table are unique and ≥ 1; {@code users} counts the HWPTs that deliver here; {@code
 * held} = the requests in partial and deliver ≤ {@code depth}; the lost-events node, when
 * queued, is after every group of the deliver list.
 */
public final class Fault extends FdObject {

  /** Injector site of a group allocation ({@code iopf_group_alloc}). */
  public static final String SITE_GROUP = "fd.fault.group";
  /** Injector site of a cookie allocation ({@code xa_alloc} of the response table). */
  public static final String SITE_COOKIE = "fd.fault.cookie";

  /** One page request. */
  record Request(long addr, int perm, boolean lastPage) {}

  /** A page-request group of one attach handle (device, pasid, hwpt). */
  public static final class Group {
    final Device device;
    final int pasid;
    final int grpid;
    final HwPagetable hwpt;
    final List<Request> requests = new ArrayList<>(1);
    int cookie;
    int sequence;
    /** The token of the attach handle the group was raised under (0: none). */
    long token;

    Group(Device device, int pasid, int grpid, HwPagetable hwpt) {
      this.device = device;
      this.pasid = pasid;
      this.grpid = grpid;
      this.hwpt = hwpt;
    }

    public Device device() {
      return device;
    }

    /** PASID of the requests, or {@link Device#NO_PASID}. */
    public int pasid() {
      return pasid;
    }

    public int grpid() {
      return grpid;
    }

    public int size() {
      return requests.size();
    }

    /** The token of the attach handle the group was raised under (0: none). */
    public long token() {
      return token;
    }
  }

  /** A group to answer with {@code code} (Uapi.PAGE_RESP_*; 2 = FAILURE). */
  public record Response(Group group, int code) {}

  /** What became of a reported request. */
  public enum Reported {
    PARTIAL,
    QUEUED,
    QUEUED_AND_READABLE,
    /** Allocation failed: the group must be answered FAILURE. */
    FAILED,
    /**
     * The queue was full: the request is lost. When it was a last page, {@link
     * #takeFailedGroup()} is its group (partials dropped), to answer INVALID.
     */
    LOST,
    /** As {@link #LOST}, and the queue went from empty to readable (the lost-events node). */
    LOST_AND_READABLE
  }

  /**
   * What one read returns: the 40-byte records of whole groups, and a header per node read (one
   * per group, in order, then the lost-events node if the read reached it). The headers are the
   * emulator's side band: {@code iommu_hwpt_pgfault} has no room for a sequence.
   */
  public record ReadResult(List<HwptPgfault> records, List<FaultQueueHeader> headers) {}

  /** FAILURE code for an internal failure ({@code IOMMU_PAGE_RESP_FAILURE}). */
  public static final int RESP_FAILURE = 2;

  private final FaultInjector injector;
  private final Map<Long, Group> partial = new LinkedHashMap<>();
  private final ArrayDeque<Group> deliver = new ArrayDeque<>();
  private final TreeMap<Integer, Group> response = new TreeMap<>();
  private final BitSet cookies = new BitSet();
  private Group failedGroup;
  private final int depth;
  private int held;
  /** Sequence of the next node queued. Package-private so tests can start near the wrap. */
  int sequence;
  private boolean lostQueued;
  private int lostSequence;
  private long lostTotal;
  private long discardedTotal;
  private long groupsQueuedTotal;

  /** An unbounded queue (the kernel's FAULT): tests of the grouping rules. */
  Fault(FaultInjector injector) {
    this(injector, Integer.MAX_VALUE);
  }

  Fault(FaultInjector injector, int depth) {
    super(ObjectType.FAULT);
    if (depth < 1) {
      throw new IllegalArgumentException("depth " + depth + ": must be at least 1");
    }
    this.injector = injector;
    this.depth = depth;
  }

  private int nextSequence() {
    int s = sequence;
    sequence = (sequence + 1) & Uapi.VEVENTQ_SEQUENCE_MASK;
    return s;
  }

  private static long partialKey(Device d, int grpid) {
    return ((long) d.id() << 32) | (grpid & 0xffffffffL);
  }

  /**
   * A page request of {@code device} at {@code pasid} routed here by {@code hwpt}'s attach
   * handle. On {@link Reported#FAILED}, {@link #takeFailedGroup()} is the group to answer.
   */
  public Reported report(
      Device device, HwPagetable hwpt, int pasid, int grpid, long addr, int perm, boolean lastPage) {
    return report(device, hwpt, pasid, grpid, addr, perm, lastPage, 0L);
  }

  /**
   * As above, for a request raised under the attach handle of {@code token}: the group remembers
   * it, so its response names the handle it answers.
   */
  public Reported report(
      Device device, HwPagetable hwpt, int pasid, int grpid, long addr, int perm, boolean lastPage,
      long token) {
    long key = partialKey(device, grpid);
    // Most groups are one page: no partial to look up, no boxing.
    Group g = partial.isEmpty() ? null : partial.get(key);
    if (held == depth) {
      return lost(key, g, device, hwpt, pasid, grpid, addr, perm, lastPage, token);
    }
    if (g == null) {
      if (injector.shouldFail(SITE_GROUP)) {
        failedGroup = new Group(device, pasid, grpid, hwpt);
        failedGroup.token = token;
        failedGroup.requests.add(new Request(addr, perm, lastPage));
        return Reported.FAILED;
      }
      g = new Group(device, pasid, grpid, hwpt);
      g.token = token;
    }
    g.requests.add(new Request(addr, perm, lastPage));
    held++;
    if (!lastPage) {
      partial.put(key, g);
      return Reported.PARTIAL;
    }
    if (!partial.isEmpty()) {
      partial.remove(key);
    }
    boolean wasReadable = readable();
    // A group queued after a trailing lost-events node removes it: its sequence is the gap.
    lostQueued = false;
    g.sequence = nextSequence();
    deliver.addLast(g);
    groupsQueuedTotal++;
    return wasReadable ? Reported.QUEUED : Reported.QUEUED_AND_READABLE;
  }

  /** The queue is full: the request is lost and the lost-events node (re)queued last. */
  private Reported lost(
      long key, Group partialGroup, Device device, HwPagetable hwpt, int pasid, int grpid,
      long addr, int perm, boolean lastPage, long token) {
    boolean wasReadable = readable();
    lostTotal++;
    lostQueued = true;
    lostSequence = nextSequence();
    if (lastPage) {
      Group g = partialGroup;
      if (g != null) {
        partial.remove(key);
        held -= g.requests.size();
        discardedTotal += g.requests.size();
      } else {
        g = new Group(device, pasid, grpid, hwpt);
        g.token = token;
      }
      g.requests.add(new Request(addr, perm, true));
      failedGroup = g;
    }
    return wasReadable ? Reported.LOST : Reported.LOST_AND_READABLE;
  }

  /** The group of the last {@link Reported#FAILED} report. */
  public Group takeFailedGroup() {
    Group g = failedGroup;
    failedGroup = null;
    return g;
  }

  /** read(fault_fd, count): whole groups that fit; ESPIPE when count is not a record multiple. */
  public Outcome<List<HwptPgfault>> read(int count) {
    Outcome<ReadResult> r = readWithHeaders(count);
    if (!r.isOk()) {
      Outcome.Err<ReadResult> e = (Outcome.Err<ReadResult>) r;
      return Outcome.err(e.errno(), "%s", e.message());
    }
    return Outcome.ok(r.value().records());
  }

  /**
   * read(fault_fd, count) with the node headers: whole groups that fit, then the lost-events
   * node when every group before it was read (it takes no bytes).
   */
  public Outcome<ReadResult> readWithHeaders(int count) {
    if (count < 0 || count % Uapi.HWPT_PGFAULT_LEN != 0) {
      return Outcome.err(
          Errno.ESPIPE, "count %d: not a multiple of %d-byte records", count, Uapi.HWPT_PGFAULT_LEN);
    }
    List<HwptPgfault> out = new ArrayList<>();
    List<FaultQueueHeader> headers = new ArrayList<>();
    int room = count / Uapi.HWPT_PGFAULT_LEN;
    while (!deliver.isEmpty() && deliver.peekFirst().requests.size() <= room) {
      if (injector.shouldFail(SITE_COOKIE)) {
        if (out.isEmpty()) {
          return Outcome.err(Errno.ENOMEM, "cookie allocation failed (injected)");
        }
        break;
      }
      Group g = deliver.pollFirst();
      held -= g.requests.size();
      int cookie = cookies.nextClearBit(1);
      cookies.set(cookie);
      g.cookie = cookie;
      response.put(cookie, g);
      headers.add(new FaultQueueHeader(0, g.sequence, cookie, g.requests.size()));
      for (Request r : g.requests) {
        int flags = r.lastPage() ? Uapi.PGFAULT_FLAGS_LAST_PAGE : 0;
        if (g.pasid != Device.NO_PASID) {
          flags |= Uapi.PGFAULT_FLAGS_PASID_VALID;
        }
        out.add(
            new HwptPgfault(
                flags, g.device.id(), g.pasid == Device.NO_PASID ? 0 : g.pasid, g.grpid, r.perm(),
                r.addr(), 0, cookie));
      }
      room -= g.requests.size();
    }
    if (deliver.isEmpty() && lostQueued) {
      headers.add(new FaultQueueHeader(FaultQueueHeader.LOST_EVENTS, lostSequence, 0, 0));
      lostQueued = false;
    }
    return Outcome.ok(new ReadResult(out, headers));
  }

  /**
   * write(fault_fd): answers groups in order. Returns the groups answered; EINVAL (nothing
   * consumed) when the first record is bad; stops quietly at a later bad one.
   */
  public Outcome<List<Response>> write(List<HwptPageResponse> records) {
    List<Response> out = new ArrayList<>(records.size());
    for (HwptPageResponse r : records) {
      Group g = response.get(r.cookie());
      String problem = null;
      if (r.code() != Uapi.PAGE_RESP_SUCCESS && r.code() != Uapi.PAGE_RESP_INVALID) {
        problem = String.format("response code %d: must be SUCCESS (0) or INVALID (1)", r.code());
      } else if (g == null) {
        problem = String.format("cookie %d: no group waits for a response", r.cookie());
      }
      if (problem != null) {
        if (out.isEmpty()) {
          return Outcome.err(Errno.EINVAL, problem);
        }
        break;
      }
      response.remove(r.cookie());
      cookies.clear(r.cookie());
      out.add(new Response(g, r.code()));
    }
    return Outcome.ok(out);
  }

  /** EPOLLIN: a group or the lost-events node waits to be read. */
  public boolean readable() {
    return !deliver.isEmpty() || lostQueued;
  }

  /**
   * {@code iommufd_auto_response_faults}: every queued or unanswered group of (device, pasid,
   * hwpt) to answer INVALID, removed; partials of the handle dropped unanswered.
   */
  public List<Response> autoRespond(Device device, int pasid, HwPagetable hwpt) {
    List<Response> out = new ArrayList<>();
    for (Iterator<Group> it = partial.values().iterator(); it.hasNext(); ) {
      Group g = it.next();
      if (g.device == device && g.pasid == pasid && g.hwpt == hwpt) {
        it.remove();
        held -= g.requests.size();
        discardedTotal += g.requests.size();
      }
    }
    for (Iterator<Group> it = deliver.iterator(); it.hasNext(); ) {
      Group g = it.next();
      if (g.device == device && g.pasid == pasid && g.hwpt == hwpt) {
        it.remove();
        held -= g.requests.size();
        out.add(new Response(g, Uapi.PAGE_RESP_INVALID));
      }
    }
    for (Iterator<Group> it = response.values().iterator(); it.hasNext(); ) {
      Group g = it.next();
      if (g.device == device && g.pasid == pasid && g.hwpt == hwpt) {
        it.remove();
        cookies.clear(g.cookie);
        out.add(new Response(g, Uapi.PAGE_RESP_INVALID));
      }
    }
    return out;
  }

  /**
   * {@code iopf_queue_discard_partial} for unit {@code unitId}: its devices' partial groups are
   * dropped unanswered (their last page may have been lost in the unit's full queue). Returns the
   * requests dropped.
   */
  public int discardPartials(int unitId) {
    int dropped = 0;
    for (Iterator<Group> it = partial.values().iterator(); it.hasNext(); ) {
      Group g = it.next();
      if (g.device.unitId() == unitId) {
        it.remove();
        dropped += g.requests.size();
      }
    }
    held -= dropped;
    discardedTotal += dropped;
    return dropped;
  }

  /** FAULT destroy: every group left, to answer INVALID; the queue is empty afterwards. */
  public List<Response> drain() {
    List<Response> out = new ArrayList<>();
    for (Group g : partial.values()) {
      discardedTotal += g.requests.size();
    }
    partial.clear();
    held = 0;
    lostQueued = false;
    for (Group g : deliver) {
      out.add(new Response(g, Uapi.PAGE_RESP_INVALID));
    }
    deliver.clear();
    for (Group g : response.values()) {
      out.add(new Response(g, Uapi.PAGE_RESP_INVALID));
    }
    response.clear();
    cookies.clear();
    return out;
  }

  public int partialGroups() {
    return partial.size();
  }

  public int queuedGroups() {
    return deliver.size();
  }

  public int awaitingResponse() {
    return response.size();
  }

  /** Requests held now (partial and queued): at most {@link #depth()}. */
  public int held() {
    return held;
  }

  public int depth() {
    return depth;
  }

  /** Requests lost because the queue was full, over the queue's life. */
  public long lostEvents() {
    return lostTotal;
  }

  /** Requests queued, then dropped unread (partials of a failed or discarded group, detach). */
  public long discarded() {
    return discardedTotal;
  }

  /** Groups that joined the deliver list, over the queue's life. */
  public long groupsQueued() {
    return groupsQueuedTotal;
  }

  @Override
  public String summary() {
    return String.format(
        "partial=%d queued=%d awaiting-response=%d cookies=%s held=%d/%d lost=%d lost-header=%b"
            + " next-seq=%d",
        partial.size(), deliver.size(), response.size(), response.keySet(), held,
        depth, lostTotal, lostQueued, sequence);
  }
}
