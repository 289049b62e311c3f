package io.iommulab.actors.vm;

import io.iommulab.actors.CborSerializable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The stale-translation oracle of one VM. In strict mode an IOAS unmap returns only after every
 * IOTLB and device ATC that may hold the translation has been invalidated to the sync (iommufd
 * {@code iopt_unmap_iova_range} → {@code iommu_unmap} → {@code iotlb_sync}). So a DMA access that
 * the VM issues <em>after</em> an unmap of its IOVA has returned, and that nevertheless completes,
 * used a stale translation: a missed or late invalidation, the bug this oracle exists to catch.
 *
 * <p>The VM reports: map issued (the range is legal again from then on, since the map may land at
 * any moment), unmap returned (the range becomes stale), burst issued (the oracle notes, per
 * access, whether it targets a stale range at that instant), burst completed (every access that
 * was stale at issue and completed OK is a violation). An access issued <em>before</em> the unmap
 * returned may legally complete after it: it is never judged. In deferred mode (non-strict, an
 * unmap may return before the flush) such hits are counted as tolerated, not as violations.
 *
 * <p>Each violation is recorded with the run's seed and the events that led to it (unmap issued
 * and returned, burst issued, access completed), each with its sequence number and modeled time;
 * at most {@link #MAX_RECORDED} are kept, all are counted. Address spaces are opaque keys chosen
 * by the VM (an fd's IOAS). Stale ranges of a space are disjoint: a range is stale only once it
 * was mapped and unmapped, and a new map trims it. Single-threaded: the VM actor owns it.
 */
public final class StaleDmaOracle {
  /** Violations kept with their events; more are only counted. */
  public static final int MAX_RECORDED = 32;

  private final long seed;
  private final int vmId;
  private final boolean strict;
  private final Map<Long, TreeMap<Long, StaleRange>> stale = new HashMap<>();
  private final List<StaleViolation> recorded = new ArrayList<>();
  private long seq;
  private long violations;
  private long toleratedStaleHits;
  private long unmapsReturned;
  private long judgedAccesses;

  public StaleDmaOracle(long seed, int vmId, boolean strict) {
    this.seed = seed;
    this.vmId = vmId;
    this.strict = strict;
  }

  /** One step of the history, numbered in the order the VM saw it. */
  public record Event(long seq, long timeNs, String what) implements CborSerializable {}

  /**
   * A DMA access that completed at an IOVA whose unmap had returned before the access was issued.
   *
   * @param seed the run's seed, to replay it
   * @param events unmap issued, unmap returned, burst issued, access completed
   */
  public record StaleViolation(
      long seed,
      int vmId,
      String device,
      int pasid,
      long iova,
      int access,
      long burstTag,
      List<Event> events)
      implements CborSerializable {
    public StaleViolation {
      events = List.copyOf(events);
    }
  }

  /**
   * The oracle's counters and the first violations: {@code judgedAccesses} were issued at an IOVA
   * whose unmap had returned; of those that completed, {@code violations} had their flush done
   * (strict), {@code toleratedStaleHits} were in a deferred flush window (or the oracle is not
   * strict).
   */
  public record Report(
      boolean strict,
      long unmapsReturned,
      long judgedAccesses,
      long violations,
      long toleratedStaleHits,
      List<StaleViolation> recorded)
      implements CborSerializable {
    public Report {
      recorded = List.copyOf(recorded);
    }
  }

  /** {@code flushPending}: unmapped with a deferred flush that has not completed yet. */
  private record StaleRange(
      long start, long end, Event unmapIssued, Event unmapReturned, boolean flushPending) {}

  /**
   * What a burst carried at issue: for each access, the unmap that made its IOVA stale, or null.
   * Kept by the VM until the burst completes.
   */
  public static final class BurstIssue {
    final String device;
    final int pasid;
    final long tag;
    final long[] iovas;
    final int[] access;
    final StaleRange[] staleAtIssue;
    final Event issued;
    final int staleCount;

    private BurstIssue(
        String device, int pasid, long tag, long[] iovas, int[] access, StaleRange[] staleAtIssue,
        Event issued, int staleCount) {
      this.device = device;
      this.pasid = pasid;
      this.tag = tag;
      this.iovas = iovas;
      this.access = access;
      this.staleAtIssue = staleAtIssue;
      this.issued = issued;
      this.staleCount = staleCount;
    }

    /** Indexes of the accesses whose IOVA was unmapped (and the unmap had returned) at issue. */
    public int[] staleIndexes() {
      int[] out = new int[staleCount];
      int n = 0;
      for (int i = 0; i < staleAtIssue.length; i++) {
        if (staleAtIssue[i] != null) {
          out[n++] = i;
        }
      }
      return out;
    }

    public long tag() {
      return tag;
    }
  }

  /** Records an event of the VM's history (a map, an attach, a release...) and returns it. */
  public Event note(long nowNs, String what) {
    return new Event(++seq, nowNs, what);
  }

  /** A map of {@code [iova, iova + length)} was issued in {@code space}: no longer stale. */
  public void mapIssued(long space, long iova, long length) {
    TreeMap<Long, StaleRange> ranges = stale.get(space);
    if (ranges == null || length <= 0) {
      return;
    }
    long end = iova + length;
    Map.Entry<Long, StaleRange> e = ranges.lowerEntry(end);
    while (e != null && e.getValue().end > iova) {
      StaleRange r = e.getValue();
      ranges.remove(r.start);
      if (r.start < iova) {
        ranges.put(r.start, new StaleRange(r.start, iova, r.unmapIssued, r.unmapReturned, r.flushPending));
      }
      if (r.end > end) {
        ranges.put(end, new StaleRange(end, r.end, r.unmapIssued, r.unmapReturned, r.flushPending));
      }
      e = ranges.lowerEntry(r.start);
    }
    if (ranges.isEmpty()) {
      stale.remove(space);
    }
  }

  /**
   * The unmap of {@code [iova, iova + length)} in {@code space}, issued as event {@code issued},
   * has returned at {@code nowNs}: from now on a DMA issued there must not complete.
   */
  public Event unmapReturned(long space, long iova, long length, Event issued, long nowNs) {
    return unmapReturned(space, iova, length, issued, nowNs, false);
  }

  /**
   * As above; with {@code flushPending} the unmap returned before its flush: the range is in its
   * flush window until {@link #flushCompleted} covers it.
   */
  public Event unmapReturned(
      long space, long iova, long length, Event issued, long nowNs, boolean flushPending) {
    Event returned =
        note(nowNs, String.format("unmap [0x%x, +0x%x) returned (issued as #%d)%s", iova, length,
            issued.seq(), flushPending ? ", flush pending" : ""));
    unmapsReturned++;
    if (length > 0) {
      mapIssued(space, iova, length); // a range is stale once: the newest unmap explains it
      stale.computeIfAbsent(space, k -> new TreeMap<>())
          .put(iova, new StaleRange(iova, iova + length, issued, returned, flushPending));
    }
    return returned;
  }

  /**
   * The deferred flush of {@code [iova, iova + length)} in {@code space} completed at {@code
   * nowNs}: from now on a DMA issued there must not complete (as after a strict unmap).
   */
  public void flushCompleted(long space, long iova, long length, long nowNs) {
    TreeMap<Long, StaleRange> ranges = stale.get(space);
    if (ranges == null || length <= 0) {
      return;
    }
    long end = iova + length;
    List<StaleRange> closed = new ArrayList<>();
    Map.Entry<Long, StaleRange> e = ranges.lowerEntry(end);
    while (e != null && e.getValue().end > iova) {
      StaleRange r = e.getValue();
      if (r.flushPending) {
        ranges.remove(r.start);
        if (r.start < iova) {
          ranges.put(r.start, new StaleRange(r.start, iova, r.unmapIssued, r.unmapReturned, true));
        }
        if (r.end > end) {
          ranges.put(end, new StaleRange(end, r.end, r.unmapIssued, r.unmapReturned, true));
        }
        Event flushed = note(nowNs, String.format("flush of [0x%x, +0x%x) completed", iova, length));
        closed.add(new StaleRange(Math.max(r.start, iova), Math.min(r.end, end), r.unmapIssued,
            flushed, false));
      }
      e = ranges.lowerEntry(r.start);
    }
    for (StaleRange r : closed) {
      ranges.put(r.start, r);
    }
  }

  /** Drops every stale range of {@code space} (its IOAS was destroyed with its fd). */
  public void forgetSpace(long space) {
    stale.remove(space);
  }

  /**
   * A burst of DMA in {@code space} (or none, {@code hasSpace} false, when the device is not
   * attached: nothing can complete then) is issued: notes which accesses are stale now.
   */
  public BurstIssue burstIssued(
      boolean hasSpace, long space, String device, int pasid, long tag, long[] iovas,
      int[] lengths, int[] access, long nowNs) {
    TreeMap<Long, StaleRange> ranges = hasSpace ? stale.get(space) : null;
    StaleRange[] at = new StaleRange[iovas.length];
    int n = 0;
    if (ranges != null) {
      for (int i = 0; i < iovas.length; i++) {
        long last = iovas[i] + Math.max(1, lengths[i]) - 1;
        Map.Entry<Long, StaleRange> e = ranges.floorEntry(last);
        if (e != null && e.getValue().end > iovas[i]) {
          at[i] = e.getValue();
          n++;
        }
      }
    }
    Event issued =
        note(
            nowNs,
            String.format(
                "burst #%d of %d accesses issued on %s pasid %d (%d at unmapped IOVAs)",
                tag, iovas.length, device, pasid, n));
    return new BurstIssue(device, pasid, tag, iovas.clone(), access.clone(), at, issued, n);
  }

  /**
   * The burst completed with {@code status} (0 = the access completed). Returns how many accesses
   * were stale violations.
   */
  public int burstCompleted(BurstIssue issue, byte[] status, long nowNs) {
    judgedAccesses += issue.staleCount;
    if (issue.staleCount == 0) {
      return 0;
    }
    int found = 0;
    Event completed = null;
    for (int i = 0; i < issue.staleAtIssue.length && i < status.length; i++) {
      StaleRange r = issue.staleAtIssue[i];
      if (r == null || status[i] != 0) {
        continue;
      }
      if (!strict || r.flushPending) {
        toleratedStaleHits++;
        continue;
      }
      found++;
      violations++;
      if (completed == null) {
        completed = note(nowNs, String.format("burst #%d completed", issue.tag));
      }
      if (recorded.size() < MAX_RECORDED) {
        Event access =
            new Event(
                completed.seq(),
                nowNs,
                String.format(
                    "access %d at iova 0x%x (%s) completed OK after its unmap returned and flushed",
                    i, issue.iovas[i], io.iommulab.hardware.Access.describe(issue.access[i])));
        recorded.add(
            new StaleViolation(
                seed, vmId, issue.device, issue.pasid, issue.iovas[i], issue.access[i], issue.tag,
                List.of(r.unmapIssued, r.unmapReturned, issue.issued, access)));
      }
    }
    return found;
  }

  public long violations() {
    return violations;
  }

  public Report report() {
    return new Report(strict, unmapsReturned, judgedAccesses, violations, toleratedStaleHits, recorded);
  }
}
