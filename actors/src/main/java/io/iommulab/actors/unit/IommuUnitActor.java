package io.iommulab.actors.unit;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.fault.DmaFault;
import io.iommulab.hardware.fault.PageRequest;
import io.iommulab.hardware.iommu.ReservedRegion;
import java.util.List;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.pipeline.FaultPipeline;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.actors.pipeline.InvalidationBatch;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.cost.CostModel;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Protocol of one IOMMU unit and its factory. A unit actor owns its hardware model (a paging
 * {@code IommuUnit} for VT-d-like and SMMUv3-like units, or a {@code PamuUnit}), the IOMMU groups
 * behind it and their DMA owners, the RID → {@link DeviceActor} map used to fan out device-TLB
 * invalidations, and the attach handles ((rid, pasid) → fault sink). One protocol serves every
 * kind: a command a kind cannot perform is refused (EOPNOTSUPP), as a driver op it lacks would be.
 * The behaviours are {@link PagingUnitActor} and {@link PamuUnitActor}; what they share (devices,
 * groups, attach handles, page-request routing, DMA checks) is in {@link UnitActorBase}.
 *
 * <p>Every command that a guest can get wrong answers {@link Refused} with the errno and a message
 * naming the argument; a refused command changes nothing. Replies go to {@code replyTo}.
 */
public final class IommuUnitActor {
  private IommuUnitActor() {}

  /**
   * A unit of any kind: a paging unit for {@code PagingUnitSettings}, a PAMU for
   * {@code PamuUnitSettings}. Modeled time comes from {@code clock}, replacement randomness from
   * {@code seed}; completed DMA is checked by {@code memory}; PAMU MSI writes reach
   * {@code msiBanks} (by bank index), which are also told when a group's DMA owner changes.
   * Invalidations run through a strict stream with the shipped bounds
   * ({@link InvalidationPipelineSettings#strict()}); no wall-clock latency is recorded.
   */
  public static Behavior<Command> create(
      int unitId,
      IommuUnitSettings settings,
      CostModel cost,
      ModeledClock clock,
      long seed,
      FaultInjector injector,
      ActorRef<HostMemoryActor.Command> memory,
      Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks) {
    return create(unitId, settings, cost, clock, seed, injector, memory, msiBanks,
        InvalidationPipelineSettings.strict(), FaultPipelineSettings.defaults(), null);
  }

  /**
   * As above, with both streams configured: the invalidation stream by {@code pipeline} (strict or
   * deferred mode, its bounds), the fault pipeline by {@code faultPipeline}, and {@code wallNanos}
   * the wall clock the edge hands in (the host passes {@code System::nanoTime}, tests a fake): the
   * unit records the wall-clock latency of every invalidation and fault record with it and never
   * reads a clock of its own; null (or {@link FaultPipeline#NO_WALL_CLOCK}) measures nothing.
   */
  public static Behavior<Command> create(
      int unitId,
      IommuUnitSettings settings,
      CostModel cost,
      ModeledClock clock,
      long seed,
      FaultInjector injector,
      ActorRef<HostMemoryActor.Command> memory,
      Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks,
      InvalidationPipelineSettings pipeline,
      FaultPipelineSettings faultPipeline,
      LongSupplier wallNanos) {
    if (pipeline == null) {
      throw new IllegalArgumentException("pipeline settings: missing");
    }
    if (faultPipeline == null) {
      throw new IllegalArgumentException("fault pipeline settings: missing");
    }
    UnitActorBase.Wiring wiring =
        new UnitActorBase.Wiring(unitId, settings.name(), settings.kind(), cost, clock, memory,
            Map.copyOf(msiBanks), pipeline, faultPipeline, wallNanos);
    if (settings instanceof PagingUnitSettings paging) {
      return PagingUnitActor.create(wiring, paging, seed, injector);
    }
    return PamuUnitActor.create(wiring, (PamuUnitSettings) settings, injector);
  }

  /** Request id meaning "no PASID" (the RID's own address space). Same as FaultRecord.NO_PASID. */
  public static final int NO_PASID = -1;

  public sealed interface Command extends CborSerializable
      permits RegisterDevice,
          UnregisterDevice,
          ClaimDmaOwner,
          ReleaseDmaOwner,
          AllocDomain,
          FreeDomain,
          EnforceCacheCoherency,
          SetDirtyTracking,
          ReadAndClearDirty,
          MapRange,
          UnmapRange,
          Stage1Map,
          Stage1Unmap,
          InvalidateUser,
          Attach,
          Replace,
          Detach,
          PamuSetGeometry,
          PamuSetWindowCount,
          PamuGetGeometry,
          PamuMapMsiBank,
          PamuUnmapMsiBank,
          TranslateBurst,
          ReportPageRequest,
          RespondPageRequest,
          MsiWrite,
          AtcInvalidationAcked,
          GetSnapshot,
          GetStats,
          GetFaultStats,
          FaultsAccounted,
          GetInvalidationStats,
          BankLearned,
          ExecuteBatch,
          InvalidationStreamEnded,
          Correlated {}

