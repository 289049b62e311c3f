package io.iommulab.actors.unit;

import io.iommulab.actors.pipeline.InvalidationRequest;
import io.iommulab.actors.pipeline.InvalidationRequest.IotlbTarget;
import io.iommulab.actors.unit.IommuUnitActor.AllocDomain;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.Command;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.DirtyRead;
import io.iommulab.actors.unit.IommuUnitActor.DomainAllocated;
import io.iommulab.actors.unit.IommuUnitActor.EnforceCacheCoherency;
import io.iommulab.actors.unit.IommuUnitActor.ExecuteBatch;
import io.iommulab.actors.unit.IommuUnitActor.FreeDomain;
import io.iommulab.actors.unit.IommuUnitActor.GetInvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.GetSnapshot;
import io.iommulab.actors.unit.IommuUnitActor.InvalidateUser;
import io.iommulab.actors.unit.IommuUnitActor.InvalidationStreamEnded;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.Mapped;
import io.iommulab.actors.unit.IommuUnitActor.MsiWrite;
import io.iommulab.actors.unit.IommuUnitActor.PamuGetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuMapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetWindowCount;
import io.iommulab.actors.unit.IommuUnitActor.PamuUnmapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.ReadAndClearDirty;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.Replace;
import io.iommulab.actors.unit.IommuUnitActor.SetDirtyTracking;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Map;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Unmap;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnitSnapshotted;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidated;
import io.iommulab.actors.unit.IommuUnitActor.UserInvalidation;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.DeviceAtc;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.InvalidationPlan;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.iommu.ContextEntry;
import io.iommulab.hardware.iommu.Domain;
import io.iommulab.hardware.iommu.IommuUnit;
import io.iommulab.hardware.iommu.NestedDomain;
import io.iommulab.hardware.iommu.PagingDomain;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.memory.HostMemory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;
import kamon.Kamon;
import kamon.metric.Histogram;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * A VT-d-like or SMMUv3-like unit: owns one {@link IommuUnit} (domains, context entries and
 * PASID tables, IOTLB, invalidation queue, page walker) plus what every unit owns
 * ({@link UnitActorBase}). Commands map one to one onto the model; the model's invalidation
 * plans (unmap, detach, replace, dirty tracking, user invalidation, caching-mode maps) become
 * requests of the unit's invalidation stream ({@link InvalidationPipeline}): the table changes
 * when the command is handled, the invalidation is batched and merged with others, and the
 * command is answered when its batch completed (IOTLB, then every device TLB once its device
 * acknowledged, then the sync) — or, for an unmap in deferred mode, at once, with a flush token
 * whose {@link IommuUnitActor.FlushCompleted} follows. Any command that would start an
 * invalidation is refused EBUSY, before it changes anything, while the stream is saturated. PAMU
 * commands are refused EOPNOTSUPP.
 *
 * <p>Attaching needs a DMA owner: a RID no iommufd context claimed ({@link
 * IommuUnitActor.ClaimDmaOwner}) is refused EPERM, as iommufd cannot attach a device it has not
 * bound. A PASID attach is recorded in the group ({@code group->pasid_array}).
 *
 * <p>Metrics: those of {@link UnitActorBase}, {@code iommulab.unit.unmap.latency-ns}
 * (modeled, from the command to a strict unmap's answer, tagged by unit) and those of {@link
 * InvalidationPipeline}.
 */
final class PagingUnitActor extends UnitActorBase {

  static Behavior<Command> create(
      Wiring wiring, PagingUnitSettings settings, long seed, FaultInjector injector) {
    return Behaviors.setup(
        context ->
            new PagingUnitActor(
                context,
                wiring,
                new IommuUnit(wiring.unitId(), settings, wiring.cost(), seed, injector)));
  }

  private final IommuUnit unit;
  private final InvalidationPipeline pipeline;
  /** The VM whose device was last attached to a domain: the tenant tag of its invalidations. */
  private int[] domainTenant = new int[64];
  private final long pageSizeBitmap;
  private final Histogram unmapLatency;
  /** Tokens of the Waits this actor builds itself (user ATC invalidation, caching-mode maps). */
  private long ownWaitToken = Long.MIN_VALUE;

