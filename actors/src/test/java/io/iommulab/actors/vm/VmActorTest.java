package io.iommulab.actors.vm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.memory.GuestMemory;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import io.iommulab.hardware.memory.HostMemory;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class VmActorTest {
  static final ActorTestKit testKit = ActorTestKit.create();
  static final long MIB = 1L << 20;
  static final int NO_PASID = IommuUnitActor.NO_PASID;

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  /** A VM with its collaborators as probes: memory, one unit, one device per name. */
  static final class Rig {
    final TestProbe<HostMemoryActor.Command> memory = testKit.createTestProbe();
    final TestProbe<IommuUnitActor.Command> unit = testKit.createTestProbe();
    final Map<String, TestProbe<DeviceActor.Command>> devices;
    final TestProbe<VmActor.StartReply> creator = testKit.createTestProbe();
    final ManualClock clock = new ManualClock();
    final ActorRef<VmActor.Command> vm;
    final int vmId;
    final GuestMemoryLayout layout;

    Rig(int vmId, String... names) {
      this.vmId = vmId;
      java.util.LinkedHashMap<String, TestProbe<DeviceActor.Command>> probes = new java.util.LinkedHashMap<>();
      List<DeviceHandle> handles = new java.util.ArrayList<>();
      int rid = 0x10;
      for (String name : names) {
        TestProbe<DeviceActor.Command> probe = testKit.createTestProbe();
        probes.put(name, probe);
        handles.add(new DeviceHandle(name, rid++, -1, rid, 0, UnitKind.VTD, !name.equals("nic1"), 20, true, false, false, 1, unit.ref(), probe.ref()));
      }
      this.devices = probes;
      this.layout = GuestMemory.create(vmId, 64 * MIB, PageSize.SIZE_2M, new HostMemory(1L << 30, FaultInjector.NONE)).value().layout();
      this.vm = testKit.spawn(VmActor.create(VmSpec.of(vmId, 64 * MIB, PageSize.SIZE_2M, 99), handles, memory.ref(), clock, creator.ref(), io.iommulab.config.UapiSettings.defaults(), io.iommulab.hardware.FaultInjector.NONE));
    }

    /** Answers the memory request and waits for Started. */
    Rig started() {
      HostMemoryActor.AllocateGuestMemory req = memory.expectMessageClass(HostMemoryActor.AllocateGuestMemory.class);
      assertEquals(vmId, req.vmId());
      assertEquals(64 * MIB, req.bytes());
      req.replyTo().tell(new HostMemoryActor.GuestMemoryAllocated(layout));
      assertEquals(new VmActor.Started(vmId, layout), creator.receiveMessage());
      return this;
    }

    VmActor.VmReply ask(java.util.function.Function<ActorRef<VmActor.VmReply>, VmActor.Command> cmd) {
      TestProbe<VmActor.VmReply> probe = testKit.createTestProbe();
      vm.tell(cmd.apply(probe.ref()));
      return probe.receiveMessage();
    }

    VmActor.VmState state() {
      return assertInstanceOf(VmActor.VmState.class, ask(VmActor.GetVmState::new));
    }
  }

  private static VmActor.RunDma read(String device, long iova, ActorRef<VmActor.VmReply> replyTo) {
    return new VmActor.RunDma(device, NO_PASID, new long[] {iova}, new int[] {64}, new int[] {Access.READ}, replyTo);
  }

  private static void assertRefused(Errno errno, VmActor.VmReply reply) {
    VmActor.Refused refused = assertInstanceOf(VmActor.Refused.class, reply);
    assertEquals(errno, refused.errno(), refused.message());
  }

  @Test
  void theVmStartsOnceItsMemoryIsAllocatedAndServesWhatWasSentMeanwhile() {
    Rig rig = new Rig(4, "nic0");
    TestProbe<VmActor.VmReply> early = testKit.createTestProbe();
    rig.vm.tell(new VmActor.GetVmState(early.ref()));

    rig.started();

    VmActor.VmState state = assertInstanceOf(VmActor.VmState.class, early.receiveMessage());
    assertEquals(4, state.vmId());
    assertEquals(64 * MIB, state.memoryBytes());
    assertEquals(rig.layout.userVaBase(), state.userVaBase());
    assertEquals(Map.of("nic0", false), state.devicesReleased());
  }

  @Test
  void aVmTheHostCannotBackTellsItsCreatorAndRefusesWhatWasSentMeanwhile() {
    Rig rig = new Rig(5, "nic0");
    TestProbe<VmActor.VmReply> early = testKit.createTestProbe();
    rig.vm.tell(new VmActor.GetVmState(early.ref()));

    rig.memory.expectMessageClass(HostMemoryActor.AllocateGuestMemory.class)
        .replyTo()
        .tell(new HostMemoryActor.MemoryRefused(Errno.ENOMEM, "host.frames: out of memory"));

    VmActor.StartRefused refused = assertInstanceOf(VmActor.StartRefused.class, rig.creator.receiveMessage());
    assertEquals(Errno.ENOMEM, refused.errno());
    assertRefused(Errno.ENODEV, early.receiveMessage());
    rig.creator.expectTerminated(rig.vm);
  }

  @Test
  void aBurstIsProgrammedIntoTheDeviceAndItsCompletionComesBack() {
    Rig rig = new Rig(1, "nic0").started();
    TestProbe<VmActor.VmReply> caller = testKit.createTestProbe();
    rig.vm.tell(
        new VmActor.RunDma("nic0", 3, new long[] {0x10_0000, 0x20_0000}, new int[] {64, 128},
            new int[] {Access.READ, Access.WRITE}, caller.ref()));

    DeviceActor.DmaBurst burst = rig.devices.get("nic0").expectMessageClass(DeviceActor.DmaBurst.class);
    assertEquals(3, burst.pasid());
    assertArrayEquals(new long[] {0x10_0000, 0x20_0000}, burst.iovas());
    assertArrayEquals(new int[] {Access.READ, Access.WRITE}, burst.access());
    burst.replyTo().tell(new DeviceActor.DmaCompleted(burst.tag(), new byte[] {0, 6}, 420, 0, 1));

    VmActor.DmaDone done = assertInstanceOf(VmActor.DmaDone.class, caller.receiveMessage());
    assertArrayEquals(new byte[] {0, 6}, done.status());
    assertEquals(1, done.completed());
    assertEquals(420, done.modeledLatencyNs());
    assertEquals(0, done.staleViolations());
    VmActor.VmState state = rig.state();
    assertEquals(1, state.burstsIssued());
    assertEquals(1, state.burstsCompleted());
    assertEquals(0, state.burstsInFlight());
  }

  @Test
  void dmaOnADeviceTheVmDoesNotHaveOrWithMismatchedArraysIsRefusedAndNothingReachesADevice() {
    Rig rig = new Rig(1, "nic0").started();

    assertRefused(Errno.ENOENT, rig.ask(r -> read("nvme0", 0x10_0000, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.RunDma("nic0", NO_PASID, new long[] {1, 2}, new int[] {64}, new int[] {1, 1}, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.RunDma("nic0", NO_PASID, new long[0], new int[0], new int[0], r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.RunDma("nic0", NO_PASID, new long[] {1}, new int[] {0}, new int[] {1}, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.RunDma("nic0", NO_PASID, new long[] {0xff0}, new int[] {32}, new int[] {1}, r)));
    assertRefused(Errno.EINVAL, rig.ask(r -> new VmActor.RunDma("nic0", NO_PASID, new long[] {0}, new int[] {32}, new int[] {0x10}, r)));

    assertEquals(0, rig.state().burstsIssued());
    rig.vm.tell(read("nic0", 0x4000, testKit.<VmActor.VmReply>createTestProbe().ref()));
    assertEquals(0x4000, rig.devices.get("nic0").expectMessageClass(DeviceActor.DmaBurst.class).iovas()[0],
        "the first burst the device sees is the valid one");
  }

  @Test
  void aReleasedDeviceCanNoLongerBeProgrammed() {
    Rig rig = new Rig(1, "nic0", "nvme0").started();

    assertEquals(new VmActor.DeviceReleased(1, "nic0"), rig.ask(r -> new VmActor.ReleaseDevice("nic0", r)));

    assertRefused(Errno.ENODEV, rig.ask(r -> read("nic0", 0x10_0000, r)));
    assertRefused(Errno.ENODEV, rig.ask(r -> new VmActor.ReleaseDevice("nic0", r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.ReleaseDevice("gpu0", r)));
    assertEquals(Map.of("nic0", true, "nvme0", false), rig.state().devicesReleased());
  }

  @Test
  void pasidsComeFromTheVmsOwnSet() {
    Rig rig = new Rig(1, "nic0").started();
    Rig other = new Rig(2, "nic2").started();

    assertEquals(new VmActor.PasidAllocated(1), rig.ask(VmActor.AllocPasid::new));
    assertEquals(new VmActor.PasidAllocated(2), rig.ask(VmActor.AllocPasid::new));
    assertEquals(new VmActor.PasidAllocated(1), other.ask(VmActor.AllocPasid::new), "per VM, not host-wide");
    assertEquals(new VmActor.PasidFreed(1), rig.ask(r -> new VmActor.FreePasid(1, r)));
    assertRefused(Errno.ENOENT, rig.ask(r -> new VmActor.FreePasid(1, r)));
    assertEquals(1, rig.state().pasidsAllocated());
  }

  @Test
  void aGuestWbinvdIsSkippedWhileNoNonCoherentDeviceIsBound() {
    Rig rig = new Rig(1, "nic1").started();

    VmActor.WbinvdHandled handled = assertInstanceOf(VmActor.WbinvdHandled.class, rig.ask(VmActor.GuestWbinvd::new));

    assertFalse(handled.emulated());
    assertEquals(1, handled.kvm().wbinvdExits());
    assertEquals(0, handled.kvm().wbinvdEmulated());
  }

  @Test
  void shutdownReturnsTheMemoryAnswersBurstsInFlightAndStops() {
    Rig rig = new Rig(1, "nic0").started();
    TestProbe<VmActor.VmReply> dmaCaller = testKit.createTestProbe();
    rig.vm.tell(read("nic0", 0x10_0000, dmaCaller.ref()));
    rig.devices.get("nic0").expectMessageClass(DeviceActor.DmaBurst.class);
    TestProbe<VmActor.VmReply> caller = testKit.createTestProbe();

    rig.vm.tell(new VmActor.Shutdown(caller.ref()));

    HostMemoryActor.ReleaseGuestMemory release = rig.memory.expectMessageClass(HostMemoryActor.ReleaseGuestMemory.class);
    assertEquals(1, release.vmId());
    assertRefused(Errno.ENODEV, rig.ask(VmActor.GetVmState::new));
    release.replyTo().tell(new HostMemoryActor.GuestMemoryReleased(1, 64 * MIB));
    VmActor.VmShutDown down = assertInstanceOf(VmActor.VmShutDown.class, caller.receiveMessage());
    assertEquals(64 * MIB, down.memoryReleasedBytes());
    assertTrue(down.leaks().isEmpty());
    assertRefused(Errno.ENODEV, dmaCaller.receiveMessage());
    caller.expectTerminated(rig.vm);
  }

  @Test
  void memoryTheHostRefusesToTakeBackIsReportedAsALeak() {
    Rig rig = new Rig(1, "nic0").started();
    TestProbe<VmActor.VmReply> caller = testKit.createTestProbe();
    rig.vm.tell(new VmActor.Shutdown(caller.ref()));

    rig.memory.expectMessageClass(HostMemoryActor.ReleaseGuestMemory.class)
        .replyTo()
        .tell(new HostMemoryActor.MemoryRefused(Errno.EBUSY, "vm 1: 3 frames pinned"));

    VmActor.VmShutDown down = assertInstanceOf(VmActor.VmShutDown.class, caller.receiveMessage());
    assertEquals(0, down.memoryReleasedBytes());
    assertEquals(1, down.leaks().size());
    assertTrue(down.leaks().get(0).contains("3 frames pinned"));
  }
}
