package io.iommulab.host.uapi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
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
final class Fixture {

  static final long VA = 0x7f00_0000_0000L;
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
  private final FaultInjector injector;

  Fixture(ActorTestKit kit) {
    this(kit, UapiSettings.defaults(), IoasidFdActor.Credentials.NONE);
  }

  Fixture(ActorTestKit kit, UapiSettings settings, IoasidFdActor.Credentials credentials) {
    this(kit, settings, credentials, FaultInjector.NONE);
  }

  Fixture(ActorTestKit kit, UapiSettings settings, IoasidFdActor.Credentials credentials, FaultInjector injector) {
    this.kit = kit;
    this.injector = injector;
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
      FakeUnit.Control c = new FakeUnit.Control();
      int unitId = id++;
      controls.put(p.name(), c);
      unitIds.put(p.name(), unitId);
      units.put(p.name(), kit.spawn(FakeUnit.create(unitId, p, c)));
    }
    for (DeviceSettings d : devices) {
      ActorRef<IommuUnitActor.Command> unit = units.get(d.unit());
      if (unit == null) {
        continue; // behind the PAMU: not a paging unit
      }
      ActorRef<io.iommulab.actors.device.DeviceActor.Command> dev = kit.spawn(FakeUnit.device());
      Object reply =
          await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
              unit,
              r -> new IommuUnitActor.RegisterDevice(d.ridValue(), -1, d.group(), d.pasidBits(), d.ats(), dev, r),
              Duration.ofSeconds(5),
              kit.scheduler()));
      assertEquals(IommuUnitActor.Done.INSTANCE, reply, d.name());
      handles.put(
          d.name(),
          new IoasidFdActor.DeviceHandle(d.name(), d.ridValue(), -1, d.group(), unitIds.get(d.unit()), unit, dev));
    }
    this.memory = kit.spawn(memory());
    this.events = kit.createTestProbe();
    this.layout = layout(1);
    this.fdRef = openFd(1, settings, credentials);
    this.fd = IommuFd.of(fdRef, kit.system());
  }

  /** An fd of VM {@code vmId} on the same units (another owner). */
  ActorRef<IoasidFdActor.Command> openFd(int vmId, UapiSettings settings, IoasidFdActor.Credentials credentials) {
    int ictx = NEXT_CTX.getAndIncrement();
    return kit.spawn(
        IoasidFdActor.create(ictx, vmId, layout(vmId), settings, credentials, memory, events.ref(),
            injector, new ManualClock()));
  }

  /** 64 MiB at {@link #VA}: pages 0–15 at host 1 GiB, pages 16–31 at host 3 GiB (two runs). */
  static GuestMemoryLayout layout(int vmId) {
    int pages = (int) (GUEST / PageSize.SIZE_2M.bytes());
    int[] frames = new int[pages];
    int[] runEnd = new int[pages];
    for (int i = 0; i < pages; i++) {
      long hpa = (i < pages / 2 ? (1L << 30) : (3L << 30)) + (long) (i % (pages / 2)) * PageSize.SIZE_2M.bytes();
      hpa += (long) (vmId - 1) << 32;
      frames[i] = (int) (hpa >>> 12);
      runEnd[i] = i < pages / 2 ? pages / 2 : pages;
    }
    return new GuestMemoryLayout(vmId, GUEST, PageSize.SIZE_2M, VA, frames, runEnd);
  }

  /** Keeps the net bytes pinned, and answers GetReport with them (as pinnedFrames of 4 KiB). */
  static Behavior<HostMemoryActor.Command> memory() {
    long[] pinned = {0};
    return Behaviors.receive(HostMemoryActor.Command.class)
        .onMessage(HostMemoryActor.PinsChanged.class, p -> {
          pinned[0] += p.pinned() ? p.length() : -p.length();
          return Behaviors.same();
        })
        .onMessage(HostMemoryActor.GetReport.class, g -> {
          g.replyTo().tell(new HostMemoryActor.MemoryReport(0, 0, pinned[0] / 4096, Map.of(), List.of(), 0, Map.of(), List.of()));
          return Behaviors.same();
        })
        .build();
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

  long pinnedBytes() {
    HostMemoryActor.MemoryReport r =
        await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.MemoryReport>ask(
            memory, HostMemoryActor.GetReport::new, Duration.ofSeconds(5), kit.scheduler()));
    return r.pinnedFrames() * 4096;
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

  int domains(String unit) {
    return unitSnapshot(unit).paging().domains().size();
  }
}
