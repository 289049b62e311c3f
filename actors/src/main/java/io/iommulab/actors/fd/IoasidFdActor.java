package io.iommulab.actors.fd;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.model.FaultQueueHeader;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.InvalidationEntry;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * One open {@code /dev/iommu} (an {@code iommufd_ctx}): owns
 * the object table and every object's model in {@code io.iommulab.actors.fd.model} — IOASes and
 * their io page tables, pinned pages and locked-memory accounting, HWPTs, device bindings and
 * igroups, FAULT queues, vIOMMUs, vDEVICEs and vEVENTQs.
 *
 * <p>One command per ioctl, with the fields of the iommufd struct (minus {@code size}, {@code
 * __reserved} and user pointers: arrays travel in the message). Every command answers on {@code
 * replyTo} with its own reply record, or {@link Refused} with the errno and a message naming the
 * argument at fault; a refused command changes nothing (the exceptions are the kernel's own:
 * UNMAP stops at the first area it may not remove, after removing the earlier ones; HWPT_INVALIDATE
 * and FAULT writes keep the entries handled before the failing one).
 *
 * <p>Asynchronous work follows iommufd's alloc → effects → finalize / abort: a command is
 * validated and its IDs and IOVA reserved synchronously, so a concurrent command sees the
 * reservation (unmap of an area still being mapped → EBUSY, DESTROY of an object being attached →
 * EBUSY); effects go to unit actors; their replies finalize, or abort by undoing every effect
 * already applied. After {@link Close} every further command is refused with EBADF.
 */
public final class IoasidFdActor {
  private IoasidFdActor() {}

  /**
   * An fd of VM {@code vmId} whose user memory is {@code layout}, with context id {@code ictxId}
   * (unique on the host: units record it as the DMA owner). Pins are reported to {@code memory};
   * KVM-relevant changes and readiness of FAULT queues and vEVENTQs go to {@code events}.
   * {@code injector} fails the model's allocation sites; modeled time comes from {@code clock}.
   * The opener has no capabilities (no CAP_IPC_LOCK, no CAP_SYS_RESOURCE).
   */
  public static Behavior<Command> create(
      int ictxId,
      int vmId,
      GuestMemoryLayout layout,
      UapiSettings settings,
      ActorRef<HostMemoryActor.Command> memory,
      ActorRef<FdEvent> events,
      FaultInjector injector,
      ModeledClock clock) {
    return create(ictxId, vmId, layout, settings, Credentials.NONE, memory, events, injector, clock,
        List.of(), FaultPipelineSettings.defaults());
  }

  /**
   * As above, for an opener with {@code credentials}, on a host whose MSI banks have the MSIIR
   * addresses {@code msiBanks} by bank index ({@code fsl_msi_get_region}; the PAMU container's
   * GET_MSI_BANK_COUNT and MAP_MSI_BANK), with the host's fault-pipeline settings {@code pipeline}
   * (the fd's metrics take the tenant tag of its VM from them).
   */
  public static Behavior<Command> create(
      int ictxId,
      int vmId,
      GuestMemoryLayout layout,
      UapiSettings settings,
      Credentials credentials,
      ActorRef<HostMemoryActor.Command> memory,
      ActorRef<FdEvent> events,
      FaultInjector injector,
      ModeledClock clock,
      List<Long> msiBanks,
      FaultPipelineSettings pipeline) {
    return Behaviors.setup(
        context ->
            Behaviors.withTimers(
                timers ->
                    new FdBehavior(
                        context, timers, ictxId, vmId, layout, settings, credentials, memory, events,
                        injector, clock, List.copyOf(msiBanks), pipeline)));
  }

  /**
   * The opener's capabilities: {@code CAP_IPC_LOCK} makes pins unaccounted ({@code
   * IOPT_PAGES_ACCOUNT_NONE}); {@code CAP_SYS_RESOURCE} may set IOMMU_OPTION_RLIMIT_MODE.
   */
  public record Credentials(boolean capIpcLock, boolean capSysResource)
      implements CborSerializable {
    public static final Credentials NONE = new Credentials(false, false);
  }

