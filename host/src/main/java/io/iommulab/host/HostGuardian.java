package io.iommulab.host;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.StaleDmaOracle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.actors.vm.VmSpec;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.IommulabSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import io.iommulab.hardware.memory.HostMemory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import kamon.Kamon;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ChildFailed;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.StashBuffer;

/**
 * One emulated host. Builds the topology of {@link IommulabSettings} — the {@link HostMemoryActor},
 * the {@link MsiBankActor}s, one {@link IommuUnitActor} per unit (unit id = index in the topology),
 * one {@link DeviceActor} per device, each device registered with its unit before any command is
 * served — and then creates and destroys VMs, assigns devices to them and hot-plugs devices.
 *
 * <p><b>State it owns:</b> the topology (names → actors), each device's presence (present,
 * unplugging, absent, plugging) and its assignment (which VM holds it), the VMs (starting,
 * running, stopping), failures of its children, and the leaks VMs reported when they went away.
 * It never reads another actor's state: it asks and is answered.
 *
 * <p><b>Guest mistakes</b> are answered {@link Refused} with an errno and change nothing: an
 * unknown device or VM is ENOENT, a device (or a member of its IOMMU group) already assigned to
 * another VM is EBUSY, an unplugged device is ENODEV, a VM id in use is EEXIST, an operation on
 * something already changing (a device being unplugged, a VM starting) is EBUSY.
 *
 * <p><b>Supervision policy: stop, record, report.</b> Every child is stopped when it throws (a
 * thrown exception is a bug: a broken invariant). Restarting would build an empty model while
 * every other actor still holds pins, mappings, claims and attach handles against the old one: a
 * restarted unit or memory actor would lie, and the emulator exists to tell the truth about
 * isolation. The guardian watches every child, logs the failure with its cause, counts it
 * (Kamon {@code iommulab.host.actor.failures}, tagged by role) and lists it in the {@link
 * Topology} and the {@link HostReport}, which is then not clean. Commands that need a stopped
 * actor time out and are answered EIO. A VM that fails leaves its memory allocated (a leak the
 * report shows); its devices are returned to the pool.
 *
 * <p><b>Seeds:</b> every child's seed is derived from the host's seed with {@link
 * SplittableRandom#split()} in topology order (units, then devices), and a VM's from the host
 * seed and its VM id, so the same seed and topology replay.
 */
public final class HostGuardian extends AbstractBehavior<HostGuardian.Command> {

  static final int STASH_CAPACITY = 10_000;

  // ================================================================ protocol

  public sealed interface Command extends CborSerializable
      permits CreateVm,
          DestroyVm,
          UnplugDevice,
          PlugDevice,
          AssignDevice,
          GetTopology,
          Shutdown,
          DeviceRegistered,
          VmStartAnswered,
          VmShutDownAnswered,
          VmReleasedDevice,
          VmAdoptedDevice,
          DeviceQuiesced,
          DeviceUnregistered,
          DeviceReRegistered,
          MemoryReported,
          UnitReported,
          UnitSnapshotReported,
          BankReported {}

  /**
   * Creates VM {@code vmId} with {@code memoryBytes} of guest memory backed by {@code backing}
   * pages, with {@code devices} assigned to it (by name). Replies {@link VmCreated} once its memory
   * is allocated, else {@link Refused}: EINVAL for a bad id, size or repeated device; EEXIST for a
   * VM id in use; ENOENT for an unknown device; ENODEV for an unplugged one; EBUSY for a device
   * (or a member of its group) held by another VM; ENOMEM when the host cannot back the memory.
   *
   * @param tenant the VM's tenant class: the tag of its metrics
   */
  public record CreateVm(
      int vmId,
      long memoryBytes,
      PageSize backing,
      List<String> devices,
      String tenant,
      ActorRef<CreateVmReply> replyTo)
      implements Command {
    public CreateVm {
      devices = List.copyOf(devices);
      Objects.requireNonNull(backing, "backing");
      Objects.requireNonNull(tenant, "tenant");
    }
  }

  /**
   * Powers VM {@code vmId} off: it closes its fds and returns its memory; its devices become
   * assignable. Replies {@link VmDestroyed}; ENOENT for an unknown VM, EBUSY while it starts or
   * stops.
   */
  public record DestroyVm(int vmId, ActorRef<DestroyVmReply> replyTo) implements Command {}

  /**
   * Hot-unplugs device {@code name}: the VM holding it releases it (its guest driver unbinds; the
   * VM's fd detaches and unbinds it), the device quiesces (DMA still issued on it completes
   * ABORTED), the unit forgets it. Replies {@link DeviceUnplugged}; ENOENT for an unknown device,
   * ENODEV when already unplugged, EBUSY while it is being plugged, unplugged or assigned to a VM
   * that is starting or stopping.
   */
  public record UnplugDevice(String name, ActorRef<HotplugReply> replyTo) implements Command {}

  /**
   * Plugs device {@code name} back: the unit registers it, the device resumes, and it can be
   * assigned again. Replies {@link DevicePlugged}; ENOENT for an unknown device, EEXIST when it is
   * present, EBUSY while it is being plugged or unplugged.
   */
  public record PlugDevice(String name, ActorRef<HotplugReply> replyTo) implements Command {}

  /**
   * Hot-plugs present, unassigned device {@code name} into running VM {@code vmId}: the VM adopts
   * it ({@link VmActor.AdoptDevice}; its guest driver may then bind it) and the device is assigned
   * to it. With {@link PlugDevice} first, this is the replug half of a hotplug cycle. Replies
   * {@link DeviceAssigned}; ENOENT for an unknown device or VM, ENODEV for an unplugged device,
   * EBUSY for a device (or a member of its IOMMU group) held by a VM, being plugged or unplugged,
   * or a VM that is not running; the VM's refusal.
   */
  public record AssignDevice(String name, int vmId, ActorRef<HotplugReply> replyTo) implements Command {}

  /** Replies {@link Topology}. */
  public record GetTopology(ActorRef<Topology> replyTo) implements Command {}

  /**
   * Shuts the host down: every VM powers off (closing its fds, returning its memory), then the
   * guardian collects the oracles' verdicts and the leak counts into a {@link HostReport}. After
   * it, every command but {@link GetTopology} is refused (EBUSY). A second Shutdown is answered
   * with the same report.
   */
  public record Shutdown(ActorRef<HostReport> replyTo) implements Command {}

