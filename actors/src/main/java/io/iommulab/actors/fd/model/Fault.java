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
 * </ul>
 *
 * <p>Invariants: a group is in exactly one of partial / deliver / response; cookies in the
 * response table are unique and ≥ 1; {@code users} counts the HWPTs that deliver here.
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
  }

  /** A group to answer with {@code code} (Uapi.PAGE_RESP_*; 2 = FAILURE). */
  public record Response(Group group, int code) {}

  /** What became of a reported request. */
  public enum Reported {
    PARTIAL,
    QUEUED,
    QUEUED_AND_READABLE,
    /** Allocation failed: the group must be answered FAILURE. */
    FAILED
  }

  /** FAILURE code for an internal failure ({@code IOMMU_PAGE_RESP_FAILURE}). */
  public static final int RESP_FAILURE = 2;

  private final FaultInjector injector;
  private final Map<Long, Group> partial = new LinkedHashMap<>();
  private final ArrayDeque<Group> deliver = new ArrayDeque<>();
  private final TreeMap<Integer, Group> response = new TreeMap<>();
  private final BitSet cookies = new BitSet();
  private Group failedGroup;

  Fault(FaultInjector injector) {
    super(ObjectType.FAULT);
    this.injector = injector;
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
    long key = partialKey(device, grpid);
    Group g = partial.get(key);
    if (g == null) {
      if (injector.shouldFail(SITE_GROUP)) {
        failedGroup = new Group(device, pasid, grpid, hwpt);
        failedGroup.requests.add(new Request(addr, perm, lastPage));
        return Reported.FAILED;
      }
      g = new Group(device, pasid, grpid, hwpt);
    }
    g.requests.add(new Request(addr, perm, lastPage));
    if (!lastPage) {
      partial.put(key, g);
      return Reported.PARTIAL;
    }
    partial.remove(key);
    boolean wasEmpty = deliver.isEmpty();
    deliver.addLast(g);
    return wasEmpty ? Reported.QUEUED_AND_READABLE : Reported.QUEUED;
  }

  /** The group of the last {@link Reported#FAILED} report. */
  public Group takeFailedGroup() {
    Group g = failedGroup;
    failedGroup = null;
    return g;
  }

  /** read(fault_fd, count): whole groups that fit; ESPIPE when count is not a record multiple. */
  public Outcome<List<HwptPgfault>> read(int count) {
    if (count < 0 || count % Uapi.HWPT_PGFAULT_LEN != 0) {
      return Outcome.err(
          Errno.ESPIPE, "count %d: not a multiple of %d-byte records", count, Uapi.HWPT_PGFAULT_LEN);
    }
    List<HwptPgfault> out = new ArrayList<>();
    int room = count / Uapi.HWPT_PGFAULT_LEN;
    while (!deliver.isEmpty() && deliver.peekFirst().requests.size() <= room) {
      if (injector.shouldFail(SITE_COOKIE)) {
        if (out.isEmpty()) {
          return Outcome.err(Errno.ENOMEM, "cookie allocation failed (injected)");
        }
        break;
      }
      Group g = deliver.pollFirst();
      int cookie = cookies.nextClearBit(1);
      cookies.set(cookie);
      g.cookie = cookie;
      response.put(cookie, g);
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
    return Outcome.ok(out);
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

  /** EPOLLIN: a group waits to be read. */
  public boolean readable() {
    return !deliver.isEmpty();
  }

  /**
   * {@code iommufd_auto_response_faults}: every queued or unanswered group of (device, pasid,
   * hwpt) to answer INVALID, removed; partials of the handle dropped unanswered.
   */
  public List<Response> autoRespond(Device device, int pasid, HwPagetable hwpt) {
    List<Response> out = new ArrayList<>();
    partial.values().removeIf(g -> g.device == device && g.pasid == pasid && g.hwpt == hwpt);
    for (Iterator<Group> it = deliver.iterator(); it.hasNext(); ) {
      Group g = it.next();
      if (g.device == device && g.pasid == pasid && g.hwpt == hwpt) {
        it.remove();
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

  /** FAULT destroy: every group left, to answer INVALID; the queue is empty afterwards. */
  public List<Response> drain() {
    List<Response> out = new ArrayList<>();
    partial.clear();
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

  @Override
  public String summary() {
    return String.format(
        "partial=%d queued=%d awaiting-response=%d cookies=%s",
        partial.size(), deliver.size(), response.size(), response.keySet());
  }
}