  /** Every command; the last two are internal (replies of units, fault events), package-private. */
  public sealed interface Command extends CborSerializable
      permits Destroy,
          IoasAlloc,
          IoasAllowIovas,
          IoasCopy,
          IoasIovaRanges,
          IoasMap,
          IoasUnmap,
          Option,
          HwptAlloc,
          HwptInvalidate,
          HwptSetDirtyTracking,
          HwptGetDirtyBitmap,
          GetHwInfo,
          FaultQueueAlloc,
          FaultRead,
          FaultWrite,
          FaultPoll,
          ViommuAlloc,
          VdeviceAlloc,
          VeventqAlloc,
          VeventqRead,
          DeviceBind,
          DeviceAttach,
          DeviceReplace,
          DeviceDetach,
          DevicePasidAttach,
          DevicePasidReplace,
          DevicePasidDetach,
          DeviceUnbind,
          Close,
          GetSnapshot,
          GetFaultStats,
          ModeCommand,
          UnitAnswered,
          FaultEventReceived,
          SelfCall,
          SelfAnswered,
          FlushReported,
          RetryAsk {}

  // ================================================================ generic and IOAS ioctls

  /** IOMMU_DESTROY. Replies {@link Done}; ENOENT, EBUSY while referenced. */
  public record Destroy(int id, ActorRef<Reply> replyTo) implements Command {}

  /** IOMMU_IOAS_ALLOC. Replies {@link IoasAllocated}; flags ≠ 0 → EOPNOTSUPP. */
  public record IoasAlloc(int flags, ActorRef<Reply> replyTo) implements Command {}