  // ---------------------------------------------------------------- topology (guardian)

  /**
   * A function appears behind this unit (boot or hotplug): probe its context entry / STE (PASID
   * table) or, on PAMU, its LIODN, and add it to IOMMU group {@code group}. {@code ats}: the
   * function has ATS enabled (device-TLB invalidations are sent to it); {@code pri}: it can issue
   * page requests (reported by GET_HW_INFO). Replies {@link Done}; EEXIST if the RID is present,
   * EINVAL for a RID outside 16 bits, a negative group, a PASID width outside [0, 20] or, on PAMU,
   * a LIODN beyond the PPAACT.
   */
  public record RegisterDevice(
      int rid,
      int liodn,
      int group,
      int pasidBits,
      boolean ats,
      boolean pri,
      ActorRef<DeviceActor.Command> device,
      ActorRef<UnitReply> replyTo)
      implements Command {}

  /** The function leaves (hot-unplug); EBUSY while it is attached or owned. Replies Done. */
  public record UnregisterDevice(int rid, ActorRef<UnitReply> replyTo) implements Command {}

  // ---------------------------------------------------------------- DMA ownership

  /**
   * {@code iommu_device_claim_dma_owner(dev, ictx)} for an iommufd bind: the device's group is
   * owned by the fd {@code ictxId} of VM {@code vmId}. Replies {@link DmaOwnerClaimed} carrying
   * what iommufd learns about the device's IOMMU (GET_HW_INFO, reserved regions); EPERM when
   * another owner holds the group, EBUSY when the device is already bound (drivers/iommu/iommu.c),
   * ENODEV for an unknown RID, EINVAL for a negative context, a VM id out of range, or a context
   * that already claims the group for another VM. The device is told ({@code OwnerChanged}); DMA
   * of the group's members is checked against the VM's frames from then on.
   */
  public record ClaimDmaOwner(int rid, int ictxId, int vmId, ActorRef<UnitReply> replyTo)
      implements Command {}

  /**
   * Releases the claim; the device returns to blocked DMA. Replies Done; ENODEV for an unknown
   * RID, EINVAL when {@code ictxId} holds no claim on it, EBUSY while it is still attached.
   */
  public record ReleaseDmaOwner(int rid, int ictxId, ActorRef<UnitReply> replyTo)
      implements Command {}

  // ---------------------------------------------------------------- domains

  /** The kind of domain to allocate. */
  public enum DomainType {
    /** A second-stage (or only-stage) paging domain: an iommufd HWPT_PAGING. */
    PAGING,
    /** A stage-1 domain over a NEST_PARENT paging domain: an iommufd HWPT_NESTED. */
    NESTED,
    /** A PAMU domain (aperture and windows). */
    PAMU
  }

  /**
   * Allocates a domain. PAGING: {@code nestParent}, {@code dirtyTracking} flags (EOPNOTSUPP without
   * the capability). NESTED: {@code parentDomainId} must be a NEST_PARENT domain of this unit
   * (EINVAL). Replies {@link DomainAllocated}; ENOSPC when domain ids are exhausted.
   */
  public record AllocDomain(
      DomainType type,
      boolean nestParent,
      boolean dirtyTracking,
      int parentDomainId,
      ActorRef<UnitReply> replyTo)
      implements Command {}

  /**
   * Frees a domain; EBUSY while attached or while nested children exist (PAMU: while LIODNs are
   * attached), ENOENT for an unknown domain. Replies Done.
   */
  public record FreeDomain(int domainId, ActorRef<UnitReply> replyTo) implements Command {}

  /**
   * Force snoop on a paging domain ({@code enforce_cache_coherency}); EINVAL when the unit lacks
   * snoop control or the domain has ever had mappings (drivers/iommu/intel/iommu.c). Replies Done.
   */
  public record EnforceCacheCoherency(int domainId, ActorRef<UnitReply> replyTo)
      implements Command {}

  public record SetDirtyTracking(int domainId, boolean enabled, ActorRef<UnitReply> replyTo)
      implements Command {}

  /** Replies {@link DirtyRead}. */
  public record ReadAndClearDirty(
      int domainId, long iova, long length, boolean clear, ActorRef<UnitReply> replyTo)
      implements Command {}

  // ---------------------------------------------------------------- mappings