  // The answers of this actor's asks (Asks.ask builds them where the ask completes and tells them
  // to self): they never leave the JVM, so they are exempt from serialization checks, as the
  // adapted messages of ActorContext.ask are.
  private record DeviceRegistered(String name, IommuUnitActor.UnitReply reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record VmStartAnswered(int vmId, VmActor.StartReply reply) implements Command {}

  private record VmShutDownAnswered(int vmId, VmActor.VmReply reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record VmReleasedDevice(String name, VmActor.VmReply reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record VmAdoptedDevice(
      String name, int vmId, ActorRef<HotplugReply> replyTo, VmActor.VmReply reply, String failure)
      implements Command {}

  private record DeviceQuiesced(String name, DeviceActor.Quiesced reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record DeviceUnregistered(String name, IommuUnitActor.UnitReply reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record DeviceReRegistered(String name, IommuUnitActor.UnitReply reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record MemoryReported(HostMemoryActor.MemoryReport report, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record UnitReported(int unitId, IommuUnitActor.UnitStats stats, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record UnitSnapshotReported(int unitId, IommuUnitActor.UnitSnapshotted snapshot, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  private record BankReported(int bankIndex, MsiBankActor.BankReply reply, String failure)
      implements Command, org.apache.pekko.actor.NoSerializationVerificationNeeded {}

  // ---------------------------------------------------------------- replies

  public sealed interface CreateVmReply extends CborSerializable permits VmCreated, Refused {}

  public sealed interface DestroyVmReply extends CborSerializable permits VmDestroyed, Refused {}

  public sealed interface HotplugReply extends CborSerializable
      permits DeviceUnplugged, DevicePlugged, DeviceAssigned, Refused {}

  /** A guest (or operator) mistake: nothing changed. */
  public record Refused(Errno errno, String message)
      implements CreateVmReply, DestroyVmReply, HotplugReply {}

  public record VmCreated(
      int vmId, ActorRef<VmActor.Command> vm, GuestMemoryLayout layout, List<DeviceHandle> devices)
      implements CreateVmReply {
    public VmCreated {
      devices = List.copyOf(devices);
    }
  }

  /** {@code leaks}: what the VM could not return (empty when clean). */
  public record VmDestroyed(int vmId, long memoryReleasedBytes, List<String> leaks)
      implements DestroyVmReply {
    public VmDestroyed {
      leaks = List.copyOf(leaks);
    }
  }

  /** {@code formerVmId}: the VM that held the device, 0 for none. */
  public record DeviceUnplugged(String name, int formerVmId) implements HotplugReply {}

  public record DevicePlugged(String name) implements HotplugReply {}

  public record DeviceAssigned(String name, int vmId) implements HotplugReply {}

  /** Presence of a device in the host. */
  public enum Presence {
    PRESENT,
    UNPLUGGING,
    ABSENT,
    PLUGGING
  }

  public record UnitEntry(int unitId, String name, UnitKind kind, ActorRef<IommuUnitActor.Command> unit)
      implements CborSerializable {}

  /** {@code assignedVmId}: the VM holding the device, 0 for none. */
  public record DeviceEntry(DeviceHandle handle, Presence presence, int assignedVmId)
      implements CborSerializable {}

  /**
   * Names → actors, for facades and tests. {@code failures}: children that stopped on a bug,
   * each as "role name: cause".
   */
  public record Topology(
      ActorRef<HostMemoryActor.Command> memory,
      List<UnitEntry> units,
      Map<String, DeviceEntry> devices,
      List<ActorRef<MsiBankActor.Command>> msiBanks,
      Map<Integer, ActorRef<VmActor.Command>> vms,
      List<String> failures)
      implements CborSerializable {
    public Topology {
      units = List.copyOf(units);
      devices = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(devices));
      msiBanks = List.copyOf(msiBanks);
      vms = Map.copyOf(vms);
      failures = List.copyOf(failures);
    }

    public DeviceEntry device(String name) {
      DeviceEntry e = devices.get(name);
      if (e == null) {
        throw new IllegalArgumentException("no device " + name);
      }
      return e;
    }
  }

  /**
   * The verdict of a run, built at {@link Shutdown}:
   *
   * @param vms each VM's last words (memory returned, KVM counters, oracle report, leaks)
   * @param memory the host memory oracle's report after every VM went away (null if it did not
   *     answer)
   * @param units each unit's counters after every VM went away
   * @param msiBanks each MSI bank's state: groups, owners, isolation
   * @param leaks everything that should have been returned and was not: pinned frames, memory
   *     still owned by a VM, domains and attach handles left in units, device-TLB invalidations
   *     never acknowledged, what VMs could not return
   * @param failures children that stopped on a bug, and actors that did not answer
   */
  public record HostReport(
      List<VmActor.VmShutDown> vms,
      HostMemoryActor.MemoryReport memory,
      List<IommuUnitActor.UnitStats> units,
      List<MsiBankActor.BankState> msiBanks,
      List<String> leaks,
      List<String> failures)
      implements CborSerializable {
    public HostReport {
      vms = List.copyOf(vms);
      units = List.copyOf(units);
      msiBanks = List.copyOf(msiBanks);
      leaks = List.copyOf(leaks);
      failures = List.copyOf(failures);
    }

    /** DMA accesses the memory oracle judged to hit another owner's frames. */
    public long isolationViolations() {
      return memory == null ? 0 : memory.checks().getOrDefault(DmaCheck.ISOLATION_VIOLATION, 0L);
    }

    /**
     * DMA accesses that reached a frame of their own VM that nobody pinned: a translation outlived
     * the unpin of its frame (deferred unmaps released too early) or a mapping was made without a
     * pin. Fails the run like an isolation violation.
     */
    public long unpinnedFrameViolations() {
      return memory == null ? 0 : memory.checks().getOrDefault(DmaCheck.UNPINNED_FRAME, 0L);
    }

    /** DMA accesses that completed at an IOVA whose (strict) unmap had returned. */
    public long staleViolations() {
      long n = 0;
      for (VmActor.VmShutDown vm : vms) {
        n += vm.oracle().violations();
      }
      return n;
    }

    /** Every stale violation the VMs recorded, with seed and events. */
    public List<StaleDmaOracle.StaleViolation> staleViolationRecords() {
      List<StaleDmaOracle.StaleViolation> all = new ArrayList<>();
      for (VmActor.VmShutDown vm : vms) {
        all.addAll(vm.oracle().recorded());
      }
      return all;
    }

    /**
     * IOTLB hits the units' stale-hit oracle found stale with no invalidation pending that would
     * drop them: missed invalidations.
     */
    public long unitStaleHitViolations() {
      long n = 0;
      for (IommuUnitActor.UnitStats u : units) {
        n += u.staleHitViolations();
      }
      return n;
    }

    /** No leak, no failure, no isolation, unpinned-frame or stale violation (VMs' or units'). */
    public boolean clean() {
      return leaks.isEmpty() && failures.isEmpty() && isolationViolations() == 0
          && unpinnedFrameViolations() == 0 && staleViolations() == 0
          && unitStaleHitViolations() == 0;
    }
  }

  // ================================================================ construction

  /** A host of the real actors with the default host settings and {@code seed}. */
  public static Behavior<Command> create(
      IommulabSettings settings, ModeledClock clock, long seed, FaultInjector injector) {
    return create(settings, HostSettings.defaults().withSeed(seed), clock, injector);
  }

  /** A host of the real actors. */
  public static Behavior<Command> create(
      IommulabSettings settings,
      HostSettings hostSettings,
      ModeledClock clock,
      FaultInjector injector) {
    return create(settings, hostSettings, clock, injector, HostParts.REAL);
  }

  /**
   * A host whose actors come from {@code parts} (tests plant fakes there); units measure wall
   * latencies with the edge's clock ({@link EdgeClock#WALL_NANOS}).
   */
  public static Behavior<Command> create(
      IommulabSettings settings,
      HostSettings hostSettings,
      ModeledClock clock,
      FaultInjector injector,
      HostParts parts) {
    return create(settings, hostSettings, clock, injector, parts, EdgeClock.WALL_NANOS);
  }

  /**
   * As above, with the wall clock the units measure wall-clock latencies with ({@code wallNanos}:
   * handed in by the edge; null measures none). Each unit's invalidation stream runs in the mode
   * and with the bounds of {@code settings.invalidation()} ({@code
   * iommulab.pipeline.invalidation}), its fault pipeline with {@code settings.faultPipeline()};
   * every VM's fds take the uAPI and fault-pipeline settings.
   */
  public static Behavior<Command> create(
      IommulabSettings settings,
      HostSettings hostSettings,
      ModeledClock clock,
      FaultInjector injector,
      HostParts parts,
      java.util.function.LongSupplier wallNanos) {
    Objects.requireNonNull(settings, "settings");
    Objects.requireNonNull(hostSettings, "hostSettings");
    Objects.requireNonNull(clock, "clock");
    Objects.requireNonNull(injector, "injector");
    Objects.requireNonNull(parts, "parts");
    return Behaviors.withStash(
        STASH_CAPACITY,
        stash ->
            Behaviors.setup(
                context -> new HostGuardian(context, stash, settings, hostSettings, clock, injector, parts,
                    wallNanos)));
  }

  // ================================================================ state

  private final StashBuffer<Command> stash;
  private final IommulabSettings settings;
  private final HostSettings hostSettings;
  private final ModeledClock clock;
  private final HostParts parts;
  private final FaultInjector injector;
  private final Duration askTimeout;
  private final long vmSeedBase;
  private final ActorRef<VmActor.StartReply> vmStarted;

  private final ActorRef<HostMemoryActor.Command> memory;
  private final List<ActorRef<MsiBankActor.Command>> banks = new ArrayList<>();
  private final List<UnitEntry> units = new ArrayList<>();
  private final Map<String, DeviceSlot> devices = new LinkedHashMap<>();
  /** (unitId, group) → the group's members: assignment rules are per IOMMU group. */
  private final Map<Long, List<DeviceSlot>> groups = new HashMap<>();
  private final Map<Integer, VmSlot> vms = new TreeMap<>();
  private final Map<ActorRef<?>, String> roles = new HashMap<>();
  private final List<String> failures = new ArrayList<>();
  private final List<String> leaks = new ArrayList<>();

  private int registrationsPending;
  private long vmIncarnation;
  private ShutdownProgress shutdown;
  private HostReport finalReport;

  /** The guardian's view of one device. */
  private static final class DeviceSlot {
    final DeviceSettings settings;
    final DeviceHandle handle;
    Presence presence = Presence.PLUGGING; // until the unit registers it at boot
    int assignedVmId; // 0: none
    int reservedVmId; // a VM being created holds it
    ActorRef<HotplugReply> hotplugReplyTo;
    int unplugFormerVm;

    DeviceSlot(DeviceSettings settings, DeviceHandle handle) {
      this.settings = settings;
      this.handle = handle;
    }

    int holder() {
      return assignedVmId != 0 ? assignedVmId : reservedVmId;
    }
  }

  private enum VmPhase {
    STARTING,
    RUNNING,
    STOPPING
  }

  /** The guardian's view of one VM. */
  private static final class VmSlot {
    final VmSpec spec;
    final ActorRef<VmActor.Command> ref;
    final List<String> devices;
    VmPhase phase = VmPhase.STARTING;
    ActorRef<CreateVmReply> createReplyTo;
    ActorRef<DestroyVmReply> destroyReplyTo;

    VmSlot(VmSpec spec, ActorRef<VmActor.Command> ref, List<String> devices) {
      this.spec = spec;
      this.ref = ref;
      this.devices = new ArrayList<>(devices);
    }
  }

  /** What Shutdown still waits for, and what it has collected. */
  private static final class ShutdownProgress {
    final List<ActorRef<HostReport>> replyTo = new ArrayList<>();
    final List<VmActor.VmShutDown> vmReports = new ArrayList<>();
    final List<IommuUnitActor.UnitStats> unitStats = new ArrayList<>();
    final List<MsiBankActor.BankState> bankStates = new ArrayList<>();
    final List<String> snapshotLeaks = new ArrayList<>();
    HostMemoryActor.MemoryReport memoryReport;
    boolean vmsStopped;
    int reportsPending;
  }

  private HostGuardian(
      ActorContext<Command> context,
      StashBuffer<Command> stash,
      IommulabSettings settings,
      HostSettings hostSettings,
      ModeledClock clock,
      FaultInjector injector,
      HostParts parts,
      java.util.function.LongSupplier wallNanos) {
    super(context);
    this.stash = stash;
    this.settings = settings;
    this.hostSettings = hostSettings;
    this.clock = clock;
    this.parts = parts;
    this.injector = injector;
    this.askTimeout = hostSettings.askTimeout();
    SplittableRandom seeds = new SplittableRandom(hostSettings.seed());
    this.vmSeedBase = seeds.split().nextLong();
    // One adapter per message class and actor: a later messageAdapter call replaces the function,
    // so the VM id must come from the reply, never from a captured CreateVm.
    this.vmStarted = context.messageAdapter(VmActor.StartReply.class, r -> new VmStartAnswered(startedVmId(r), r));

    var topology = settings.topology();
    this.memory = spawn("memory", "host-memory", parts.memory(topology, injector));
    Map<Integer, ActorRef<MsiBankActor.Command>> bankMap = new TreeMap<>();
    for (MsiBankSettings bank : topology.msiBanks()) {
      ActorRef<MsiBankActor.Command> ref =
          spawn("msi-bank", "msi-bank-" + bank.index(), parts.msiBank(bank, injector));
      banks.add(ref);
      bankMap.put(bank.index(), ref);
    }
    CostModel cost = new CostModel(settings.costModel());
    Map<String, Integer> unitIds = new HashMap<>();
    for (int unitId = 0; unitId < topology.units().size(); unitId++) {
      IommuUnitSettings unit = topology.units().get(unitId);
      ActorRef<IommuUnitActor.Command> ref =
          spawn(
              "unit",
              "unit-" + unit.name(),
              parts.unit(
                  unitId, unit, cost, clock, seeds.split().nextLong(), injector, memory, Map.copyOf(bankMap),
                  settings.invalidation(), settings.faultPipeline(), wallNanos));
      units.add(new UnitEntry(unitId, unit.name(), unit.kind(), ref));
      unitIds.put(unit.name(), unitId);
    }
    for (DeviceSettings device : topology.devices()) {
      int unitId = unitIds.get(device.unit());
      UnitEntry unit = units.get(unitId);
      ActorRef<DeviceActor.Command> ref =
          spawn(
              "device",
              "device-" + device.name(),
              parts.device(device, unitId, unit.unit(), memory, clock, seeds.split().nextLong()));
      DeviceHandle handle =
          new DeviceHandle(
              device.name(),
              device.ridValue(),
              device.liodn().orElse(-1),
              device.group(),
              unitId,
              unit.kind(),
              enforcesCoherency(topology.units().get(unitId)),
              device.pasidBits(),
              device.ats(),
              device.pri(),
              device.noSnoop(),
              device.msiVectors(),
              unit.unit(),
              ref);
      DeviceSlot slot = new DeviceSlot(device, handle);
      devices.put(device.name(), slot);
      groups.computeIfAbsent(groupKey(handle), k -> new ArrayList<>()).add(slot);
    }
    for (DeviceSlot slot : devices.values()) {
      register(slot, DeviceRegistered::new);
      registrationsPending++;
    }
    context.getLog()
        .info(
            "Host booting: [{}] units, [{}] devices, [{}] MSI banks, seed [{}], invalidation [{}]",
            units.size(), devices.size(), banks.size(), hostSettings.seed(),
            settings.invalidation().mode().configName());
  }

  /**
   * Whether KVM may treat DMA of a device behind {@code unit} as coherent: the unit can force snoop
   * ({@code IOMMU_CAP_ENFORCE_CACHE_COHERENCY}). PAMU parts are PowerPC, where KVM has no WBINVD
   * emulation to switch ({@code kvm_arch_register_noncoherent_dma} is x86 only): coherent here.
   */
  static boolean enforcesCoherency(IommuUnitSettings unit) {
    return !(unit instanceof PagingUnitSettings paging) || paging.snoopControl();
  }

  private static long groupKey(DeviceHandle h) {
    return ((long) h.unitId() << 32) | (h.group() & 0xffffffffL);
  }

  private <T> ActorRef<T> spawn(String role, String name, Behavior<T> behavior) {
    ActorRef<T> ref =
        getContext()
            .spawn(
                Behaviors.supervise(behavior).onFailure(Exception.class, SupervisorStrategy.stop()),
                name);
    getContext().watch(ref);
    roles.put(ref, role + " " + name);
    return ref;
  }

  private interface RegistrationMessage {
    Command of(String name, IommuUnitActor.UnitReply reply, String failure);
  }

  private void register(DeviceSlot slot, RegistrationMessage message) {
    DeviceSettings d = slot.settings;
    DeviceHandle h = slot.handle;
    io.iommulab.actors.Asks.<Command, IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
            getContext(),
            h.unit(),
            askTimeout,
            replyTo ->
                new IommuUnitActor.RegisterDevice(
                    h.rid(), h.liodn(), d.group(), d.pasidBits(), d.ats(), d.pri(), h.device(), replyTo),
            (reply, failure) -> message.of(d.name(), reply, describe(failure)));
  }

  private static String describe(Throwable failure) {
    return failure == null ? null : failure.getClass().getSimpleName() + ": " + failure.getMessage();
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(CreateVm.class, this::onCreateVm)
        .onMessage(DestroyVm.class, this::onDestroyVm)
        .onMessage(UnplugDevice.class, this::onUnplugDevice)
        .onMessage(PlugDevice.class, this::onPlugDevice)
        .onMessage(AssignDevice.class, this::onAssignDevice)
        .onMessage(VmAdoptedDevice.class, this::onVmAdoptedDevice)
        .onMessage(GetTopology.class, this::onGetTopology)
        .onMessage(Shutdown.class, this::onShutdown)
        .onMessage(DeviceRegistered.class, this::onDeviceRegistered)
        .onMessage(VmStartAnswered.class, this::onVmStartAnswered)
        .onMessage(VmShutDownAnswered.class, this::onVmShutDownAnswered)
        .onMessage(VmReleasedDevice.class, this::onVmReleasedDevice)
        .onMessage(DeviceQuiesced.class, this::onDeviceQuiesced)
        .onMessage(DeviceUnregistered.class, this::onDeviceUnregistered)
        .onMessage(DeviceReRegistered.class, this::onDeviceReRegistered)
        .onMessage(MemoryReported.class, this::onMemoryReported)
        .onMessage(UnitReported.class, this::onUnitReported)
        .onMessage(UnitSnapshotReported.class, this::onUnitSnapshotReported)
        .onMessage(BankReported.class, this::onBankReported)
        .onSignal(ChildFailed.class, this::onChildFailed)
        .onSignal(Terminated.class, this::onTerminated)
        .build();
  }

  // ================================================================ boot

  private boolean booting() {
    return registrationsPending > 0;
  }

  private Behavior<Command> onDeviceRegistered(DeviceRegistered msg) {
    DeviceSlot slot = devices.get(msg.name());
    if (msg.reply() == IommuUnitActor.Done.INSTANCE) {
      slot.presence = Presence.PRESENT;
    } else {
      slot.presence = Presence.ABSENT;
      recordFailure(
          "boot: unit " + units.get(slot.handle.unitId()).name() + " did not register device " + msg.name()
              + ": " + (msg.failure() != null ? msg.failure() : msg.reply()));
    }
    registrationsPending--;
    if (registrationsPending == 0) {
      getContext().getLog().info("Host up: [{}] devices registered", presentCount());
      return stash.unstashAll(this);
    }
    return this;
  }

  private long presentCount() {
    return devices.values().stream().filter(d -> d.presence == Presence.PRESENT).count();
  }

  /** While booting, public commands wait in the stash; afterwards, shut-down refusals. */
  private boolean deferred(Command cmd) {
    if (booting()) {
      stash.stash(cmd);
      return true;
    }
    return false;
  }

  private boolean shutDown() {
    return shutdown != null;
  }

  // ================================================================ VMs

  private Behavior<Command> onCreateVm(CreateVm cmd) {
    if (deferred(cmd)) {
      return this;
    }
    Refused refused = checkCreate(cmd);
    if (refused != null) {
      cmd.replyTo().tell(refused);
      return this;
    }
    VmSpec spec =
        new VmSpec(
            cmd.vmId(),
            cmd.tenant(),
            cmd.memoryBytes(),
            cmd.backing(),
            vmSeed(cmd.vmId()),
            hostSettings.strictUnmap(),
            20,
            hostSettings.vmPasidQuota(),
            askTimeout.toMillis(),
            settings.topology().msiBanks().stream().map(b -> b.msiirAddress()).toList());
    List<DeviceHandle> handles = new ArrayList<>();
    for (String name : cmd.devices()) {
      DeviceSlot slot = devices.get(name);
      slot.reservedVmId = cmd.vmId();
      handles.add(slot.handle);
    }
    ActorRef<VmActor.Command> ref =
        spawn("vm", "vm-" + cmd.vmId() + "-" + (++vmIncarnation), parts.vm(spec, handles, memory, clock, vmStarted, hostSettings.uapi(), settings.faultPipeline(), injector));
    VmSlot slot = new VmSlot(spec, ref, cmd.devices());
    slot.createReplyTo = cmd.replyTo();
    vms.put(cmd.vmId(), slot);
    return this;
  }

  private Refused checkCreate(CreateVm cmd) {
    if (shutDown()) {
      return new Refused(Errno.EBUSY, "host is shut down");
    }
    if (cmd.vmId() < 1 || cmd.vmId() > VmActor.MAX_VM_ID) {
      return new Refused(Errno.EINVAL, "vmId " + cmd.vmId() + ": must be from 1 to " + VmActor.MAX_VM_ID);
    }
    if (vms.containsKey(cmd.vmId())) {
      return new Refused(Errno.EEXIST, "vm " + cmd.vmId() + ": already exists");
    }
    Set<String> seen = new HashSet<>();
    for (String name : cmd.devices()) {
      if (!seen.add(name)) {
        return new Refused(Errno.EINVAL, "device " + name + ": listed twice");
      }
      DeviceSlot slot = devices.get(name);
      if (slot == null) {
        return new Refused(Errno.ENOENT, "device " + name + ": no such device");
      }
      if (slot.presence == Presence.ABSENT) {
        return new Refused(Errno.ENODEV, "device " + name + ": unplugged");
      }
      if (slot.presence != Presence.PRESENT) {
        return new Refused(Errno.EBUSY, "device " + name + ": being " + slot.presence.name().toLowerCase());
      }
      if (slot.holder() != 0) {
        return new Refused(Errno.EBUSY, "device " + name + ": assigned to vm " + slot.holder());
      }
      for (DeviceSlot other : groups.get(groupKey(slot.handle))) {
        if (other.holder() != 0 && other.holder() != cmd.vmId()) {
          return new Refused(
              Errno.EBUSY,
              "device " + name + ": IOMMU group " + slot.handle.group() + " is owned by vm "
                  + other.holder() + " (through " + other.handle.name() + ")");
        }
      }
    }
    return null;
  }

  private static int startedVmId(VmActor.StartReply reply) {
    if (reply instanceof VmActor.Started s) {
      return s.vmId();
    }
    return ((VmActor.StartRefused) reply).vmId();
  }

  private long vmSeed(int vmId) {
    return new SplittableRandom(vmSeedBase + vmId).nextLong();
  }

  private Behavior<Command> onVmStartAnswered(VmStartAnswered msg) {
    VmSlot slot = vms.get(msg.vmId());
    if (slot == null || slot.phase != VmPhase.STARTING) {
      throw new IllegalStateException("vm " + msg.vmId() + ": start answer in state " + (slot == null ? "none" : slot.phase));
    }
    if (msg.reply() instanceof VmActor.Started started) {
      slot.phase = VmPhase.RUNNING;
      List<DeviceHandle> handles = new ArrayList<>();
      for (String name : slot.devices) {
        DeviceSlot d = devices.get(name);
        d.reservedVmId = 0;
        d.assignedVmId = msg.vmId();
        handles.add(d.handle);
      }
      Kamon.counter("iommulab.host.vms.created").withTag("tenant", slot.spec.tenant()).increment();
      getContext().getLog().info("VM [{}] created with devices {}", msg.vmId(), slot.devices);
      slot.createReplyTo.tell(new VmCreated(msg.vmId(), slot.ref, started.layout(), handles));
    } else if (msg.reply() instanceof VmActor.StartRefused refused) {
      dropVm(slot);
      slot.createReplyTo.tell(new Refused(refused.errno(), refused.message()));
    }
    slot.createReplyTo = null;
    continueShutdown();
    return this;
  }

  /** Forgets a VM and frees what it held. */
  private void dropVm(VmSlot slot) {
    vms.remove(slot.spec.vmId());
    for (String name : slot.devices) {
      DeviceSlot d = devices.get(name);
      if (d.assignedVmId == slot.spec.vmId()) {
        d.assignedVmId = 0;
      }
      if (d.reservedVmId == slot.spec.vmId()) {
        d.reservedVmId = 0;
      }
    }
  }

  private Behavior<Command> onDestroyVm(DestroyVm cmd) {
    if (deferred(cmd)) {
      return this;
    }
    if (shutDown()) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "host is shut down");
    }
    VmSlot slot = vms.get(cmd.vmId());
    if (slot == null) {
      return refuse(cmd.replyTo(), Errno.ENOENT, "vm " + cmd.vmId() + ": no such VM");
    }
    if (slot.phase != VmPhase.RUNNING) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "vm " + cmd.vmId() + ": " + slot.phase.name().toLowerCase());
    }
    slot.destroyReplyTo = cmd.replyTo();
    stopVm(slot);
    return this;
  }

  private void stopVm(VmSlot slot) {
    slot.phase = VmPhase.STOPPING;
    int vmId = slot.spec.vmId();
    io.iommulab.actors.Asks.<Command, VmActor.Command, VmActor.VmReply>ask(
            getContext(),
            slot.ref,
            askTimeout,
            VmActor.Shutdown::new,
            (reply, failure) -> new VmShutDownAnswered(vmId, reply, describe(failure)));
  }

  private Behavior<Command> onVmShutDownAnswered(VmShutDownAnswered msg) {
    VmSlot slot = vms.get(msg.vmId());
    if (slot == null) {
      return this; // the VM failed meanwhile: already dropped and recorded
    }
    long released = 0;
    List<String> vmLeaks = new ArrayList<>();
    if (msg.reply() instanceof VmActor.VmShutDown down) {
      released = down.memoryReleasedBytes();
      vmLeaks.addAll(down.leaks());
      if (shutdown != null) {
        shutdown.vmReports.add(down);
      }
    } else {
      vmLeaks.add("vm " + msg.vmId() + " did not shut down: " + (msg.failure() != null ? msg.failure() : msg.reply()));
      recordFailure(vmLeaks.get(vmLeaks.size() - 1));
    }
    leaks.addAll(vmLeaks);
    dropVm(slot);
    Kamon.counter("iommulab.host.vms.destroyed").withTag("tenant", slot.spec.tenant()).increment();
    getContext().getLog().info("VM [{}] destroyed, [{}] bytes returned", msg.vmId(), released);
    if (slot.destroyReplyTo != null) {
      slot.destroyReplyTo.tell(new VmDestroyed(msg.vmId(), released, vmLeaks));
    }
    continueShutdown();
    return this;
  }

  // ================================================================ hotplug

  /**
   * The slot of the device a hotplug command names, or null once the command was refused: EBUSY
   * when the host is shut down, ENOENT when there is no such device.
   */
  private DeviceSlot hotplugSlot(String name, ActorRef<HotplugReply> replyTo) {
    if (shutDown()) {
      refuse(replyTo, Errno.EBUSY, "host is shut down");
      return null;
    }
    DeviceSlot slot = devices.get(name);
    if (slot == null) {
      refuse(replyTo, Errno.ENOENT, "device " + name + ": no such device");
    }
    return slot;
  }

  private Behavior<Command> refuse(ActorRef<? super Refused> replyTo, Errno errno, String message) {
    replyTo.tell(new Refused(errno, message));
    return this;
  }

  private Behavior<Command> onUnplugDevice(UnplugDevice cmd) {
    if (deferred(cmd)) {
      return this;
    }
    DeviceSlot slot = hotplugSlot(cmd.name(), cmd.replyTo());
    if (slot == null) {
      return this;
    }
    if (slot.presence == Presence.ABSENT) {
      return refuse(cmd.replyTo(), Errno.ENODEV, "device " + cmd.name() + ": already unplugged");
    }
    if (slot.presence != Presence.PRESENT) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "device " + cmd.name() + ": being " + slot.presence.name().toLowerCase());
    }
    if (slot.reservedVmId != 0) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "device " + cmd.name() + ": vm " + slot.reservedVmId + " is starting with it");
    }
    VmSlot owner = slot.assignedVmId == 0 ? null : vms.get(slot.assignedVmId);
    if (owner != null && owner.phase != VmPhase.RUNNING) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "device " + cmd.name() + ": vm " + owner.spec.vmId() + " is " + owner.phase.name().toLowerCase());
    }
    slot.presence = Presence.UNPLUGGING;
    slot.hotplugReplyTo = cmd.replyTo();
    slot.unplugFormerVm = slot.assignedVmId;
    if (owner != null) {
      String name = cmd.name();
      io.iommulab.actors.Asks.<Command, VmActor.Command, VmActor.VmReply>ask(
              getContext(),
              owner.ref,
              askTimeout,
              replyTo -> new VmActor.ReleaseDevice(name, replyTo),
              (reply, failure) -> new VmReleasedDevice(name, reply, describe(failure)));
    } else {
      quiesce(slot);
    }
    return this;
  }

  private Behavior<Command> onVmReleasedDevice(VmReleasedDevice msg) {
    DeviceSlot slot = devices.get(msg.name());
    if (!(msg.reply() instanceof VmActor.DeviceReleased)) {
      // The device leaves all the same: surprise removal after the VM's refusal or silence.
      getContext()
          .getLog()
          .warn("VM [{}] did not release device [{}]: {}", slot.unplugFormerVm, msg.name(),
              msg.failure() != null ? msg.failure() : msg.reply());
      if (msg.failure() != null) {
        recordFailure("vm " + slot.unplugFormerVm + " did not answer the release of " + msg.name() + ": " + msg.failure());
      }
    }
    VmSlot owner = vms.get(slot.unplugFormerVm);
    if (owner != null) {
      owner.devices.remove(msg.name());
    }
    slot.assignedVmId = 0;
    quiesce(slot);
    return this;
  }

  private void quiesce(DeviceSlot slot) {
    String name = slot.handle.name();
    io.iommulab.actors.Asks.<Command, DeviceActor.Command, DeviceActor.Quiesced>ask(
            getContext(),
            slot.handle.device(),
            askTimeout,
            DeviceActor.Quiesce::new,
            (reply, failure) -> new DeviceQuiesced(name, reply, describe(failure)));
  }

  private Behavior<Command> onDeviceQuiesced(DeviceQuiesced msg) {
    DeviceSlot slot = devices.get(msg.name());
    if (msg.reply() == null) {
      recordFailure("device " + msg.name() + " did not quiesce: " + msg.failure());
    }
    int rid = slot.handle.rid();
    String name = msg.name();
    io.iommulab.actors.Asks.<Command, IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
            getContext(),
            slot.handle.unit(),
            askTimeout,
            replyTo -> new IommuUnitActor.UnregisterDevice(rid, replyTo),
            (reply, failure) -> new DeviceUnregistered(name, reply, describe(failure)));
    return this;
  }

  private Behavior<Command> onDeviceUnregistered(DeviceUnregistered msg) {
    DeviceSlot slot = devices.get(msg.name());
    ActorRef<HotplugReply> replyTo = slot.hotplugReplyTo;
    slot.hotplugReplyTo = null;
    if (msg.reply() == IommuUnitActor.Done.INSTANCE) {
      slot.presence = Presence.ABSENT;
      Kamon.counter("iommulab.host.hotplug").withTag("op", "unplug").increment();
      getContext().getLog().info("Device [{}] unplugged (was held by vm [{}])", msg.name(), slot.unplugFormerVm);
      replyTo.tell(new DeviceUnplugged(msg.name(), slot.unplugFormerVm));
    } else {
      // The unit still holds the function (attached or owned): it stays, resumed and unassigned.
      slot.presence = Presence.PRESENT;
      slot.handle.device().tell(new DeviceActor.Resume());
      String why;
      Errno errno;
      if (msg.reply() instanceof IommuUnitActor.Refused r) {
        errno = r.errno();
        why = r.message();
      } else {
        errno = Errno.EIO;
        why = String.valueOf(msg.failure() != null ? msg.failure() : msg.reply());
        recordFailure("unit did not unregister " + msg.name() + ": " + why);
      }
      replyTo.tell(new Refused(errno, "device " + msg.name() + ": unit kept it: " + why));
    }
    slot.unplugFormerVm = 0;
    return this;
  }

  private Behavior<Command> onPlugDevice(PlugDevice cmd) {
    if (deferred(cmd)) {
      return this;
    }
    DeviceSlot slot = hotplugSlot(cmd.name(), cmd.replyTo());
    if (slot == null) {
      return this;
    }
    if (slot.presence == Presence.PRESENT) {
      return refuse(cmd.replyTo(), Errno.EEXIST, "device " + cmd.name() + ": already present");
    }
    if (slot.presence != Presence.ABSENT) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "device " + cmd.name() + ": being " + slot.presence.name().toLowerCase());
    }
    slot.presence = Presence.PLUGGING;
    slot.hotplugReplyTo = cmd.replyTo();
    register(slot, DeviceReRegistered::new);
    return this;
  }

  private Behavior<Command> onDeviceReRegistered(DeviceReRegistered msg) {
    DeviceSlot slot = devices.get(msg.name());
    ActorRef<HotplugReply> replyTo = slot.hotplugReplyTo;
    slot.hotplugReplyTo = null;
    if (msg.reply() == IommuUnitActor.Done.INSTANCE) {
      slot.handle.device().tell(new DeviceActor.Resume());
      slot.presence = Presence.PRESENT;
      Kamon.counter("iommulab.host.hotplug").withTag("op", "plug").increment();
      getContext().getLog().info("Device [{}] plugged", msg.name());
      replyTo.tell(new DevicePlugged(msg.name()));
    } else {
      slot.presence = Presence.ABSENT;
      if (msg.reply() instanceof IommuUnitActor.Refused r) {
        replyTo.tell(new Refused(r.errno(), "device " + msg.name() + ": " + r.message()));
      } else {
        recordFailure("unit did not register " + msg.name() + ": " + (msg.failure() != null ? msg.failure() : msg.reply()));
        replyTo.tell(new Refused(Errno.EIO, "device " + msg.name() + ": unit did not answer"));
      }
    }
    return this;
  }

  private Behavior<Command> onAssignDevice(AssignDevice cmd) {
    if (deferred(cmd)) {
      return this;
    }
    DeviceSlot slot = hotplugSlot(cmd.name(), cmd.replyTo());
    if (slot == null) {
      return this;
    }
    if (slot.presence == Presence.ABSENT) {
      return refuse(cmd.replyTo(), Errno.ENODEV, "device " + cmd.name() + ": unplugged");
    }
    if (slot.presence != Presence.PRESENT) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "device " + cmd.name() + ": being " + slot.presence.name().toLowerCase());
    }
    if (slot.holder() != 0) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "device " + cmd.name() + ": assigned to vm " + slot.holder());
    }
    for (DeviceSlot other : groups.get(groupKey(slot.handle))) {
      if (other.holder() != 0 && other.holder() != cmd.vmId()) {
        cmd.replyTo().tell(new Refused(Errno.EBUSY, "device " + cmd.name() + ": IOMMU group " + slot.handle.group()
            + " is owned by vm " + other.holder() + " (through " + other.handle.name() + ")"));
        return this;
      }
    }
    VmSlot vm = vms.get(cmd.vmId());
    if (vm == null) {
      return refuse(cmd.replyTo(), Errno.ENOENT, "vm " + cmd.vmId() + ": no such VM");
    }
    if (vm.phase != VmPhase.RUNNING) {
      return refuse(cmd.replyTo(), Errno.EBUSY, "vm " + cmd.vmId() + ": " + vm.phase.name().toLowerCase());
    }
    slot.reservedVmId = cmd.vmId();
    DeviceHandle handle = slot.handle;
    String name = cmd.name();
    int vmId = cmd.vmId();
    ActorRef<HotplugReply> replyTo = cmd.replyTo();
    getContext()
        .ask(
            VmActor.VmReply.class,
            vm.ref,
            askTimeout,
            r -> new VmActor.AdoptDevice(handle, r),
            (reply, failure) -> new VmAdoptedDevice(name, vmId, replyTo, reply, describe(failure)));
    return this;
  }

  private Behavior<Command> onVmAdoptedDevice(VmAdoptedDevice msg) {
    DeviceSlot slot = devices.get(msg.name());
    if (slot.reservedVmId == msg.vmId()) {
      slot.reservedVmId = 0;
    }
    VmSlot vm = vms.get(msg.vmId());
    if (msg.reply() instanceof VmActor.DeviceAdopted && vm != null && vm.phase == VmPhase.RUNNING) {
      slot.assignedVmId = msg.vmId();
      if (!vm.devices.contains(msg.name())) {
        vm.devices.add(msg.name());
      }
      getContext().getLog().info("Device [{}] plugged into vm [{}]", msg.name(), msg.vmId());
      msg.replyTo().tell(new DeviceAssigned(msg.name(), msg.vmId()));
    } else if (msg.reply() instanceof VmActor.Refused r) {
      msg.replyTo().tell(new Refused(r.errno(), r.message()));
    } else {
      if (msg.failure() != null) {
        recordFailure("vm " + msg.vmId() + " did not answer the adoption of " + msg.name() + ": " + msg.failure());
      }
      msg.replyTo().tell(new Refused(Errno.EBUSY, "vm " + msg.vmId() + " is gone or stopping"));
    }
    return this;
  }

  // ================================================================ topology

  private Behavior<Command> onGetTopology(GetTopology cmd) {
    if (deferred(cmd)) {
      return this;
    }
    cmd.replyTo().tell(topology());
    return this;
  }

  private Topology topology() {
    Map<String, DeviceEntry> entries = new LinkedHashMap<>();
    for (DeviceSlot d : devices.values()) {
      entries.put(d.handle.name(), new DeviceEntry(d.handle, d.presence, d.assignedVmId));
    }
    Map<Integer, ActorRef<VmActor.Command>> vmRefs = new TreeMap<>();
    vms.forEach((id, slot) -> vmRefs.put(id, slot.ref));
    return new Topology(memory, units, entries, banks, vmRefs, failures);
  }

  // ================================================================ shutdown

  private Behavior<Command> onShutdown(Shutdown cmd) {
    if (deferred(cmd)) {
      return this;
    }
    if (finalReport != null) {
      cmd.replyTo().tell(finalReport);
      return this;
    }
    if (shutdown != null) {
      shutdown.replyTo.add(cmd.replyTo());
      return this;
    }
    getContext().getLog().info("Host shutting down: [{}] VMs", vms.size());
    shutdown = new ShutdownProgress();
    shutdown.replyTo.add(cmd.replyTo());
    for (VmSlot slot : vms.values()) {
      if (slot.phase == VmPhase.RUNNING) {
        stopVm(slot);
      }
    }
    continueShutdown();
    return this;
  }

  /** Moves Shutdown on when nothing it waits for is left: VMs first, then the reports. */
  private void continueShutdown() {
    if (shutdown == null || shutdown.vmsStopped) {
      return;
    }
    for (VmSlot slot : vms.values()) {
      if (slot.phase == VmPhase.RUNNING) {
        stopVm(slot); // started while the shutdown waited for it
      }
    }
    if (!vms.isEmpty()) {
      return;
    }
    shutdown.vmsStopped = true;
    shutdown.reportsPending = 1 + 2 * units.size() + banks.size();
    io.iommulab.actors.Asks.<Command, HostMemoryActor.Command, HostMemoryActor.MemoryReport>ask(
            getContext(),
            memory,
            askTimeout,
            HostMemoryActor.GetReport::new,
            (reply, failure) -> new MemoryReported(reply, describe(failure)));
    for (UnitEntry unit : units) {
      int unitId = unit.unitId();
      io.iommulab.actors.Asks.<Command, IommuUnitActor.Command, IommuUnitActor.UnitStats>ask(
              getContext(),
              unit.unit(),
              askTimeout,
              IommuUnitActor.GetStats::new,
              (reply, failure) -> new UnitReported(unitId, reply, describe(failure)));
      io.iommulab.actors.Asks.<Command, IommuUnitActor.Command, IommuUnitActor.UnitSnapshotted>ask(
              getContext(),
              unit.unit(),
              askTimeout,
              IommuUnitActor.GetSnapshot::new,
              (reply, failure) -> new UnitSnapshotReported(unitId, reply, describe(failure)));
    }
    for (int i = 0; i < banks.size(); i++) {
      int bank = i;
      io.iommulab.actors.Asks.<Command, MsiBankActor.Command, MsiBankActor.BankReply>ask(
              getContext(),
              banks.get(i),
              askTimeout,
              MsiBankActor.GetBankState::new,
              (reply, failure) -> new BankReported(bank, reply, describe(failure)));
    }
  }

  private Behavior<Command> onMemoryReported(MemoryReported msg) {
    if (msg.report() == null) {
      recordFailure("host memory did not report: " + msg.failure());
    }
    shutdown.memoryReport = msg.report();
    return reportArrived();
  }

  private Behavior<Command> onUnitReported(UnitReported msg) {
    if (msg.stats() == null) {
      recordFailure("unit " + units.get(msg.unitId()).name() + " did not report: " + msg.failure());
    } else {
      shutdown.unitStats.add(msg.stats());
    }
    return reportArrived();
  }

  private Behavior<Command> onUnitSnapshotReported(UnitSnapshotReported msg) {
    String unit = units.get(msg.unitId()).name();
    if (msg.snapshot() == null) {
      recordFailure("unit " + unit + " did not give its snapshot: " + msg.failure());
    } else if (!msg.snapshot().attachHandles().isEmpty()) {
      shutdown.snapshotLeaks.add("unit " + unit + ": attach handles left " + msg.snapshot().attachHandles());
    }
    return reportArrived();
  }

  private Behavior<Command> onBankReported(BankReported msg) {
    if (msg.reply() instanceof MsiBankActor.BankState state) {
      shutdown.bankStates.add(state);
    } else {
      recordFailure("MSI bank " + msg.bankIndex() + " did not report: " + (msg.failure() != null ? msg.failure() : msg.reply()));
    }
    return reportArrived();
  }

  private Behavior<Command> reportArrived() {
    if (--shutdown.reportsPending > 0) {
      return this;
    }
    List<String> allLeaks = new ArrayList<>(leaks);
    HostMemoryActor.MemoryReport mem = shutdown.memoryReport;
    if (mem != null) {
      if (mem.pinnedFrames() != 0) {
        allLeaks.add("host memory: " + mem.pinnedFrames() + " frames still pinned");
      }
      mem.allocatedBytesByOwner()
          .forEach(
              (owner, bytes) -> {
                if (owner > HostMemory.HOST && bytes > 0) {
                  allLeaks.add("host memory: " + bytes + " bytes still owned by vm " + owner);
                }
              });
      for (String bug : mem.bugs()) {
        failures.add("host memory: " + bug);
      }
    }
    shutdown.unitStats.sort((a, b) -> Integer.compare(a.unitId(), b.unitId()));
    for (IommuUnitActor.UnitStats s : shutdown.unitStats) {
      if (s.domains() != 0) {
        allLeaks.add("unit " + s.unitName() + ": " + s.domains() + " domains left");
      }
      if (s.pendingInvalidations() != 0) {
        allLeaks.add("unit " + s.unitName() + ": " + s.pendingInvalidations() + " invalidations never acknowledged");
      }
    }
    allLeaks.addAll(shutdown.snapshotLeaks);
    shutdown.bankStates.sort((a, b) -> Integer.compare(a.bankIndex(), b.bankIndex()));
    shutdown.vmReports.sort((a, b) -> Integer.compare(a.vmId(), b.vmId()));
    finalReport =
        new HostReport(shutdown.vmReports, mem, shutdown.unitStats, shutdown.bankStates, allLeaks, failures);
    getContext()
        .getLog()
        .info(
            "Host shut down: clean [{}], leaks {}, failures {}",
            finalReport.clean(), finalReport.leaks(), finalReport.failures());
    for (ActorRef<HostReport> r : shutdown.replyTo) {
      r.tell(finalReport);
    }
    return this;
  }

  // ================================================================ supervision

  private void recordFailure(String what) {
    failures.add(what);
    getContext().getLog().error("Host failure: {}", what);
  }

  private Behavior<Command> onChildFailed(ChildFailed failed) {
    String role = roles.getOrDefault(failed.getRef(), failed.getRef().path().name());
    Kamon.counter("iommulab.host.actor.failures").withTag("role", role.substring(0, role.indexOf(' '))).increment();
    recordFailure(role + " stopped on a bug: " + failed.getCause());
    forgetChild(failed.getRef(), true);
    return this;
  }

  private Behavior<Command> onTerminated(Terminated terminated) {
    ActorRef<Void> ref = terminated.getRef();
    String role = roles.get(ref);
    VmSlot vm = vmOf(ref);
    if (vm != null ? vm.phase == VmPhase.RUNNING : role != null && !role.startsWith("vm ")) {
      recordFailure(role + " stopped unexpectedly");
    }
    forgetChild(ref, false);
    return this;
  }

  private VmSlot vmOf(ActorRef<?> ref) {
    for (VmSlot slot : vms.values()) {
      if (slot.ref.equals(ref)) {
        return slot;
      }
    }
    return null;
  }

  /**
   * A child is gone. A VM that stopped after answering its shutdown is kept until that answer
   * arrives (an ask's answer is piped to the guardian and may come after the Terminated signal).
   * A VM that failed is dropped: its devices return to the pool, its memory stays allocated (the
   * report shows it), and whoever waits is answered.
   */
  private void forgetChild(ActorRef<?> ref, boolean failed) {
    roles.remove(ref);
    VmSlot vm = vmOf(ref);
    if (vm == null || (vm.phase == VmPhase.STOPPING && !failed)) {
      return;
    }
    dropVm(vm);
    if (vm.createReplyTo != null) {
      vm.createReplyTo.tell(new Refused(Errno.EIO, "vm " + vm.spec.vmId() + " failed while starting"));
    }
    if (vm.destroyReplyTo != null) {
      vm.destroyReplyTo.tell(
          new VmDestroyed(vm.spec.vmId(), 0, List.of("vm " + vm.spec.vmId() + " failed while stopping")));
    }
    continueShutdown();
  }
}