  /**
   * IOMMU_IOAS_ALLOW_IOVAS: atomically replace the allowed list. Replies {@link Done}; EINVAL for a
   * range with start ≥ last or overlapping ranges, EADDRINUSE when a range meets a reserved one.
   */
  public record IoasAllowIovas(int ioasId, List<IovaRange> allowedIovas, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_IOAS_COPY: map {@code [srcIova, +length)} of {@code srcIoasId} into {@code dstIoasId}
   * sharing its pinned pages. Replies {@link IoasCopied}.
   */
  public record IoasCopy(
      int flags,
      int dstIoasId,
      int srcIoasId,
      long length,
      long dstIova,
      long srcIova,
      ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_IOAS_IOVA_RANGES with room for {@code numIovas} ranges. Replies {@link
   * IovaRangesReported} — also on EMSGSIZE, which carries the needed count as the kernel writes it
   * back — or {@link Refused}.
   */
  public record IoasIovaRanges(int ioasId, int numIovas, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_IOAS_MAP: pin {@code [userVa, +length)} and map it at {@code iova} (with {@code
   * FIXED_IOVA}) or at an IOVA the fd picks. Flags: {@code Uapi.IOAS_MAP_*}. Replies {@link
   * IoasMapped}.
   */
  public record IoasMap(
      int flags, int ioasId, long userVa, long length, long iova, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_IOAS_UNMAP of whole areas in {@code [iova, +length)}; {@code iova = 0, length = U64_MAX}
   * unmaps everything. Replies {@link IoasUnmapped} after the units have invalidated.
   */
  public record IoasUnmap(int ioasId, long iova, long length, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_OPTION: {@code Uapi.OPTION_RLIMIT_MODE} (objectId 0) or {@code OPTION_HUGE_PAGES} (an
   * IOAS), op SET or GET. Replies {@link OptionValue}.
   */
  public record Option(int optionId, int op, int objectId, long val64, ActorRef<Reply> replyTo)
      implements Command {}

  // ================================================================ HWPT ioctls

  /**
   * IOMMU_HWPT_ALLOC: a HWPT_PAGING from an IOAS ({@code ptId}, data type NONE) or a HWPT_NESTED
   * from a NEST_PARENT HWPT or a vIOMMU ({@code ptId}, a driver data type with {@code dataLen}
   * bytes). Flags: {@code Uapi.HWPT_ALLOC_*}; {@code faultId} counts with FAULT_ID_VALID. Replies
   * {@link HwptAllocated}.
   */
  public record HwptAlloc(
      int flags,
      int devId,
      int ptId,
      int dataType,
      int dataLen,
      int faultId,
      ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_HWPT_INVALIDATE of a HWPT_NESTED or a vIOMMU: {@code entries} (entry_num of them, each
   * {@code entryLen} bytes in the user's layout) run in order and stop at the first error. Replies
   * {@link HwptInvalidated} once entries ran (entry_num written back), or {@link Refused} for a
   * header error (nothing handled).
   */
  public record HwptInvalidate(
      int hwptId,
      int dataType,
      int entryLen,
      List<InvalidationEntry> entries,
      ActorRef<Reply> replyTo)
      implements Command {}

  /** IOMMU_HWPT_SET_DIRTY_TRACKING ({@code Uapi.HWPT_DIRTY_TRACKING_ENABLE}). Replies Done. */
  public record HwptSetDirtyTracking(int flags, int hwptId, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * IOMMU_HWPT_GET_DIRTY_BITMAP of {@code [iova, +length)} at {@code pageSize} granularity (flag
   * {@code NO_CLEAR}). Replies {@link DirtyBitmap}.
   */
  public record HwptGetDirtyBitmap(
      int hwptId, int flags, long iova, long length, long pageSize, ActorRef<Reply> replyTo)
      implements Command {}

  /** IOMMU_GET_HW_INFO of a bound device; {@code dataLen} is the user buffer's size. */
  public record GetHwInfo(int flags, int devId, int dataLen, ActorRef<Reply> replyTo)
      implements Command {}

  // ================================================================ FAULT

  /** IOMMU_FAULT_QUEUE_ALLOC. Replies {@link FaultQueueAllocated}; flags → EOPNOTSUPP. */
  public record FaultQueueAlloc(int flags, ActorRef<Reply> replyTo) implements Command {}

  /**
   * read(fault_fd, count): whole page-request groups that fit in {@code count} bytes, 40 bytes a
   * record. Replies {@link FaultRecords}; {@code count % 40 ≠ 0} → ESPIPE.
   */
  public record FaultRead(int faultId, int count, ActorRef<Reply> replyTo) implements Command {}

  /**
   * write(fault_fd): responses in order; the first bad one stops. Replies {@link FaultWritten}
   * with the bytes consumed, or {@link Refused} when the first response is bad (unknown cookie,
   * code not SUCCESS/INVALID → EINVAL).
   */
  public record FaultWrite(int faultId, List<HwptPageResponse> responses, ActorRef<Reply> replyTo)
      implements Command {}

  /** poll(fault_fd). Replies {@link Polled}: always writable, readable when a group waits. */
  public record FaultPoll(int faultId, ActorRef<Reply> replyTo) implements Command {}

  // ================================================================ vIOMMU

  /** IOMMU_VIOMMU_ALLOC over a NEST_PARENT HWPT of {@code devId}'s IOMMU. */
  public record ViommuAlloc(int flags, int type, int devId, int hwptId, ActorRef<Reply> replyTo)
      implements Command {}

  /** IOMMU_VDEVICE_ALLOC: {@code devId} appears in {@code viommuId} as {@code virtId}. */
  public record VdeviceAlloc(int viommuId, int devId, long virtId, ActorRef<Reply> replyTo)
      implements Command {}

  /** IOMMU_VEVENTQ_ALLOC: one queue per (vIOMMU, type), {@code veventqDepth} > 0. */
  public record VeventqAlloc(
      int flags, int viommuId, int type, int veventqDepth, ActorRef<Reply> replyTo)
      implements Command {}

  /** read(veventq_fd, count). Replies {@link VeventsRead}. */
  public record VeventqRead(int veventqId, int count, ActorRef<Reply> replyTo)
      implements Command {}

  // ================================================================ device fd (VFIO cdev)

  /**
   * What the host knows of a function when a VMM opens its VFIO cdev: names and the actors that
   * own it. {@code liodn} is -1 off a PAMU.
   */
  public record DeviceHandle(
      String name,
      int rid,
      int liodn,
      int group,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<DeviceActor.Command> device)
      implements CborSerializable {}

  /**
   * VFIO_DEVICE_BIND_IOMMUFD: claim DMA ownership through the unit and create the DEVICE object.
   * Replies {@link DeviceBound}; EPERM when another owner holds the group or MSIs are not
   * isolated (unless allow-unsafe-interrupts), EBUSY when the device is already bound here.
   */
  public record DeviceBind(DeviceHandle handle, ActorRef<Reply> replyTo) implements Command {}

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach the RID to an IOAS (auto domain), a HWPT_PAGING or a
   * HWPT_NESTED. Replies {@link DeviceAttached} with the HWPT id.
   */
  public record DeviceAttach(int devId, int ptId, ActorRef<Reply> replyTo) implements Command {}

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT on an attached RID: replace. Replies {@link DeviceAttached}. */
  public record DeviceReplace(int devId, int ptId, ActorRef<Reply> replyTo) implements Command {}

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT of the RID. Replies Done. */
  public record DeviceDetach(int devId, ActorRef<Reply> replyTo) implements Command {}

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID. Replies {@link DeviceAttached}. */
  public record DevicePasidAttach(int devId, int pasid, int ptId, ActorRef<Reply> replyTo)
      implements Command {}

  /** Replace at an attached PASID. Replies {@link DeviceAttached}. */
  public record DevicePasidReplace(int devId, int pasid, int ptId, ActorRef<Reply> replyTo)
      implements Command {}

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT with a PASID. Replies Done. */
  public record DevicePasidDetach(int devId, int pasid, ActorRef<Reply> replyTo)
      implements Command {}

  /**
   * Close of the device fd (also the hot-unplug path): detach every PASID and the RID, tombstone
   * its vDEVICE, release DMA ownership, destroy the DEVICE object. Replies Done.
   */
  public record DeviceUnbind(int devId, ActorRef<Reply> replyTo) implements Command {}

  // ================================================================ fd lifecycle and tests

  /**
   * close(fd): waits for operations in flight, then destroys every object leaf first, unpins and
   * uncharges everything, and replies {@link Closed}. Later commands are refused with EBADF.
   */
  public record Close(ActorRef<Reply> replyTo) implements Command {}

  /** Test and tooling query: replies {@link Snapshotted}. */
  public record GetSnapshot(ActorRef<Reply> replyTo) implements Command {}

  /** The fd's fault statistics: replies {@link FaultStats} (also after close). */
  public record GetFaultStats(ActorRef<Reply> replyTo) implements Command {}

  // ================================================================ internal messages

  /** A unit answered an ask of the fd; {@code then} continues the operation. Never leaves the JVM. */
  record UnitAnswered(
      java.util.function.Consumer<IommuUnitActor.UnitReply> then, IommuUnitActor.UnitReply reply)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  /** A unit's deferred unmaps of this fd were flushed (through the fd's adapter). */
  record FlushReported(IommuUnitActor.FlushCompleted flush) implements Command {}

  /**
   * Retry an ask that a unit refused with EBUSY (its invalidation stream was saturated and nothing
   * changed), after a backoff on the fd's timers. Never leaves the JVM.
   */
  record RetryAsk(Runnable ask)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  /** A fault or page request of one of the fd's attach handles, through its adapter. */
  record FaultEventReceived(IommuUnitActor.FaultEvent event)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  /**
   * A mode's step that runs one of the fd's own operations: {@code action} starts it with {@code
   * replyTo} (an ask of the fd by itself, so the reply comes back as {@link SelfAnswered}); it
   * skips the closed check, being part of an operation already in flight. Never leaves the JVM.
   */
  record SelfCall(java.util.function.Consumer<ActorRef<Reply>> action, ActorRef<Reply> replyTo)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  /** The fd answered a {@link SelfCall}; {@code then} continues the mode's operation. */
  record SelfAnswered(java.util.function.Consumer<Reply> then, Reply reply)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  // ================================================================ modes (the seed threads)

  /**
   * The commands of the fd's modes — the seed threads' designs on the same fd, beside the merged
   * iommufd uAPI above: the legacy VFIO container (type1 and compat IOAS, VFIO-PAMU), the
   * snoop-control flags (IOAS_ALLOC / HWPT_ALLOC flags, {@code ModeUapi}), per-VM PASIDs with
   * per-device bind/unbind/flush of guest page tables, and software nesting.
   */
  public sealed interface ModeCommand extends Command
      permits VfioIoas,
          VfioGroupSetContainer,
          VfioSetIommu,
          VfioCheckExtension,
          VfioIommuGetInfo,
          VfioMapDma,
          VfioUnmapDma,
          PamuGetAttr,
          PamuSetAttr,
          PamuGetMsiBankCount,
          PamuMapMsiBank,
          PamuUnmapMsiBank,
          SvaPasidAlloc,
          SvaPasidFree,
          SvaBindPgtbl,
          SvaUnbindPgtbl,
          SvaFlush,
          IoasidCreateNesting,
          SoftNestMap,
          SoftNestUnmap {}

  /**
   * IOMMU_VFIO_IOAS ({@code ModeUapi.VFIO_IOAS_*}): GET the compat IOAS (ENODEV without one), SET
   * it to {@code ioasId} (ENOENT), CLEAR it. Replies {@link VfioIoasId}.
   */
  public record VfioIoas(int op, int ioasId, ActorRef<Reply> replyTo) implements ModeCommand {}

  /**
   * VFIO_GROUP_SET_CONTAINER of the bound device's group: behind a paging IOMMU the device is
   * attached to the compat IOAS, created on the first group ({@code
   * iommufd_vfio_compat_ioas_create}); behind a PAMU its group joins the PAMU container (attached
   * to the container's domain once VFIO_SET_IOMMU(FSL_PAMU) is done). Replies {@link Done}; ENOENT
   * for an unknown device, EINVAL for a group of the wrong kind for the container's type or
   * already in it, and the attach errnos.
   */
  public record VfioGroupSetContainer(int devId, ActorRef<Reply> replyTo) implements ModeCommand {}

  /** VFIO_SET_IOMMU(TYPE1 | TYPE1v2 | FSL_PAMU). Replies Done. See {@code VfioType1}, {@code PamuIommu}. */
  public record VfioSetIommu(int type, ActorRef<Reply> replyTo) implements ModeCommand {}

  /** VFIO_CHECK_EXTENSION. Replies {@link VfioExtension}. */
  public record VfioCheckExtension(int extension, ActorRef<Reply> replyTo) implements ModeCommand {}

  /** VFIO_IOMMU_GET_INFO. Replies {@link VfioIommuInfo}. */
  public record VfioIommuGetInfo(ActorRef<Reply> replyTo) implements ModeCommand {}

  /**
   * VFIO_IOMMU_MAP_DMA ({@code ModeUapi.VFIO_DMA_MAP_FLAG_*}): type1 rules, or VFIO-PAMU's whole
   * windows on a PAMU container. Replies Done.
   */
  public record VfioMapDma(int flags, long vaddr, long iova, long size, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /**
   * VFIO_IOMMU_UNMAP_DMA ({@code ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL}): v1 / v2 rules, or whole PAMU
   * windows. Replies {@link VfioDmaUnmapped} with the size unmapped.
   */
  public record VfioUnmapDma(int flags, long iova, long size, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /** VFIO_IOMMU_PAMU_GET_ATTR ({@code ModeUapi.VFIO_ATTR_*}). Replies {@link PamuAttr}. */
  public record PamuGetAttr(int attribute, ActorRef<Reply> replyTo) implements ModeCommand {}

  /**
   * VFIO_IOMMU_PAMU_SET_ATTR: GEOMETRY takes {@code [apertureStart, apertureEnd]}, WINDOWS takes
   * {@code windows}. Replies Done.
   */
  public record PamuSetAttr(
      int attribute, long apertureStart, long apertureEnd, int windows, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /** VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT. Replies {@link PamuMsiBankCount}. */
  public record PamuGetMsiBankCount(ActorRef<Reply> replyTo) implements ModeCommand {}

  /**
   * VFIO_IOMMU_PAMU_MAP_MSI_BANK: bank {@code bankIndex} in the window holding {@code iova}.
   * Replies {@link PamuMsiBankMapped} with the MSI address devices must use.
   */
  public record PamuMapMsiBank(int flags, int bankIndex, long iova, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /** VFIO_IOMMU_PAMU_UNMAP_MSI_BANK of the bank mapped at {@code iova}. Replies Done. */
  public record PamuUnmapMsiBank(long iova, ActorRef<Reply> replyTo) implements ModeCommand {}

  /** IOASID_ALLOC: a PASID of this VM. Replies {@link SvaPasid}; ENOSPC past the VM's quota. */
  public record SvaPasidAlloc(ActorRef<Reply> replyTo) implements ModeCommand {}

  /** IOASID_FREE. Replies Done; EPERM for a PASID the VM does not hold, EBUSY while bound. */
  public record SvaPasidFree(int pasid, ActorRef<Reply> replyTo) implements ModeCommand {}

  /**
   * USVA_BIND_PGTBL on device {@code devId}: the guest's stage-1 table ({@code dataType}, {@code
   * dataLen} bytes of {@code Uapi.HWPT_DATA_*}) bound at {@code pasid} over the VM's GPA space.
   * Replies {@link SvaBound}. See {@code SvaPasids} for the errnos.
   */
  public record SvaBindPgtbl(int devId, int pasid, int dataType, int dataLen, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /** USVA_UNBIND_PGTBL. Replies Done. */
  public record SvaUnbindPgtbl(int devId, int pasid, ActorRef<Reply> replyTo) implements ModeCommand {}

  /**
   * USVA_FLUSH_CACHE: the guest invalidates its bound table ({@code entries} as HWPT_INVALIDATE's).
   * Replies {@link HwptInvalidated}.
   */
  public record SvaFlush(
      int devId,
      int pasid,
      int dataType,
      int entryLen,
      List<InvalidationEntry> entries,
      ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /**
   * IOASID_CREATE_NESTING with software nesting (seed 001, 5.3): a GIOVA space nested on IOAS
   * {@code parentIoasId}, whose shadow domain — built by the fd, on {@code devId}'s IOMMU, with or
   * without hardware nesting — maps GIOVA straight to the host pages behind the parent's GPAs.
   * Replies {@link HwptAllocated}; devices attach to it by its ID (VFIO_DEVICE_ATTACH_IOMMUFD_PT).
   */
  public record IoasidCreateNesting(int devId, int parentIoasId, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /**
   * The guest maps {@code [giova, +length)} to {@code gpa} in its stage 1 (and invalidates): the
   * fd keeps the entry and shadows what the parent maps. Replies Done.
   */
  public record SoftNestMap(int hwptId, long giova, long gpa, long length, int prot, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  /** The guest unmaps whole entries in {@code [giova, +length)}. Replies {@link SoftNestUnmapped}. */
  public record SoftNestUnmap(int hwptId, long giova, long length, ActorRef<Reply> replyTo)
      implements ModeCommand {}

  // ================================================================ replies

  public sealed interface Reply extends CborSerializable
      permits Refused,
          Done,
          IoasAllocated,
          IoasMapped,
          IoasUnmapped,
          IoasCopied,
          IovaRangesReported,
          OptionValue,
          HwptAllocated,
          HwptInvalidated,
          DirtyBitmap,
          HwInfo,
          FaultQueueAllocated,
          FaultRecords,
          FaultWritten,
          Polled,
          ViommuAllocated,
          VdeviceAllocated,
          VeventqAllocated,
          VeventsRead,
          DeviceBound,
          DeviceAttached,
          Closed,
          Snapshotted,
          VfioIoasId,
          VfioExtension,
          VfioIommuInfo,
          VfioDmaUnmapped,
          PamuAttr,
          PamuMsiBankCount,
          PamuMsiBankMapped,
          SvaPasid,
          SvaBound,
          SoftNestUnmapped,
          FaultStats {}

  /** A guest mistake (or an injected failure): nothing changed. */
  public record Refused(Errno errno, String message) implements Reply {}

  public enum Done implements Reply {
    INSTANCE
  }

  public record IoasAllocated(int outIoasId) implements Reply {}

  /**
   * {@code modeledLatencyNs}: the cost model's charge of the map in every domain of the IOAS,
   * summed (the kernel fills the domains one after the other, {@code iopt_area_fill_domains}).
   */
  public record IoasMapped(long iova, long modeledLatencyNs) implements Reply {}

  /**
   * {@code length}: bytes unmapped. {@code awaitingFlushBytes}: of those, bytes whose unmap a unit
   * answered before invalidating its caches (deferred mode): their IOVA stays reserved and their
   * pages pinned until the flush, which the fd reports to its VM ({@link IovaReleased}) area by
   * area; 0 when every unit invalidated before answering (strict). {@code modeledLatencyNs}: the
   * units' modeled unmap latencies (page-table writes, invalidation and its sync), summed over the
   * domains, which the kernel unmaps one after the other.
   */
  public record IoasUnmapped(long length, long awaitingFlushBytes, long modeledLatencyNs) implements Reply {}

  public record IoasCopied(long dstIova) implements Reply {}

  /**
   * The written-back struct: {@code numIovas} is the total number of ranges; {@code errno} is
   * EMSGSIZE (and {@code allowedIovas} holds the ranges that fitted) when the caller's array was
   * too small, else null.
   */
  public record IovaRangesReported(
      Errno errno, int numIovas, long outIovaAlignment, List<IovaRange> allowedIovas)
      implements Reply {}

  public record OptionValue(long val64) implements Reply {}

  /**
   * {@code outHwptId}; and, for the emulation only, where the hardware holds it: the unit and its
   * domain id (a guest writes its stage-1 table of a nested domain through the unit).
   */
  public record HwptAllocated(int outHwptId, int unitId, int domainId) implements Reply {}

  /**
   * The written-back {@code entryNum} (entries handled, success or failure) and the errno of the
   * entry that stopped the array (null when all succeeded).
   */
  public record HwptInvalidated(int entryNum, Errno errno, String message) implements Reply {}

  /** One bit per {@code pageSize} page from the requested iova, as u64 words. */
  public record DirtyBitmap(long[] data) implements Reply {}

  /**
   * IOMMU_GET_HW_INFO out fields: {@code outDataType} ({@code Uapi.HW_INFO_TYPE_*}), {@code
   * dataLen} the kernel's length, {@code outCapabilities}, {@code outMaxPasidLog2}; and the
   * reserved regions and page sizes the device's IOMMU reports. {@code enforceCacheCoherency}:
   * the IOMMU can enforce coherency (VT-d ECAP.SC, reported in the driver data's {@code
   * ecap_reg}) — what the snoop-control mode's device info carries (seed 002).
   */
  public record HwInfo(
      int outDataType,
      int dataLen,
      long outCapabilities,
      int outMaxPasidLog2,
      long pageSizeBitmap,
      int addressWidth,
      List<IovaRange> reservedRegions,
      boolean enforceCacheCoherency)
      implements Reply {}

  public record FaultQueueAllocated(int outFaultId) implements Reply {}

  /**
   * Records of whole groups; {@code bytes} = 40 × records. {@code headers}: one per node read, in
   * order — a group's {sequence, cookie, record count}, then the lost-events node (flag
   * LOST_EVENTS) when the read reached it. Sequence gaps and the lost-events node give the exact
   * number of requests the full queue lost ({@code Fault}).
   */
  public record FaultRecords(List<HwptPgfault> records, int bytes, List<FaultQueueHeader> headers)
      implements Reply {}

  public record FaultWritten(int bytes) implements Reply {}

  /** {@code readable}: EPOLLIN; the queue is always writable (EPOLLOUT). */
  public record Polled(boolean readable, boolean writable) implements Reply {}

  public record ViommuAllocated(int outViommuId) implements Reply {}

  public record VdeviceAllocated(int outVdeviceId) implements Reply {}

  public record VeventqAllocated(int outVeventqId) implements Reply {}

  public record VeventsRead(List<Vevent> events, int bytes) implements Reply {}

  /** {@code devId}: the DEVICE object; {@code info}: what the unit reported at the claim. */
  public record DeviceBound(int devId, IommuUnitActor.UnitInfo info) implements Reply {}

  public record DeviceAttached(int ptId) implements Reply {}

  /**
   * close completed: {@code objectsDestroyed} IDs were held when close began (objects of every
   * type, tombstones included); {@code pagesUnpinned} 4 KiB pages unpinned over the fd's life.
   */
  public record Closed(int objectsDestroyed, long pagesUnpinned) implements Reply {}

  public record Snapshotted(FdSnapshot snapshot) implements Reply {}

  /** IOMMU_VFIO_IOAS written back: the compat IOAS (0 after CLEAR). */
  public record VfioIoasId(int ioasId) implements Reply {}

  /** VFIO_CHECK_EXTENSION's return value. */
  public record VfioExtension(int value) implements Reply {}

  /**
   * VFIO_IOMMU_GET_INFO: {@code flags} (PGSIZES|CAPS), {@code iovaPgsizes}, the IOVA_RANGE
   * capability's ranges and the DMA_AVAIL capability.
   */
  public record VfioIommuInfo(int flags, long iovaPgsizes, List<IovaRange> iovaRanges, int dmaAvail)
      implements Reply {}

  /** VFIO_IOMMU_UNMAP_DMA's size out. */
  public record VfioDmaUnmapped(long size) implements Reply {}

  /** VFIO_IOMMU_PAMU_GET_ATTR: the aperture and the window count (the maximum before it is set). */
  public record PamuAttr(long apertureStart, long apertureEnd, int windows) implements Reply {}

  public record PamuMsiBankCount(int count) implements Reply {}

  /** The MSI address (iova) a device must write to reach the mapped bank. */
  public record PamuMsiBankMapped(long msiIova) implements Reply {}

  public record SvaPasid(int pasid) implements Reply {}

  /** The bound guest table's nested HWPT and where the hardware holds it (as HwptAllocated). */
  public record SvaBound(int hwptId, int unitId, int domainId) implements Reply {}

  /** Bytes of guest entries unmapped. */
  public record SoftNestUnmapped(long length) implements Reply {}
  /**
   * The fd's fault statistics: what became of every fault record a unit's pipeline delivered to
   * this fd (each record counts once, when it arrives). Page requests: {@code pageRequestsQueued}
   * into a FAULT queue (partial or closing a group), {@code pageRequestsLostQueueFull} at a full
   * one, {@code pageRequestsHandleGone} whose attach handle was gone, {@code pageRequestsFailed}
   * whose group allocation failed (answered FAILURE). DMA faults: {@code dmaFaultsToVeventq}
   * queued, {@code dmaFaultsLostVeventqFull} lost at a full vEVENTQ, {@code dmaFaultsRecorded}
   * counted here only, {@code dmaFaultsOwnerTold} PAMU violations the VM was told of, {@code
   * dmaFaultsHandleGone}. {@code partialsDiscarded}: partial requests queued, then dropped unread
   * because their group's last page was lost or their unit's page request queue overflowed (groups
   * withdrawn at detach, replace or destroy are answered INVALID and not counted here); {@code
   * batches}: pipeline messages received.
   * {@code pageRequestsHeld}: requests in the fd's FAULT queues now (partial or unread). {@code
   * delivered()} and {@code lost()} match the units' pipeline counters.
   */
  public record FaultStats(
      int ictxId,
      int vmId,
      long pageRequestsHeld,
      long pageRequestsQueued,
      long pageRequestsLostQueueFull,
      long pageRequestsHandleGone,
      long pageRequestsFailed,
      long dmaFaultsToVeventq,
      long dmaFaultsLostVeventqFull,
      long dmaFaultsRecorded,
      long dmaFaultsOwnerTold,
      long dmaFaultsHandleGone,
      long partialsDiscarded,
      long batches)
      implements Reply {

    public long delivered() {
      return pageRequestsQueued + dmaFaultsToVeventq + dmaFaultsRecorded + dmaFaultsOwnerTold;
    }

    public long lost() {
      return pageRequestsLostQueueFull + pageRequestsHandleGone + pageRequestsFailed
          + dmaFaultsLostVeventqFull + dmaFaultsHandleGone;
    }
  }

  // ================================================================ events to the VM

  /** What the fd tells its VM (the KVM side and the poll waiters) without being asked. */
  public sealed interface FdEvent extends CborSerializable
      permits NonCoherentDmaAppeared,
          NonCoherentDmaDisappeared,
          FaultQueueReadable,
          VeventqReadable,
          DeviceDmaDisabled,
          IovaReleased {}

  /**
   * The fd's DMA became non-coherent: {@code devId} was attached to a domain that does not
   * enforce cache coherency while no other attachment of the fd was (KVM must start WBINVD
   * emulation: {@code kvm_arch_register_noncoherent_dma}). Sent on that transition only (the
   * snoop-control mode, {@code SnoopControl}).
   */
  public record NonCoherentDmaAppeared(int ictxId, int devId, String device) implements FdEvent {}

  /**
   * The fd's last attachment to a non-enforcing domain went away ({@code devId}'s detach, replace
   * or unbind): KVM may stop WBINVD emulation. Sent on that transition only.
   */
  public record NonCoherentDmaDisappeared(int ictxId, int devId, String device)
      implements FdEvent {}

  /**
   * The area {@code [iova, +length)} of IOAS {@code ioasId}, unmapped earlier with a deferred
   * flush, is flushed from every IOTLB and device TLB: its IOVA is free again and its pages are
   * unpinned. From now on no DMA can reach its frames through the fd's domains.
   */
  public record IovaReleased(int ictxId, int ioasId, long iova, long length) implements FdEvent {}

  /** A FAULT queue's deliver list went from empty to non-empty (EPOLLIN edge). */
  public record FaultQueueReadable(int ictxId, int faultId) implements FdEvent {}

  /** A vEVENTQ went from empty to non-empty. */
  public record VeventqReadable(int ictxId, int veventqId) implements FdEvent {}

  /**
   * A device of this fd lost DMA by an unrecoverable fault: on PAMU, an access violation made
   * the unit disable the device's LIODN ({@code pamu_av_isr}); DMA stays blocked until the VMM
   * maps (or re-enables) its windows again. {@code reason} is the violation (a FaultReason name),
   * {@code iova} where it happened.
   */
  public record DeviceDmaDisabled(int ictxId, int devId, String device, String reason, long iova)
      implements FdEvent {}
}
