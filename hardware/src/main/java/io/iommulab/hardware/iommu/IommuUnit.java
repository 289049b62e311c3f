package io.iommulab.hardware.iommu;

import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.Rids;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.AtcSink;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.InvalidationPlan;
import io.iommulab.hardware.cache.InvalidationPlan.AtsRequester;
import io.iommulab.hardware.cache.InvalidationQueue;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.cache.SyncCompletion;
import io.iommulab.hardware.cost.ContendedResource;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;

/**
 * One page-table IOMMU unit, VT-d-like or SMMUv3-like ({@link UnitKind}): its domains, the
 * per-requester context entries and PASID tables, an {@link Iotlb}, an {@link InvalidationQueue}
 * and a page walker. The two kinds share the structure (context entry ≈ STE, PASID table ≈ CD
 * table, DID ≈ VMID/ASID) and differ where noted: reserved regions (VT-d's hardware MSI window vs
 * SMMUv3's software MSI window) and the configuration-cache descriptor of a teardown (VT-d
 * PASID-cache vs SMMUv3 CFGI_STE for SSID 0).
 *
 * <h2>Translation ({@link #translate})</h2>
 *
 * In order: context entry (CONTEXT_NOT_PRESENT), PASID range (PASID_OUT_OF_RANGE), PASID entry
 * (PASID_NOT_VALID), the hardware MSI window (RESERVED_REGION: DMA there is an interrupt; the MSI
 * path handles interrupt messages before they reach {@code translate}), the address width
 * (ADDRESS_BEYOND_WIDTH), then the IOTLB tagged (DID, PASID): a hit costs
 * {@link CostModel#iotlbHit()}; a miss walks the domain through the page walker, a
 * {@link ContendedResource}: latency = lookup + queueing behind earlier walks at the same modeled
 * time + walk cost. Then the permission check (READ_DENIED / WRITE_DENIED) and, on success, an
 * IOTLB insert. Configuration faults (context, PASID, window, width) cost 0 here: context and
 * PASID caches are not modeled; recording the fault is the caller's ({@link CostModel#faultReport()}).
 *
 * <p>Requests without PASID ({@link FaultRecord#NO_PASID}) use RID_PASID, entry 0 of the
 * requester's PASID table (VT-d scalable mode, {@code IOMMU_NO_PASID}; SMMUv3 SSID 0). IOTLB
 * entries are tagged with the table index, so RID_PASID translations carry PASID tag 0; device-TLB
 * invalidations for them are sent without PASID, as {@code devtlb_invalidation_with_pasid} does.
 *
 * <p>A cached translation that does not grant the requested access is not trusted to fault: the
 * unit re-walks and faults only if the table also denies it (inference: hardware may cache less
 * than the table grants, e.g. below).
 *
 * <p>Dirty tracking: a write through a domain with dirty tracking on sets the leaf's dirty bit
 * (stage 2 for nested domains); a read never does. To keep that true with an IOTLB, a read
 * translation is cached without WRITE, so a later write misses and walks, as a CPU TLB entry
 * without the D bit does (inference; no cited source says how VT-d or SMMUv3 cache A/D state).
 *
 * <p>Caching mode (VT-d CM=1, a vIOMMU): a not-present result of a paging domain is cached as a
 * negative IOTLB entry (prot 0, 4 KiB), so a new map is invisible until invalidated
 * ({@link #invalidateAfterMap}, the kernel's {@code cache_tag_flush_range_np}); PASID entry setup
 * then also needs PASID-cache and PASID-IOTLB invalidation, and teardown skips the device TLB
 * ({@code intel/pasid.c} {@code pasid_flush_caches}, {@code intel_pasid_tear_down_entry}).
 * Without caching mode nothing not-present is cached (only a write-buffer flush is needed).
 *
 * <h2>Attach contract</h2>
 *
 * {@link #attach}, {@link #replace} and {@link #detach} change the PASID table at once and return
 * the invalidation descriptors that retire the old translation; the caller submits them
 * ({@link #submit}) and runs the queue ({@link #processInvalidations}); until their Wait completes,
 * cached translations of the old domain may still be used by the device's ATC. The list follows
 * the VT-d PASID teardown ({@code drivers/iommu/intel/pasid.c}
 * {@code intel_pasid_tear_down_entry}): configuration-cache invalidation (PASID-cache; SMMUv3
 * CFGI_STE for SSID 0), then domain-selective IOTLB (stage-2 and nested entries), then the whole
 * device TLB when the requester has ATS and the unit is not in caching mode, then a Wait.
 *
 * <h2>Invalidation</h2>
 *
 * Plans come from {@link InvalidationPlan} (PSI widened to an aligned power-of-two span, DSI
 * beyond {@code maxAddressMask}, IOTLB first, then device TLBs, then a Wait). ATS requesters are
 * derived from the domain's attachments and the requesters' ATS capability, as the kernel's
 * cache tags are ({@code drivers/iommu/intel/cache.c}). A change to a nest parent additionally
 * flushes, for every nested child, its whole IOTLB (domain-selective on the child's DID) and the
 * whole device TLB of each of its ATS requesters, because "the affected nested translations
 * cannot be identified" ({@code cache_tag_flush_range}, CACHE_TAG_NESTING_DEVTLB). The kernel
 * issues a PSI with the child's DID and the stage-2 range and relies on hardware to match
 * combined entries by their stage-2 address; this model's IOTLB is tagged by input address only,
 * so it flushes the child's DID whole.
 *
 * <h2>Invariants</h2>
 *
 * <ul>
 *   <li>Every PASID entry points at a live domain of this unit, and that domain lists the entry
 *       among its attachments.
 *   <li>A NEST_PARENT domain with nested children cannot be freed; a domain with attachments
 *       cannot be freed; a requester with present PASID entries cannot be removed.
 *   <li>No IOTLB entry survives a completed invalidation that covered it (the queue applies IOTLB
 *       descriptors before the Wait that follows them completes); freeing a domain drops its
 *       entries at once, before its id can be reused.
 *   <li>Domain ids are unique among live domains, in {@code [1, domainIds)}; id 0 is reserved
 *       (SMMUv3 VMID 0 = bypass; VT-d DID 0 is reserved in caching mode and kept free here).
 *   <li>Every method returning an {@link Outcome} leaves the unit unchanged when it returns an
 *       error ({@link #snapshot()} is equal before and after).
 * </ul>
 *
 * <p>Single-threaded: the unit's actor is its lock. {@link #translate} and {@link #atsTranslate}
 * allocate nothing.
 */