  /**
   * Installs IOAS area pages in a domain: {@code hpas[i]} backs {@code lengths[i]} bytes, the runs
   * laid end to end from {@code iova}. All or nothing. PAMU domains take whole windows (VFIO-PAMU
   * rules) and enable the aperture on the first map. In caching mode the unit also flushes the
   * not-present entries it may have cached. Replies {@link Mapped}; ENOENT for an unknown
   * domain, EINVAL for a NESTED domain (map its parent) or runs that are empty or of unequal
   * count, and the page table's errnos (EINVAL alignment, EEXIST overlap, ENOMEM) naming the run.
   */
  public record MapRange(
      int domainId, long iova, long[] hpas, long[] lengths, int prot, ActorRef<UnitReply> replyTo)
      implements Command {}

  /**
   * Removes the leaves of {@code [iova, +length)} from a domain and invalidates every cache that
   * may hold them — IOTLB first, then the ATC of every ATS device attached to the domain — to the
   * sync, through the unit's invalidation stream (merged with other requests of the same batch).
   *
   * <p>Strict mode, or no {@code flushTo} ({@link #strict}): replies {@link Unmapped}
   * (deferred=false) only when every targeted cache has dropped its entries. Deferred mode with a
   * {@code flushTo}: replies {@link Unmapped} (deferred=true, with a flush token) as soon as the
   * page-table entries are gone and the invalidation is queued; until {@link FlushCompleted} with
   * that token reaches {@code flushTo}, translations of the range may still be served from the
   * IOTLB or a device's ATC, so the issuer must neither reuse the IOVA range nor release the frames
   * that backed it.
   *
   * <p>EINVAL when the range cuts a large page or is empty, ENOENT for an unknown domain, EBUSY
   * when the unit's invalidation stream is saturated (ingress full and {@code max-parked}
   * requests parked; nothing changed, retry). PAMU: disables the windows; the domain when empty;
   * completes at once (no invalidation queue).
   */
  public record UnmapRange(
      int domainId,
      long iova,
      long length,
      ActorRef<FlushCompleted> flushTo,
      ActorRef<UnitReply> replyTo)
      implements Command {

    /**
     * A strict unmap, whatever the unit's mode: no {@code flushTo}, so the reply ({@link
     * Unmapped#strict}) comes only once every targeted cache has dropped the range.
     */
    public static UnmapRange strict(
        int domainId, long iova, long length, ActorRef<UnitReply> replyTo) {
      return new UnmapRange(domainId, iova, length, null, replyTo);
    }
  }

  /**
   * The guest IOMMU driver writes its stage-1 table of a NESTED domain (IOVA → GPA). As on
   * hardware, nothing is invalidated: the guest must invalidate ({@link InvalidateUser}) before a
   * changed entry is guaranteed to be seen. Replies Done.
   */
  public record Stage1Map(
      int nestedDomainId, long iova, long gpa, long length, int prot, ActorRef<UnitReply> replyTo)
      implements Command {}

  public record Stage1Unmap(
      int nestedDomainId, long iova, long length, ActorRef<UnitReply> replyTo)
      implements Command {}

  /** One user invalidation entry, already validated and translated (vdev_id → rid) by the fd. */
  public record UserInvalidation(
      UserInvalidationKind kind, int pasid, long address, long npages, int rid, boolean leaf)
      implements CborSerializable {}

  public enum UserInvalidationKind {
    /** Stage-1 IOTLB range of the nested domain (VT-d S1 entry; SMMUv3 TLBI_NH_VA). */
    IOTLB_RANGE,
    /** Every stage-1 IOTLB entry of the nested domain (addr 0, npages U64_MAX; TLBI_NH_ALL). */
    IOTLB_ALL,
    /** Device ATC range of {@code rid} (SMMUv3 ATC_INV after vSID → SID translation). */
    ATC
  }

  /**
   * HWPT_INVALIDATE / vIOMMU invalidation of a NESTED domain (or, with {@code domainId} of a
   * vIOMMU's parent, device ATCs): entries run in order and stop at the first error; {@link
   * UserInvalidated} reports how many were handled. IOTLB before ATC within the array's order.
   */
  public record InvalidateUser(
      int domainId, List<UserInvalidation> entries, ActorRef<UnitReply> replyTo)
      implements Command {}

  // ---------------------------------------------------------------- attach

