package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.iommu.ReservedRegion;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * {@code struct io_pagetable}: the IOVA space of one IOAS ({@code
 * drivers/iommu/iommufd/io_pagetable.c}): the areas, the reserved ranges (device reserved
 * regions, domain apertures) and the allowed ranges, the IOVA alignment the domains impose, and
 * the domains that mirror the areas.
 *
 * <p>Vocabulary as {@code pages.c}: {@code last} is inclusive; IOVAs are unsigned 64-bit and every
 * {@code start + length - 1} is checked for overflow.
 *
 * <p>Invariants:
 *
 * <ul>
 *   <li>Areas never overlap each other; an area never intersects a reserved range ({@code
 *       iopt_reserve_iova} refuses a reservation over an area, MAP refuses an area over a
 *       reservation); allowed ranges never intersect reserved ones (either way EADDRINUSE).
 *   <li>{@code iovaAlignment} is 1 without domains, else the largest smallest-page of the
 *       domains, and PAGE_SIZE with large pages disabled; it never exceeds PAGE_SIZE; every area
 *       conforms to it (iova, length and page offset) — raising it over a nonconforming area is
 *       refused with EADDRINUSE.
 *   <li>Each domain owner's aperture complement is reserved by that owner while it is a domain.
 *   <li>Every method returning an {@link Outcome} leaves the table unchanged on error.
 * </ul>
 *
 * <p>Areas live in a {@link TreeMap} keyed by the IOVA with its sign bit flipped (so the natural
 * signed order is the unsigned order): lookups and inserts are O(log n). Reserved ranges are few
 * (two per domain, a handful per device) and sit in a list sorted by start.
 */
public final class IoPagetable {

  /** Injector site of an area allocation ({@code iopt_alloc_area_pages}). */
  public static final String SITE_AREA = "fd.area";
  /** Injector site of a reserved-range allocation ({@code iopt_reserve_iova}). */
  public static final String SITE_RESERVED = "fd.reserved";
  /** Injector site of an allowed-range allocation ({@code iommufd_ioas_load_iovas}). */
  public static final String SITE_ALLOWED = "fd.allowed";

  /** One reserved range and its owner (a device, a domain owner). */
  record Reserved(long start, long last, Object owner, String label) {}

  /** A slice of pages to map: {@code length} bytes of {@code pages} from {@code startByte}. */
  public record Slice(Pages pages, long startByte, long length) {}

  /**
   * What an unmap took: the areas (now UNMAPPING) in IOVA order, their bytes, and the error that
   * stopped it, if any (errno null when every area in range was taken).
   */
  public record UnmapPlan(List<Area> areas, long bytes, Errno errno, String message) {}

  private final FaultInjector injector;
  private final TreeMap<Long, Area> areas = new TreeMap<>();
  private final List<Reserved> reserved = new ArrayList<>();
  private List<IovaRange> allowed = List.of();
  /** Domain owner → pgsize_bitmap, in the order added. */
  private final Map<Object, Long> domains = new LinkedHashMap<>();
  private long iovaAlignment = 1;
  private boolean disableLargePages;

  public IoPagetable(FaultInjector injector) {
    this.injector = injector;
  }

  private static long key(long iova) {
    return iova ^ Long.MIN_VALUE;
  }

  private static boolean le(long a, long b) {
    return Long.compareUnsigned(a, b) <= 0;
  }

  private static boolean lt(long a, long b) {
    return Long.compareUnsigned(a, b) < 0;
  }

  /** {@code start + length - 1}, or null when it wraps past 2^64 (length ≥ 1). */
  static Long lastOf(long start, long length) {
    return Long.compareUnsigned(length - 1, Uapi.ULONG_MAX - start) > 0 ? null : start + length - 1;
  }

  // ---------------------------------------------------------------- queries

  public long iovaAlignment() {
    return iovaAlignment;
  }

  public boolean largePagesDisabled() {
    return disableLargePages;
  }

  public int domainCount() {
    return domains.size();
  }