  private PagingUnitActor(ActorContext<Command> context, Wiring wiring, IommuUnit unit) {
    super(context, wiring);
    this.unit = unit;
    QueueExecutor executor =
        new QueueExecutor(
            unit,
            unit.settings().invalidationQueueDepth(),
            this::deviceRef,
            context.getSelf(),
            context.getLog());
    this.pipeline =
        new InvalidationPipeline(context, unitId, name, wiring.pipeline(), unit, executor, clock,
            wiring.wallNanos(), wiring.faultPipeline()::tenantOf);
    unit.setStaleHitChecks(wiring.pipeline().staleHitChecks());
    long bitmap = 0;
    for (PageSize p : unit.pageSizes()) {
      bitmap |= p.bytes();
    }
    this.pageSizeBitmap = bitmap;
    this.unmapLatency = Kamon.histogram("iommulab.unit.unmap.latency-ns").withTag("unit", name);
  }

  @Override
  public Receive<Command> createReceive() {
    return commonReceive()
        .onMessage(EnforceCacheCoherency.class, this::onEnforceCacheCoherency)
        .onMessage(SetDirtyTracking.class, this::onSetDirtyTracking)
        .onMessage(ReadAndClearDirty.class, this::onReadAndClearDirty)
        .onMessage(Stage1Map.class, this::onStage1Map)
        .onMessage(Stage1Unmap.class, this::onStage1Unmap)
        .onMessage(InvalidateUser.class, this::onInvalidateUser)
        .onMessage(Replace.class, this::onReplace)
        .onMessage(ExecuteBatch.class, this::onExecuteBatch)
        .onMessage(InvalidationStreamEnded.class, this::onInvalidationStreamEnded)
        .onSignal(PostStop.class, signal -> onStopping())
        .onSignal(PreRestart.class, signal -> onStopping())
        .onMessage(PamuSetGeometry.class, m -> unsupported(m.replyTo(), "PamuSetGeometry"))
        .onMessage(PamuSetWindowCount.class, m -> unsupported(m.replyTo(), "PamuSetWindowCount"))
        .onMessage(PamuGetGeometry.class, m -> unsupported(m.replyTo(), "PamuGetGeometry"))
        .onMessage(PamuMapMsiBank.class, m -> unsupported(m.replyTo(), "PamuMapMsiBank"))
        .onMessage(PamuUnmapMsiBank.class, m -> unsupported(m.replyTo(), "PamuUnmapMsiBank"))
        .build();
  }

  // ---------------------------------------------------------------- the kind's part of the base

  @Override
  protected Outcome<Void> probe(RegisterDevice msg) {
    return unit.addDevice(msg.rid(), msg.pasidBits(), msg.ats());
  }

  @Override
  protected Outcome<Void> unprobe(DeviceEntry device) {
    return unit.removeDevice(device.rid);
  }

  @Override
  protected boolean attached(DeviceEntry device) {
    ContextEntry ctx = unit.contextEntry(device.rid);
    return ctx != null && ctx.pasidTable().present() > 0;
  }

  @Override
  protected void translate(
      DeviceEntry device, int rid, int pasid, long iova, int access, boolean ats, long now,
      Translation out) {
    if (ats) {
      unit.atsTranslate(rid, pasid, iova, access, now, out);
    } else {
      unit.translate(rid, pasid, iova, access, now, out);
    }
    if (unit.lastHitStale()
        && !pipeline.staleHit(unit.lastStaleDomainId(), unit.lastStalePasid(), iova)
        && staleViolationsLogged < STALE_LOG) {
      staleViolationsLogged++;
      getContext().getLog().error(
          "unit [{}]: stale IOTLB hit with no invalidation pending (a missed invalidation): rid {}"
              + " pasid {} iova 0x{} domain {} -> hpa 0x{}",
          name, rid(rid), pasid, Long.toHexString(iova), unit.lastStaleDomainId(),
          Long.toHexString(out.hpa));
    }
  }

  /** Stale-hit violations logged; later ones are only counted. */
  private static final int STALE_LOG = 16;

  private int staleViolationsLogged;

