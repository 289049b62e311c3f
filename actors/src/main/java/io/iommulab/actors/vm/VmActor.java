package io.iommulab.actors.vm;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.GuestFd.Area;
import io.iommulab.actors.vm.GuestFd.Binding;
import io.iommulab.actors.vm.GuestFd.Domain;
import io.iommulab.actors.vm.GuestFd.Ioas;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.fault.PageRequest;
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
 *   <li>its IOMMU fds: what it bound, allocated, attached and mapped through each ({@link GuestFd});
 *   <li>its guest IOMMU driver state: the VM's PASID set ({@link PasidAllocator}, per VM as in the
 *       2021 /dev/ioasid series), the IOVA allocator of its DMA buffers ({@link IovaAllocator});
 *   <li>its KVM side ({@link KvmVfio}): the device files on the KVM VFIO device, the non-coherent
 *       DMA registration and the WBINVD emulation it switches;
 *   <li>the stale-translation oracle ({@link StaleDmaOracle}) over the DMA it issues.
 * </ul>
 *
 * <p><b>The guest-driver API</b> (for scenarios and tests): open an fd, bind a device to it
 * (DMA ownership), allocate an IOAS, attach a device to it, map a buffer (a GPA range at an IOVA,
 * chosen by the VM's allocator or fixed), unmap it, run a DMA burst on a device, release a device
 * (unplug), shut down. Until the fd actor takes over, an fd here drives the IOMMU units directly
 * with iommufd's rules in a simplified form: one paging domain per IOAS per unit (iommufd's auto
 * domains), force-snoop set on it when the unit can ({@code iommufd_hwpt_paging_enforce_cc}),
 * existing areas replayed into a new domain before the attach, pins reported to the host memory
 * (pin then map; unmap then unpin), whole-area unmaps (a cut is ENOENT), a fixed IOVA inside a
 * reserved region EINVAL, an area over a region of a device being attached EADDRINUSE, a
 * conflicting area EEXIST. PAMU devices are bound here but their domains are set up with the PAMU
 * unit commands. The guest's IOMMU operations run one at a time (queued in arrival order); DMA,
 * WBINVD and inspection are not queued behind them.
 *
 * <p><b>Faults:</b> every attach routes the device's faults here. A DMA fault is counted; a page
 * request is resolved: inside a lazily mapped buffer the page is installed (pinned and mapped in
 * every domain) and the group answered SUCCESS once its last request is resolved; inside a mapped
 * buffer it is answered SUCCESS; elsewhere INVALID.
 *
 * <p><b>Oracle hooks:</b> the VM knows when each of its unmaps returned; each burst it issues
 * carries the set of its accesses whose IOVA had been unmapped (and the unmap had returned) at
 * issue; an access of that set that completes is a stale-translation violation, counted (Kamon
 * {@code iommulab.vm.stale-dma.violations}, tagged by tenant) and recorded with the seed and the
 * events that led to it.
 *
 * <p>Guest mistakes are answered {@link Refused} (errno and a message naming the argument) and
 * change nothing; a broken invariant is a bug and throws, and the host's supervisor stops the VM.
 * A unit that does not answer is a bug of the unit: the operation is answered EIO and the failure
 * kept for the shutdown report. Until the VM's memory is allocated commands are stashed; if
 * allocation is refused the VM tells its creator and stops.
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
          GetVmState,
          Shutdown,
          MemoryAnswered,
          DmaAnswered,
          MemoryReleased,
          UnitAnswered,
          FaultReceived,
          ResolvePageRequest {}

  /** Allocates a PASID from the VM's set; replies {@link PasidAllocated}, ENOSPC at the quota. */
  public record AllocPasid(ActorRef<VmReply> replyTo) implements Command {}

  /** Frees a PASID; replies {@link PasidFreed}, ENOENT when the VM does not hold it. */
  public record FreePasid(int pasid, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Opens an IOMMU fd ({@code open("/dev/iommu")}); replies {@link FdOpened}; ENOSPC with {@link
   * #MAX_FDS} open.
   */
  public record OpenFd(ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Closes fd {@code fd}: detaches and unbinds its devices, destroys its domains, unmaps and unpins
   * every area. Replies {@link FdClosed}; EBADF for an fd that is not open.
   */
  public record CloseFd(int fd, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Binds {@code device} to fd {@code fd} ({@code VFIO_DEVICE_BIND_IOMMUFD}): claims DMA ownership
   * of its group with the fd as context, and adds its file to the KVM VFIO device. Replies {@link
   * DeviceBound}; EBADF, ENOENT (not this VM's), ENODEV (released), EBUSY (already bound), or the
   * unit's refusal (EPERM: another owner holds the group).
   */
  public record BindDevice(int fd, String device, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Unbinds {@code device} from fd {@code fd}, detaching it first if attached; its file leaves the
   * KVM VFIO device. Replies {@link DeviceUnbound}; EBADF, ENOENT when not bound to that fd.
   */
  public record UnbindDevice(int fd, String device, ActorRef<VmReply> replyTo) implements Command {}

  /** {@code IOMMU_IOAS_ALLOC} on fd {@code fd}; replies {@link IoasAllocated}; EBADF. */
  public record AllocIoas(int fd, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Attaches bound {@code device} to IOAS {@code ioasId} of fd {@code fd} (through the IOAS's domain
   * on the device's unit, allocated on first use). Replies {@link DeviceAttached}; EBADF; ENOENT
   * (not bound, no such IOAS); EBUSY (attached already); EOPNOTSUPP (a PAMU device); EADDRINUSE
   * (an area of the IOAS covers a region the device's unit reserves); the unit's refusal.
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
   * 4 KiB aligned, no access bit, IOVA in a reserved region); EFAULT (outside guest memory); EEXIST
   * (IOVA in use); ENOSPC (no IOVA left); a unit's refusal, after undoing what was done.
   */
  public record MapBuffer(
      int fd, int ioasId, long gpa, long length, long iova, int prot, boolean lazy, ActorRef<VmReply> replyTo)
      implements Command {}

  /**
   * Unmaps every area inside {@code [iova, iova + length)} of IOAS {@code ioasId} of fd {@code fd}
   * and waits for each domain's invalidation to complete (strict). Replies {@link BufferUnmapped};
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
   * issuing DMA to it, the fd that bound it detaches and unbinds it (its file leaves the KVM VFIO
   * device). Replies {@link DeviceReleased}; ENOENT for a device not assigned to this VM, ENODEV
   * when already released.
   */
  public record ReleaseDevice(String device, ActorRef<VmReply> replyTo) implements Command {}

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

  private record FaultReceived(IommuUnitActor.FaultEvent event) implements Command {}

  private record ResolvePageRequest(PageRequest request) implements Command {}

  /** The continuation of an IOMMU operation after a unit's answer (local, never serialized). */
  @FunctionalInterface
  private interface Step {
    Behavior<Command> next(IommuUnitActor.UnitReply reply);
  }

  /** The continuation of a multi-step procedure. */
  @FunctionalInterface
  private interface Then {
    Behavior<Command> run();
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
          VmState,
          VmShutDown {}

  /** A guest mistake: nothing changed. */
  public record Refused(Errno errno, String message) implements VmReply {}

  public record PasidAllocated(int pasid) implements VmReply {}

  public record PasidFreed(int pasid) implements VmReply {}

  public record FdOpened(int fd) implements VmReply {}

  public record FdClosed(int fd) implements VmReply {}

  /** {@code info}: what the unit told at the ownership claim (GET_HW_INFO, reserved regions). */
  public record DeviceBound(int fd, String device, int devId, IommuUnitActor.UnitInfo info)
      implements VmReply {}

  public record DeviceUnbound(int fd, String device) implements VmReply {}

  public record IoasAllocated(int fd, int ioasId) implements VmReply {}

  /** {@code domainId}: the IOAS's domain on the device's unit. */
  public record DeviceAttached(int fd, String device, int ioasId, int domainId) implements VmReply {}

  public record DeviceDetached(int fd, String device) implements VmReply {}

  public record BufferMapped(long iova, long length) implements VmReply {}

  /**
   * {@code returnedAtNs}: the modeled time the unmap returned (every invalidation done); {@code
   * modeledLatencyNs}: the units' modeled cost of it.
   */
  public record BufferUnmapped(long iova, long bytes, long returnedAtNs, long modeledLatencyNs)
      implements VmReply {}

  /** A stage-1 write or clear of {@code [iova, +length)} in nested domain {@code nestedDomainId}. */
  public record Stage1Written(int nestedDomainId, long iova, long length) implements VmReply {}

  /** {@code handled} entries ran; {@code errno} of the one that stopped them, null when none. */
  public record Stage1Invalidated(int handled, Errno errno, String message) implements VmReply {}

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

  /**
   * The VM's state: memory, devices (name → released), fds and what they hold, KVM counters,
   * PASIDs, DMA and fault counters, the oracle's report and failures of others it saw.
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
      List<String> failures)
      implements VmReply {
    public VmState {
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
   * tells {@code creator} {@link Started} or {@link StartRefused} (then stops).
   */
  public static Behavior<Command> create(
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<StartReply> creator) {
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
                  return starting(context, stash, spec, assigned, memory, clock, creator);
                }));
  }

  private static Behavior<Command> starting(
      ActorContext<Command> context,
      StashBuffer<Command> stash,
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<StartReply> creator) {
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
                    new VmActor(context, spec, devices, memory, clock, allocated.layout()));
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
  private final ActorRef<DeviceActor.DmaCompleted> dmaAdapter;
  private final ActorRef<IommuUnitActor.FaultEvent> faultSink;
  private final Counter wbinvdEmulatedCounter;
  private final Counter wbinvdSkippedCounter;
  private final Counter staleCounter;
  private final Counter accessCounter;
  private int nextFd = 3; // 0-2 are the VMM's stdio
  private long nextTag = 1;
  private long burstsIssued;
  private long burstsCompleted;
  private long dmaFaults;
  private long pageRequestsResolved;
  private long pageRequestsInvalid;
  private boolean opInFlight;
  private boolean draining;
  private boolean shuttingDown;

  /** A device of this VM and what the guest did with it. */
  private static final class AssignedDevice {
    final DeviceHandle handle;
    boolean released;

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
      GuestMemoryLayout layout) {
    super(context);
    this.spec = spec;
    this.memory = memory;
    this.clock = clock;
    this.layout = layout;
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
    this.faultSink = context.messageAdapter(IommuUnitActor.FaultEvent.class, FaultReceived::new);
    String tenant = spec.tenant();
    this.wbinvdEmulatedCounter =
        Kamon.counter("iommulab.vm.wbinvd.exits").withTag("tenant", tenant).withTag("emulated", true);
    this.wbinvdSkippedCounter =
        Kamon.counter("iommulab.vm.wbinvd.exits").withTag("tenant", tenant).withTag("emulated", false);
    this.staleCounter = Kamon.counter("iommulab.vm.stale-dma.violations").withTag("tenant", tenant);
    this.accessCounter = Kamon.counter("iommulab.vm.dma.accesses").withTag("tenant", tenant);
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(AllocPasid.class, this::onAllocPasid)
        .onMessage(FreePasid.class, this::onFreePasid)
        .onMessage(OpenFd.class, this::onOpenFd)
        .onMessage(AllocIoas.class, this::onAllocIoas)
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
        .onMessage(ResolvePageRequest.class, this::enqueue)
        .onMessage(Shutdown.class, this::enqueue)
        .onMessage(UnitAnswered.class, this::onUnitAnswered)
        .onMessage(FaultReceived.class, this::onFaultReceived)
        .onMessage(RunDma.class, this::onRunDma)
        .onMessage(DmaAnswered.class, this::onDmaAnswered)
        .onMessage(GuestWbinvd.class, this::onGuestWbinvd)
        .onMessage(GetVmState.class, this::onGetVmState)
        .onMessage(MemoryReleased.class, this::onMemoryReleased)
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
      return this;
    }
    opInFlight = true;
    return start(cmd);
  }

  private Behavior<Command> start(Command cmd) {
    if (cmd instanceof CloseFd c) {
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
    } else if (cmd instanceof ResolvePageRequest c) {
      return startResolve(c.request());
    } else if (cmd instanceof Shutdown c) {
      return startShutdown(c);
    }
    throw new IllegalStateException("not an IOMMU operation: " + cmd);
  }

  /** The current operation is over: start the next queued one (iteratively: no deep stacks). */
  private Behavior<Command> opDone() {
    opInFlight = false;
    if (draining) {
      return this;
    }
    draining = true;
    Behavior<Command> next = this;
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

  private Behavior<Command> refused(ActorRef<VmReply> replyTo, Errno errno, String format, Object... args) {
    return reply(replyTo, new Refused(errno, args.length == 0 ? format : String.format(format, args)));
  }

  private Behavior<Command> askUnit(
      ActorRef<IommuUnitActor.Command> unit,
      Function<ActorRef<IommuUnitActor.UnitReply>, IommuUnitActor.Command> request,
      Step next) {
    getContext()
        .ask(
            IommuUnitActor.UnitReply.class,
            unit,
            askTimeout,
            request::apply,
            (reply, failure) ->
                new UnitAnswered(
                    reply != null
                        ? reply
                        : new IommuUnitActor.Refused(
                            Errno.EIO, "unit did not answer: " + (failure == null ? "?" : failure.getMessage())),
                    next));
    return this;
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

  // ================================================================ fds and IOAS

  private Behavior<Command> onOpenFd(OpenFd cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    int slot = 0;
    while (slot < MAX_FDS && ictxSlotsInUse.get(slot)) {
      slot++;
    }
    if (slot == MAX_FDS) {
      cmd.replyTo().tell(new Refused(Errno.ENOSPC, "vm " + spec.vmId() + ": " + MAX_FDS + " IOMMU fds open"));
      return this;
    }
    ictxSlotsInUse.set(slot);
    int fd = nextFd++;
    fds.put(fd, new GuestFd(fd, spec.vmId() * MAX_FDS + slot));
    oracle.note(clock.nanos(), "fd " + fd + " opened");
    cmd.replyTo().tell(new FdOpened(fd));
    return this;
  }

  private Behavior<Command> onAllocIoas(AllocIoas cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      cmd.replyTo().tell(new Refused(Errno.EBADF, "fd " + cmd.fd() + ": not open"));
      return this;
    }
    int id = f.nextObjectId();
    f.ioas.put(id, new Ioas(id));
    cmd.replyTo().tell(new IoasAllocated(f.fd, id));
    return this;
  }

  private Behavior<Command> startBind(BindDevice cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    if (boundIn.containsKey(cmd.device())) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: already bound to fd %d", cmd.device(), boundIn.get(cmd.device()));
    }
    DeviceHandle h = device.value().handle;
    int ictx = f.ictxId;
    return askUnit(
        h.unit(),
        r -> new IommuUnitActor.ClaimDmaOwner(h.rid(), ictx, spec.vmId(), r),
        reply -> {
          if (!(reply instanceof IommuUnitActor.DmaOwnerClaimed claimed)) {
            return reply(cmd.replyTo(), asRefused(reply, "device " + h.name() + ": bind"));
          }
          Binding b = new Binding(h, f.nextObjectId(), claimed.info());
          f.bound.put(h.name(), b);
          boundIn.put(h.name(), f.fd);
          for (ReservedRegion region : claimed.info().reservedRegions()) {
            if (region.type() != ReservedRegion.Type.DIRECT_RELAXABLE) {
              iovas.reserve(region.start(), region.last());
            }
          }
          // QEMU adds the device file to the KVM VFIO device (KVM_DEV_VFIO_FILE_ADD).
          kvm.addFile(h.name(), h.enforcedCoherent()).value();
          oracle.note(clock.nanos(), "device " + h.name() + " bound to fd " + f.fd);
          return reply(cmd.replyTo(), new DeviceBound(f.fd, h.name(), b.devId, claimed.info()));
        });
  }

  private Behavior<Command> startUnbind(UnbindDevice cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    Binding b = f.bound.get(cmd.device());
    if (b == null) {
      return refused(cmd.replyTo(), Errno.ENOENT, "device %s: not bound to fd %d", cmd.device(), cmd.fd());
    }
    return unbind(f, b, () -> reply(cmd.replyTo(), new DeviceUnbound(f.fd, cmd.device())));
  }

  /** Detaches (if attached), releases the DMA ownership, drops the KVM file. Never refused. */
  private Behavior<Command> unbind(GuestFd f, Binding b, Then then) {
    Then release =
        () ->
            askUnit(
                b.handle.unit(),
                r -> new IommuUnitActor.ReleaseDmaOwner(b.handle.rid(), f.ictxId, r),
                reply -> {
                  if (!ok(reply)) {
                    failure("unit refused to release the DMA ownership of " + b.handle.name() + ": " + reply);
                  }
                  f.bound.remove(b.handle.name());
                  boundIn.remove(b.handle.name());
                  kvm.deleteFile(b.handle.name()).value();
                  oracle.note(clock.nanos(), "device " + b.handle.name() + " unbound from fd " + f.fd);
                  return then.run();
                });
    return b.ioasId == null ? release.run() : detach(f, b, release);
  }

  private Behavior<Command> startAttach(AttachDevice cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    Binding b = f.bound.get(cmd.device());
    if (b == null) {
      return refused(cmd.replyTo(), Errno.ENOENT, "device %s: not bound to fd %d", cmd.device(), cmd.fd());
    }
    Ioas ioas = f.ioas.get(cmd.ioasId());
    if (ioas == null) {
      return refused(cmd.replyTo(), Errno.ENOENT, "ioas %d: no such IOAS on fd %d", cmd.ioasId(), cmd.fd());
    }
    if (b.ioasId != null) {
      return refused(cmd.replyTo(), Errno.EBUSY, "device %s: already attached to ioas %d", cmd.device(), b.ioasId);
    }
    if (b.handle.unitKind() == UnitKind.PAMU) {
      return refused(
          cmd.replyTo(), Errno.EOPNOTSUPP,
          "device %s: behind a PAMU, domains are set up with the PAMU geometry and window calls", cmd.device());
    }
    for (ReservedRegion region : b.info.reservedRegions()) {
      if (region.type() == ReservedRegion.Type.DIRECT_RELAXABLE) {
        continue;
      }
      for (Area a : ioas.areas.values()) {
        if (region.intersects(a.iova, a.iova + a.length - 1)) {
          return refused(
              cmd.replyTo(), Errno.EADDRINUSE,
              "device %s: area [0x%x, +0x%x) of ioas %d covers reserved %s",
              cmd.device(), a.iova, a.length, ioas.id, region);
        }
      }
    }
    Domain existing = ioas.domains.get(b.handle.unitId());
    if (existing != null) {
      return attachTo(f, b, ioas, existing, cmd.replyTo(), () -> opDone());
    }
    DeviceHandle h = b.handle;
    return askUnit(
        h.unit(),
        r -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAGING, false, false, 0, r),
        reply -> {
          if (!(reply instanceof IommuUnitActor.DomainAllocated allocated)) {
            return reply(cmd.replyTo(), asRefused(reply, "device " + h.name() + ": domain allocation"));
          }
          Domain domain = new Domain(h.unitId(), allocated.domainId(), h.unit());
          Then undoDomain = () -> freeDomain(domain, () -> opDone());
          Then fill =
              () ->
                  fillDomain(
                      domain, ioas,
                      refusal -> {
                        cmd.replyTo().tell(refusal);
                        return freeDomain(domain, () -> opDone());
                      },
                      () -> {
                        ioas.domains.put(h.unitId(), domain);
                        return attachTo(
                            f, b, ioas, domain, cmd.replyTo(),
                            () -> {
                              if (domain.attached == 0) {
                                ioas.domains.remove(h.unitId());
                                return unmapAllFrom(domain, ioas, undoDomain);
                              }
                              return opDone();
                            });
                      });
          if (!h.enforcedCoherent()) {
            return fill.run();
          }
          // iommufd sets force-snoop before the first map: the PTE snoop bit is decided at map.
          return askUnit(
              h.unit(),
              r -> new IommuUnitActor.EnforceCacheCoherency(domain.domainId, r),
              cc -> {
                if (!ok(cc)) {
                  cmd.replyTo().tell(asRefused(cc, "device " + h.name() + ": enforce cache coherency"));
                  return undoDomain.run();
                }
                return fill.run();
              });
        });
  }

  /** Attaches (rid, NO_PASID) of {@code b} to {@code domain}; replies; then {@code after}. */
  private Behavior<Command> attachTo(
      GuestFd f, Binding b, Ioas ioas, Domain domain, ActorRef<VmReply> replyTo, Then after) {
    return askUnit(
        domain.unit,
        r -> new IommuUnitActor.Attach(b.handle.rid(), IommuUnitActor.NO_PASID, domain.domainId, faultSink, r),
        reply -> {
          if (!ok(reply)) {
            replyTo.tell(asRefused(reply, "device " + b.handle.name() + ": attach"));
            return after.run();
          }
          domain.attached++;
          b.ioasId = ioas.id;
          oracle.note(clock.nanos(), "device " + b.handle.name() + " attached to ioas " + ioas.id + " of fd " + f.fd);
          replyTo.tell(new DeviceAttached(f.fd, b.handle.name(), ioas.id, domain.domainId));
          return after.run();
        });
  }

  private Behavior<Command> startDetach(DetachDevice cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    Binding b = f.bound.get(cmd.device());
    if (b == null) {
      return refused(cmd.replyTo(), Errno.ENOENT, "device %s: not bound to fd %d", cmd.device(), cmd.fd());
    }
    if (b.ioasId == null) {
      return refused(cmd.replyTo(), Errno.EINVAL, "device %s: not attached", cmd.device());
    }
    return detach(f, b, () -> reply(cmd.replyTo(), new DeviceDetached(f.fd, cmd.device())));
  }

  /**
   * Detaches {@code b}: the unit answers after the PASID-teardown invalidation; the last device
   * of a domain takes the domain with it (areas unmapped from it, then freed). Never refused.
   */
  private Behavior<Command> detach(GuestFd f, Binding b, Then then) {
    Ioas ioas = f.ioas.get(b.ioasId);
    Domain domain = ioas.domains.get(b.handle.unitId());
    return askUnit(
        domain.unit,
        r -> new IommuUnitActor.Detach(b.handle.rid(), IommuUnitActor.NO_PASID, r),
        reply -> {
          if (!ok(reply)) {
            failure("unit refused to detach " + b.handle.name() + ": " + reply);
          }
          b.ioasId = null;
          domain.attached--;
          oracle.note(clock.nanos(), "device " + b.handle.name() + " detached from ioas " + ioas.id);
          if (domain.attached > 0) {
            return then.run();
          }
          ioas.domains.remove(domain.unitId);
          return unmapAllFrom(domain, ioas, () -> freeDomain(domain, then));
        });
  }

  private Behavior<Command> freeDomain(Domain domain, Then then) {
    return askUnit(
        domain.unit,
        r -> new IommuUnitActor.FreeDomain(domain.domainId, r),
        reply -> {
          if (!ok(reply)) {
            failure("unit refused to free domain " + domain.domainId + ": " + reply);
          }
          return then.run();
        });
  }

  // ================================================================ map and unmap

  /** Host-physical runs of guest memory {@code [gpa, gpa + length)}. */
  private long[][] runs(long gpa, long length) {
    List<long[]> runs = new ArrayList<>();
    long g = gpa;
    long end = gpa + length;
    while (g < end) {
      long run = Math.min(layout.gpaContiguousBytes(g), end - g);
      runs.add(new long[] {layout.gpaToHpa(g), run});
      g += run;
    }
    long[] hpas = new long[runs.size()];
    long[] lengths = new long[runs.size()];
    for (int i = 0; i < hpas.length; i++) {
      hpas[i] = runs.get(i)[0];
      lengths[i] = runs.get(i)[1];
    }
    return new long[][] {hpas, lengths};
  }

  /** The pieces of an area present in domains: whole for an eager area, installed pages if lazy. */
  private static List<long[]> presentPieces(Area a) {
    List<long[]> pieces = new ArrayList<>();
    if (!a.lazy) {
      pieces.add(new long[] {a.iova, a.length, a.gpa});
      return pieces;
    }
    for (int i = a.installed.nextSetBit(0); i >= 0; ) {
      int end = a.installed.nextClearBit(i);
      pieces.add(new long[] {a.iova + i * PAGE, (end - i) * PAGE, a.gpa + i * PAGE});
      i = a.installed.nextSetBit(end);
    }
    return pieces;
  }

  private void pins(long gpa, long length, boolean pinned) {
    memory.tell(new HostMemoryActor.PinsChanged(spec.vmId(), layout.userVaBase() + gpa, length, pinned));
  }

  private Behavior<Command> startMap(MapBuffer cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    Ioas ioas = f.ioas.get(cmd.ioasId());
    if (ioas == null) {
      return refused(cmd.replyTo(), Errno.ENOENT, "ioas %d: no such IOAS on fd %d", cmd.ioasId(), cmd.fd());
    }
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
    } else {
      if (iova < 0 || iova % PAGE != 0 || iova > IOVA_LIMIT - cmd.length()) {
        return refused(cmd.replyTo(), Errno.EINVAL, "iova 0x%x: must be 4 KiB aligned and below 0x%x", iova, IOVA_LIMIT);
      }
      for (Binding b : f.bound.values()) {
        if (b.ioasId != null && b.ioasId == ioas.id) {
          for (ReservedRegion region : b.info.reservedRegions()) {
            if (region.type() != ReservedRegion.Type.DIRECT_RELAXABLE
                && region.intersects(iova, iova + cmd.length() - 1)) {
              return refused(cmd.replyTo(), Errno.EINVAL, "iova [0x%x, +0x%x): intersects reserved %s", iova, cmd.length(), region);
            }
          }
        }
      }
    }
    Area clash = ioas.overlapping(iova, cmd.length());
    if (clash != null) {
      if (ownIova) {
        iovas.free(iova).value();
      }
      return refused(cmd.replyTo(), Errno.EEXIST, "iova [0x%x, +0x%x): overlaps the area at 0x%x", iova, cmd.length(), clash.iova);
    }
    Area area = new Area(iova, cmd.length(), cmd.gpa(), cmd.prot(), cmd.lazy(), ownIova);
    long space = f.space(ioas.id);
    oracle.mapIssued(space, iova, cmd.length());
    if (area.lazy) {
      ioas.areas.put(iova, area);
      return reply(cmd.replyTo(), new BufferMapped(iova, cmd.length()));
    }
    pins(area.gpa, area.length, true);
    List<Domain> domains = new ArrayList<>(ioas.domains.values());
    long[][] runs = runs(area.gpa, area.length);
    return mapInto(
        domains, 0, area.iova, runs, area.prot,
        (failedAt, refusal) -> {
          // Undo what was mapped, then the pin and the IOVA: a refused map changes nothing.
          return unmapFrom(
              domains.subList(0, failedAt), area.iova, area.length,
              latency -> {
                pins(area.gpa, area.length, false);
                if (area.ownIova) {
                  iovas.free(area.iova).value();
                }
                return reply(cmd.replyTo(), asRefused(refusal, String.format("map at iova 0x%x", area.iova)));
              });
        },
        () -> {
          ioas.areas.put(area.iova, area);
          return reply(cmd.replyTo(), new BufferMapped(area.iova, area.length));
        });
  }

  @FunctionalInterface
  private interface MapFailed {
    Behavior<Command> at(int domainIndex, IommuUnitActor.UnitReply refusal);
  }

  /** Maps {@code runs} at {@code iova} in {@code domains[i..]}, one after the other. */
  private Behavior<Command> mapInto(
      List<Domain> domains, int i, long iova, long[][] runs, int prot, MapFailed failed, Then done) {
    if (i == domains.size()) {
      return done.run();
    }
    Domain d = domains.get(i);
    return askUnit(
        d.unit,
        r -> new IommuUnitActor.MapRange(d.domainId, iova, runs[0].clone(), runs[1].clone(), prot, r),
        reply ->
            ok(reply) ? mapInto(domains, i + 1, iova, runs, prot, failed, done) : failed.at(i, reply));
  }

  @FunctionalInterface
  private interface Unmapped {
    Behavior<Command> then(long modeledLatencyNs);
  }

  /** Unmaps {@code [iova, +length)} from every domain of {@code domains}; refusals are failures. */
  private Behavior<Command> unmapFrom(List<Domain> domains, long iova, long length, Unmapped done) {
    return unmapFrom(domains, 0, iova, length, 0, done);
  }

  private Behavior<Command> unmapFrom(
      List<Domain> domains, int i, long iova, long length, long latency, Unmapped done) {
    if (i == domains.size()) {
      return done.then(latency);
    }
    Domain d = domains.get(i);
    return askUnit(
        d.unit,
        r -> new IommuUnitActor.UnmapRange(d.domainId, iova, length, r),
        reply -> {
          long l = latency;
          if (reply instanceof IommuUnitActor.Unmapped u) {
            l = Math.max(l, u.modeledLatencyNs());
          } else {
            failure(String.format("unit refused to unmap [0x%x, +0x%x) from domain %d: %s", iova, length, d.domainId, reply));
          }
          return unmapFrom(domains, i + 1, iova, length, l, done);
        });
  }

  /** Fills a new domain with every area of {@code ioas} (what is present of lazy ones). */
  private Behavior<Command> fillDomain(
      Domain domain, Ioas ioas, Function<Refused, Behavior<Command>> failed, Then done) {
    List<long[]> pieces = new ArrayList<>();
    List<Integer> prots = new ArrayList<>();
    for (Area a : ioas.areas.values()) {
      for (long[] p : presentPieces(a)) {
        pieces.add(p);
        prots.add(a.prot);
      }
    }
    return fillPieces(domain, pieces, prots, 0, failed, done);
  }

  private Behavior<Command> fillPieces(
      Domain domain, List<long[]> pieces, List<Integer> prots, int i,
      Function<Refused, Behavior<Command>> failed, Then done) {
    if (i == pieces.size()) {
      return done.run();
    }
    long[] p = pieces.get(i);
    long[][] runs = runs(p[2], p[1]);
    return askUnit(
        domain.unit,
        r -> new IommuUnitActor.MapRange(domain.domainId, p[0], runs[0], runs[1], prots.get(i), r),
        reply -> {
          if (ok(reply)) {
            return fillPieces(domain, pieces, prots, i + 1, failed, done);
          }
          Refused refusal = asRefused(reply, String.format("replaying iova 0x%x into a new domain", p[0]));
          return unmapPieces(domain, pieces.subList(0, i), 0, () -> failed.apply(refusal));
        });
  }

  private Behavior<Command> unmapPieces(Domain domain, List<long[]> pieces, int i, Then done) {
    if (i == pieces.size()) {
      return done.run();
    }
    long[] p = pieces.get(i);
    return unmapFrom(List.of(domain), p[0], p[1], latency -> unmapPieces(domain, pieces, i + 1, done));
  }

  /** Unmaps every present piece of every area of {@code ioas} from {@code domain}. */
  private Behavior<Command> unmapAllFrom(Domain domain, Ioas ioas, Then done) {
    List<long[]> pieces = new ArrayList<>();
    for (Area a : ioas.areas.values()) {
      pieces.addAll(presentPieces(a));
    }
    return unmapPieces(domain, pieces, 0, done);
  }

  private Behavior<Command> startUnmap(UnmapBuffer cmd) {
    GuestFd f = fds.get(cmd.fd());
    if (f == null) {
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    Ioas ioas = f.ioas.get(cmd.ioasId());
    if (ioas == null) {
      return refused(cmd.replyTo(), Errno.ENOENT, "ioas %d: no such IOAS on fd %d", cmd.ioasId(), cmd.fd());
    }
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
        return refused(cmd.replyTo(), Errno.ENOENT, "area [0x%x, +0x%x): only partly inside [0x%x, +0x%x); areas are never split", a.iova, a.length, cmd.iova(), cmd.length());
      }
      victims.add(a);
    }
    if (victims.isEmpty()) {
      return refused(cmd.replyTo(), Errno.ENOENT, "[0x%x, +0x%x): nothing mapped", cmd.iova(), cmd.length());
    }
    long space = f.space(ioas.id);
    List<Domain> domains = new ArrayList<>(ioas.domains.values());
    return unmapAreas(
        ioas, space, domains, victims, 0, 0, 0,
        (bytes, latency) -> reply(cmd.replyTo(), new BufferUnmapped(cmd.iova(), bytes, clock.nanos(), latency)));
  }

  @FunctionalInterface
  private interface AreasUnmapped {
    Behavior<Command> then(long bytes, long modeledLatencyNs);
  }

  /** Unmaps areas one by one from every domain; each returned unmap is told to the oracle. */
  private Behavior<Command> unmapAreas(
      Ioas ioas, long space, List<Domain> domains, List<Area> areas, int i, long bytes, long latency,
      AreasUnmapped done) {
    if (i == areas.size()) {
      return done.then(bytes, latency);
    }
    Area a = areas.get(i);
    StaleDmaOracle.Event issued =
        oracle.note(clock.nanos(), String.format("unmap [0x%x, +0x%x) issued", a.iova, a.length));
    List<long[]> pieces = presentPieces(a);
    return unmapPiecesFrom(
        domains, pieces, 0, 0,
        l -> {
          for (long[] p : pieces) {
            pins(p[2], p[1], false);
          }
          ioas.areas.remove(a.iova);
          if (a.ownIova) {
            iovas.free(a.iova).value();
          }
          oracle.unmapReturned(space, a.iova, a.length, issued, clock.nanos());
          return unmapAreas(ioas, space, domains, areas, i + 1, bytes + a.length, Math.max(latency, l), done);
        });
  }

  private Behavior<Command> unmapPiecesFrom(
      List<Domain> domains, List<long[]> pieces, int i, long latency, Unmapped done) {
    if (i == pieces.size()) {
      return done.then(latency);
    }
    long[] p = pieces.get(i);
    return unmapFrom(
        domains, p[0], p[1], l -> unmapPiecesFrom(domains, pieces, i + 1, Math.max(latency, l), done));
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
            return reply(cmd.replyTo(), new Stage1Invalidated(u.handled(), u.errno(), u.message()));
          }
          return reply(cmd.replyTo(), asRefused(reply, "stage-1 invalidation of domain " + cmd.nestedDomainId()));
        });
  }

  // ================================================================ faults and page requests

  private Behavior<Command> onFaultReceived(FaultReceived received) {
    if (received.event() instanceof IommuUnitActor.DmaFaulted faulted) {
      dmaFaults++;
      oracle.note(clock.nanos(), "DMA fault " + faulted.fault());
      return this;
    }
    if (received.event() instanceof IommuUnitActor.PageRequested requested) {
      return enqueue(new ResolvePageRequest(requested.request()));
    }
    throw new IllegalStateException("vm " + spec.vmId() + ": unknown fault event " + received.event());
  }

  private Behavior<Command> startResolve(PageRequest req) {
    Binding b = bindingByRid(req.unitId(), req.rid());
    Ioas ioas = null;
    GuestFd f = null;
    if (b != null && b.ioasId != null && req.pasid() == IommuUnitActor.NO_PASID) {
      f = fds.get(boundIn.get(b.handle.name()));
      ioas = f.ioas.get(b.ioasId);
    }
    Area area = ioas == null ? null : ioas.holding(req.addr());
    if (area == null || !Access.permits(area.prot, req.perm() & Access.READ_WRITE)) {
      pageRequestsInvalid++;
      return respond(b, req, IommuUnitActor.PageResponseCode.INVALID);
    }
    int page = (int) ((req.addr() - area.iova) / PAGE);
    if (!area.lazy || area.installed.get(page)) {
      pageRequestsResolved++;
      return respond(b, req, IommuUnitActor.PageResponseCode.SUCCESS);
    }
    long pageIova = area.iova + page * PAGE;
    long gpa = area.gpa + page * PAGE;
    Ioas target = ioas;
    pins(gpa, PAGE, true);
    List<Domain> domains = new ArrayList<>(target.domains.values());
    long[][] runs = runs(gpa, PAGE);
    oracle.mapIssued(f.space(target.id), pageIova, PAGE);
    return mapInto(
        domains, 0, pageIova, runs, area.prot,
        (failedAt, refusal) ->
            unmapFrom(
                domains.subList(0, failedAt), pageIova, PAGE,
                latency -> {
                  pins(gpa, PAGE, false);
                  pageRequestsInvalid++;
                  return respond(b, req, IommuUnitActor.PageResponseCode.FAILURE);
                }),
        () -> {
          area.installed.set(page);
          pageRequestsResolved++;
          return respond(b, req, IommuUnitActor.PageResponseCode.SUCCESS);
        });
  }

  /** Answers a page-request group once, on its last request (io-pgfault.c: one response a group). */
  private Behavior<Command> respond(Binding b, PageRequest req, IommuUnitActor.PageResponseCode code) {
    if (req.lastPage() && b != null) {
      b.handle.unit().tell(new IommuUnitActor.RespondPageRequest(req.rid(), req.pasid(), req.groupId(), code));
    }
    return opDone();
  }

  private Binding bindingByRid(int unitId, int rid) {
    for (GuestFd f : fds.values()) {
      for (Binding b : f.bound.values()) {
        if (b.handle.unitId() == unitId && (b.handle.rid() == rid || b.handle.liodn() == rid)) {
          return b;
        }
      }
    }
    return null;
  }

  // ================================================================ guest IOMMU driver: PASIDs

  private Behavior<Command> onAllocPasid(AllocPasid cmd) {
    Outcome<Integer> pasid = pasids.allocate();
    if (pasid instanceof Outcome.Err<Integer> e) {
      cmd.replyTo().tell(new Refused(e.errno(), "vm " + spec.vmId() + ": " + e.message()));
    } else {
      cmd.replyTo().tell(new PasidAllocated(pasid.value()));
    }
    return this;
  }

  private Behavior<Command> onFreePasid(FreePasid cmd) {
    Outcome<Void> freed = pasids.free(cmd.pasid());
    if (freed instanceof Outcome.Err<Void> e) {
      cmd.replyTo().tell(new Refused(e.errno(), "vm " + spec.vmId() + ": " + e.message()));
    } else {
      cmd.replyTo().tell(new PasidFreed(cmd.pasid()));
    }
    return this;
  }

  // ================================================================ DMA and the oracle

  private Behavior<Command> onRunDma(RunDma cmd) {
    if (shuttingDown) {
      return refuseShuttingDown(cmd);
    }
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      cmd.replyTo().tell(new Refused(e.errno(), e.message()));
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
      return this;
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
        return this;
      }
      if (cmd.access()[i] == 0 || (cmd.access()[i] & ~bits) != 0) {
        cmd.replyTo()
            .tell(new Refused(Errno.EINVAL, String.format("burst: access[%d] = 0x%x: not a subset of rwxp", i, cmd.access()[i])));
        return this;
      }
    }
    long tag = nextTag++;
    boolean hasSpace = false;
    long space = 0;
    Integer fd = boundIn.get(cmd.device());
    if (fd != null && cmd.pasid() == IommuUnitActor.NO_PASID) {
      GuestFd f = fds.get(fd);
      Binding b = f.bound.get(cmd.device());
      if (b.ioasId != null) {
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
    return this;
  }

  private Behavior<Command> onDmaAnswered(DmaAnswered answered) {
    DeviceActor.DmaCompleted done = answered.completed();
    InFlight f = inFlight.remove(done.tag());
    if (f == null) {
      if (shuttingDown) {
        return this; // its caller was answered when the VM began to power off
      }
      throw new IllegalStateException("vm " + spec.vmId() + ": completion of unknown burst " + done.tag());
    }
    burstsCompleted++;
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
    return this;
  }

  // ================================================================ KVM

  private Behavior<Command> onGuestWbinvd(GuestWbinvd cmd) {
    boolean emulated = kvm.guestWbinvd();
    (emulated ? wbinvdEmulatedCounter : wbinvdSkippedCounter).increment();
    cmd.replyTo().tell(new WbinvdHandled(emulated, kvm.snapshot()));
    return this;
  }

  // ================================================================ hot-unplug

  private Behavior<Command> startRelease(ReleaseDevice cmd) {
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      return refused(cmd.replyTo(), e.errno(), e.message());
    }
    AssignedDevice d = device.value();
    // The guest driver stops programming it first: DMA issued from now on is refused.
    d.released = true;
    Then released =
        () -> {
          oracle.note(clock.nanos(), "device " + d.handle.name() + " released");
          return reply(cmd.replyTo(), new DeviceReleased(spec.vmId(), d.handle.name()));
        };
    Integer fd = boundIn.get(d.handle.name());
    if (fd == null) {
      return released.run();
    }
    GuestFd f = fds.get(fd);
    return unbind(f, f.bound.get(d.handle.name()), released);
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
      return refused(cmd.replyTo(), Errno.EBADF, "fd %d: not open", cmd.fd());
    }
    return closeFd(f, () -> reply(cmd.replyTo(), new FdClosed(f.fd)));
  }

  /**
   * Destroys what the fd holds, leaves first as iommufd's release does: devices (detached, then
   * unbound: the last device of a domain frees it), then the areas of every IOAS (unpinned).
   */
  private Behavior<Command> closeFd(GuestFd f, Then then) {
    if (!f.bound.isEmpty()) {
      Binding b = f.bound.values().iterator().next();
      return unbind(f, b, () -> closeFd(f, then));
    }
    for (Ioas ioas : f.ioas.values()) {
      if (!ioas.domains.isEmpty()) {
        throw new IllegalStateException("fd " + f.fd + ": ioas " + ioas.id + " keeps domains with no device");
      }
      for (Area a : ioas.areas.values()) {
        for (long[] p : presentPieces(a)) {
          pins(p[2], p[1], false);
        }
        if (a.ownIova) {
          iovas.free(a.iova).value();
        }
      }
      oracle.forgetSpace(f.space(ioas.id));
    }
    fds.remove(f.fd);
    ictxSlotsInUse.clear(f.ictxId - spec.vmId() * MAX_FDS);
    oracle.note(clock.nanos(), "fd " + f.fd + " closed");
    return then.run();
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
      return closeFd(fds.values().iterator().next(), () -> closeAll(cmd));
    }
    kvm.destroy();
    kvm.checkInvariants();
    ActorRef<HostMemoryActor.GuestMemoryReply> adapter =
        getContext()
            .messageAdapter(
                HostMemoryActor.GuestMemoryReply.class, reply -> new MemoryReleased(reply, cmd.replyTo()));
    memory.tell(new HostMemoryActor.ReleaseGuestMemory(spec.vmId(), adapter));
    return this;
  }

  private Behavior<Command> refuseShuttingDown(Command cmd) {
    refuse(cmd, Errno.ENODEV, "vm " + spec.vmId() + ": shutting down");
    return this;
  }

  private Behavior<Command> onMemoryReleased(MemoryReleased released) {
    List<String> leaks = new ArrayList<>();
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
    return this;
  }

  private VmState state() {
    Map<String, Boolean> released = new LinkedHashMap<>();
    devices.forEach((name, d) -> released.put(name, d.released));
    List<String> bound = new ArrayList<>();
    List<String> attached = new ArrayList<>();
    int areas = 0;
    long mapped = 0;
    for (GuestFd f : fds.values()) {
      for (Binding b : f.bound.values()) {
        bound.add(b.handle.name());
        if (b.ioasId != null) {
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
        failures);
  }
}