  public int areaCount() {
    return areas.size();
  }

  /** Areas in IOVA order (a live view; do not modify the table while iterating). */
  public Collection<Area> areas() {
    return areas.values();
  }

  public List<IovaRange> allowed() {
    return allowed;
  }

  /** The first area intersecting {@code [start, last]} (any state), or null. */
  Area firstArea(long start, long last) {
    Map.Entry<Long, Area> floor = areas.floorEntry(key(start));
    if (floor != null && le(start, floor.getValue().last)) {
      return floor.getValue();
    }
    Map.Entry<Long, Area> next = areas.ceilingEntry(key(start));
    if (next != null && le(next.getValue().iova, last)) {
      return next.getValue();
    }
    return null;
  }

  /** Areas intersecting {@code [start, last]} in IOVA order. */
  List<Area> areasIn(long start, long last) {
    List<Area> out = new ArrayList<>();
    Area first = firstArea(start, last);
    if (first == null) {
      return out;
    }
    for (Area a : areas.tailMap(key(first.iova), true).values()) {
      if (lt(last, a.iova)) {
        break;
      }
      out.add(a);
    }
    return out;
  }

  boolean reservedIntersects(long start, long last) {
    for (Reserved r : reserved) {
      if (le(r.start, last) && le(start, r.last)) {
        return true;
      }
    }
    return false;
  }

  private boolean allowedIntersects(long start, long last) {
    for (IovaRange r : allowed) {
      if (le(r.start(), last) && le(start, r.last())) {
        return true;
      }
    }
    return false;
  }

  /**
   * IOMMU_IOAS_IOVA_RANGES: the holes of the reserved ranges over {@code [0, ULONG_MAX]}, in order
   * ({@code ioas.c}; allowed ranges do not count).
   */
  public List<IovaRange> iovaRanges() {
    List<IovaRange> out = new ArrayList<>();
    long pos = 0;
    boolean done = false;
    for (Reserved r : reserved) {
      if (done) {
        break;
      }
      if (lt(pos, r.start)) {
        out.add(new IovaRange(pos, r.start - 1));
      }
      if (le(pos, r.last)) {
        if (r.last == Uapi.ULONG_MAX) {
          done = true;
        } else {
          pos = r.last + 1;
        }
      }
    }
    if (!done) {
      out.add(new IovaRange(pos, Uapi.ULONG_MAX));
    }
    return out;
  }

  // ---------------------------------------------------------------- map

  /**
   * {@code iopt_check_iova}: a fixed IOVA must be aligned (EINVAL), must not wrap (EOVERFLOW),
   * must not meet a reserved range (EINVAL) nor an area (EEXIST: "existing IOVA cannot be
   * replaced").
   */
  Outcome<Long> checkIova(long iova, long length) {
    if ((iova & (iovaAlignment - 1)) != 0) {
      return Outcome.err(
          Errno.EINVAL, "iova 0x%x: not aligned to the IOAS alignment 0x%x", iova, iovaAlignment);
    }
    Long last = lastOf(iova, length);
    if (last == null) {
      return Outcome.err(Errno.EOVERFLOW, "iova 0x%x + length 0x%x wraps", iova, length);
    }
    if (reservedIntersects(iova, last)) {
      return Outcome.err(Errno.EINVAL, "iova [0x%x, 0x%x] meets a reserved range", iova, last);
    }
    Area a = firstArea(iova, last);
    if (a != null) {
      return Outcome.err(
          Errno.EEXIST, "iova [0x%x, 0x%x] overlaps the area [0x%x, 0x%x]", iova, last, a.iova, a.last);
    }
    return Outcome.ok(last);
  }