public final class IommuUnit {

  /** PASID used by requests without PASID (VT-d RID_PASID / IOMMU_NO_PASID, SMMUv3 SSID 0). */
  public static final int RID_PASID = 0;

  /** Injector site consulted before allocating a domain. */
  public static final String SITE_DOMAIN = "iommu.domain";

  private static final int MAX_RID = 0xFFFF;

  private final int unitId;
  private final PagingUnitSettings settings;
  private final CostModel cost;
  private final FaultInjector injector;
  private final List<PageSize> pageSizes;
  private final Iotlb iotlb;
  private final InvalidationQueue queue;
  private final ContendedResource walker;
  /** Cross-check every IOTLB hit against the page table (an oracle; no modeled cost). */
  private boolean staleHitChecks;
  private final Translation staleScratch = new Translation();
  private boolean lastHitStale;
  private int lastStaleDomainId;
  private int lastStalePasid;
  private final List<ReservedRegion> reservedRegions;
  /** The hardware interrupt window (VT-d), or null when MSIs are mapped by software (SMMUv3). */
  private final ReservedRegion hwMsiWindow;

  private final Domain[] domains;
  private final BitSet usedIds = new BitSet();
  private final ContextEntry[] contexts = new ContextEntry[MAX_RID + 1];
  private long nextWaitToken = 1;

  /**
   * @param unitId index of the unit in the topology (fault records carry it)
   * @param settings capabilities and geometry
   * @param cost modeled latencies
   * @param seed seeds the IOTLB's replacement policy
   * @param injector consulted at {@value #SITE_DOMAIN}, {@value PasidTable#SITE} and
   *     {@value IoPageTable#SITE_NODE}
   */
  public IommuUnit(
      int unitId,
      PagingUnitSettings settings,
      CostModel cost,
      long seed,
      FaultInjector injector) {
    this.unitId = unitId;
    this.settings = Objects.requireNonNull(settings, "settings");
    this.cost = Objects.requireNonNull(cost, "cost");
    this.injector = Objects.requireNonNull(injector, "injector");
    if (!settings.kind().isPaging()) {
      throw new IllegalArgumentException("unit " + settings.name() + " is not a paging unit");
    }
    if (settings.pasidBits() < 0 || settings.pasidBits() > PasidTable.MAX_PASID_BITS) {
      throw new IllegalArgumentException("PASID width " + settings.pasidBits());
    }
    if (settings.domainIds() < 2 || settings.domainIds() > 1 << 16) {
      throw new IllegalArgumentException("domain ids " + settings.domainIds() + " not in [2, 65536]");
    }
    List<PageSize> sizes = new ArrayList<>();
    for (long bytes : settings.pageSizes()) {
      sizes.add(PageSize.ofBytes(bytes));
    }
    // Fail fast on an unsupported geometry: the table constructor validates it.
    new IoPageTable(settings.addressWidth(), sizes, FaultInjector.NONE);
    this.pageSizes = List.copyOf(sizes);
    this.iotlb = new Iotlb(settings.iotlb(), seed);
    this.queue =
        new InvalidationQueue(settings.invalidationQueueDepth(), settings.maxAddressMask(), cost);
    this.walker = new ContendedResource(settings.name() + ".page-walker");
    this.domains = new Domain[settings.domainIds()];
    this.usedIds.set(0);
    if (settings.kind() == UnitKind.VTD) {
      this.reservedRegions = List.of(ReservedRegion.VTD_MSI);
      this.hwMsiWindow = ReservedRegion.VTD_MSI;
    } else {
      this.reservedRegions = List.of(ReservedRegion.SMMUV3_SW_MSI);
      this.hwMsiWindow = null;
    }
  }

  // ---------------------------------------------------------------- capabilities

  public int unitId() {
    return unitId;
  }

  public UnitKind kind() {
    return settings.kind();
  }

  public PagingUnitSettings settings() {
    return settings;
  }

  public String name() {
    return settings.name();
  }

  /** ECAP.SC: can enforce cache coherency (IOMMU_CAP_ENFORCE_CACHE_COHERENCY). */
  public boolean snoopControl() {
    return settings.snoopControl();
  }

  public boolean nesting() {
    return settings.nesting();
  }

  /** IOMMU_CAP_DIRTY_TRACKING. */
  public boolean dirtyTracking() {
    return settings.dirtyTracking();
  }

  public boolean msiIsolation() {
    return settings.msiIsolation();
  }

  public boolean cachingMode() {
    return settings.cachingMode();
  }

  public int pasidBits() {
    return settings.pasidBits();
  }

  public int addressWidth() {
    return settings.addressWidth();
  }

  public int levels() {
    return settings.levels();
  }

  /** Supported page sizes, ascending ({@code pgsize_bitmap}). */
  public List<PageSize> pageSizes() {
    return pageSizes;
  }

  /** Regions every device behind this unit must keep out of its IOVA space. */
  public List<ReservedRegion> reservedRegions() {
    return reservedRegions;
  }

  public CostModel costModel() {
    return cost;
  }