  /**
   * Sets the PASID-table entry of (rid, pasid) — pasid {@link #NO_PASID} for the RID itself; on
   * PAMU the LIODN's PAACE. {@code faultSink} (may be null) receives the DMA faults and page
   * requests of this attach handle, as iommufd's attach handle routes them to the hwpt's FAULT
   * object: the unit publishes them into its {@link FaultPipeline}, each record carrying the sink
   * and {@code handleToken} (chosen by the sink's owner, unique per attachment, so records of an
   * older attachment still in flight are told apart from the new one's; 0 for none: the sink then
   * routes the records by (unit, rid, pasid) alone). Replies Done (after the PASID-cache flush in
   * caching mode); ENODEV for an unknown RID, ENOENT for an unknown domain, EPERM when no iommufd
   * context claimed the RID ({@link ClaimDmaOwner}: iommufd attaches only bound devices), EINVAL
   * for a PASID beyond the device's or unit's width (any PASID on PAMU), EBUSY if already attached
   * at that PASID (use Replace).
   */
  public record Attach(
      int rid,
      int pasid,
      int domainId,
      ActorRef<FaultEvent> faultSink,
      long handleToken,
      ActorRef<UnitReply> replyTo)
      implements Command {}

  /**
   * Atomically switches (rid, pasid) to another domain; the old translation is invalidated (IOTLB,
   * then ATC) before {@link Done}. EINVAL when not attached; same domain is a no-op. Page-request
   * groups still pending at the old domain's sink are answered INVALID. EOPNOTSUPP on PAMU.
   * {@code faultSink} and {@code handleToken} (0 for none) as for {@link Attach}.
   */
  public record Replace(
      int rid,
      int pasid,
      int domainId,
      ActorRef<FaultEvent> faultSink,
      long handleToken,
      ActorRef<UnitReply> replyTo)
      implements Command {}

  /**
   * Returns (rid, pasid) to blocked DMA; replies {@link Done} only after the PASID teardown
   * invalidation (PASID cache, IOTLB, device TLB) has completed: no DMA is served from the old
   * translation afterwards. Page-request groups still pending at the handle's sink are answered
   * INVALID at once, and a later response for them is dropped. EINVAL when not attached.
   */
  public record Detach(int rid, int pasid, ActorRef<UnitReply> replyTo) implements Command {}

  // ---------------------------------------------------------------- PAMU (2013 seed)

  /** DOMAIN_ATTR_GEOMETRY; EBUSY while enabled, EINVAL for a bad size or alignment. */
  public record PamuSetGeometry(
      int domainId, long apertureStart, long apertureSize, ActorRef<UnitReply> replyTo)
      implements Command {}

  /** DOMAIN_ATTR_WINDOWS; geometry first (EINVAL), power of two ≤ max, EBUSY while enabled. */
  public record PamuSetWindowCount(int domainId, int windows, ActorRef<UnitReply> replyTo)
      implements Command {}

  /** Replies {@link PamuGeometry}. */
  public record PamuGetGeometry(int domainId, ActorRef<UnitReply> replyTo) implements Command {}

  /**
   * VFIO_IOMMU_PAMU_MAP_MSI_BANK: bank {@code bankIndex}'s MSIIR page into the window at
   * {@code iova}. Replies {@link MsiBankMapped} with the MSI address devices must use.
   */
  public record PamuMapMsiBank(
      int domainId, int bankIndex, long msiirAddress, long iova, ActorRef<UnitReply> replyTo)
      implements Command {}

  public record PamuUnmapMsiBank(int domainId, long iova, ActorRef<UnitReply> replyTo)
      implements Command {}

  // ---------------------------------------------------------------- correlated requests

  /**
   * A {@link MapRange} ({@code map}) or an {@link UnmapRange} ({@code unmap}) — exactly one
   * non-null; its own {@code replyTo} is not used and may be null — whose reply goes to {@code
   * replyTo} as an {@link Answer} carrying {@code corr}. A caller that keeps many requests in
   * flight (an fd maps into every domain of an IOAS at once, and unmaps complete out of order
   * after device-TLB acknowledgements) matches the answers with one message adapter and plain
   * tells, instead of an ask per request (a temporary actor, a scheduled timeout and a
   * continuation each). Neither or both set: answered Refused EINVAL. Two typed fields rather
   * than one {@code Command}: messages carry no polymorphic fields (jackson-cbor).
   */
  public record Correlated(long corr, MapRange map, UnmapRange unmap, ActorRef<Answer> replyTo)
      implements Command {

    /** {@code command} (a MapRange or an UnmapRange) correlated by {@code corr}. */
    public static Correlated of(long corr, Command command, ActorRef<Answer> replyTo) {
      if (command instanceof MapRange m) {
        return new Correlated(corr, m, null, replyTo);
      }
      if (command instanceof UnmapRange u) {
        return new Correlated(corr, null, u, replyTo);
      }
      throw new IllegalArgumentException("only MapRange and UnmapRange are correlated: " + command);
    }
  }

