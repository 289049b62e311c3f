package io.iommulab.actors.vm;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.GuestFd.Area;
import io.iommulab.actors.vm.GuestFd.Binding;
import io.iommulab.actors.vm.GuestFd.Ioas;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;
import kamon.Kamon;
import kamon.metric.Counter;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ChildFailed;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.StashBuffer;

/**
 * One guest. Owns:
 *
 * <ul>
 *   <li>its memory layout ({@link GuestMemoryLayout}, immutable), allocated through the {@link
 *       HostMemoryActor} when the VM starts and released when it shuts down;
 *   <li>its assigned devices ({@link DeviceHandle}s handed in by the host) and which of them the
 *       guest has released (hot-unplug);
 *   <li>its IOMMU fds: {@link IoasidFdActor} children, one per {@link OpenFd}, and what the guest
 *       bound, allocated, attached and mapped through each ({@link GuestFd});
 *   <li>its guest IOMMU driver state: the VM's PASID set ({@link PasidAllocator}, per VM as in the
 *       2021 /dev/ioasid series), the IOVA allocator of its DMA buffers ({@link IovaAllocator}),
 *       its stage-1 writes to nested domains;
 *   <li>its KVM side ({@link KvmVfio}): the device files on the KVM VFIO device, the non-coherent
 *       DMA registrations its fds report and the WBINVD emulation they switch;
 *   <li>the stale-translation oracle ({@link StaleDmaOracle}) over the DMA it issues.
 * </ul>
 *
 * <p><b>The guest-driver API</b> (for scenarios and tests) is a thin, correct VMM: open an fd,
 * bind a device to it ({@code VFIO_DEVICE_BIND_IOMMUFD}), allocate an IOAS, attach a device (a PRI
 * device through a HWPT with the fd's FAULT queue, others through the IOAS's auto domain), map a
 * buffer (a GPA range at an IOVA the VM's allocator picks, or fixed: {@code IOMMU_IOAS_MAP} with
 * FIXED_IOVA at the buffer's user VA), unmap it, run a DMA burst, release a device (unplug), shut
 * down. The fd enforces iommufd's rules and answers with its errno; the VM adds only what a
 * guest driver knows (which device, which buffer). The guest's IOMMU operations run one at a time
 * (queued in arrival order); DMA, WBINVD and inspection are not queued behind them.
 *
 * <p><b>KVM:</b> the VMM adds every bound device's file to the KVM VFIO device; the fd tells when
 * a device whose IOMMU cannot enforce cache coherency joins or leaves it ({@link
 * IoasidFdActor.NonCoherentDmaAppeared}), and KVM's WBINVD emulation follows ({@link KvmVfio}).
 *
 * <p><b>Faults:</b> when the fd says a FAULT queue became readable, the VM reads whole page
 * request groups, resolves each request (inside a lazily mapped buffer it maps the page; inside a
 * mapped buffer nothing is needed; elsewhere it fails) and answers each group by its cookie,
 * then reads again until the queue is empty. Unrecoverable DMA faults show in the burst's status.
 *
 * <p><b>Oracle hooks:</b> the VM knows when each of its unmaps returned; each burst it issues
 * carries the set of its accesses whose IOVA had been unmapped (and the unmap had returned) at
 * issue; an access of that set that completes is a stale-translation violation, counted (Kamon
 * {@code iommulab.vm.stale-dma.violations}, tagged by tenant) and recorded with the seed and the
 * events that led to it.
 *
 * <p>Guest mistakes are answered {@link Refused} (errno and a message naming the argument) and
 * change nothing; a broken invariant is a bug and throws, and the host's supervisor stops the VM.
 * An fd or unit that does not answer, or an fd that fails, is a bug of that actor: the operation
 * is answered EIO and the failure kept for the shutdown report. Until the VM's memory is
 * allocated commands are stashed; if allocation is refused the VM tells its creator and stops.
 */
public final class VmActor extends AbstractBehavior<VmActor.Command> {

  /** Commands stashed while the VM waits for its memory, and IOMMU operations queued at most. */
  static final int STASH_CAPACITY = 1024;

  /** IOVAs the guest gives its DMA buffers: from 1 MiB up to 2^39 (a 3-level table reaches it). */
  static final long IOVA_BASE = 1L << 20;

  static final long IOVA_LIMIT = 1L << 39;

  static final long PAGE = 4096;

  /**
   * IOMMU fds a VM may hold open at once. Each fd's context id ({@code ictxId}, which units record
   * as the DMA owner) is {@code vmId * MAX_FDS + slot}: unique on the host for VM ids below
   * {@link #MAX_VM_ID}.
   */
  public static final int MAX_FDS = 1024;

  /** The largest VM id whose context ids fit in an int. */
  public static final int MAX_VM_ID = Integer.MAX_VALUE / MAX_FDS - 1;

  /** Status values 1..this of a completed access are fault reasons ({@code ordinal() + 1}). */
  private static final int FAULT_REASONS = FaultReason.values().length;

  /** {@link MapBuffer#iova()} asking the VM's allocator for the IOVA. */
  public static final long AUTO_IOVA = -1;

  // ================================================================ protocol

  public sealed interface Command extends CborSerializable
      permits AllocPasid,
          FreePasid,
          OpenFd,
          CloseFd,
          BindDevice,
          UnbindDevice,
          AllocIoas,
          AttachDevice,
          DetachDevice,
          MapBuffer,
          UnmapBuffer,
          WriteStage1,
          ClearStage1,
          InvalidateStage1,
          RunDma,
          GuestWbinvd,
          ReleaseDevice,
          AdoptDevice,
          AttachDevicePasid,
          AttachDeviceNested,
          GetVmState,
          Shutdown,
          MemoryAnswered,
          DmaAnswered,
          MemoryReleased,
          UnitAnswered,
          FdAnswered,
          FdEventReceived,
          ReadFaults {}

  /** Allocates a PASID from the VM's set; replies {@link PasidAllocated}, ENOSPC at the quota. */
  public record AllocPasid(ActorRef<VmReply> replyTo) implements Command {}

