package io.iommulab.actors.vm;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
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
 *   <li>its guest IOMMU driver state: the VM's PASID set ({@link PasidAllocator}, per VM as in the
 *       2021 /dev/ioasid series), the IOVA allocator of its DMA buffers ({@link IovaAllocator});
 *   <li>its KVM side ({@link KvmVfio}): the device files on the KVM VFIO device, the non-coherent
 *       DMA registration and the WBINVD emulation it switches;
 *   <li>the stale-translation oracle ({@link StaleDmaOracle}) over the DMA it issues.
 * </ul>
 *
 * <p>The protocol is a small guest-driver API for scenarios and tests. Guest mistakes are answered
 * {@link Refused} (errno and a message naming the argument) and change nothing; a broken invariant
 * is a bug and throws, and the host's supervisor stops the VM. Until the VM's memory is allocated
 * commands are stashed; if allocation is refused the VM tells its creator and stops.
 */
public final class VmActor extends AbstractBehavior<VmActor.Command> {

  /** Commands of the stash while the VM waits for its memory. */
  static final int STASH_CAPACITY = 1024;

  /** IOVAs the guest gives its DMA buffers: from 1 MiB up to 2^39 (a 3-level table reaches it). */
  static final long IOVA_BASE = 1L << 20;

  static final long IOVA_LIMIT = 1L << 39;

  // ================================================================ protocol

  public sealed interface Command extends CborSerializable
      permits AllocPasid,
          FreePasid,
          RunDma,
          GuestWbinvd,
          ReleaseDevice,
          GetVmState,
          Shutdown,
          MemoryAnswered,
          DmaAnswered,
          MemoryReleased {}

  /** Allocates a PASID from the VM's set; replies {@link PasidAllocated}, ENOSPC at the quota. */
  public record AllocPasid(ActorRef<VmReply> replyTo) implements Command {}

  /** Frees a PASID; replies {@link PasidFreed}, ENOENT when the VM does not hold it. */
  public record FreePasid(int pasid, ActorRef<VmReply> replyTo) implements Command {}

  /**
   * The guest programs {@code device} to perform a burst of DMA: {@code lengths[i]} bytes at
   * {@code iovas[i]} with {@code access[i]} ({@code Access} bits), tagged with {@code pasid} or
   * {@link IommuUnitActor#NO_PASID}. Replies {@link DmaDone} when the device reports completion.
   * ENOENT for a device not assigned to this VM, ENODEV for one the VM released, EINVAL for empty
   * or mismatched arrays. A PASID the VM does not hold is not refused: a guest may program anything
   * into its device, and it is the IOMMU's job to stop it.
   */
  public record RunDma(
      String device,
      int pasid,
      long[] iovas,
      int[] lengths,
      int[] access,
      ActorRef<VmReply> replyTo)
      implements Command {}

  /** The guest executes WBINVD; replies {@link WbinvdHandled} (emulated or skipped by KVM). */
  public record GuestWbinvd(ActorRef<VmReply> replyTo) implements Command {}

  /**
   * Hot-unplug request from the host: the guest driver unbinds {@code device} (the VM stops issuing
   * DMA to it), the KVM VFIO device drops its file. Replies {@link DeviceReleased}; ENOENT for a
   * device not assigned to this VM, ENODEV when already released.
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
          DmaDone,
          WbinvdHandled,
          DeviceReleased,
          VmState,
          VmShutDown {}

  /** A guest mistake: nothing changed. */
  public record Refused(Errno errno, String message) implements VmReply {}

  public record PasidAllocated(int pasid) implements VmReply {}

  public record PasidFreed(int pasid) implements VmReply {}

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
   * The VM's state: memory, devices (name → released), KVM counters, PASIDs, DMA counters and the
   * oracle's report.
   */
  public record VmState(
      int vmId,
      String tenant,
      long memoryBytes,
      long userVaBase,
      Map<String, Boolean> devicesReleased,
      KvmVfio.Snapshot kvm,
      int pasidsAllocated,
      long iovaBytesAllocated,
      long burstsIssued,
      long burstsCompleted,
      int burstsInFlight,
      StaleDmaOracle.Report oracle)
      implements VmReply {
    public VmState {
      devicesReleased = Map.copyOf(devicesReleased);
    }
  }

