package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.IommulabSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import java.util.List;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Every message of a host scenario — guardian, VMs and the hardware actors they drive — goes
 * through jackson-cbor before delivery, as it would between the nodes of a sharded cluster.
 */
class HostMessagesSerializeTest {
  static final ActorTestKit testKit =
      ActorTestKit.create(
          ConfigFactory.parseString(
                  "pekko.actor.serialize-messages = on\n"
                      + "pekko.actor.no-serialization-verification-needed-class-prefix = []\n")
              .withFallback(ConfigFactory.load("application-test")));

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static <R> R ask(ActorRef<VmActor.Command> vm, Function<ActorRef<VmActor.VmReply>, VmActor.Command> cmd, Class<R> type) {
    TestProbe<VmActor.VmReply> probe = testKit.createTestProbe();
    vm.tell(cmd.apply(probe.ref()));
    return assertInstanceOf(type, probe.receiveMessage());
  }

  @Test
  void aHostScenarioRoundTripsEveryMessageThroughJacksonCbor() {
    assertTrue(testKit.system().settings().config().getBoolean("pekko.actor.serialize-messages"));
    ActorRef<HostGuardian.Command> host =
        testKit.spawn(HostGuardian.create(IommulabSettings.defaults(), new ManualClock(), 3, FaultInjector.NONE));
    TestProbe<HostGuardian.CreateVmReply> created = testKit.createTestProbe();
    host.tell(new HostGuardian.CreateVm(1, 1L << 30, PageSize.SIZE_2M, List.of("nic0", "nic1", "nic2"), "web", created.ref()));
    ActorRef<VmActor.Command> vm = assertInstanceOf(HostGuardian.VmCreated.class, created.receiveMessage()).vm();

    int fd = ask(vm, VmActor.OpenFd::new, VmActor.FdOpened.class).fd();
    int ioas = ask(vm, r -> new VmActor.AllocIoas(fd, r), VmActor.IoasAllocated.class).ioasId();
    for (String d : List.of("nic0", "nic1", "nic2")) {
      ask(vm, r -> new VmActor.BindDevice(fd, d, r), VmActor.DeviceBound.class);
      ask(vm, r -> new VmActor.AttachDevice(fd, d, ioas, r), VmActor.DeviceAttached.class);
    }
    long iova = ask(vm, r -> new VmActor.MapBuffer(fd, ioas, 0, 2L << 20, VmActor.AUTO_IOVA, Access.READ_WRITE, false, r), VmActor.BufferMapped.class).iova();
    long lazy = ask(vm, r -> new VmActor.MapBuffer(fd, ioas, 4L << 20, 1L << 20, VmActor.AUTO_IOVA, Access.READ_WRITE, true, r), VmActor.BufferMapped.class).iova();
    ask(vm, r -> new VmActor.RunDma("nic0", -1, new long[] {iova}, new int[] {64}, new int[] {Access.WRITE}, r), VmActor.DmaDone.class);
    ask(vm, r -> new VmActor.RunDma("nic1", -1, new long[] {0x7000_0000L}, new int[] {64}, new int[] {Access.WRITE}, r), VmActor.DmaDone.class);
    VmActor.DmaDone pri = ask(vm, r -> new VmActor.RunDma("nic2", -1, new long[] {lazy}, new int[] {64}, new int[] {Access.READ}, r), VmActor.DmaDone.class);
    assertEquals(1, pri.pageRequests());
    ask(vm, VmActor.GuestWbinvd::new, VmActor.WbinvdHandled.class);
    ask(vm, VmActor.AllocPasid::new, VmActor.PasidAllocated.class);
    ask(vm, r -> new VmActor.UnmapBuffer(fd, ioas, iova, 2L << 20, r), VmActor.BufferUnmapped.class);
    ask(vm, r -> new VmActor.MapBuffer(fd, ioas, 0, 100, VmActor.AUTO_IOVA, Access.READ, false, r), VmActor.Refused.class);
    ask(vm, VmActor.GetVmState::new, VmActor.VmState.class);
    TestProbe<HostGuardian.HotplugReply> hotplug = testKit.createTestProbe();
    host.tell(new HostGuardian.UnplugDevice("nic1", hotplug.ref()));
    assertInstanceOf(HostGuardian.DeviceUnplugged.class, hotplug.receiveMessage());
    TestProbe<HostGuardian.Topology> topology = testKit.createTestProbe();
    host.tell(new HostGuardian.GetTopology(topology.ref()));
    assertTrue(topology.receiveMessage().failures().isEmpty());

    TestProbe<HostGuardian.HostReport> report = testKit.createTestProbe();
    host.tell(new HostGuardian.Shutdown(report.ref()));
    HostGuardian.HostReport r = report.receiveMessage();
    assertTrue(r.clean(), () -> r.leaks() + " " + r.failures());
  }

  @Test
  void deferredUnmapsAndTheirFlushesRoundTripToo() {
    ActorRef<HostGuardian.Command> host =
        testKit.spawn(HostGuardian.create(
            IommulabSettings.defaults().withInvalidationMode(
                io.iommulab.config.InvalidationPipelineSettings.Mode.DEFERRED),
            new ManualClock(), 4, FaultInjector.NONE));
    TestProbe<HostGuardian.CreateVmReply> created = testKit.createTestProbe();
    host.tell(new HostGuardian.CreateVm(1, 1L << 30, PageSize.SIZE_2M, List.of("nvme0", "nic1"), "web", created.ref()));
    ActorRef<VmActor.Command> vm = assertInstanceOf(HostGuardian.VmCreated.class, created.receiveMessage()).vm();
    int fd = ask(vm, VmActor.OpenFd::new, VmActor.FdOpened.class).fd();
    int ioas = ask(vm, r -> new VmActor.AllocIoas(fd, r), VmActor.IoasAllocated.class).ioasId();
    for (String d : List.of("nvme0", "nic1")) {
      ask(vm, r -> new VmActor.BindDevice(fd, d, r), VmActor.DeviceBound.class);
      ask(vm, r -> new VmActor.AttachDevice(fd, d, ioas, r), VmActor.DeviceAttached.class);
    }
    long iova = ask(vm, r -> new VmActor.MapBuffer(fd, ioas, 0, 1L << 16, VmActor.AUTO_IOVA, Access.READ_WRITE, false, r), VmActor.BufferMapped.class).iova();
    for (String d : List.of("nvme0", "nic1")) {
      ask(vm, r -> new VmActor.RunDma(d, -1, new long[] {iova}, new int[] {64}, new int[] {Access.WRITE}, r), VmActor.DmaDone.class);
    }
    ask(vm, r -> new VmActor.UnmapBuffer(fd, ioas, iova, 1L << 16, r), VmActor.BufferUnmapped.class);
    ask(vm, r -> new VmActor.RunDma("nic1", -1, new long[] {iova}, new int[] {64}, new int[] {Access.WRITE}, r), VmActor.DmaDone.class);
    ask(vm, r -> new VmActor.DetachDevice(fd, "nic1", r), VmActor.DeviceDetached.class);
    ask(vm, VmActor.GetVmState::new, VmActor.VmState.class);
    TestProbe<HostGuardian.HostReport> report = testKit.createTestProbe();
    host.tell(new HostGuardian.Shutdown(report.ref()));
    HostGuardian.HostReport r = report.receiveMessage();
    assertTrue(r.clean(), () -> r.leaks() + " " + r.failures());
    assertEquals(0, r.unpinnedFrameViolations());
  }
}
