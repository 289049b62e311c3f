package io.iommulab.host.uapi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.IommulabSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * One emulated host for a conformance test: the paging units and their devices of the default
 * topology ({@link IommulabSettings#defaults()}) on fake unit actors built on the real hardware
 * model, plus {@code vtd9} — a VT-d without interrupt remapping, dirty tracking or nesting, with
 * one device {@code legacy0} — a host-memory stand-in that keeps the net pinned bytes, and one fd
 * of VM 1 over a 64 MiB guest (2 MiB pages in two physically discontiguous halves).
 */
final class Fixture implements ConformanceTest.Host {

  static final long GUEST = 64L << 20;
  static final long MB = 1L << 20;
  static final long PAGE = 4096;
  private static final AtomicInteger NEXT_CTX = new AtomicInteger(1);

  final ActorTestKit kit;
  final Map<String, FakeUnit.Control> controls = new LinkedHashMap<>();
  final Map<String, ActorRef<IommuUnitActor.Command>> units = new LinkedHashMap<>();
  final Map<String, Integer> unitIds = new LinkedHashMap<>();
  final Map<String, IoasidFdActor.DeviceHandle> handles = new LinkedHashMap<>();
  final ActorRef<HostMemoryActor.Command> memory;
  final TestProbe<IoasidFdActor.FdEvent> events;
  final ActorRef<IoasidFdActor.Command> fdRef;
  final IommuFd fd;
  final GuestMemoryLayout layout;
  /** User VA of the fd's guest memory (GPA 0). */
  final long va;
  final boolean fakeUnits;
  private final FaultInjector injector;
  private final Map<Integer, GuestMemoryLayout> layouts = new java.util.HashMap<>();
  private final ManualClock clock = new ManualClock();

  Fixture(ActorTestKit kit) {
    this(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE);
  }

  Fixture(ActorTestKit kit, UapiSettings settings, IoasidFdActor.Credentials credentials) {
    this(kit, settings, credentials, FaultInjector.NONE, false);
  }

  /** On fake units (held replies, unit-side refusals, recorded invalidations and responses). */
  static Fixture withFakeUnits(ActorTestKit kit) {
    return new Fixture(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE, FaultInjector.NONE, true);
  }

  Fixture(ActorTestKit kit, UapiSettings settings, IoasidFdActor.Credentials credentials, FaultInjector injector,
      boolean fakeUnits) {
    this.kit = kit;
    this.injector = injector;
    this.fakeUnits = fakeUnits;
    this.memory = kit.spawn(HostMemoryActor.create(IommulabSettings.defaults().topology(), FaultInjector.NONE));
    List<IommuUnitSettings> all = IommulabSettings.defaults().topology().units();
    List<DeviceSettings> devices = new ArrayList<>(IommulabSettings.defaults().topology().devices());
    List<PagingUnitSettings> paging = new ArrayList<>();
    for (IommuUnitSettings u : all) {
      if (u instanceof PagingUnitSettings p) {
        paging.add(p);
      }
    }
    PagingUnitSettings vtd0 = paging.get(0);
    PagingUnitSettings vtd9 =
        new PagingUnitSettings(
            "vtd9", vtd0.kind(), vtd0.addressWidth(), vtd0.pageSizes(), true, false, false, false,
            vtd0.pasidBits(), vtd0.domainIds(), vtd0.iotlb(), vtd0.invalidationQueueDepth(),
            vtd0.maxAddressMask(), false);
    paging.add(vtd9);
    devices.add(
        new DeviceSettings("legacy0", "vtd9", "05:00.0", java.util.OptionalInt.empty(), 10, 0, false, 0, false, 1,
            false, false));
    int id = 0;
    for (PagingUnitSettings p : paging) {
      int unitId = id++;
      unitIds.put(p.name(), unitId);
      if (fakeUnits) {
        FakeUnit.Control c = new FakeUnit.Control();
        controls.put(p.name(), c);
        units.put(p.name(), kit.spawn(FakeUnit.create(unitId, p, c)));
      } else {
        units.put(p.name(), kit.spawn(IommuUnitActor.create(unitId, p, CostModel.defaults(), clock, unitId,
            FaultInjector.NONE, memory, Map.of())));
      }
    }
    for (DeviceSettings d : devices) {
      ActorRef<IommuUnitActor.Command> unit = units.get(d.unit());
      if (unit == null) {
        continue; // behind the PAMU: not a paging unit
      }
      ActorRef<io.iommulab.actors.device.DeviceActor.Command> dev =
          kit.spawn(fakeUnits ? FakeUnit.device()
              : io.iommulab.actors.device.DeviceActor.create(d, unitIds.get(d.unit()), unit, memory, clock, 7));
      Object reply =
          await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
              unit,
              r -> new IommuUnitActor.RegisterDevice(d.ridValue(), -1, d.group(), d.pasidBits(), d.ats(), d.pri(),
                  dev, r),
              Duration.ofSeconds(5),
              kit.scheduler()));
      assertEquals(IommuUnitActor.Done.INSTANCE, reply, d.name());
      handles.put(
          d.name(),
          new IoasidFdActor.DeviceHandle(d.name(), d.ridValue(), -1, d.group(), unitIds.get(d.unit()), unit, dev));
    }
    this.events = kit.createTestProbe();
    this.layout = layout(1);
    this.va = layout.userVaBase();
    this.fdRef = openFd(1, settings, credentials);
    this.fd = IommuFd.of(fdRef, kit.system());
  }

  /** An fd of VM {@code vmId} on the same units (another owner). */
  ActorRef<IoasidFdActor.Command> openFd(int vmId, UapiSettings settings, IoasidFdActor.Credentials credentials) {
    int ictx = NEXT_CTX.getAndIncrement();
    layout(vmId);
    return kit.spawn(
        IoasidFdActor.create(ictx, vmId, layout(vmId), settings, credentials, memory, events.ref(),
            injector, new ManualClock(), List.of(), FaultPipelineSettings.defaults()));
  }

  /** The VM's 64 MiB of guest memory, backed by 2 MiB pages, allocated by the host-memory actor. */
  GuestMemoryLayout layout(int vmId) {
    return layouts.computeIfAbsent(vmId, v -> {
      HostMemoryActor.GuestMemoryReply r =
          await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.GuestMemoryReply>ask(
              memory, reply -> new HostMemoryActor.AllocateGuestMemory(v, GUEST, PageSize.SIZE_2M, reply),
              Duration.ofSeconds(5), kit.scheduler()));
      if (!(r instanceof HostMemoryActor.GuestMemoryAllocated a)) {
        throw new AssertionError("guest memory of VM " + v + ": " + r);
      }
      return a.layout();
    });
  }

  // ---------------------------------------------------------------- helpers

  static <T> T await(CompletionStage<T> stage) {
    try {
      return stage.toCompletableFuture().get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new AssertionError("stage did not complete", e);
    }
  }

  static <T> T ok(CompletionStage<Outcome<T>> stage) {
    Outcome<T> o = await(stage);
    if (!o.isOk()) {
      fail("expected success, got " + o);
    }
    return o.value();
  }

  static <T> Outcome.Err<T> err(Errno expected, CompletionStage<Outcome<T>> stage) {
    Outcome<T> o = await(stage);
    assertTrue(o instanceof Outcome.Err, "expected " + expected + ", got " + o);
    Outcome.Err<T> e = (Outcome.Err<T>) o;
    assertEquals(expected, e.errno(), e.message());
    return e;
  }

  VfioDevice device(String name) {
    return new VfioDevice(fd, handles.get(name));
  }

  VfioDevice bound(String name) {
    VfioDevice d = device(name);
    ok(d.bind());
    return d;
  }

  int ioas() {
    return ok(fd.ioasAlloc());
  }

  HostMemoryActor.MemoryReport memoryReport() {
    return await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.MemoryReport>ask(
        memory, HostMemoryActor.GetReport::new, Duration.ofSeconds(5), kit.scheduler()));
  }

  /** Bytes of host frames with at least one pin (the host's view, from PinsChanged). */
  long pinnedBytes() {
    return memoryReport().pinnedFrames() * 4096;
  }

  /**
   * The host-memory actor's bug list must stay empty: every PinsChanged the fd sent was a valid pin
   * or an unpin of something pinned (checked after every test).
   */
  @Override
  public void assertNoHostBugs() {
    assertEquals(List.of(), memoryReport().bugs(), "host-memory oracle");
  }

  IommuUnitActor.UnitSnapshotted unitSnapshot(String unit) {
    return await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitSnapshotted>ask(
        units.get(unit), IommuUnitActor.GetSnapshot::new, Duration.ofSeconds(5), kit.scheduler()));
  }

  /** Everything a refused call must leave unchanged: the fd, every unit, the host's pins. */
  record State(FdSnapshot fd, List<IommuUnitActor.UnitSnapshotted> units, long pinnedBytes) {}

  State state() {
    List<IommuUnitActor.UnitSnapshotted> us = new ArrayList<>();
    for (String u : units.keySet()) {
      us.add(unitSnapshot(u));
    }
    return new State(await(fd.snapshot()), us, pinnedBytes());
  }

  FdSnapshot snapshot() {
    return await(fd.snapshot());
  }

  FdSnapshot.IoasSnapshot ioasSnapshot(int ioasId) {
    Optional<FdSnapshot.IoasSnapshot> s =
        snapshot().ioases().stream().filter(i -> i.id() == ioasId).findFirst();
    return s.orElseThrow(() -> new AssertionError("no IOAS " + ioasId));
  }

  /** Leaves of every paging domain of {@code unit}. */
  long mappedBytes(String unit) {
    long n = 0;
    for (var d : unitSnapshot(unit).paging().domains()) {
      n += d.table().mappedBytes();
    }
    return n;
  }

  @Override
  public IommuFd fd() {
    return fd;
  }

  int domains(String unit) {
    return unitSnapshot(unit).paging().domains().size();
  }
}
