package io.iommulab.actors.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.memory.HostMemoryActor.AllocateGuestMemory;
import io.iommulab.actors.memory.HostMemoryActor.CheckDma;
import io.iommulab.actors.memory.HostMemoryActor.GetReport;
import io.iommulab.actors.memory.HostMemoryActor.GuestMemoryAllocated;
import io.iommulab.actors.memory.HostMemoryActor.GuestMemoryReleased;
import io.iommulab.actors.memory.HostMemoryActor.GuestMemoryReply;
import io.iommulab.actors.memory.HostMemoryActor.MemoryRefused;
import io.iommulab.actors.memory.HostMemoryActor.MemoryReport;
import io.iommulab.actors.memory.HostMemoryActor.PinsChanged;
import io.iommulab.actors.memory.HostMemoryActor.ReleaseGuestMemory;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import io.iommulab.hardware.memory.HostMemory;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class HostMemoryActorTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private final ActorRef<HostMemoryActor.Command> memory =
      testKit.spawn(HostMemoryActor.create(Fixtures.topology(List.of()), FaultInjector.NONE));
  private final TestProbe<GuestMemoryReply> replies = testKit.createTestProbe();
  private final TestProbe<MemoryReport> reports = testKit.createTestProbe();

  private MemoryReport report() {
    memory.tell(new GetReport(reports.getRef()));
    return reports.receiveMessage();
  }

  private GuestMemoryLayout allocate(int vm, long bytes, PageSize backing) {
    memory.tell(new AllocateGuestMemory(vm, bytes, backing, replies.getRef()));
    return replies.expectMessageClass(GuestMemoryAllocated.class).layout();
  }

  private void assertRefused(Errno errno, HostMemoryActor.Command command) {
    MemoryReport before = report();
    memory.tell(command);
    assertEquals(errno, replies.expectMessageClass(MemoryRefused.class).errno());
    assertEquals(before, report());
  }

  private void check(int owner, long hpa, int length) {
    memory.tell(new CheckDma(owner, 0, 0x100, -1, new long[] {hpa}, new int[] {length}, 1, 0));
  }

  @Test
  void allocatedGuestMemoryIsOwnedByItsVmAndItsLayoutIsShared() {
    MemoryReport before = report();
    GuestMemoryLayout layout = allocate(1, 8 * Fixtures.MIB, PageSize.SIZE_2M);
    assertEquals(1, layout.vmId());
    assertEquals(4, layout.pageCount());
    MemoryReport after = report();
    assertEquals(8 * Fixtures.MIB, after.allocatedBytesByOwner().get(1));
    assertEquals(before.freeBytes() - 8 * Fixtures.MIB, after.freeBytes());
  }

  @Test
  void badAllocationsAreRefusedAndChangeNothing() {
    allocate(2, 2 * Fixtures.MIB, PageSize.SIZE_4K);
    assertRefused(Errno.EINVAL, new AllocateGuestMemory(0, Fixtures.MIB, PageSize.SIZE_4K, replies.getRef()));
    assertRefused(Errno.EEXIST, new AllocateGuestMemory(2, Fixtures.MIB, PageSize.SIZE_4K, replies.getRef()));
    assertRefused(Errno.EINVAL, new AllocateGuestMemory(3, Fixtures.MIB, PageSize.SIZE_2M, replies.getRef()));
    assertRefused(Errno.ENOMEM, new AllocateGuestMemory(4, Fixtures.RAM, PageSize.SIZE_2M, replies.getRef()));
    assertRefused(Errno.EINVAL, new AllocateGuestMemory(5, Fixtures.MIB, null, replies.getRef()));
  }

  @Test
  void anInjectedFrameFailureIsEnomemAndChangesNothing() {
    ActorRef<HostMemoryActor.Command> failing =
        testKit.spawn(HostMemoryActor.create(Fixtures.topology(List.of()),
            site -> site.equals(HostMemory.SITE_FRAMES)));
    failing.tell(new AllocateGuestMemory(1, 2 * Fixtures.MIB, PageSize.SIZE_2M, replies.getRef()));
    assertEquals(Errno.ENOMEM, replies.expectMessageClass(MemoryRefused.class).errno());
    failing.tell(new GetReport(reports.getRef()));
    assertEquals(Fixtures.RAM, reports.receiveMessage().freeBytes());
  }

  @Test
  void memoryIsReleasedOnlyOnceEveryPinIsGone() {
    GuestMemoryLayout layout = allocate(6, 4 * Fixtures.MIB, PageSize.SIZE_2M);
    long freeBefore = report().freeBytes() + 4 * Fixtures.MIB;
    memory.tell(new PinsChanged(6, layout.userVaBase(), 3 * Fixtures.MIB, true));
    assertEquals(768, report().pinnedFrames());
    assertRefused(Errno.EBUSY, new ReleaseGuestMemory(6, replies.getRef()));
    memory.tell(new PinsChanged(6, layout.userVaBase(), 3 * Fixtures.MIB, false));
    memory.tell(new ReleaseGuestMemory(6, replies.getRef()));
    assertEquals(new GuestMemoryReleased(6, 4 * Fixtures.MIB), replies.receiveMessage());
    MemoryReport after = report();
    assertEquals(freeBefore, after.freeBytes());
    assertEquals(0, after.pinnedFrames());
    assertRefused(Errno.ENOENT, new ReleaseGuestMemory(6, replies.getRef()));
  }

  @Test
  void badPinBookkeepingIsRecordedAsABugAndChangesNoPin() {
    GuestMemoryLayout layout = allocate(7, 2 * Fixtures.MIB, PageSize.SIZE_4K);
    memory.tell(new PinsChanged(7, layout.userVaBase(), Fixtures.KIB4, true));
    MemoryReport before = report();
    memory.tell(new PinsChanged(7, layout.userVaBase() + Fixtures.KIB4, Fixtures.KIB4, false));
    memory.tell(new PinsChanged(7, layout.userVaEnd(), Fixtures.KIB4, true));
    memory.tell(new PinsChanged(99, 0, Fixtures.KIB4, true));
    MemoryReport after = report();
    assertEquals(before.pinnedFrames(), after.pinnedFrames());
    assertEquals(before.bugs().size() + 3, after.bugs().size());
    assertTrue(after.bugs().get(after.bugs().size() - 1).contains("VM 99"));
  }

  @Test
  void theOracleCountsEachVerdictAndLogsTheViolations() {
    GuestMemoryLayout a = allocate(8, 2 * Fixtures.MIB, PageSize.SIZE_2M);
    GuestMemoryLayout b = allocate(9, 2 * Fixtures.MIB, PageSize.SIZE_2M);
    memory.tell(new PinsChanged(8, a.userVaBase(), Fixtures.KIB4, true));
    MemoryReport before = report();
    check(8, a.pageHpa(0) + 0x40, 64);
    check(8, b.pageHpa(0), 4);
    check(9, Fixtures.MSIIR0, 4);
    check(8, Fixtures.RAM - Fixtures.KIB4, 8);
    check(8, 1L << 40, 8);
    check(8, a.pageHpa(0) + 2 * Fixtures.KIB4, 8); // its own frame, but nobody pins it
    MemoryReport after = report();
    assertEquals(1, after.checks().get(DmaCheck.OK) - before.checks().get(DmaCheck.OK));
    assertEquals(1, after.checks().get(DmaCheck.UNPINNED_FRAME)
        - before.checks().get(DmaCheck.UNPINNED_FRAME));
    assertEquals(1, after.checks().get(DmaCheck.ISOLATION_VIOLATION)
        - before.checks().get(DmaCheck.ISOLATION_VIOLATION));
    assertEquals(1, after.checks().get(DmaCheck.HOST_FRAME) - before.checks().get(DmaCheck.HOST_FRAME));
    assertEquals(1, after.checks().get(DmaCheck.FREED_FRAME) - before.checks().get(DmaCheck.FREED_FRAME));
    assertEquals(1, after.checks().get(DmaCheck.UNBACKED) - before.checks().get(DmaCheck.UNBACKED));
    var violation = after.violations().get(before.violations().size());
    assertEquals(DmaCheck.ISOLATION_VIOLATION, violation.kind());
    assertEquals(9, violation.actualOwner());
    assertEquals(8, violation.expectedOwner());
  }

  @Test
  void aMalformedCheckIsABugNotACrash() {
    MemoryReport before = report();
    memory.tell(new CheckDma(1, 0, 0x100, -1, new long[] {0}, new int[] {4}, 2, 0));
    memory.tell(new CheckDma(HostMemory.FREE, 0, 0x100, -1, new long[] {0}, new int[] {4}, 1, 0));
    MemoryReport after = report();
    assertEquals(before.checks(), after.checks());
    assertEquals(before.bugs().size() + 2, after.bugs().size());
  }
}
