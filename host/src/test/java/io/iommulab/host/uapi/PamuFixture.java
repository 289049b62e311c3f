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
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * One emulated PAMU host for the PAMU container tests: the default topology's {@code pamu0} on
 * the real unit actor, its MSI banks on real bank actors, its functions ({@code dpaa0}, {@code
 * pcie0}, {@code pcie1}) on real device actors, a host-memory actor, and one fd of VM 1 over a
 * 64 MiB guest backed by 2 MiB pages (the first physically apart from the others) — opened with {@code allow_unsafe_interrupts}, since a PAMU
 * does not isolate MSIs (the 2013 thread: isolation needs an MSI bank per VFIO group).
 */
final class PamuFixture implements ConformanceTest.Host {

  static final long GUEST = 64L << 20;
  private static final AtomicInteger NEXT_CTX = new AtomicInteger(10_000);

  final ActorTestKit kit;
  final ActorRef<HostMemoryActor.Command> memory;
  final ActorRef<IommuUnitActor.Command> unit;
  final Map<Integer, ActorRef<MsiBankActor.Command>> banks = new HashMap<>();
  final List<Long> msiirAddresses = new ArrayList<>();
  final Map<String, IoasidFdActor.DeviceHandle> handles = new LinkedHashMap<>();
  final TestProbe<IoasidFdActor.FdEvent> events;
  final IommuFd fd;
  final GuestMemoryLayout layout;
  final long va;
  private final ManualClock clock = new ManualClock();

  PamuFixture(ActorTestKit kit) {
    this(kit, UapiSettings.defaults().withAllowUnsafeInterrupts(true));
  }

  PamuFixture(ActorTestKit kit, UapiSettings settings) {
    this.kit = kit;
    TopologySettings topology = IommulabSettings.defaults().topology();
    this.memory = kit.spawn(HostMemoryActor.create(topology, FaultInjector.NONE));
    for (MsiBankSettings b : topology.msiBanks()) {
      banks.put(b.index(), kit.spawn(MsiBankActor.create(b, FaultInjector.NONE)));
      msiirAddresses.add(b.msiirAddress());
    }
    PamuUnitSettings pamu = null;
    for (IommuUnitSettings u : topology.units()) {
      if (u instanceof PamuUnitSettings p) {
        pamu = p;
      }
    }
    int unitId = 3;
    this.unit = kit.spawn(IommuUnitActor.create(unitId, pamu, CostModel.defaults(), clock, 3, FaultInjector.NONE,
        memory, banks));
    for (DeviceSettings d : topology.devices()) {
      if (!d.unit().equals(pamu.name())) {
        continue;
      }
      ActorRef<DeviceActor.Command> dev = kit.spawn(DeviceActor.create(d, unitId, unit, memory, clock, 7));
      int liodn = d.liodn().getAsInt();
      Object reply = await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitReply>ask(
          unit, r -> new IommuUnitActor.RegisterDevice(d.ridValue(), liodn, d.group(), 0, false, false, dev, r),
          Duration.ofSeconds(5), kit.scheduler()));
      assertEquals(IommuUnitActor.Done.INSTANCE, reply, d.name());
      handles.put(d.name(), new IoasidFdActor.DeviceHandle(d.name(), d.ridValue(), liodn, d.group(), unitId, unit, dev));
    }
    this.events = kit.createTestProbe();
    // A 2 MiB hole below another VM's page: VM 1's first page lands in it, physically apart from
    // the rest, so a window over it is not contiguous (the VFIO-PAMU EFAULT rule).
    allocate(2, 2L << 20);
    allocate(3, 2L << 20);
    await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.GuestMemoryReply>ask(
        memory, reply -> new HostMemoryActor.ReleaseGuestMemory(2, reply), Duration.ofSeconds(5), kit.scheduler()));
    HostMemoryActor.GuestMemoryReply r = allocate(1, GUEST);
    this.layout = ((HostMemoryActor.GuestMemoryAllocated) r).layout();
    this.va = layout.userVaBase();
    ActorRef<IoasidFdActor.Command> fdRef = kit.spawn(IoasidFdActor.create(
        NEXT_CTX.getAndIncrement(), 1, layout, settings, IoasidFdActor.Credentials.NONE, memory, events.ref(),
        FaultInjector.NONE, new ManualClock(), msiirAddresses, FaultPipelineSettings.defaults()));
    this.fd = IommuFd.of(fdRef, kit.system());
  }

  private HostMemoryActor.GuestMemoryReply allocate(int vmId, long bytes) {
    return await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.GuestMemoryReply>ask(
        memory, reply -> new HostMemoryActor.AllocateGuestMemory(vmId, bytes, PageSize.SIZE_2M, reply),
        Duration.ofSeconds(5), kit.scheduler()));
  }

  VfioDevice device(String name) {
    return new VfioDevice(fd, handles.get(name));
  }

  VfioDevice bound(String name) {
    VfioDevice d = device(name);
    Fixture.ok(d.bind());
    return d;
  }

  IommuUnitActor.UnitSnapshotted unitSnapshot() {
    return await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.UnitSnapshotted>ask(
        unit, IommuUnitActor.GetSnapshot::new, Duration.ofSeconds(5), kit.scheduler()));
  }

  HostMemoryActor.MemoryReport memoryReport() {
    return await(AskPattern.<HostMemoryActor.Command, HostMemoryActor.MemoryReport>ask(
        memory, HostMemoryActor.GetReport::new, Duration.ofSeconds(5), kit.scheduler()));
  }

  long pinnedBytes() {
    return memoryReport().pinnedFrames() * 4096;
  }

  @Override
  public IommuFd fd() {
    return fd;
  }

  @Override
  public void assertNoHostBugs() {
    assertEquals(List.of(), memoryReport().bugs(), "host-memory oracle");
  }

  FdSnapshot snapshot() {
    return await(fd.snapshot());
  }

  /** Everything a refused call must leave unchanged: the fd, the unit, the host's pins. */
  record State(FdSnapshot fd, IommuUnitActor.UnitSnapshotted unit, long pinnedBytes) {}

  State state() {
    return new State(snapshot(), unitSnapshot(), pinnedBytes());
  }

  /** The PAMU domain of the container (the only one). */
  io.iommulab.hardware.pamu.PamuDomain.State domain() {
    List<io.iommulab.hardware.pamu.PamuDomain.State> ds = unitSnapshot().pamu().domains();
    assertEquals(1, ds.size(), ds.toString());
    return ds.get(0);
  }

  /** A user-VA offset in guest memory where {@code size} bytes are not physically contiguous. */
  long discontiguousOffset(long size) {
    for (long off = 0; off + size <= GUEST; off += 2L << 20) {
      if (layout.contiguousBytes(va + off) < size) {
        return off;
      }
    }
    throw new AssertionError("guest memory is contiguous over every " + size + " bytes");
  }

  /** A user-VA offset where {@code size} bytes are contiguous and naturally aligned in host memory. */
  long contiguousOffset(long size, int skip) {
    int seen = 0;
    for (long off = 0; off + size <= GUEST; off += size) {
      long hpa = layout.userVaToHpa(va + off);
      if (layout.contiguousBytes(va + off) >= size && (hpa & (size - 1)) == 0 && seen++ == skip) {
        return off;
      }
    }
    throw new AssertionError("no contiguous aligned " + size + " bytes");
  }
}
