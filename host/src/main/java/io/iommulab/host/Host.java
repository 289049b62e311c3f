package io.iommulab.host;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.IommulabSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * A running host from the outside: starts an {@link ActorSystem} whose guardian is a {@link
 * HostGuardian}, and offers its operations as {@link CompletionStage}s. Guest mistakes complete
 * with an {@link Outcome.Err} (errno and message); a stage completes exceptionally only when an
 * actor did not answer within {@code iommulab.host.ask-timeout} (a bug).
 *
 * <p>Continuations run on the actor system's dispatcher ({@code *Async} with its executor), never
 * on the JDK common pool: on a 2-CPU machine a plain {@code thenApply} on a Pekko stage starts a
 * thread per callback. Callers chaining on the returned stages should do the same ({@link
 * #executor()}).
 *
 * <p>{@link #close()} terminates the system and waits for it (bounded); call {@link #shutdown()}
 * first for the leak report.
 */
public final class Host implements AutoCloseable {
  private final ActorSystem<HostGuardian.Command> system;
  private final IommulabSettings settings;
  private final HostSettings hostSettings;
  private final Duration timeout;
  private final Executor executor;

  private Host(ActorSystem<HostGuardian.Command> system, IommulabSettings settings, HostSettings hostSettings) {
    this.system = system;
    this.settings = settings;
    this.hostSettings = hostSettings;
    this.timeout = hostSettings.askTimeout();
    this.executor = system.executionContext();
  }

  /**
   * Starts host {@code name} (an actor-system name: letters, digits, '-' and '_') with the
   * configuration {@code overrides} over {@code application.conf} over the shipped {@code
   * reference.conf}s, the run's {@code clock} and a fault {@code injector}.
   *
   * @throws io.iommulab.config.SettingsException when the topology or cost model is invalid
   */
  public static Host start(
      String name, Map<String, ?> overrides, ModeledClock clock, FaultInjector injector) {
    return start(name, config(overrides), clock, injector, HostParts.REAL);
  }

  /** {@link #start(String, Map, ModeledClock, FaultInjector)} with an {@link EdgeClock}, no faults. */
  public static Host start(String name, Map<String, ?> overrides) {
    return start(name, overrides, new EdgeClock(), FaultInjector.NONE);
  }

  /** The configuration a host started with {@code overrides} runs on. */
  public static Config config(Map<String, ?> overrides) {
    return ConfigFactory.parseMap(overrides).withFallback(ConfigFactory.load()).resolve();
  }

  static Host start(String name, Config config, ModeledClock clock, FaultInjector injector, HostParts parts) {
    Objects.requireNonNull(clock, "clock");
    IommulabSettings settings = IommulabSettings.fromConfig(config);
    HostSettings hostSettings = HostSettings.fromConfig(config);
    ActorSystem<HostGuardian.Command> system =
        ActorSystem.create(HostGuardian.create(settings, hostSettings, clock, injector, parts), name, config);
    return new Host(system, settings, hostSettings);
  }

  public ActorSystem<HostGuardian.Command> system() {
    return system;
  }

  public IommulabSettings settings() {
    return settings;
  }

  public HostSettings hostSettings() {
    return hostSettings;
  }

  /** The executor continuations should run on: the actor system's dispatcher. */
  public Executor executor() {
    return executor;
  }

  // ================================================================ host operations

  /** {@link HostGuardian.CreateVm} of the default tenant. */
  public CompletionStage<Outcome<Vm>> createVm(int vmId, long memoryBytes, PageSize backing, List<String> devices) {
    return createVm(vmId, memoryBytes, backing, devices, io.iommulab.actors.vm.VmSpec.DEFAULT_TENANT);
  }

  /** {@link HostGuardian.CreateVm}: completes with the VM's handle once its memory is allocated. */
  public CompletionStage<Outcome<Vm>> createVm(
      int vmId, long memoryBytes, PageSize backing, List<String> devices, String tenant) {
    return AskPattern.<HostGuardian.Command, HostGuardian.CreateVmReply>ask(
            system,
            replyTo -> new HostGuardian.CreateVm(vmId, memoryBytes, backing, devices, tenant, replyTo),
            timeout,
            system.scheduler())
        .thenApplyAsync(
            reply ->
                reply instanceof HostGuardian.VmCreated c
                    ? Outcome.ok(new Vm(c))
                    : refusal((HostGuardian.Refused) reply),
            executor);
  }

  /** {@link HostGuardian.DestroyVm}. */
  public CompletionStage<Outcome<HostGuardian.VmDestroyed>> destroyVm(int vmId) {
    return AskPattern.<HostGuardian.Command, HostGuardian.DestroyVmReply>ask(
            system, replyTo -> new HostGuardian.DestroyVm(vmId, replyTo), timeout, system.scheduler())
        .thenApplyAsync(
            reply ->
                reply instanceof HostGuardian.VmDestroyed d
                    ? Outcome.ok(d)
                    : refusal((HostGuardian.Refused) reply),
            executor);
  }

  /** {@link HostGuardian.UnplugDevice}: completes with the VM that held it (0 for none). */
  public CompletionStage<Outcome<Integer>> unplug(String device) {
    return AskPattern.<HostGuardian.Command, HostGuardian.HotplugReply>ask(
            system, replyTo -> new HostGuardian.UnplugDevice(device, replyTo), timeout, system.scheduler())
        .thenApplyAsync(
            reply ->
                reply instanceof HostGuardian.DeviceUnplugged u
                    ? Outcome.ok(u.formerVmId())
                    : refusal((HostGuardian.Refused) reply),
            executor);
  }

  /** {@link HostGuardian.PlugDevice}. */
  public CompletionStage<Outcome<Void>> plug(String device) {
    return AskPattern.<HostGuardian.Command, HostGuardian.HotplugReply>ask(
            system, replyTo -> new HostGuardian.PlugDevice(device, replyTo), timeout, system.scheduler())
        .thenApplyAsync(
            reply ->
                reply instanceof HostGuardian.DevicePlugged ? Outcome.OK : refusal((HostGuardian.Refused) reply),
            executor);
  }

  /** {@link HostGuardian.AssignDevice}: a present, unassigned device hot-plugged into a running VM. */
  public CompletionStage<Outcome<Void>> assign(String device, int vmId) {
    return AskPattern.<HostGuardian.Command, HostGuardian.HotplugReply>ask(
            system, replyTo -> new HostGuardian.AssignDevice(device, vmId, replyTo), timeout, system.scheduler())
        .thenApplyAsync(
            reply ->
                reply instanceof HostGuardian.DeviceAssigned ? Outcome.OK : refusal((HostGuardian.Refused) reply),
            executor);
  }

  /** {@link HostGuardian.GetTopology}. */
  public CompletionStage<HostGuardian.Topology> topology() {
    return AskPattern.ask(system, HostGuardian.GetTopology::new, timeout, system.scheduler());
  }

  /**
   * {@link HostGuardian.Shutdown}: every VM powers off; completes with the leak and oracle report.
   * The system keeps running until {@link #close()}.
   */
  public CompletionStage<HostGuardian.HostReport> shutdown() {
    return AskPattern.ask(system, HostGuardian.Shutdown::new, timeout, system.scheduler());
  }

  /** Terminates the actor system and waits (at most a minute) until it has. */
  @Override
  public void close() {
    system.terminate();
    try {
      system.getWhenTerminated().toCompletableFuture().get(1, TimeUnit.MINUTES);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
      throw new IllegalStateException("host " + system.name() + " did not terminate", e);
    }
  }

  private static <T> Outcome<T> refusal(HostGuardian.Refused r) {
    return Outcome.err(r.errno(), r.message());
  }

  // ================================================================ VM handle

  /** A VM of this host: its guest-driver operations. */
  public final class Vm {
    private final HostGuardian.VmCreated created;

    private Vm(HostGuardian.VmCreated created) {
      this.created = created;
    }

    public int id() {
      return created.vmId();
    }

    public ActorRef<VmActor.Command> ref() {
      return created.vm();
    }

    public GuestMemoryLayout layout() {
      return created.layout();
    }

    public List<DeviceHandle> devices() {
      return created.devices();
    }

    /** {@link VmActor.OpenFd}: completes with the fd number. */
    public CompletionStage<Outcome<Integer>> openFd() {
      return ask(VmActor.OpenFd::new, VmActor.FdOpened.class)
          .thenApplyAsync(o -> o.map(VmActor.FdOpened::fd), executor);
    }

    /**
     * {@link VmActor.OpenFd}, as a uAPI handle: one method per iommufd ioctl on the VM's new fd.
     * What is done through it bypasses the VM's guest driver (and so its stale-DMA oracle).
     */
    public CompletionStage<Outcome<io.iommulab.host.uapi.IommuFd>> openUapiFd() {
      return ask(VmActor.OpenFd::new, VmActor.FdOpened.class)
          .thenApplyAsync(o -> o.map(opened -> new io.iommulab.host.uapi.IommuFd(opened.ref(), system.scheduler(), executor, timeout)), executor);
    }

    /** {@link VmActor.CloseFd}. */
    public CompletionStage<Outcome<VmActor.FdClosed>> closeFd(int fd) {
      return ask(r -> new VmActor.CloseFd(fd, r), VmActor.FdClosed.class);
    }

    /** {@link VmActor.BindDevice}: DMA ownership of {@code device} through fd {@code fd}. */
    public CompletionStage<Outcome<VmActor.DeviceBound>> bind(int fd, String device) {
      return ask(r -> new VmActor.BindDevice(fd, device, r), VmActor.DeviceBound.class);
    }

    /** {@link VmActor.UnbindDevice}. */
    public CompletionStage<Outcome<VmActor.DeviceUnbound>> unbind(int fd, String device) {
      return ask(r -> new VmActor.UnbindDevice(fd, device, r), VmActor.DeviceUnbound.class);
    }

    /** {@link VmActor.AllocIoas}: completes with the IOAS id. */
    public CompletionStage<Outcome<Integer>> allocIoas(int fd) {
      return ask(r -> new VmActor.AllocIoas(fd, r), VmActor.IoasAllocated.class)
          .thenApplyAsync(o -> o.map(VmActor.IoasAllocated::ioasId), executor);
    }

    /** {@link VmActor.AttachDevice}. */
    public CompletionStage<Outcome<VmActor.DeviceAttached>> attach(int fd, String device, int ioasId) {
      return ask(r -> new VmActor.AttachDevice(fd, device, ioasId, r), VmActor.DeviceAttached.class);
    }

    /** {@link VmActor.DetachDevice}. */
    public CompletionStage<Outcome<VmActor.DeviceDetached>> detach(int fd, String device) {
      return ask(r -> new VmActor.DetachDevice(fd, device, r), VmActor.DeviceDetached.class);
    }

    /**
     * {@link VmActor.MapBuffer}: guest memory {@code [gpa, +length)} at {@code iova} ({@link
     * VmActor#AUTO_IOVA}: the VM picks it); completes with the IOVA.
     */
    public CompletionStage<Outcome<Long>> map(int fd, int ioasId, long gpa, long length, long iova, int prot) {
      return ask(r -> new VmActor.MapBuffer(fd, ioasId, gpa, length, iova, prot, false, r), VmActor.BufferMapped.class)
          .thenApplyAsync(o -> o.map(VmActor.BufferMapped::iova), executor);
    }

    /** As {@link #map}, pages installed on page request (a PRI buffer). */
    public CompletionStage<Outcome<Long>> mapLazy(int fd, int ioasId, long gpa, long length, int prot) {
      return ask(
              r -> new VmActor.MapBuffer(fd, ioasId, gpa, length, VmActor.AUTO_IOVA, prot, true, r),
              VmActor.BufferMapped.class)
          .thenApplyAsync(o -> o.map(VmActor.BufferMapped::iova), executor);
    }

    /** {@link VmActor.UnmapBuffer}: completes once every invalidation is done. */
    public CompletionStage<Outcome<VmActor.BufferUnmapped>> unmap(int fd, int ioasId, long iova, long length) {
      return ask(r -> new VmActor.UnmapBuffer(fd, ioasId, iova, length, r), VmActor.BufferUnmapped.class);
    }

    /** {@link VmActor.RunDma}: a burst of {@code iovas.length} accesses on {@code device}. */
    public CompletionStage<Outcome<VmActor.DmaDone>> dma(
        String device, int pasid, long[] iovas, int[] lengths, int[] access) {
      return ask(r -> new VmActor.RunDma(device, pasid, iovas, lengths, access, r), VmActor.DmaDone.class);
    }

    /** {@link VmActor.ReleaseDevice}: the guest driver lets the device go. */
    public CompletionStage<Outcome<VmActor.DeviceReleased>> release(String device) {
      return ask(r -> new VmActor.ReleaseDevice(device, r), VmActor.DeviceReleased.class);
    }

    /** {@link VmActor.GuestWbinvd}: completes with whether KVM emulated it. */
    public CompletionStage<Outcome<VmActor.WbinvdHandled>> wbinvd() {
      return ask(VmActor.GuestWbinvd::new, VmActor.WbinvdHandled.class);
    }

    public CompletionStage<Outcome<Integer>> allocPasid() {
      return ask(VmActor.AllocPasid::new, VmActor.PasidAllocated.class)
          .thenApplyAsync(o -> o.map(VmActor.PasidAllocated::pasid), executor);
    }

    public CompletionStage<Outcome<Void>> freePasid(int pasid) {
      return ask(r -> new VmActor.FreePasid(pasid, r), VmActor.PasidFreed.class)
          .thenApplyAsync(o -> o.map(freed -> (Void) null), executor);
    }

    public CompletionStage<Outcome<VmActor.VmState>> state() {
      return ask(VmActor.GetVmState::new, VmActor.VmState.class);
    }

    private <T extends VmActor.VmReply> CompletionStage<Outcome<T>> ask(
        Function<ActorRef<VmActor.VmReply>, VmActor.Command> command, Class<T> expected) {
      return AskPattern.<VmActor.Command, VmActor.VmReply>ask(
              created.vm(), command::apply, timeout, system.scheduler())
          .thenApplyAsync(
              reply -> {
                if (reply instanceof VmActor.Refused r) {
                  return Outcome.<T>err(r.errno(), r.message());
                }
                return Outcome.ok(expected.cast(reply));
              },
              executor);
    }

    @Override
    public String toString() {
      return "vm " + id() + " " + layout();
    }
  }
}