  /** The page walker, for queueing statistics. */
  public ContendedResource walker() {
    return walker;
  }

  public int iotlbSize() {
    return iotlb.size();
  }

  /** Invalidation descriptors submitted and not yet executed. */
  public int queuePending() {
    return queue.pending();
  }

  /** The IOTLB, for inspection by tests and metrics; mutate it only through the queue. */
  public Iotlb iotlb() {
    return iotlb;
  }

  // ---------------------------------------------------------------- domains

  /**
   * Allocates a paging domain (iommufd HWPT_ALLOC of a PAGING hwpt).
   *
   * @return the domain; EOPNOTSUPP (DIRTY_TRACKING without the capability, NEST_PARENT without
   *     nesting), ENOMEM (injected at {@value #SITE_DOMAIN}), ENOSPC (domain ids exhausted)
   */
  public Outcome<PagingDomain> allocPagingDomain(boolean nestParent, boolean dirtyTracking) {
    if (dirtyTracking && !settings.dirtyTracking()) {
      return Outcome.err(
          Errno.EOPNOTSUPP, "dirtyTracking: unit %s has no dirty tracking capability", name());
    }
    if (nestParent && !settings.nesting()) {
      return Outcome.err(Errno.EOPNOTSUPP, "nestParent: unit %s does not support nesting", name());
    }
    Outcome<Integer> id = reserveId();
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    IoPageTable table = new IoPageTable(settings.addressWidth(), pageSizes, injector);
    PagingDomain d = new PagingDomain(id.value(), this, table, nestParent, dirtyTracking);
    domains[d.id()] = d;
    return Outcome.ok(d);
  }

  /**
   * Allocates a nested domain over {@code parent} with an empty guest stage-1 table.
   *
   * @return the domain; EOPNOTSUPP (no nesting), EINVAL (parent of another unit, freed, or not
   *     NEST_PARENT), ENOMEM, ENOSPC
   */
  public Outcome<NestedDomain> allocNestedDomain(PagingDomain parent) {
    Objects.requireNonNull(parent, "parent");
    if (!settings.nesting()) {
      return Outcome.err(Errno.EOPNOTSUPP, "unit %s does not support nesting", name());
    }
    if (parent.unit() != this || !parent.isLive()) {
      return Outcome.err(
          Errno.EINVAL, "parent: domain %d is not a live domain of unit %s", parent.id(), name());
    }
    if (!parent.isNestParent()) {
      return Outcome.err(
          Errno.EINVAL, "parent: domain %d was not allocated with NEST_PARENT", parent.id());
    }
    Outcome<Integer> id = reserveId();
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    IoPageTable stage1 = new IoPageTable(settings.addressWidth(), pageSizes, injector);
    NestedDomain d = new NestedDomain(id.value(), this, parent, stage1);
    domains[d.id()] = d;
    parent.addChild();
    return Outcome.ok(d);
  }

  /** Checks the injector and takes the lowest free id; nothing is taken on error. */
  private Outcome<Integer> reserveId() {
    if (injector.shouldFail(SITE_DOMAIN)) {
      return Outcome.err(Errno.ENOMEM, "domain allocation failed (%s)", SITE_DOMAIN);
    }
    int id = usedIds.nextClearBit(1);
    if (id >= domains.length) {
      return Outcome.err(
          Errno.ENOSPC, "unit %s: all %d domain ids in use", name(), domains.length - 1);
    }
    usedIds.set(id);
    return Outcome.ok(id);
  }

  /**
   * Frees a domain: drops its IOTLB entries, releases its table(s) and recycles its id.
   *
   * @return OK; EINVAL (domain of another unit), ENOENT (already freed), EBUSY (attached at any
   *     RID/PASID, or a nest parent with nested children)
   */
  public Outcome<Void> freeDomain(Domain d) {
    Objects.requireNonNull(d, "domain");
    if (d.unit() != this) {
      return Outcome.err(Errno.EINVAL, "domain %d: belongs to another unit", d.id());
    }
    if (!d.isLive()) {
      return Outcome.err(Errno.ENOENT, "domain %d: already freed", d.id());
    }
    if (d.isAttached()) {
      Domain.Attachment a = d.attachmentsView().get(0);
      return Outcome.err(
          Errno.EBUSY,
          "domain %d: attached at %s pasid %d (and %d more)",
          d.id(),
          Rids.format(a.rid()),
          a.pasid(),
          d.attachmentsView().size() - 1);
    }
    if (d instanceof PagingDomain p && p.nestedChildren() > 0) {
      return Outcome.err(
          Errno.EBUSY, "domain %d: parent of %d nested domains", d.id(), p.nestedChildren());
    }
    iotlb.invalidateDomain(d.id());
    if (d instanceof NestedDomain n) {
      n.parent().removeChild();
    } else {
      ((PagingDomain) d).releaseTable();
    }
    d.markFreed();
    domains[d.id()] = null;
    usedIds.clear(d.id());
    return Outcome.OK;
  }

  /** The live domain with this id, or null. */
  public Domain domain(int id) {
    return id > 0 && id < domains.length ? domains[id] : null;
  }