  /**
   * {@code iopt_alloc_iova}: the lowest IOVA (never 0: the search starts at PAGE_SIZE) inside the
   * allowed ranges (or {@code [PAGE_SIZE, ULONG_MAX - PAGE_SIZE]} without any) that is clear of
   * reserved ranges and areas, aligned to {@code roundup_pow_of_two(length)} capped by the lowest
   * set bit of {@code uptr} (to keep huge-page alignment), and carrying the user VA's sub-page
   * offset. EOVERFLOW for a zero or huge length, EINVAL when that alignment is below the IOAS's,
   * ENOSPC when nothing fits.
   */
  Outcome<Long> allocIova(long uptr, long length) {
    long pageOffset = uptr & (Uapi.PAGE_SIZE - 1);
    if (length == 0 || Long.compareUnsigned(length, Uapi.ULONG_MAX >>> 1) >= 0) {
      return Outcome.err(Errno.EOVERFLOW, "length 0x%x: zero or too large for an automatic IOVA", length);
    }
    long align = Long.highestOneBit(length);
    if (align != length) {
      align <<= 1;
    }
    if (uptr != 0) {
      align = Math.min(align, Long.lowestOneBit(uptr)); // both powers of two below 2^63 here
    }
    if (Long.compareUnsigned(align, iovaAlignment) < 0) {
      return Outcome.err(
          Errno.EINVAL,
          "user_va 0x%x allows alignment 0x%x, below the IOAS alignment 0x%x",
          uptr,
          align,
          iovaAlignment);
    }
    long lo = Uapi.PAGE_SIZE;
    long hi = Uapi.ULONG_MAX - Uapi.PAGE_SIZE;
    if (allowed.isEmpty()) {
      Long found = searchSpan(lo, hi, length, align, pageOffset);
      if (found != null) {
        return Outcome.ok(found);
      }
    } else {
      for (IovaRange r : allowed) {
        long s = lt(r.start(), lo) ? lo : r.start();
        long l = lt(hi, r.last()) ? hi : r.last();
        if (lt(l, s)) {
          continue;
        }
        Long found = searchSpan(s, l, length, align, pageOffset);
        if (found != null) {
          return Outcome.ok(found);
        }
      }
    }
    return Outcome.err(
        Errno.ENOSPC, "no free IOVA range of 0x%x bytes aligned to 0x%x", length, align);
  }

  /** A fitting start in the holes of reserved ∪ areas within {@code [s, l]}, or null. */
  private Long searchSpan(long s, long l, long length, long align, long pageOffset) {
    if (fits(s, l, length, align, pageOffset) == null) {
      return null; // the span itself is too small (__alloc_iova_check_used)
    }
    long pos = s;
    int ri = 0;
    Iterator<Area> ai = areasFrom(s).iterator();
    Area nextArea = ai.hasNext() ? ai.next() : null;
    while (ri < reserved.size() && lt(reserved.get(ri).last, s)) {
      ri++;
    }
    while (true) {
      long usedStart;
      long usedLast;
      Reserved r = ri < reserved.size() ? reserved.get(ri) : null;
      if (r == null && nextArea == null) {
        break;
      }
      if (nextArea == null || (r != null && le(r.start, nextArea.iova))) {
        usedStart = r.start;
        usedLast = r.last;
        ri++;
      } else {
        usedStart = nextArea.iova;
        usedLast = nextArea.last;
        nextArea = ai.hasNext() ? ai.next() : null;
      }
      if (lt(l, usedStart)) {
        break;
      }
      if (lt(pos, usedStart)) {
        Long f = fits(pos, usedStart - 1, length, align, pageOffset);
        if (f != null) {
          return f;
        }
      }
      if (le(pos, usedLast)) {
        if (!lt(usedLast, l)) {
          return null;
        }
        pos = usedLast + 1;
      }
    }
    return fits(pos, l, length, align, pageOffset);
  }

  /** {@code ALIGN(start, align) | pageOffset} when {@code length} bytes fit in {@code [start, last]}. */
  private static Long fits(long start, long last, long length, long align, long pageOffset) {
    if (Long.compareUnsigned(last - start, length - 1) < 0) {
      return null;
    }
    long mask = align - 1;
    if (Long.compareUnsigned(start, Uapi.ULONG_MAX - mask) > 0) {
      return null; // ALIGN would wrap
    }
    long aligned = ((start + mask) & ~mask) | pageOffset;
    if (lt(last, aligned) || Long.compareUnsigned(last - aligned, length - 1) < 0) {
      return null;
    }
    return aligned;
  }