  /**
   * The reply to a {@link Correlated} command: exactly one of {@code mapped}, {@code unmapped},
   * {@code refused} is non-null ({@link #reply()}).
   */
  public record Answer(long corr, Mapped mapped, Unmapped unmapped, Refused refused)
      implements CborSerializable {

    /** The command's reply. */
    public UnitReply reply() {
      return mapped != null ? mapped : unmapped != null ? unmapped : refused;
    }

    /** {@code reply} (Mapped, Unmapped or Refused: what MapRange and UnmapRange answer). */
    public static Answer of(long corr, UnitReply reply) {
      if (reply instanceof Mapped m) {
        return new Answer(corr, m, null, null);
      }
      if (reply instanceof Unmapped u) {
        return new Answer(corr, null, u, null);
      }
      if (reply instanceof Refused r) {
        return new Answer(corr, null, null, r);
      }
      throw new IllegalArgumentException("not an answer of MapRange or UnmapRange: " + reply);
    }
  }

  // ---------------------------------------------------------------- device-facing (DMA)

  /**
   * A burst of DMA requests from function {@code rid}: untranslated requests (translated and
   * performed here: each success is checked against host-frame ownership) or, with {@code
   * atsRequest}, ATS translation requests whose results the device caches in its ATC. The arrays
   * belong to the message. Replies {@link BurstTranslated} to {@code replyTo}.
   */
  public record TranslateBurst(
      int rid,
      int pasid,
      long[] iovas,
      int[] lengths,
      int[] access,
      boolean atsRequest,
      long burstId,
      ActorRef<BurstTranslated> replyTo)
      implements Command {
    public TranslateBurst {
      if (iovas == null || lengths == null || access == null
          || lengths.length != iovas.length || access.length != iovas.length) {
        throw new IllegalArgumentException("TranslateBurst: iovas, lengths, access of one length");
      }
    }
  }

  /**
   * A PRI page request from {@code rid}: routed to the fault sink of the (rid, pasid) attach handle,
   * or, with no handler, answered INVALID to the device at once (io-pgfault.c).
   */
  public record ReportPageRequest(
      int rid, int pasid, int groupId, long address, int perm, boolean lastPage)
      implements Command {}

  /**
   * A page-group response from software (by the fd): forwarded to the device as PageResponded.
   * {@code handleToken} is the token of the attach handle the group was raised under: a response
   * carrying another token answers an older group of the same PRG index and is dropped as stale
   * (0 matches any: senders that route without tokens).
   */
  public record RespondPageRequest(
      int rid, int pasid, int groupId, PageResponseCode code, long handleToken)
      implements Command {}

  public enum PageResponseCode {
    SUCCESS,
    INVALID,
    FAILURE
  }

  /**
   * An MSI write by {@code rid} at {@code address} with {@code data}: interrupt remapping (VT-d,
   * SMMUv3 with an ITS: delivered to the owner when the unit isolates MSIs, else counted as
   * unisolated) or, on PAMU, a write through the LIODN's windows: onto an MSI bank's MSIIR it is
   * delivered to that bank's actor; elsewhere it is a 4-byte DMA write (checked, or a fault).
   */
  public record MsiWrite(int rid, long address, int data) implements Command {}

  /** A device acknowledges the device-TLB invalidation {@code token}. */
  public record AtcInvalidationAcked(int rid, long token) implements Command {}

  /** An MSI bank told its MSIIR address (the unit asks every bank at start). */
  record BankLearned(int bankIndex, long msiirAddress) implements Command {}

  /**
   * The unit's invalidation stream hands the actor a merged batch to execute against the model;
   * {@code executed} completes when the batch's sync completed and every device acknowledged.
   * Local only (the stream and the actor share a JVM), never serialized.
   */
  record ExecuteBatch(InvalidationBatch batch, CompletableFuture<org.apache.pekko.Done> executed)
      implements Command, NoSerializationVerificationNeeded {}

  /** The invalidation stream ended ({@code failure} null: completed). Local only. */
  record InvalidationStreamEnded(Throwable failure)
      implements Command, NoSerializationVerificationNeeded {}

  // ---------------------------------------------------------------- inspection

  /** Replies {@link UnitSnapshotted}. */
  public record GetSnapshot(ActorRef<UnitSnapshotted> replyTo) implements Command {}

  /** Replies {@link UnitStats}. */
  public record GetStats(ActorRef<UnitStats> replyTo) implements Command {}