  /**
   * The VM is gone. {@code memoryReleasedBytes} is what the host took back; {@code leaks} names
   * what could not be returned (frames still pinned, fds that would not close): empty when clean.
   */
  public record VmShutDown(
      int vmId,
      long memoryReleasedBytes,
      KvmVfio.Snapshot kvm,
      StaleDmaOracle.Report oracle,
      List<String> leaks)
      implements VmReply {
    public VmShutDown {
      leaks = List.copyOf(leaks);
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
                stash.forEach(cmd -> refuseUnstarted(cmd, spec.vmId()));
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

  private static void refuseUnstarted(Command cmd, int vmId) {
    ActorRef<VmReply> replyTo = replyToOf(cmd);
    if (replyTo != null) {
      replyTo.tell(new Refused(Errno.ENODEV, "vm " + vmId + ": never started"));
    }
  }

  private static ActorRef<VmReply> replyToOf(Command cmd) {
    if (cmd instanceof AllocPasid c) {
      return c.replyTo();
    } else if (cmd instanceof FreePasid c) {
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
  private final Map<String, AssignedDevice> devices = new LinkedHashMap<>();
  private final KvmVfio kvm = new KvmVfio();
  private final PasidAllocator pasids;
  private final IovaAllocator iovas;
  private final StaleDmaOracle oracle;
  private final Map<Long, InFlight> inFlight = new HashMap<>();
  private final ActorRef<DeviceActor.DmaCompleted> dmaAdapter;
  private final Counter wbinvdEmulatedCounter;
  private final Counter wbinvdSkippedCounter;
  private final Counter staleCounter;
  private final Counter accessCounter;
  private long nextTag = 1;
  private long burstsIssued;
  private long burstsCompleted;

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
    for (DeviceHandle h : handles) {
      if (devices.put(h.name(), new AssignedDevice(h)) != null) {
        throw new IllegalArgumentException("vm " + spec.vmId() + ": device " + h.name() + " assigned twice");
      }
    }
    this.pasids = new PasidAllocator(spec.pasidBits(), spec.pasidQuota());
    this.iovas = new IovaAllocator(IOVA_BASE, IOVA_LIMIT, 4096);
    this.oracle = new StaleDmaOracle(spec.seed(), spec.vmId(), spec.strictOracle());
    this.dmaAdapter = context.messageAdapter(DeviceActor.DmaCompleted.class, DmaAnswered::new);
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
        .onMessage(RunDma.class, this::onRunDma)
        .onMessage(DmaAnswered.class, this::onDmaAnswered)
        .onMessage(GuestWbinvd.class, this::onGuestWbinvd)
        .onMessage(ReleaseDevice.class, this::onReleaseDevice)
        .onMessage(GetVmState.class, this::onGetVmState)
        .onMessage(Shutdown.class, this::onShutdown)
        .build();
  }

  // ================================================================ guest IOMMU driver

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
    for (int i = 0; i < n; i++) {
      if (cmd.lengths()[i] <= 0) {
        cmd.replyTo()
            .tell(new Refused(Errno.EINVAL, String.format("burst: lengths[%d] = %d: must be positive", i, cmd.lengths()[i])));
        return this;
      }
    }
    long tag = nextTag++;
    StaleDmaOracle.BurstIssue issue =
        oracle.burstIssued(
            false, 0, cmd.device(), cmd.pasid(), tag, cmd.iovas(), cmd.lengths(), cmd.access(), clock.nanos());
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

  private Behavior<Command> onReleaseDevice(ReleaseDevice cmd) {
    Outcome<AssignedDevice> device = usableDevice(cmd.device());
    if (device instanceof Outcome.Err<AssignedDevice> e) {
      cmd.replyTo().tell(new Refused(e.errno(), e.message()));
      return this;
    }
    AssignedDevice d = device.value();
    d.released = true;
    if (kvm.hasFile(d.handle.name())) {
      kvm.deleteFile(d.handle.name()).value();
    }
    oracle.note(clock.nanos(), "device " + d.handle.name() + " released");
    cmd.replyTo().tell(new DeviceReleased(spec.vmId(), d.handle.name()));
    return this;
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

  // ================================================================ inspection and shutdown

  private Behavior<Command> onGetVmState(GetVmState cmd) {
    cmd.replyTo().tell(state());
    return this;
  }

  private VmState state() {
    Map<String, Boolean> released = new LinkedHashMap<>();
    devices.forEach((name, d) -> released.put(name, d.released));
    return new VmState(
        spec.vmId(),
        spec.tenant(),
        layout.bytes(),
        layout.userVaBase(),
        released,
        kvm.snapshot(),
        pasids.allocated(),
        iovas.allocatedBytes(),
        burstsIssued,
        burstsCompleted,
        inFlight.size(),
        oracle.report());
  }

  private Behavior<Command> onShutdown(Shutdown cmd) {
    kvm.destroy();
    kvm.checkInvariants();
    ActorRef<HostMemoryActor.GuestMemoryReply> adapter =
        getContext()
            .messageAdapter(
                HostMemoryActor.GuestMemoryReply.class, reply -> new MemoryReleased(reply, cmd.replyTo()));
    memory.tell(new HostMemoryActor.ReleaseGuestMemory(spec.vmId(), adapter));
    return Behaviors.receive(Command.class)
        .onMessage(MemoryReleased.class, this::onMemoryReleased)
        .onMessage(DmaAnswered.class, this::onDmaAnswered)
        .onAnyMessage(this::refuseShuttingDown)
        .build();
  }

  private Behavior<Command> refuseShuttingDown(Command cmd) {
    ActorRef<VmReply> replyTo = replyToOf(cmd);
    if (replyTo != null) {
      replyTo.tell(new Refused(Errno.ENODEV, "vm " + spec.vmId() + ": shutting down"));
    }
    return Behaviors.same();
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
    // Bursts still on a device when the VM powers off: their callers are answered now, the
    // device's completions go to dead letters.
    for (InFlight f : inFlight.values()) {
      f.replyTo()
          .tell(new Refused(Errno.ENODEV, "vm " + spec.vmId() + ": powered off with burst " + f.issue().tag() + " in flight"));
    }
    inFlight.clear();
    released
        .replyTo()
        .tell(new VmShutDown(spec.vmId(), bytes, kvm.snapshot(), oracle.report(), leaks));
    return Behaviors.stopped();
  }
}