  private Collection<Area> areasFrom(long s) {
    Map.Entry<Long, Area> floor = areas.floorEntry(key(s));
    NavigableMap<Long, Area> tail =
        floor != null && le(s, floor.getValue().last)
            ? areas.tailMap(floor.getKey(), true)
            : areas.tailMap(key(s), true);
    return tail.values();
  }

  /**
   * {@code iopt_alloc_area_pages} + {@code iopt_insert_area}: reserves the IOVA of {@code slices}
   * laid end to end — at {@code iova} when {@code fixed}, else allocated from the first slice's
   * user VA — by inserting MAPPING areas. EINVAL for a zero or unaligned length, EPERM for a
   * writable mapping of read-only pages, EINVAL for a page offset off the alignment, plus the
   * errors of {@link #checkIova} / {@link #allocIova}; ENOMEM from the injector. All or nothing.
   */
  Outcome<List<Area>> insertAreas(List<Slice> slices, long length, long iova, boolean fixed, int prot) {
    for (int i = 0; i < slices.size(); i++) {
      if (injector.shouldFail(SITE_AREA)) {
        return Outcome.err(Errno.ENOMEM, "area allocation failed (injected)");
      }
    }
    if (length == 0 || (length & (iovaAlignment - 1)) != 0) {
      return Outcome.err(
          Errno.EINVAL, "length 0x%x: zero or not aligned to the IOAS alignment 0x%x", length, iovaAlignment);
    }
    long start;
    if (fixed) {
      Outcome<Long> c = checkIova(iova, length);
      if (!c.isOk()) {
        return ((Outcome.Err<Long>) c).cast();
      }
      start = iova;
    } else {
      Slice first = slices.get(0);
      Outcome<Long> a = allocIova(first.pages().uptr() + first.startByte(), length);
      if (!a.isOk()) {
        return ((Outcome.Err<Long>) a).cast();
      }
      start = a.value();
    }
    List<Area> made = new ArrayList<>(slices.size());
    long at = start;
    for (Slice sl : slices) {
      if ((prot & Access.WRITE) != 0 && !sl.pages().writable()) {
        removeInserted(made);
        return Outcome.err(Errno.EPERM, "WRITEABLE mapping of pages mapped read-only");
      }
      Area area = new Area(at, at + sl.length() - 1, sl.pages(), sl.startByte(), prot);
      if ((area.pageOffset() & (iovaAlignment - 1)) != 0) {
        removeInserted(made);
        return Outcome.err(
            Errno.EINVAL,
            "user VA page offset 0x%x not aligned to the IOAS alignment 0x%x",
            area.pageOffset(),
            iovaAlignment);
      }
      areas.put(key(at), area);
      made.add(area);
      at += sl.length();
    }
    for (Area a : made) {
      a.pages.areaRefs++;
    }
    return Outcome.ok(made);
  }

  private void removeInserted(List<Area> made) {
    for (Area a : made) {
      areas.remove(key(a.iova));
    }
  }

  /** Publishes a filled area ({@code area->pages = pages}). */
  void publish(Area a) {
    if (a.state != Area.State.MAPPING) {
      throw new IllegalStateException("publish of " + a);
    }
    a.state = Area.State.MAPPED;
  }

  /** Removes an area (aborted map, finished unmap); the pages lose one area reference. */
  void remove(Area a) {
    Area was = areas.remove(key(a.iova));
    if (was != a) {
      throw new IllegalStateException("area " + a + " not in the table");
    }
    if (a.holdsPin) {
      throw new IllegalStateException("area " + a + " removed while holding a pin");
    }
    a.pages.areaRefs--;
  }