  /** Replies {@link InvalidationStats}: the counters and bounds of the invalidation stream. */
  public record GetInvalidationStats(ActorRef<InvalidationStats> replyTo) implements Command {}
  /** Replies {@link FaultPipelineStats}: the unit's fault pipeline counters. */
  public record GetFaultStats(ActorRef<FaultPipelineStats> replyTo) implements Command {}

  /** The fd's acknowledgements of one batch, from the unit's pipeline. Internal. */
  record FaultsAccounted(
      int records, int delivered, int lostQueueFull, int lostHandleGone, int lostUnacknowledged)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  // ================================================================ replies

  public sealed interface UnitReply extends CborSerializable
      permits Done,
          Refused,
          DmaOwnerClaimed,
          DomainAllocated,
          Mapped,
          Unmapped,
          DirtyRead,
          UserInvalidated,
          PamuGeometry,
          MsiBankMapped {}

  public enum Done implements UnitReply {
    INSTANCE
  }

  /** A guest mistake: nothing changed. */
  public record Refused(Errno errno, String message) implements UnitReply {}

  /**
   * What iommufd learns of a device's IOMMU at bind (the unit's answer to the DMA-ownership
   * claim): the capabilities GET_HW_INFO reports, the geometry of the domains it allocates, and
   * the reserved regions it must enforce in every IOAS the device attaches to. The fd's model keeps
   * this record as it is, so the region list is copied here: the receiver never shares the unit's.
   */
  public record UnitInfo(
      int unitId,
      String unitName,
      UnitKind kind,
      long pageSizeBitmap,
      int addressWidth,
      long apertureStart,
      long apertureLast,
      int pasidBits,
      boolean enforceCacheCoherency,
      boolean dirtyTracking,
      boolean nesting,
      boolean msiIsolation,
      boolean ats,
      boolean pri,
      List<ReservedRegion> reservedRegions)
      implements CborSerializable {

    public UnitInfo {
      reservedRegions = List.copyOf(reservedRegions);
    }
  }

  public record DmaOwnerClaimed(UnitInfo info) implements UnitReply {}

  public record DomainAllocated(
      int domainId, long pageSizeBitmap, int addressWidth, long apertureStart, long apertureLast)
      implements UnitReply {}

  /**
   * {@code modeledLatencyNs}: what the cost model charges the map: one {@code pte-write} per leaf
   * entry written (fewer with large pages), plus the invalidation of not-present entries a
   * caching-mode unit needs.
   */
  public record Mapped(long bytes, long modeledLatencyNs) implements UnitReply {}

  /**
   * {@code modeledLatencyNs}: modeled time from the command to the reply, the invalidation and its
   * queueing included when {@code deferred} is false. {@code deferred}: the reply came before the
   * invalidation (deferred mode); {@code flushToken} (0 when not deferred) then names it in the
   * {@link FlushCompleted} that will follow.
   */
  public record Unmapped(long bytes, long modeledLatencyNs, long flushToken, boolean deferred)
      implements UnitReply {

    /**
     * The reply to an unmap answered once complete: every cache that may have held the range has
     * dropped it (PAMU: the windows are disabled), so there is no flush to wait for (token 0, not
     * deferred).
     */
    public static Unmapped strict(long bytes, long modeledLatencyNs) {
      return new Unmapped(bytes, modeledLatencyNs, 0, false);
    }
  }

  /**
   * Deferred unmaps of unit {@code unitId} whose invalidation has completed: every IOTLB entry
   * and every device-TLB entry of their ranges is gone (the sync completed and every device
   * acknowledged), at modeled time {@code modeledCompletedAtNs}. The issuer may reuse the IOVA
   * ranges and release the frames of these {@code tokens} now. Each token is reported exactly
   * once; a unit's tokens complete in increasing order. Sent to the {@code flushTo} of the unmaps,
   * one event per flush and listener.
   */
  public record FlushCompleted(int unitId, long[] tokens, long modeledCompletedAtNs)
      implements CborSerializable {

    @Override
    public boolean equals(Object o) {
      return o instanceof FlushCompleted f
          && f.unitId == unitId
          && java.util.Arrays.equals(f.tokens, tokens)
          && f.modeledCompletedAtNs == modeledCompletedAtNs;
    }

    @Override
    public int hashCode() {
      return java.util.Arrays.hashCode(tokens) * 31 + unitId;
    }

    @Override
    public String toString() {
      return "FlushCompleted[unit=" + unitId + ", tokens=" + java.util.Arrays.toString(tokens)
          + ", at=" + modeledCompletedAtNs + "]";
    }
  }

  public record DirtyRead(long[] dirtyIovas, long pageSize) implements UnitReply {}

  /**
   * {@code handled} entries were processed (success or failure); {@code errno} is null when all
   * succeeded, else the errno of entry {@code handled - 1}.
   */
  public record UserInvalidated(int handled, Errno errno, String message, long modeledLatencyNs)
      implements UnitReply {}

