package io.iommulab.actors.vm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.fault.PageRequest;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Predicate;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The VM's guest driver over its real fd actors, with a unit that says yes (or no, where a test
 * says so) and host memory on the real models, so pins are checked.
 */
class VmGuestDriverTest {
  static final ActorTestKit testKit = ActorTestKit.create();
  static final long MIB = 1L << 20;
  static final int NO_PASID = IommuUnitActor.NO_PASID;
  static final long SEED = 4242;
  static final Duration WAIT = Duration.ofSeconds(3);

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  /** A device that completes every access: it ignores the IOMMU, as a broken one would let it. */
  static Behavior<DeviceActor.Command> alwaysCompletes() {
    return Behaviors.receive(DeviceActor.Command.class)
        .onMessage(
            DeviceActor.DmaBurst.class,
            m -> {
              m.replyTo().tell(new DeviceActor.DmaCompleted(m.tag(), new byte[m.iovas().length], 10, 0, 0));
              return Behaviors.same();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  static final class Rig {
    final TestProbe<IommuUnitActor.Command> unitLog = testKit.createTestProbe();
    final TestProbe<HostMemoryActor.PinsChanged> pins = testKit.createTestProbe();
    final TestProbe<DeviceActor.Command> deviceProbe = testKit.createTestProbe();
    final ActorRef<IommuUnitActor.Command> unit;
    final ActorRef<HostMemoryActor.Command> memory;
    final ActorRef<VmActor.Command> vm;
    final GuestMemoryLayout layout;
    final ManualClock clock = new ManualClock();
    final Map<String, DeviceHandle> handles = new LinkedHashMap<>();

    /**
     * nic0 (PRI, a probe), nic1 (behind a unit that cannot force snoop), nvme0 (always
     * completes).
     */
    Rig(Predicate<IommuUnitActor.Command> refuse) {
      unit = testKit.spawn(FakeUnit.create(unitLog.ref(), refuse, Errno.ENOMEM));
      memory = testKit.spawn(FakeMemory.create(pins.ref()));
      handles.put("nic0", handle("nic0", 0x10, true, true, deviceProbe.ref()));
      handles.put("nic1", handle("nic1", FakeUnit.NON_COHERENT_RID, false, false, testKit.spawn(alwaysCompletes())));
      handles.put("nvme0", handle("nvme0", 0x18, true, false, testKit.spawn(alwaysCompletes())));
      TestProbe<VmActor.StartReply> creator = testKit.createTestProbe();
      vm = testKit.spawn(
          VmActor.create(VmSpec.of(1, 64 * MIB, PageSize.SIZE_2M, SEED), new ArrayList<>(handles.values()), memory, clock,
              creator.ref(), UapiSettings.defaults(), FaultInjector.NONE));
      layout = assertInstanceOf(VmActor.Started.class, creator.receiveMessage()).layout();
    }

    Rig() {
      this(c -> false);
    }

    private DeviceHandle handle(String name, int rid, boolean coherent, boolean pri, ActorRef<DeviceActor.Command> device) {
      return new DeviceHandle(name, rid, -1, rid, 0, UnitKind.VTD, coherent, 20, true, pri, false, 1, unit, device);
    }

    VmActor.VmReply ask(Function<ActorRef<VmActor.VmReply>, VmActor.Command> cmd) {
      TestProbe<VmActor.VmReply> probe = testKit.createTestProbe();
      vm.tell(cmd.apply(probe.ref()));
      return probe.receiveMessage();
    }

    <T extends VmActor.VmReply> T ok(Class<T> type, Function<ActorRef<VmActor.VmReply>, VmActor.Command> cmd) {
      VmActor.VmReply reply = ask(cmd);
      if (reply instanceof VmActor.Refused r) {
        throw new AssertionError("refused: " + r);
      }
      return type.cast(reply);
    }

    int openFd() {
      return ok(VmActor.FdOpened.class, VmActor.OpenFd::new).fd();
    }

    int ioas(int fd) {
      return ok(VmActor.IoasAllocated.class, r -> new VmActor.AllocIoas(fd, r)).ioasId();
    }

    void bind(int fd, String device) {
      ok(VmActor.DeviceBound.class, r -> new VmActor.BindDevice(fd, device, r));
    }

    VmActor.DeviceAttached attach(int fd, String device, int ioas) {
      return ok(VmActor.DeviceAttached.class, r -> new VmActor.AttachDevice(fd, device, ioas, r));
    }

    long map(int fd, int ioas, long gpa, long length) {
      return ok(VmActor.BufferMapped.class, r -> new VmActor.MapBuffer(fd, ioas, gpa, length, VmActor.AUTO_IOVA, Access.READ_WRITE, false, r)).iova();
    }

    VmActor.BufferUnmapped unmap(int fd, int ioas, long iova, long length) {
      return ok(VmActor.BufferUnmapped.class, r -> new VmActor.UnmapBuffer(fd, ioas, iova, length, r));
    }

    VmActor.VmState state() {
      return ok(VmActor.VmState.class, VmActor.GetVmState::new);
    }

    boolean wbinvd() {
      return ok(VmActor.WbinvdHandled.class, VmActor.GuestWbinvd::new).emulated();
    }

    long pinnedFrames() {
      TestProbe<HostMemoryActor.MemoryReport> report = testKit.createTestProbe();
      memory.tell(new HostMemoryActor.GetReport(report.ref()));
      return report.receiveMessage().pinnedFrames();
    }

    /** Skips what the unit saw until a command of {@code type}, which it returns. */
    <T extends IommuUnitActor.Command> T unitSees(Class<T> type, Predicate<T> which) {
      List<IommuUnitActor.Command> seen =
          unitLog.fishForMessage(WAIT, c -> type.isInstance(c) && which.test(type.cast(c))
              ? FishingOutcomes.complete() : FishingOutcomes.continueAndIgnore());
      return type.cast(seen.get(seen.size() - 1));
    }
  }

  private static void assertRefused(Errno errno, VmActor.VmReply reply) {
    VmActor.Refused refused = assertInstanceOf(VmActor.Refused.class, reply);
    assertEquals(errno, refused.errno(), refused.message());
  }

  @Test
  void openingAnFdSpawnsItsFdActorAndHandsOutItsRef() {
    Rig rig = new Rig();

    VmActor.FdOpened opened = rig.ok(VmActor.FdOpened.class, VmActor.OpenFd::new);

    assertNotNull(opened.ref());
    assertEquals(1, rig.state().fds());
    assertEquals(new VmActor.FdClosed(opened.fd(), 0, 0, List.of()), rig.ask(r -> new VmActor.CloseFd(opened.fd(), r)));
    assertRefused(Errno.EBADF, rig.ask(r -> new VmActor.AllocIoas(opened.fd(), r)));
  }

  @Test
  void bindingADeviceBehindANonSnoopingUnitSwitchesWbinvdEmulationOnAndUnbindingItSwitchesItOff() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    rig.bind(fd, "nic0");
    assertFalse(rig.wbinvd(), "a coherent device needs no WBINVD emulation");

    rig.bind(fd, "nic1");
    assertTrue(rig.wbinvd(), "the fd reported nic1's non-coherent DMA");
    assertTrue(rig.wbinvd());
    rig.ok(VmActor.DeviceUnbound.class, r -> new VmActor.UnbindDevice(fd, "nic1", r));
    assertFalse(rig.wbinvd());

    KvmVfio.Snapshot kvm = rig.state().kvm();
    assertEquals(1, kvm.registrations());
    assertEquals(1, kvm.unregistrations());
    assertEquals(4, kvm.wbinvdExits());
    assertEquals(2, kvm.wbinvdEmulated());
    assertEquals(1, kvm.files(), "nic0's file stays");
  }

  @Test
  void mapAndUnmapGoThroughTheFdWithPinsAroundThemAndTheIovaReturnsToTheAllocator() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic1");
    rig.attach(fd, "nic1", ioas);

    long iova = rig.map(fd, ioas, 4 * MIB, 2 * MIB);

    assertEquals(0, iova % (2 * MIB), "a 2 MiB buffer gets a 2 MiB aligned IOVA");
    HostMemoryActor.PinsChanged pin = rig.pins.receiveMessage();
    assertTrue(pin.pinned());
    assertEquals(rig.layout.userVaBase() + 4 * MIB, pin.userVa());
    IommuUnitActor.MapRange map = rig.unitSees(IommuUnitActor.MapRange.class, m -> m.iova() == iova);
    assertEquals(rig.layout.gpaToHpa(4 * MIB), map.hpas()[0]);
    assertEquals(2 * MIB, rig.state().mappedBytes());

    rig.clock.advance(1000);
    VmActor.BufferUnmapped unmapped = rig.unmap(fd, ioas, iova, 2 * MIB);

    assertEquals(new VmActor.BufferUnmapped(iova, 2 * MIB, 1000, unmapped.modeledLatencyNs()), unmapped);
    assertTrue(unmapped.modeledLatencyNs() > 0, "the unit's modeled unmap charge is passed on to the caller");
    rig.unitSees(IommuUnitActor.UnmapRange.class, u -> u.iova() == iova);
    assertFalse(rig.pins.receiveMessage().pinned());
    assertEquals(0, rig.pinnedFrames());
    VmActor.VmState state = rig.state();
    assertEquals(0, state.areas());
    assertEquals(0, state.iovaBytesAllocated());
  }

  @Test
  void aMapTheUnitRefusesIsUndoneByTheFdAndChangesNothing() {
    Rig rig = new Rig(c -> c instanceof IommuUnitActor.MapRange);
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic1");
    rig.attach(fd, "nic1", ioas);
    VmActor.VmState before = rig.state();

    assertRefused(Errno.ENOMEM,
        rig.ask(r -> new VmActor.MapBuffer(fd, ioas, 0, 2 * MIB, VmActor.AUTO_IOVA, Access.READ, false, r)));

    assertEquals(before, rig.state());
    assertEquals(0, rig.pinnedFrames());
  }

  @Test
  void guestMistakesAreRefusedWithTheirErrnoAndChangeNothing() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic1");
    rig.attach(fd, "nic1", ioas);
    long iova = rig.map(fd, ioas, 0, 2 * MIB);
    VmActor.VmState before = rig.state();

    assertRefused(Errno.EBADF, rig.ask(r -> new VmActor.MapBuffer(99, ioas, 0, 4096, VmActor.AUTO_IOVA, Access.READ, false, r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.MapBuffer(fd, 77, 0, 4096, VmActor.AUTO_IOVA, Access.READ, false, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.MapBuffer(fd, ioas, 0, 100, VmActor.AUTO_IOVA, Access.READ, false, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.MapBuffer(fd, ioas, 0, 4096, VmActor.AUTO_IOVA, 0, false, r)));
    assertRefused(Errno.EFAULT, rig.ask(r -> new VmActor.MapBuffer(fd, ioas, 63 * MIB, 2 * MIB, VmActor.AUTO_IOVA, Access.READ, false, r)));
    assertRefused(Errno.EEXIST, rig.ask(r -> new VmActor.MapBuffer(fd, ioas, 0, 4096, iova + 4096, Access.READ, false, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.MapBuffer(fd, ioas, 0, 4096, 0xFEE0_0000L, Access.READ, false, r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.UnmapBuffer(fd, ioas, iova, MIB, r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.UnmapBuffer(fd, ioas, iova + 4 * MIB, MIB, r)));
    assertRefused(Errno.EBUSY, rig.ask(r -> new VmActor.AttachDevice(fd, "nic1", ioas, r)));
    assertRefused(Errno.EBUSY, rig.ask(r -> new VmActor.BindDevice(fd, "nic1", r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.BindDevice(fd, "gpu0", r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.DetachDevice(fd, "nic0", r)));

    assertEquals(before, rig.state());
    assertEquals(2 * MIB / 4096, rig.pinnedFrames());
  }

  @Test
  void aDmaThatCompletesAfterItsUnmapReturnedIsAStaleViolationRecordedWithTheSeed() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nvme0");
    rig.attach(fd, "nvme0", ioas);
    long iova = rig.map(fd, ioas, 0, 64 * 1024);
    VmActor.DmaDone legal =
        rig.ok(VmActor.DmaDone.class, r -> new VmActor.RunDma("nvme0", NO_PASID, new long[] {iova}, new int[] {512}, new int[] {Access.WRITE}, r));
    assertEquals(0, legal.staleViolations());
    rig.unmap(fd, ioas, iova, 64 * 1024);

    // nvme0 ignores the IOMMU: the access after the unmap completes, which strict unmap forbids.
    VmActor.DmaDone stale =
        rig.ok(VmActor.DmaDone.class, r -> new VmActor.RunDma("nvme0", NO_PASID, new long[] {iova + 4096, 0x7000_0000L}, new int[] {512, 64}, new int[] {Access.WRITE, Access.READ}, r));

    assertArrayEquals(new int[] {0}, stale.staleAtIssue());
    assertEquals(1, stale.staleViolations());
    StaleDmaOracle.Report oracle = rig.state().oracle();
    assertEquals(1, oracle.violations());
    StaleDmaOracle.StaleViolation v = oracle.recorded().get(0);
    assertEquals(SEED, v.seed());
    assertEquals("nvme0", v.device());
    assertEquals(iova + 4096, v.iova());
    assertTrue(v.events().get(0).what().startsWith("unmap [0x" + Long.toHexString(iova)), v.events().toString());
    assertTrue(v.events().get(1).seq() < v.events().get(2).seq());
  }

  @Test
  void aBurstIssuedBeforeAnUnmapThatCompletesAfterItIsLegal() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic0");
    rig.attach(fd, "nic0", ioas);
    long iova = rig.map(fd, ioas, 0, 64 * 1024);
    TestProbe<VmActor.VmReply> caller = testKit.createTestProbe();
    rig.vm.tell(new VmActor.RunDma("nic0", NO_PASID, new long[] {iova}, new int[] {512}, new int[] {Access.WRITE}, caller.ref()));
    DeviceActor.DmaBurst burst = rig.deviceProbe.expectMessageClass(DeviceActor.DmaBurst.class);

    rig.unmap(fd, ioas, iova, 64 * 1024);
    burst.replyTo().tell(new DeviceActor.DmaCompleted(burst.tag(), new byte[] {DeviceActor.STATUS_OK}, 10, 0, 0));

    VmActor.DmaDone done = assertInstanceOf(VmActor.DmaDone.class, caller.receiveMessage());
    assertEquals(0, done.staleViolations());
    assertEquals(0, done.staleAtIssue().length);
    assertEquals(0, rig.state().oracle().violations());
  }

  @Test
  void releasingADeviceMakesItsFdDetachAndUnbindItAndItsKvmFileGo() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic1");
    rig.attach(fd, "nic1", ioas);
    rig.map(fd, ioas, 0, 2 * MIB);

    assertEquals(new VmActor.DeviceReleased(1, "nic1"), rig.ask(r -> new VmActor.ReleaseDevice("nic1", r)));

    rig.unitSees(IommuUnitActor.Detach.class, d -> d.rid() == FakeUnit.NON_COHERENT_RID);
    rig.unitSees(IommuUnitActor.ReleaseDmaOwner.class, d -> d.rid() == FakeUnit.NON_COHERENT_RID);
    VmActor.VmState state = rig.state();
    assertTrue(state.devicesReleased().get("nic1"));
    assertTrue(state.devicesBound().isEmpty());
    assertFalse(state.kvm().noncoherent(), "the last non-coherent file left the KVM VFIO device");
    assertEquals(1, state.areas(), "the buffer stays mapped in the IOAS");
    assertRefused(Errno.ENODEV, rig.ask(r -> new VmActor.RunDma("nic1", NO_PASID, new long[] {0}, new int[] {4}, new int[] {1}, r)));
  }

  @Test
  void pageRequestsReachTheVmThroughItsFdsFaultQueueAndAreAnsweredByCookie() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic0");
    rig.attach(fd, "nic0", ioas);
    ActorRef<IommuUnitActor.FaultEvent> sink = rig.unitSees(IommuUnitActor.Attach.class, a -> a.rid() == 0x10).faultSink();
    long iova =
        rig.ok(VmActor.BufferMapped.class, r -> new VmActor.MapBuffer(fd, ioas, 8 * MIB, MIB, VmActor.AUTO_IOVA, Access.READ_WRITE, true, r)).iova();

    sink.tell(new IommuUnitActor.PageRequested(new PageRequest(0, 0x10, NO_PASID, 5, iova + 0x3000, Access.WRITE, false, 0)));
    sink.tell(new IommuUnitActor.PageRequested(new PageRequest(0, 0x10, NO_PASID, 5, iova + 0x5000, Access.WRITE, true, 0)));
    sink.tell(new IommuUnitActor.PageRequested(new PageRequest(0, 0x10, NO_PASID, 6, 0x7_0000_0000L, Access.READ, true, 0)));

    assertEquals(
        new IommuUnitActor.RespondPageRequest(0x10, NO_PASID, 5, IommuUnitActor.PageResponseCode.SUCCESS, 0L),
        rig.unitSees(IommuUnitActor.RespondPageRequest.class, p -> p.groupId() == 5));
    assertEquals(
        new IommuUnitActor.RespondPageRequest(0x10, NO_PASID, 6, IommuUnitActor.PageResponseCode.INVALID, 0L),
        rig.unitSees(IommuUnitActor.RespondPageRequest.class, p -> p.groupId() == 6));
    VmActor.VmState state = rig.state();
    assertEquals(2, state.pageRequestsResolved());
    assertEquals(1, state.pageRequestsInvalid());
    assertEquals(2, rig.pinnedFrames(), "the two resolved pages are pinned, nothing else of the buffer");
    rig.unmap(fd, ioas, iova, MIB);
    assertEquals(0, rig.pinnedFrames());
  }

  @Test
  void shutdownClosesEveryFdUnpinsEverythingAndReturnsTheMemory() {
    Rig rig = new Rig();
    int fd = rig.openFd();
    int ioas = rig.ioas(fd);
    rig.bind(fd, "nic0");
    rig.bind(fd, "nic1");
    rig.attach(fd, "nic0", ioas);
    rig.map(fd, ioas, 0, 2 * MIB);
    rig.map(fd, ioas, 2 * MIB, 4096);
    rig.openFd();

    VmActor.VmShutDown down = rig.ok(VmActor.VmShutDown.class, VmActor.Shutdown::new);

    assertEquals(64 * MIB, down.memoryReleasedBytes(), "released: so no frame was left pinned");
    assertTrue(down.leaks().isEmpty(), down.leaks().toString());
    assertTrue(down.failures().isEmpty(), down.failures().toString());
    assertFalse(down.kvm().noncoherent());
    assertEquals(0, rig.pinnedFrames());
  }

  @Test
  void stageOneWritesGoToTheDevicesUnitAsTheGuestWroteThemAndBadOnesAreRefusedFirst() {
    Rig rig = new Rig();

    VmActor.Stage1Written written =
        rig.ok(VmActor.Stage1Written.class, r -> new VmActor.WriteStage1("nic0", 7, 0x4000_0000L, 8 * MIB, 2 * MIB, Access.READ_WRITE, r));

    assertEquals(new VmActor.Stage1Written(7, 0x4000_0000L, 2 * MIB), written);
    IommuUnitActor.Stage1Map map = (IommuUnitActor.Stage1Map) rig.unitLog.receiveMessage();
    assertEquals(List.of(7L, 0x4000_0000L, 8 * MIB, 2 * MIB, (long) Access.READ_WRITE),
        List.of((long) map.nestedDomainId(), map.iova(), map.gpa(), map.length(), (long) map.prot()));
    assertRefused(Errno.EFAULT, rig.ask(r -> new VmActor.WriteStage1("nic0", 7, 0, 63 * MIB, 2 * MIB, Access.READ, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.WriteStage1("nic0", 7, 0x100, 0, 4096, Access.READ, r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.WriteStage1("gpu0", 7, 0, 0, 4096, Access.READ, r)));
    rig.ok(VmActor.Stage1Written.class, r -> new VmActor.ClearStage1("nic0", 7, 0x4000_0000L, 2 * MIB, r));
    assertEquals(IommuUnitActor.Stage1Unmap.class, rig.unitLog.receiveMessage().getClass(), "refusals never reached the unit");
  }
}