  // ---------------------------------------------------------------- unmap and copy

  /**
   * {@code iopt_unmap_iova_range}: takes, in IOVA order, every whole area in {@code [start, last]}
   * (marking it UNMAPPING) until an area it may not take: one still being mapped (EBUSY,
   * "userspace should not race map/unmap's of the same area") or one the range cuts (ENOENT: no
   * splitting). Areas taken before that stay taken, as in the kernel. Nothing in range is ENOENT.
   */
  UnmapPlan planUnmap(long start, long last) {
    List<Area> taken = new ArrayList<>();
    long bytes = 0;
    Errno errno = null;
    String message = null;
    for (Area a : areasIn(start, last)) {
      if (a.state == Area.State.UNMAPPING) {
        continue;
      }
      if (a.state == Area.State.MAPPING) {
        errno = Errno.EBUSY;
        message = String.format("area [0x%x, 0x%x] is still being mapped", a.iova, a.last);
        break;
      }
      if (lt(a.iova, start) || lt(last, a.last)) {
        errno = Errno.ENOENT;
        message =
            String.format(
                "range [0x%x, 0x%x] cuts the area [0x%x, 0x%x]: areas are unmapped whole",
                start, last, a.iova, a.last);
        break;
      }
      a.state = Area.State.UNMAPPING;
      taken.add(a);
      bytes += a.length();
    }
    if (taken.isEmpty() && errno == null) {
      errno = Errno.ENOENT;
      message = String.format("nothing is mapped in [0x%x, 0x%x]", start, last);
    }
    return new UnmapPlan(taken, bytes, errno, message);
  }

  /**
   * {@code iopt_get_pages}: the slices of fully populated, contiguous areas covering {@code [iova,
   * +length)} (a sub-range of a map is fine). EINVAL for length 0, EOVERFLOW when it wraps, ENOENT
   * when a gap, an area being mapped or unmapped breaks the cover.
   */
  Outcome<List<Slice>> getPages(long iova, long length) {
    if (length == 0) {
      return Outcome.err(Errno.EINVAL, "length 0");
    }
    Long last = lastOf(iova, length);
    if (last == null) {
      return Outcome.err(Errno.EOVERFLOW, "src_iova 0x%x + length 0x%x wraps", iova, length);
    }
    List<Slice> out = new ArrayList<>();
    long cur = iova;
    Area a = firstArea(iova, iova);
    while (true) {
      if (a == null || a.state != Area.State.MAPPED || lt(cur, a.iova)) {
        return Outcome.err(
            Errno.ENOENT, "[0x%x, 0x%x] is not covered by contiguous mapped areas at 0x%x", iova, last, cur);
      }
      long sliceLast = lt(last, a.last) ? last : a.last;
      out.add(new Slice(a.pages, a.pagesOffset + (cur - a.iova), sliceLast - cur + 1));
      if (sliceLast == last) {
        return Outcome.ok(out);
      }
      cur = sliceLast + 1;
      Map.Entry<Long, Area> next = areas.ceilingEntry(key(cur));
      a = next == null ? null : next.getValue();
    }
  }

  // ---------------------------------------------------------------- reserved and allowed

  /**
   * {@code iopt_reserve_iova}: reserves {@code [start, last]} for {@code owner}. EADDRINUSE when
   * an area or an allowed range meets it; ENOMEM from the injector.
   */
  Outcome<Void> reserve(long start, long last, Object owner, String label) {
    Outcome<Reserved> r = reserveRange(start, last, owner, label);
    return r.isOk() ? Outcome.OK : ((Outcome.Err<Reserved>) r).cast();
  }