  /** Frees a PASID; replies {@link PasidFreed}, ENOENT when the VM does not hold it. */
  public record FreePasid(int pasid, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Opens an IOMMU fd ({@code open("/dev/iommu")}): spawns its {@link IoasidFdActor}. Replies
   * {@link FdOpened}; ENOSPC with {@link #MAX_FDS} open.
   */
  public record OpenFd(ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Closes fd {@code fd}: the fd detaches and unbinds its devices and destroys every object, leaf
   * first, unpinning everything. Replies {@link FdClosed}; EBADF for an fd that is not open.
   */
  public record CloseFd(int fd, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Binds {@code device} to fd {@code fd} ({@code VFIO_DEVICE_BIND_IOMMUFD}): the fd claims DMA
   * ownership of its group, and the device's file joins the KVM VFIO device. Replies {@link
   * DeviceBound}; EBADF, ENOENT (not this VM's), ENODEV (released), EBUSY (already bound), or the
   * fd's refusal (EPERM: another owner holds the group, or its MSIs are not isolated).
   */
  public record BindDevice(int fd, String device, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Unbinds {@code device} from fd {@code fd}, detaching it first if attached; its file leaves the
   * KVM VFIO device. Replies {@link DeviceUnbound}; EBADF, ENOENT when not bound to that fd.
   */
  public record UnbindDevice(int fd, String device, ActorRef<VmReply> replyTo) implements Command {}

  /** {@code IOMMU_IOAS_ALLOC} on fd {@code fd}; replies {@link IoasAllocated}; EBADF, ENOMEM. */
  public record AllocIoas(int fd, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Attaches bound {@code device} to IOAS {@code ioasId} of fd {@code fd}: a PRI-capable device
   * through a HWPT_PAGING allocated with the fd's FAULT queue (one per IOAS and unit, so its page
   * requests reach this VM), others through the IOAS (the fd's auto domain). Replies {@link
   * DeviceAttached}; EBADF; ENOENT (not bound, no such IOAS); EBUSY (attached already); the fd's
   * refusal (EADDRINUSE: an area covers a region the device's unit reserves; EOPNOTSUPP: a PAMU).
   */
  public record AttachDevice(int fd, String device, int ioasId, ActorRef<VmReply> replyTo)
      implements Command {}

  /** Detaches {@code device}; replies {@link DeviceDetached}; EBADF, ENOENT, EINVAL (not attached). */
  public record DetachDevice(int fd, String device, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Maps guest memory {@code [gpa, gpa + length)} at {@code iova} ({@link #AUTO_IOVA}: the VM's
   * allocator picks a size-aligned IOVA) in IOAS {@code ioasId} of fd {@code fd}, with {@code
   * prot} ({@link Access#READ}, {@link Access#WRITE}). {@code lazy}: pages are installed on page
   * request. Replies {@link BufferMapped}; EBADF; ENOENT (no IOAS); EINVAL (length or address not
   * 4 KiB aligned, no access bit); EFAULT (outside guest memory); EEXIST (IOVA in use); ENOSPC (no
   * IOVA left); the fd's refusal (EINVAL: IOVA in a reserved region; ENOMEM: over RLIMIT_MEMLOCK).
   */
  public record MapBuffer(
      int fd, int ioasId, long gpa, long length, long iova, int prot, boolean lazy, ActorRef<VmReply> replyTo)
      implements Command {}

  /**
   * Unmaps every buffer inside {@code [iova, iova + length)} of IOAS {@code ioasId} of fd {@code
   * fd}, one {@code IOMMU_IOAS_UNMAP} per buffer; each returns once every domain's invalidation has
   * completed (strict), and the oracle is told. Replies {@link BufferUnmapped};
   * EBADF; ENOENT (no IOAS, nothing there, or an area only partly inside: areas are never split);
   * EINVAL (length 0).
   */
  public record UnmapBuffer(int fd, int ioasId, long iova, long length, ActorRef<VmReply> replyTo)
      implements Command {}

  /**
   * The guest IOMMU driver writes its stage-1 table of nested domain {@code nestedDomainId} (on
   * the unit of {@code device}): {@code [iova, +length)} → guest physical {@code [gpa, +length)}
   * with {@code prot}. As on hardware nothing is invalidated: the guest must invalidate ({@link
   * InvalidateStage1}) before a changed entry is sure to be seen. Replies {@link Stage1Written};
   * ENOENT / ENODEV (device), EINVAL (alignment, prot), EFAULT (outside guest memory), or the
   * unit's refusal (EINVAL: not a nested domain of the unit).
   */
  public record WriteStage1(
      String device, int nestedDomainId, long iova, long gpa, long length, int prot, ActorRef<VmReply> replyTo)
      implements Command {}

  /** Clears stage-1 entries of {@code [iova, +length)}; replies {@link Stage1Written}. */
  public record ClearStage1(
      String device, int nestedDomainId, long iova, long length, ActorRef<VmReply> replyTo)
      implements Command {}

  /**
   * The guest's stage-1 invalidation of nested domain {@code nestedDomainId} (what a vIOMMU's
   * invalidation queue carries; iommufd HWPT_INVALIDATE). Replies {@link Stage1Invalidated} with
   * the entries handled and the first error, if any.
   */
  public record InvalidateStage1(
      String device,
      int nestedDomainId,
      List<IommuUnitActor.UserInvalidation> entries,
      ActorRef<VmReply> replyTo)
      implements Command {
    public InvalidateStage1 {
      entries = List.copyOf(entries);
    }
  }

  /**
   * The guest programs {@code device} to perform a burst of DMA: {@code lengths[i]} bytes at
   * {@code iovas[i]} with {@code access[i]} ({@code Access} bits), tagged with {@code pasid} or
   * {@link IommuUnitActor#NO_PASID}. Replies {@link DmaDone} when the device reports completion.
   * ENOENT for a device not assigned to this VM, ENODEV for one the VM released, EINVAL for empty
   * or mismatched arrays, an access that is empty or crosses a 4 KiB page (each access is one PCIe
   * request), or access bits outside READ|WRITE|EXEC|PRIV. A PASID the VM does not hold is not refused: a guest may program anything
   * into its device, and it is the IOMMU's job to stop it.
   */
  public record RunDma(
      String device, int pasid, long[] iovas, int[] lengths, int[] access, ActorRef<VmReply> replyTo)
      implements Command {}

  /** The guest executes WBINVD; replies {@link WbinvdHandled} (emulated or skipped by KVM). */
  public record GuestWbinvd(ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Hot-unplug request from the host: the guest driver lets {@code device} go — the VM stops
   * issuing DMA to it, the fd that bound it detaches and unbinds it ({@link
   * IoasidFdActor.DeviceUnbind}, the close of the device fd), its file leaves the KVM VFIO device. Replies {@link DeviceReleased}; ENOENT for a device not assigned to this VM, ENODEV
   * when already released.
   */
  public record ReleaseDevice(String device, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Hot-plug into a running guest: the host hands the VM {@code handle}, a device it plugged back
   * (or a new one); the guest driver may bind it again. A device the VM released before is
   * assigned afresh (nothing of its former binding is left: its release unbound it). Replies
   * {@link DeviceAdopted}; EBUSY when the VM holds the device and has not released it.
   */
  public record AdoptDevice(DeviceHandle handle, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Attaches PASID {@code pasid} of bound {@code device} to IOAS {@code ioasId} of fd {@code fd}
   * ({@code VFIO_DEVICE_ATTACH_IOMMUFD_PT} with {@code VFIO_DEVICE_ATTACH_PASID}): through the
   * same HWPT the device's RID uses for that IOAS (the fault-capable one of a PRI device, else the
   * IOAS's auto domain), so DMA tagged with the PASID translates through the IOAS and the
   * stale-translation oracle judges it there. The PASID should be one the VM allocated ({@link
   * AllocPasid}). Replies {@link DevicePasidAttached}; EBADF; ENOENT (not bound, no such IOAS);
   * EINVAL (the RID is not attached to that IOAS); EBUSY (PASID attached already); the fd's
   * refusal (EINVAL: a device without PASID support, or a PASID beyond its width).
   */
  public record AttachDevicePasid(int fd, String device, int pasid, int ioasId, ActorRef<VmReply> replyTo)
      implements Command {}

  /**
   * Attaches bound {@code device} through a nested domain: the guest owns the stage-1 table, IOAS
   * {@code ioasId} of fd {@code fd} is the stage 2 (GPA → host), as with a vIOMMU. The VM
   * allocates, once per IOAS and unit, a HWPT_PAGING with NEST_PARENT over the IOAS and, per
   * device, a HWPT_NESTED of the unit's stage-1 format over it, and attaches the device to the
   * nested HWPT. The guest then writes its stage 1 ({@link WriteStage1}) at the nested domain id
   * the reply names and invalidates ({@link InvalidateStage1}). DMA through a nested domain uses
   * guest IOVAs, which the stale-translation oracle (judging IOAS IOVAs) leaves unjudged. Replies
   * {@link DeviceAttachedNested}; EBADF; ENOENT; EBUSY (attached already); the fd's refusal
   * (EOPNOTSUPP: the unit has no nesting).
   */
  public record AttachDeviceNested(int fd, String device, int ioasId, ActorRef<VmReply> replyTo)
      implements Command {}

  /** Replies {@link VmState}. */
  public record GetVmState(ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Powers the VM off: closes its fds, drops its KVM files, returns its memory to the host, replies
   * {@link VmShutDown} and stops. A VM whose memory the host refuses to take back (frames still
   * pinned) reports it as a leak and stops all the same.
   */
  public record Shutdown(ActorRef<VmReply> replyTo) implements Command {}

  private record MemoryAnswered(HostMemoryActor.GuestMemoryReply reply) implements Command {}

  private record DmaAnswered(DeviceActor.DmaCompleted completed) implements Command {}

  private record MemoryReleased(HostMemoryActor.GuestMemoryReply reply, ActorRef<VmReply> replyTo)
      implements Command {}

  /**
   * A unit's answer to one step of an IOMMU operation, with the step that continues it. It only
   * ever travels from an ask of this actor to this actor, so it carries a continuation and is
   * exempt from serialization checks.
   */
  private record UnitAnswered(IommuUnitActor.UnitReply reply, Step next)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  /** An fd's answer to one step of an operation, with its continuation (local, as above). */
  private record FdAnswered(IoasidFdActor.Reply reply, FdStep next)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record FdEventReceived(IoasidFdActor.FdEvent event) implements Command {}

  /** Drain the FAULT queue of fd {@code fd} (queued like any IOMMU operation). */
  private record ReadFaults(int fd) implements Command {}

  /** The continuation of an IOMMU operation after a unit's answer (local, never serialized). */
  @FunctionalInterface
  private interface Step {
    Behavior<Command> next(IommuUnitActor.UnitReply reply);
  }

  /** The continuation of an IOMMU operation after an fd's answer (local, never serialized). */
  @FunctionalInterface
  private interface FdStep {
    Behavior<Command> next(IoasidFdActor.Reply reply);
  }


  // ---------------------------------------------------------------- lifecycle (to the creator)

  /** What the creator hears once: the VM is running, or it could not start and has stopped. */
  public sealed interface StartReply extends CborSerializable permits Started, StartRefused {}

  public record Started(int vmId, GuestMemoryLayout layout) implements StartReply {}

  public record StartRefused(int vmId, Errno errno, String message) implements StartReply {}

  // ---------------------------------------------------------------- replies

  public sealed interface VmReply extends CborSerializable
      permits Refused,
          PasidAllocated,
          PasidFreed,
          FdOpened,
          FdClosed,
          DeviceBound,
          DeviceUnbound,
          IoasAllocated,
          DeviceAttached,
          DeviceDetached,
          BufferMapped,
          BufferUnmapped,
          Stage1Written,
          Stage1Invalidated,
          DmaDone,
          WbinvdHandled,
          DeviceReleased,
          DeviceAdopted,
          DevicePasidAttached,
          DeviceAttachedNested,
          VmState,
          VmShutDown {}

  /** A guest mistake: nothing changed. */
  public record Refused(Errno errno, String message) implements VmReply {}

  public record PasidAllocated(int pasid) implements VmReply {}

  public record PasidFreed(int pasid) implements VmReply {}

  /**
   * {@code ref}: the fd's actor, for callers that speak the uAPI directly ({@code
   * io.iommulab.host.uapi.IommuFd}); what they do there bypasses the VM's oracle.
   */
  public record FdOpened(int fd, ActorRef<IoasidFdActor.Command> ref) implements VmReply {}

  /**
   * {@code objectsDestroyed} and {@code pagesUnpinned}: as the fd reported its close. {@code
   * leftBehind}: what the fd still held after its close (objects, tombstones, reserved ids, IOASes,
   * pins, charges, operations in flight), one line each, from its snapshot taken once the close
   * completed; empty when the close left nothing, as it must.
   */
  public record FdClosed(int fd, int objectsDestroyed, long pagesUnpinned, List<String> leftBehind)
      implements VmReply {
    public FdClosed {
      leftBehind = List.copyOf(leftBehind);
    }
  }

  /** {@code info}: what the unit told at the ownership claim (GET_HW_INFO, reserved regions). */
  public record DeviceBound(int fd, String device, int devId, IommuUnitActor.UnitInfo info)
      implements VmReply {}

  public record DeviceUnbound(int fd, String device) implements VmReply {}

  public record IoasAllocated(int fd, int ioasId) implements VmReply {}

  /** {@code hwptId}: the HWPT the device is attached through (the IOAS's auto one, or a fault one). */
  public record DeviceAttached(int fd, String device, int ioasId, int hwptId) implements VmReply {}

  public record DeviceDetached(int fd, String device) implements VmReply {}

  /** {@code modeledLatencyNs}: the fd's modeled charge of the map (0 for a lazy buffer). */
  public record BufferMapped(long iova, long length, long modeledLatencyNs) implements VmReply {}

  /**
   * {@code returnedAtNs}: the modeled time the last unmap returned (every invalidation done);
   * {@code modeledLatencyNs}: the fd's modeled charges of the IOAS_UNMAPs it took, summed.
   */
  public record BufferUnmapped(long iova, long bytes, long returnedAtNs, long modeledLatencyNs)
      implements VmReply {}

  /** A stage-1 write or clear of {@code [iova, +length)} in nested domain {@code nestedDomainId}. */
  public record Stage1Written(int nestedDomainId, long iova, long length) implements VmReply {}

  /**
   * {@code handled} entries ran; {@code errno} of the one that stopped them, null when none;
   * {@code modeledLatencyNs}: the unit's modeled charge (descriptors, sync, device TLBs).
   */
  public record Stage1Invalidated(int handled, Errno errno, String message, long modeledLatencyNs)
      implements VmReply {}

  /**
   * A burst finished: {@code status[i]} per {@link DeviceActor.DmaCompleted}; {@code staleAtIssue}
   * the indexes of accesses whose IOVA had been unmapped (unmap returned) when the burst was
   * issued; {@code staleViolations} how many of those nevertheless completed (strict oracle).
   */
  public record DmaDone(
      long tag,
      byte[] status,
      int[] staleAtIssue,
      int staleViolations,
      long modeledLatencyNs,
      int pageRequests,
      int atcHits)
      implements VmReply {

    /** How many accesses completed OK. */
    public int completed() {
      int n = 0;
      for (byte s : status) {
        if (s == DeviceActor.STATUS_OK) {
          n++;
        }
      }
      return n;
    }
  }

  public record WbinvdHandled(boolean emulated, KvmVfio.Snapshot kvm) implements VmReply {}

  public record DeviceReleased(int vmId, String device) implements VmReply {}

  public record DeviceAdopted(int vmId, String device) implements VmReply {}

  public record DevicePasidAttached(int fd, String device, int pasid, int hwptId) implements VmReply {}

  /**
   * {@code hwptId}: the nested HWPT the device is attached to; {@code nestedDomainId} and {@code
   * unitId}: where the hardware holds it (stage-1 writes and invalidations name it).
   */
  public record DeviceAttachedNested(
      int fd, String device, int ioasId, int hwptId, int unitId, int nestedDomainId)
      implements VmReply {}

  /**
   * The VM's state: memory, devices (name → released), fds and what they hold, KVM counters,
   * PASIDs, DMA and fault counters, the oracle's report and failures of others it saw; devices
   * whose DMA the IOMMU disabled after an access violation (name → reason; no DMA is issued on
   * them until attached again) and how many such events came; buffers unmapped whose deferred
   * flush has not completed (their IOVA is not reused yet) and flush completions seen.
   */
  public record VmState(
      int vmId,
      String tenant,
      long memoryBytes,
      long userVaBase,
      Map<String, Boolean> devicesReleased,
      List<String> devicesBound,
      List<String> devicesAttached,
      int fds,
      int areas,
      long mappedBytes,
      KvmVfio.Snapshot kvm,
      int pasidsAllocated,
      long iovaBytesAllocated,
      long burstsIssued,
      long burstsCompleted,
      int burstsInFlight,
      long dmaFaults,
      long pageRequestsResolved,
      long pageRequestsInvalid,
      StaleDmaOracle.Report oracle,
      List<String> failures,
      Map<String, String> devicesDmaDisabled,
      long dmaDisabledEvents,
      int buffersAwaitingFlush,
      long flushesObserved)
      implements VmReply {
    public VmState {
      devicesDmaDisabled = Map.copyOf(devicesDmaDisabled);
      devicesReleased = Map.copyOf(devicesReleased);
      devicesBound = List.copyOf(devicesBound);
      devicesAttached = List.copyOf(devicesAttached);
      failures = List.copyOf(failures);
    }
  }

  /**
   * The VM is gone. {@code memoryReleasedBytes} is what the host took back; {@code leaks} names
   * what could not be returned (frames still pinned, mappings a unit kept): empty when clean;
   * {@code failures}: units that did not answer or refused a teardown step (bugs of others).
   */
  public record VmShutDown(
      int vmId,
      long memoryReleasedBytes,
      KvmVfio.Snapshot kvm,
      StaleDmaOracle.Report oracle,
      List<String> leaks,
      List<String> failures)
      implements VmReply {
    public VmShutDown {
      leaks = List.copyOf(leaks);
      failures = List.copyOf(failures);
    }
  }

  // ================================================================ construction

  /**
   * A VM with {@code spec}, owning {@code devices}. It asks {@code memory} for its guest memory and
   * tells {@code creator} {@link Started} or {@link StartRefused} (then stops). Its fds run with
   * {@code uapi} and fail their allocations when {@code injector} says so.
   */
  public static Behavior<Command> create(
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<StartReply> creator,
      UapiSettings uapi,
      FaultInjector injector) {
    return create(spec, devices, memory, clock, creator, uapi, FaultPipelineSettings.defaults(),
        injector);
  }

  /**
   * As above, with the host's fault-pipeline settings {@code faultPipeline}, which the VM's fds
   * take (the tenant tag of their metrics).
   */
  public static Behavior<Command> create(
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<StartReply> creator,
      UapiSettings uapi,
      FaultPipelineSettings faultPipeline,
      FaultInjector injector) {
    Objects.requireNonNull(uapi, "uapi");
    Objects.requireNonNull(faultPipeline, "faultPipeline");
    Objects.requireNonNull(injector, "injector");
    Objects.requireNonNull(spec, "spec");
    List<DeviceHandle> assigned = List.copyOf(devices);
    return Behaviors.withStash(
        STASH_CAPACITY,
        stash ->
            Behaviors.setup(
                context -> {
                  ActorRef<HostMemoryActor.GuestMemoryReply> adapter =
                      context.messageAdapter(
                          HostMemoryActor.GuestMemoryReply.class, MemoryAnswered::new);
                  memory.tell(
                      new HostMemoryActor.AllocateGuestMemory(
                          spec.vmId(), spec.memoryBytes(), spec.backing(), adapter));
                  return starting(context, stash, spec, assigned, memory, clock, creator, uapi,
                      faultPipeline, injector);
                }));
  }

  private static Behavior<Command> starting(
      ActorContext<Command> context,
      StashBuffer<Command> stash,
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<StartReply> creator,
      UapiSettings uapi,
      FaultPipelineSettings faultPipeline,
      FaultInjector injector) {
    return Behaviors.receive(Command.class)
        .onMessage(
            MemoryAnswered.class,
            answered -> {
              if (answered.reply() instanceof HostMemoryActor.GuestMemoryAllocated allocated) {
                if (allocated.layout().vmId() != spec.vmId()
                    || allocated.layout().bytes() != spec.memoryBytes()) {
                  throw new IllegalStateException(
                      "vm " + spec.vmId() + ": host memory answered " + allocated.layout());
                }
                creator.tell(new Started(spec.vmId(), allocated.layout()));
                return stash.unstashAll(
                    new VmActor(context, spec, devices, memory, clock, allocated.layout(), uapi,
                        faultPipeline, injector));
              }
              if (answered.reply() instanceof HostMemoryActor.MemoryRefused refused) {
                context.getLog()
                    .info("VM [{}] not started: [{}] {}", spec.vmId(), refused.errno(), refused.message());
                creator.tell(new StartRefused(spec.vmId(), refused.errno(), refused.message()));
                stash.forEach(cmd -> refuse(cmd, Errno.ENODEV, "vm " + spec.vmId() + ": never started"));
                return Behaviors.stopped();
              }
              throw new IllegalStateException("vm " + spec.vmId() + ": unexpected " + answered.reply());
            })
        .onAnyMessage(
            cmd -> {
              stash.stash(cmd);
              return Behaviors.same();
            })
        .build();
  }

  private static void refuse(Command cmd, Errno errno, String message) {
    ActorRef<VmReply> replyTo = replyToOf(cmd);
    if (replyTo != null) {
      replyTo.tell(new Refused(errno, message));
    }
  }

  private static ActorRef<VmReply> replyToOf(Command cmd) {
    if (cmd instanceof AllocPasid c) {
      return c.replyTo();
    } else if (cmd instanceof FreePasid c) {
      return c.replyTo();
    } else if (cmd instanceof OpenFd c) {
      return c.replyTo();
    } else if (cmd instanceof CloseFd c) {
      return c.replyTo();
    } else if (cmd instanceof BindDevice c) {
      return c.replyTo();
    } else if (cmd instanceof UnbindDevice c) {
      return c.replyTo();
    } else if (cmd instanceof AllocIoas c) {
      return c.replyTo();
    } else if (cmd instanceof AttachDevice c) {
      return c.replyTo();
    } else if (cmd instanceof DetachDevice c) {
      return c.replyTo();
    } else if (cmd instanceof MapBuffer c) {
      return c.replyTo();
    } else if (cmd instanceof UnmapBuffer c) {
      return c.replyTo();
    } else if (cmd instanceof WriteStage1 c) {
      return c.replyTo();
    } else if (cmd instanceof ClearStage1 c) {
      return c.replyTo();
    } else if (cmd instanceof InvalidateStage1 c) {
      return c.replyTo();
    } else if (cmd instanceof RunDma c) {
      return c.replyTo();
    } else if (cmd instanceof GuestWbinvd c) {
      return c.replyTo();
    } else if (cmd instanceof ReleaseDevice c) {
      return c.replyTo();
    } else if (cmd instanceof AdoptDevice c) {
      return c.replyTo();
    } else if (cmd instanceof AttachDevicePasid c) {
      return c.replyTo();
    } else if (cmd instanceof AttachDeviceNested c) {
      return c.replyTo();
    } else if (cmd instanceof GetVmState c) {
      return c.replyTo();
    } else if (cmd instanceof Shutdown c) {
      return c.replyTo();
    }
    return null;
  }

  // ================================================================ state

  private final VmSpec spec;
  private final ActorRef<HostMemoryActor.Command> memory;
  private final ModeledClock clock;
  private final GuestMemoryLayout layout;
  private final UapiSettings uapi;
  private final FaultPipelineSettings faultPipeline;
  private final FaultInjector injector;
  private final Duration askTimeout;
  private final Map<String, AssignedDevice> devices = new LinkedHashMap<>();
  private final Map<Integer, GuestFd> fds = new LinkedHashMap<>();
  /** device name → the fd it is bound to. */
  private final Map<String, Integer> boundIn = new HashMap<>();
  private final KvmVfio kvm = new KvmVfio();
  private final PasidAllocator pasids;
  private final IovaAllocator iovas;
  private final StaleDmaOracle oracle;
  private final Map<Long, InFlight> inFlight = new HashMap<>();
  private final ArrayDeque<Command> queued = new ArrayDeque<>();
  private final java.util.BitSet ictxSlotsInUse = new java.util.BitSet();
  private final List<String> failures = new ArrayList<>();
  /** What closed fds left behind (reported again at shutdown as leaks). */
  private final List<String> closeLeaks = new ArrayList<>();
  private final ActorRef<DeviceActor.DmaCompleted> dmaAdapter;
  private final ActorRef<IoasidFdActor.FdEvent> fdEvents;
  /** device → the ictx of the fd that reported it non-coherent (KVM file added on its word). */
  private final Map<String, Integer> noncoherentFrom = new HashMap<>();
  private final Counter wbinvdEmulatedCounter;
  private final Counter wbinvdSkippedCounter;
  private final Counter staleCounter;
  private final Counter accessCounter;
  private final Counter dmaDisabledCounter;
  private int nextFd = 3; // 0-2 are the VMM's stdio
  private long nextTag = 1;
  private long burstsIssued;
  private long burstsCompleted;
  private long dmaFaults;
  private long pageRequestsResolved;
  private long pageRequestsInvalid;
  /** The modeled charge of the IOMMU operation in flight, summed over its fd calls. */
  private long opModeledNs;
  private long dmaDisabledEvents;
  private long flushesObserved;
  private boolean opInFlight;
  private boolean draining;
  private boolean shuttingDown;

  /** A device of this VM and what the guest did with it. */
  private static final class AssignedDevice {
    final DeviceHandle handle;
    boolean released;
    /**
     * The IOMMU disabled its DMA after an access violation (PAMU: the LIODN is disabled): the guest
     * driver issues no DMA on it until it is attached again. The reason, or null.
     */
    String dmaDisabled;

    AssignedDevice(DeviceHandle handle) {
      this.handle = handle;
    }
  }

  private record InFlight(StaleDmaOracle.BurstIssue issue, ActorRef<VmReply> replyTo) {}

  private VmActor(
      ActorContext<Command> context,
      VmSpec spec,
      List<DeviceHandle> handles,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      GuestMemoryLayout layout,
      UapiSettings uapi,
      FaultPipelineSettings faultPipeline,
      FaultInjector injector) {
    super(context);
    this.spec = spec;
    this.faultPipeline = faultPipeline;
    this.memory = memory;
    this.clock = clock;
    this.layout = layout;
    this.uapi = uapi;
    this.injector = injector;
    this.askTimeout = Duration.ofMillis(spec.askTimeoutMillis());
    if (spec.vmId() > MAX_VM_ID) {
      throw new IllegalArgumentException("vm id " + spec.vmId() + " above " + MAX_VM_ID);
    }
    for (DeviceHandle h : handles) {
      if (devices.put(h.name(), new AssignedDevice(h)) != null) {
        throw new IllegalArgumentException("vm " + spec.vmId() + ": device " + h.name() + " assigned twice");
      }
    }
    this.pasids = new PasidAllocator(spec.pasidBits(), spec.pasidQuota());
    this.iovas = new IovaAllocator(IOVA_BASE, IOVA_LIMIT, PAGE);
    // The windows every VT-d and SMMUv3 unit reserves: a guest driver never puts buffers there.
    iovas.reserve(ReservedRegion.VTD_MSI.start(), ReservedRegion.VTD_MSI.last());
    iovas.reserve(ReservedRegion.SMMUV3_SW_MSI.start(), ReservedRegion.SMMUV3_SW_MSI.last());
    this.oracle = new StaleDmaOracle(spec.seed(), spec.vmId(), spec.strictOracle());
    this.dmaAdapter = context.messageAdapter(DeviceActor.DmaCompleted.class, DmaAnswered::new);
    this.fdEvents = context.messageAdapter(IoasidFdActor.FdEvent.class, FdEventReceived::new);
    String tenant = spec.tenant();
    this.wbinvdEmulatedCounter =
        Kamon.counter("iommulab.vm.wbinvd.exits").withTag("tenant", tenant).withTag("emulated", true);
    this.wbinvdSkippedCounter =
        Kamon.counter("iommulab.vm.wbinvd.exits").withTag("tenant", tenant).withTag("emulated", false);
    this.staleCounter = Kamon.counter("iommulab.vm.stale-dma.violations").withTag("tenant", tenant);
    this.accessCounter = Kamon.counter("iommulab.vm.dma.accesses").withTag("tenant", tenant);
    this.dmaDisabledCounter = Kamon.counter("iommulab.vm.dma-disabled").withTag("tenant", tenant);
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(AllocPasid.class, this::onAllocPasid)
        .onMessage(FreePasid.class, this::onFreePasid)
        .onMessage(OpenFd.class, this::onOpenFd)
        .onMessage(AllocIoas.class, this::enqueue)
        .onMessage(CloseFd.class, this::enqueue)
        .onMessage(BindDevice.class, this::enqueue)
        .onMessage(UnbindDevice.class, this::enqueue)
        .onMessage(AttachDevice.class, this::enqueue)
        .onMessage(DetachDevice.class, this::enqueue)
        .onMessage(MapBuffer.class, this::enqueue)
        .onMessage(UnmapBuffer.class, this::enqueue)
        .onMessage(WriteStage1.class, this::enqueue)
        .onMessage(ClearStage1.class, this::enqueue)
        .onMessage(InvalidateStage1.class, this::enqueue)
        .onMessage(ReleaseDevice.class, this::enqueue)
        .onMessage(AdoptDevice.class, this::enqueue)
        .onMessage(AttachDevicePasid.class, this::enqueue)
        .onMessage(AttachDeviceNested.class, this::enqueue)
        .onMessage(ReadFaults.class, this::enqueue)
        .onMessage(Shutdown.class, this::enqueue)
        .onMessage(UnitAnswered.class, this::onUnitAnswered)
        .onMessage(FdAnswered.class, this::onFdAnswered)
        .onMessage(FdEventReceived.class, this::onFdEvent)
        .onMessage(RunDma.class, this::onRunDma)
        .onMessage(DmaAnswered.class, this::onDmaAnswered)
        .onMessage(GuestWbinvd.class, this::onGuestWbinvd)
        .onMessage(GetVmState.class, this::onGetVmState)
        .onMessage(MemoryReleased.class, this::onMemoryReleased)
        .onSignal(ChildFailed.class, this::onFdFailed)
        .onSignal(Terminated.class, terminated -> this) // an fd stopped after its close
        .build();
  }

  // ================================================================ one IOMMU operation at a time

  private Behavior<Command> enqueue(Command cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    if (opInFlight) {
      if (queued.size() >= STASH_CAPACITY) {
        refuse(cmd, Errno.EBUSY, "vm " + spec.vmId() + ": " + STASH_CAPACITY + " IOMMU operations queued");
      } else {
        queued.add(cmd);
      }
      return Behaviors.same();
    }
    opInFlight = true;
    return start(cmd);
  }

  private Behavior<Command> start(Command cmd) {
    if (cmd instanceof AllocIoas c) {
      return startAllocIoas(c);
    } else if (cmd instanceof CloseFd c) {
      return startCloseFd(c);
    } else if (cmd instanceof BindDevice c) {
      return startBind(c);
    } else if (cmd instanceof UnbindDevice c) {
      return startUnbind(c);
    } else if (cmd instanceof AttachDevice c) {
      return startAttach(c);
    } else if (cmd instanceof DetachDevice c) {
      return startDetach(c);
    } else if (cmd instanceof MapBuffer c) {
      return startMap(c);
    } else if (cmd instanceof UnmapBuffer c) {
      return startUnmap(c);
    } else if (cmd instanceof WriteStage1 c) {
      return startWriteStage1(c);
    } else if (cmd instanceof ClearStage1 c) {
      return startClearStage1(c);
    } else if (cmd instanceof InvalidateStage1 c) {
      return startInvalidateStage1(c);
    } else if (cmd instanceof ReleaseDevice c) {
      return startRelease(c);
    } else if (cmd instanceof AdoptDevice c) {
      return startAdopt(c);
    } else if (cmd instanceof AttachDevicePasid c) {
      return startAttachPasid(c);
    } else if (cmd instanceof AttachDeviceNested c) {
      return startAttachNested(c);
    } else if (cmd instanceof ReadFaults c) {
      return startReadFaults(c.fd());
    } else if (cmd instanceof Shutdown c) {
      return startShutdown(c);
    }
    throw new IllegalStateException("not an IOMMU operation: " + cmd);
  }

  /** The current operation is over: start the next queued one (iteratively: no deep stacks). */
  private Behavior<Command> opDone() {
    opInFlight = false;
    if (draining) {
      return Behaviors.same();
    }
    draining = true;
    Behavior<Command> next = Behaviors.same();
    while (!opInFlight && !queued.isEmpty()) {
      opInFlight = true;
      next = start(queued.poll());
    }
    draining = false;
    return next;
  }

  private Behavior<Command> reply(ActorRef<VmReply> replyTo, VmReply reply) {
    replyTo.tell(reply);
    return opDone();
  }

  /** What a guest command names: its fd, and the device bound to it and the IOAS when it names them. */
  private record Target(GuestFd f, Binding b, Ioas ioas) {}

  /**
   * Looks up the fd ({@code EBADF} when not open), the device bound to it ({@code ENOENT}; null:
   * not named) and its IOAS ({@code ENOENT}; null: not named), in that order, as the kernel checks
   * a command's fd before the objects it names.
   */
  private Outcome<Target> target(int fd, String device, Integer ioasId) {
    GuestFd f = fds.get(fd);
    if (f == null) {
      return Outcome.err(Errno.EBADF, "fd %d: not open", fd);
    }
    Binding b = null;
    if (device != null && (b = f.bound.get(device)) == null) {
      return Outcome.err(Errno.ENOENT, "device %s: not bound to fd %d", device, fd);
    }
    Ioas ioas = null;
    if (ioasId != null && (ioas = f.ioas.get(ioasId)) == null) {
      return Outcome.err(Errno.ENOENT, "ioas %d: no such IOAS on fd %d", ioasId, fd);
    }
    return Outcome.ok(new Target(f, b, ioas));
  }

  private Behavior<Command> notOpen(ActorRef<VmReply> replyTo, int fd) {
    return refused(replyTo, Errno.EBADF, "fd %d: not open", fd);
  }

  private Behavior<Command> refused(ActorRef<VmReply> replyTo, Errno errno, String format, Object... args) {
    return reply(replyTo, new Refused(errno, args.length == 0 ? format : String.format(format, args)));
  }

  private Behavior<Command> askUnit(
      ActorRef<IommuUnitActor.Command> unit,
      Function<ActorRef<IommuUnitActor.UnitReply>, IommuUnitActor.Command> request,
      Step next) {
    io.iommulab.actors.Asks.<Command, IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
            getContext(),
            unit,
            askTimeout,
            request,
            (reply, failure) ->
                new UnitAnswered(
                    reply != null
                        ? reply
                        : new IommuUnitActor.Refused(
                            Errno.EIO, "unit did not answer: " + (failure == null ? "?" : failure.getMessage())),
                    next));
    return Behaviors.same();
  }

  private Behavior<Command> onUnitAnswered(UnitAnswered answered) {
    if (answered.reply() instanceof IommuUnitActor.Refused r && r.errno() == Errno.EIO
        && r.message().startsWith("unit did not answer")) {
      failure(r.message());
    }
    return answered.next().next(answered.reply());
  }

  private void failure(String what) {
    failures.add(what);
    getContext().getLog().error("VM [{}]: {}", spec.vmId(), what);
  }

  private static boolean ok(IommuUnitActor.UnitReply reply) {
    return !(reply instanceof IommuUnitActor.Refused);
  }

  private static Refused asRefused(IommuUnitActor.UnitReply reply, String context) {
    if (reply instanceof IommuUnitActor.Refused r) {
      return new Refused(r.errno(), context + ": " + r.message());
    }
    return new Refused(Errno.EIO, context + ": unexpected answer " + reply);
  }

  private static final String FD_SILENT = "fd did not answer: ";

  private Behavior<Command> askFd(
      GuestFd f,
      Function<ActorRef<IoasidFdActor.Reply>, IoasidFdActor.Command> request,
      FdStep next) {
    io.iommulab.actors.Asks.<Command, IoasidFdActor.Command, IoasidFdActor.Reply>ask(
            getContext(),
            f.ref,
            askTimeout,
            request,
            (reply, failure) ->
                new FdAnswered(
                    reply != null
                        ? reply
                        : new IoasidFdActor.Refused(
                            Errno.EIO, FD_SILENT + (failure == null ? "?" : failure.getMessage())),
                    next));
    return Behaviors.same();
  }

  private Behavior<Command> onFdAnswered(FdAnswered answered) {
    if (answered.reply() instanceof IoasidFdActor.Refused r && r.errno() == Errno.EIO
        && r.message().startsWith(FD_SILENT)) {
      failure(r.message());
    }
    return answered.next().next(answered.reply());
  }

  private static Refused fdRefused(IoasidFdActor.Reply reply, String context) {
    if (reply instanceof IoasidFdActor.Refused r) {
      return new Refused(r.errno(), context + ": " + r.message());
    }
    return new Refused(Errno.EIO, context + ": unexpected answer " + reply);
  }

  // ================================================================ fds and IOAS

  private Behavior<Command> onOpenFd(OpenFd cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    int slot = ictxSlotsInUse.nextClearBit(0);
    if (slot >= MAX_FDS) {
      cmd.replyTo().tell(new Refused(Errno.ENOSPC, "vm " + spec.vmId() + ": " + MAX_FDS + " IOMMU fds open"));
      return Behaviors.same();
    }
    ictxSlotsInUse.set(slot);
    int fd = nextFd++;
    int ictxId = spec.vmId() * MAX_FDS + slot;
    ActorRef<IoasidFdActor.Command> ref =
        getContext()
            .spawn(
                IoasidFdActor.create(
                    ictxId,
                    spec.vmId(),
                    layout,
                    uapi,
                    IoasidFdActor.Credentials.NONE,
                    memory,
                    fdEvents,
                    injector,
                    clock,
                    spec.msiBanks(),
                    faultPipeline),
                "fd-" + fd);
    getContext().watch(ref);
    fds.put(fd, new GuestFd(fd, ictxId, ref));
    oracle.note(clock.nanos(), "fd " + fd + " opened (context " + ictxId + ")");
    cmd.replyTo().tell(new FdOpened(fd, ref));
    return Behaviors.same();
  }

  private Behavior<Command> startAllocIoas(AllocIoas cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return notOpen(cmd.replyTo(), cmd.fd());
    }
    return askFd(
        f,
        r -> new IoasidFdActor.IoasAlloc(0, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.IoasAllocated a)) {
            return reply(cmd.replyTo(), fdRefused(reply, "IOAS_ALLOC"));
          }
          f.ioas.put(a.outIoasId(), new Ioas(a.outIoasId()));
          return reply(cmd.replyTo(), new IoasAllocated(f.fd, a.outIoasId()));
        });
  }

  private Behavior<Command> startBind(BindDevice cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return notOpen(cmd.replyTo(), cmd.fd());
    }
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    if (boundIn.containsKey(cmd.device())) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: already bound to fd %d", cmd.device(), boundIn.get(cmd.device()));
    }
    DeviceHandle h = device.value().handle;
    IoasidFdActor.DeviceHandle cdev =
        h.bindHandle();
    return askFd(
        f,
        r -> new IoasidFdActor.DeviceBind(cdev, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.DeviceBound bound)) {
            return reply(cmd.replyTo(), fdRefused(reply, "device " + h.name() + ": bind"));
          }
          Binding b = new Binding(h, bound.devId(), bound.info());
          f.bound.put(h.name(), b);
          device.value().dmaDisabled = null; // a fresh binding: the guest may program it again
          boundIn.put(h.name(), f.fd);
          for (ReservedRegion region : bound.info().reservedRegions()) {
            if (region.type() != ReservedRegion.Type.DIRECT_RELAXABLE) {
              iovas.reserve(region.start(), region.last());
            }
          }
          // QEMU adds the device file to the KVM VFIO device (KVM_DEV_VFIO_FILE_ADD). A file that
          // is not coherent is added on the fd's NonCoherentDmaAppeared, whichever comes first.
          if ((bound.info().enforceCacheCoherency() || h.enforcedCoherent()) && !kvm.hasFile(h.name())) {
            kvm.addFile(h.name(), true).value();
          }
          oracle.note(clock.nanos(), "device " + h.name() + " bound to fd " + f.fd + " as device " + bound.devId());
          return reply(cmd.replyTo(), new DeviceBound(f.fd, h.name(), bound.devId(), bound.info()));
        });
  }

  private Behavior<Command> startUnbind(UnbindDevice cmd) {
    Outcome<Target> t = target(cmd.fd(), cmd.device(), null);
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Binding b = t.value().b();
    return unbind(f, b, refusal -> reply(cmd.replyTo(), refusal != null ? refusal : new DeviceUnbound(f.fd, cmd.device())));
  }

  @FunctionalInterface
  private interface Then {
    Behavior<Command> run(Refused refusal);
  }

  /**
   * Closes the device's cdev: the fd detaches every PASID and the RID, releases the DMA ownership
   * and destroys the DEVICE ({@link IoasidFdActor.DeviceUnbind}); then the KVM file goes.
   */
  private Behavior<Command> unbind(GuestFd f, Binding b, Then then) {
    return askFd(
        f,
        r -> new IoasidFdActor.DeviceUnbind(b.devId, r),
        reply -> {
          if (reply != IoasidFdActor.Done.INSTANCE) {
            failure("fd " + f.fd + " did not unbind " + b.handle.name() + ": " + reply);
            return then.run(fdRefused(reply, "device " + b.handle.name() + ": unbind"));
          }
          forgetBinding(f, b);
          oracle.note(clock.nanos(), "device " + b.handle.name() + " unbound from fd " + f.fd);
          return then.run(null);
        });
  }

  private void forgetBinding(GuestFd f, Binding b) {
    f.bound.remove(b.handle.name());
    boundIn.remove(b.handle.name());
    String name = b.handle.name();
    // A non-coherent file leaves on the fd's NonCoherentDmaDisappeared, which may come later.
    if (kvm.hasFile(name) && !noncoherentFrom.containsKey(name)) {
      kvm.deleteFile(name).value();
    }
  }

  private Behavior<Command> startAttach(AttachDevice cmd) {
    Outcome<Target> t = target(cmd.fd(), cmd.device(), cmd.ioasId());
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Binding b = t.value().b();
    Ioas ioas = t.value().ioas();
    if (b.attached()) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: already attached to ioas %d", cmd.device(), b.ioasId);
    }
    if (!b.handle.pri()) {
      return attach(f, b, ioas, ioas.id, cmd.replyTo());
    }
    return faultHwpt(
        f, b, ioas,
        (hwptId, refusal) -> refusal != null ? reply(cmd.replyTo(), refusal) : attach(f, b, ioas, hwptId, cmd.replyTo()));
  }

  private Behavior<Command> attach(GuestFd f, Binding b, Ioas ioas, int ptId, ActorRef<VmReply> replyTo) {
    return askFd(
        f,
        r -> new IoasidFdActor.DeviceAttach(b.devId, ptId, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.DeviceAttached attached)) {
            return reply(replyTo, fdRefused(reply, "device " + b.handle.name() + ": attach"));
          }
          b.ioasId = ioas.id;
          b.hwptId = attached.ptId();
          oracle.note(clock.nanos(), "device " + b.handle.name() + " attached to ioas " + ioas.id + " (hwpt " + b.hwptId + ") of fd " + f.fd);
          AssignedDevice assigned = devices.get(b.handle.name());
          if (assigned != null) {
            assigned.dmaDisabled = null; // a fresh attachment re-enables its DMA
          }
          return reply(replyTo, new DeviceAttached(f.fd, b.handle.name(), ioas.id, b.hwptId));
        });
  }

  @FunctionalInterface
  private interface HwptThen {
    /** {@code refusal} null: the HWPT {@code hwptId} is ready. */
    Behavior<Command> run(int hwptId, Refused refusal);
  }

  /**
   * The HWPT_PAGING of {@code ioas} on the device's unit that delivers page requests to this fd's
   * FAULT queue: the queue and the HWPT are allocated on first use.
   */
  private Behavior<Command> faultHwpt(GuestFd f, Binding b, Ioas ioas, HwptThen then) {
    Integer existing = f.faultHwpts.get(GuestFd.faultHwptKey(ioas.id, b.handle.unitId()));
    if (existing != null) {
      return then.run(existing, null);
    }
    if (f.faultId == 0) {
      return askFd(
          f,
          r -> new IoasidFdActor.FaultQueueAlloc(0, r),
          reply -> {
            if (!(reply instanceof IoasidFdActor.FaultQueueAllocated q)) {
              return then.run(0, fdRefused(reply, "FAULT_QUEUE_ALLOC"));
            }
            f.faultId = q.outFaultId();
            return faultHwpt(f, b, ioas, then);
          });
    }
    return askFd(
        f,
        r -> new IoasidFdActor.HwptAlloc(Uapi.HWPT_ALLOC_FAULT_ID_VALID, b.devId, ioas.id, Uapi.HWPT_DATA_NONE, 0, f.faultId, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.HwptAllocated h)) {
            return then.run(0, fdRefused(reply, "device " + b.handle.name() + ": HWPT_ALLOC with the fault queue"));
          }
          f.faultHwpts.put(GuestFd.faultHwptKey(ioas.id, b.handle.unitId()), h.outHwptId());
          return then.run(h.outHwptId(), null);
        });
  }

  private Behavior<Command> startDetach(DetachDevice cmd) {
    Outcome<Target> t = target(cmd.fd(), cmd.device(), null);
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Binding b = t.value().b();
    if (!b.attached()) {
      return refused(cmd.replyTo(), Errno.EINVAL, "device %s: not attached", cmd.device());
    }
    return askFd(
        f,
        r -> new IoasidFdActor.DeviceDetach(b.devId, r),
        reply -> {
          if (reply != IoasidFdActor.Done.INSTANCE) {
            return reply(cmd.replyTo(), fdRefused(reply, "device " + b.handle.name() + ": detach"));
          }
          oracle.note(clock.nanos(), "device " + b.handle.name() + " detached from ioas " + b.ioasId);
          b.ioasId = 0;
          b.hwptId = 0;
          b.nested = false;
          b.pasids.clear();
          return reply(cmd.replyTo(), new DeviceDetached(f.fd, cmd.device()));
        });
  }

  // ================================================================ map and unmap

  private static int mapFlags(int prot) {
    int flags = Uapi.IOAS_MAP_FIXED_IOVA;
    if ((prot & Access.READ) != 0) {
      flags |= Uapi.IOAS_MAP_READABLE;
    }
    if ((prot & Access.WRITE) != 0) {
      flags |= Uapi.IOAS_MAP_WRITEABLE;
    }
    return flags;
  }

  private Behavior<Command> startMap(MapBuffer cmd) {
    Outcome<Target> t = target(cmd.fd(), null, cmd.ioasId());
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Ioas ioas = t.value().ioas();
    if ((cmd.prot() & Access.READ_WRITE) == 0 || (cmd.prot() & ~Access.READ_WRITE) != 0) {
      return refused(cmd.replyTo(), Errno.EINVAL, "prot 0x%x: must be READ and/or WRITE", cmd.prot());
    }
    if (cmd.length() <= 0 || cmd.length() % PAGE != 0 || cmd.gpa() % PAGE != 0) {
      return refused(cmd.replyTo(), Errno.EINVAL, "gpa 0x%x length 0x%x: must be 4 KiB aligned, length > 0", cmd.gpa(), cmd.length());
    }
    if (cmd.gpa() < 0 || cmd.gpa() > layout.bytes() - cmd.length()) {
      return refused(cmd.replyTo(), Errno.EFAULT, "gpa [0x%x, +0x%x): outside guest memory of 0x%x bytes", cmd.gpa(), cmd.length(), layout.bytes());
    }
    long iova = cmd.iova();
    boolean ownIova = iova == AUTO_IOVA;
    if (ownIova) {
      Outcome<Long> allocated = iovas.allocate(cmd.length());
      if (allocated instanceof Outcome.Err<Long> e) {
        return refused(cmd.replyTo(), e.errno(), e.message());
      }
      iova = allocated.value();
    } else if (iova < 0 || iova % PAGE != 0 || iova > IOVA_LIMIT - cmd.length()) {
      return refused(cmd.replyTo(), Errno.EINVAL, "iova 0x%x: must be 4 KiB aligned and below 0x%x", iova, IOVA_LIMIT);
    }
    Area clash = ioas.overlapping(iova, cmd.length());
    if (clash != null) {
      if (ownIova) {
        iovas.free(iova).value();
      }
      return refused(cmd.replyTo(), Errno.EEXIST, "iova [0x%x, +0x%x): overlaps the buffer at 0x%x", iova, cmd.length(), clash.iova);
    }
    Area area = new Area(iova, cmd.length(), cmd.gpa(), cmd.prot(), cmd.lazy(), ownIova);
    opModeledNs = 0;
    oracle.mapIssued(f.space(ioas.id), iova, cmd.length());
    if (area.lazy) {
      ioas.areas.put(iova, area);
      return reply(cmd.replyTo(), new BufferMapped(iova, cmd.length(), 0));
    }
    return askFd(
        f,
        r -> new IoasidFdActor.IoasMap(mapFlags(area.prot), ioas.id, layout.userVaBase() + area.gpa, area.length, area.iova, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.IoasMapped mapped)) {
            if (area.ownIova) {
              iovas.free(area.iova).value();
            }
            return reply(cmd.replyTo(), fdRefused(reply, String.format("IOAS_MAP at iova 0x%x", area.iova)));
          }
          ioas.areas.put(area.iova, area);
          return reply(cmd.replyTo(), new BufferMapped(area.iova, area.length, mapped.modeledLatencyNs()));
        });
  }

  /** The pieces of a buffer mapped in the fd: whole if eager, the installed pages if lazy. */
  private static List<long[]> presentPieces(Area a) {
    List<long[]> pieces = new ArrayList<>();
    if (!a.lazy) {
      pieces.add(new long[] {a.iova, a.length});
      return pieces;
    }
    for (int i = a.installed.nextSetBit(0); i >= 0; i = a.installed.nextSetBit(i + 1)) {
      pieces.add(new long[] {a.iova + i * PAGE, PAGE}); // each installed page is its own fd area
    }
    return pieces;
  }

  private Behavior<Command> startUnmap(UnmapBuffer cmd) {
    Outcome<Target> t = target(cmd.fd(), null, cmd.ioasId());
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Ioas ioas = t.value().ioas();
    if (cmd.length() <= 0 || cmd.iova() < 0 || cmd.iova() > Long.MAX_VALUE - cmd.length()) {
      return refused(cmd.replyTo(), Errno.EINVAL, "iova 0x%x length 0x%x: empty or overflowing range", cmd.iova(), cmd.length());
    }
    long end = cmd.iova() + cmd.length();
    List<Area> victims = new ArrayList<>();
    Area first = ioas.holding(cmd.iova());
    Map.Entry<Long, Area> e = ioas.areas.ceilingEntry(first != null ? first.iova : cmd.iova());
    for (; e != null && e.getKey() < end; e = ioas.areas.higherEntry(e.getKey())) {
      Area a = e.getValue();
      if (a.iova < cmd.iova() || a.iova + a.length > end) {
        return refused(cmd.replyTo(), Errno.ENOENT, "buffer [0x%x, +0x%x): only partly inside [0x%x, +0x%x); buffers are never split", a.iova, a.length, cmd.iova(), cmd.length());
      }
      victims.add(a);
    }
    if (victims.isEmpty()) {
      return refused(cmd.replyTo(), Errno.ENOENT, "[0x%x, +0x%x): nothing mapped", cmd.iova(), cmd.length());
    }
    opModeledNs = 0;
    return unmapAreas(f, ioas, victims, 0, 0, cmd.replyTo(),
        bytes -> reply(cmd.replyTo(), new BufferUnmapped(cmd.iova(), bytes, clock.nanos(), opModeledNs)));
  }

  @FunctionalInterface
  private interface AreasUnmapped {
    Behavior<Command> then(long bytes);
  }

  /**
   * Unmaps buffers one by one, each through one IOAS_UNMAP per present piece; each returned unmap
   * is told to the oracle. A refusal stops here: the buffers before it are gone, as the kernel's
   * UNMAP does.
   */
  private Behavior<Command> unmapAreas(
      GuestFd f, Ioas ioas, List<Area> areas, int i, long bytes, ActorRef<VmReply> replyTo, AreasUnmapped done) {
    if (i == areas.size()) {
      return done.then(bytes);
    }
    Area a = areas.get(i);
    StaleDmaOracle.Event issued =
        oracle.note(clock.nanos(), String.format("unmap [0x%x, +0x%x) issued", a.iova, a.length));
    List<long[]> pieces = presentPieces(a);
    List<long[]> strictPieces = new ArrayList<>();
    return unmapPieces(f, ioas, a, pieces, 0, strictPieces, refusal -> {
      if (refusal != null) {
        return reply(replyTo, refusal);
      }
      ioas.areas.remove(a.iova);
      long now = clock.nanos();
      boolean deferred = a.awaitingFlush > 0;
      oracle.unmapReturned(f.space(ioas.id), a.iova, a.length, issued, now, deferred);
      if (deferred) {
        // The flush window: pieces the units invalidated before answering are closed at once.
        for (long[] p : strictPieces) {
          oracle.flushCompleted(f.space(ioas.id), p[0], p[1], now);
        }
      } else if (a.ownIova) {
        iovas.free(a.iova).value();
      }
      return unmapAreas(f, ioas, areas, i + 1, bytes + a.length, replyTo, done);
    });
  }

  /**
   * A piece of {@code a} was unmapped with a deferred flush: its IOVA (the buffer's) stays taken
   * until the fd releases it — unless the release came first.
   */
  private void awaitFlush(GuestFd f, Ioas ioas, Area a, long pieceIova) {
    if (ioas.releasedEarly.remove(pieceIova)) {
      return;
    }
    a.awaitingFlush++;
    ioas.flushing.put(pieceIova, a);
  }

  /** The fd released a piece unmapped with a deferred flush: its flush completed. */
  private Behavior<Command> onIovaReleased(IoasidFdActor.IovaReleased r) {
    GuestFd f = fdOfContext(r.ictxId());
    Ioas ioas = f == null ? null : f.ioas.get(r.ioasId());
    if (ioas == null) {
      return this; // an fd or IOAS driven through the uAPI facade, or already closed
    }
    flushesObserved++;
    Area a = ioas.flushing.remove(r.iova());
    if (a == null) {
      ioas.releasedEarly.add(r.iova()); // its unmap's answer is still on its way
      return this;
    }
    oracle.flushCompleted(f.space(ioas.id), r.iova(), r.length(), clock.nanos());
    if (--a.awaitingFlush == 0 && a.ownIova && !ioas.areas.containsKey(a.iova)) {
      iovas.free(a.iova).value();
    }
    return this;
  }

  private Behavior<Command> unmapPieces(
      GuestFd f, Ioas ioas, Area a, List<long[]> pieces, int i, List<long[]> strictPieces,
      Then then) {
    if (i == pieces.size()) {
      return then.run(null);
    }
    long[] p = pieces.get(i);
    return askFd(
        f,
        r -> new IoasidFdActor.IoasUnmap(ioas.id, p[0], p[1], r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.IoasUnmapped unmapped)) {
            return then.run(fdRefused(reply, String.format("IOAS_UNMAP of [0x%x, +0x%x)", p[0], p[1])));
          }
          opModeledNs += unmapped.modeledLatencyNs();
          if (a.lazy) {
            a.installed.clear((int) ((p[0] - a.iova) / PAGE));
          }
          if (unmapped.awaitingFlushBytes() > 0) {
            awaitFlush(f, ioas, a, p[0]);
          } else {
            strictPieces.add(p);
          }
          return unmapPieces(f, ioas, a, pieces, i + 1, strictPieces, then);
        });
  }

  // ================================================================ stage 1 (nested domains)

  private Behavior<Command> startWriteStage1(WriteStage1 cmd) {
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    if (cmd.length() <= 0 || cmd.length() % PAGE != 0 || cmd.iova() % PAGE != 0 || cmd.gpa() % PAGE != 0
        || cmd.iova() < 0) {
      return refused(cmd.replyTo(), Errno.EINVAL, "stage 1 [0x%x, +0x%x) -> gpa 0x%x: must be 4 KiB aligned", cmd.iova(), cmd.length(), cmd.gpa());
    }
    if ((cmd.prot() & Access.READ_WRITE) == 0 || (cmd.prot() & ~(Access.READ_WRITE | Access.EXEC | Access.PRIV)) != 0) {
      return refused(cmd.replyTo(), Errno.EINVAL, "prot 0x%x: needs READ or WRITE, only rwxp", cmd.prot());
    }
    if (cmd.gpa() < 0 || cmd.gpa() > layout.bytes() - cmd.length()) {
      return refused(cmd.replyTo(), Errno.EFAULT, "gpa [0x%x, +0x%x): outside guest memory", cmd.gpa(), cmd.length());
    }
    DeviceHandle h = device.value().handle;
    return askUnit(
        h.unit(),
        r -> new IommuUnitActor.Stage1Map(cmd.nestedDomainId(), cmd.iova(), cmd.gpa(), cmd.length(), cmd.prot(), r),
        reply -> {
          if (!ok(reply)) {
            return reply(cmd.replyTo(), asRefused(reply, "stage 1 of domain " + cmd.nestedDomainId()));
          }
          oracle.note(clock.nanos(), String.format("stage 1 of domain %d: [0x%x, +0x%x) -> gpa 0x%x", cmd.nestedDomainId(), cmd.iova(), cmd.length(), cmd.gpa()));
          return reply(cmd.replyTo(), new Stage1Written(cmd.nestedDomainId(), cmd.iova(), cmd.length()));
        });
  }

  private Behavior<Command> startClearStage1(ClearStage1 cmd) {
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    if (cmd.length() <= 0 || cmd.length() % PAGE != 0 || cmd.iova() % PAGE != 0 || cmd.iova() < 0) {
      return refused(cmd.replyTo(), Errno.EINVAL, "stage 1 [0x%x, +0x%x): must be 4 KiB aligned", cmd.iova(), cmd.length());
    }
    DeviceHandle h = device.value().handle;
    return askUnit(
        h.unit(),
        r -> new IommuUnitActor.Stage1Unmap(cmd.nestedDomainId(), cmd.iova(), cmd.length(), r),
        reply ->
            ok(reply)
                ? reply(cmd.replyTo(), new Stage1Written(cmd.nestedDomainId(), cmd.iova(), cmd.length()))
                : reply(cmd.replyTo(), asRefused(reply, "stage 1 of domain " + cmd.nestedDomainId())));
  }

  private Behavior<Command> startInvalidateStage1(InvalidateStage1 cmd) {
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    DeviceHandle h = device.value().handle;
    return askUnit(
        h.unit(),
        r -> new IommuUnitActor.InvalidateUser(cmd.nestedDomainId(), cmd.entries(), r),
        reply -> {
          if (reply instanceof IommuUnitActor.UserInvalidated u) {
            return reply(cmd.replyTo(), new Stage1Invalidated(u.handled(), u.errno(), u.message(), u.modeledLatencyNs()));
          }
          return reply(cmd.replyTo(), asRefused(reply, "stage-1 invalidation of domain " + cmd.nestedDomainId()));
        });
  }

  // ================================================================ fd events and page requests

  private GuestFd fdOfContext(int ictxId) {
    for (GuestFd f : fds.values()) {
      if (f.ictxId == ictxId) {
        return f;
      }
    }
    return null;
  }

  private Behavior<Command> onFdEvent(FdEventReceived received) {
    IoasidFdActor.FdEvent event = received.event();
    if (event instanceof IoasidFdActor.NonCoherentDmaAppeared a) {
      AssignedDevice d = devices.get(a.device());
      if (d == null || d.handle.enforcedCoherent()) {
        // A PAMU part: the kernel calls it non-coherent, but PowerPC KVM has no WBINVD to
        // emulate (kvm_arch_register_noncoherent_dma is x86 only); its file counts as coherent.
        return Behaviors.same();
      }
      // KVM_DEV_VFIO_FILE_ADD of a non-coherent file: kvm_vfio_update_coherency registers.
      if (kvm.hasFile(a.device())) {
        kvm.deleteFile(a.device()).value();
      }
      kvm.addFile(a.device(), false).value();
      noncoherentFrom.put(a.device(), a.ictxId());
      oracle.note(clock.nanos(), "KVM: non-coherent DMA of " + a.device() + " registered");
      return Behaviors.same();
    }
    if (event instanceof IoasidFdActor.NonCoherentDmaDisappeared d) {
      Integer from = noncoherentFrom.get(d.device());
      if (from != null && from == d.ictxId()) {
        noncoherentFrom.remove(d.device());
        kvm.deleteFile(d.device()).value();
        oracle.note(clock.nanos(), "KVM: non-coherent DMA of " + d.device() + " unregistered");
      }
      return Behaviors.same();
    }
    if (event instanceof IoasidFdActor.IovaReleased r) {
      return onIovaReleased(r);
    }
    if (event instanceof IoasidFdActor.DeviceDmaDisabled d) {
      dmaDisabledEvents++;
      dmaDisabledCounter.increment();
      AssignedDevice dev = devices.get(d.device());
      if (dev != null) {
        dev.dmaDisabled = d.reason() + String.format(" at iova 0x%x", d.iova());
      }
      oracle.note(clock.nanos(), "device " + d.device() + ": DMA disabled by the IOMMU (" + d.reason() + ")");
      getContext().getLog().warn("VM [{}]: DMA of device [{}] disabled by the IOMMU: [{}] at iova [0x{}]",
          spec.vmId(), d.device(), d.reason(), Long.toHexString(d.iova()));
      return this;
    }
    if (event instanceof IoasidFdActor.FaultQueueReadable r) {
      GuestFd f = fdOfContext(r.ictxId());
      if (f != null && !f.readingFaults) {
        f.readingFaults = true;
        return enqueue(new ReadFaults(f.fd));
      }
      if (f != null) {
        // The edge came while a read is under way: its answer may have been taken before the new
        // records arrived (the event travels directly, the read's answer through the ask), so the
        // read loop must go round once more before it stops.
        f.readAgain = true;
      }
      return Behaviors.same();
    }
    return Behaviors.same(); // vEVENTQ readiness: no vIOMMU in this guest driver
  }

  /** Records of one FAULT read, 64 at most: a whole group never spans two reads. */
  static final int FAULT_READ_RECORDS = 64;

  private Behavior<Command> startReadFaults(int fdNumber) {
    GuestFd f = fds.get(fdNumber);
    if (f == null || f.faultId == 0) {
      return opDone();
    }
    return askFd(
        f,
        r -> new IoasidFdActor.FaultRead(f.faultId, FAULT_READ_RECORDS * Uapi.HWPT_PGFAULT_LEN, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.FaultRecords records) || records.records().isEmpty()) {
            if (f.readAgain && reply instanceof IoasidFdActor.FaultRecords) {
              f.readAgain = false;
              return startReadFaults(fdNumber);
            }
            f.readingFaults = false;
            f.readAgain = false;
            return opDone();
          }
          Map<Integer, int[]> codes = new LinkedHashMap<>(); // cookie -> {code}
          return resolve(f, records.records(), 0, codes, () -> {
            List<HwptPageResponse> responses = new ArrayList<>();
            codes.forEach((cookie, code) -> responses.add(new HwptPageResponse(cookie, code[0])));
            return askFd(
                f,
                r -> new IoasidFdActor.FaultWrite(f.faultId, responses, r),
                written -> {
                  if (!(written instanceof IoasidFdActor.FaultWritten)) {
                    failure("fd " + f.fd + " refused the page responses " + responses + ": " + written);
                  }
                  return startReadFaults(fdNumber); // drain: the readable event is an edge
                });
          });
        });
  }

  @FunctionalInterface
  private interface Resolved {
    Behavior<Command> run();
  }

  /** Resolves the page requests {@code records[i..]}; a group fails if any of its requests does. */
  private Behavior<Command> resolve(
      GuestFd f, List<HwptPgfault> records, int i, Map<Integer, int[]> codes, Resolved done) {
    if (i == records.size()) {
      return done.run();
    }
    HwptPgfault req = records.get(i);
    int[] code = codes.computeIfAbsent(req.cookie(), c -> new int[] {Uapi.PAGE_RESP_SUCCESS});
    Binding b = f.bindingOf(req.devId());
    Ioas ioas = b == null || !b.attached() ? null : f.ioas.get(b.ioasId);
    boolean pasid = (req.flags() & Uapi.PGFAULT_FLAGS_PASID_VALID) != 0;
    Area area = ioas == null || pasid ? null : ioas.holding(req.addr());
    if (area == null || !Access.permits(area.prot, req.perm() & Access.READ_WRITE)) {
      pageRequestsInvalid++;
      code[0] = Uapi.PAGE_RESP_INVALID;
      return resolve(f, records, i + 1, codes, done);
    }
    int page = (int) ((req.addr() - area.iova) / PAGE);
    if (!area.lazy || area.installed.get(page)) {
      pageRequestsResolved++;
      return resolve(f, records, i + 1, codes, done);
    }
    long pageIova = area.iova + page * PAGE;
    long gpa = area.gpa + page * PAGE;
    oracle.mapIssued(f.space(ioas.id), pageIova, PAGE);
    return askFd(
        f,
        r -> new IoasidFdActor.IoasMap(mapFlags(area.prot), ioas.id, layout.userVaBase() + gpa, PAGE, pageIova, r),
        reply -> {
          if (reply instanceof IoasidFdActor.IoasMapped) {
            area.installed.set(page);
            pageRequestsResolved++;
          } else {
            pageRequestsInvalid++;
            code[0] = Uapi.PAGE_RESP_INVALID;
          }
          return resolve(f, records, i + 1, codes, done);
        });
  }

  // ================================================================ guest IOMMU driver: PASIDs

  private Behavior<Command> onAllocPasid(AllocPasid cmd) {
    Outcome<Integer> pasid = pasids.allocate();
    if (pasid instanceof Outcome.Err<Integer> e) {
      cmd.replyTo().tell(new Refused(e.errno(), "vm " + spec.vmId() + ": " + e.message()));
    } else {
      cmd.replyTo().tell(new PasidAllocated(pasid.value()));
    }
    return Behaviors.same();
  }

  private Behavior<Command> onFreePasid(FreePasid cmd) {
    Outcome<Void> freed = pasids.free(cmd.pasid());
    if (freed instanceof Outcome.Err<Void> e) {
      cmd.replyTo().tell(new Refused(e.errno(), "vm " + spec.vmId() + ": " + e.message()));
    } else {
      cmd.replyTo().tell(new PasidFreed(cmd.pasid()));
    }
    return Behaviors.same();
  }

  // ================================================================ DMA and the oracle

  private Behavior<Command> onRunDma(RunDma cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      cmd.replyTo().tell(new Refused(e.errno(), e.message()));
      return Behaviors.same();
    }
    if (device.value().dmaDisabled != null) {
      cmd.replyTo().tell(new Refused(Errno.EIO, String.format(
          "device %s: DMA disabled by the IOMMU (%s); attach it again first", cmd.device(),
          device.value().dmaDisabled)));
      return this;
    }
    int n = cmd.iovas().length;
    if (n == 0 || cmd.lengths().length != n || cmd.access().length != n) {
      cmd.replyTo()
          .tell(
              new Refused(
                  Errno.EINVAL,
                  String.format(
                      "burst: %d iovas, %d lengths, %d access words: must be equal and non-zero",
                      n, cmd.lengths().length, cmd.access().length)));
      return Behaviors.same();
    }
    int bits = Access.READ | Access.WRITE | Access.EXEC | Access.PRIV;
    for (int i = 0; i < n; i++) {
      long offset = cmd.iovas()[i] & (PAGE - 1);
      if (cmd.lengths()[i] <= 0 || offset + cmd.lengths()[i] > PAGE) {
        cmd.replyTo()
            .tell(
                new Refused(
                    Errno.EINVAL,
                    String.format(
                        "burst: access %d of %d bytes at 0x%x: empty or crossing a 4 KiB page (one TLP each)",
                        i, cmd.lengths()[i], cmd.iovas()[i])));
        return Behaviors.same();
      }
      if (cmd.access()[i] == 0 || (cmd.access()[i] & ~bits) != 0) {
        cmd.replyTo()
            .tell(new Refused(Errno.EINVAL, String.format("burst: access[%d] = 0x%x: not a subset of rwxp", i, cmd.access()[i])));
        return Behaviors.same();
      }
    }
    long tag = nextTag++;
    boolean hasSpace = false;
    long space = 0;
    Integer fd = boundIn.get(cmd.device());
    if (fd != null) {
      GuestFd f = fds.get(fd);
      Binding b = f.bound.get(cmd.device());
      // Nested DMA uses guest IOVAs (stage 1), not the IOAS's: the oracle cannot judge it.
      boolean judged = cmd.pasid() == IommuUnitActor.NO_PASID || b.pasids.containsKey(cmd.pasid());
      if (b.attached() && !b.nested && judged) {
        hasSpace = true;
        space = f.space(b.ioasId);
      }
    }
    StaleDmaOracle.BurstIssue issue =
        oracle.burstIssued(
            hasSpace, space, cmd.device(), cmd.pasid(), tag, cmd.iovas(), cmd.lengths(), cmd.access(), clock.nanos());
    inFlight.put(tag, new InFlight(issue, cmd.replyTo()));
    burstsIssued++;
    accessCounter.increment(n);
    device
        .value()
        .handle
        .device()
        .tell(
            new DeviceActor.DmaBurst(
                cmd.pasid(), cmd.iovas().clone(), cmd.lengths().clone(), cmd.access().clone(), tag, dmaAdapter));
    return Behaviors.same();
  }

  private Behavior<Command> onDmaAnswered(DmaAnswered answered) {
    DeviceActor.DmaCompleted done = answered.completed();
    InFlight f = inFlight.remove(done.tag());
    if (f == null) {
      if (shuttingDown) {
        return Behaviors.same(); // its caller was answered when the VM began to power off
      }
      throw new IllegalStateException("vm " + spec.vmId() + ": completion of unknown burst " + done.tag());
    }
    burstsCompleted++;
    for (byte st : done.status()) {
      if (st > 0 && st <= FAULT_REASONS) {
        dmaFaults++;
      }
    }
    int violations = oracle.burstCompleted(f.issue(), done.status(), clock.nanos());
    if (violations > 0) {
      staleCounter.increment(violations);
      getContext()
          .getLog()
          .warn(
              "VM [{}] stale-translation violation: [{}] accesses of burst [{}] completed after their unmap returned (seed [{}])",
              spec.vmId(), violations, done.tag(), spec.seed());
    }
    f.replyTo()
        .tell(
            new DmaDone(
                done.tag(),
                done.status(),
                f.issue().staleIndexes(),
                violations,
                done.modeledLatencyNs(),
                done.pageRequests(),
                done.atcHits()));
    return Behaviors.same();
  }

  // ================================================================ KVM

  private Behavior<Command> onGuestWbinvd(GuestWbinvd cmd) {
    boolean emulated = kvm.guestWbinvd();
    (emulated ? wbinvdEmulatedCounter : wbinvdSkippedCounter).increment();
    cmd.replyTo().tell(new WbinvdHandled(emulated, kvm.snapshot()));
    return Behaviors.same();
  }

  // ================================================================ hot-unplug

  private Behavior<Command> startAdopt(AdoptDevice cmd) {
    DeviceHandle h = cmd.handle();
    AssignedDevice d = devices.get(h.name());
    if (d != null && !d.released) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: held by vm %d and not released", h.name(), spec.vmId());
    }
    devices.put(h.name(), new AssignedDevice(h));
    oracle.note(clock.nanos(), "device " + h.name() + " plugged into the guest");
    return reply(cmd.replyTo(), new DeviceAdopted(spec.vmId(), h.name()));
  }

  private Behavior<Command> startAttachPasid(AttachDevicePasid cmd) {
    Outcome<Target> t = target(cmd.fd(), cmd.device(), cmd.ioasId());
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Binding b = t.value().b();
    Ioas ioas = t.value().ioas();
    if (!b.attached() || b.ioasId != ioas.id || b.nested) {
      return refused(cmd.replyTo(), Errno.EINVAL, "device %s: its RID is not attached to ioas %d (through a paging HWPT)", cmd.device(), ioas.id);
    }
    if (b.pasids.containsKey(cmd.pasid())) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: pasid %d attached already", cmd.device(), cmd.pasid());
    }
    long key = GuestFd.faultHwptKey(ioas.id, b.handle.unitId());
    Integer capable = f.pasidHwpts.get(key);
    if (capable != null && capable == b.hwptId) {
      return attachPasid(f, b, cmd.pasid(), capable, cmd.replyTo());
    }
    if (capable != null) {
      return replaceRid(f, b, capable, () -> attachPasid(f, b, cmd.pasid(), capable, cmd.replyTo()), cmd.replyTo());
    }
    // The RID's HWPT cannot take PASIDs (iommufd_hwpt_pasid_compat): move it to one that can.
    return pasidCapableHwpt(f, b, ioas, (hwptId, refusal) -> refusal != null
        ? reply(cmd.replyTo(), refusal)
        : replaceRid(f, b, hwptId, () -> attachPasid(f, b, cmd.pasid(), hwptId, cmd.replyTo()), cmd.replyTo()));
  }

  @FunctionalInterface
  private interface Next {
    Behavior<Command> run();
  }

  private Behavior<Command> replaceRid(GuestFd f, Binding b, int hwptId, Next then, ActorRef<VmReply> replyTo) {
    return askFd(
        f,
        r -> new IoasidFdActor.DeviceReplace(b.devId, hwptId, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.DeviceAttached attached)) {
            return reply(replyTo, fdRefused(reply, "device " + b.handle.name() + ": replace onto PASID-capable hwpt " + hwptId));
          }
          oracle.note(clock.nanos(), "device " + b.handle.name() + " moved to PASID-capable hwpt " + attached.ptId());
          b.hwptId = attached.ptId();
          return then.run();
        });
  }

  private Behavior<Command> attachPasid(GuestFd f, Binding b, int pasid, int hwptId, ActorRef<VmReply> replyTo) {
    return askFd(
        f,
        r -> new IoasidFdActor.DevicePasidAttach(b.devId, pasid, hwptId, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.DeviceAttached attached)) {
            return reply(replyTo, fdRefused(reply, "device " + b.handle.name() + ": attach pasid " + pasid));
          }
          b.pasids.put(pasid, attached.ptId());
          oracle.note(clock.nanos(), "device " + b.handle.name() + " pasid " + pasid + " attached to hwpt " + attached.ptId());
          return reply(replyTo, new DevicePasidAttached(f.fd, b.handle.name(), pasid, attached.ptId()));
        });
  }

  /** The PASID-capable HWPT_PAGING of {@code ioas} on the device's unit (with the FAULT queue for PRI). */
  private Behavior<Command> pasidCapableHwpt(GuestFd f, Binding b, Ioas ioas, HwptThen then) {
    long key = GuestFd.faultHwptKey(ioas.id, b.handle.unitId());
    if (b.handle.pri() && f.faultId == 0) {
      return askFd(
          f,
          r -> new IoasidFdActor.FaultQueueAlloc(0, r),
          reply -> {
            if (!(reply instanceof IoasidFdActor.FaultQueueAllocated q)) {
              return then.run(0, fdRefused(reply, "FAULT_QUEUE_ALLOC"));
            }
            f.faultId = q.outFaultId();
            return pasidCapableHwpt(f, b, ioas, then);
          });
    }
    int flags = Uapi.HWPT_ALLOC_PASID | (b.handle.pri() ? Uapi.HWPT_ALLOC_FAULT_ID_VALID : 0);
    int faultId = b.handle.pri() ? f.faultId : 0;
    return askFd(
        f,
        r -> new IoasidFdActor.HwptAlloc(flags, b.devId, ioas.id, Uapi.HWPT_DATA_NONE, 0, faultId, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.HwptAllocated h)) {
            return then.run(0, fdRefused(reply, "device " + b.handle.name() + ": HWPT_ALLOC (PASID-capable)"));
          }
          f.pasidHwpts.put(key, h.outHwptId());
          return then.run(h.outHwptId(), null);
        });
  }

  private Behavior<Command> startAttachNested(AttachDeviceNested cmd) {
    Outcome<Target> t = target(cmd.fd(), cmd.device(), cmd.ioasId());
    if (t instanceof Outcome.Err<Target> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    GuestFd f = t.value().f();
    Binding b = t.value().b();
    Ioas ioas = t.value().ioas();
    if (b.attached()) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: already attached to ioas %d", cmd.device(), b.ioasId);
    }
    if (b.handle.unitKind() != io.iommulab.config.UnitKind.VTD) {
      return refused(cmd.replyTo(), Errno.EOPNOTSUPP, "device %s: the guest driver nests only on VT-d (a VT-d stage-1 table); %s nests through a vIOMMU", cmd.device(), b.handle.unitKind());
    }
    long key = GuestFd.faultHwptKey(ioas.id, b.handle.unitId());
    int[] nested = f.nestedHwpts.get(key);
    if (nested != null) {
      return attachNested(f, b, ioas, nested, cmd.replyTo());
    }
    Integer parent = f.nestParents.get(key);
    if (parent == null) {
      return askFd(
          f,
          r -> new IoasidFdActor.HwptAlloc(Uapi.HWPT_ALLOC_NEST_PARENT, b.devId, ioas.id, Uapi.HWPT_DATA_NONE, 0, 0, r),
          reply -> {
            if (!(reply instanceof IoasidFdActor.HwptAllocated h)) {
              return reply(cmd.replyTo(), fdRefused(reply, "device " + b.handle.name() + ": HWPT_ALLOC (NEST_PARENT)"));
            }
            f.nestParents.put(key, h.outHwptId());
            return startAttachNested(cmd);
          });
    }
    return askFd(
        f,
        r -> new IoasidFdActor.HwptAlloc(0, b.devId, parent, Uapi.HWPT_DATA_VTD_S1, Uapi.HWPT_VTD_S1_LEN, 0, r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.HwptAllocated h)) {
            return reply(cmd.replyTo(), fdRefused(reply, "device " + b.handle.name() + ": HWPT_ALLOC (nested, VT-d stage 1)"));
          }
          int[] made = {h.outHwptId(), h.unitId(), h.domainId()};
          f.nestedHwpts.put(key, made);
          return attachNested(f, b, ioas, made, cmd.replyTo());
        });
  }

  private Behavior<Command> attachNested(GuestFd f, Binding b, Ioas ioas, int[] nested, ActorRef<VmReply> replyTo) {
    return askFd(
        f,
        r -> new IoasidFdActor.DeviceAttach(b.devId, nested[0], r),
        reply -> {
          if (!(reply instanceof IoasidFdActor.DeviceAttached attached)) {
            return reply(replyTo, fdRefused(reply, "device " + b.handle.name() + ": attach to nested hwpt " + nested[0]));
          }
          b.ioasId = ioas.id;
          b.hwptId = attached.ptId();
          b.nested = true;
          oracle.note(clock.nanos(), "device " + b.handle.name() + " attached to nested hwpt " + nested[0] + " over ioas " + ioas.id);
          return reply(replyTo, new DeviceAttachedNested(f.fd, b.handle.name(), ioas.id, attached.ptId(), nested[1], nested[2]));
        });
  }

  private Behavior<Command> startRelease(ReleaseDevice cmd) {
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    AssignedDevice d = device.value();
    // The guest driver stops programming it first: DMA issued from now on is refused.
    d.released = true;
    Integer fd = boundIn.get(d.handle.name());
    if (fd == null) {
      oracle.note(clock.nanos(), "device " + d.handle.name() + " released");
      return reply(cmd.replyTo(), new DeviceReleased(spec.vmId(), d.handle.name()));
    }
    GuestFd f = fds.get(fd);
    return unbind(f, f.bound.get(d.handle.name()), refusal -> {
      oracle.note(clock.nanos(), "device " + d.handle.name() + " released");
      // Released either way: the guest let it go; an fd that would not unbind is a failure noted.
      return reply(cmd.replyTo(), new DeviceReleased(spec.vmId(), d.handle.name()));
    });
  }

  private Outcome<AssignedDevice> usableDevice(String name) {
    AssignedDevice d = devices.get(name);
    if (d == null) {
      return Outcome.err(Errno.ENOENT, "device %s: not assigned to vm %d", name, spec.vmId());
    }
    if (d.released) {
      return Outcome.err(Errno.ENODEV, "device %s: released by vm %d (unplugged)", name, spec.vmId());
    }
    return Outcome.ok(d);
  }

  // ================================================================ close and shutdown

  private Behavior<Command> startCloseFd(CloseFd cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return notOpen(cmd.replyTo(), cmd.fd());
    }
    return closeFd(f, (closed, leftBehind) ->
        reply(cmd.replyTo(), new FdClosed(f.fd, closed.objectsDestroyed(), closed.pagesUnpinned(), leftBehind)));
  }

  @FunctionalInterface
  private interface Closed {
    /** {@code leftBehind}: what the fd's snapshot still held once its close completed. */
    Behavior<Command> run(IoasidFdActor.Closed closed, List<String> leftBehind);
  }

  /**
   * close(fd): the fd destroys everything, leaf first; the VM then takes the fd's snapshot (it
   * must be empty: whatever it still holds is left behind, reported and kept as a leak), forgets
   * the fd and stops it.
   */
  private Behavior<Command> closeFd(GuestFd f, Closed then) {
    return askFd(
        f,
        r -> new IoasidFdActor.Close(r),
        reply -> {
          IoasidFdActor.Closed closed;
          if (reply instanceof IoasidFdActor.Closed c) {
            closed = c;
          } else {
            failure("fd " + f.fd + " did not close: " + reply);
            closed = new IoasidFdActor.Closed(0, 0);
          }
          IoasidFdActor.Closed result = closed;
          return askFd(
              f,
              IoasidFdActor.GetSnapshot::new,
              snap -> {
                List<String> left = new ArrayList<>();
                if (snap instanceof IoasidFdActor.Snapshotted s) {
                  left.addAll(leftBehind(s.snapshot()));
                } else {
                  left.add("no snapshot after close: " + snap);
                }
                for (String l : left) {
                  closeLeaks.add("vm " + spec.vmId() + " fd " + f.fd + " left behind at close: " + l);
                }
                forgetFd(f);
                getContext().stop(f.ref);
                oracle.note(clock.nanos(), "fd " + f.fd + " closed" + (left.isEmpty() ? "" : ", left behind " + left));
                return then.run(result, left);
              });
        });
  }

  /** What a closed fd's snapshot still holds, one line per kind; empty when nothing is. */
  static List<String> leftBehind(io.iommulab.actors.fd.model.FdSnapshot s) {
    List<String> left = new ArrayList<>();
    if (!s.objects().isEmpty()) {
      List<String> objects = new ArrayList<>();
      for (io.iommulab.actors.fd.model.FdSnapshot.ObjectSnapshot o : s.objects()) {
        objects.add(o.type() + " " + o.id());
      }
      left.add(s.objects().size() + " objects " + objects);
    }
    if (!s.tombstones().isEmpty()) {
      left.add(s.tombstones().size() + " tombstones " + s.tombstones());
    }
    if (!s.reservedIds().isEmpty()) {
      left.add(s.reservedIds().size() + " reserved ids " + s.reservedIds());
    }
    if (!s.ioases().isEmpty()) {
      left.add(s.ioases().size() + " IOASes");
    }
    io.iommulab.actors.fd.model.FdSnapshot.AccountingSnapshot a = s.accounting();
    if (a.pinnedPages() != 0 || a.userLockedPages() != 0 || a.mmLockedPages() != 0 || a.pagesObjects() != 0) {
      left.add("pinned pages " + a.pinnedPages() + ", locked (user " + a.userLockedPages() + ", mm "
          + a.mmLockedPages() + "), pages objects " + a.pagesObjects());
    }
    if (s.pendingOperations() != 0) {
      left.add(s.pendingOperations() + " operations in flight");
    }
    return left;
  }

  /** Drops what the VM knew of fd {@code f}: bindings (and their KVM files), buffers, IOVAs. */
  private void forgetFd(GuestFd f) {
    for (Binding b : new ArrayList<>(f.bound.values())) {
      f.bound.remove(b.handle.name());
      boundIn.remove(b.handle.name());
      noncoherentFrom.remove(b.handle.name());
      if (kvm.hasFile(b.handle.name())) {
        kvm.deleteFile(b.handle.name()).value();
      }
    }
    for (Ioas ioas : f.ioas.values()) {
      for (Area a : ioas.areas.values()) {
        if (a.ownIova) {
          iovas.free(a.iova).value();
        }
      }
      // Close waited for every flush: buffers still awaiting one here had their release overtaken
      // by the close's answer.
      for (Area a : new java.util.LinkedHashSet<>(ioas.flushing.values())) {
        if (a.ownIova && !ioas.areas.containsKey(a.iova)) {
          iovas.free(a.iova).value();
        }
      }
      oracle.forgetSpace(f.space(ioas.id));
    }
    fds.remove(f.fd);
    ictxSlotsInUse.clear(f.ictxId - spec.vmId() * MAX_FDS);
  }

  private Behavior<Command> onFdFailed(ChildFailed failed) {
    for (GuestFd f : new ArrayList<>(fds.values())) {
      if (f.ref.equals(failed.getRef())) {
        failure("fd " + f.fd + " stopped on a bug: " + failed.getCause());
        forgetFd(f);
      }
    }
    return Behaviors.same();
  }

  private Behavior<Command> startShutdown(Shutdown cmd) {
    shuttingDown = true;
    for (Command c : queued) {
      refuseShuttingDown(c);
    }
    queued.clear();
    // Bursts still on a device when the VM powers off: their callers are answered now, the
    // device's completions are dropped.
    for (InFlight f : inFlight.values()) {
      f.replyTo()
          .tell(new Refused(Errno.ENODEV, "vm " + spec.vmId() + ": powered off with burst " + f.issue().tag() + " in flight"));
    }
    inFlight.clear();
    return closeAll(cmd);
  }

  private Behavior<Command> closeAll(Shutdown cmd) {
    if (!fds.isEmpty()) {
      return closeFd(fds.values().iterator().next(), (closed, left) -> closeAll(cmd));
    }
    kvm.destroy();
    kvm.checkInvariants();
    ActorRef<HostMemoryActor.GuestMemoryReply> adapter =
        getContext()
            .messageAdapter(
                HostMemoryActor.GuestMemoryReply.class, reply -> new MemoryReleased(reply, cmd.replyTo()));
    memory.tell(new HostMemoryActor.ReleaseGuestMemory(spec.vmId(), adapter));
    return Behaviors.same();
  }

  private Behavior<Command> refuseShuttingDown(Command cmd) {
    refuse(cmd, Errno.ENODEV, "vm " + spec.vmId() + ": shutting down");
    return Behaviors.same();
  }

  private Behavior<Command> onMemoryReleased(MemoryReleased released) {
    List<String> leaks = new ArrayList<>(closeLeaks);
    long bytes = 0;
    if (released.reply() instanceof HostMemoryActor.GuestMemoryReleased r) {
      bytes = r.bytes();
    } else if (released.reply() instanceof HostMemoryActor.MemoryRefused r) {
      leaks.add("memory of vm " + spec.vmId() + " not released: " + r.errno() + ": " + r.message());
    } else {
      throw new IllegalStateException("vm " + spec.vmId() + ": unexpected " + released.reply());
    }
    released
        .replyTo()
        .tell(new VmShutDown(spec.vmId(), bytes, kvm.snapshot(), oracle.report(), leaks, failures));
    return Behaviors.stopped();
  }

  // ================================================================ inspection

  private Behavior<Command> onGetVmState(GetVmState cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    cmd.replyTo().tell(state());
    return Behaviors.same();
  }

  private VmState state() {
    Map<String, Boolean> released = new LinkedHashMap<>();
    devices.forEach((name, d) -> released.put(name, d.released));
    Map<String, String> disabled = new LinkedHashMap<>();
    devices.forEach((name, d) -> {
      if (d.dmaDisabled != null) {
        disabled.put(name, d.dmaDisabled);
      }
    });
    int awaiting = 0;
    for (GuestFd f : fds.values()) {
      for (Ioas ioas : f.ioas.values()) {
        awaiting += new java.util.HashSet<>(ioas.flushing.values()).size();
      }
    }
    List<String> bound = new ArrayList<>();
    List<String> attached = new ArrayList<>();
    int areas = 0;
    long mapped = 0;
    for (GuestFd f : fds.values()) {
      for (Binding b : f.bound.values()) {
        bound.add(b.handle.name());
        if (b.attached()) {
          attached.add(b.handle.name());
        }
      }
      for (Ioas ioas : f.ioas.values()) {
        areas += ioas.areas.size();
        for (Area a : ioas.areas.values()) {
          mapped += a.length;
        }
      }
    }
    return new VmState(
        spec.vmId(),
        spec.tenant(),
        layout.bytes(),
        layout.userVaBase(),
        released,
        bound,
        attached,
        fds.size(),
        areas,
        mapped,
        kvm.snapshot(),
        pasids.allocated(),
        iovas.allocatedBytes(),
        burstsIssued,
        burstsCompleted,
        inFlight.size(),
        dmaFaults,
        pageRequestsResolved,
        pageRequestsInvalid,
        oracle.report(),
        failures,
        disabled,
        dmaDisabledEvents,
        awaiting,
        flushesObserved);
  }
}
