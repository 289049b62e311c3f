package io.iommulab.actors.fd.model;

import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code struct iommufd_ctx}: the whole state of one open {@code /dev/iommu} and the synchronous
 * half of every operation on it ({@code drivers/iommu/iommufd/main.c}, {@code ioas.c}, {@code
 * io_pagetable.c}, {@code hw_pagetable.c}, {@code device.c}, {@code viommu.c}).
 *
 * <p>Every operation that needs the IOMMU units follows iommufd's alloc → effects → finalize /
 * abort: a {@code begin…} method validates and reserves (IDs, IOVA with MAPPING areas, pins and
 * charges, user references) and returns an operation record telling the owner which domains to
 * touch; the owner applies the effects on the units and then calls the matching {@code finish…}
 * or {@code abort…}, which undoes exactly what {@code begin…} did. A {@code begin…} that returns
 * an error has changed nothing. A concurrent operation sees the reservations: an unmap meeting a
 * MAPPING area is EBUSY, a DESTROY of an object a pending operation references is EBUSY (it holds
 * a user; a map, copy or unmap holds a short-term user on its IOAS, as the kernel's
 * {@code shortterm_users} during an ioctl), a second attach of the same (device, PASID) while one
 * is in flight is EBUSY.
 *
 * <p>Domain changes of an IOAS (adding or removing a HWPT_PAGING) and maps/unmaps of it must not
 * overlap (the kernel's {@code domains_rwsem}): the owner serializes them (a read/write gate per
 * IOAS); the model assumes it.
 *
 * <p>Invariants (checked by {@link #checkInvariants()}): pins and charges balance (the accounting
 * counters equal the sum over pinned pages objects; every pages object with a pin reference is
 * pinned once); every area holds a pin exactly when its IOAS has a domain; users counts match the
 * references; after close everything is zero.
 *
 * <p>Single-threaded: the fd actor is its lock.
 */
public final class IommufdCtx {

  /** Injector site of an igroup allocation ({@code iommufd_get_group}). */
  public static final String SITE_IGROUP = "fd.igroup";

  private final int ictxId;
  private final int vmId;
  private final GuestMemoryLayout layout;
  private final UapiSettings settings;
  private final boolean capIpcLock;
  private final boolean capSysResource;
  private final FaultInjector injector;
  private final PinListener pins;
  private final ObjectTable objects;
  private final Accounting accounting;
  private final Map<Long, Igroup> igroups = new HashMap<>();
  private final Map<Long, Device> devicesByRid = new HashMap<>();
  private Accounting.Mode accountMode;
  private int nextPagesId = 1;
  private int livePages;
  /** The modes of the seed threads on this fd: VFIO type1 container, PAMU container, SVA. */
  private final VfioType1 vfio;
  private final PamuIommu pamu;
  private final SvaPasids sva;

  // Deferred unmaps (see Area): areas awaiting flushes, by flush, and flushes reported before the
  // unmap's answer was (a unit's FlushCompleted may overtake its Unmapped reply).
  private final Map<FlushKey, List<Area>> areasByFlush = new HashMap<>();
  private final Map<Area, Ioas> lingering = new java.util.LinkedHashMap<>();
  private final java.util.Set<FlushKey> flushedEarly = new java.util.HashSet<>();
  private final java.util.Set<Integer> goneUnits = new java.util.HashSet<>();
  private long deferredUnmaps;
  private long flushesCompleted;
  private long unmapRefusals;

  public IommufdCtx(
      int ictxId,
      int vmId,
      GuestMemoryLayout layout,
      UapiSettings settings,
      boolean capIpcLock,
      boolean capSysResource,
      FaultInjector injector,
      PinListener pins) {
    this.ictxId = ictxId;
    this.vmId = vmId;
    this.layout = layout;
    this.settings = settings;
    this.capIpcLock = capIpcLock;
    this.capSysResource = capSysResource;
    this.injector = injector;
    this.pins = pins;
    this.objects = new ObjectTable(injector);
    this.accounting = new Accounting(settings.memlockLimit());
    this.accountMode = Accounting.Mode.of(settings.defaultAccountMode());
    this.vfio = new VfioType1(settings.vfioDmaEntryLimit());
    this.pamu = new PamuIommu(layout, accounting, injector, pins);
    this.sva = new SvaPasids(settings.pasidsPerVm(), injector);
  }

  /** The legacy VFIO container (type1 over the compat IOAS). */
  public VfioType1 vfio() {
    return vfio;
  }

  /** The PAMU container (VFIO_FSL_PAMU_IOMMU). */
  public PamuIommu pamu() {
    return pamu;
  }

  /** The VM's PASIDs and bound guest page tables. */
  public SvaPasids sva() {
    return sva;
  }

  public GuestMemoryLayout layout() {
    return layout;
  }

  public int ictxId() {
    return ictxId;
  }

  public int vmId() {
    return vmId;
  }

  public ObjectTable objects() {
    return objects;
  }

  public Accounting accounting() {
    return accounting;
  }

  public UapiSettings settings() {
    return settings;
  }

  private static long ridKey(int unitId, int rid) {
    return ((long) unitId << 32) | (rid & 0xffffffffL);
  }

  private static <T> Outcome<T> enoent(String what, int id) {
    return Outcome.err(Errno.ENOENT, "%s %d: no such object", what, id);
  }

  // ================================================================ IOAS_ALLOC, DESTROY basics

  /** IOMMU_IOAS_ALLOC. */
  public Outcome<Integer> ioasAlloc(int flags) {
    Outcome<SnoopControl.Policy> snoop = SnoopControl.ioasPolicy(flags); // 0 in the merged uAPI
    if (!snoop.isOk()) {
      return ((Outcome.Err<SnoopControl.Policy>) snoop).cast();
    }
    Ioas ioas = new Ioas(injector);
    ioas.snoop = snoop.value();
    Outcome<Integer> id = objects.reserve(ioas);
    if (id.isOk()) {
      objects.finalizeObject(ioas);
    }
    return id;
  }

  public Ioas ioas(int id) {
    return objects.get(id, Ioas.class);
  }

  // ================================================================ IOVA ranges and options

  /** The out fields of IOMMU_IOAS_IOVA_RANGES; {@code tooSmall}: EMSGSIZE. */
  public record IovaRanges(boolean tooSmall, int numIovas, long alignment, List<IovaRange> ranges) {}

  /** IOMMU_IOAS_IOVA_RANGES with room for {@code numIovas}. */
  public Outcome<IovaRanges> iovaRanges(int ioasId, int numIovas) {
    Ioas ioas = ioas(ioasId);
    if (ioas == null) {
      return enoent("IOAS", ioasId);
    }
    List<IovaRange> all = ioas.iopt().iovaRanges();
    int room = Math.max(numIovas, 0);
    boolean tooSmall = all.size() > room;
    List<IovaRange> out = tooSmall ? List.copyOf(all.subList(0, room)) : List.copyOf(all);
    return Outcome.ok(new IovaRanges(tooSmall, all.size(), ioas.iopt().iovaAlignment(), out));
  }

  /** IOMMU_IOAS_ALLOW_IOVAS. */
  public Outcome<Void> allowIovas(int ioasId, List<IovaRange> ranges) {
    Ioas ioas = ioas(ioasId);
    if (ioas == null) {
      return enoent("IOAS", ioasId);
    }
    return ioas.iopt().setAllowed(ranges);
  }

  /** IOMMU_OPTION: returns val64. */
  public Outcome<Long> option(int optionId, int op, int objectId, long val64) {
    switch (optionId) {
      case Uapi.OPTION_RLIMIT_MODE:
        if (objectId != 0) {
          return Outcome.err(Errno.EOPNOTSUPP, "RLIMIT_MODE is global: object_id must be 0");
        }
        if (op == Uapi.OPTION_OP_GET) {
          return Outcome.ok(accountMode == Accounting.Mode.MM ? 1L : 0L);
        }
        if (op == Uapi.OPTION_OP_SET) {
          if (!capSysResource) {
            return Outcome.err(Errno.EPERM, "RLIMIT_MODE SET needs CAP_SYS_RESOURCE");
          }
          if (!objects.isEmpty()) {
            return Outcome.err(Errno.EBUSY, "RLIMIT_MODE SET needs an fd without objects");
          }
          if (val64 == 0) {
            accountMode = Accounting.Mode.USER;
          } else if (val64 == 1) {
            accountMode = Accounting.Mode.MM;
          } else {
            return Outcome.err(Errno.EINVAL, "RLIMIT_MODE value %d: must be 0 (user) or 1 (mm)", val64);
          }
          return Outcome.ok(val64);
        }
        return Outcome.err(Errno.EOPNOTSUPP, "op %d: must be SET (0) or GET (1)", op);
      case Uapi.OPTION_HUGE_PAGES:
        Ioas ioas = ioas(objectId);
        if (ioas == null) {
          return enoent("IOAS", objectId);
        }
        if (op == Uapi.OPTION_OP_GET) {
          return Outcome.ok(ioas.iopt().largePagesDisabled() ? 0L : 1L);
        }
        if (op == Uapi.OPTION_OP_SET) {
          if (val64 != 0 && val64 != 1) {
            return Outcome.err(Errno.EINVAL, "HUGE_PAGES value %d: must be 0 or 1", val64);
          }
          return ioas.iopt().setLargePages(val64 == 1).map(v -> val64);
        }
        return Outcome.err(Errno.EOPNOTSUPP, "op %d: must be SET (0) or GET (1)", op);
      default:
        return Outcome.err(Errno.EOPNOTSUPP, "option %d: unknown", optionId);
    }
  }

  public Accounting.Mode accountMode() {
    return accountMode;
  }

  // ================================================================ MAP and COPY

  /** A map or copy in flight: MAPPING areas to fill into {@code targets}' domains. */
  public static final class MapOp {
    final Ioas ioas;
    final List<Area> areas;
    final List<HwPagetable> targets;
    final long iova;
    final int prot;
    /** Pages created by this MAP (dropped on abort); null for COPY. */
    final Pages created;

    MapOp(Ioas ioas, List<Area> areas, List<HwPagetable> targets, long iova, int prot, Pages created) {
      this.ioas = ioas;
      this.areas = areas;
      this.targets = targets;
      this.iova = iova;
      this.prot = prot;
      this.created = created;
    }

    public Ioas ioas() {
      return ioas;
    }

    public List<Area> areas() {
      return areas;
    }

    /** HWPT_PAGING objects whose domains must receive every area. */
    public List<HwPagetable> targets() {
      return targets;
    }

    public long iova() {
      return iova;
    }

    public int prot() {
      return prot;
    }
  }

  private static int protOf(int flags) {
    int prot = 0;
    if ((flags & Uapi.IOAS_MAP_READABLE) != 0) {
      prot |= Access.READ;
    }
    if ((flags & Uapi.IOAS_MAP_WRITEABLE) != 0) {
      prot |= Access.WRITE;
    }
    return prot;
  }

  private static final int MAP_FLAGS =
      Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE;

  /**
   * IOMMU_IOAS_MAP, first phase ({@code iommufd_ioas_map}, {@code iopt_map_user_pages}): flags
   * (EOPNOTSUPP, EINVAL without READABLE/WRITEABLE), EOVERFLOW for iova or length ≥ ULONG_MAX, the
   * IOAS (ENOENT), the pages (EINVAL, EOVERFLOW, ENOMEM), the IOVA (see {@link IoPagetable}), then
   * — when the IOAS has domains — the pin (EFAULT, ENOMEM). On success the area is MAPPING.
   */
  public Outcome<MapOp> beginMap(int flags, int ioasId, long userVa, long length, long iova) {
    return beginMap(flags, ioasId, userVa, length, iova, null);
  }

  /**
   * As above, charging in {@code forcedMode} when not null (VFIO_IOMMU_MAP_DMA: "Maps created
   * through the legacy interface always use VFIO compatible rlimit accounting"), unless the
   * opener holds CAP_IPC_LOCK.
   */
  public Outcome<MapOp> beginMap(
      int flags, int ioasId, long userVa, long length, long iova, Accounting.Mode forcedMode) {
    if ((flags & ~MAP_FLAGS) != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown bits", flags);
    }
    if (iova == Uapi.ULONG_MAX || length == Uapi.ULONG_MAX) {
      return Outcome.err(Errno.EOVERFLOW, "iova 0x%x or length 0x%x is ULONG_MAX", iova, length);
    }
    if ((flags & (Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE)) == 0) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: neither READABLE nor WRITEABLE", flags);
    }
    Ioas ioas = ioas(ioasId);
    if (ioas == null) {
      return enoent("IOAS", ioasId);
    }
    int prot = protOf(flags);
    Accounting.Mode mode =
        capIpcLock ? Accounting.Mode.NONE : forcedMode != null ? forcedMode : accountMode;
    Outcome<Pages> pages =
        Pages.alloc(nextPagesId, userVa, length, (prot & Access.WRITE) != 0, mode, injector);
    if (!pages.isOk()) {
      return ((Outcome.Err<Pages>) pages).cast();
    }
    Pages p = pages.value();
    Outcome<List<Area>> areas =
        ioas.iopt()
            .insertAreas(
                List.of(new IoPagetable.Slice(p, userVa - p.uptr(), length)),
                length,
                iova,
                (flags & Uapi.IOAS_MAP_FIXED_IOVA) != 0,
                prot);
    if (!areas.isOk()) {
      return ((Outcome.Err<List<Area>>) areas).cast();
    }
    Outcome<Void> pinned = pinAreas(ioas, areas.value());
    if (!pinned.isOk()) {
      for (Area a : areas.value()) {
        ioas.iopt().remove(a);
      }
      return pinned.map(v -> null);
    }
    nextPagesId++;
    livePages++;
    ioas.addUser(); // short-term: DESTROY of the IOAS is EBUSY while the map is in flight
    return Outcome.ok(
        new MapOp(ioas, areas.value(), domainsOf(ioas), areas.value().get(0).iova, prot, p));
  }

  /**
   * IOMMU_IOAS_COPY, first phase ({@code iommufd_ioas_copy}): EOVERFLOW, EOPNOTSUPP, the source
   * IOAS and its contiguous populated cover (ENOENT), the destination IOAS (ENOENT), then as MAP
   * — sharing the source's pages, pinned once.
   */
  public Outcome<MapOp> beginCopy(
      int flags, int dstIoasId, int srcIoasId, long length, long dstIova, long srcIova) {
    if (length == Uapi.ULONG_MAX || srcIova == Uapi.ULONG_MAX || dstIova == Uapi.ULONG_MAX) {
      return Outcome.err(Errno.EOVERFLOW, "length, src_iova or dst_iova is ULONG_MAX");
    }
    if ((flags & ~MAP_FLAGS) != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown bits", flags);
    }
    Ioas src = ioas(srcIoasId);
    if (src == null) {
      return enoent("source IOAS", srcIoasId);
    }
    Outcome<List<IoPagetable.Slice>> slices = src.iopt().getPages(srcIova, length);
    if (!slices.isOk()) {
      return ((Outcome.Err<List<IoPagetable.Slice>>) slices).cast();
    }
    Ioas dst = ioas(dstIoasId);
    if (dst == null) {
      return enoent("destination IOAS", dstIoasId);
    }
    int prot = protOf(flags);
    Outcome<List<Area>> areas =
        dst.iopt()
            .insertAreas(
                slices.value(), length, dstIova, (flags & Uapi.IOAS_MAP_FIXED_IOVA) != 0, prot);
    if (!areas.isOk()) {
      return ((Outcome.Err<List<Area>>) areas).cast();
    }
    Outcome<Void> pinned = pinAreas(dst, areas.value());
    if (!pinned.isOk()) {
      for (Area a : areas.value()) {
        dst.iopt().remove(a);
      }
      return pinned.map(v -> null);
    }
    dst.addUser(); // short-term, as for MAP
    return Outcome.ok(
        new MapOp(dst, areas.value(), domainsOf(dst), areas.value().get(0).iova, prot, null));
  }

  /** When {@code ioas} has domains, every area takes a pin reference; all or nothing. */
  private Outcome<Void> pinAreas(Ioas ioas, List<Area> areas) {
    if (ioas.iopt().domainCount() == 0) {
      return Outcome.OK;
    }
    for (int i = 0; i < areas.size(); i++) {
      Area a = areas.get(i);
      Outcome<Void> o = a.pages.pinRef(layout, accounting, injector, pins);
      if (!o.isOk()) {
        for (int j = 0; j < i; j++) {
          areas.get(j).pages.unpinRef(accounting, pins);
          areas.get(j).holdsPin = false;
        }
        return o;
      }
      a.holdsPin = true;
    }
    return Outcome.OK;
  }

  private void unpinArea(Area a) {
    if (a.holdsPin) {
      a.holdsPin = false;
      a.pages.unpinRef(accounting, pins);
    }
  }

  private static List<HwPagetable> domainsOf(Ioas ioas) {
    List<HwPagetable> out = new ArrayList<>(ioas.hwpts.size());
    for (HwPagetable h : ioas.hwpts) {
      if (h.inIoas) {
        out.add(h);
      }
    }
    return out;
  }

  /** Every domain took the areas: they are published ({@code area->pages = pages}). */
  public void finishMap(MapOp op) {
    for (Area a : op.areas) {
      op.ioas.iopt().publish(a);
    }
    op.ioas.removeUser();
  }

  /** A domain refused (the others were already unmapped by the owner): undo {@link #beginMap}. */
  public void abortMap(MapOp op) {
    for (Area a : op.areas) {
      unpinArea(a);
      op.ioas.iopt().remove(a);
    }
    if (op.created != null) {
      dropPagesIfUnused(op.created);
    }
    op.ioas.removeUser();
  }

  private void dropPagesIfUnused(Pages p) {
    if (p.areaRefs == 0) {
      if (p.pinRefs != 0) {
        throw new IllegalStateException("dropping pinned " + p);
      }
      livePages--;
    }
  }

  /** The physically contiguous runs backing {@code area}, for MapRange. */
  public long[][] runsOf(Area area) {
    int n = area.pages.runCount(layout, area.pagesOffset, area.length());
    long[] hpas = new long[n];
    long[] lengths = new long[n];
    area.pages.fillRuns(layout, area.pagesOffset, area.length(), hpas, lengths, 0);
    return new long[][] {hpas, lengths};
  }

  // ================================================================ UNMAP

  /** An unmap in flight: UNMAPPING areas to remove from {@code targets}' domains. */
  public static final class UnmapOp {
    final Ioas ioas;
    final IoPagetable.UnmapPlan plan;
    final List<HwPagetable> targets;
    final boolean all;

    UnmapOp(Ioas ioas, IoPagetable.UnmapPlan plan, List<HwPagetable> targets, boolean all) {
      this.ioas = ioas;
      this.plan = plan;
      this.targets = targets;
      this.all = all;
    }

    public List<Area> areas() {
      return plan.areas();
    }

    public List<HwPagetable> targets() {
      return targets;
    }

    public long bytes() {
      return plan.bytes();
    }

    /** The errno the unmap ends with (after removing {@link #areas()}), or null. */
    public Errno errno() {
      return all && plan.errno() == Errno.ENOENT && plan.areas().isEmpty() ? null : plan.errno();
    }

    public String message() {
      return plan.message();
    }
  }

  /**
   * IOMMU_IOAS_UNMAP, first phase: ENOENT for the IOAS; unmap-all is {@code iova == 0 && length ==
   * U64_MAX}; otherwise EINVAL for length 0, EOVERFLOW for iova or length ≥ ULONG_MAX or a
   * wrapping range. An error with no area taken is returned as Err; otherwise the op carries the
   * areas taken and the error the kernel would end with.
   */
  public Outcome<UnmapOp> beginUnmap(int ioasId, long iova, long length) {
    Ioas ioas = ioas(ioasId);
    if (ioas == null) {
      return enoent("IOAS", ioasId);
    }
    boolean all = iova == 0 && length == Uapi.ULONG_MAX;
    long last;
    if (all) {
      last = Uapi.ULONG_MAX;
    } else {
      if (iova == Uapi.ULONG_MAX || length == Uapi.ULONG_MAX) {
        return Outcome.err(Errno.EOVERFLOW, "iova 0x%x or length 0x%x is ULONG_MAX", iova, length);
      }
      if (length == 0) {
        return Outcome.err(Errno.EINVAL, "length 0");
      }
      Long l = IoPagetable.lastOf(iova, length);
      if (l == null) {
        return Outcome.err(Errno.EOVERFLOW, "iova 0x%x + length 0x%x wraps", iova, length);
      }
      last = l;
    }
    IoPagetable.UnmapPlan plan = ioas.iopt().planUnmap(iova, last);
    UnmapOp op = new UnmapOp(ioas, plan, domainsOf(ioas), all);
    if (plan.areas().isEmpty() && op.errno() != null) {
      return Outcome.err(plan.errno(), plan.message());
    }
    ioas.addUser(); // short-term, as for MAP
    return Outcome.ok(op);
  }

  /** The domains dropped the areas (strict): remove them, unpin; returns the bytes unmapped. */
  public long finishUnmap(UnmapOp op) {
    return finishUnmap(op, Map.of(), java.util.Set.of());
  }

  /**
   * A unit's flush: deferred unmap {@code token} of unit {@code unitId} (its {@code Unmapped}
   * answer carried the token; its {@code FlushCompleted} names it once).
   */
  public record FlushKey(int unitId, long token) {}

  /** An area released after its flushes: where it was, for the owner's event. */
  public record Released(int ioasId, long iova, long length) {}

  /**
   * The domains answered the unmap of {@code op}'s areas: an area with no entry in {@code
   * flushes} and not in {@code failed} is removed and unpinned now (every unit invalidated before
   * answering); an area with {@code flushes} keeps its IOVA, pin and charge until each of them is
   * reported ({@link #flushCompleted}); an area in {@code failed} — a unit refused to remove it, a
   * bug — keeps them until its IOAS has no domain left. Returns the bytes unmapped.
   */
  public long finishUnmap(UnmapOp op, Map<Area, List<FlushKey>> flushes, java.util.Set<Area> failed) {
    for (Area a : op.plan.areas()) {
      if (failed.contains(a)) {
        a.unmapFailed = true;
        unmapRefusals++;
        lingering.put(a, op.ioas);
      }
      List<FlushKey> keys = flushes.getOrDefault(a, List.of());
      for (FlushKey k : keys) {
        if (flushedEarly.remove(k) || goneUnits.contains(k.unitId())) {
          continue;
        }
        a.pendingFlushes++;
        areasByFlush.computeIfAbsent(k, x -> new ArrayList<>(1)).add(a);
      }
      if (a.pendingFlushes > 0) {
        deferredUnmaps++;
        lingering.put(a, op.ioas);
      } else if (!a.unmapFailed) {
        release(op.ioas, a);
      }
    }
    op.ioas.removeUser();
    return op.plan.bytes();
  }

  private void release(Ioas ioas, Area a) {
    lingering.remove(a);
    unpinArea(a);
    ioas.iopt().remove(a);
    dropPagesIfUnused(a.pages);
  }

  /**
   * Unit {@code unitId} reports the flush of {@code tokens}: areas that wait for nothing else are
   * removed, unpinned and uncharged (their IOVA is free again). A token not registered yet is
   * remembered: its unmap's answer is still on its way.
   */
  public List<Released> flushCompleted(int unitId, long[] tokens) {
    List<Released> out = new ArrayList<>();
    for (long t : tokens) {
      FlushKey k = new FlushKey(unitId, t);
      List<Area> areas = areasByFlush.remove(k);
      if (areas == null) {
        flushedEarly.add(k);
        continue;
      }
      flushesCompleted++;
      for (Area a : areas) {
        settleFlush(a, out);
      }
    }
    return out;
  }

  /**
   * Unit {@code unitId} stopped: its pending flushes count as completed (nothing of it can serve a
   * translation any more), and so does any flush of it registered later.
   */
  public List<Released> unitGone(int unitId) {
    goneUnits.add(unitId);
    flushedEarly.removeIf(k -> k.unitId() == unitId);
    List<Released> out = new ArrayList<>();
    for (FlushKey k : new ArrayList<>(areasByFlush.keySet())) {
      if (k.unitId() == unitId) {
        for (Area a : areasByFlush.remove(k)) {
          settleFlush(a, out);
        }
      }
    }
    return out;
  }

  private void settleFlush(Area a, List<Released> out) {
    if (--a.pendingFlushes > 0 || a.unmapFailed) {
      return;
    }
    Ioas ioas = lingering.get(a);
    if (ioas == null) {
      throw new IllegalStateException(a + " flushed but not lingering");
    }
    release(ioas, a);
    out.add(new Released(ioas.id(), a.iova, a.length()));
  }

  /** Areas awaiting a flush (all IOASes, destroyed ones included). */
  public int areasAwaitingFlush() {
    int n = 0;
    for (Area a : lingering.keySet()) {
      if (a.pendingFlushes > 0) {
        n++;
      }
    }
    return n;
  }

  /**
   * The areas of {@code ioas} stuck after a refused unmap, released once it has no domain left:
   * none of their frames can be reached through it any more.
   */
  private void releaseStuck(Ioas ioas) {
    for (Map.Entry<Area, Ioas> e : new ArrayList<>(lingering.entrySet())) {
      Area a = e.getKey();
      if (e.getValue() == ioas && a.unmapFailed) {
        a.unmapFailed = false;
        if (a.pendingFlushes == 0) {
          release(ioas, a);
        }
      }
    }
  }

  /**
   * A map's domains were undone except those that refused to unmap its areas ({@code stuck}): as
   * {@link #abortMap(MapOp)}, but the stuck areas stay pinned (a unit may still map them) until
   * their IOAS has no domain left.
   */
  public void abortMap(MapOp op, java.util.Set<Area> stuck) {
    if (stuck.isEmpty()) {
      abortMap(op);
      return;
    }
    for (Area a : op.areas) {
      if (stuck.contains(a)) {
        a.state = Area.State.UNMAPPING;
        a.unmapFailed = true;
        unmapRefusals++;
        lingering.put(a, op.ioas);
        continue;
      }
      unpinArea(a);
      op.ioas.iopt().remove(a);
    }
    op.ioas.removeUser();
  }

  /** Deferred unmaps registered, flushes reported, unmaps a unit refused (bugs), since open. */
  public long[] unmapCounters() {
    return new long[] {deferredUnmaps, flushesCompleted, unmapRefusals};
  }

  /** A unit refused a teardown step other than an unmap (a bug); counted with the refusals. */
  public void unitRefusedTeardown() {
    unmapRefusals++;
  }

  // ================================================================ bind / unbind

  /**
   * VFIO_DEVICE_BIND_IOMMUFD, first phase: EBUSY when the RID is already bound here; reserves the
   * DEVICE's ID (ENOMEM). The owner then claims DMA ownership through the unit.
   */
  public Outcome<Device> beginBind(String name, int rid, int liodn, int group, int unitId) {
    if (devicesByRid.containsKey(ridKey(unitId, rid))) {
      return Outcome.err(Errno.EBUSY, "device %s (rid %04x) is already bound to this fd", name, rid);
    }
    Device d = new Device(name, rid, liodn, group, null);
    d.unitIdAtBind = unitId;
    Outcome<Integer> id = objects.reserve(d);
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    devicesByRid.put(ridKey(unitId, rid), d);
    return Outcome.ok(d);
  }

  /**
   * The unit granted DMA ownership and told what it is: EPERM when MSIs are not isolated and
   * allow-unsafe-interrupts is off ({@code iommufd_device_bind}), ENOMEM for the igroup; else the
   * device is published with the driver's user. On error the owner releases the claim and calls
   * {@link #abortBind}.
   */
  public Outcome<Device> completeBind(Device pending, UnitInfo info) {
    if (!info.msiIsolation() && !settings.allowUnsafeInterrupts()) {
      return Outcome.err(
          Errno.EPERM,
          "device %s: %s cannot isolate MSIs and allow_unsafe_interrupts is off",
          pending.name,
          info.unitName());
    }
    long gk = ridKey(info.unitId(), pending.group);
    Igroup ig = igroups.get(gk);
    if (ig == null) {
      if (injector.shouldFail(SITE_IGROUP)) {
        return Outcome.err(Errno.ENOMEM, "igroup allocation failed (injected)");
      }
      ig = new Igroup(info.unitId(), pending.group);
      igroups.put(gk, ig);
    }
    Device d = pending;
    if (info.unitId() != pending.unitIdAtBind) {
      throw new IllegalStateException("unit " + info.unitId() + " answered for a device of unit " + pending.unitIdAtBind);
    }
    d.info = info;
    d.igroup = ig;
    ig.devices.add(d);
    d.addUser(); // the VFIO driver's
    objects.finalizeObject(d);
    return Outcome.ok(d);
  }

  /** Undoes {@link #beginBind} (claim failed or was released). */
  public void abortBind(Device pending, int unitId) {
    devicesByRid.remove(ridKey(unitId, pending.rid));
    objects.abort(pending);
  }

  /** A LIVE, not-destroying device, or null. */
  public Device device(int devId) {
    Device d = objects.get(devId, Device.class);
    return d == null || d.destroying ? null : d;
  }

  /** The bound device at ({@code unitId}, {@code rid}), or null. */
  public Device deviceAt(int unitId, int rid) {
    Device d = devicesByRid.get(ridKey(unitId, rid));
    return d != null && d.isLive() ? d : null;
  }

  /**
   * VFIO device close, first phase: ENOENT for an unknown or already-unbinding device; marks it
   * destroying and tombstones its vDEVICE ({@code iommufd_device_pre_destroy}). The owner then
   * detaches every attachment ({@link #beginDetach}) and releases DMA ownership.
   */
  public Outcome<Device> beginUnbind(int devId) {
    Device d = device(devId);
    if (d == null) {
      return enoent("device", devId);
    }
    if (!d.busyPasids.isEmpty()) {
      return Outcome.err(Errno.EBUSY, "device %d: an attach or detach is in flight", devId);
    }
    d.destroying = true;
    sva.dropDevice(d); // its bindings go with its attachments
    if (d.vdevice != null) {
      Vdevice v = d.vdevice;
      v.viommu.vdevs.remove(v.virtId);
      v.viommu.removeUser();
      d.vdevice = null;
      if (v.isLive()) {
        objects.tombstone(v);
      }
    }
    return Outcome.ok(d);
  }

  /** Every attachment is gone and the claim released: the DEVICE object goes. */
  public void finishUnbind(Device d) {
    if (!d.attachments.isEmpty()) {
      throw new IllegalStateException("unbind of " + d.label() + " with attachments " + d.attachments);
    }
    d.removeUser(); // the VFIO driver's
    objects.remove(d);
    devicesByRid.remove(ridKey(d.unitId(), d.rid));
    Igroup ig = d.igroup;
    ig.devices.remove(d);
    if (ig.devices.isEmpty()) {
      igroups.remove(ridKey(ig.unitId, ig.group));
    }
  }

  // ================================================================ HWPT_PAGING lifecycle

  /** Reserves a HWPT_PAGING of {@code ioas} for {@code dev}'s unit (user on the IOAS and FAULT). */
  Outcome<HwPagetable> reservePaging(
      Device dev, Ioas ioas, boolean auto, boolean nestParent, boolean dirty, boolean pasid, Fault fault) {
    HwPagetable h = HwPagetable.paging(dev.unitId(), ioas, auto, nestParent, dirty, pasid, fault);
    Outcome<Integer> id = objects.reserve(h);
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    ioas.addUser();
    if (fault != null) {
      fault.addUser();
    }
    return Outcome.ok(h);
  }

  /** The unit allocated the domain. */
  public void domainAllocated(HwPagetable h, int domainId, long pgsizeBitmap, long apStart, long apLast) {
    h.domainId = domainId;
    h.pgsizeBitmap = pgsizeBitmap;
    h.apertureStart = apStart;
    h.apertureLast = apLast;
  }

  /** The unit set force-snoop on the domain. */
  public void coherencyEnforced(HwPagetable h) {
    h.enforceCacheCoherency = true;
  }

  /**
   * {@code iopt_table_add_domain} (caller holds the IOAS write gate): alignment and aperture
   * (EINVAL, EADDRINUSE), then — for the IOAS's first domain — a pin reference for every area
   * (EFAULT, ENOMEM). Returns the MAPPED areas the owner must replay into the new domain. All or
   * nothing.
   */
  public Outcome<List<Area>> addToIoas(HwPagetable h) {
    Ioas ioas = h.ioas;
    IoPagetable iopt = ioas.iopt();
    boolean first = iopt.domainCount() == 0;
    Outcome<Void> add = iopt.addDomain(h, h.pgsizeBitmap, h.apertureStart, h.apertureLast, h.label());
    if (!add.isOk()) {
      return add.map(v -> null);
    }
    List<Area> replay = new ArrayList<>(iopt.areaCount());
    for (Area a : iopt.areas()) {
      if (a.lingering()) {
        continue; // unmapped already; the new domain never held it
      }
      if (a.state != Area.State.MAPPED) {
        throw new IllegalStateException("domain added while " + a + " is in flight");
      }
      replay.add(a);
    }
    if (first) {
      Outcome<Void> pinned = pinAreas(ioas, replay);
      if (!pinned.isOk()) {
        iopt.removeDomain(h);
        return pinned.map(v -> null);
      }
    }
    h.inIoas = true;
    ioas.hwpts.add(h);
    return Outcome.ok(replay);
  }

  /**
   * {@code iopt_table_remove_domain} (caller holds the IOAS write gate): the IOAS no longer
   * mirrors into {@code h}; the last domain gone unpins every area.
   */
  public void removeFromIoas(HwPagetable h) {
    if (!h.inIoas) {
      return;
    }
    Ioas ioas = h.ioas;
    ioas.hwpts.remove(h);
    h.inIoas = false;
    ioas.iopt().removeDomain(h);
    if (ioas.iopt().domainCount() == 0) {
      unpinWithoutDomains(ioas);
    }
  }

  /**
   * The last domain of {@code ioas} is gone: mapped areas drop their pins (they are pinned again
   * when a domain comes back), stuck areas go; areas awaiting a flush keep their pins until it.
   */
  private void unpinWithoutDomains(Ioas ioas) {
    for (Area a : ioas.iopt().areas()) {
      if (a.state == Area.State.MAPPED) {
        unpinArea(a);
      }
    }
    releaseStuck(ioas);
  }

  /** Publishes a fully built HWPT. */
  public void finalizeHwpt(HwPagetable h) {
    objects.finalizeObject(h);
    if (h.viommu != null) {
      h.viommu.nested.add(h);
    }
  }

  /** Undoes a reserved HWPT (its domain already freed and removed from the IOAS by the owner). */
  public void abortHwpt(HwPagetable h) {
    releaseHwptRefs(h);
    objects.abort(h);
  }

  private void releaseHwptRefs(HwPagetable h) {
    if (h.inIoas) {
      throw new IllegalStateException(h.label() + " released while still a domain of its IOAS");
    }
    if (h.ioas != null) {
      h.ioas.removeUser();
    }
    if (h.parent != null) {
      h.parent.removeUser();
    }
    if (h.viommu != null) {
      h.viommu.removeUser();
      h.viommu.nested.remove(h);
    }
    if (h.fault != null) {
      h.fault.removeUser();
    }
  }

  // ================================================================ software nesting (seed 001)

  /**
   * IOASID_CREATE_NESTING, first phase: ENOENT for the device or the parent IOAS; reserves the
   * software-nested HWPT on the device's unit (a user on the parent). The owner then allocates its
   * shadow paging domain, enforces coherency as {@link SnoopControl} says, and calls {@link
   * #addShadowToParent} under the parent's write gate.
   */
  public Outcome<HwPagetable> beginSoftNesting(int devId, int parentIoasId) {
    Device dev = device(devId);
    if (dev == null) {
      return enoent("device", devId);
    }
    Ioas parent = ioas(parentIoasId);
    if (parent == null) {
      return enoent("IOAS", parentIoasId);
    }
    Outcome<Void> snoop = SnoopControl.checkIoasAttach(parent, dev); // the shadow follows its parent
    if (!snoop.isOk()) {
      return snoop.map(v -> null);
    }
    HwPagetable h = HwPagetable.softNested(dev.unitId(), parent, dev.info.reservedRegions());
    Outcome<Integer> id = objects.reserve(h);
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    parent.addUser();
    return Outcome.ok(h);
  }

  /**
   * The shadow becomes a domain owner of its parent's page table (the caller holds the parent's
   * write gate): the parent's areas are pinned while it lives — charged once, to the parent —
   * and the parent keeps PAGE_SIZE alignment (EADDRINUSE over a nonconforming area, as a domain
   * added). All or nothing.
   */
  public Outcome<Void> addShadowToParent(HwPagetable h) {
    Ioas parent = h.ioas;
    IoPagetable iopt = parent.iopt();
    boolean first = iopt.domainCount() == 0;
    Outcome<Void> add = iopt.addDomain(h, Uapi.PAGE_SIZE, 0, Uapi.ULONG_MAX, h.label() + " (shadow)");
    if (!add.isOk()) {
      return add;
    }
    if (first) {
      List<Area> all = new ArrayList<>();
      for (Area a : iopt.areas()) {
        if (a.lingering()) {
          continue;
        }
        if (a.state != Area.State.MAPPED) {
          throw new IllegalStateException("shadow added while " + a + " is in flight");
        }
        all.add(a);
      }
      Outcome<Void> pinned = pinAreas(parent, all);
      if (!pinned.isOk()) {
        iopt.removeDomain(h);
        return pinned;
      }
    }
    parent.shadows.add(h);
    return Outcome.OK;
  }

  private void removeShadowFromParent(HwPagetable h) {
    Ioas parent = h.ioas;
    if (!parent.shadows.remove(h)) {
      return; // never added (aborted creation)
    }
    parent.iopt().removeDomain(h);
    if (parent.iopt().domainCount() == 0) {
      unpinWithoutDomains(parent);
    }
  }

  /** The LIVE software-nested HWPT {@code id}: ENOENT when missing, EINVAL when another kind. */
  public Outcome<HwPagetable> softNested(int id) {
    HwPagetable h = objects.get(id, HwPagetable.class);
    if (h == null) {
      return enoent("HWPT", id);
    }
    if (h.shadow == null) {
      return Outcome.err(Errno.EINVAL, "hwpt %d: not a software-nested HWPT", id);
    }
    return Outcome.ok(h);
  }

  // ================================================================ HWPT_ALLOC

  /** What HWPT_ALLOC will build: a reserved HWPT and, for nested, the parent domain. */
  public record HwptAllocPlan(HwPagetable hwpt, Device device, int parentDomainId) {}

  private static final int PAGING_FLAGS =
      Uapi.HWPT_ALLOC_NEST_PARENT
          | Uapi.HWPT_ALLOC_DIRTY_TRACKING
          | Uapi.HWPT_ALLOC_FAULT_ID_VALID
          | Uapi.HWPT_ALLOC_PASID;
  private static final int NESTED_FLAGS = Uapi.HWPT_ALLOC_FAULT_ID_VALID | Uapi.HWPT_ALLOC_PASID;

  /** sizeof the driver struct of a HWPT_ALLOC data type, or -1 when unknown. */
  private static int hwptDataLen(int dataType) {
    return switch (dataType) {
      case Uapi.HWPT_DATA_VTD_S1 -> Uapi.HWPT_VTD_S1_LEN;
      case Uapi.HWPT_DATA_ARM_SMMUV3 -> Uapi.HWPT_ARM_SMMUV3_LEN;
      case Uapi.HWPT_DATA_SELFTEST -> Uapi.HWPT_SELFTEST_LEN;
      default -> -1;
    };
  }

  /**
   * IOMMU_HWPT_ALLOC, first phase ({@code hw_pagetable.c}): the data header (EINVAL), the device
   * (ENOENT), the pt (EINVAL when missing or of a wrong type), per kind the flag rules of
   * iommufd-uapi §1.4 (EOPNOTSUPP / EINVAL), the FAULT (ENOENT); reserves the HWPT. The owner then
   * allocates the domain (and for PAGING enforces coherency and adds it to the IOAS under the
   * write gate).
   */
  public Outcome<HwptAllocPlan> beginHwptAlloc(
      int flags, int devId, int ptId, int dataType, int dataLen, int faultId) {
    if ((dataType == Uapi.HWPT_DATA_NONE) != (dataLen == 0)) {
      return Outcome.err(
          Errno.EINVAL, "data_type %d with data_len %d: data needs a type and a length", dataType, dataLen);
    }
    Device dev = device(devId);
    if (dev == null) {
      return enoent("device", devId);
    }
    FdObject pt = objects.get(ptId);
    if (pt == null) {
      return Outcome.err(Errno.EINVAL, "pt_id %d: no IOAS, HWPT_PAGING or vIOMMU", ptId);
    }
    Fault fault = null;
    if (pt instanceof Ioas ioas) {
      if ((flags & ~(PAGING_FLAGS | SnoopControl.HWPT_FLAGS)) != 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown for a HWPT_PAGING", flags);
      }
      if (dataType != Uapi.HWPT_DATA_NONE) {
        return Outcome.err(Errno.EOPNOTSUPP, "data_type %d: a HWPT_PAGING takes no data", dataType);
      }
      if ((flags & Uapi.HWPT_ALLOC_DIRTY_TRACKING) != 0 && !dev.info.dirtyTracking()) {
        return Outcome.err(
            Errno.EOPNOTSUPP, "DIRTY_TRACKING: %s has no dirty tracking", dev.info.unitName());
      }
      if ((flags & Uapi.HWPT_ALLOC_FAULT_ID_VALID) != 0 && (flags & Uapi.HWPT_ALLOC_NEST_PARENT) != 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "FAULT_ID_VALID with NEST_PARENT");
      }
      if ((flags & Uapi.HWPT_ALLOC_NEST_PARENT) != 0 && !dev.info.nesting()) {
        return Outcome.err(Errno.EOPNOTSUPP, "NEST_PARENT: %s has no nesting", dev.info.unitName());
      }
      if ((flags & Uapi.HWPT_ALLOC_PASID) != 0 && dev.info.pasidBits() == 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "PASID: device %s has no PASID support", dev.name);
      }
      Outcome<SnoopControl.Policy> snoop = SnoopControl.hwptPolicy(flags, ioas, dev);
      if (!snoop.isOk()) {
        return ((Outcome.Err<SnoopControl.Policy>) snoop).cast();
      }
      if ((flags & Uapi.HWPT_ALLOC_FAULT_ID_VALID) != 0) {
        fault = objects.get(faultId, Fault.class);
        if (fault == null) {
          return enoent("FAULT", faultId);
        }
      }
      Outcome<HwPagetable> h =
          reservePaging(
              dev,
              ioas,
              false,
              (flags & Uapi.HWPT_ALLOC_NEST_PARENT) != 0,
              (flags & Uapi.HWPT_ALLOC_DIRTY_TRACKING) != 0,
              (flags & Uapi.HWPT_ALLOC_PASID) != 0,
              fault);
      return h.map(hw -> {
        hw.snoop = snoop.value();
        return new HwptAllocPlan(hw, dev, -1);
      });
    }
    HwPagetable parent = null;
    Viommu viommu = null;
    if (pt instanceof HwPagetable hp && hp.isPaging()) {
      if ((flags & ~NESTED_FLAGS) != 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown for a HWPT_NESTED", flags);
      }
      if (dataLen == 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "a HWPT_NESTED needs driver data");
      }
      if (hp.auto || !hp.nestParent || hp.unitId != dev.unitId()) {
        return Outcome.err(
            Errno.EINVAL, "hwpt %d: not a NEST_PARENT HWPT_PAGING of the device's IOMMU", ptId);
      }
      if (dev.info.kind() == UnitKind.SMMUV3 && dataType != Uapi.HWPT_DATA_SELFTEST) {
        return Outcome.err(
            Errno.EOPNOTSUPP, "%s: nested domains are allocated on a vIOMMU", dev.info.unitName());
      }
      parent = hp;
    } else if (pt instanceof Viommu v) {
      if ((flags & ~NESTED_FLAGS) != 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown for a HWPT_NESTED", flags);
      }
      if (dataLen == 0) {
        return Outcome.err(Errno.EOPNOTSUPP, "a HWPT_NESTED needs driver data");
      }
      if (v.unitId != dev.unitId()) {
        return Outcome.err(Errno.EINVAL, "vIOMMU %d: on another IOMMU than device %d", ptId, devId);
      }
      viommu = v;
    } else {
      return Outcome.err(Errno.EINVAL, "pt_id %d: a %s cannot parent a HWPT", ptId, pt.type());
    }
    int expected = expectedNestedData(dev.info.kind(), viommu);
    if (dataType != expected && dataType != Uapi.HWPT_DATA_SELFTEST) {
      return Outcome.err(Errno.EOPNOTSUPP, "data_type %d: %s takes %d", dataType, dev.info.unitName(), expected);
    }
    if (dataLen < hwptDataLen(dataType)) {
      return Outcome.err(
          Errno.EINVAL, "data_len %d: below sizeof the type %d data (%d)", dataLen, dataType, hwptDataLen(dataType));
    }
    if ((flags & Uapi.HWPT_ALLOC_FAULT_ID_VALID) != 0) {
      fault = objects.get(faultId, Fault.class);
      if (fault == null) {
        return enoent("FAULT", faultId);
      }
    }
    HwPagetable h =
        HwPagetable.nested(
            dev.unitId(), parent, viommu, fault, (flags & Uapi.HWPT_ALLOC_PASID) != 0, dataType);
    Outcome<Integer> id = objects.reserve(h);
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    if (parent != null) {
      parent.addUser();
    }
    if (viommu != null) {
      viommu.addUser();
    }
    if (fault != null) {
      fault.addUser();
    }
    HwPagetable root = h.parent();
    return Outcome.ok(new HwptAllocPlan(h, dev, root.domainId));
  }

  private static int expectedNestedData(UnitKind kind, Viommu viommu) {
    if (viommu != null && viommu.viommuType == Uapi.VIOMMU_TYPE_SELFTEST) {
      return Uapi.HWPT_DATA_SELFTEST;
    }
    return kind == UnitKind.SMMUV3 ? Uapi.HWPT_DATA_ARM_SMMUV3 : Uapi.HWPT_DATA_VTD_S1;
  }

  // ================================================================ attach / replace / detach

  /** How an attach resolves its target. */
  public enum AttachKind {
    /** To an existing HWPT (given, or a compatible auto HWPT of the IOAS). */
    EXISTING,
    /** A new auto HWPT_PAGING of {@link AttachPlan#ioas()} must be built first. */
    NEW_AUTO
  }

  /**
   * An attach or replace in flight. For replace, {@code devices} are the group's devices attached
   * at the PASID (all move), {@code old} their HWPT.
   */
  public static final class AttachPlan {
    final Device device;
    final int pasid;
    final boolean replace;
    AttachKind kind;
    HwPagetable hwpt;
    final Ioas ioas;
    final HwPagetable old;
    final List<Device> devices;
    /** IOASes whose reserved regions this plan enforced for each device (undone on abort). */
    final List<Object[]> enforced = new ArrayList<>();
    boolean noop;

    AttachPlan(Device device, int pasid, boolean replace, AttachKind kind, HwPagetable hwpt, Ioas ioas,
        HwPagetable old, List<Device> devices) {
      this.device = device;
      this.pasid = pasid;
      this.replace = replace;
      this.kind = kind;
      this.hwpt = hwpt;
      this.ioas = ioas;
      this.old = old;
      this.devices = devices;
    }

    public Device device() {
      return device;
    }

    public int pasid() {
      return pasid;
    }

    public boolean replace() {
      return replace;
    }

    public AttachKind kind() {
      return kind;
    }

    /** The target HWPT (for NEW_AUTO: null until {@link #autoBuilt}). */
    public HwPagetable hwpt() {
      return hwpt;
    }

    public Ioas ioas() {
      return ioas;
    }

    public HwPagetable old() {
      return old;
    }

    /** The devices whose (RID, PASID) the unit must switch. */
    public List<Device> devices() {
      return devices;
    }

    /** Replace to the HWPT already attached: nothing to do. */
    public boolean noop() {
      return noop;
    }
  }

  /**
   * Attach ({@code replace == false}) or replace of ({@code devId}, {@code pasid}) to {@code ptId}
   * — an IOAS, a HWPT_PAGING or a HWPT_NESTED (other types EINVAL, missing ENOENT) — first phase
   * ({@code device.c} {@code iommufd_device_change_pt}, {@code iommufd_hw_pagetable_attach},
   * {@code iommufd_device_do_replace}). Rules: iommufd-uapi §1.5 and the PASID compatibility of
   * {@code iommufd_hwpt_pasid_compat}. Enforces the device's reserved regions in the target IOAS
   * (EADDRINUSE) and takes a user on the target.
   */
  public Outcome<AttachPlan> beginAttach(int devId, int pasid, int ptId, boolean replace) {
    Device dev = device(devId);
    if (dev == null) {
      return enoent("device", devId);
    }
    if (pasid != Device.NO_PASID) {
      int bits = dev.info.pasidBits();
      if (bits == 0 || pasid < 0 || (bits < 31 && pasid >= 1 << bits)) {
        return Outcome.err(Errno.EINVAL, "pasid %d: device %s supports %d PASID bits", pasid, dev.name, bits);
      }
    }
    if (dev.busyPasids.contains(pasid)) {
      return Outcome.err(Errno.EBUSY, "device %d: an attach or detach at this PASID is in flight", devId);
    }
    FdObject pt = objects.get(ptId);
    if (pt == null) {
      return enoent("pt", ptId);
    }
    HwPagetable current = dev.attachments.get(pasid);
    Igroup ig = dev.igroup;
    HwPagetable groupHwpt = ig.hwpt(pasid);
    if (replace && current == null) {
      return Outcome.err(Errno.EINVAL, "device %d: not attached, nothing to replace", devId);
    }
    AttachPlan plan;
    if (pt instanceof Ioas ioas) {
      Outcome<Void> snoop = SnoopControl.checkIoasAttach(ioas, dev);
      if (!snoop.isOk()) {
        return snoop.map(v -> null);
      }
      HwPagetable reuse = null;
      if (replace && current.isPaging() && current.ioas == ioas && current.auto) {
        reuse = current;
      } else {
        for (HwPagetable h : ioas.hwpts) {
          if (h.auto && h.isLive() && autoCompatible(h, dev, pasid)
              && (replace || groupHwpt == null || groupHwpt == h)) {
            reuse = h;
            break;
          }
        }
      }
      if (reuse != null) {
        plan = new AttachPlan(dev, pasid, replace, AttachKind.EXISTING, reuse, ioas, current, groupDevices(dev, pasid, replace));
      } else {
        if (!replace && groupHwpt != null) {
          return Outcome.err(
              Errno.EINVAL, "group %d is attached to hwpt %d at this PASID: its devices share one", ig.group, groupHwpt.id());
        }
        if (!replace && current != null) {
          return Outcome.err(Errno.EINVAL, "device %d is attached to hwpt %d", devId, current.id());
        }
        plan = new AttachPlan(dev, pasid, replace, AttachKind.NEW_AUTO, null, ioas, current, groupDevices(dev, pasid, replace));
      }
    } else if (pt instanceof HwPagetable h) {
      plan = new AttachPlan(dev, pasid, replace, AttachKind.EXISTING, h, h.isPaging() ? h.ioas : null, current, groupDevices(dev, pasid, replace));
    } else {
      return Outcome.err(Errno.EINVAL, "pt_id %d: a %s is not an IOAS or HWPT", ptId, pt.type());
    }
    if (plan.kind == AttachKind.EXISTING) {
      HwPagetable h = plan.hwpt;
      if (replace && h == current) {
        plan.noop = true;
        return Outcome.ok(plan);
      }
      if (!replace) {
        if (groupHwpt != null && groupHwpt != h) {
          return Outcome.err(
              Errno.EINVAL, "group %d is attached to hwpt %d at this PASID: its devices share one", ig.group, groupHwpt.id());
        }
        if (current == h) {
          return Outcome.err(Errno.EBUSY, "device %d is already attached to hwpt %d", devId, h.id());
        }
        if (current != null) {
          return Outcome.err(Errno.EINVAL, "device %d is attached to hwpt %d", devId, current.id());
        }
      }
      Outcome<Void> ok = compatible(h, dev, pasid);
      if (!ok.isOk()) {
        return ok.map(v -> null);
      }
    } else if (!pasidCompat(null, dev, pasid, true)) {
      return Outcome.err(Errno.EINVAL, "pasid %d: the RID's hwpt is not PASID compatible", pasid);
    }
    if (plan.ioas != null) {
      HwPagetable oldRoot = current == null ? null : current;
      boolean sameIoas = replace && oldRoot != null && oldRoot.isPaging() && oldRoot.ioas == plan.ioas;
      if (!sameIoas) {
        for (Device d : plan.devices) {
          Outcome<Void> r = enforceResv(d, plan.ioas, plan);
          if (!r.isOk()) {
            undoResv(plan);
            return r.map(v -> null);
          }
        }
      }
    }
    for (Device d : plan.devices) {
      d.busyPasids.add(pasid);
    }
    if (plan.hwpt != null) {
      plan.hwpt.addUser();
    }
    return Outcome.ok(plan);
  }

  private List<Device> groupDevices(Device dev, int pasid, boolean replace) {
    if (!replace) {
      return List.of(dev);
    }
    Igroup.GroupAttach ga = dev.igroup.attaches.get(pasid);
    return ga == null ? List.of(dev) : List.copyOf(ga.devices);
  }

  private Outcome<Void> enforceResv(Device d, Ioas ioas, AttachPlan plan) {
    if (d.resv.containsKey(ioas)) {
      return Outcome.OK;
    }
    Outcome<Void> r = ioas.iopt().enforceRegions(d.info.reservedRegions(), d, d.label());
    if (r.isOk()) {
      d.resv.put(ioas, 0);
      plan.enforced.add(new Object[] {d, ioas});
    }
    return r;
  }

  private void undoResv(AttachPlan plan) {
    for (Object[] e : plan.enforced) {
      Device d = (Device) e[0];
      Ioas ioas = (Ioas) e[1];
      if (d.resv.getOrDefault(ioas, 0) == 0) {
        d.resv.remove(ioas);
        ioas.iopt().removeReserved(d);
      }
    }
    plan.enforced.clear();
  }

  /** Driver-level compatibility of an attach (the EINVAL of a failing {@code attach_dev}). */
  private Outcome<Void> compatible(HwPagetable h, Device dev, int pasid) {
    if (!h.isLive() && h.state() != FdObject.State.RESERVED) {
      return Outcome.err(Errno.ENOENT, "hwpt %d is being destroyed", h.id());
    }
    if (h.unitId != dev.unitId()) {
      return Outcome.err(Errno.EINVAL, "hwpt %d lives in another IOMMU than device %d", h.id(), dev.id());
    }
    HwPagetable root = h.pagingRoot();
    if (root.enforceCacheCoherency && !dev.info.enforceCacheCoherency()) {
      return Outcome.err(
          Errno.EINVAL, "hwpt %d enforces cache coherency; %s cannot", h.id(), dev.info.unitName());
    }
    if (h.isPaging() && h.dirtyTracking && !dev.info.dirtyTracking()) {
      return Outcome.err(Errno.EINVAL, "hwpt %d tracks dirty pages; %s cannot", h.id(), dev.info.unitName());
    }
    if (h.viommu != null && (dev.vdevice == null || dev.vdevice.viommu != h.viommu)) {
      return Outcome.err(
          Errno.ENOENT, "device %d has no vDEVICE in vIOMMU %d: allocate one before attaching", dev.id(), h.viommu.id());
    }
    if (!pasidCompat(h, dev, pasid, false)) {
      return Outcome.err(
          Errno.EINVAL,
          pasid == Device.NO_PASID
              ? "hwpt %d is not PASID compatible while PASIDs are attached"
              : "hwpt %d (or the RID's hwpt) is not PASID compatible",
          h.id());
    }
    return Outcome.OK;
  }

  /** {@code iommufd_hwpt_pasid_compat}; with {@code auto}, checks only the RID side for a new auto HWPT. */
  private boolean pasidCompat(HwPagetable h, Device dev, int pasid, boolean auto) {
    if (pasid == Device.NO_PASID) {
      if (auto || h.pasidCapable) {
        return true;
      }
      for (Integer p : dev.igroup.attaches.keySet()) {
        if (p != Device.NO_PASID) {
          return false;
        }
      }
      return true;
    }
    if (!auto && !h.pasidCapable) {
      return false;
    }
    HwPagetable rid = dev.igroup.hwpt(Device.NO_PASID);
    return rid == null || rid.pasidCapable;
  }

  private boolean autoCompatible(HwPagetable h, Device dev, int pasid) {
    return compatible(h, dev, pasid).isOk();
  }

  /**
   * For NEW_AUTO: reserves the auto HWPT_PAGING of the plan's IOAS (PASID-capable for a PASID
   * attach). The owner then allocates, builds and finalizes it and calls {@link #autoBuilt}.
   */
  public Outcome<HwPagetable> reserveAuto(AttachPlan plan) {
    Outcome<HwPagetable> h =
        reservePaging(plan.device, plan.ioas, true, false, false, plan.pasid != Device.NO_PASID, null);
    if (h.isOk()) {
      h.value().snoop = plan.ioas.snoop;
    }
    return h;
  }

  /**
   * For NEW_AUTO, once the IOAS's write gate is held ({@code ioas->mutex}): a compatible auto HWPT
   * another attach published meanwhile, which the plan then takes (with the plan's user) instead of
   * building its own; null when there is none.
   */
  public HwPagetable takeConcurrentAuto(AttachPlan plan) {
    for (HwPagetable h : plan.ioas.hwpts) {
      if (h.auto && h.isLive() && autoCompatible(h, plan.device, plan.pasid)) {
        HwPagetable g = plan.device.igroup.hwpt(plan.pasid);
        if (plan.replace || g == null || g == h) {
          autoBuilt(plan, h);
          return h;
        }
      }
    }
    return null;
  }

  /** The auto HWPT of a NEW_AUTO plan is built and published. */
  public void autoBuilt(AttachPlan plan, HwPagetable h) {
    h.addUser(); // the plan's user, as for EXISTING
    plan.hwpt = h;
    plan.kind = AttachKind.EXISTING;
  }

  /**
   * The unit switched every device of the plan: record the attachments; for a replace, the old
   * HWPT loses them and its fault groups of the handles are returned to answer INVALID. Returns
   * the old HWPT when it is an auto HWPT left without users (the owner destroys it).
   */
  public HwPagetable commitAttach(AttachPlan plan, List<Fault.Response> autoResponses) {
    HwPagetable h = plan.hwpt;
    Igroup ig = plan.device.igroup;
    for (Device d : plan.devices) {
      d.busyPasids.remove(plan.pasid);
    }
    if (plan.noop) {
      return null;
    }
    Igroup.GroupAttach ga = ig.attaches.get(plan.pasid);
    if (plan.replace) {
      HwPagetable old = plan.old;
      Igroup.GroupAttach nga = new Igroup.GroupAttach(h);
      for (Device d : plan.devices) {
        d.attachments.put(plan.pasid, h);
        nga.devices.add(d);
        if (d != plan.device) {
          h.addUser();
        }
        h.attachments++;
        old.attachments--;
        old.removeUser();
        if (old.fault != null) {
          autoResponses.addAll(old.fault.autoRespond(d, plan.pasid, old));
        }
        boolean sameIoas = old.isPaging() && h.isPaging() && old.ioas == h.ioas;
        if (!sameIoas) {
          if (old.isPaging()) {
            dropResv(d, old.ioas);
          }
          if (h.isPaging()) {
            d.resv.merge(h.ioas, 1, Integer::sum);
          }
        }
      }
      ig.attaches.put(plan.pasid, nga);
      return old.auto && old.attachments == 0 && old.users() == 0 ? old : null;
    }
    if (ga == null) {
      ga = new Igroup.GroupAttach(h);
      ig.attaches.put(plan.pasid, ga);
    }
    ga.devices.add(plan.device);
    plan.device.attachments.put(plan.pasid, h);
    plan.device.addUser();
    h.attachments++;
    if (h.isPaging()) {
      plan.device.resv.merge(h.ioas, 1, Integer::sum);
    }
    return null;
  }

  /** The unit refused: undo {@link #beginAttach} (the owner already dropped any new auto HWPT). */
  public void abortAttach(AttachPlan plan) {
    for (Device d : plan.devices) {
      d.busyPasids.remove(plan.pasid);
    }
    if (plan.hwpt != null && !plan.noop) {
      plan.hwpt.removeUser();
    }
    undoResv(plan);
  }

  /** A detach in flight. */
  public record DetachPlan(Device device, int pasid, HwPagetable hwpt) {}

  /** Detach of ({@code devId}, {@code pasid}): ENOENT for the device, EINVAL when not attached. */
  public Outcome<DetachPlan> beginDetach(int devId, int pasid) {
    Device d = objects.get(devId, Device.class);
    if (d == null) {
      return enoent("device", devId);
    }
    return beginDetach(d, pasid);
  }

  /** As above for a device being unbound. */
  public Outcome<DetachPlan> beginDetach(Device d, int pasid) {
    if (d.busyPasids.contains(pasid)) {
      return Outcome.err(Errno.EBUSY, "device %d: an attach or detach at this PASID is in flight", d.id());
    }
    HwPagetable h = d.attachments.get(pasid);
    if (h == null) {
      return Outcome.err(Errno.EINVAL, "device %d is not attached at %s", d.id(), pasid == Device.NO_PASID ? "its RID" : "pasid " + pasid);
    }
    if (pasid == Device.NO_PASID && d.attachments.size() > 1) {
      // The RID's hwpt must outlive PASID attachments that depend on its compatibility: as the
      // kernel, the RID may still detach; nothing else to check.
    }
    d.busyPasids.add(pasid);
    return Outcome.ok(new DetachPlan(d, pasid, h));
  }

  /**
   * The unit detached: the attachment goes, the fault groups of the handle are returned to answer
   * INVALID, reserved regions of the device leave the IOAS with its last attachment there. Returns
   * the HWPT when it is an auto HWPT left without users (the owner destroys it).
   */
  public HwPagetable commitDetach(DetachPlan plan, List<Fault.Response> autoResponses) {
    Device d = plan.device();
    HwPagetable h = plan.hwpt();
    d.busyPasids.remove(plan.pasid());
    d.attachments.remove(plan.pasid());
    d.removeUser();
    Igroup.GroupAttach ga = d.igroup.attaches.get(plan.pasid());
    ga.devices.remove(d);
    if (ga.devices.isEmpty()) {
      d.igroup.attaches.remove(plan.pasid());
    }
    if (h.fault != null) {
      autoResponses.addAll(h.fault.autoRespond(d, plan.pasid(), h));
    }
    if (h.isPaging()) {
      dropResv(d, h.ioas);
    }
    h.attachments--;
    h.removeUser();
    return h.auto && h.attachments == 0 && h.users() == 0 ? h : null;
  }

  public void abortDetach(DetachPlan plan) {
    plan.device().busyPasids.remove(plan.pasid());
  }

  private void dropResv(Device d, Ioas ioas) {
    Integer n = d.resv.get(ioas);
    if (n == null) {
      return;
    }
    if (n <= 1) {
      d.resv.remove(ioas);
      ioas.iopt().removeReserved(d);
    } else {
      d.resv.put(ioas, n - 1);
    }
  }

  // ================================================================ DESTROY

  /** What DESTROY of an object still needs from the units. */
  public record DestroyPlan(FdObject object, HwPagetable hwpt, List<Fault.Response> responses) {}

  /**
   * IOMMU_DESTROY, first phase: ENOENT / EBUSY ({@link ObjectTable#checkDestroy}); objects
   * without unit state go at once (IOAS: its areas are dropped — no domain can hold them since no
   * HWPT uses it; FAULT: pending groups to answer INVALID; vDEVICE, vEVENTQ, vIOMMU). A HWPT is
   * marked DESTROYING and returned for the owner to free its domain ({@link #finishDestroyHwpt}).
   */
  public Outcome<DestroyPlan> beginDestroy(int id) {
    Outcome<FdObject> c = objects.checkDestroy(id);
    if (!c.isOk()) {
      return ((Outcome.Err<FdObject>) c).cast();
    }
    FdObject o = c.value();
    List<Fault.Response> responses = List.of();
    switch (o.type()) {
      case DEVICE:
        throw new IllegalStateException("a bound device always has its driver's user");
      case HWPT_PAGING:
      case HWPT_NESTED:
        objects.markDestroying(o);
        return Outcome.ok(new DestroyPlan(o, (HwPagetable) o, responses));
      case IOAS:
        destroyIoas((Ioas) o);
        break;
      case FAULT:
        responses = ((Fault) o).drain();
        objects.remove(o);
        break;
      case VIOMMU:
        ((Viommu) o).hwpt.removeUser();
        objects.remove(o);
        break;
      case VDEVICE:
        Vdevice v = (Vdevice) o;
        v.viommu.vdevs.remove(v.virtId);
        v.viommu.removeUser();
        v.device.vdevice = null;
        objects.remove(o);
        break;
      case VEVENTQ:
        Veventq q = (Veventq) o;
        q.viommu.veventqs.remove(q.veventqType);
        q.viommu.removeUser();
        objects.remove(o);
        break;
      default:
        throw new IllegalStateException("type " + o.type());
    }
    return Outcome.ok(new DestroyPlan(o, null, responses));
  }

  private void destroyIoas(Ioas ioas) {
    if (!ioas.hwpts.isEmpty() || ioas.iopt().domainCount() != 0) {
      throw new IllegalStateException("IOAS " + ioas.id() + " destroyed with domains");
    }
    releaseStuck(ioas);
    List<Area> all = new ArrayList<>(ioas.iopt().areas());
    for (Area a : all) {
      if (a.pendingFlushes > 0) {
        continue; // keeps its pin until the flush; released from the lingering set then
      }
      if (a.state != Area.State.MAPPED) {
        throw new IllegalStateException("IOAS " + ioas.id() + " destroyed with " + a + " in flight");
      }
      unpinArea(a);
      ioas.iopt().remove(a);
      dropPagesIfUnused(a.pages);
    }
    for (Device d : devicesByRid.values()) {
      d.resv.remove(ioas);
    }
    vfio.ioasDestroyed(ioas);
    objects.remove(ioas);
  }

  /**
   * A HWPT being destroyed (DESTROY, last detach of an auto HWPT, close): removed from its IOAS
   * (caller holds the IOAS write gate) — the domain is freed by the owner afterwards.
   */
  public void detachHwptFromIoas(HwPagetable h) {
    if (h.isLive()) {
      objects.markDestroying(h);
    }
    if (h.isPaging()) {
      removeFromIoas(h);
    }
  }

  /** The unit freed the domain: the HWPT object goes, its references with it. */
  public void finishDestroyHwpt(HwPagetable h) {
    if (h.isPaging() && h.inIoas) {
      removeFromIoas(h);
    }
    if (h.shadow != null) {
      removeShadowFromParent(h); // caller holds the parent's write gate
    }
    releaseHwptRefs(h);
    objects.remove(h);
  }

  // ================================================================ FAULT, vIOMMU, vDEVICE, vEVENTQ

  /** IOMMU_FAULT_QUEUE_ALLOC. */
  public Outcome<Integer> faultQueueAlloc(int flags) {
    if (flags != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: must be 0", flags);
    }
    Fault f = new Fault(injector, settings.faultQueueDepth());
    Outcome<Integer> id = objects.reserve(f);
    if (id.isOk()) {
      objects.finalizeObject(f);
    }
    return id;
  }

  public Fault fault(int id) {
    return objects.get(id, Fault.class);
  }

  /** IOMMU_VIOMMU_ALLOC ({@code viommu.c}). */
  public Outcome<Integer> viommuAlloc(int flags, int type, int devId, int hwptId) {
    if (flags != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: must be 0", flags);
    }
    if (type == Uapi.VIOMMU_TYPE_DEFAULT) {
      return Outcome.err(Errno.EOPNOTSUPP, "type DEFAULT: no vIOMMU of that type");
    }
    Device dev = device(devId);
    if (dev == null) {
      return enoent("device", devId);
    }
    HwPagetable h = objects.get(hwptId, HwPagetable.class);
    if (h == null || !h.isPaging()) {
      return enoent("HWPT_PAGING", hwptId);
    }
    boolean supported =
        type == Uapi.VIOMMU_TYPE_SELFTEST
            || (type == Uapi.VIOMMU_TYPE_ARM_SMMUV3 && dev.info.kind() == UnitKind.SMMUV3);
    if (!supported) {
      return Outcome.err(Errno.EOPNOTSUPP, "type 0x%x: %s has no such vIOMMU", type, dev.info.unitName());
    }
    if (!h.nestParent) {
      return Outcome.err(Errno.EINVAL, "hwpt %d: not a NEST_PARENT", hwptId);
    }
    if (h.unitId != dev.unitId()) {
      return Outcome.err(Errno.EINVAL, "hwpt %d lives in another IOMMU than device %d", hwptId, devId);
    }
    Viommu v = new Viommu(h, type, dev.unitId());
    Outcome<Integer> id = objects.reserve(v);
    if (!id.isOk()) {
      return id;
    }
    h.addUser();
    objects.finalizeObject(v);
    return id;
  }

  /** IOMMU_VDEVICE_ALLOC: EEXIST for a device with a vDEVICE or a taken virt_id. */
  public Outcome<Integer> vdeviceAlloc(int viommuId, int devId, long virtId) {
    Viommu v = objects.get(viommuId, Viommu.class);
    if (v == null) {
      return enoent("vIOMMU", viommuId);
    }
    Device d = device(devId);
    if (d == null) {
      return enoent("device", devId);
    }
    if (d.unitId() != v.unitId) {
      return Outcome.err(Errno.EINVAL, "device %d sits behind another IOMMU than vIOMMU %d", devId, viommuId);
    }
    if (d.vdevice != null) {
      return Outcome.err(Errno.EEXIST, "device %d already has vDEVICE %d", devId, d.vdevice.id());
    }
    if (v.vdevs.containsKey(virtId)) {
      return Outcome.err(Errno.EEXIST, "virt_id 0x%x is taken in vIOMMU %d", virtId, viommuId);
    }
    Vdevice vd = new Vdevice(v, d, virtId);
    Outcome<Integer> id = objects.reserve(vd);
    if (!id.isOk()) {
      return id;
    }
    v.addUser();
    v.vdevs.put(virtId, vd);
    d.vdevice = vd;
    objects.finalizeObject(vd);
    return id;
  }

  /** IOMMU_VEVENTQ_ALLOC: one per (vIOMMU, type); depth > 0. */
  public Outcome<Integer> veventqAlloc(int flags, int viommuId, int type, int depth) {
    if (flags != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: must be 0", flags);
    }
    if (type == Uapi.VEVENTQ_TYPE_DEFAULT) {
      return Outcome.err(Errno.EOPNOTSUPP, "type DEFAULT: no vEVENTQ of that type");
    }
    if (depth <= 0) {
      return Outcome.err(Errno.EINVAL, "veventq_depth %d: must be above 0", depth);
    }
    Viommu v = objects.get(viommuId, Viommu.class);
    if (v == null) {
      return enoent("vIOMMU", viommuId);
    }
    if (type != Uapi.VEVENTQ_TYPE_ARM_SMMUV3 && type != Uapi.VEVENTQ_TYPE_SELFTEST) {
      return Outcome.err(Errno.EOPNOTSUPP, "type 0x%x: unknown vEVENTQ type", type);
    }
    if (v.veventqs.containsKey(type)) {
      return Outcome.err(Errno.EEXIST, "vIOMMU %d already has a vEVENTQ of type 0x%x", viommuId, type);
    }
    Veventq q = new Veventq(v, type, depth, injector);
    Outcome<Integer> id = objects.reserve(q);
    if (!id.isOk()) {
      return id;
    }
    v.addUser();
    v.veventqs.put(type, q);
    objects.finalizeObject(q);
    return id;
  }

  public Veventq veventq(int id) {
    return objects.get(id, Veventq.class);
  }

  /**
   * A DMA fault of (unit, rid, pasid) — routed to the vEVENTQ of the vIOMMU of the nested HWPT the
   * handle is attached to, when the device has a vDEVICE there and the queue exists (else dropped,
   * {@code iommufd_viommu_report_event} → EOPNOTSUPP). Returns the queue when it became readable.
   */
  public Veventq reportDmaFault(int unitId, int rid, int pasid, String reason, long iova, int access) {
    Device d = deviceAt(unitId, rid);
    if (d == null) {
      return null;
    }
    HwPagetable h = d.attachments.get(pasid < 0 ? Device.NO_PASID : pasid);
    if (h == null) {
      h = d.attachments.get(Device.NO_PASID);
    }
    if (h == null || h.viommu == null || d.vdevice == null || d.vdevice.viommu != h.viommu) {
      return null;
    }
    int type =
        h.viommu.viommuType == Uapi.VIOMMU_TYPE_ARM_SMMUV3 ? Uapi.VEVENTQ_TYPE_ARM_SMMUV3 : Uapi.VEVENTQ_TYPE_SELFTEST;
    Veventq q = h.viommu.veventqs.get(type);
    if (q == null) {
      return null;
    }
    return q.report(d.vdevice.virtId, reason, iova, access) ? q : null;
  }

  /**
   * The vEVENTQ a DMA fault of {@code device} at {@code pasid} under {@code hwpt} reports to, or
   * null: the HWPT belongs to a vIOMMU, the device has a vDEVICE in it, and the vIOMMU has a
   * vEVENTQ of its type ({@code iommufd_viommu_report_event}).
   */
  public Veventq veventqFor(Device device, HwPagetable hwpt) {
    if (hwpt == null || hwpt.viommu == null || device.vdevice == null
        || device.vdevice.viommu != hwpt.viommu) {
      return null;
    }
    int type =
        hwpt.viommu.viommuType == Uapi.VIOMMU_TYPE_ARM_SMMUV3 ? Uapi.VEVENTQ_TYPE_ARM_SMMUV3 : Uapi.VEVENTQ_TYPE_SELFTEST;
    return hwpt.viommu.veventqs.get(type);
  }

  /** The virtual ID of {@code device} in its vIOMMU (vSID / vRID), for a vEVENTQ record. */
  public long virtIdOf(Device device) {
    return device.vdevice == null ? 0 : device.vdevice.virtId;
  }

  /** Where a page request of (unit, rid, pasid) goes: the device and its attached HWPT. */
  public record PageRequestRoute(Device device, HwPagetable hwpt, int pasid) {}

  /** The attach handle of (unit, rid, pasid), or null (no handler: answer INVALID). */
  public PageRequestRoute routePageRequest(int unitId, int rid, int pasid) {
    Device d = deviceAt(unitId, rid);
    if (d == null) {
      return null;
    }
    int p = pasid < 0 ? Device.NO_PASID : pasid;
    HwPagetable h = d.attachments.get(p);
    if (h == null || h.fault == null || d.busyPasids.contains(p)) {
      return null;
    }
    return new PageRequestRoute(d, h, p);
  }

  // ================================================================ GET_HW_INFO, dirty tracking

  /** Out fields of IOMMU_GET_HW_INFO. */
  public record HwInfo(
      int outDataType,
      int dataLen,
      long outCapabilities,
      int outMaxPasidLog2,
      long pageSizeBitmap,
      int addressWidth,
      List<IovaRange> reservedRegions,
      boolean enforceCacheCoherency) {}

  /** IOMMU_GET_HW_INFO. */
  public Outcome<HwInfo> hwInfo(int flags, int devId, int dataLen) {
    if (flags != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: must be 0", flags);
    }
    Device d = device(devId);
    if (d == null) {
      return enoent("device", devId);
    }
    UnitInfo i = d.info;
    int type;
    int len;
    switch (i.kind()) {
      case VTD -> {
        type = Uapi.HW_INFO_TYPE_INTEL_VTD;
        len = Uapi.HW_INFO_VTD_LEN;
      }
      case SMMUV3 -> {
        type = Uapi.HW_INFO_TYPE_ARM_SMMUV3;
        len = Uapi.HW_INFO_ARM_SMMUV3_LEN;
      }
      default -> {
        type = Uapi.HW_INFO_TYPE_NONE;
        len = 0;
      }
    }
    long caps = i.dirtyTracking() ? Uapi.HW_CAP_DIRTY_TRACKING : 0;
    if (i.pasidBits() > 0) {
      caps |= Uapi.HW_CAP_PCI_PASID_EXEC | Uapi.HW_CAP_PCI_PASID_PRIV;
    }
    List<IovaRange> resv = new ArrayList<>();
    for (ReservedRegion r : i.reservedRegions()) {
      resv.add(new IovaRange(r.start(), r.last()));
    }
    return Outcome.ok(
        new HwInfo(type, len, caps, i.pasidBits(), i.pageSizeBitmap(), i.addressWidth(), resv,
            i.enforceCacheCoherency()));
  }

  /** IOMMU_HWPT_SET_DIRTY_TRACKING, validation: the HWPT_PAGING to switch. */
  public Outcome<HwPagetable> checkSetDirtyTracking(int flags, int hwptId) {
    if ((flags & ~Uapi.HWPT_DIRTY_TRACKING_ENABLE) != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown bits", flags);
    }
    HwPagetable h = objects.get(hwptId, HwPagetable.class);
    if (h == null || !h.isPaging()) {
      return enoent("HWPT_PAGING", hwptId);
    }
    if (!h.dirtyTracking) {
      return Outcome.err(Errno.EINVAL, "hwpt %d was not allocated with DIRTY_TRACKING", hwptId);
    }
    return Outcome.ok(h);
  }

  public void dirtyTrackingSet(HwPagetable h, boolean enabled) {
    h.dirtyTrackingEnabled = enabled;
  }

  /** IOMMU_HWPT_GET_DIRTY_BITMAP, validation. */
  public Outcome<HwPagetable> checkGetDirtyBitmap(int hwptId, int flags, long iova, long length, long pageSize) {
    if ((flags & ~Uapi.HWPT_GET_DIRTY_BITMAP_NO_CLEAR) != 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "flags 0x%x: unknown bits", flags);
    }
    HwPagetable h = objects.get(hwptId, HwPagetable.class);
    if (h == null || !h.isPaging()) {
      return enoent("HWPT_PAGING", hwptId);
    }
    if (!h.dirtyTracking) {
      return Outcome.err(Errno.EINVAL, "hwpt %d was not allocated with DIRTY_TRACKING", hwptId);
    }
    if (pageSize == 0 || Long.bitCount(pageSize) != 1 || length == 0
        || (iova & (pageSize - 1)) != 0 || (length & (pageSize - 1)) != 0) {
      return Outcome.err(
          Errno.EINVAL, "iova 0x%x, length 0x%x, page_size 0x%x: page_size a power of two, both aligned to it", iova, length, pageSize);
    }
    if (IoPagetable.lastOf(iova, length) == null) {
      return Outcome.err(Errno.EOVERFLOW, "iova 0x%x + length 0x%x wraps", iova, length);
    }
    if (Long.divideUnsigned(length, pageSize) > (1L << 30)) {
      return Outcome.err(Errno.EINVAL, "bitmap of 0x%x pages too large", Long.divideUnsigned(length, pageSize));
    }
    return Outcome.ok(h);
  }

  // ================================================================ HWPT_INVALIDATE

  /**
   * IOMMU_HWPT_INVALIDATE, validation and translation ({@link Invalidation}): ENOENT for a missing
   * ID; header errors as Err; otherwise the plan (which may end in an entry's errno).
   */
  public Outcome<Invalidation.Plan> beginInvalidate(
      int id, int dataType, int entryLen, List<InvalidationEntry> entries) {
    FdObject target = objects.get(id);
    if (target == null) {
      return enoent("object", id);
    }
    return Invalidation.plan(target, dataType, entryLen, entries);
  }

  // ================================================================ close

  /** Bound devices (close unbinds them first). */
  public List<Device> boundDevices() {
    return objects.live(Device.class);
  }

  /**
   * One round of close: the LIVE objects nobody uses (users == 0), in ID order — the leaves of
   * the users graph ({@code iommufd_fops_release}).
   */
  public List<FdObject> leaves() {
    List<FdObject> out = new ArrayList<>();
    for (FdObject o : objects.inState(FdObject.State.LIVE)) {
      if (o.users() == 0) {
        out.add(o);
      }
    }
    return out;
  }

  /** Last step of close: tombstones go; everything must be zero. */
  public int finishClose() {
    sva.clear();
    if (pamu.isSet() || pamu.hasDma()) {
      throw new IllegalStateException("close left the PAMU container set: " + pamu.summary());
    }
    if (!lingering.isEmpty()) {
      throw new IllegalStateException("close with areas awaiting a flush or stuck: " + lingering.keySet());
    }
    int n = objects.clearTombstones();
    if (!objects.isEmpty()) {
      throw new IllegalStateException("close stuck: objects left " + objects.inState(FdObject.State.LIVE));
    }
    checkInvariants();
    if (accounting.userLockedPages() != 0 || accounting.mmLockedPages() != 0 || livePages != 0) {
      throw new IllegalStateException(
          "close left charges user=" + accounting.userLockedPages() + " mm=" + accounting.mmLockedPages() + " pages=" + livePages);
    }
    return n;
  }

  // ================================================================ snapshot and invariants

  /** Everything observable, as values. */
  public FdSnapshot snapshot(int pendingOperations) {
    List<FdSnapshot.ObjectSnapshot> objs = new ArrayList<>();
    List<FdSnapshot.IoasSnapshot> ioases = new ArrayList<>();
    List<Integer> reservedIds = new ArrayList<>();
    for (FdObject o : objects.inState(FdObject.State.LIVE)) {
      objs.add(new FdSnapshot.ObjectSnapshot(o.id(), o.type(), o.users(), o.summary()));
      if (o instanceof Ioas ioas) {
        List<Integer> hw = new ArrayList<>();
        for (HwPagetable h : ioas.hwpts) {
          hw.add(h.id());
        }
        IoPagetable t = ioas.iopt();
        ioases.add(
            new FdSnapshot.IoasSnapshot(
                ioas.id(), t.iovaAlignment(), t.areaSnapshots(), t.reservedSnapshots(), t.allowed(), hw,
                !t.largePagesDisabled()));
      }
    }
    for (FdObject o : objects.inState(FdObject.State.RESERVED)) {
      reservedIds.add(o.id());
    }
    for (FdObject o : objects.inState(FdObject.State.DESTROYING)) {
      reservedIds.add(o.id());
    }
    List<Integer> tombstones = new ArrayList<>();
    for (FdObject o : objects.inState(FdObject.State.TOMBSTONE)) {
      tombstones.add(o.id());
    }
    long pinned = 0;
    Map<Pages, Boolean> seen = new java.util.IdentityHashMap<>();
    for (Ioas ioas : objects.live(Ioas.class)) {
      for (Area a : ioas.iopt().areas()) {
        if (seen.put(a.pages, Boolean.TRUE) == null && a.pages.pinned()) {
          pinned += a.pages.npages();
        }
      }
    }
    List<String> lingerLines = new ArrayList<>();
    for (Map.Entry<Area, Ioas> e : lingering.entrySet()) {
      Area a = e.getKey();
      if (!e.getValue().isLive() && seen.put(a.pages, Boolean.TRUE) == null && a.pages.pinned()) {
        pinned += a.pages.npages();
      }
      lingerLines.add(String.format("ioas %d [0x%x, 0x%x] %s", e.getValue().id(), a.iova, a.last,
          a.pendingFlushes > 0
              ? "awaiting " + a.pendingFlushes + (a.pendingFlushes == 1 ? " flush" : " flushes")
              : "stuck (a unit refused to unmap it)"));
    }
    pinned += pamu.pinnedPages();
    FdSnapshot.AccountingSnapshot acct =
        new FdSnapshot.AccountingSnapshot(
            accounting.limitPages(), pinned, accounting.userLockedPages(), accounting.mmLockedPages(), livePages);
    return new FdSnapshot(
        ictxId, accountMode == Accounting.Mode.MM ? UapiSettings.AccountMode.MM : UapiSettings.AccountMode.USER,
        objs, tombstones, reservedIds, ioases, acct, pendingOperations,
        List.of(vfio.summary(), pamu.summary(), sva.summary()), lingerLines,
        new FdSnapshot.UnmapCounters(deferredUnmaps, flushesCompleted, unmapRefusals));
  }

  /**
   * Cross-object invariants: areas hold pins exactly when their IOAS has a domain and is not in
   * flight; the charged pages equal the pinned pages per mode; users counts of IOASes match their
   * HWPTs. Throws IllegalStateException on a violation.
   */
  public void checkInvariants() {
    long user = 0;
    long mm = 0;
    Map<Pages, Integer> pinRefs = new java.util.IdentityHashMap<>();
    for (Ioas ioas : objects.live(Ioas.class)) {
      boolean domains = ioas.iopt().domainCount() > 0;
      for (Area a : ioas.iopt().areas()) {
        if (a.state == Area.State.MAPPED && a.holdsPin != domains) {
          throw new IllegalStateException(a + " pin " + a.holdsPin + " with domains " + domains);
        }
        if (a.holdsPin) {
          pinRefs.merge(a.pages, 1, Integer::sum);
        }
        if (a.lingering() != lingering.containsKey(a)) {
          throw new IllegalStateException(a + " lingering " + a.lingering() + " but registered " + lingering.containsKey(a));
        }
      }
    }
    for (Map.Entry<Area, Ioas> e : lingering.entrySet()) {
      Area a = e.getKey();
      if (!a.lingering()) {
        throw new IllegalStateException(a + " registered as lingering");
      }
      if (a.pendingFlushes > 0 && !a.holdsPin && e.getValue().iopt().domainCount() > 0) {
        throw new IllegalStateException(a + " awaits a flush without its pin");
      }
      if (!e.getValue().isLive() && a.holdsPin) {
        pinRefs.merge(a.pages, 1, Integer::sum); // of a destroyed IOAS: not counted above
      }
    }
    for (Map.Entry<Pages, Integer> e : pinRefs.entrySet()) {
      Pages p = e.getKey();
      if (p.pinRefs != e.getValue()) {
        throw new IllegalStateException(p + " pinRefs " + p.pinRefs + " but " + e.getValue() + " areas hold pins");
      }
      if (p.accountMode() == Accounting.Mode.USER) {
        user += p.npages();
      } else if (p.accountMode() == Accounting.Mode.MM) {
        mm += p.npages();
      }
    }
    long[] pamuCharged = pamu.chargedPages(); // VFIO-PAMU windows, pinned outside any IOAS
    user += pamuCharged[0];
    mm += pamuCharged[1];
    if (user != accounting.userLockedPages() || mm != accounting.mmLockedPages()) {
      throw new IllegalStateException(
          "charged user=" + accounting.userLockedPages() + " mm=" + accounting.mmLockedPages()
              + " but pinned user=" + user + " mm=" + mm);
    }
  }
}