  private Outcome<Reserved> reserveRange(long start, long last, Object owner, String label) {
    Area a = firstArea(start, last);
    if (a != null) {
      return Outcome.err(
          Errno.EADDRINUSE,
          "reserved range [0x%x, 0x%x] of %s meets the mapped area [0x%x, 0x%x]",
          start, last, label, a.iova, a.last);
    }
    if (allowedIntersects(start, last)) {
      return Outcome.err(
          Errno.EADDRINUSE, "reserved range [0x%x, 0x%x] of %s meets an allowed range", start, last, label);
    }
    if (injector.shouldFail(SITE_RESERVED)) {
      return Outcome.err(Errno.ENOMEM, "reserved range allocation failed (injected)");
    }
    int i = 0;
    while (i < reserved.size() && le(reserved.get(i).start, start)) {
      i++;
    }
    Reserved r = new Reserved(start, last, owner, label);
    reserved.add(i, r);
    return Outcome.ok(r);
  }

  /** {@code iopt_remove_reserved_iova}: drops every range {@code owner} reserved. */
  int removeReserved(Object owner) {
    int before = reserved.size();
    reserved.removeIf(r -> r.owner == owner);
    return before - reserved.size();
  }

  /**
   * {@code iopt_table_enforce_dev_resv_regions}: reserves each region but DIRECT_RELAXABLE for
   * {@code owner}; all or nothing (EADDRINUSE on the first conflict).
   */
  Outcome<Void> enforceRegions(List<ReservedRegion> regions, Object owner, String label) {
    List<Reserved> added = new ArrayList<>(regions.size());
    for (ReservedRegion region : regions) {
      if (region.type() == ReservedRegion.Type.DIRECT_RELAXABLE) {
        continue;
      }
      Outcome<Reserved> o = reserveRange(region.start(), region.last(), owner, label);
      if (!o.isOk()) {
        for (Reserved r : added) {
          reserved.remove(r);
        }
        return ((Outcome.Err<Reserved>) o).cast();
      }
      added.add(o.value());
    }
    return Outcome.OK;
  }

  /**
   * IOMMU_IOAS_ALLOW_IOVAS: replaces the allowed list atomically. EINVAL for {@code start >=
   * last} or overlapping ranges; EADDRINUSE when a range meets a reserved one; ENOMEM from the
   * injector. Unchanged on error.
   */
  Outcome<Void> setAllowed(List<IovaRange> ranges) {
    List<IovaRange> sorted = new ArrayList<>(ranges.size());
    for (IovaRange r : ranges) {
      if (!lt(r.start(), r.last())) {
        return Outcome.err(Errno.EINVAL, "allowed range %s: start must be below last", r);
      }
      for (IovaRange o : sorted) {
        if (le(o.start(), r.last()) && le(r.start(), o.last())) {
          return Outcome.err(Errno.EINVAL, "allowed ranges %s and %s overlap", o, r);
        }
      }
      if (injector.shouldFail(SITE_ALLOWED)) {
        return Outcome.err(Errno.ENOMEM, "allowed range allocation failed (injected)");
      }
      sorted.add(r);
    }
    sorted.sort((x, y) -> Long.compareUnsigned(x.start(), y.start()));
    for (IovaRange r : sorted) {
      if (reservedIntersects(r.start(), r.last())) {
        return Outcome.err(Errno.EADDRINUSE, "allowed range %s meets a reserved range", r);
      }
    }
    allowed = List.copyOf(sorted);
    return Outcome.OK;
  }

  // ---------------------------------------------------------------- alignment and domains

  /** {@code iopt_check_iova_alignment}: every area conforms to {@code align}, else EADDRINUSE. */
  private Outcome<Void> checkAlignment(long align) {
    long mask = align - 1;
    for (Area a : areas.values()) {
      if ((a.iova & mask) != 0 || (a.length() & mask) != 0 || (a.pageOffset() & mask) != 0) {
        return Outcome.err(
            Errno.EADDRINUSE, "the area [0x%x, 0x%x] does not conform to the alignment 0x%x", a.iova, a.last, align);
      }
    }
    return Outcome.OK;
  }

  private long computeAlignment() {
    long align = disableLargePages ? Uapi.PAGE_SIZE : 1;
    for (long bitmap : domains.values()) {
      align = Math.max(align, Long.lowestOneBit(bitmap));
    }
    return align;
  }

