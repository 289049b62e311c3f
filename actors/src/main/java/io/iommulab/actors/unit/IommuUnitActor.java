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
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.cost.CostModel;
import java.util.Map;
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
    UnitActorBase.Wiring wiring =
        new UnitActorBase.Wiring(unitId, settings.name(), settings.kind(), cost, clock, memory,
            Map.copyOf(msiBanks));
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
          BankLearned,
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
      implements Command {

    /** A function without PRI (the original form of the command). */
    public RegisterDevice(
        int rid,
        int liodn,
        int group,
        int pasidBits,
        boolean ats,
        ActorRef<DeviceActor.Command> device,
        ActorRef<UnitReply> replyTo) {
      this(rid, liodn, group, pasidBits, ats, false, device, replyTo);
    }
  }

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
   * sync. Replies {@link Unmapped} only when every targeted cache has dropped its entries (strict).
   * EINVAL when the range cuts a large page or is empty, ENOENT for an unknown domain. PAMU:
   * disables the windows; the domain when empty.
   */
  public record UnmapRange(int domainId, long iova, long length, ActorRef<UnitReply> replyTo)
      implements Command {}

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
   * object. Replies Done (after the PASID-cache flush in caching mode); ENODEV for an unknown RID,
   * ENOENT for an unknown domain, EPERM when no iommufd context claimed the RID
   * ({@link ClaimDmaOwner}: iommufd attaches only bound devices), EINVAL for a PASID beyond the
   * device's or unit's width (any PASID on PAMU), EBUSY if already attached at that PASID (use
   * Replace).
   */
  public record Attach(
      int rid,
      int pasid,
      int domainId,
      ActorRef<FaultEvent> faultSink,
      ActorRef<UnitReply> replyTo)
      implements Command {}

  /**
   * Atomically switches (rid, pasid) to another domain; the old translation is invalidated (IOTLB,
   * then ATC) before {@link Done}. EINVAL when not attached; same domain is a no-op. Page-request
   * groups still pending at the old domain's sink are answered INVALID. EOPNOTSUPP on PAMU.
   */
  public record Replace(
      int rid,
      int pasid,
      int domainId,
      ActorRef<FaultEvent> faultSink,
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

  /** A page-group response from software (by the fd): forwarded to the device as PageResponded. */
  public record RespondPageRequest(int rid, int pasid, int groupId, PageResponseCode code)
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

  // ---------------------------------------------------------------- inspection

  /** Replies {@link UnitSnapshotted}. */
  public record GetSnapshot(ActorRef<UnitSnapshotted> replyTo) implements Command {}

  /** Replies {@link UnitStats}. */
  public record GetStats(ActorRef<UnitStats> replyTo) implements Command {}

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
   * What iommufd learns of a device's IOMMU at bind: GET_HW_INFO data and the reserved regions it
   * must enforce in every IOAS the device attaches to.
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
      implements CborSerializable {}

  public record DmaOwnerClaimed(UnitInfo info) implements UnitReply {}

  public record DomainAllocated(
      int domainId, long pageSizeBitmap, int addressWidth, long apertureStart, long apertureLast)
      implements UnitReply {}

  public record Mapped(long bytes) implements UnitReply {}

  /** {@code modeledLatencyNs}: modeled time of the unmap including invalidation and queueing. */
  public record Unmapped(long bytes, long modeledLatencyNs) implements UnitReply {}

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

  /** What a fault sink (an fd's FAULT object, via its adapter) receives. */
  public sealed interface FaultEvent extends CborSerializable permits DmaFaulted, PageRequested {}

  public record DmaFaulted(DmaFault fault) implements FaultEvent {}

  public record PageRequested(PageRequest request) implements FaultEvent {}

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
      implements CborSerializable {

    /** The model's snapshot alone (the original form of the reply). */
    public UnitSnapshotted(
        io.iommulab.hardware.iommu.IommuUnit.Snapshot paging,
        io.iommulab.hardware.pamu.PamuSnapshot pamu) {
      this(paging, pamu, List.of(), List.of(), List.of());
    }
  }

  /**
   * Counters of the unit. {@code unhandledFaults}: faults with no attach handle or sink to receive
   * them, the first of which are in {@code faultLog} (bounded); {@code staleResponses}: page
   * responses for groups no longer pending (answered already, e.g. at detach);
   * {@code msiUnisolated}: MSI writes a unit without MSI isolation let through;
   * {@code pendingInvalidations}: unmaps, detaches etc. waiting for device-TLB acknowledgements.
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
      int pendingInvalidations)
      implements CborSerializable {

    /** The original counters; the later ones zero. */
    public UnitStats(
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
        int domains) {
      this(unitId, unitName, translations, iotlbHits, iotlbMisses, faults, pageRequests,
          invalidationDescriptors, syncs, atcInvalidations, iotlbSize, domains, 0, List.of(), 0, 0,
          0, 0, 0);
    }
  }
}
