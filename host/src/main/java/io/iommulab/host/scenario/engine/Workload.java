package io.iommulab.host.scenario.engine;

import io.iommulab.actors.Asks;
import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.StaleDmaOracle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.scenario.DomainLayout;
import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.TenantSettings;
import io.iommulab.config.scenario.WorkloadSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.host.HostGuardian;
import io.iommulab.host.scenario.IntervalRecorder;
import io.iommulab.host.scenario.TenantSample;
import io.iommulab.host.scenario.Violation;
import io.iommulab.host.scenario.engine.VmLoad.Dev;
import io.iommulab.host.scenario.engine.VmLoad.DevState;
import io.iommulab.host.scenario.engine.VmLoad.Held;
import io.iommulab.host.scenario.engine.VmLoad.Space;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The guest-side driver of a group of VMs of one tenant: it creates them, sets them up as the
 * tenant says, and drives their workload — the owner of one {@link IntervalRecorder}.
 *
 * <p><b>Setup</b> (at most {@value #SETUP_CONCURRENCY} VMs at once): {@code CreateVm} with the
 * tenant's memory, backing and devices; one fd; one IOAS ({@code per-vm-ioas}; {@code
 * shared-hwpt}, whose devices sit behind one unit and so share the IOAS's automatic HWPT) or one
 * per device ({@code per-device-ioas}); each device bound and attached — through a nested HWPT
 * ({@code nested}: the guest's stage 1 over the IOAS as stage 2, its working set written to stage
 * 1), with its PASIDs attached ({@code pasids-per-device}), or, behind a PAMU, into the fd's
 * VFIO-PAMU container with {@code pamu-windows} windows, an MPIC MSI bank mapped in the last
 * window and the device's MSI vectors allocated from that bank; then the working set mapped in
 * each IOAS (one window on a PAMU).
 *
 * <p><b>Workload</b>: each operation kind of each VM arrives as a Poisson process at the tenant's
 * per-VM rate (an open model, {@link Schedule}): at most a few operations of a kind are in flight
 * per VM, arrivals beyond wait in a bounded backlog (late) or are dropped, both counted; an
 * arrival with nothing to act on (no device ready, no free window or IOVA) is skipped, counted
 * apart, since that is the workload's state and not overload. Maps take
 * a buffer of one of the sizes at a fresh IOVA, hold it, then unmap it once the DMA aimed at it
 * has completed (as a guest driver does); DMA bursts go from a
 * random attached device (and PASID) to the working set and the held buffers, {@code
 * stray-fraction} of the accesses to IOVAs that are not mapped — half never mapped, half just
 * unmapped (their unmap returned; the IOVA allocator keeps them in quarantine), so the
 * stale-translation oracle judges real accesses; page requests map a lazy buffer on a PRI device
 * and touch each of its pages once; invalidations rewrite a range of a nested device's stage 1
 * and invalidate it; hotplug unplugs a target device (at the fixed times and at random) and plugs
 * it back into the VM after {@code replug-after}, which counts an attach again; WBINVDs ask KVM.
 *
 * <p><b>Measurements</b> per operation: count, errors (and errnos, in the report), modeled latency
 * (what the actors' replies say the cost model charged: the DMA burst with its translations, ATS
 * requests and page requests, the map's page-table writes, the unmap's and guest invalidation's
 * descriptors, device-TLB invalidations and sync; {@link #UNCHARGED} for the operations the cost
 * model does not charge: attach, unplug, hotplug, WBINVD, VFIO-PAMU window maps) and wall latency
 * (the run's clock from the operation's start to its reply: from its issue, or from its scheduled
 * time when it had to wait for the VM's in-flight cap). Each interval the recorder is
 * drained to the conductor. Fault counters come from the VMs' fd fault statistics, read at
 * interval ends after any fault activity.
 *
 * <p><b>End</b>: on {@link Finish} arrivals stop, operations in flight complete, every VM's fd is
 * closed (what a close left behind is the fd-close oracle's) and the last sample and the report
 * go to the conductor. The VMs themselves are left for the host's shutdown.
 *
 * <p>The actor reads only the run's clock (the actors' {@link ModeledClock}); randomness comes
 * from per-VM streams split from the scenario's seed. Answers to its asks come back as messages
 * carrying a slot number; the continuation waits in the actor's own table, never in a message.
 */
final class Workload extends AbstractBehavior<Workload.Command> {

  static final int SETUP_CONCURRENCY = 8;
  static final int DMA_CAP = 32;
  static final int MAP_CAP = 8;
  static final int UNMAP_CAP = 8;
  static final int PAGE_REQUEST_CAP = 4;
  static final int INVALIDATION_CAP = 4;
  static final int WBINVD_CAP = 4;
  static final long PAGE = 4096;
  /** Stray DMA that was never mapped: below the IOVAs the driver hands out (from 4 GiB). */
  static final long STRAY_LOW = 64 * 1024;
  static final long STRAY_HIGH = 1L << 20;
  /** Guest IOVAs of a nested device's working set, in its stage 1. */
  static final long GUEST_IOVA_BASE = 1L << 30;
  /** How long a PAMU device whose windows were refused waits before trying again. */
  static final Duration PAMU_RETRY = Duration.ofMillis(500);
  static final Duration FIXED_UNPLUG_RETRY = Duration.ofMillis(100);
  static final int MAX_PROBLEMS = 20;
  private static final int FAULT_REASONS = FaultReason.values().length;
  /**
   * The modeled latency of an operation the cost model does not charge, or whose reply does not
   * carry the charge: attach, unplug, hotplug, WBINVD, and the VFIO-PAMU container's MAP_DMA and
   * UNMAP_DMA. Its wall latency is what it took.
   */
  static final long UNCHARGED = 0;

  // ================================================================ protocol

  interface Command extends CborSerializable {}

  /** Interval {@code index} ended: drain the recorder into a {@link Messages.Sampled}. */
  record Drain(int index) implements Command {}

  /** The run is over: stop issuing, let what is in flight complete, close the fds, report. */
  record Finish() implements Command {}

  private enum Tick implements Command {
    INSTANCE
  }

  /** A delayed continuation (replug, retry) is due. */
  private record Later(int slot) implements Command {}

  private record VmAnswered(int slot, VmActor.VmReply reply, String failure) implements Command {}

  private record CreateAnswered(int slot, HostGuardian.CreateVmReply reply, String failure) implements Command {}

  private record HotplugAnswered(int slot, HostGuardian.HotplugReply reply, String failure) implements Command {}

  private record FdAnswered(int slot, IoasidFdActor.Reply reply, String failure) implements Command {}

  private record BankAnswered(int slot, MsiBankActor.BankReply reply, String failure) implements Command {}

  /** The continuation of an ask: the reply, or the failure (an ask that timed out). */
  @FunctionalInterface
  private interface K {
    void on(Object reply, String failure);
  }

  /** What every workload actor of a run shares (immutable). */
  record Env(
      ModeledClock clock,
      long startNanos,
      long seed,
      Duration askTimeout,
      ActorRef<HostGuardian.Command> guardian,
      ActorRef<Conductor.Command> conductor,
      List<ActorRef<MsiBankActor.Command>> msiBanks) {}

  /** One VM to drive: its id, devices (names) and seed. */
  record Vm(int vmId, List<String> devices, long seed) {}

  static Behavior<Command> create(Env env, TenantSettings tenant, List<Vm> vms) {
    return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new Workload(ctx, timers, env, tenant, vms)));
  }

  // ================================================================ state

  private final TimerScheduler<Command> timers;
  private final Env env;
  private final ModeledClock clock;
  private final TenantSettings tenant;
  private final WorkloadSettings w;
  private final IntervalRecorder recorder;
  private final List<VmLoad> vms = new ArrayList<>();
  private final ArrayDeque<VmLoad> toStart = new ArrayDeque<>();
  private final List<K> pending = new ArrayList<>();
  private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
  private final Map<Integer, Boolean> laterSlots = new HashMap<>();
  private final Map<String, Long> errnos = new HashMap<>();
  private final List<String> problems = new ArrayList<>();
  private final List<Messages.FdCloseResult> closes = new ArrayList<>();
  private final long setupStart;
  private int inFlight;
  private int setupActive;
  private int setupDoneCount;
  private boolean setupReported;
  private boolean finishing;
  private boolean tearingDown;
  private boolean finished;
  private long lastTick;
  private long tickAt = Long.MAX_VALUE;
  private long strayCompleted;
  private long aborted;
  private long wbinvds;
  private long wbinvdsEmulated;
  private long firstEmulatedAt = -1;
  private long lastEmulatedAt = -1;
  private final int[] sizesIndex;

  private Workload(
      ActorContext<Command> context, TimerScheduler<Command> timers, Env env, TenantSettings tenant, List<Vm> plan) {
    super(context);
    this.timers = timers;
    this.env = env;
    this.clock = env.clock();
    this.tenant = tenant;
    this.w = tenant.workload();
    this.recorder = new IntervalRecorder(tenant.name());
    this.sizesIndex = new int[w.map().sizes().size()];
    for (Vm v : plan) {
      VmLoad vm = new VmLoad(v.vmId(), tenant.memoryBytes(), v.devices(), v.seed());
      for (Duration at : w.hotplug().at()) {
        vm.hotplugAt.add(env.startNanos() + at.toNanos());
      }
      vms.add(vm);
      toStart.add(vm);
    }
    this.setupStart = clock.nanos();
    this.lastTick = setupStart;
    startMoreVms();
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(Tick.class, t -> onTick())
        .onMessage(Drain.class, this::onDrain)
        .onMessage(Finish.class, f -> onFinish())
        .onMessage(Later.class, l -> answered(l.slot(), null, null))
        .onMessage(VmAnswered.class, a -> answered(a.slot(), a.reply(), a.failure()))
        .onMessage(CreateAnswered.class, a -> answered(a.slot(), a.reply(), a.failure()))
        .onMessage(HotplugAnswered.class, a -> answered(a.slot(), a.reply(), a.failure()))
        .onMessage(FdAnswered.class, a -> answered(a.slot(), a.reply(), a.failure()))
        .onMessage(BankAnswered.class, a -> answered(a.slot(), a.reply(), a.failure()))
        .build();
  }

  // ================================================================ asks and continuations

  private int park(K k) {
    inFlight++;
    Integer slot = freeSlots.poll();
    if (slot == null) {
      pending.add(k);
      return pending.size() - 1;
    }
    pending.set(slot, k);
    return slot;
  }

  private Behavior<Command> answered(int slot, Object reply, String failure) {
    K k = pending.get(slot);
    if (k == null) {
      return this; // a delayed continuation cancelled at the end of the run
    }
    pending.set(slot, null);
    freeSlots.add(slot);
    laterSlots.remove(slot);
    inFlight--;
    k.on(reply, failure);
    maybeTeardown();
    return this;
  }

  private static String describe(Throwable failure) {
    return failure == null ? null : failure.getClass().getSimpleName() + ": " + failure.getMessage();
  }

  private void askVm(VmLoad vm, Function<ActorRef<VmActor.VmReply>, VmActor.Command> make, K k) {
    int slot = park(k);
    Asks.ask(getContext(), vm.ref, env.askTimeout(), make::apply,
        (reply, failure) -> new VmAnswered(slot, reply, describe(failure)));
  }

  private void askHotplug(Function<ActorRef<HostGuardian.HotplugReply>, HostGuardian.Command> make, K k) {
    int slot = park(k);
    Asks.ask(getContext(), env.guardian(), env.askTimeout(), make::apply,
        (reply, failure) -> new HotplugAnswered(slot, reply, describe(failure)));
  }

  private void askFd(VmLoad vm, Function<ActorRef<IoasidFdActor.Reply>, IoasidFdActor.Command> make, K k) {
    int slot = park(k);
    Asks.ask(getContext(), vm.fdRef, env.askTimeout(), make::apply,
        (reply, failure) -> new FdAnswered(slot, reply, describe(failure)));
  }

  private void askBank(int bank, Function<ActorRef<MsiBankActor.BankReply>, MsiBankActor.Command> make, K k) {
    int slot = park(k);
    Asks.ask(getContext(), env.msiBanks().get(bank), env.askTimeout(), make::apply,
        (reply, failure) -> new BankAnswered(slot, reply, describe(failure)));
  }

  /** Runs {@code k} after {@code delay} (cancelled, and never run, when the run ends first). */
  private void later(Duration delay, K k) {
    int slot = park(k);
    laterSlots.put(slot, Boolean.TRUE);
    timers.startSingleTimer(slot, new Later(slot), delay);
  }

  // ================================================================ counting

  private void count(Operation op, long n) {
    recorder.count(op.configName() + ".count", n);
  }

  private void error(Operation op, String errno) {
    recorder.count(op.configName() + ".errors", 1);
    errnos.merge(op.configName() + " " + errno, 1L, Long::sum);
  }

  /** One completed operation: counted, with its modeled and wall latencies. */
  private void completed(Operation op, long modeledNanos, long startNanos) {
    String n = op.configName();
    recorder.count(n + ".count", 1);
    recorder.record(n + ".latency.modeled", Math.max(0, modeledNanos));
    recorder.record(n + ".latency.wall", Math.max(0, clock.nanos() - startNanos));
  }

  /** The errno of a refusal or failure, for the tally. */
  private static String errnoOf(Object reply, String failure) {
    if (failure != null) {
      return "EIO (no answer)";
    }
    if (reply instanceof VmActor.Refused r) {
      return r.errno().name();
    }
    if (reply instanceof IoasidFdActor.Refused r) {
      return r.errno().name();
    }
    if (reply instanceof HostGuardian.Refused r) {
      return r.errno().name();
    }
    if (reply instanceof MsiBankActor.BankRefused r) {
      return r.errno().name();
    }
    return "unexpected " + (reply == null ? "null" : reply.getClass().getSimpleName());
  }

  private static String messageOf(Object reply, String failure) {
    if (failure != null) {
      return failure;
    }
    if (reply instanceof VmActor.Refused r) {
      return r.errno() + ": " + r.message();
    }
    if (reply instanceof IoasidFdActor.Refused r) {
      return r.errno() + ": " + r.message();
    }
    if (reply instanceof HostGuardian.Refused r) {
      return r.errno() + ": " + r.message();
    }
    return String.valueOf(reply);
  }

  private void problem(String what) {
    if (problems.size() < MAX_PROBLEMS) {
      problems.add(what);
    }
    getContext().getLog().debug("workload {}: {}", tenant.name(), what);
  }

  // ================================================================ setup

  private void startMoreVms() {
    while (!finishing && setupActive < SETUP_CONCURRENCY && !toStart.isEmpty()) {
      setupActive++;
      createVm(toStart.poll());
    }
    if (!setupReported && setupDoneCount == vms.size()) {
      setupReported = true;
      int ready = 0;
      for (VmLoad vm : vms) {
        if (vm.readyAt >= 0) {
          ready++;
        }
      }
      env.conductor().tell(new Messages.SetupDone(tenant.name(), vms.size(), ready, clock.nanos() - setupStart));
    }
  }

  private void setupOver(VmLoad vm, String failure) {
    if (failure != null) {
      vm.failed = true;
      problem("vm " + vm.vmId + ": setup failed: " + failure);
    } else {
      vm.readyAt = clock.nanos();
      startSchedules(vm);
    }
    setupActive--;
    setupDoneCount++;
    startMoreVms();
  }

  private void createVm(VmLoad vm) {
    PageSize backing = PageSize.ofBytes(tenant.backingBytes());
    int slot = park((reply, failure) -> {
      if (!(reply instanceof HostGuardian.VmCreated c)) {
        setupOver(vm, "CreateVm: " + messageOf(reply, failure));
        return;
      }
      vm.ref = c.vm();
      vm.layout = c.layout();
      vm.started = true;
      for (DeviceHandle h : c.devices()) {
        Dev d = vm.dev(h.name());
        if (d != null) {
          d.handle = h;
        }
      }
      if (finishing) {
        setupOver(vm, "the run ended during setup");
        return;
      }
      openFd(vm);
    });
    Asks.<Command, HostGuardian.Command, HostGuardian.CreateVmReply>ask(getContext(), env.guardian(), env.askTimeout(),
        r -> new HostGuardian.CreateVm(vm.vmId, tenant.memoryBytes(), backing, vm.deviceNames, tenant.name(), r),
        (reply, failure) -> new CreateAnswered(slot, reply, describe(failure)));
  }

  private void openFd(VmLoad vm) {
    askVm(vm, VmActor.OpenFd::new, (reply, failure) -> {
      if (!(reply instanceof VmActor.FdOpened o)) {
        setupOver(vm, "open fd: " + messageOf(reply, failure));
        return;
      }
      vm.fd = o.fd();
      vm.fdRef = o.ref();
      boolean pamu = vm.devs.stream().anyMatch(Dev::pamu);
      int spaces = tenant.domains() == DomainLayout.PER_DEVICE_IOAS ? vm.devs.size() : 1;
      if (pamu) {
        // A VFIO-PAMU container has no IOAS: one space stands for the container's windows.
        Space s = new Space();
        vm.spaces.add(s);
        for (Dev d : vm.devs) {
          d.space = s;
        }
        setUpDevices(vm, 0);
        return;
      }
      allocIoas(vm, spaces);
    });
  }

  private void allocIoas(VmLoad vm, int spaces) {
    if (vm.spaces.size() == spaces) {
      for (int i = 0; i < vm.devs.size(); i++) {
        vm.devs.get(i).space = vm.spaces.get(spaces == 1 ? 0 : i);
      }
      mapWorkingSets(vm, 0);
      return;
    }
    askVm(vm, r -> new VmActor.AllocIoas(vm.fd, r), (reply, failure) -> {
      if (!(reply instanceof VmActor.IoasAllocated a)) {
        setupOver(vm, "IOAS_ALLOC: " + messageOf(reply, failure));
        return;
      }
      Space s = new Space();
      s.ioasId = a.ioasId();
      vm.spaces.add(s);
      allocIoas(vm, spaces);
    });
  }

  /**
   * The working set of each IOAS: mapped before the devices attach (their domains are filled at
   * attach). Nested: at IOVA = GPA, the identity stage 2 a VMM gives its guest's RAM.
   */
  private void mapWorkingSets(VmLoad vm, int i) {
    long ws = Math.min(w.dma().workingSet(), vm.memoryBytes);
    if (i == vm.spaces.size() || ws == 0 || finishing) {
      setUpDevices(vm, 0);
      return;
    }
    Space s = vm.spaces.get(i);
    long iova = tenant.nested() ? 0 : s.iovas.allocate(ws);
    askVm(vm, r -> new VmActor.MapBuffer(vm.fd, s.ioasId, 0, ws, iova, Access.READ_WRITE, false, r),
        (reply, failure) -> {
          if (!(reply instanceof VmActor.BufferMapped m)) {
            setupOver(vm, "map of the working set: " + messageOf(reply, failure));
            return;
          }
          s.workingSet = new Held(s, m.iova(), ws, 0);
          s.workingSet.unmapDue = Long.MAX_VALUE;
          if (tenant.nested()) {
            s.guestIovaBase = GUEST_IOVA_BASE;
          }
          mapWorkingSets(vm, i + 1);
        });
  }

  private void setUpDevices(VmLoad vm, int i) {
    if (finishing) {
      setupOver(vm, "the run ended during setup");
      return;
    }
    if (i == vm.devs.size()) {
      setupOver(vm, null);
      return;
    }
    Dev d = vm.devs.get(i);
    attach(vm, d, clock.nanos(), () -> setUpDevices(vm, i + 1));
  }

  // ================================================================ attach (at setup and after each replug)

  /**
   * Binds and attaches {@code d} as the tenant says; counts one attach (its errno when refused);
   * then runs {@code then} whatever happened (a device whose attach failed stays out of the
   * workload; a PAMU one retries).
   */
  private void attach(VmLoad vm, Dev d, long start, Runnable then) {
    d.state = DevState.SETTING_UP;
    askVm(vm, r -> new VmActor.BindDevice(vm.fd, d.name, r), (reply, failure) -> {
      if (!(reply instanceof VmActor.DeviceBound b)) {
        attachFailed(vm, d, reply, failure, "bind", then);
        return;
      }
      d.devId = b.devId();
      if (d.pamu()) {
        pamuContainer(vm, d, start, then);
      } else if (tenant.nested()) {
        askVm(vm, r -> new VmActor.AttachDeviceNested(vm.fd, d.name, d.space.ioasId, r), (reply2, failure2) -> {
          if (!(reply2 instanceof VmActor.DeviceAttachedNested n)) {
            attachFailed(vm, d, reply2, failure2, "attach (nested)", then);
            return;
          }
          d.nestedDomainId = n.nestedDomainId();
          writeStage1(vm, d, start, then);
        });
      } else {
        askVm(vm, r -> new VmActor.AttachDevice(vm.fd, d.name, d.space.ioasId, r), (reply2, failure2) -> {
          if (!(reply2 instanceof VmActor.DeviceAttached)) {
            attachFailed(vm, d, reply2, failure2, "attach", then);
            return;
          }
          attachPasids(vm, d, 0, start, then);
        });
      }
    });
  }

  private void attachFailed(VmLoad vm, Dev d, Object reply, String failure, String step, Runnable then) {
    error(Operation.ATTACH, errnoOf(reply, failure));
    count(Operation.ATTACH, 1);
    d.state = DevState.DETACHED;
    problem("vm " + vm.vmId + " device " + d.name + ": " + step + ": " + messageOf(reply, failure));
    then.run();
  }

  private void attached(Dev d, long start) {
    d.state = DevState.READY;
    completed(Operation.ATTACH, UNCHARGED, start);
  }

  /** The guest's stage 1 maps the working set at guest IOVAs (once per nested domain). */
  private void writeStage1(VmLoad vm, Dev d, long start, Runnable then) {
    Space s = d.space;
    for (Dev other : vm.devs) {
      if (other != d && other.nestedDomainId == d.nestedDomainId && other.state == DevState.READY
          && other.handle.unitId() == d.handle.unitId()) {
        attached(d, start);
        then.run();
        return;
      }
    }
    if (s.workingSet == null) {
      attached(d, start);
      then.run();
      return;
    }
    long len = s.workingSet.length;
    // Idempotent: clear what a former attach may have written, then write the range.
    askVm(vm, r -> new VmActor.ClearStage1(d.name, d.nestedDomainId, s.guestIovaBase, len, r), (c, cf) ->
        askVm(vm, r -> new VmActor.WriteStage1(d.name, d.nestedDomainId, s.guestIovaBase, s.workingSet.gpa, len,
            Access.READ_WRITE, r), (reply, failure) -> {
              if (!(reply instanceof VmActor.Stage1Written)) {
                attachFailed(vm, d, reply, failure, "stage-1 write", then);
                return;
              }
              attached(d, start);
              then.run();
            }));
  }

  private void attachPasids(VmLoad vm, Dev d, int i, long start, Runnable then) {
    int want = tenant.pasidsPerDevice();
    if (i == want || d.handle.pasidBits() == 0) {
      attached(d, start);
      then.run();
      return;
    }
    if (d.pasids.size() <= i) {
      askVm(vm, VmActor.AllocPasid::new, (reply, failure) -> {
        if (!(reply instanceof VmActor.PasidAllocated p)) {
          attachFailed(vm, d, reply, failure, "PASID alloc", then);
          return;
        }
        d.pasids.add(p.pasid());
        attachPasids(vm, d, i, start, then);
      });
      return;
    }
    int pasid = d.pasids.get(i);
    askVm(vm, r -> new VmActor.AttachDevicePasid(vm.fd, d.name, pasid, d.space.ioasId, r), (reply, failure) -> {
      if (!(reply instanceof VmActor.DevicePasidAttached)) {
        attachFailed(vm, d, reply, failure, "attach of PASID " + pasid, then);
        return;
      }
      attachPasids(vm, d, i + 1, start, then);
    });
  }

  // ---------------------------------------------------------------- PAMU: the VFIO-PAMU container

  /** Whether another PAMU device of the VM's fd is in the container already. */
  private static boolean containerSet(VmLoad vm, Dev except) {
    for (Dev o : vm.devs) {
      if (o != except && o.pamu() && o.windowSize > 0
          && (o.state == DevState.READY || o.state == DevState.SETTING_UP || o.state == DevState.DETACHED)) {
        return true;
      }
    }
    return false;
  }

  private void pamuContainer(VmLoad vm, Dev d, long start, Runnable then) {
    if (containerSet(vm, d)) {
      askFd(vm, r -> new IoasidFdActor.VfioGroupSetContainer(d.devId, r), (reply, failure) -> {
        if (reply != IoasidFdActor.Done.INSTANCE) {
          attachFailed(vm, d, reply, failure, "VFIO_GROUP_SET_CONTAINER", then);
          return;
        }
        for (Dev o : vm.devs) {
          if (o != d && o.windowSize > 0) {
            d.windowSize = o.windowSize;
            d.windowCount = o.windowCount;
          }
        }
        attached(d, start);
        then.run();
      });
      return;
    }
    askFd(vm, r -> new IoasidFdActor.VfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU, r), (reply, failure) -> {
      if (reply != IoasidFdActor.Done.INSTANCE) {
        attachFailed(vm, d, reply, failure, "VFIO_SET_IOMMU(FSL_PAMU)", then);
        return;
      }
      askFd(vm, r -> new IoasidFdActor.PamuGetAttr(ModeUapi.VFIO_ATTR_GEOMETRY, r), (g, gf) -> {
        if (!(g instanceof IoasidFdActor.PamuAttr attr)) {
          attachFailed(vm, d, g, gf, "PAMU GET_ATTR(GEOMETRY)", then);
          return;
        }
        askFd(vm, r -> new IoasidFdActor.PamuSetAttr(ModeUapi.VFIO_ATTR_GEOMETRY, attr.apertureStart(),
            attr.apertureEnd(), 0, r), (sg, sgf) -> {
              if (sg != IoasidFdActor.Done.INSTANCE) {
                attachFailed(vm, d, sg, sgf, "PAMU SET_ATTR(GEOMETRY)", then);
                return;
              }
              pamuWindows(vm, d, attr.apertureStart(), attr.apertureEnd() - attr.apertureStart() + 1, start, then);
            });
      });
    });
  }

  /**
   * SET_ATTR(WINDOWS): the SPAACT entries every LIODN shares. A dry pool refuses it (EINVAL):
   * counted as a refused attach, and tried again after {@link #PAMU_RETRY} while the run lasts.
   */
  private void pamuWindows(VmLoad vm, Dev d, long apertureStart, long apertureSize, long start, Runnable then) {
    int windows = tenant.pamuWindows();
    askFd(vm, r -> new IoasidFdActor.PamuSetAttr(ModeUapi.VFIO_ATTR_WINDOWS, 0, 0, windows, r), (reply, failure) -> {
      if (reply != IoasidFdActor.Done.INSTANCE) {
        error(Operation.ATTACH, errnoOf(reply, failure));
        count(Operation.ATTACH, 1);
        d.state = DevState.DETACHED;
        then.run();
        if (!finishing) {
          later(PAMU_RETRY, (x, y) -> {
            if (!finishing && d.state == DevState.DETACHED) {
              pamuWindows(vm, d, apertureStart, apertureSize, clock.nanos(), () -> {});
            }
          });
        }
        return;
      }
      d.windowCount = windows;
      d.windowSize = apertureSize / windows;
      Space s = d.space;
      s.windows = new boolean[windows];
      s.guestIovaBase = apertureStart;
      pamuMsi(vm, d, start, then);
    });
  }

  /**
   * The MSI bank the device targets goes into the container's last window (each bank costs a whole
   * window), and the device's vectors are allocated from it: banks are shared by VMs round robin,
   * so the banks' isolation and their vector pools are contended.
   */
  private void pamuMsi(VmLoad vm, Dev d, long start, Runnable then) {
    Space s = d.space;
    int banks = env.msiBanks().size();
    if (banks == 0 || d.windowCount < 2 || d.handle.msiVectors() == 0) {
      pamuWorkingWindow(vm, d, start, then);
      return;
    }
    int bank = d.msiBank >= 0 ? d.msiBank : Math.floorMod(vm.vmId, banks);
    d.msiBank = bank;
    int last = d.windowCount - 1;
    long iova = s.guestIovaBase + last * d.windowSize;
    int rw = ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE;
    askFd(vm, r -> new IoasidFdActor.PamuMapMsiBank(rw, bank, iova, r), (reply, failure) -> {
      if (!(reply instanceof IoasidFdActor.PamuMsiBankMapped)) {
        problem("vm " + vm.vmId + " device " + d.name + ": MAP_MSI_BANK " + bank + ": " + messageOf(reply, failure));
        pamuWorkingWindow(vm, d, start, then);
        return;
      }
      s.windows[last] = true;
      recorder.count("msi.requests", 1);
      askBank(bank, r -> new MsiBankActor.AllocateVectors(d.handle.rid(), d.handle.group(), d.handle.msiVectors(), r),
          (v, vf) -> {
            if (v instanceof MsiBankActor.VectorsAllocated) {
              d.vectorsHeld = true;
            } else {
              recorder.count("msi.refusals", 1);
              errnos.merge("msi " + errnoOf(v, vf), 1L, Long::sum);
            }
            pamuWorkingWindow(vm, d, start, then);
          });
    });
  }

  /** The working set: one whole window at window 0 (a PAMU maps whole, contiguous windows). */
  private void pamuWorkingWindow(VmLoad vm, Dev d, long start, Runnable then) {
    Space s = d.space;
    if (s.workingSet != null || w.dma().workingSet() == 0) {
      attached(d, start);
      then.run();
      return;
    }
    long size = d.windowSize;
    long iova = s.guestIovaBase;
    int rw = ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE;
    askFd(vm, r -> new IoasidFdActor.VfioMapDma(rw, vm.layout.userVaBase(), iova, size, r), (reply, failure) -> {
      if (reply != IoasidFdActor.Done.INSTANCE) {
        attachFailed(vm, d, reply, failure, "MAP_DMA of the working window", then);
        return;
      }
      s.windows[0] = true;
      s.workingSet = new Held(s, iova, size, 0);
      s.workingSet.unmapDue = Long.MAX_VALUE;
      attached(d, start);
      then.run();
    });
  }

  // ================================================================ the schedule

  private void startSchedules(VmLoad vm) {
    long now = clock.nanos();
    if (w.map().rate() > 0) {
      vm.map = new Schedule(w.map().rate(), MAP_CAP, vm.arrivals.split(), now);
    }
    if (w.dma().rate() > 0) {
      vm.dma = new Schedule(w.dma().rate(), DMA_CAP, vm.arrivals.split(), now);
    }
    if (w.pageRequests().rate() > 0) {
      vm.pageRequests = new Schedule(w.pageRequests().rate(), PAGE_REQUEST_CAP, vm.arrivals.split(), now);
    }
    if (w.invalidations().rate() > 0) {
      vm.invalidations = new Schedule(w.invalidations().rate(), INVALIDATION_CAP, vm.arrivals.split(), now);
    }
    if (w.hotplug().rate() > 0) {
      vm.hotplug = new Schedule(w.hotplug().rate(), 1, vm.arrivals.split(), now);
    }
    if (w.wbinvd().rate() > 0) {
      vm.wbinvd = new Schedule(w.wbinvd().rate(), WBINVD_CAP, vm.arrivals.split(), now);
    }
    reschedule(nextDue(vm));
  }

  private static long min(long a, Schedule s) {
    return s == null ? a : Math.min(a, s.nextDue());
  }

  private long nextDue(VmLoad vm) {
    if (vm.readyAt < 0 || vm.failed || vm.closed) {
      return Long.MAX_VALUE;
    }
    long t = Long.MAX_VALUE;
    t = min(t, vm.map);
    t = min(t, vm.dma);
    t = min(t, vm.pageRequests);
    t = min(t, vm.invalidations);
    t = min(t, vm.hotplug);
    t = min(t, vm.wbinvd);
    Held h = vm.unmapsDue.peek();
    if (h != null && vm.unmapsInFlight < UNMAP_CAP) {
      t = Math.min(t, h.unmapDue);
    }
    for (long at : vm.hotplugAt) {
      t = Math.min(t, at);
    }
    return t;
  }

  /** Makes sure a tick comes by {@code due}. */
  private void reschedule(long due) {
    if (finishing || due == Long.MAX_VALUE || due >= tickAt) {
      return;
    }
    tickAt = due;
    long delay = Math.max(1_000_000L, due - clock.nanos());
    timers.startSingleTimer(Tick.INSTANCE, Tick.INSTANCE, Duration.ofNanos(delay));
  }

  private Behavior<Command> onTick() {
    tickAt = Long.MAX_VALUE;
    if (finishing) {
      return this;
    }
    long now = clock.nanos();
    long previous = lastTick;
    lastTick = now;
    long next = Long.MAX_VALUE;
    for (VmLoad vm : vms) {
      if (vm.readyAt >= 0 && !vm.failed) {
        issue(vm, now, previous);
        next = Math.min(next, nextDue(vm));
      }
    }
    reschedule(next);
    return this;
  }

  /**
   * Lets the arrivals of {@code op} (its schedule {@code kind}; null: not in the mix) up to {@code
   * now} in and issues those due. A switch, not a callback: this runs on every tick of every VM.
   */
  private void issueDue(VmLoad vm, Operation op, Schedule kind, long now, long previous) {
    if (kind == null) {
      return;
    }
    kind.arrive(now);
    for (long start; (start = kind.poll(now, previous)) >= 0; ) {
      switch (op) {
        case MAP -> issueMap(vm, start);
        case DMA -> issueDma(vm, start);
        case PAGE_REQUEST -> issuePageRequest(vm, start);
        case INVALIDATION -> issueInvalidation(vm, start);
        case WBINVD -> issueWbinvd(vm, start);
        default -> throw new IllegalArgumentException("not issued on a schedule: " + op);
      }
    }
  }

  /** Issues what is due for {@code vm} at {@code now}; the previous tick was at {@code previous}. */
  private void issue(VmLoad vm, long now, long previous) {
    issueUnmaps(vm, now, previous);
    issueDue(vm, Operation.MAP, vm.map, now, previous);
    issueDue(vm, Operation.DMA, vm.dma, now, previous);
    issueDue(vm, Operation.PAGE_REQUEST, vm.pageRequests, now, previous);
    issueDue(vm, Operation.INVALIDATION, vm.invalidations, now, previous);
    issueDue(vm, Operation.WBINVD, vm.wbinvd, now, previous);
    if (vm.hotplug != null) {
      vm.hotplug.arrive(now);
      for (long start; (start = vm.hotplug.poll(now, previous)) >= 0; ) {
        if (!unplug(vm, start, false, vm.hotplug)) {
          vm.hotplug.done();
          recorder.count(Operation.UNPLUG.configName() + ".skipped", 1);
        }
      }
    }
    for (int i = vm.hotplugAt.size() - 1; i >= 0; i--) {
      if (vm.hotplugAt.get(i) <= now) {
        if (unplug(vm, now, true, null)) {
          vm.hotplugAt.remove(i);
        } else {
          // No target device is attached yet (or a cycle runs): a fixed unplug is retried.
          vm.hotplugAt.set(i, now + FIXED_UNPLUG_RETRY.toNanos());
        }
      }
    }
  }

  /** An operation of {@code s} completed: serve its backlog. */
  private void done(VmLoad vm, Schedule s, Operation op) {
    s.done();
    if (finishing || !s.backlogReady()) {
      return;
    }
    long now = clock.nanos();
    long start = s.poll(now, Long.MAX_VALUE);
    switch (op) {
      case MAP -> issueMap(vm, start);
      case DMA -> issueDma(vm, start);
      case PAGE_REQUEST -> issuePageRequest(vm, start);
      case INVALIDATION -> issueInvalidation(vm, start);
      case WBINVD -> issueWbinvd(vm, start);
      default -> s.done();
    }
  }

  // ================================================================ map and unmap

  /** A buffer's guest-physical address: aligned like the buffer (up to 2 MiB), anywhere in memory. */
  private long gpaFor(VmLoad vm, long size, long align) {
    long slots = (vm.memoryBytes - size) / align + 1;
    return slots <= 1 ? 0 : vm.choices.nextLong(slots) * align;
  }

  private Space randomSpace(VmLoad vm) {
    if (vm.spaces.isEmpty()) {
      return null;
    }
    return vm.spaces.get(vm.spaces.size() == 1 ? 0 : vm.choices.nextInt(vm.spaces.size()));
  }

  private void issueMap(VmLoad vm, long start) {
    List<Long> sizes = w.map().sizes();
    long size = sizes.get(sizes.size() == 1 ? 0 : vm.choices.nextInt(sizes.size()));
    Dev pamuDev = pamuDevice(vm);
    if (pamuDev != null) {
      issuePamuMap(vm, pamuDev, size, start);
      return;
    }
    Space s = randomSpace(vm);
    long iova = s == null ? -1 : s.iovas.allocate(size);
    if (iova < 0) {
      error(Operation.MAP, "ENOSPC");
      count(Operation.MAP, 1);
      done(vm, vm.map, Operation.MAP);
      return;
    }
    long gpa = gpaFor(vm, size, Math.min(Long.highestOneBit(size), 2L << 20));
    askVm(vm, r -> new VmActor.MapBuffer(vm.fd, s.ioasId, gpa, size, iova, Access.READ_WRITE, false, r),
        (reply, failure) -> {
          if (reply instanceof VmActor.BufferMapped m) {
            completed(Operation.MAP, m.modeledLatencyNs(), start);
            hold(vm, new Held(s, iova, size, gpa));
          } else {
            error(Operation.MAP, errnoOf(reply, failure));
            count(Operation.MAP, 1);
            s.iovas.free(iova, size);
          }
          done(vm, vm.map, Operation.MAP);
        });
  }

  private void issueUnmaps(VmLoad vm, long now, long previous) {
    while (!vm.unmapsDue.isEmpty() && vm.unmapsDue.peek().unmapDue <= now && vm.unmapsInFlight < UNMAP_CAP) {
      Held h = vm.unmapsDue.poll();
      if (h.index < 0) {
        continue; // a PAMU window the container's teardown took with it
      }
      if (h.dmaRefs > 0) {
        h.unmapDue = now + 1_000_000L; // DMA into it is still in flight: a little later
        h.waitedForDma = true;
        vm.unmapsDue.add(h);
        continue;
      }
      boolean late = !h.waitedForDma && h.unmapDue <= previous;
      if (late) {
        recorder.count(Operation.UNMAP.configName() + ".late", 1);
      }
      issueUnmap(vm, h, late ? h.unmapDue : now);
    }
  }

  /** A buffer just mapped: held for the tenant's hold time, then due for its unmap. */
  private void hold(VmLoad vm, Held h) {
    h.unmapDue = clock.nanos() + w.map().hold().toNanos();
    h.space.add(h);
    vm.unmapsDue.add(h);
    reschedule(h.unmapDue);
  }

  private void issueUnmap(VmLoad vm, Held h, long start) {
    Space s = h.space;
    s.remove(h);
    vm.unmapsInFlight++;
    if (s.windows != null) {
      issuePamuUnmap(vm, h, start);
      return;
    }
    askVm(vm, r -> new VmActor.UnmapBuffer(vm.fd, s.ioasId, h.iova, h.length, r), (reply, failure) -> {
      vm.unmapsInFlight--;
      if (reply instanceof VmActor.BufferUnmapped u) {
        completed(Operation.UNMAP, u.modeledLatencyNs(), start);
        s.iovas.free(h.iova, h.length);
        s.iovas.unmapped(h.iova, h.length);
      } else {
        error(Operation.UNMAP, errnoOf(reply, failure));
        count(Operation.UNMAP, 1);
        problem("vm " + vm.vmId + ": unmap of [0x" + Long.toHexString(h.iova) + ", +0x" + Long.toHexString(h.length)
            + "): " + messageOf(reply, failure));
      }
      if (!finishing) {
        long now = clock.nanos();
        issueUnmaps(vm, now, now);
        reschedule(nextDue(vm));
      }
    });
  }

  // ---------------------------------------------------------------- PAMU windows

  /** The VM's PAMU device whose container has windows, or null (for VMs without a PAMU: null). */
  private static Dev pamuDevice(VmLoad vm) {
    Dev any = null;
    for (Dev d : vm.devs) {
      if (d.pamu()) {
        if (d.state == DevState.READY && d.windowSize > 0) {
          return d;
        }
        any = d;
      }
    }
    return any;
  }

  private void issuePamuMap(VmLoad vm, Dev d, long size, long start) {
    Space s = d.space;
    if (d.state != DevState.READY || s.windows == null || d.unplugWanted) {
      recorder.count(Operation.MAP.configName() + ".skipped", 1);
      done(vm, vm.map, Operation.MAP);
      return;
    }
    int n = (int) Math.max(1, (size + d.windowSize - 1) / d.windowSize);
    int first = -1;
    int usable = d.windowCount - (d.msiBank >= 0 && s.windows[d.windowCount - 1] ? 1 : 0);
    List<Integer> candidates = new ArrayList<>();
    for (int i = 0; i + n <= usable; i++) {
      boolean free = true;
      for (int j = i; j < i + n; j++) {
        free &= !s.windows[j];
      }
      if (free) {
        candidates.add(i);
      }
    }
    if (!candidates.isEmpty()) {
      first = candidates.get(vm.choices.nextInt(candidates.size()));
    }
    if (first < 0) {
      // Every window is mapped: the guest has no window to ask for, so it does not ask.
      recorder.count(Operation.MAP.configName() + ".skipped", 1);
      done(vm, vm.map, Operation.MAP);
      return;
    }
    long bytes = n * d.windowSize;
    long iova = s.guestIovaBase + first * d.windowSize;
    long gpa = gpaFor(vm, bytes, bytes);
    int w0 = first;
    for (int j = w0; j < w0 + n; j++) {
      s.windows[j] = true;
    }
    d.pamuOpsInFlight++;
    int rw = ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE;
    askFd(vm, r -> new IoasidFdActor.VfioMapDma(rw, vm.layout.userVaBase() + gpa, iova, bytes, r), (reply, failure) -> {
      d.pamuOpsInFlight--;
      if (reply == IoasidFdActor.Done.INSTANCE && s.windows != null) {
        // PAMU maps are PAACE writes, one per window; the model charges no other cost.
        completed(Operation.MAP, UNCHARGED, start);
        hold(vm, new Held(s, iova, bytes, gpa));
      } else {
        error(Operation.MAP, errnoOf(reply, failure));
        count(Operation.MAP, 1);
        if (s.windows != null) {
          for (int j = w0; j < w0 + n; j++) {
            s.windows[j] = false;
          }
        }
      }
      pamuOpsSettled(vm, d);
      done(vm, vm.map, Operation.MAP);
    });
  }

  private void issuePamuUnmap(VmLoad vm, Held h, long start) {
    Space s = h.space;
    Dev d = null;
    for (Dev o : vm.devs) {
      if (o.space == s && o.pamu()) {
        d = o;
      }
    }
    Dev dev = d;
    if (dev != null) {
      dev.pamuOpsInFlight++;
    }
    askFd(vm, r -> new IoasidFdActor.VfioUnmapDma(0, h.iova, h.length, r), (reply, failure) -> {
      vm.unmapsInFlight--;
      if (dev != null) {
        dev.pamuOpsInFlight--;
      }
      if (reply instanceof IoasidFdActor.VfioDmaUnmapped) {
        completed(Operation.UNMAP, UNCHARGED, start);
        if (s.windows != null && dev != null && dev.windowSize > 0) {
          int first = (int) ((h.iova - s.guestIovaBase) / dev.windowSize);
          for (int j = first; j < first + h.length / dev.windowSize && j < s.windows.length; j++) {
            s.windows[j] = false;
          }
        }
      } else {
        error(Operation.UNMAP, errnoOf(reply, failure));
        count(Operation.UNMAP, 1);
      }
      if (dev != null) {
        pamuOpsSettled(vm, dev);
      }
      if (!finishing) {
        long now = clock.nanos();
        issueUnmaps(vm, now, now);
        reschedule(nextDue(vm));
      }
    });
  }

  /** A PAMU container op settled: an unplug waiting for the container to be quiet may go. */
  private void pamuOpsSettled(VmLoad vm, Dev d) {
    if (d.unplugWanted && d.pamuOpsInFlight == 0 && vm.unmapsInFlight == 0 && d.dmaInFlight == 0) {
      d.unplugWanted = false;
      doUnplug(vm, d, clock.nanos(), pendingUnplugSchedule.remove(d));
    }
  }

  // ================================================================ DMA

  private final Map<Dev, Schedule> pendingUnplugSchedule = new HashMap<>();

  /**
   * One access address of a burst on {@code d}: working set or a held buffer (put in {@code
   * heldOut[0]}); or stray.
   */
  private long target(VmLoad vm, Dev d, boolean stray, boolean[] neverMapped, Held[] heldOut) {
    Space s = d.space;
    int size = w.dma().accessSize();
    long offset = size >= PAGE ? 0 : (vm.choices.nextInt((int) (PAGE - size) + 1) & ~7L);
    if (stray) {
      if (!d.pamu() && !tenant.nested() && s.iovas.recentCount() > 0 && vm.choices.nextBoolean()) {
        int i = vm.choices.nextInt(s.iovas.recentCount());
        long pages = s.iovas.recentLength(i) / PAGE;
        return s.iovas.recentIova(i) + vm.choices.nextLong(pages) * PAGE + offset;
      }
      neverMapped[0] = true;
      long pages = (STRAY_HIGH - STRAY_LOW) / PAGE;
      return STRAY_LOW + vm.choices.nextLong(pages) * PAGE + offset;
    }
    Held h;
    long base;
    if (tenant.nested()) {
      h = s.workingSet;
      base = s.guestIovaBase;
    } else {
      long ws = s.workingSet == null ? 0 : s.workingSet.length;
      long total = ws + s.heldBytes;
      if (total == 0) {
        return -1;
      }
      if (s.held.isEmpty() || vm.choices.nextLong(total) < ws) {
        h = s.workingSet;
      } else {
        h = s.held.get(vm.choices.nextInt(s.held.size()));
      }
      base = h.iova;
    }
    if (h == null) {
      return -1;
    }
    heldOut[0] = h;
    return base + vm.choices.nextLong(h.length / PAGE) * PAGE + offset;
  }

  private int accessKind(VmLoad vm) {
    WorkloadSettings.Dma dma = w.dma();
    double x = vm.choices.nextDouble();
    if (x < dma.read()) {
      return Access.READ;
    }
    return x < dma.read() + dma.write() ? Access.WRITE : Access.READ_WRITE;
  }

  private void issueDma(VmLoad vm, long start) {
    Dev d = vm.randomReady();
    if (d == null || d.space == null || (d.space.workingSet == null && d.space.held.isEmpty())) {
      recorder.count(Operation.DMA.configName() + ".skipped", 1);
      done(vm, vm.dma, Operation.DMA);
      return;
    }
    int n = w.dma().burst();
    long[] iovas = new long[n];
    int[] lengths = new int[n];
    int[] access = new int[n];
    boolean[] strayNever = new boolean[n];
    boolean[] never = new boolean[1];
    Held[] held = new Held[1];
    List<Held> buffers = new ArrayList<>(4);
    double stray = w.dma().strayFraction();
    for (int i = 0; i < n; i++) {
      never[0] = false;
      held[0] = null;
      // No strays on a PAMU: an access violation disables the LIODN, another study.
      boolean s = stray > 0 && !d.pamu() && vm.choices.nextDouble() < stray;
      long iova = target(vm, d, s, never, held);
      if (held[0] != null && held[0] != d.space.workingSet && !buffers.contains(held[0])) {
        // A guest driver unmaps a buffer once the DMA it programmed into it is done (on a PAMU a
        // DMA into a disabled window is even an access violation that disables the LIODN); what
        // races the unmap are the strays, aimed at buffers just unmapped.
        buffers.add(held[0]);
        held[0].dmaRefs++;
      }
      strayNever[i] = never[0];
      iovas[i] = iova;
      lengths[i] = w.dma().accessSize();
      access[i] = accessKind(vm);
    }
    int pasid = IommuUnitActor.NO_PASID;
    if (!d.pasids.isEmpty() && !tenant.nested()) {
      int k = vm.choices.nextInt(d.pasids.size() + 1);
      pasid = k == d.pasids.size() ? IommuUnitActor.NO_PASID : d.pasids.get(k);
    }
    int p = pasid;
    d.dmaInFlight++;
    askVm(vm, r -> new VmActor.RunDma(d.name, p, iovas, lengths, access, r), (reply, failure) -> {
      d.dmaInFlight--;
      for (Held h : buffers) {
        h.dmaRefs--;
      }
      if (d.pamu()) {
        pamuOpsSettled(vm, d);
      }
      if (reply instanceof VmActor.DmaDone done) {
        completed(Operation.DMA, done.modeledLatencyNs(), start);
        burstCounters(vm, done, w.dma().accessSize(), strayNever);
      } else {
        error(Operation.DMA, errnoOf(reply, failure));
        count(Operation.DMA, 1);
      }
      done(vm, vm.dma, Operation.DMA);
    });
  }

  /** The counters every completed burst feeds: translations, faults, bytes, ATC hits, violations. */
  private void burstCounters(VmLoad vm, VmActor.DmaDone done, int accessSize, boolean[] strayNever) {
    byte[] status = done.status();
    long faults = 0;
    long ok = 0;
    for (int i = 0; i < status.length; i++) {
      byte st = status[i];
      if (st == DeviceActor.STATUS_OK) {
        ok++;
        if (strayNever != null && strayNever[i]) {
          strayCompleted++;
        }
      } else if ((st > 0 && st <= FAULT_REASONS) || st == DeviceActor.STATUS_PAGE_REQUEST_FAILED) {
        faults++;
      } else if (st == DeviceActor.STATUS_ABORTED) {
        aborted++;
      }
    }
    recorder.count("dma.translations", status.length);
    recorder.count("dma.faults", faults);
    recorder.count("dma.bytes", ok * accessSize);
    recorder.count("dma.atc-hits", done.atcHits());
    if (faults > 0 || done.pageRequests() > 0) {
      vm.faultActivity = true;
    }
    if (done.staleViolations() > 0) {
      recorder.count(Oracle.STALE_TRANSLATION.metric(), done.staleViolations());
      vm.staleSeen += done.staleViolations();
      reportStale(vm);
    }
  }

  /** Sends the VM's newly recorded stale violations, with their events, to the conductor. */
  private void reportStale(VmLoad vm) {
    if (vm.staleAsked || vm.staleReported >= StaleDmaOracle.MAX_RECORDED) {
      return;
    }
    vm.staleAsked = true;
    askVm(vm, VmActor.GetVmState::new, (reply, failure) -> {
      vm.staleAsked = false;
      if (reply instanceof VmActor.VmState st) {
        List<StaleDmaOracle.StaleViolation> recorded = st.oracle().recorded();
        for (int i = vm.staleReported; i < recorded.size(); i++) {
          Violation v = Violation.of(recorded.get(i), tenant.name(), clock.nanos() - env.startNanos());
          env.conductor().tell(new Messages.ViolationSeen(v));
        }
        vm.staleReported = Math.max(vm.staleReported, recorded.size());
      }
    });
  }

  // ================================================================ page requests

  private Dev priDevice(VmLoad vm) {
    List<Dev> pri = new ArrayList<>();
    for (Dev d : vm.devs) {
      if (d.state == DevState.READY && d.handle.pri() && d.space != null && !tenant.nested()) {
        pri.add(d);
      }
    }
    return pri.isEmpty() ? null : pri.get(vm.choices.nextInt(pri.size()));
  }

  /**
   * A lazily mapped buffer on a PRI device, each of its pages touched once by a one-access burst:
   * each touch is one page request (fault → the VM's FAULT queue → resolved, page mapped →
   * response), measured by the burst; then the buffer is unmapped.
   */
  private void issuePageRequest(VmLoad vm, long start) {
    Dev d = priDevice(vm);
    long size = w.pageRequests().bufferSize();
    Space s = d == null ? null : d.space;
    long iova = s == null ? -1 : s.iovas.allocate(size);
    if (iova < 0) {
      recorder.count(Operation.PAGE_REQUEST.configName() + ".skipped", 1);
      done(vm, vm.pageRequests, Operation.PAGE_REQUEST);
      return;
    }
    long gpa = gpaFor(vm, size, Math.min(Long.highestOneBit(size), 2L << 20));
    askVm(vm, r -> new VmActor.MapBuffer(vm.fd, s.ioasId, gpa, size, iova, Access.READ_WRITE, true, r),
        (reply, failure) -> {
          if (!(reply instanceof VmActor.BufferMapped)) {
            error(Operation.PAGE_REQUEST, errnoOf(reply, failure));
            count(Operation.PAGE_REQUEST, 1);
            s.iovas.free(iova, size);
            done(vm, vm.pageRequests, Operation.PAGE_REQUEST);
            return;
          }
          int pages = (int) (size / PAGE);
          int[] left = {pages};
          for (int i = 0; i < pages; i++) {
            long at = iova + i * PAGE;
            long touched = clock.nanos();
            int kind = accessKind(vm);
            askVm(vm, r -> new VmActor.RunDma(d.name, IommuUnitActor.NO_PASID, new long[] {at},
                new int[] {Math.min(w.dma().accessSize(), (int) PAGE)}, new int[] {kind}, r), (dr, df) -> {
                  if (dr instanceof VmActor.DmaDone done) {
                    burstCounters(vm, done, Math.min(w.dma().accessSize(), (int) PAGE), null);
                    if (done.status()[0] == DeviceActor.STATUS_OK) {
                      completed(Operation.PAGE_REQUEST, done.modeledLatencyNs(), touched);
                    } else {
                      error(Operation.PAGE_REQUEST, done.status()[0] == DeviceActor.STATUS_PAGE_REQUEST_FAILED
                          ? "page request failed" : "status " + done.status()[0]);
                      count(Operation.PAGE_REQUEST, 1);
                    }
                  } else {
                    error(Operation.PAGE_REQUEST, errnoOf(dr, df));
                    count(Operation.PAGE_REQUEST, 1);
                  }
                  if (--left[0] == 0) {
                    unmapLazy(vm, s, iova, size);
                  }
                });
          }
        });
  }

  private void unmapLazy(VmLoad vm, Space s, long iova, long size) {
    askVm(vm, r -> new VmActor.UnmapBuffer(vm.fd, s.ioasId, iova, size, r), (reply, failure) -> {
      if (reply instanceof VmActor.BufferUnmapped) {
        s.iovas.free(iova, size);
        s.iovas.unmapped(iova, size);
      } else {
        problem("vm " + vm.vmId + ": unmap of a lazy buffer: " + messageOf(reply, failure));
      }
      done(vm, vm.pageRequests, Operation.PAGE_REQUEST);
    });
  }

  // ================================================================ guest invalidations (nested)

  private void issueInvalidation(VmLoad vm, long start) {
    List<Dev> nested = new ArrayList<>();
    for (Dev d : vm.devs) {
      if (d.state == DevState.READY && d.nestedDomainId > 0 && d.space != null && d.space.workingSet != null) {
        nested.add(d);
      }
    }
    if (nested.isEmpty()) {
      recorder.count(Operation.INVALIDATION.configName() + ".skipped", 1);
      done(vm, vm.invalidations, Operation.INVALIDATION);
      return;
    }
    Dev d = nested.get(vm.choices.nextInt(nested.size()));
    Space s = d.space;
    long size = Math.min(w.invalidations().size(), s.workingSet.length);
    long pages = (s.workingSet.length - size) / PAGE + 1;
    long offset = vm.choices.nextLong(pages) * PAGE;
    long giova = s.guestIovaBase + offset;
    long gpa = s.workingSet.gpa + offset;
    int nd = d.nestedDomainId;
    // The guest rewrites a stage-1 range (as when it remaps a buffer) and invalidates it.
    askVm(vm, r -> new VmActor.ClearStage1(d.name, nd, giova, size, r), (c, cf) ->
        askVm(vm, r -> new VmActor.WriteStage1(d.name, nd, giova, gpa, size, Access.READ_WRITE, r), (wr, wf) -> {
          List<IommuUnitActor.UserInvalidation> entries = List.of(new IommuUnitActor.UserInvalidation(
              IommuUnitActor.UserInvalidationKind.IOTLB_RANGE, IommuUnitActor.NO_PASID, giova, size / PAGE,
              d.handle.rid(), true));
          askVm(vm, r -> new VmActor.InvalidateStage1(d.name, nd, entries, r), (reply, failure) -> {
            if (reply instanceof VmActor.Stage1Invalidated inv && inv.errno() == null) {
              completed(Operation.INVALIDATION, inv.modeledLatencyNs(), start);
            } else if (reply instanceof VmActor.Stage1Invalidated inv) {
              error(Operation.INVALIDATION, inv.errno().name());
              count(Operation.INVALIDATION, 1);
            } else {
              error(Operation.INVALIDATION, errnoOf(reply, failure));
              count(Operation.INVALIDATION, 1);
            }
            done(vm, vm.invalidations, Operation.INVALIDATION);
          });
        }));
  }

  // ================================================================ WBINVD

  private void issueWbinvd(VmLoad vm, long start) {
    askVm(vm, VmActor.GuestWbinvd::new, (reply, failure) -> {
      if (reply instanceof VmActor.WbinvdHandled h) {
        completed(Operation.WBINVD, UNCHARGED, start);
        wbinvds++;
        vm.kvmRegistrations = h.kvm().registrations();
        vm.kvmUnregistrations = h.kvm().unregistrations();
        if (h.emulated()) {
          recorder.count("wbinvd.emulated", 1);
          wbinvdsEmulated++;
          long at = clock.nanos() - env.startNanos();
          lastEmulatedAt = at;
          if (firstEmulatedAt < 0) {
            firstEmulatedAt = at;
          }
        }
      } else {
        error(Operation.WBINVD, errnoOf(reply, failure));
        count(Operation.WBINVD, 1);
      }
      done(vm, vm.wbinvd, Operation.WBINVD);
    });
  }

  // ================================================================ hotplug

  /**
   * Starts a hotplug cycle of one target device of {@code vm}: false when none can go now (no
   * READY target, or a cycle is running).
   */
  private boolean unplug(VmLoad vm, long start, boolean fixed, Schedule s) {
    if (vm.hotplugBusy) {
      return false;
    }
    List<Dev> targets = new ArrayList<>();
    for (Dev d : vm.devs) {
      if (d.state == DevState.READY && w.hotplug().devices().accepts(d.handle.noSnoop())) {
        targets.add(d);
      }
    }
    if (targets.isEmpty()) {
      return false;
    }
    Dev d = targets.get(vm.choices.nextInt(targets.size()));
    vm.hotplugBusy = true;
    d.state = DevState.UNPLUGGING;
    if (d.pamu() && (d.pamuOpsInFlight > 0 || vm.unmapsInFlight > 0 || d.dmaInFlight > 0)) {
      // An orderly removal on a PAMU: the guest stops the device's DMA and the container's own
      // operations and waits for them before it lets the device go. A detached LIODN falls back
      // to the default bypass window (fsl_pamu.c, remove_device_ref), so a DMA still in flight
      // would reach host memory untranslated: the isolation oracle catches that if it happens.
      d.unplugWanted = true;
      pendingUnplugSchedule.put(d, s);
      return true;
    }
    doUnplug(vm, d, start, s);
    return true;
  }

  private void doUnplug(VmLoad vm, Dev d, long start, Schedule s) {
    if (d.pamu() && d.vectorsHeld) {
      askBank(d.msiBank, r -> new MsiBankActor.FreeVectors(d.handle.rid(), r), (reply, failure) -> {
        d.vectorsHeld = false;
        doUnplug(vm, d, start, s);
      });
      return;
    }
    askHotplug(r -> new HostGuardian.UnplugDevice(d.name, r), (reply, failure) -> {
      if (!(reply instanceof HostGuardian.DeviceUnplugged)) {
        error(Operation.UNPLUG, errnoOf(reply, failure));
        count(Operation.UNPLUG, 1);
        problem("vm " + vm.vmId + ": unplug of " + d.name + ": " + messageOf(reply, failure));
        d.state = DevState.READY;
        hotplugOver(vm, s);
        return;
      }
      completed(Operation.UNPLUG, UNCHARGED, start);
      d.state = DevState.UNPLUGGED;
      if (d.pamu()) {
        pamuGone(vm, d);
      }
      if (w.hotplug().replugAfter().isEmpty() || finishing) {
        hotplugOver(vm, s);
        return;
      }
      later(w.hotplug().replugAfter().get(), (x, y) -> replug(vm, d, s));
    });
  }

  /** The device left the VFIO-PAMU container: with the last group, the container's state went. */
  private void pamuGone(VmLoad vm, Dev d) {
    if (containerSet(vm, d)) {
      return;
    }
    Space s = d.space;
    for (Held h : new ArrayList<>(s.held)) {
      s.remove(h);
    }
    s.workingSet = null;
    s.windows = null;
    for (Dev o : vm.devs) {
      if (o.space == s) {
        o.windowSize = 0;
        o.windowCount = 0;
      }
    }
  }

  private void replug(VmLoad vm, Dev d, Schedule s) {
    if (finishing) {
      hotplugOver(vm, s);
      return;
    }
    long start = clock.nanos();
    askHotplug(r -> new HostGuardian.PlugDevice(d.name, r), (reply, failure) -> {
      if (!(reply instanceof HostGuardian.DevicePlugged)) {
        error(Operation.HOTPLUG, errnoOf(reply, failure));
        count(Operation.HOTPLUG, 1);
        problem("vm " + vm.vmId + ": plug of " + d.name + ": " + messageOf(reply, failure));
        hotplugOver(vm, s);
        return;
      }
      askHotplug(r -> new HostGuardian.AssignDevice(d.name, vm.vmId, r), (reply2, failure2) -> {
        if (!(reply2 instanceof HostGuardian.DeviceAssigned)) {
          error(Operation.HOTPLUG, errnoOf(reply2, failure2));
          count(Operation.HOTPLUG, 1);
          problem("vm " + vm.vmId + ": plug of " + d.name + " into the VM: " + messageOf(reply2, failure2));
          hotplugOver(vm, s);
          return;
        }
        completed(Operation.HOTPLUG, UNCHARGED, start);
        if (finishing) {
          hotplugOver(vm, s);
          return;
        }
        attach(vm, d, clock.nanos(), () -> hotplugOver(vm, s));
      });
    });
  }

  private void hotplugOver(VmLoad vm, Schedule s) {
    vm.hotplugBusy = false;
    if (s != null) {
      s.done();
    }
    if (!finishing) {
      reschedule(Math.max(clock.nanos(), nextDue(vm)));
    }
  }

  // ================================================================ intervals

  private Behavior<Command> onDrain(Drain d) {
    takeScheduleCounters();
    env.conductor().tell(new Messages.Sampled(d.index(), recorder.drain()));
    pollFaultStats(false);
    return this;
  }

  private void takeScheduleCounters() {
    for (VmLoad vm : vms) {
      scheduleCounters(vm.map, Operation.MAP);
      scheduleCounters(vm.dma, Operation.DMA);
      scheduleCounters(vm.pageRequests, Operation.PAGE_REQUEST);
      scheduleCounters(vm.invalidations, Operation.INVALIDATION);
      scheduleCounters(vm.hotplug, Operation.UNPLUG);
      scheduleCounters(vm.wbinvd, Operation.WBINVD);
    }
  }

  private void scheduleCounters(Schedule s, Operation op) {
    if (s == null) {
      return;
    }
    long late = s.takeLate();
    long dropped = s.takeDropped();
    if (late > 0) {
      recorder.count(op.configName() + ".late", late);
    }
    if (dropped > 0) {
      recorder.count(op.configName() + ".dropped", dropped);
    }
  }

  /** Reads the fault statistics of the fds whose VMs saw faults or page requests (or all). */
  private void pollFaultStats(boolean all) {
    for (VmLoad vm : vms) {
      if (vm.fdRef == null || vm.closed || vm.faultStatsAsked || !(all || vm.faultActivity)) {
        continue;
      }
      vm.faultActivity = false;
      vm.faultStatsAsked = true;
      askFd(vm, IoasidFdActor.GetFaultStats::new, (reply, failure) -> {
        vm.faultStatsAsked = false;
        if (reply instanceof IoasidFdActor.FaultStats st) {
          long delivered = st.delivered() - vm.faultsDelivered;
          long lost = st.lost() - vm.faultsLost;
          vm.faultsDelivered = st.delivered();
          vm.faultsLost = st.lost();
          recorder.count("faults.published", delivered + lost);
          recorder.count("faults.delivered", delivered);
          recorder.count("faults.lost", lost);
        }
      });
    }
  }

  // ================================================================ the end

  private Behavior<Command> onFinish() {
    finishing = true;
    timers.cancel(Tick.INSTANCE);
    for (VmLoad vm : vms) {
      for (Schedule s : new Schedule[] {vm.map, vm.dma, vm.pageRequests, vm.invalidations, vm.hotplug, vm.wbinvd}) {
        if (s != null) {
          s.abandon();
        }
      }
    }
    // Delayed continuations (replugs, retries) will not run: their slots are freed now.
    for (Integer slot : new ArrayList<>(laterSlots.keySet())) {
      timers.cancel(slot);
      pending.set(slot, null);
      freeSlots.add(slot);
      inFlight--;
    }
    laterSlots.clear();
    for (Map.Entry<Dev, Schedule> e : pendingUnplugSchedule.entrySet()) {
      e.getKey().unplugWanted = false;
      e.getKey().state = DevState.READY;
    }
    pendingUnplugSchedule.clear();
    toStart.clear();
    maybeTeardown();
    return this;
  }

  /** Once nothing is in flight after Finish: fault statistics, MSI vectors, then every fd closed. */
  private void maybeTeardown() {
    if (!finishing || inFlight > 0 || finished) {
      return;
    }
    if (!tearingDown) {
      tearingDown = true;
      pollFaultStats(true);
      for (VmLoad vm : vms) {
        for (Dev d : vm.devs) {
          if (d.vectorsHeld) {
            askBank(d.msiBank, r -> new MsiBankActor.FreeVectors(d.handle.rid(), r), (reply, failure) -> {
              d.vectorsHeld = false;
            });
          }
        }
      }
      if (inFlight > 0) {
        return;
      }
    }
    boolean closing = false;
    for (VmLoad vm : vms) {
      if (vm.fdRef != null && !vm.closed) {
        vm.closed = true;
        closing = true;
        askVm(vm, r -> new VmActor.CloseFd(vm.fd, r), (reply, failure) -> {
          if (reply instanceof VmActor.FdClosed c) {
            closes.add(new Messages.FdCloseResult(vm.vmId, vm.fd, c.objectsDestroyed(), c.pagesUnpinned(),
                c.leftBehind(), null));
          } else {
            closes.add(new Messages.FdCloseResult(vm.vmId, vm.fd, 0, 0, List.of(), messageOf(reply, failure)));
          }
        });
      }
    }
    if (closing || inFlight > 0) {
      return;
    }
    finished = true;
    takeScheduleCounters();
    int started = 0;
    for (VmLoad vm : vms) {
      if (vm.fd != 0) {
        started++;
      }
    }
    TenantSample last = recorder.drain();
    long registrations = 0;
    long unregistrations = 0;
    for (VmLoad vm : vms) {
      registrations += vm.kvmRegistrations;
      unregistrations += vm.kvmUnregistrations;
    }
    Messages.Kvm kvm = new Messages.Kvm(wbinvds, wbinvdsEmulated, firstEmulatedAt, lastEmulatedAt, registrations,
        unregistrations);
    env.conductor().tell(new Messages.Finished(last, new Messages.WorkloadReport(
        tenant.name(), vms.size(), started, closes, errnos, problems, strayCompleted, aborted, kvm)));
  }

  @Override
  public String toString() {
    return "workload " + tenant.name() + " (" + vms.size() + " VMs)";
  }
}