  @Override
  protected UnitInfo info(DeviceEntry e) {
    return new UnitInfo(
        unitId,
        name,
        kind,
        pageSizeBitmap,
        unit.addressWidth(),
        0,
        (1L << unit.addressWidth()) - 1,
        Math.min(e.pasidBits, unit.pasidBits()),
        unit.snoopControl(),
        unit.dirtyTracking(),
        unit.nesting(),
        unit.msiIsolation(),
        e.ats,
        e.pri,
        unit.reservedRegions());
  }

  @Override
  protected UnitStats stats(Common c) {
    return new UnitStats(
        unitId,
        name,
        c.translations(),
        unit.iotlb().hits(),
        unit.iotlb().misses(),
        c.faults(),
        c.pageRequests(),
        pipeline.descriptors(),
        pipeline.syncs(),
        pipeline.atcInvalidations(),
        unit.iotlbSize(),
        unit.domains().size(),
        c.unhandledFaults(),
        c.faultLog(),
        c.pageResponses(),
        c.staleResponses(),
        c.msiWrites(),
        c.msiUnisolated(),
        pipeline.pending(),
        pipeline.staleHitsInWindow(),
        pipeline.staleHitViolations());
  }

  @Override
  protected void atcAcknowledged(int rid, long token) {
    pipeline.acknowledged(rid, token);
  }

  @Override
  protected void deviceStopped(int rid) {
    pipeline.deviceStopped(rid);
  }

  // ---------------------------------------------------------------- the invalidation stream

  private Behavior<Command> onExecuteBatch(ExecuteBatch msg) {
    pipeline.execute(msg.batch(), msg.executed());
    return Behaviors.same();
  }

  private Behavior<Command> onInvalidationStreamEnded(InvalidationStreamEnded msg) {
    pipeline.streamEnded(msg.failure());
    return Behaviors.same();
  }

  /**
   * The unit stops or restarts: its stream goes with it. Issuers still waiting get no answer (a
   * restarted unit has lost the model they changed; the fd treats the unit as gone).
   */
  private Behavior<Command> onStopping() {
    pipeline.stop();
    return Behaviors.same();
  }

  @Override
  protected Behavior<Command> onGetInvalidationStats(GetInvalidationStats msg) {
    msg.replyTo().tell(pipeline.stats());
    return Behaviors.same();
  }

  /**
   * True (and {@code replyTo} refused EBUSY) when the stream cannot take another request: the
   * caller must not change anything then.
   */
  private boolean saturated(ActorRef<UnitReply> replyTo) {
    return saturated((Replier) replyTo::tell);
  }

  private boolean saturated(Replier replyTo) {
    if (pipeline.canAccept()) {
      return false;
    }
    pipeline.refused();
    refuse(replyTo, Errno.EBUSY,
        "unit %s: invalidation stream saturated (ingress full, %d requests parked); nothing"
            + " changed, retry", name, pipeline.stats().parked());
    return true;
  }

  /**
   * Submits the invalidation {@code plan} (a model plan ending with its Wait) as one request whose
   * issuer waits; {@code changed} is the unwidened range of a page-table change the plan covers,
   * or null. {@code done} gets the request's modeled latency.
   */
  private void invalidate(
      List<InvDescriptor> plan, IotlbTarget changed, int tenant, LongConsumer done) {
    pipeline.submit((id, sync) -> InvalidationRequest.fromPlan(id, sync, plan, changed), tenant,
        done);
  }

  /** The unwidened target of a page-table change of {@code d} over {@code length} bytes. */
  private static IotlbTarget changed(Domain d, int pasid, long iova, long length) {
    return new IotlbTarget(d.id(), pasid, iova, iova + (length - 1), false, true);
  }

  private int tenant(Domain d) {
    int id = d.id();
    return id < domainTenant.length ? domainTenant[id] : 0;
  }

  /** Domain ids are small (the unit's id table): an array, no boxing on the unmap path. */
  private void setTenant(Domain d, int tenant) {
    int id = d.id();
    if (id >= domainTenant.length) {
      domainTenant = Arrays.copyOf(domainTenant, Math.max(id + 1, 2 * domainTenant.length));
    }
    domainTenant[id] = tenant;
  }

  private static int tenant(DeviceEntry e) {
    return e.expectedOwner == HostMemory.HOST ? 0 : e.expectedOwner;
  }

  // ---------------------------------------------------------------- domains

  private Domain domainOrNull(int id) {
    return unit.domain(id);
  }