  /**
   * {@code iopt_table_add_domain} minus the fill: the domain's smallest page raises the alignment
   * (EINVAL above PAGE_SIZE, EADDRINUSE over a nonconforming area) and the complement of its
   * aperture {@code [apertureStart, apertureLast]} is reserved (EADDRINUSE over an area). All or
   * nothing.
   */
  Outcome<Void> addDomain(Object owner, long pgsizeBitmap, long apertureStart, long apertureLast, String label) {
    if (domains.containsKey(owner)) {
      throw new IllegalStateException("domain " + label + " added twice");
    }
    long align = Math.max(Long.lowestOneBit(pgsizeBitmap), iovaAlignment);
    if (align > Uapi.PAGE_SIZE) {
      return Outcome.err(
          Errno.EINVAL, "%s: smallest page 0x%x exceeds PAGE_SIZE", label, Long.lowestOneBit(pgsizeBitmap));
    }
    if (align != iovaAlignment) {
      Outcome<Void> c = checkAlignment(align);
      if (!c.isOk()) {
        return c;
      }
    }
    if (apertureStart != 0) {
      Outcome<Void> r = reserve(0, apertureStart - 1, owner, label + " aperture");
      if (!r.isOk()) {
        return r;
      }
    }
    if (apertureLast != Uapi.ULONG_MAX) {
      Outcome<Void> r = reserve(apertureLast + 1, Uapi.ULONG_MAX, owner, label + " aperture");
      if (!r.isOk()) {
        removeReserved(owner);
        return r;
      }
    }
    domains.put(owner, pgsizeBitmap);
    iovaAlignment = align;
    return Outcome.OK;
  }

  /** {@code iopt_table_remove_domain} minus the unfill: drops its reservations, recomputes alignment. */
  void removeDomain(Object owner) {
    if (domains.remove(owner) == null) {
      throw new IllegalStateException("domain not in this IOAS");
    }
    removeReserved(owner);
    iovaAlignment = computeAlignment(); // never higher than before: cannot fail
  }

  /**
   * IOMMU_OPTION_HUGE_PAGES: disabling is EINVAL while domains and areas both exist, and
   * EADDRINUSE when an area does not conform to PAGE_SIZE; enabling lowers the alignment again.
   */
  Outcome<Void> setLargePages(boolean enable) {
    if (enable) {
      disableLargePages = false;
      iovaAlignment = computeAlignment();
      return Outcome.OK;
    }
    if (disableLargePages) {
      return Outcome.OK;
    }
    if (!domains.isEmpty() && !areas.isEmpty()) {
      return Outcome.err(Errno.EINVAL, "large pages cannot be disabled while domains hold mappings");
    }
    disableLargePages = true;
    long align = computeAlignment();
    if (align > iovaAlignment) {
      Outcome<Void> c = checkAlignment(align);
      if (!c.isOk()) {
        disableLargePages = false;
        return c;
      }
    }
    iovaAlignment = align;
    return Outcome.OK;
  }

  // ---------------------------------------------------------------- snapshot

  List<FdSnapshot.AreaSnapshot> areaSnapshots() {
    List<FdSnapshot.AreaSnapshot> out = new ArrayList<>(areas.size());
    for (Area a : areas.values()) {
      out.add(
          new FdSnapshot.AreaSnapshot(
              a.iova, a.last, a.pages.id(), a.pagesOffset, a.prot,
              a.pendingFlushes > 0 ? "AWAITING_FLUSH" : a.unmapFailed ? "UNMAP_FAILED"
                  : a.state.name()));
    }
    return out;
  }

  List<FdSnapshot.ReservedSnapshot> reservedSnapshots() {
    List<FdSnapshot.ReservedSnapshot> out = new ArrayList<>(reserved.size());
    for (Reserved r : reserved) {
      out.add(new FdSnapshot.ReservedSnapshot(r.start, r.last, r.label));
    }
    return out;
  }
}
