package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Software nesting (seed 001, "IOASID uAPI proposal review", 5.3 "IOASID nesting (software)":
 * "it is the kernel instead of user to create the shadow mapping"): a GIOVA space nested on a
 * parent IOAS (the VM's GPA space) where the fd, not the IOMMU, composes the guest's stage 1
 * (GIOVA → GPA, kept here) with the parent's mappings (GPA → host pages, the parent's areas) into
 * one shadow paging domain (GIOVA → HPA) on the device's unit. It needs no hardware nesting.
 *
 * <p>The shadow is built from <em>segments</em>: the intersection of one guest entry with one
 * MAPPED area of the parent, installed as one MapRange at the entry's GIOVA. Because the parent
 * unmaps whole areas and the guest unmaps whole entries, a segment is always removed whole, so no
 * unmap cuts a large page of the shadow. Rules:
 *
 * <ul>
 *   <li>A guest map records the entry and installs the segments of every MAPPED parent area it
 *       meets; the parts whose GPA the parent does not map stay pending (DMA there faults, as a
 *       nested walk would at stage 2). The composed permission is the guest's AND the parent
 *       area's; a segment with none is not installed. EINVAL for no READ/WRITE or other bits, a
 *       zero length, or GIOVA, GPA or length off 4 KiB; EOVERFLOW for a wrapping range; EEXIST for
 *       an overlap of another entry; EINVAL for GIOVA over a reserved region of the IOMMU (the MSI
 *       window: DMA there is an interrupt, as an IOAS refuses a fixed map there). All or nothing.
 *   <li>A guest unmap removes whole entries in the range and their segments: ENOENT for nothing in
 *       range or an entry the range cuts (as IOAS_UNMAP).
 *   <li>A parent MAP "may make pending guest entries valid": the new areas' segments are
 *       installed once the parent's own domains hold them. A parent UNMAP "must remove/invalidate
 *       shadow entries built from it": their segments leave the shadow domain (with its IOTLB
 *       invalidation) in the same round as the parent's domains, before the pages are unpinned.
 *   <li>Locked accounting only on the parent ("locked accounting is only conducted for
 *       gpa_ioasid"): the shadow registers with the parent's page table as a domain owner, so the
 *       parent's areas are pinned (once, shared) while the shadow lives, and the shadow pins and
 *       charges nothing of its own.
 * </ul>
 *
 * <p>Concurrency (the owner serializes): guest maps and unmaps and the shadow's creation and
 * destruction hold the parent's write gate; a parent map or unmap (a reader) touches only the
 * segments of its own areas.
 *
 * <p>Invariants: entries never overlap in GIOVA; every segment lies inside its entry and its area,
 * and its area is MAPPED and in the parent; the shadow domain holds exactly the installed
 * segments.
 */
public final class ShadowNesting {

  /** One guest stage-1 entry: {@code [giova, +length)} → {@code [gpa, +length)}. */
  public static final class Entry {
    final long giova;
    final long gpa;
    final long length;
    final int prot;
    final List<Segment> segments = new ArrayList<>();

    Entry(long giova, long gpa, long length, int prot) {
      this.giova = giova;
      this.gpa = gpa;
      this.length = length;
      this.prot = prot;
    }

    long last() {
      return giova + length - 1;
    }

    public long length() {
      return length;
    }

    public List<Segment> segments() {
      return List.copyOf(segments);
    }
  }

  /** A composed piece: {@code [giova, +length)} of the shadow maps {@code area}'s pages at {@code gpa}. */
  public record Segment(long giova, long length, long gpa, Area area, int prot, Entry entry) {
    /** The host runs behind the segment (the area's pinned pages). */
    public long[][] runs(GuestMemoryLayout layout) {
      long offset = area.pagesOffset + (gpa - area.iova);
      int n = area.pages.runCount(layout, offset, length);
      long[] hpas = new long[n];
      long[] lengths = new long[n];
      area.pages.fillRuns(layout, offset, length, hpas, lengths, 0);
      return new long[][] {hpas, lengths};
    }
  }

  private final Ioas parent;
  private final List<io.iommulab.hardware.iommu.ReservedRegion> reserved;
  private final TreeMap<Long, Entry> entries = new TreeMap<>(Long::compareUnsigned);

  ShadowNesting(Ioas parent, List<io.iommulab.hardware.iommu.ReservedRegion> reserved) {
    this.parent = parent;
    this.reserved = List.copyOf(reserved);
  }

  public Ioas parent() {
    return parent;
  }

  // ---------------------------------------------------------------- guest map / unmap

  /** A guest map, checked and composed; the owner installs {@code segments}, then commits. */
  public record MapPlan(Entry entry, List<Segment> segments) {}

  public Outcome<MapPlan> planMap(long giova, long gpa, long length, int prot) {
    if ((prot & ~(Access.READ | Access.WRITE)) != 0 || (prot & (Access.READ | Access.WRITE)) == 0) {
      return Outcome.err(Errno.EINVAL, "prot 0x%x: READ and/or WRITE only", prot);
    }
    long mask = Uapi.PAGE_SIZE - 1;
    if (length == 0 || ((giova | gpa | length) & mask) != 0) {
      return Outcome.err(
          Errno.EINVAL, "giova 0x%x, gpa 0x%x, length 0x%x: nonzero, 4 KiB aligned", giova, gpa, length);
    }
    if (IoPagetable.lastOf(giova, length) == null || IoPagetable.lastOf(gpa, length) == null) {
      return Outcome.err(Errno.EOVERFLOW, "giova 0x%x or gpa 0x%x + length 0x%x wraps", giova, gpa, length);
    }
    long last = giova + length - 1;
    for (io.iommulab.hardware.iommu.ReservedRegion r : reserved) {
      if (r.type() != io.iommulab.hardware.iommu.ReservedRegion.Type.DIRECT_RELAXABLE
          && Long.compareUnsigned(r.start(), last) <= 0 && Long.compareUnsigned(giova, r.last()) <= 0) {
        return Outcome.err(
            Errno.EINVAL, "giova [0x%x, 0x%x] meets the reserved region [0x%x, 0x%x] (%s)", giova, last,
            r.start(), r.last(), r.type());
      }
    }
    Entry e = new Entry(giova, gpa, length, prot);
    Map.Entry<Long, Entry> below = entries.floorEntry(giova);
    Map.Entry<Long, Entry> above = entries.ceilingEntry(giova);
    for (Map.Entry<Long, Entry> near : java.util.Arrays.asList(below, above)) {
      if (near != null) {
        Entry o = near.getValue();
        if (Long.compareUnsigned(o.giova, e.last()) <= 0 && Long.compareUnsigned(e.giova, o.last()) <= 0) {
          return Outcome.err(
              Errno.EEXIST, "giova [0x%x, 0x%x] overlaps the guest entry [0x%x, 0x%x]", e.giova, e.last(),
              o.giova, o.last());
        }
      }
    }
    return Outcome.ok(new MapPlan(e, compose(e, parent.iopt().areasIn(gpa, gpa + length - 1))));
  }

  /** The segments of {@code e} over the MAPPED ones of {@code areas}, with a permission left. */
  private static List<Segment> compose(Entry e, Collection<Area> areas) {
    List<Segment> out = new ArrayList<>();
    long gpaLast = e.gpa + e.length - 1;
    for (Area a : areas) {
      if (a.state != Area.State.MAPPED) {
        continue;
      }
      long from = Long.compareUnsigned(e.gpa, a.iova) > 0 ? e.gpa : a.iova;
      long to = Long.compareUnsigned(gpaLast, a.last) < 0 ? gpaLast : a.last;
      if (Long.compareUnsigned(from, to) > 0) {
        continue;
      }
      int prot = e.prot & a.prot;
      if (prot == 0) {
        continue;
      }
      out.add(new Segment(e.giova + (from - e.gpa), to - from + 1, from, a, prot, e));
    }
    return out;
  }

  /** Every segment of the plan is in the shadow domain. */
  public void commitMap(MapPlan plan) {
    plan.entry.segments.addAll(plan.segments);
    entries.put(plan.entry.giova, plan.entry);
  }

  /**
   * A guest unmap of {@code [giova, +length)}: the whole entries in it; ENOENT for nothing or a
   * cut entry, EINVAL for length 0, EOVERFLOW for a wrapping range. The owner removes their
   * segments from the shadow domain, then {@link #commitUnmap}.
   */
  public Outcome<List<Entry>> planUnmap(long giova, long length) {
    if (length == 0) {
      return Outcome.err(Errno.EINVAL, "length 0");
    }
    Long last = IoPagetable.lastOf(giova, length);
    if (last == null) {
      return Outcome.err(Errno.EOVERFLOW, "giova 0x%x + length 0x%x wraps", giova, length);
    }
    List<Entry> out = new ArrayList<>();
    Map.Entry<Long, Entry> first = entries.floorEntry(giova);
    Long from = first != null && Long.compareUnsigned(first.getValue().last(), giova) >= 0 ? first.getKey() : giova;
    for (Entry e : entries.tailMap(from, true).values()) {
      if (Long.compareUnsigned(e.giova, last) > 0) {
        break;
      }
      if (Long.compareUnsigned(e.giova, giova) < 0 || Long.compareUnsigned(e.last(), last) > 0) {
        return Outcome.err(
            Errno.ENOENT, "[0x%x, 0x%x] cuts the guest entry [0x%x, 0x%x]: entries are unmapped whole", giova,
            last, e.giova, e.last());
      }
      out.add(e);
    }
    if (out.isEmpty()) {
      return Outcome.err(Errno.ENOENT, "no guest entry in [0x%x, 0x%x]", giova, last);
    }
    return Outcome.ok(out);
  }

  public long commitUnmap(List<Entry> gone) {
    long bytes = 0;
    for (Entry e : gone) {
      entries.remove(e.giova);
      bytes += e.length;
    }
    return bytes;
  }

  // ---------------------------------------------------------------- the parent changes

  /** The parent mapped {@code areas}: the segments they make valid (to install). */
  public List<Segment> segmentsFor(List<Area> areas) {
    List<Segment> out = new ArrayList<>();
    for (Area a : areas) {
      for (Entry e : entriesOverGpa(a.iova, a.last)) {
        out.addAll(compose(e, List.of(a)));
      }
    }
    return out;
  }

  /** The segments installed in the shadow domain. */
  public void installed(List<Segment> segments) {
    for (Segment s : segments) {
      if (entries.get(s.entry.giova) == s.entry) {
        s.entry.segments.add(s);
      }
    }
  }

  /**
   * The parent unmaps {@code areas}: their segments leave the model now and must leave the shadow
   * domain in the same round (the owner sends the unmaps before unpinning).
   */
  public List<Segment> takeSegmentsOf(List<Area> areas) {
    List<Segment> out = new ArrayList<>();
    for (Entry e : entries.values()) {
      e.segments.removeIf(s -> {
        if (areas.contains(s.area)) {
          out.add(s);
          return true;
        }
        return false;
      });
    }
    return out;
  }

  private List<Entry> entriesOverGpa(long gpa, long gpaLast) {
    List<Entry> out = new ArrayList<>();
    for (Entry e : entries.values()) {
      long last = e.gpa + e.length - 1;
      if (Long.compareUnsigned(e.gpa, gpaLast) <= 0 && Long.compareUnsigned(gpa, last) <= 0) {
        out.add(e);
      }
    }
    return out;
  }

  /** Bytes of GIOVA the shadow domain maps now. */
  public long shadowedBytes() {
    long n = 0;
    for (Entry e : entries.values()) {
      for (Segment s : e.segments) {
        n += s.length;
      }
    }
    return n;
  }

  public int entryCount() {
    return entries.size();
  }

  String summary() {
    StringBuilder sb = new StringBuilder(" soft-nested parent=").append(parent.id());
    for (Entry e : entries.values()) {
      sb.append(String.format(" [0x%x+0x%x->0x%x", e.giova, e.length, e.gpa));
      for (Segment s : e.segments) {
        sb.append(String.format(" s0x%x+0x%x", s.giova, s.length));
      }
      sb.append(']');
    }
    return sb.toString();
  }
}