  private Behavior<Command> noDomain(ActorRef<UnitReply> replyTo, String arg, int id) {
    return refuse(replyTo, Errno.ENOENT, "%s %d: no such domain on unit %s", arg, id, name);
  }

  private Behavior<Command> noDomain(Replier replyTo, String arg, int id) {
    return refuse(replyTo, Errno.ENOENT, "%s %d: no such domain on unit %s", arg, id, name);
  }

  @Override
  protected Behavior<Command> onAllocDomain(AllocDomain msg) {
    if (msg.type() == null) {
      return refuse(msg.replyTo(), Errno.EINVAL, "type: missing");
    }
    switch (msg.type()) {
      case PAGING -> {
        Outcome<PagingDomain> d = unit.allocPagingDomain(msg.nestParent(), msg.dirtyTracking());
        if (!d.isOk()) {
          return refuse(msg.replyTo(), d);
        }
        return allocated(msg.replyTo(), d.value());
      }
      case NESTED -> {
        if (!(domainOrNull(msg.parentDomainId()) instanceof PagingDomain parent)) {
          return refuse(msg.replyTo(), Errno.EINVAL,
              "parentDomainId %d: not a paging domain of unit %s", msg.parentDomainId(), name);
        }
        Outcome<NestedDomain> d = unit.allocNestedDomain(parent);
        if (!d.isOk()) {
          return refuse(msg.replyTo(), d);
        }
        return allocated(msg.replyTo(), d.value());
      }
      default -> {
        return unsupported(msg.replyTo(), "AllocDomain(" + msg.type() + ")");
      }
    }
  }

  private Behavior<Command> allocated(ActorRef<UnitReply> replyTo, Domain d) {
    replyTo.tell(
        new DomainAllocated(
            d.id(), pageSizeBitmap, unit.addressWidth(), 0, (1L << unit.addressWidth()) - 1));
    return Behaviors.same();
  }

  @Override
  protected Behavior<Command> onFreeDomain(FreeDomain msg) {
    Domain d = domainOrNull(msg.domainId());
    if (d == null) {
      return noDomain(msg.replyTo(), "domainId", msg.domainId());
    }
    Outcome<Void> r = unit.freeDomain(d);
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    setTenant(d, 0);
    return done(msg.replyTo());
  }

  /** The paging domain {@code id}, or a refusal: ENOENT unknown, EINVAL when NESTED. */
  private PagingDomain pagingDomain(int id, ActorRef<UnitReply> replyTo) {
    return pagingDomain(id, (Replier) replyTo::tell);
  }

  private PagingDomain pagingDomain(int id, Replier replyTo) {
    return domainOf(id, PagingDomain.class, "domainId", "a NESTED domain, not a paging domain",
        replyTo);
  }

  /**
   * Domain {@code id} when it is a {@code type}, or null after refusing: ENOENT unknown, EINVAL
   * of another type ({@code "<arg> <id>: <wrongType>"}).
   */
  private <D extends Domain> D domainOf(
      int id, Class<D> type, String arg, String wrongType, Replier replyTo) {
    Domain d = domainOrNull(id);
    if (d == null) {
      noDomain(replyTo, arg, id);
      return null;
    }
    if (!type.isInstance(d)) {
      refuse(replyTo, Errno.EINVAL, "%s %d: %s", arg, id, wrongType);
      return null;
    }
    return type.cast(d);
  }

