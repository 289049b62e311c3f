package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.await;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.IommulabSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * A whole emulated host for one run of a fail-nth sweep, built fresh for every run as {@code
 * iommufd_fail_nth.c} tears down and sets up its fixture: every unit of the default topology
 * (both VT-d units, the SMMUv3 and the PAMU with its MSI banks) on the real unit actors, every
 * device on the real device actor, the real host memory, and one fd of VM 1. The fd AND every unit
 * share one {@link FaultInjector} (a {@code FailNth}), so a sweep reaches the units' allocation
 * sites (domain, page-table node, PASID table, PAMU domain and SPAACE) as well as the fd's. A
 * device without ATS ({@code plain0}, on {@code smmu0}) is added so a DMA fault is reported as a
 * fault, not turned into an ATS completion or a page request, and a VT-d without nesting ({@code
 * vtd9}, device {@code legacy0}) for software nesting.
 */
final class SweepRig {

  static final long GUEST = 64L << 20;
  private static final AtomicInteger NEXT_CTX = new AtomicInteger(10_000);

  final ActorTestKit kit;
  final ActorRef<HostMemoryActor.Command> memory;
  final Map<String, ActorRef<IommuUnitActor.Command>> units = new LinkedHashMap<>();
  final Map<String, Integer> unitIds = new LinkedHashMap<>();
  final Map<String, IoasidFdActor.DeviceHandle> handles = new LinkedHashMap<>();
  final List<ActorRef<MsiBankActor.Command>> banks = new ArrayList<>();
  final List<MsiBankSettings> bankSettings;
  final TestProbe<IoasidFdActor.FdEvent> events;
  final GuestMemoryLayout layout;
  final int ictxId = NEXT_CTX.getAndIncrement();
  final ActorRef<IoasidFdActor.Command> fdRef;
  final IommuFd fd;
  /** Each unit's snapshot right after boot: what it must look like again after the run. */
  final Map<String, IommuUnitActor.UnitSnapshotted> pristine = new LinkedHashMap<>();
  private final List<ActorRef<?>> spawned = new ArrayList<>();