  /** Live domains, by id. */
  public List<Domain> domains() {
    List<Domain> out = new ArrayList<>();
    for (Domain d : domains) {
      if (d != null) {
        out.add(d);
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- devices

  /** Probes a requester without ATS; see {@link #addDevice(int, int, boolean)}. */
  public Outcome<Void> addDevice(int rid, int pasidBits) {
    return addDevice(rid, pasidBits, false);
  }

  /**
   * Probes a requester: creates its context entry and PASID directory, sized for
   * {@code min(pasidBits, unit PASID width)} bits ({@code intel_pasid_alloc_table}).
   *
   * @param ats the function has ATS enabled (device-TLB invalidations are sent to it)
   * @return OK; EINVAL (rid outside 16 bits, pasidBits outside [0, 20]), EEXIST (already probed),
   *     ENOMEM (directory allocation injected at {@value PasidTable#SITE})
   */
  public Outcome<Void> addDevice(int rid, int pasidBits, boolean ats) {
    if (rid < 0 || rid > MAX_RID) {
      return Outcome.err(Errno.EINVAL, "rid %d: outside 16 bits", rid);
    }
    if (pasidBits < 0 || pasidBits > PasidTable.MAX_PASID_BITS) {
      return Outcome.err(Errno.EINVAL, "pasidBits %d: not in [0, 20]", pasidBits);
    }
    if (contexts[rid] != null) {
      return Outcome.err(Errno.EEXIST, "rid %s: already probed", Rids.format(rid));
    }
    Outcome<PasidTable> table =
        PasidTable.allocate(Math.min(pasidBits, settings.pasidBits()), injector);
    if (!table.isOk()) {
      return ((Outcome.Err<PasidTable>) table).cast();
    }
    contexts[rid] = new ContextEntry(rid, pasidBits, ats, table.value());
    return Outcome.OK;
  }

  /**
   * Releases a requester: drops its context entry and PASID table.
   *
   * @return OK; ENODEV (not probed), EBUSY (a PASID is still attached)
   */
  public Outcome<Void> removeDevice(int rid) {
    ContextEntry ctx = contextOrNull(rid);
    if (ctx == null) {
      return Outcome.err(Errno.ENODEV, "rid %d: no such device on unit %s", rid, name());
    }
    if (ctx.pasidTable().present() > 0) {
      return Outcome.err(
          Errno.EBUSY,
          "rid %s: %d PASIDs still attached",
          Rids.format(rid),
          ctx.pasidTable().present());
    }
    contexts[rid] = null;
    return Outcome.OK;
  }

  /** The context entry of {@code rid}, or null when not probed. */
  public ContextEntry contextEntry(int rid) {
    return contextOrNull(rid);
  }

  private ContextEntry contextOrNull(int rid) {
    return rid < 0 || rid > MAX_RID ? null : contexts[rid];
  }

  // ---------------------------------------------------------------- attach

  /**
   * Attaches {@code domain} at (rid, pasid), installing a PASID entry.
   *
   * @param pasid a PASID, or {@link FaultRecord#NO_PASID} for RID_PASID
   * @return the descriptors to submit before the entry is relied upon (empty unless caching mode:
   *     PASID-cache, PASID-IOTLB, Wait); EINVAL (domain of another unit or freed, PASID beyond
   *     min(device, unit) width), ENODEV (rid not probed), EBUSY (already attached at that PASID:
   *     use replace), ENOMEM (PASID leaf table, injected at {@value PasidTable#SITE})
   */
  public Outcome<List<InvDescriptor>> attach(int rid, int pasid, Domain domain) {
    Outcome<Void> valid = checkDomainArg(domain, "domain");
    if (valid != null) {
      return ((Outcome.Err<Void>) valid).cast();
    }
    ContextEntry ctx = contextOrNull(rid);
    if (ctx == null) {
      return Outcome.err(Errno.ENODEV, "rid %d: no such device on unit %s", rid, name());
    }
    int p = pasid == FaultRecord.NO_PASID ? RID_PASID : pasid;
    if (p < 0 || p >= ctx.pasidTable().limit()) {
      return Outcome.err(
          Errno.EINVAL,
          "pasid %d: beyond the %d-bit PASID width of %s on unit %s",
          pasid,
          ctx.pasidTable().width(),
          Rids.format(rid),
          name());
    }
    if (ctx.pasidTable().get(p) != null) {
      return Outcome.err(
          Errno.EBUSY,
          "rid %s pasid %d: already attached to domain %d (use replace)",
          Rids.format(rid),
          p,
          ctx.pasidTable().get(p).domainId());
    }
    checkSnoopAttachable(domain);
    Outcome<Void> leaf = ctx.pasidTable().ensureLeaf(p, injector);
    if (!leaf.isOk()) {
      return ((Outcome.Err<Void>) leaf).cast();
    }
    ctx.pasidTable().set(p, PasidEntry.of(p, domain));
    domain.addAttachment(rid, p, ctx.ats());
    if (!settings.cachingMode()) {
      return Outcome.ok(List.of());
    }
    List<InvDescriptor> plan = new ArrayList<>();
    plan.add(new InvDescriptor.PasidCache(domain.id(), p));
    plan.addAll(InvalidationPlan.pasid(domain.id(), p, List.of(), takeToken()));
    return Outcome.ok(List.copyOf(plan));
  }

  /**
   * Moves (rid, pasid) from its current domain to {@code newDomain} without passing through
   * blocked DMA.
   *
   * @return the teardown descriptors for the old domain (empty when it is the same domain: no-op);
   *     EINVAL (new domain of another unit or freed, PASID out of range, not attached), ENODEV
   */
  public Outcome<List<InvDescriptor>> replace(int rid, int pasid, Domain newDomain) {
    Outcome<Void> valid = checkDomainArg(newDomain, "newDomain");
    if (valid != null) {
      return ((Outcome.Err<Void>) valid).cast();
    }
    Outcome<PasidEntry> cur = attachedEntry(rid, pasid);
    if (!cur.isOk()) {
      return ((Outcome.Err<PasidEntry>) cur).cast();
    }
    PasidEntry old = cur.value();
    if (old.domain() == newDomain) {
      return Outcome.ok(List.of());
    }
    checkSnoopAttachable(newDomain);
    int p = old.pasid();
    ContextEntry ctx = contexts[rid];
    ctx.pasidTable().set(p, PasidEntry.of(p, newDomain));
    old.domain().removeAttachment(rid, p, ctx.ats());
    newDomain.addAttachment(rid, p, ctx.ats());
    return Outcome.ok(teardown(ctx, old));
  }

  /**
   * Clears the PASID entry at (rid, pasid): DMA from it is blocked (PASID_NOT_VALID) from now on.
   *
   * @return the teardown descriptors for the old domain; EINVAL (PASID out of range, not
   *     attached), ENODEV (rid not probed)
   */
  public Outcome<List<InvDescriptor>> detach(int rid, int pasid) {
    Outcome<PasidEntry> cur = attachedEntry(rid, pasid);
    if (!cur.isOk()) {
      return ((Outcome.Err<PasidEntry>) cur).cast();
    }
    PasidEntry old = cur.value();
    ContextEntry ctx = contexts[rid];
    ctx.pasidTable().clear(old.pasid());
    old.domain().removeAttachment(rid, old.pasid(), ctx.ats());
    return Outcome.ok(teardown(ctx, old));
  }

  /** The domain attached at (rid, pasid), or null. */
  public Domain attachedDomain(int rid, int pasid) {
    ContextEntry ctx = contextOrNull(rid);
    int p = pasid == FaultRecord.NO_PASID ? RID_PASID : pasid;
    if (ctx == null || p < 0 || p >= ctx.pasidTable().limit()) {
      return null;
    }
    PasidEntry e = ctx.pasidTable().get(p);
    return e == null ? null : e.domain();
  }

  private Outcome<PasidEntry> attachedEntry(int rid, int pasid) {
    ContextEntry ctx = contextOrNull(rid);
    if (ctx == null) {
      return Outcome.err(Errno.ENODEV, "rid %d: no such device on unit %s", rid, name());
    }
    int p = pasid == FaultRecord.NO_PASID ? RID_PASID : pasid;
    if (p < 0 || p >= ctx.pasidTable().limit()) {
      return Outcome.err(
          Errno.EINVAL,
          "pasid %d: beyond the %d-bit PASID width of %s",
          pasid,
          ctx.pasidTable().width(),
          Rids.format(rid));
    }
    PasidEntry e = ctx.pasidTable().get(p);
    if (e == null) {
      return Outcome.err(
          Errno.EINVAL, "rid %s pasid %d: not attached", Rids.format(rid), p);
    }
    return Outcome.ok(e);
  }

  private <T> Outcome<T> checkDomainArg(Domain d, String name) {
    Objects.requireNonNull(d, name);
    if (d.unit() != this || !d.isLive()) {
      return Outcome.err(
          Errno.EINVAL, "%s: domain %d is not a live domain of unit %s", name, d.id(), name());
    }
    return null;
  }

  /**
   * A force-snoop domain cannot attach to a unit without snoop control: EINVAL in
   * {@code intel/iommu.c} {@code paging_domain_compatible} (formerly
   * {@code prepare_domain_attach_device}). Domains belong to the unit that allocated them and
   * enforcing is refused without snoop control, so an attachable domain always passes: a failure
   * here is a broken invariant.
   */
  private void checkSnoopAttachable(Domain d) {
    PagingDomain s2 = d instanceof NestedDomain n ? n.parent() : (PagingDomain) d;
    if (s2.isCacheCoherencyEnforced() && !settings.snoopControl()) {
      throw new IllegalStateException(
          "domain " + s2.id() + " enforces snooping on unit " + name() + " without SC");
    }
  }

  /** VT-d PASID teardown / SMMUv3 STE-CD teardown for the entry {@code old} of {@code ctx}. */
  private List<InvDescriptor> teardown(ContextEntry ctx, PasidEntry old) {
    List<InvDescriptor> plan = new ArrayList<>();
    if (settings.kind() == UnitKind.SMMUV3 && old.pasid() == RID_PASID) {
      plan.add(new InvDescriptor.ContextCache(ctx.rid()));
    } else {
      plan.add(new InvDescriptor.PasidCache(old.domainId(), old.pasid()));
    }
    List<AtsRequester> ats =
        ctx.ats() && !settings.cachingMode()
            ? List.of(new AtsRequester(ctx.rid(), atcPasid(old.pasid())))
            : List.of();
    plan.addAll(InvalidationPlan.domain(old.domainId(), ats, takeToken()));
    return List.copyOf(plan);
  }

  /** The PASID a device-TLB invalidation carries: none for RID_PASID. */
  private static int atcPasid(int pasid) {
    return pasid == RID_PASID ? FaultRecord.NO_PASID : pasid;
  }

  private long takeToken() {
    return nextWaitToken++;
  }

  // ---------------------------------------------------------------- translation

  /**
   * Turns the stale-hit oracle on or off. On, every IOTLB hit of a paging domain is compared with
   * what a walk of the current table gives (a read walk: no accessed or dirty bit is set, no
   * modeled time is charged, the IOTLB is not touched): a hit whose entry is gone or maps another
   * address or fewer permissions is <em>stale</em> ({@link #lastHitStale()} after the call). A
   * stale hit is legal only while an invalidation covering it is still pending — what the owner
   * of the invalidation queue decides. Hits of nested domains are not judged: their stage 1 is the
   * guest's, which must invalidate it itself (a missing guest invalidation is the guest's bug).
   */
  public void setStaleHitChecks(boolean on) {
    this.staleHitChecks = on;
  }

  public boolean staleHitChecks() {
    return staleHitChecks;
  }

  /** Whether the last {@link #translate} was served by a stale IOTLB entry (checks on). */
  public boolean lastHitStale() {
    return lastHitStale;
  }

  /** The domain id (IOTLB tag) of the last stale hit. */
  public int lastStaleDomainId() {
    return lastStaleDomainId;
  }

  /** The PASID tag of the last stale hit ({@code RID_PASID} for requests without PASID). */
  public int lastStalePasid() {
    return lastStalePasid;
  }

  /** Whether a walk of {@code domain} now disagrees with the IOTLB's answer in {@code hit}. */
  private boolean stale(Domain domain, long iova, int requested, Translation hit) {
    Translation w = staleScratch.reset();
    if (domain.walk(iova, false, cost, w) != null) {
      return true;
    }
    return w.hpa != hit.hpa || !Access.permits(w.prot, requested);
  }

  /**
   * Translates one DMA request; see the class comment for the order of checks and the cost.
   * Allocates nothing; {@code out} is reset first.
   *
   * @param pasid the request's PASID or {@link FaultRecord#NO_PASID}
   * @param access {@link Access} bits requested (PRIV is not checked: tables carry no U/S bit)
   * @param now modeled arrival time, ns
   */
  public void translate(int rid, int pasid, long iova, int access, long now, Translation out) {
    out.reset();
    lastHitStale = false;
    ContextEntry ctx = rid < 0 || rid > MAX_RID ? null : contexts[rid];
    if (ctx == null) {
      out.fail(FaultReason.CONTEXT_NOT_PRESENT, 0);
      return;
    }
    int p = pasid == FaultRecord.NO_PASID ? RID_PASID : pasid;
    PasidTable table = ctx.pasidTable();
    if (p < 0 || p >= table.limit()) {
      out.fail(FaultReason.PASID_OUT_OF_RANGE, 0);
      return;
    }
    PasidEntry entry = table.get(p);
    if (entry == null) {
      out.fail(FaultReason.PASID_NOT_VALID, 0);
      return;
    }
    if (hwMsiWindow != null && hwMsiWindow.contains(iova)) {
      out.fail(FaultReason.RESERVED_REGION, 0);
      return;
    }
    if ((iova >>> settings.addressWidth()) != 0) {
      out.fail(FaultReason.ADDRESS_BEYOND_WIDTH, 0);
      return;
    }
    Domain domain = entry.domain();
    int did = entry.domainId();
    int requested = access & (Access.READ | Access.WRITE | Access.EXEC);
    boolean write = (access & Access.WRITE) != 0;
    long lookup = cost.iotlbHit();
    if (iotlb.lookup(did, p, iova, out)) {
      if ((out.prot & (Access.READ | Access.WRITE)) == 0) {
        // Caching mode's negative entry: the cached not-present result stands.
        out.fail(FaultReason.NOT_PRESENT, lookup);
        return;
      }
      if (Access.permits(out.prot, requested)) {
        out.latencyNs = lookup;
        out.levels = 0;
        if (staleHitChecks && domain instanceof PagingDomain && stale(domain, iova, requested, out)) {
          lastHitStale = true;
          lastStaleDomainId = did;
          lastStalePasid = p;
        }
        return;
      }
    }
    FaultReason reason = domain.walk(iova, write, cost, out);
    long latency = walker.acquire(now + lookup, out.latencyNs) - now;
    if (reason != null) {
      if (reason == FaultReason.NOT_PRESENT
          && settings.cachingMode()
          && domain instanceof PagingDomain) {
        iotlb.insert(did, p, iova, 0, PageSize.SIZE_4K, 0);
      }
      out.fail(reason, latency);
      return;
    }
    if (!Access.permits(out.prot, requested)) {
      FaultReason denied =
          (requested & ~out.prot & (Access.READ | Access.EXEC)) != 0
              ? FaultReason.READ_DENIED
              : FaultReason.WRITE_DENIED;
      out.fail(denied, latency);
      return;
    }
    int cached = out.prot;
    if (!write && domain.dirtyTrackingActive()) {
      cached &= ~Access.WRITE;
    }
    if ((cached & (Access.READ | Access.WRITE)) != 0) {
      iotlb.insert(did, p, iova, out.hpa, out.pageSize, cached);
    }
    out.latencyNs = latency;
  }

  /**
   * Serves an ATS translation request from a device: the same lookup as {@link #translate} plus
   * the PCIe round trip ({@link CostModel#atsTranslation()}). On success {@code out} is what the
   * device caches in its ATC. A failed result is the completion with R=W=0 (the device may then
   * issue a page request), not a fault record.
   *
   * @throws IllegalStateException when the requester has no ATS: a device-model bug
   */
  public void atsTranslate(int rid, int pasid, long iova, int access, long now, Translation out) {
    ContextEntry ctx = rid < 0 || rid > MAX_RID ? null : contexts[rid];
    if (ctx != null && !ctx.ats()) {
      throw new IllegalStateException(Rids.format(rid) + " issued an ATS request without ATS");
    }
    translate(rid, pasid, iova, access, now, out);
    out.latencyNs += cost.atsTranslation();
  }

  // ---------------------------------------------------------------- invalidation

  /**
   * Plans the invalidation of {@code [iova, iova + length)} of {@code domain} after its table
   * changed (unmap, permission change, or a guest stage-1 change of a nested domain), without
   * submitting it: IOTLB page-selective (or domain/PASID-selective beyond {@code maxAddressMask}),
   * device TLBs of the domain's ATS requesters for the same span, for a nest parent the whole
   * IOTLB and device TLBs of every nested child, then a Wait.
   *
   * @param pasid {@link Iotlb#ANY_PASID} for every attachment (stage-2 changes), or one PASID
   *     (0 = RID_PASID)
   * @return the plan; EINVAL (domain of another unit or freed, zero length, bad PASID
   *     selector), EOVERFLOW (the range wraps 2^64)
   */
  public Outcome<List<InvDescriptor>> planRange(Domain domain, int pasid, long iova, long length) {
    Outcome<List<InvDescriptor>> bad = checkRangeArgs(domain, pasid, iova, length);
    if (bad != null) {
      return bad;
    }
    List<AtsRequester> ats = atsRequesters(domain, pasid);
    List<InvDescriptor> plan =
        InvalidationPlan.range(
            domain.id(),
            pasid == FaultRecord.NO_PASID ? RID_PASID : pasid,
            iova,
            length,
            settings.maxAddressMask(),
            ats,
            takeToken());
    if (!(domain instanceof PagingDomain parent) || parent.nestedChildren() == 0) {
      return Outcome.ok(plan);
    }
    // A stage-2 change: every nested child's combined translations are suspect.
    List<InvDescriptor> iotlbPart = new ArrayList<>();
    List<InvDescriptor> atcPart = new ArrayList<>();
    InvDescriptor waitDesc = null;
    for (InvDescriptor x : plan) {
      if (x instanceof InvDescriptor.DevTlb) {
        atcPart.add(x);
      } else if (x instanceof InvDescriptor.Wait) {
        waitDesc = x;
      } else {
        iotlbPart.add(x);
      }
    }
    for (Domain d : domains) {
      if (d instanceof NestedDomain child && child.parent() == parent) {
        iotlbPart.add(new InvDescriptor.IotlbDomain(child.id()));
        for (AtsRequester r : atsRequesters(child, Iotlb.ANY_PASID)) {
          atcPart.add(new InvDescriptor.DevTlb(r.rid(), r.pasid(), 0, InvalidationPlan.WHOLE_SPACE_MASK));
        }
      }
    }
    List<InvDescriptor> out = new ArrayList<>(iotlbPart);
    out.addAll(atcPart);
    out.add(waitDesc);
    return Outcome.ok(List.copyOf(out));
  }

  /**
   * Plans and submits {@link #planRange}.
   *
   * @return the token of the plan's Wait; the errnos of {@link #planRange}, or ENOSPC when the
   *     queue cannot take the whole plan (nothing queued: process the queue and retry)
   */
  public Outcome<Long> invalidateRange(Domain domain, int pasid, long iova, long length) {
    long tokenBefore = nextWaitToken;
    Outcome<List<InvDescriptor>> plan = planRange(domain, pasid, iova, length);
    if (!plan.isOk()) {
      return ((Outcome.Err<List<InvDescriptor>>) plan).cast();
    }
    Outcome<Long> r = submit(plan.value());
    if (!r.isOk()) {
      nextWaitToken = tokenBefore;
    }
    return r;
  }

  /**
   * What a new mapping of a paging domain needs before the device may rely on it: nothing
   * (returns 0) unless the unit is in caching mode, where not-present entries may be cached and
   * the range is invalidated in the IOTLB ({@code cache_tag_flush_range_np}: no device TLB, it
   * cannot have cached a not-present result).
   *
   * @return the Wait token, or 0 when nothing was submitted; errnos as {@link #invalidateRange}
   */
  public Outcome<Long> invalidateAfterMap(Domain domain, long iova, long length) {
    Outcome<List<InvDescriptor>> bad = checkRangeArgs(domain, Iotlb.ANY_PASID, iova, length);
    if (bad != null) {
      return ((Outcome.Err<List<InvDescriptor>>) bad).cast();
    }
    if (!settings.cachingMode() || !(domain instanceof PagingDomain)) {
      return Outcome.ok(0L);
    }
    long tokenBefore = nextWaitToken;
    List<InvDescriptor> plan =
        InvalidationPlan.range(
            domain.id(), Iotlb.ANY_PASID, iova, length, settings.maxAddressMask(), List.of(),
            takeToken());
    Outcome<Long> r = submit(plan);
    if (!r.isOk()) {
      nextWaitToken = tokenBefore;
    }
    return r;
  }

  private <T> Outcome<T> checkRangeArgs(Domain domain, int pasid, long iova, long length) {
    Outcome<T> bad = checkDomainArg(domain, "domain");
    if (bad != null) {
      return bad;
    }
    if (pasid != Iotlb.ANY_PASID
        && pasid != FaultRecord.NO_PASID
        && (pasid < 0 || pasid >= 1 << PasidTable.MAX_PASID_BITS)) {
      return Outcome.err(Errno.EINVAL, "pasid %d: not a PASID selector", pasid);
    }
    if (length == 0) {
      return Outcome.err(Errno.EINVAL, "length 0: nothing to invalidate");
    }
    if (Long.compareUnsigned(iova + (length - 1), iova) < 0) {
      return Outcome.err(
          Errno.EOVERFLOW, "iova 0x%x + length 0x%x: wraps past 2^64", iova, length);
    }
    return null;
  }

  /** ATS requesters attached to {@code domain} (at {@code pasid}, or at any PASID). */
  private List<AtsRequester> atsRequesters(Domain domain, int pasid) {
    if (domain.atsAttachments() == 0) {
      // Most domains: no device TLB to find, so no attachment and context entry to read.
      return List.of();
    }
    int p = pasid == FaultRecord.NO_PASID ? RID_PASID : pasid;
    List<AtsRequester> out = new ArrayList<>();
    for (Domain.Attachment a : domain.attachmentsView()) {
      if (pasid != Iotlb.ANY_PASID && a.pasid() != p) {
        continue;
      }
      ContextEntry ctx = contexts[a.rid()];
      if (ctx.ats()) {
        out.add(new AtsRequester(a.rid(), atcPasid(a.pasid())));
      }
    }
    return out;
  }

  /**
   * Submits a batch (a plan from this unit, or the list attach/replace/detach returned).
   *
   * @return the token of the batch's last Wait, or 0 when it has none (an empty batch is OK);
   *     EINVAL (malformed descriptor), ENOSPC (does not fit; nothing queued)
   */
  public Outcome<Long> submit(List<InvDescriptor> batch) {
    if (batch.isEmpty()) {
      return Outcome.ok(0L);
    }
    Outcome<Void> r = queue.submit(batch);
    if (!r.isOk()) {
      return ((Outcome.Err<Void>) r).cast();
    }
    long token = 0;
    for (InvDescriptor d : batch) {
      if (d instanceof InvDescriptor.Wait w) {
        token = w.token();
      }
    }
    return Outcome.ok(token);
  }

  /**
   * Runs every pending descriptor in order: IOTLB descriptors against this unit's IOTLB,
   * device-TLB descriptors handed to {@code atc}.
   *
   * @return one completion per Wait executed
   */
  public List<SyncCompletion> processInvalidations(long now, AtcSink atc) {
    return queue.process(now, iotlb, atc);
  }

  // ---------------------------------------------------------------- snapshot

  /** A context entry as a value. */
  public record ContextSnapshot(int rid, int devicePasidBits, int pasidWidth, boolean ats, int pasidLeaves) {}

  /** A PASID entry as a value. */
  public record PasidSnapshot(
      int rid, int pasid, int domainId, PasidEntry.Pgtt pgtt, boolean pageSnoop, boolean pageWalkSnoop) {}

  /** A domain as a value: flags, attachment count, and its table's leaves (stage 1 for nested). */
  public record DomainSnapshot(
      int id,
      PasidEntry.Pgtt pgtt,
      int parentId,
      boolean nestParent,
      boolean dirtyTrackingCapable,
      boolean dirtyTrackingEnabled,
      boolean forceSnoop,
      int attachments,
      int nestedChildren,
      IoPageTable.Snapshot table) {}

  /** Everything observable about a unit, for "a refused call changed nothing" assertions. */
  public record Snapshot(
      List<ContextSnapshot> contexts,
      List<PasidSnapshot> pasidEntries,
      List<DomainSnapshot> domains,
      int iotlbSize,
      int queuePending) {
    public Snapshot {
      contexts = List.copyOf(contexts);
      pasidEntries = List.copyOf(pasidEntries);
      domains = List.copyOf(domains);
    }
  }

  public Snapshot snapshot() {
    List<ContextSnapshot> ctxs = new ArrayList<>();
    List<PasidSnapshot> entries = new ArrayList<>();
    for (ContextEntry c : contexts) {
      if (c == null) {
        continue;
      }
      PasidTable t = c.pasidTable();
      ctxs.add(new ContextSnapshot(c.rid(), c.devicePasidBits(), t.width(), c.ats(), t.leaves()));
      for (PasidEntry e : t.entries()) {
        entries.add(
            new PasidSnapshot(
                c.rid(), e.pasid(), e.domainId(), e.pgtt(), e.pageSnoop(), e.pageWalkSnoop()));
      }
    }
    List<DomainSnapshot> ds = new ArrayList<>();
    for (Domain d : domains) {
      if (d instanceof PagingDomain p) {
        ds.add(
            new DomainSnapshot(
                p.id(), p.pgtt(), 0, p.isNestParent(), p.isDirtyTrackingCapable(),
                p.isDirtyTrackingEnabled(), p.isCacheCoherencyEnforced(),
                p.attachmentsView().size(), p.nestedChildren(), p.tableSnapshot()));
      } else if (d instanceof NestedDomain n) {
        ds.add(
            new DomainSnapshot(
                n.id(), n.pgtt(), n.parent().id(), false, false, false, false,
                n.attachmentsView().size(), 0, n.stage1().snapshot()));
      }
    }
    return new Snapshot(ctxs, entries, ds, iotlb.size(), queue.pending());
  }

  /**
   * Checks the cross-object invariants (for tests): PASID entries point at live domains of this
   * unit that list them, attachment lists match the entries, parent child counts match, ids are
   * unique and recorded. Throws IllegalStateException on a violation.
   */
  public void checkInvariants() {
    int entries = 0;
    for (ContextEntry c : contexts) {
      if (c == null) {
        continue;
      }
      for (PasidEntry e : c.pasidTable().entries()) {
        entries++;
        Domain d = e.domain();
        if (!d.isLive() || d.unit() != this || domains[d.id()] != d) {
          throw new IllegalStateException("PASID entry " + e + " points at a dead or foreign domain");
        }
        if (!d.attachmentsView().contains(new Domain.Attachment(c.rid(), e.pasid()))) {
          throw new IllegalStateException("domain " + d.id() + " does not list " + e);
        }
      }
    }
    int attachments = 0;
    // One pass for the children counts: a scan of the table per parent is quadratic in the ids.
    int[] children = new int[domains.length];
    for (Domain x : domains) {
      if (x instanceof NestedDomain n) {
        children[n.parent().id()]++;
      }
    }
    for (int id = 0; id < domains.length; id++) {
      Domain d = domains[id];
      if (d == null) {
        if (id > 0 && usedIds.get(id)) {
          throw new IllegalStateException("id " + id + " taken by no domain");
        }
        continue;
      }
      if (d.id() != id || !usedIds.get(id) || !d.isLive()) {
        throw new IllegalStateException("domain table slot " + id + " holds " + d);
      }
      attachments += d.attachmentsView().size();
      int ats = 0;
      for (Domain.Attachment a : d.attachmentsView()) {
        if (contexts[a.rid()].ats()) {
          ats++;
        }
      }
      if (ats != d.atsAttachments()) {
        throw new IllegalStateException("domain " + id + " counts " + d.atsAttachments()
            + " ATS attachments, has " + ats);
      }
      if (d instanceof PagingDomain p) {
        if (children[id] != p.nestedChildren()) {
          throw new IllegalStateException("domain " + id + " counts the wrong nested children");
        }
        p.checkInvariants();
      }
    }
    if (attachments != entries) {
      throw new IllegalStateException(attachments + " attachments for " + entries + " PASID entries");
    }
  }

  @Override
  public String toString() {
    return "IommuUnit[" + unitId + " " + name() + " " + kind() + "]";
  }
}
