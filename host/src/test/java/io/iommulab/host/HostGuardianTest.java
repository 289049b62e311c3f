package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.StaleDmaOracle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.actors.vm.VmSpec;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.IommulabSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.host.HostGuardian.CreateVmReply;
import io.iommulab.host.HostGuardian.DestroyVmReply;
import io.iommulab.host.HostGuardian.HotplugReply;
import io.iommulab.host.HostGuardian.Presence;
import io.iommulab.host.HostGuardian.Refused;
import io.iommulab.host.HostGuardian.Topology;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.LoggingTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class HostGuardianTest {
  static final ActorTestKit testKit = ActorTestKit.create();
  static final IommulabSettings SETTINGS = IommulabSettings.defaults();
  static final long GIB = 1L << 30;

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static ActorRef<HostGuardian.Command> host() {
    return host(HostParts.REAL);
  }

  private static ActorRef<HostGuardian.Command> host(HostParts parts) {
    return testKit.spawn(
        HostGuardian.create(SETTINGS, HostSettings.defaults(), new ManualClock(), FaultInjector.NONE, parts));
  }

  /** The real parts, but nvme0's function behaves as {@code nvme0}: a planted fault. */
  private static HostParts withNvme0(Behavior<DeviceActor.Command> nvme0) {
    return new HostParts() {
      @Override
      public Behavior<DeviceActor.Command> device(
          DeviceSettings settings, int unitId, ActorRef<IommuUnitActor.Command> unit,
          ActorRef<HostMemoryActor.Command> memory, ModeledClock clock, long seed) {
        if (!settings.name().equals("nvme0")) {
          return HostParts.super.device(settings, unitId, unit, memory, clock, seed);
        }
        return nvme0;
      }
    };
  }

  private static HostGuardian.HostReport shutdown(ActorRef<HostGuardian.Command> host) {
    TestProbe<HostGuardian.HostReport> probe = testKit.createTestProbe();
    host.tell(new HostGuardian.Shutdown(probe.ref()));
    return probe.receiveMessage();
  }

  private static Topology topology(ActorRef<HostGuardian.Command> host) {
    TestProbe<Topology> probe = testKit.createTestProbe();
    host.tell(new HostGuardian.GetTopology(probe.ref()));
    return probe.receiveMessage();
  }

  private static CreateVmReply createVm(ActorRef<HostGuardian.Command> host, int vmId, long bytes, String... devices) {
    TestProbe<CreateVmReply> probe = testKit.createTestProbe();
    host.tell(new HostGuardian.CreateVm(vmId, bytes, PageSize.SIZE_2M, List.of(devices),
        VmSpec.DEFAULT_TENANT, probe.ref()));
    return probe.receiveMessage();
  }

  private static HostGuardian.VmCreated created(ActorRef<HostGuardian.Command> host, int vmId, String... devices) {
    return assertInstanceOf(HostGuardian.VmCreated.class, createVm(host, vmId, GIB, devices));
  }

  private static HotplugReply hotplug(ActorRef<HostGuardian.Command> host, String name, boolean plug) {
    TestProbe<HotplugReply> probe = testKit.createTestProbe();
    host.tell(plug ? new HostGuardian.PlugDevice(name, probe.ref()) : new HostGuardian.UnplugDevice(name, probe.ref()));
    return probe.receiveMessage();
  }

  private static HostMemoryActor.MemoryReport memoryReport(Topology topology) {
    TestProbe<HostMemoryActor.MemoryReport> probe = testKit.createTestProbe();
    topology.memory().tell(new HostMemoryActor.GetReport(probe.ref()));
    return probe.receiveMessage();
  }

  /** Bytes by VM owner (owner ids above the host's). */
  private static Map<Integer, Long> vmOwners(HostMemoryActor.MemoryReport report) {
    Map<Integer, Long> owners = new java.util.TreeMap<>();
    report.allocatedBytesByOwner().forEach((owner, bytes) -> {
      if (owner > io.iommulab.hardware.memory.HostMemory.HOST && bytes > 0) {
        owners.put(owner, bytes);
      }
    });
    return owners;
  }

  private static VmActor.VmReply ask(ActorRef<VmActor.Command> vm, java.util.function.Function<ActorRef<VmActor.VmReply>, VmActor.Command> cmd) {
    TestProbe<VmActor.VmReply> probe = testKit.createTestProbe();
    vm.tell(cmd.apply(probe.ref()));
    return probe.receiveMessage();
  }

  private static void assertRefused(Errno errno, Object reply) {
    Refused refused = assertInstanceOf(Refused.class, reply);
    assertEquals(errno, refused.errno(), refused.message());
  }

  @Test
  void guardianBuildsTheDefaultTopologyAndRegistersEveryDeviceWithItsOwnUnit() {
    ActorRef<HostGuardian.Command> host = host();

    Topology topology = topology(host);

    assertEquals(List.of("vtd0", "vtd1", "smmu0", "pamu0"), topology.units().stream().map(HostGuardian.UnitEntry::name).toList());
    assertEquals(List.of(0, 1, 2, 3), topology.units().stream().map(HostGuardian.UnitEntry::unitId).toList());
    for (HostGuardian.UnitEntry unit : topology.units()) {
      TestProbe<IommuUnitActor.UnitSnapshotted> probe = testKit.createTestProbe();
      unit.unit().tell(new IommuUnitActor.GetSnapshot(probe.ref()));
      List<Integer> registered = probe.receiveMessage().devices().stream().sorted().toList();
      List<Integer> expected =
          SETTINGS.topology().devices().stream()
              .filter(d -> unitIndex(d) == unit.unitId())
              .map(DeviceSettings::ridValue)
              .sorted()
              .toList();
      assertEquals(expected, registered, unit.name());
    }
    assertEquals(SETTINGS.topology().devices().size(), topology.devices().size());
    topology.devices().values().forEach(d -> assertEquals(Presence.PRESENT, d.presence(), d.handle().name()));
    assertEquals(3, topology.msiBanks().size());
    assertFalse(topology.device("nic1").handle().enforcedCoherent(), "vtd1 cannot force snoop");
    assertTrue(topology.device("nic0").handle().enforcedCoherent());
    assertEquals(1, topology.device("dpaa0").handle().liodn());
    assertEquals(3, topology.device("dpaa0").handle().unitId());
    assertTrue(topology.failures().isEmpty());
  }

  private static int unitIndex(DeviceSettings d) {
    List<IommuUnitSettings> units = SETTINGS.topology().units();
    for (int i = 0; i < units.size(); i++) {
      if (units.get(i).name().equals(d.unit())) {
        return i;
      }
    }
    throw new AssertionError(d.unit());
  }

  @Test
  void createVmBacksItsMemoryAndDestroyVmReturnsEveryByte() {
    ActorRef<HostGuardian.Command> host = host();
    HostGuardian.VmCreated vm = created(host, 1, "nic0");
    assertEquals(GIB, vm.layout().bytes());
    assertEquals(List.of("nic0"), vm.devices().stream().map(d -> d.name()).toList());
    Topology topology = topology(host);
    assertEquals(GIB, memoryReport(topology).allocatedBytesByOwner().get(1));
    assertEquals(1, topology.device("nic0").assignedVmId());

    TestProbe<DestroyVmReply> probe = testKit.createTestProbe();
    host.tell(new HostGuardian.DestroyVm(1, probe.ref()));
    HostGuardian.VmDestroyed destroyed = assertInstanceOf(HostGuardian.VmDestroyed.class, probe.receiveMessage());

    assertEquals(GIB, destroyed.memoryReleasedBytes());
    assertTrue(destroyed.leaks().isEmpty());
    Topology after = topology(host);
    assertEquals(0L, memoryReport(after).allocatedBytesByOwner().getOrDefault(1, 0L));
    assertEquals(0, after.device("nic0").assignedVmId());
    assertTrue(after.vms().isEmpty());
  }

  @Test
  void unknownDevicesAndVmsAreRefusedWithEnoentAndChangeNothing() {
    ActorRef<HostGuardian.Command> host = host();
    created(host, 1, "nic0");
    Topology before = topology(host);

    assertRefused(Errno.ENOENT, createVm(host, 2, GIB, "nvme0", "no-such-nic"));
    TestProbe<DestroyVmReply> destroy = testKit.createTestProbe();
    host.tell(new HostGuardian.DestroyVm(9, destroy.ref()));
    assertRefused(Errno.ENOENT, destroy.receiveMessage());
    assertRefused(Errno.ENOENT, hotplug(host, "no-such-nic", false));
    assertRefused(Errno.ENOENT, hotplug(host, "no-such-nic", true));

    Topology after = topology(host);
    assertEquals(before.devices(), after.devices());
    assertEquals(before.vms(), after.vms());
    assertEquals(Map.of(1, GIB), vmOwners(memoryReport(after)));
  }

  @Test
  void aDeviceOrAGroupMemberHeldByAnotherVmIsRefusedWithEbusyAndChangesNothing() {
    ActorRef<HostGuardian.Command> host = host();
    created(host, 1, "nic0", "gpu0");
    Topology before = topology(host);

    assertRefused(Errno.EBUSY, createVm(host, 2, GIB, "nic0"));
    // gpu0-audio shares IOMMU group 3 with gpu0: the group has one owner.
    assertRefused(Errno.EBUSY, createVm(host, 2, GIB, "nvme0", "gpu0-audio"));
    assertRefused(Errno.EEXIST, createVm(host, 1, GIB, "nvme0"));
    assertRefused(Errno.EINVAL, createVm(host, 2, GIB, "nvme0", "nvme0"));

    Topology after = topology(host);
    assertEquals(before.devices(), after.devices());
    assertEquals(before.vms(), after.vms());
    assertEquals(Map.of(1, GIB), vmOwners(memoryReport(after)));
    assertInstanceOf(HostGuardian.VmCreated.class, createVm(host, 2, GIB, "nvme0"));
  }

  @Test
  void aVmTheHostCannotBackIsRefusedWithEnomemAndItsDevicesStayFree() {
    ActorRef<HostGuardian.Command> host = host();
    long tooMuch = SETTINGS.topology().hostMemoryBytes() * 2;

    assertRefused(Errno.ENOMEM, createVm(host, 1, tooMuch, "nic0"));

    Topology after = topology(host);
    assertEquals(0, after.device("nic0").assignedVmId());
    assertTrue(after.vms().isEmpty());
    assertInstanceOf(HostGuardian.VmCreated.class, createVm(host, 1, GIB, "nic0"));
  }

  @Test
  void unplugMakesTheOwningVmReleaseTheDeviceAndLaterDmaOnItCompletesAborted() {
    ActorRef<HostGuardian.Command> host = host();
    HostGuardian.VmCreated vm = created(host, 1, "nic0", "nvme0");

    HostGuardian.DeviceUnplugged unplugged =
        assertInstanceOf(HostGuardian.DeviceUnplugged.class, hotplug(host, "nic0", false));

    assertEquals(1, unplugged.formerVmId());
    VmActor.VmState state = assertInstanceOf(VmActor.VmState.class, ask(vm.vm(), VmActor.GetVmState::new));
    assertEquals(Map.of("nic0", true, "nvme0", false), state.devicesReleased());
    Topology topology = topology(host);
    assertEquals(Presence.ABSENT, topology.device("nic0").presence());
    assertEquals(0, topology.device("nic0").assignedVmId());
    // The guest can no longer program it...
    VmActor.VmReply viaVm =
        ask(vm.vm(), r -> new VmActor.RunDma("nic0", -1, new long[] {0x100000}, new int[] {64}, new int[] {Access.READ}, r));
    assertEquals(Errno.ENODEV, assertInstanceOf(VmActor.Refused.class, viaVm).errno());
    // ...and DMA the function still issues is aborted.
    TestProbe<DeviceActor.DmaCompleted> dma = testKit.createTestProbe();
    topology.device("nic0").handle().device()
        .tell(new DeviceActor.DmaBurst(-1, new long[] {0x100000}, new int[] {64}, new int[] {Access.READ}, 7, dma.ref()));
    assertEquals(DeviceActor.STATUS_ABORTED, dma.receiveMessage().status()[0]);
    assertRefused(Errno.ENODEV, hotplug(host, "nic0", false));
    assertRefused(Errno.ENODEV, createVm(host, 2, GIB, "nic0"));
  }

  @Test
  void replugMakesTheDeviceAssignableAgain() {
    ActorRef<HostGuardian.Command> host = host();
    created(host, 1, "nic0");
    assertInstanceOf(HostGuardian.DeviceUnplugged.class, hotplug(host, "nic0", false));

    assertInstanceOf(HostGuardian.DevicePlugged.class, hotplug(host, "nic0", true));

    assertRefused(Errno.EEXIST, hotplug(host, "nic0", true));
    assertEquals(Presence.PRESENT, topology(host).device("nic0").presence());
    HostGuardian.VmCreated vm2 = created(host, 2, "nic0");
    ActorRef<VmActor.Command> vm = vm2.vm();
    long iova = wire(vm, "nic0")[2];
    VmActor.DmaDone done =
        assertInstanceOf(
            VmActor.DmaDone.class,
            ask(vm, r -> new VmActor.RunDma("nic0", -1, new long[] {iova}, new int[] {64}, new int[] {Access.READ}, r)));
    assertEquals(DeviceActor.STATUS_OK, done.status()[0]);
  }

  @Test
  void unplugOfAnUnassignedDeviceQuiescesAndUnregistersIt() {
    ActorRef<HostGuardian.Command> host = host();

    HostGuardian.DeviceUnplugged unplugged =
        assertInstanceOf(HostGuardian.DeviceUnplugged.class, hotplug(host, "accel0", false));

    assertEquals(0, unplugged.formerVmId());
    assertEquals(Presence.ABSENT, topology(host).device("accel0").presence());
  }

  @Test
  void shutdownPowersEveryVmOffAndReportsNoLeaks() {
    ActorRef<HostGuardian.Command> host = host();
    created(host, 1, "nic0");
    created(host, 2, "nvme0", "nic1");

    HostGuardian.HostReport report = shutdown(host);

    assertTrue(report.clean(), () -> "leaks " + report.leaks() + " failures " + report.failures());
    assertEquals(List.of(1, 2), report.vms().stream().map(VmActor.VmShutDown::vmId).toList());
    assertEquals(0, report.memory().pinnedFrames());
    assertTrue(report.memory().allocatedBytesByOwner().values().stream().allMatch(b -> b == 0));
    assertEquals(4, report.units().size());
    assertEquals(3, report.msiBanks().size());
    assertRefused(Errno.EBUSY, createVm(host, 3, GIB, "nvme0"));
    assertEquals(report, shutdown(host), "a second shutdown gets the same report");
  }

  @Test
  void aDeviceActorThatThrowsIsStoppedRecordedAndMakesTheReportUnclean() {
    ActorRef<HostGuardian.Command> host =
        host(withNvme0(Behaviors.receive(DeviceActor.Command.class)
            .onMessage(
                DeviceActor.DmaBurst.class,
                m -> {
                  throw new IllegalStateException("ATC invariant broken");
                })
            .build()));
    HostGuardian.VmCreated vm = created(host, 1, "nvme0");
    LoggingTestKit.error(IllegalStateException.class)
        .withMessageContains("ATC invariant broken")
        .expect(
            testKit.system(),
            () -> {
              vm.vm().tell(new VmActor.RunDma("nvme0", -1, new long[] {0x100000}, new int[] {64}, new int[] {Access.READ}, testKit.<VmActor.VmReply>createTestProbe().ref()));
              return null;
            });

    TestProbe<Topology> topo = testKit.createTestProbe();
    topo.awaitAssert(
        () -> {
          host.tell(new HostGuardian.GetTopology(topo.ref()));
          Topology t = topo.receiveMessage();
          assertEquals(1, t.failures().size(), t.failures().toString());
          assertTrue(t.failures().get(0).contains("device-nvme0") && t.failures().get(0).contains("ATC invariant broken"), t.failures().get(0));
          return null;
        });
    HostGuardian.HostReport report = shutdown(host);
    assertFalse(report.clean());
    assertEquals(1, report.failures().size());
  }

  /** Opens an fd, binds and attaches {@code devices} to one IOAS, maps 2 MiB; returns fd, ioas, iova. */
  private static long[] wire(ActorRef<VmActor.Command> vm, String... devices) {
    int fd = assertInstanceOf(VmActor.FdOpened.class, ask(vm, VmActor.OpenFd::new)).fd();
    int ioas = assertInstanceOf(VmActor.IoasAllocated.class, ask(vm, r -> new VmActor.AllocIoas(fd, r))).ioasId();
    for (String d : devices) {
      assertInstanceOf(VmActor.DeviceBound.class, ask(vm, r -> new VmActor.BindDevice(fd, d, r)));
      assertInstanceOf(VmActor.DeviceAttached.class, ask(vm, r -> new VmActor.AttachDevice(fd, d, ioas, r)));
    }
    long iova =
        assertInstanceOf(VmActor.BufferMapped.class,
            ask(vm, r -> new VmActor.MapBuffer(fd, ioas, 0, 2L << 20, VmActor.AUTO_IOVA, Access.READ_WRITE, false, r))).iova();
    return new long[] {fd, ioas, iova};
  }

  private static VmActor.DmaDone write(ActorRef<VmActor.Command> vm, String device, long iova) {
    return assertInstanceOf(VmActor.DmaDone.class,
        ask(vm, r -> new VmActor.RunDma(device, -1, new long[] {iova}, new int[] {256}, new int[] {Access.WRITE}, r)));
  }

  @Test
  void shutdownWithFdsMappingsAndFaultsStillLiveTearsEverythingDownAndReportsNoLeak() {
    ActorRef<HostGuardian.Command> host = host();
    HostGuardian.VmCreated vm1 = created(host, 1, "nic0", "nvme0", "nic1");
    HostGuardian.VmCreated vm2 = created(host, 2, "nic2", "accel0");
    long[] w1 = wire(vm1.vm(), "nic0", "nvme0", "nic1");
    wire(vm2.vm(), "nic2", "accel0");
    assertEquals(DeviceActor.STATUS_OK, write(vm1.vm(), "nvme0", w1[2]).status()[0]);
    assertEquals(DeviceActor.STATUS_OK, write(vm1.vm(), "nic1", w1[2] + 0x1000).status()[0]);
    assertTrue(write(vm2.vm(), "accel0", 0x7000_0000L).status()[0] != DeviceActor.STATUS_OK);

    HostGuardian.HostReport report = shutdown(host);

    assertTrue(report.clean(), () -> "leaks " + report.leaks() + " failures " + report.failures());
    assertEquals(0, report.memory().pinnedFrames());
    assertEquals(Map.of(), vmOwners(report.memory()));
    assertEquals(2, report.memory().checks().get(io.iommulab.hardware.memory.DmaCheck.OK));
    report.units().forEach(u -> assertEquals(0, u.domains(), u.unitName()));
    assertEquals(List.of(1, 2), report.vms().stream().map(VmActor.VmShutDown::vmId).toList());
    assertEquals(1, report.vms().get(0).kvm().registrations(), "nic1 made vm 1 register non-coherent DMA");
    assertEquals(1, report.vms().get(0).kvm().unregistrations());
  }

  @Test
  void aDeviceThatCompletesDmaAfterItsUnmapReturnedIsAStaleViolationInTheReport() {
    // Planted: a function whose ATC is never invalidated would do exactly this.
    ActorRef<HostGuardian.Command> host =
        host(withNvme0(Behaviors.receive(DeviceActor.Command.class)
            .onMessage(
                DeviceActor.DmaBurst.class,
                m -> {
                  m.replyTo().tell(new DeviceActor.DmaCompleted(m.tag(), new byte[m.iovas().length], 0, 0, 0));
                  return Behaviors.same();
                })
            .onMessage(
                DeviceActor.AtcInvalidate.class,
                m -> {
                  m.replyTo().tell(new IommuUnitActor.AtcInvalidationAcked(0x18, m.token()));
                  return Behaviors.same();
                })
            .onAnyMessage(m -> Behaviors.same())
            .build()));
    HostGuardian.VmCreated vm = created(host, 1, "nvme0");
    long[] w = wire(vm.vm(), "nvme0");
    VmActor.DmaDone legal = write(vm.vm(), "nvme0", w[2]);
    assertInstanceOf(VmActor.BufferUnmapped.class, ask(vm.vm(), r -> new VmActor.UnmapBuffer((int) w[0], (int) w[1], w[2], 2L << 20, r)));

    VmActor.DmaDone stale = write(vm.vm(), "nvme0", w[2]);

    assertEquals(0, legal.staleViolations());
    assertEquals(1, stale.staleViolations());
    HostGuardian.HostReport report = shutdown(host);
    assertEquals(1, report.staleViolations());
    assertFalse(report.clean());
    StaleDmaOracle.StaleViolation v = report.staleViolationRecords().get(0);
    assertEquals(w[2], v.iova());
    assertEquals("nvme0", v.device());
    assertEquals(report.vms().get(0).oracle().recorded().get(0).seed(), v.seed());
  }

  @Test
  void unpluggingTheLastNonCoherentDeviceOfAVmTurnsItsWbinvdEmulationOff() {
    ActorRef<HostGuardian.Command> host = host();
    HostGuardian.VmCreated vm = created(host, 1, "nic0", "nic1");
    wire(vm.vm(), "nic0", "nic1");
    assertTrue(assertInstanceOf(VmActor.WbinvdHandled.class, ask(vm.vm(), VmActor.GuestWbinvd::new)).emulated());

    assertInstanceOf(HostGuardian.DeviceUnplugged.class, hotplug(host, "nic1", false));

    VmActor.WbinvdHandled after = assertInstanceOf(VmActor.WbinvdHandled.class, ask(vm.vm(), VmActor.GuestWbinvd::new));
    assertFalse(after.emulated());
    assertEquals(1, after.kvm().registrations());
    assertEquals(1, after.kvm().unregistrations());
    assertEquals(2, after.kvm().wbinvdExits());
    assertEquals(1, after.kvm().wbinvdEmulated());
    VmActor.VmState state = assertInstanceOf(VmActor.VmState.class, ask(vm.vm(), VmActor.GetVmState::new));
    assertEquals(List.of("nic0"), state.devicesBound());
  }

  @Test
  void anUnplugThatArrivesWhileTheVmIsMappingWaitsForTheMapAndLeavesNothingBehind() {
    ActorRef<HostGuardian.Command> host = host();
    HostGuardian.VmCreated vm = created(host, 1, "nic0", "nvme0");
    long[] w = wire(vm.vm(), "nvme0", "nic0");
    TestProbe<VmActor.VmReply> mapping = testKit.createTestProbe();
    TestProbe<HotplugReply> unplug = testKit.createTestProbe();

    vm.vm().tell(new VmActor.MapBuffer((int) w[0], (int) w[1], 64L << 20, 8L << 20, VmActor.AUTO_IOVA, Access.READ_WRITE, false, mapping.ref()));
    host.tell(new HostGuardian.UnplugDevice("nvme0", unplug.ref()));

    long iova = assertInstanceOf(VmActor.BufferMapped.class, mapping.receiveMessage()).iova();
    assertEquals(new HostGuardian.DeviceUnplugged("nvme0", 1), unplug.receiveMessage());
    VmActor.VmState state = assertInstanceOf(VmActor.VmState.class, ask(vm.vm(), VmActor.GetVmState::new));
    assertEquals(List.of("nic0"), state.devicesBound());
    assertEquals(2, state.areas(), "the buffers stay in the IOAS for the devices still attached");
    assertEquals(DeviceActor.STATUS_OK, write(vm.vm(), "nic0", iova).status()[0]);
    TestProbe<DeviceActor.DmaCompleted> dma = testKit.createTestProbe();
    topology(host).device("nvme0").handle().device()
        .tell(new DeviceActor.DmaBurst(-1, new long[] {iova}, new int[] {64}, new int[] {Access.READ}, 9, dma.ref()));
    assertEquals(DeviceActor.STATUS_ABORTED, dma.receiveMessage().status()[0]);

    HostGuardian.HostReport r = shutdown(host);
    assertTrue(r.clean(), () -> r.leaks() + " " + r.failures());
  }
}