  private Behavior<Command> onEnforceCacheCoherency(EnforceCacheCoherency msg) {
    PagingDomain d = pagingDomain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<Void> r = d.enforceCacheCoherency();
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  private Behavior<Command> onSetDirtyTracking(SetDirtyTracking msg) {
    PagingDomain d = pagingDomain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<List<InvDescriptor>> plan = unit.planRange(d, Iotlb.ANY_PASID, 0, -1L);
    if (saturated(msg.replyTo())) {
      return Behaviors.same();
    }
    Outcome<Void> r = d.setDirtyTracking(msg.enabled());
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    // Cached writable translations would write without marking dirty: flush the domain, as
    // intel_pasid_setup_dirty_tracking flushes the PASID cache and IOTLB.
    ActorRef<UnitReply> replyTo = msg.replyTo();
    invalidate(plan.value(), changed(d, Iotlb.ANY_PASID, 0, -1L), tenant(d),
        latency -> replyTo.tell(IommuUnitActor.Done.INSTANCE));
    return Behaviors.same();
  }

  private Behavior<Command> onReadAndClearDirty(ReadAndClearDirty msg) {
    PagingDomain d = pagingDomain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    List<InvDescriptor> plan = null;
    if (msg.clear() && msg.length() != 0) {
      Outcome<List<InvDescriptor>> p = unit.planRange(d, Iotlb.ANY_PASID, msg.iova(), msg.length());
      if (!p.isOk()) {
        return refuse(msg.replyTo(), p);
      }
      plan = p.value();
      if (saturated(msg.replyTo())) {
        return Behaviors.same();
      }
    }
    LongList leaves = new LongList();
    Outcome<Long> r = d.readAndClearDirty(msg.iova(), msg.length(), msg.clear(), leaves::add);
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    long[] pages = dirtyPages(d, leaves, msg.iova(), msg.length());
    ActorRef<UnitReply> replyTo = msg.replyTo();
    DirtyRead reply = new DirtyRead(pages, PageSize.SIZE_4K.bytes());
    if (plan == null || pages.length == 0) {
      replyTo.tell(reply);
    } else {
      invalidate(plan, changed(d, Iotlb.ANY_PASID, msg.iova(), msg.length()), tenant(d),
          latency -> replyTo.tell(reply));
    }
    return Behaviors.same();
  }

  /** Expands dirty leaves (clipped to the range) into the 4 KiB pages iommufd's bitmap counts. */
  private static long[] dirtyPages(PagingDomain d, LongList leaves, long iova, long length) {
    Translation t = new Translation();
    LongList pages = new LongList();
    long grain = PageSize.SIZE_4K.bytes();
    long rangeLast = iova + (length - 1);
    for (int i = 0; i < leaves.size; i++) {
      long first = leaves.values[i];
      if (!d.iovaToPhys(first, t.reset())) {
        throw new IllegalStateException(String.format("dirty leaf at 0x%x is not mapped", first));
      }
      long leafLast = (first & ~t.pageSize.mask()) + t.pageSize.mask();
      long last = Long.compareUnsigned(leafLast, rangeLast) < 0 ? leafLast : rangeLast;
      long lastPage = last & ~(grain - 1);
      for (long a = first & ~(grain - 1); ; a += grain) {
        pages.add(a);
        if (a == lastPage) {
          break;
        }
      }
    }
    return pages.toArray();
  }

  // ---------------------------------------------------------------- mappings

  @Override
  protected Behavior<Command> mapRange(MapRange msg, Replier reply) {
    PagingDomain d = pagingDomain(msg.domainId(), reply);
    if (d == null) {
      return Behaviors.same();
    }
    long[] hpas = msg.hpas();
    long[] lengths = msg.lengths();
    if (hpas == null || lengths == null || hpas.length == 0 || hpas.length != lengths.length) {
      return refuse(reply, Errno.EINVAL,
          "hpas, lengths: one or more runs of equal count needed");
    }
    if (unit.cachingMode() && saturated(reply)) {
      return Behaviors.same();
    }
    long cur = msg.iova();
    long total = 0;
    long leavesBefore = d.leafCount();
    for (int i = 0; i < hpas.length; i++) {
      Outcome<Void> r = d.map(cur, hpas[i], lengths[i], msg.prot());
      if (!r.isOk()) {
        rollbackMap(d, msg.iova(), total);
        Outcome.Err<Void> e = (Outcome.Err<Void>) r;
        return refuse(reply, e.errno(), "run %d: %s", i, e.message());
      }
      total += lengths[i];
      cur += lengths[i];
    }
    long bytes = total;
    long pteCost = cost.pteWrites(Math.max(0, d.leafCount() - leavesBefore));
    if (!unit.cachingMode()) {
      reply.tell(new Mapped(bytes, pteCost));
      return Behaviors.same();
    }
    // Caching mode: the unit may have cached the not-present entries (cache_tag_flush_range_np).
    List<InvDescriptor> plan =
        InvalidationPlan.range(d.id(), Iotlb.ANY_PASID, msg.iova(), bytes,
            unit.settings().maxAddressMask(), List.of(), ownWaitToken++);
    invalidate(plan, null, tenant(d), latency -> reply.tell(new Mapped(bytes, pteCost + latency)));
    return Behaviors.same();
  }

  /** Undoes the runs a refused MapRange already installed: they were empty before the call. */
  private static void rollbackMap(PagingDomain d, long iova, long bytes) {
    if (bytes == 0) {
      return;
    }
    Outcome<Long> r = d.unmap(iova, bytes);
    if (!r.isOk() || r.value() != bytes) {
      throw new IllegalStateException("rollback of a partial map failed: " + r);
    }
  }

  @Override
  protected Behavior<Command> unmapRange(UnmapRange msg, Replier reply) {
    PagingDomain d = pagingDomain(msg.domainId(), reply);
    if (d == null) {
      return Behaviors.same();
    }
    // Plan first: planning changes nothing, and a bad range is refused before the table changes.
    Outcome<List<InvDescriptor>> plan = unit.planRange(d, Iotlb.ANY_PASID, msg.iova(), msg.length());
    if (!plan.isOk()) {
      return refuse(reply, plan);
    }
    if (saturated(reply)) {
      return Behaviors.same();
    }
    long leavesBefore = d.leafCount();
    Outcome<Long> r = d.unmap(msg.iova(), msg.length());
    if (!r.isOk()) {
      return refuse(reply, r);
    }
    long bytes = r.value();
    if (bytes == 0) {
      reply.tell(Unmapped.strict(0, 0));
      return Behaviors.same();
    }
    // Clearing the entries is charged as writing them was on map, before any invalidation.
    long pteCost = cost.pteWrites(Math.max(0, leavesBefore - d.leafCount()));
    List<InvDescriptor> descriptors = plan.value();
    IotlbTarget changed = changed(d, Iotlb.ANY_PASID, msg.iova(), msg.length());
    if (pipeline.mode() == Mode.DEFERRED && msg.flushTo() != null) {
      // Lazy mode: the entries are gone from the table; the caches follow at the next flush,
      // which the pipeline charges to the flush, so the unmap itself costs the PTE writes only.
      pipeline.submitDeferred(
          (id, sync) -> InvalidationRequest.fromPlan(id, sync, descriptors, changed),
          tenant(d),
          msg.flushTo(),
          token -> reply.tell(new Unmapped(bytes, pteCost, token, true)));
      return Behaviors.same();
    }
    invalidate(descriptors, changed, tenant(d), latency -> {
      unmapLatency.record(latency);
      reply.tell(Unmapped.strict(bytes, pteCost + latency));
    });
    return Behaviors.same();
  }

  private NestedDomain nestedDomain(int id, ActorRef<UnitReply> replyTo) {
    return domainOf(id, NestedDomain.class, "nestedDomainId", "not a NESTED domain",
        replyTo::tell);
  }

  private Behavior<Command> onStage1Map(Stage1Map msg) {
    NestedDomain n = nestedDomain(msg.nestedDomainId(), msg.replyTo());
    if (n == null) {
      return Behaviors.same();
    }
    Outcome<Void> r = n.stage1().map(msg.iova(), msg.gpa(), msg.length(), msg.prot());
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  private Behavior<Command> onStage1Unmap(Stage1Unmap msg) {
    NestedDomain n = nestedDomain(msg.nestedDomainId(), msg.replyTo());
    if (n == null) {
      return Behaviors.same();
    }
    Outcome<Long> r = n.stage1().unmap(msg.iova(), msg.length());
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  private Behavior<Command> onInvalidateUser(InvalidateUser msg) {
    Domain d = domainOrNull(msg.domainId());
    if (d == null) {
      return noDomain(msg.replyTo(), "domainId", msg.domainId());
    }
    List<UserInvalidation> entries = msg.entries() == null ? List.of() : msg.entries();
    // Each handled entry as its own request (ranges unwidened), merged into one below.
    List<InvalidationRequest> parts = new ArrayList<>();
    int handled = 0;
    Errno errno = null;
    String message = null;
    for (UserInvalidation e : entries) {
      handled++;
      Outcome<List<InvDescriptor>> p = planUser(d, e);
      if (!p.isOk()) {
        Outcome.Err<List<InvDescriptor>> err = (Outcome.Err<List<InvDescriptor>>) p;
        errno = err.errno();
        message = "entry " + (handled - 1) + ": " + err.message();
        break;
      }
      parts.add(InvalidationRequest.fromPlan(0, true, p.value(), userChange(d, e)));
    }
    int n = handled;
    Errno en = errno;
    String m = message;
    ActorRef<UnitReply> replyTo = msg.replyTo();
    if (parts.isEmpty()) {
      replyTo.tell(new UserInvalidated(n, en, m, 0));
      return Behaviors.same();
    }
    if (saturated(replyTo)) {
      return Behaviors.same();
    }
    pipeline.submit((id, sync) -> InvalidationRequest.combine(id, sync, parts), tenant(d),
        latency -> replyTo.tell(new UserInvalidated(n, en, m, latency)));
    return Behaviors.same();
  }

  /** The unwidened stage-1 range an IOTLB entry invalidates (the guest changed it), or null. */
  private static IotlbTarget userChange(Domain d, UserInvalidation e) {
    if (e.kind() == IommuUnitActor.UserInvalidationKind.ATC) {
      return null;
    }
    // As planUser plans it: an entry without PASID covers every PASID of the domain.
    int pasid = e.pasid() == FaultRecord.NO_PASID ? Iotlb.ANY_PASID : e.pasid();
    if (e.kind() == IommuUnitActor.UserInvalidationKind.IOTLB_ALL || e.npages() == 1L << 52) {
      return changed(d, pasid, 0, -1L);
    }
    return changed(d, pasid, e.address(), e.npages() << 12);
  }

  /** The descriptors of one user invalidation entry, or why it is refused. */
  private Outcome<List<InvDescriptor>> planUser(Domain d, UserInvalidation e) {
    if (e == null || e.kind() == null) {
      return Outcome.err(Errno.EINVAL, "kind: missing");
    }
    switch (e.kind()) {
      case IOTLB_RANGE, IOTLB_ALL -> {
        if (!(d instanceof NestedDomain)) {
          return Outcome.err(Errno.EINVAL, "domain %d: stage-1 invalidation needs a NESTED domain",
              d.id());
        }
        int pasid = e.pasid() == FaultRecord.NO_PASID ? Iotlb.ANY_PASID : e.pasid();
        if (e.kind() == IommuUnitActor.UserInvalidationKind.IOTLB_ALL) {
          return unit.planRange(d, pasid, 0, -1L);
        }
        if ((e.address() & 0xFFF) != 0) {
          return Outcome.err(Errno.EINVAL, "address 0x%x: not 4 KiB aligned", e.address());
        }
        if (e.npages() <= 0 || e.npages() > 1L << 52) {
          return Outcome.err(Errno.EINVAL, "npages %d: not in [1, 2^52]", e.npages());
        }
        long length = e.npages() == 1L << 52 ? -1L : e.npages() << 12;
        return unit.planRange(d, pasid, e.address(), length);
      }
      case ATC -> {
        DeviceEntry dev = device(e.rid());
        if (dev == null) {
          return Outcome.err(Errno.EINVAL, "rid %s: no such device on unit %s", rid(e.rid()), name);
        }
        if (!dev.ats) {
          return Outcome.err(Errno.EINVAL, "rid %s: has no ATS", rid(e.rid()));
        }
        if (e.pasid() < FaultRecord.NO_PASID || e.pasid() >= 1 << 20) {
          return Outcome.err(Errno.EINVAL, "pasid %d: not a PASID", e.pasid());
        }
        if ((e.address() & 0xFFF) != 0) {
          return Outcome.err(Errno.EINVAL, "address 0x%x: not 4 KiB aligned", e.address());
        }
        if (e.npages() <= 0) {
          return Outcome.err(Errno.EINVAL, "npages %d: not positive", e.npages());
        }
        int order = e.npages() >= 1L << DeviceAtc.WHOLE_SPACE_ORDER
            ? DeviceAtc.WHOLE_SPACE_ORDER
            : 64 - Long.numberOfLeadingZeros(e.npages() - 1);
        return Outcome.ok(List.of(
            new InvDescriptor.DevTlb(e.rid(), e.pasid(), e.address(), order),
            new InvDescriptor.Wait(ownWaitToken++)));
      }
      default -> {
        return Outcome.err(Errno.EOPNOTSUPP, "kind %s: not supported", e.kind());
      }
    }
  }

  // ---------------------------------------------------------------- attach

  @Override
  protected Behavior<Command> onAttach(Attach msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    Domain d = domainOrNull(msg.domainId());
    if (d == null) {
      return noDomain(msg.replyTo(), "domainId", msg.domainId());
    }
    if (!userOwned(e)) {
      return refuse(msg.replyTo(), Errno.EPERM, "rid %s: no DMA owner claimed it (bind first)",
          rid(e.rid));
    }
    // Only caching mode invalidates on attach (PASID cache and IOTLB of the new entry).
    if (unit.cachingMode() && saturated(msg.replyTo())) {
      return Behaviors.same();
    }
    Outcome<List<InvDescriptor>> r = unit.attach(e.rid, msg.pasid(), d);
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    if (msg.pasid() != FaultRecord.NO_PASID) {
      group(e).pasidAttached();
    }
    setHandle(e.rid, msg.pasid(), msg.faultSink(), msg.handleToken());
    setTenant(d, tenant(e));
    return runThenDone(r.value(), tenant(e), msg.replyTo());
  }

  private Behavior<Command> onReplace(Replace msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    Domain d = domainOrNull(msg.domainId());
    if (d == null) {
      return noDomain(msg.replyTo(), "domainId", msg.domainId());
    }
    Domain old = unit.attachedDomain(e.rid, msg.pasid());
    if (old != null && old != d && saturated(msg.replyTo())) {
      return Behaviors.same();
    }
    Outcome<List<InvDescriptor>> r = unit.replace(e.rid, msg.pasid(), d);
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    if (old != d) {
      abortPendingPageGroups(e.rid, msg.pasid());
    }
    setHandle(e.rid, msg.pasid(), msg.faultSink(), msg.handleToken());
    setTenant(d, tenant(e));
    return runThenDone(r.value(), tenant(e), msg.replyTo());
  }

  @Override
  protected Behavior<Command> onDetach(Detach msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    if (unit.attachedDomain(e.rid, msg.pasid()) != null && saturated(msg.replyTo())) {
      return Behaviors.same();
    }
    Outcome<List<InvDescriptor>> r = unit.detach(e.rid, msg.pasid());
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    if (msg.pasid() != FaultRecord.NO_PASID) {
      group(e).pasidDetached();
    }
    setHandle(e.rid, msg.pasid(), null);
    abortPendingPageGroups(e.rid, msg.pasid());
    return runThenDone(r.value(), tenant(e), msg.replyTo());
  }

  private Behavior<Command> runThenDone(
      List<InvDescriptor> plan, int tenant, ActorRef<UnitReply> replyTo) {
    if (plan.isEmpty()) {
      return done(replyTo);
    }
    invalidate(plan, null, tenant, latency -> replyTo.tell(IommuUnitActor.Done.INSTANCE));
    return Behaviors.same();
  }

  // ---------------------------------------------------------------- MSI, inspection

  @Override
  protected Behavior<Command> onMsiWrite(MsiWrite msg) {
    // Interrupt remapping: the IRTE routes the write to the owner's vCPU. Without MSI isolation
    // the device could target any vector: counted, not prevented.
    msiWrites++;
    msiCounter.increment();
    if (!unit.msiIsolation()) {
      msiUnisolated++;
    }
    return Behaviors.same();
  }

  @Override
  protected Behavior<Command> onGetSnapshot(GetSnapshot msg) {
    // A snapshot of a model whose invariants broke would be a lie: throw (a bug) instead.
    unit.checkInvariants();
    msg.replyTo().tell(
        new UnitSnapshotted(unit.snapshot(), null, groupSummaries(), handleSummaries(),
            registeredRids()));
    return Behaviors.same();
  }

  /** A growable long array: dirty reads are not on the DMA path. */
  private static final class LongList {
    long[] values = new long[16];
    int size;

    void add(long v) {
      if (size == values.length) {
        values = Arrays.copyOf(values, size * 2);
      }
      values[size++] = v;
    }

    long[] toArray() {
      return Arrays.copyOf(values, size);
    }
  }
}