  public record PamuGeometry(
      long apertureStart,
      long apertureSize,
      int windowCount,
      int maxWindows,
      boolean windowCountSet,
      boolean enabled)
      implements UnitReply {}

  public record MsiBankMapped(long msiIova) implements UnitReply {}

  /**
   * Per-request outcome of a {@link TranslateBurst}: {@code status[i]} is 0 on success, else
   * {@code FaultReason.ordinal() + 1}; {@code hpas}, {@code prot}, {@code pageShift} are valid on
   * success (ATS requests cache them). {@code modeledLatencyNs} covers the burst, queueing
   * included.
   */
  public record BurstTranslated(
      long burstId,
      byte[] status,
      long[] hpas,
      int[] prot,
      byte[] pageShift,
      long modeledLatencyNs)
      implements CborSerializable {}

  /**
   * What a fault sink (an fd, via its adapter) receives: from a unit, batches of records through
   * the unit's {@link FaultPipeline} ({@link FaultsPublished}); single records
   * ({@link DmaFaulted}, {@link PageRequested}) are the pipeline-less form test doubles send.
   */
  public sealed interface FaultEvent extends CborSerializable
      permits DmaFaulted, PageRequested, FaultsPublished {}

  public record DmaFaulted(DmaFault fault) implements FaultEvent {}

  public record PageRequested(PageRequest request) implements FaultEvent {}

  /**
   * One fault record on its way to the owner of its attach handle: exactly one of {@code fault}
   * and {@code request} is non-null, except in a partials-discarded marker (both null; see
   * {@link #partialsDiscarded}). {@code sink} and {@code handleToken} are the attach handle's when
   * the record was raised; {@code modeledLatencyNs} is the modeled time from the access to the
   * record being reported (cost model plus the unit's reporting queue); {@code publishedWallNs}
   * the wall clock at publishing (0 when none is measured).
   */
  public record PublishedFault(
      ActorRef<FaultEvent> sink,
      long handleToken,
      DmaFault fault,
      PageRequest request,
      long modeledLatencyNs,
      long publishedWallNs)
      implements CborSerializable {

    /**
     * A marker, not a record: the unit's page request queue overflowed and has been drained, so
     * partial groups of the unit's devices may have lost their last page; the owner drops them
     * ({@code iopf_queue_discard_partial}).
     */
    public static PublishedFault partialsDiscarded(ActorRef<FaultEvent> sink, long wallNs) {
      return new PublishedFault(sink, 0L, null, null, 0L, wallNs);
    }

    /** Whether this is the marker of {@link #partialsDiscarded}. */
    public boolean discardsPartials() {
      return fault == null && request == null;
    }
  }

  /**
   * A batch of the pipeline for one sink, records in the order the unit raised them. The fd
   * answers {@link FaultsSettled} once every record is in its queue or counted lost.
   */
  public record FaultsPublished(
      int unitId, List<PublishedFault> records, ActorRef<FaultsSettled> replyTo)
      implements FaultEvent {}

  /**
   * What became of the records of one batch (markers not counted): {@code delivered} into a
   * queue of the fd (FAULT, vEVENTQ) or its fault statistics; lost because the queue was full;
   * lost because the attach handle was gone (detached, replaced, fd closed). {@code vmId}: the
   * fd's VM, for the tenant tag of metrics.
   */
  public record FaultsSettled(int delivered, int lostQueueFull, int lostHandleGone, int vmId)
      implements CborSerializable {}

  /**
   * The fault pipeline's counters of one unit. Conservation: every record published is in
   * flight, delivered, or lost, exactly —
   * {@code publishedFaults + publishedPageRequests = inFlight + delivered + lostIngressFaults +
   * lostIngressPageRequests + lostQueueFull + lostHandleGone + lostUnacknowledged}. Ingress
   * losses are the hardware queue's overflow; {@code ingressLastPagesAnswered} lost last pages
   * the unit answered itself. {@code batches}: messages to fds; the depths are the ingress
   * queues' now.
   */
  public record FaultPipelineStats(
      int unitId,
      String unitName,
      long publishedFaults,
      long publishedPageRequests,
      long lostIngressFaults,
      long lostIngressPageRequests,
      long delivered,
      long lostQueueFull,
      long lostHandleGone,
      long lostUnacknowledged,
      long inFlight,
      long batches,
      long ingressLastPagesAnswered,
      int faultIngressDepth,
      int pageRequestIngressDepth)
      implements CborSerializable {

    public long published() {
      return publishedFaults + publishedPageRequests;
    }

    public long lost() {
      return lostIngressFaults + lostIngressPageRequests + lostQueueFull + lostHandleGone
          + lostUnacknowledged;
    }

    /** {@code published = inFlight + delivered + lost}. */
    public boolean conserved() {
      return published() == inFlight + delivered + lost();
    }
  }