  SweepRig(ActorTestKit kit, FaultInjector injector) {
    this.kit = kit;
    IommulabSettings defaults = IommulabSettings.defaults();
    this.memory = spawn(HostMemoryActor.create(defaults.topology(), FaultInjector.NONE));
    this.bankSettings = defaults.topology().msiBanks();
    Map<Integer, ActorRef<MsiBankActor.Command>> bankRefs = new LinkedHashMap<>();
    for (MsiBankSettings s : bankSettings) {
      ActorRef<MsiBankActor.Command> b = spawn(MsiBankActor.create(s, FaultInjector.NONE));
      banks.add(b);
      bankRefs.put(s.index(), b);
    }
    ManualClock clock = new ManualClock();
    List<IommuUnitSettings> all = new ArrayList<>(defaults.topology().units());
    PagingUnitSettings vtd0 = (PagingUnitSettings) all.get(0);
    // A VT-d without nesting (nor interrupt remapping or dirty tracking): software nesting's unit.
    all.add(new PagingUnitSettings("vtd9", vtd0.kind(), vtd0.addressWidth(), vtd0.pageSizes(), true, false, false,
        false, vtd0.pasidBits(), vtd0.domainIds(), vtd0.iotlb(), vtd0.invalidationQueueDepth(), vtd0.maxAddressMask(),
        false));
    for (int i = 0; i < all.size(); i++) {
      IommuUnitSettings u = all.get(i);
      unitIds.put(u.name(), i);
      units.put(u.name(), spawn(IommuUnitActor.create(i, u, CostModel.defaults(), clock, 31L * i + 7, injector,
          memory, u instanceof PamuUnitSettings ? bankRefs : Map.of())));
    }
    List<DeviceSettings> devices = new ArrayList<>(defaults.topology().devices());
    devices.add(new DeviceSettings("plain0", "smmu0", "02:02.0", OptionalInt.empty(), 20, 0, false, 0, false, 1,
        false, false));
    devices.add(new DeviceSettings("legacy0", "vtd9", "05:00.0", OptionalInt.empty(), 21, 0, false, 0, false, 1,
        false, false));
    for (DeviceSettings d : devices) {
      ActorRef<IommuUnitActor.Command> unit = units.get(d.unit());
      int unitId = unitIds.get(d.unit());
      ActorRef<DeviceActor.Command> dev =
          spawn(DeviceActor.create(d, unitId, unit, memory, clock, 7));
      int liodn = d.liodn().orElse(-1);
      Object reply = await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
          unit, r -> new IommuUnitActor.RegisterDevice(d.ridValue(), liodn, d.group(), d.pasidBits(), d.ats(), d.pri(),
              dev, r),
          Duration.ofSeconds(5), kit.scheduler()));
      assertEquals(IommuUnitActor.Done.INSTANCE, reply, d.name());
      handles.put(d.name(), new IoasidFdActor.DeviceHandle(d.name(), d.ridValue(), liodn, d.group(), unitId, unit, dev));
    }
    HostMemoryActor.GuestMemoryReply r = await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.GuestMemoryReply>ask(
        memory, reply -> new HostMemoryActor.AllocateGuestMemory(1, GUEST, PageSize.SIZE_2M, reply),
        Duration.ofSeconds(5), kit.scheduler()));
    if (!(r instanceof HostMemoryActor.GuestMemoryAllocated a)) {
      throw new AssertionError("guest memory: " + r);
    }
    this.layout = a.layout();
    this.events = kit.createTestProbe();
    // allow_unsafe_interrupts: a PAMU does not isolate MSIs, and the PAMU container needs its bind.
    List<Long> msiir = bankSettings.stream().map(MsiBankSettings::msiirAddress).toList();
    this.fdRef = spawn(IoasidFdActor.create(ictxId, 1, layout, UapiSettings.defaults().withAllowUnsafeInterrupts(true),
        IoasidFdActor.Credentials.NONE, memory, events.ref(), injector, new ManualClock(), msiir,
        FaultPipelineSettings.defaults()));
    this.fd = IommuFd.of(fdRef, kit.system());
    for (String u : units.keySet()) {
      pristine.put(u, unitSnapshot(u));
    }
  }

  private <T> ActorRef<T> spawn(org.apache.pekko.actor.typed.Behavior<T> b) {
    ActorRef<T> ref = kit.spawn(b);
    spawned.add(ref);
    return ref;
  }

  /** Stops every actor of the rig (the next run builds its own). */
  void stop() {
    for (int i = spawned.size() - 1; i >= 0; i--) {
      kit.stop(spawned.get(i), Duration.ofSeconds(5));
    }
    spawned.clear();
  }

  VfioDevice device(String name) {
    return new VfioDevice(fd, handles.get(name));
  }

  // ---------------------------------------------------------------- observation

  <R> R ask(ActorRef<IommuUnitActor.Command> unit, Function<ActorRef<R>, IommuUnitActor.Command> make) {
    return await(AskPattern.ask(unit, make::apply, Duration.ofSeconds(5), kit.scheduler()));
  }

  IommuUnitActor.UnitReply unitCall(String unit, Function<ActorRef<IommuUnitActor.UnitReply>, IommuUnitActor.Command> make) {
    return ask(units.get(unit), make);
  }

  CompletionStage<IommuUnitActor.UnitReply> unitStage(String unit,
      Function<ActorRef<IommuUnitActor.UnitReply>, IommuUnitActor.Command> make) {
    return AskPattern.ask(units.get(unit), make::apply, Duration.ofSeconds(5), kit.scheduler());
  }

  IommuUnitActor.UnitSnapshotted unitSnapshot(String unit) {
    return ask(units.get(unit), IommuUnitActor.GetSnapshot::new);
  }

  IommuUnitActor.UnitStats unitStats(String unit) {
    return ask(units.get(unit), IommuUnitActor.GetStats::new);
  }

  HostMemoryActor.MemoryReport memoryReport() {
    return await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.MemoryReport>ask(
        memory, HostMemoryActor.GetReport::new, Duration.ofSeconds(5), kit.scheduler()));
  }

  DeviceActor.DeviceState deviceState(String name) {
    return await(AskPattern.<DeviceActor.Command, DeviceActor.DeviceState>ask(
        handles.get(name).device(), DeviceActor.GetState::new, Duration.ofSeconds(5), kit.scheduler()));
  }

  FdSnapshot fdSnapshot() {
    return await(fd.snapshot());
  }

  /** What a refused call must leave as it was: the fd, every unit, the host's pinned frames. */
  record State(FdSnapshot fd, List<IommuUnitActor.UnitSnapshotted> units, long pinnedFrames) {}

  /** The parts of {@code b} that differ from {@code a}, named, each entry of a table by index. */
  static String diff(State a, State b) {
    StringBuilder out = new StringBuilder();
    if (!a.fd().equals(b.fd())) {
      out.append("\n fd: ").append(a.fd()).append("\n  → ").append(b.fd());
    }
    if (a.pinnedFrames() != b.pinnedFrames()) {
      out.append("\n pinned frames: ").append(a.pinnedFrames()).append(" → ").append(b.pinnedFrames());
    }
    for (int i = 0; i < a.units().size(); i++) {
      IommuUnitActor.UnitSnapshotted x = a.units().get(i);
      IommuUnitActor.UnitSnapshotted y = b.units().get(i);
      String u = "unit " + i;
      part(out, u + " groups", x.groups(), y.groups());
      part(out, u + " attach handles", x.attachHandles(), y.attachHandles());
      if (x.paging() != null) {
        part(out, u + " contexts", x.paging().contexts(), y.paging().contexts());
        part(out, u + " PASID entries", x.paging().pasidEntries(), y.paging().pasidEntries());
        part(out, u + " domains", x.paging().domains(), y.paging().domains());
        part(out, u + " IOTLB size", x.paging().iotlbSize(), y.paging().iotlbSize());
        part(out, u + " queue", x.paging().queuePending(), y.paging().queuePending());
      } else {
        table(out, u + " PPAACT", x.pamu().ppaact(), y.pamu().ppaact());
        table(out, u + " SPAACT", x.pamu().spaact(), y.pamu().spaact());
        part(out, u + " SPAACT ranges", x.pamu().spaactRanges(), y.pamu().spaactRanges());
        part(out, u + " PAMU domains", x.pamu().domains(), y.pamu().domains());
      }
    }
    return out.length() == 0 ? "no difference" : out.toString();
  }

  private static void part(StringBuilder out, String what, Object x, Object y) {
    if (!x.equals(y)) {
      out.append("\n ").append(what).append(": ").append(x).append("\n  → ").append(y);
    }
  }

  private static <T> void table(StringBuilder out, String what, List<T> x, List<T> y) {
    for (int i = 0; i < Math.max(x.size(), y.size()); i++) {
      T p = i < x.size() ? x.get(i) : null;
      T q = i < y.size() ? y.get(i) : null;
      if (p == null ? q != null : !p.equals(q)) {
        out.append("\n ").append(what).append("[").append(i).append("]: ").append(p).append("\n  → ").append(q);
      }
    }
  }

  State state() {
    List<IommuUnitActor.UnitSnapshotted> us = new ArrayList<>();
    for (String u : units.keySet()) {
      us.add(unitSnapshot(u));
    }
    return new State(fdSnapshot(), us, memoryReport().pinnedFrames());
  }
}