  /**
   * The model's snapshot: one of {@code paging}, {@code pamu} is non-null, per the unit's kind;
   * {@code groups} is the state of every IOMMU group behind the unit, {@code attachHandles} the
   * (rid, pasid) pairs with a fault sink, {@code devices} the registered RIDs.
   */
  public record UnitSnapshotted(
      io.iommulab.hardware.iommu.IommuUnit.Snapshot paging,
      io.iommulab.hardware.pamu.PamuSnapshot pamu,
      List<String> groups,
      List<String> attachHandles,
      List<Integer> devices)
      implements CborSerializable {}

  /**
   * Counters of the unit. {@code unhandledFaults}: faults with no attach handle or sink to receive
   * them, the first of which are in {@code faultLog} (bounded); {@code staleResponses}: page
   * responses for groups no longer pending (answered already, e.g. at detach);
   * {@code msiUnisolated}: MSI writes a unit without MSI isolation let through;
   * {@code pendingInvalidations}: unmaps, detaches etc. whose invalidation has not completed yet
   * (queued in the unit's invalidation stream, parked, or waiting for device-TLB
   * acknowledgements; see {@link InvalidationStats}); {@code staleHitsInWindow} / {@code
   * staleHitViolations}: IOTLB hits the stale-hit oracle found stale while an invalidation covering
   * them was pending (legal) / with none pending (a missed invalidation: fails the run).
   */
  public record UnitStats(
      int unitId,
      String unitName,
      long translations,
      long iotlbHits,
      long iotlbMisses,
      long faults,
      long pageRequests,
      long invalidationDescriptors,
      long syncs,
      long atcInvalidations,
      int iotlbSize,
      int domains,
      long unhandledFaults,
      List<DmaFault> faultLog,
      long pageResponses,
      long staleResponses,
      long msiWrites,
      long msiUnisolated,
      int pendingInvalidations,
      long staleHitsInWindow,
      long staleHitViolations)
      implements CborSerializable {}

  /**
   * The invalidation stream of a unit: its mode and bounds, and what went through it.
   * {@code requests}: invalidation requests admitted (unmaps, detaches, user invalidations ...);
   * {@code batches}: batches executed; {@code rangesIn}/{@code rangesOut}: IOTLB and device-TLB
   * ranges before and after merging; {@code descriptors}, {@code syncs}, {@code atcInvalidations}:
   * what reached the hardware queue and the devices; {@code ingressDepth}: requests in the ingress
   * queue now (at most {@code ingressCapacity}); {@code flushQueueOccupancy}: requests in the
   * deferred flush queue now (at most {@code flush-entries}; 0 in strict mode); {@code parked}/{@code parkedHighWater}: requests
   * waiting for room in the ingress queue (at most {@code maxParked}); {@code pending}: requests
   * admitted or parked and not completed; {@code deferredUnflushed}: deferred unmaps answered
   * whose flush has not completed; {@code refusedBusy}: commands refused EBUSY because the stream
   * was saturated; {@code flushes*}: batches per reason; {@code largestBatch}: most requests in one
   * batch; {@code completed}: requests completed, with the sum and maximum of their modeled
   * latency (command to flush completion, modeled clock) and wall-clock latency (the {@code
   * wallNanos} handed to the unit; 0 without one); {@code staleHitsInWindow}/{@code
   * staleHitViolations}: stale IOTLB hits the oracle saw with/without a covering invalidation
   * pending (see {@link UnitStats}). A PAMU has no stream: everything is 0.
   */
  public record InvalidationStats(
      int unitId,
      String unitName,
      InvalidationPipelineSettings.Mode mode,
      long requests,
      long batches,
      long rangesIn,
      long rangesOut,
      long descriptors,
      long syncs,
      long atcInvalidations,
      int ingressDepth,
      int ingressCapacity,
      int flushQueueOccupancy,
      int parked,
      int parkedHighWater,
      int maxParked,
      int pending,
      int deferredUnflushed,
      long refusedBusy,
      long flushesStrict,
      long flushesFull,
      long flushesTimeout,
      long flushesUrgent,
      int largestBatch,
      long completed,
      long modeledLatencySumNs,
      long modeledLatencyMaxNs,
      long wallLatencySumNs,
      long wallLatencyMaxNs,
      long staleHitsInWindow,
      long staleHitViolations)
      implements CborSerializable {}
}
