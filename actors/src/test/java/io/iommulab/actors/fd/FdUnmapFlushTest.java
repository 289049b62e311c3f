package io.iommulab.actors.fd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.HealthyUnit;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.List;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The fd against a scripted unit: deferred unmaps (the area keeps IOVA and pins until the unit's
 * FlushCompleted, or until the unit stops), a saturated unit's EBUSY retried on the fd's timers
 * until it takes the command, and a unit refusing an unmap for any other reason: a bug, reported,
 * counted, the pages kept pinned until the domain is gone.
 */
class FdUnmapFlushTest {

  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final long VA = 0x7f00_0000_0000L;
  private static final long IOVA = 0x10_0000L;
  private static final long LEN = 64 * 1024;
  private static final int RID = 0x18;
  private static final Duration WAIT = Duration.ofSeconds(10);

  private static final IommuUnitActor.UnitInfo INFO =
      new IommuUnitActor.UnitInfo(0, "vtd0", UnitKind.VTD, 0x40201000L, 48, 0, (1L << 48) - 1, 0,
          true, false, false, true, false, false, List.of(ReservedRegion.VTD_MSI));

  private static GuestMemoryLayout layout() {
    return Fixtures.contiguousGuest(2, VA);
  }

  /**
   * A unit that records every command and answers as a healthy one would, except what {@code
   * script} answers (non-null) — given the command and how many of its kind came before.
   */
  static Behavior<IommuUnitActor.Command> unit(
      ActorRef<IommuUnitActor.Command> recorder,
      Function<IommuUnitActor.Command, IommuUnitActor.UnitReply> script) {
    return Behaviors.receive(IommuUnitActor.Command.class)
        .onMessage(IommuUnitActor.Correlated.class, c -> {
          // The fd sends its maps and unmaps correlated: answered through its adapter.
          IommuUnitActor.Command cmd = c.map() != null ? c.map() : c.unmap();
          recorder.tell(cmd);
          IommuUnitActor.UnitReply scripted = script.apply(cmd);
          c.replyTo().tell(IommuUnitActor.Answer.of(c.corr(), scripted != null ? scripted : healthy(cmd)));
          return Behaviors.same();
        })
        .onAnyMessage(cmd -> {
          recorder.tell(cmd);
          IommuUnitActor.UnitReply scripted = script.apply(cmd);
          IommuUnitActor.UnitReply reply = scripted != null ? scripted : healthy(cmd);
          ActorRef<IommuUnitActor.UnitReply> to = HealthyUnit.replyTo(cmd);
          if (to != null && reply != null) {
            to.tell(reply);
          }
          return Behaviors.same();
        })
        .build();
  }

  private static IommuUnitActor.UnitReply healthy(IommuUnitActor.Command cmd) {
    return HealthyUnit.reply(cmd, rid -> INFO, () -> 1, 0);
  }

  /** An fd with one device attached to an IOAS (auto domain) and 64 KiB mapped at IOVA. */
  private static final class Rig {
    final TestProbe<IommuUnitActor.Command> recorder = testKit.createTestProbe();
    final TestProbe<HostMemoryActor.Command> memory = testKit.createTestProbe();
    final TestProbe<IoasidFdActor.FdEvent> events = testKit.createTestProbe();
    final TestProbe<IoasidFdActor.Reply> replies = testKit.createTestProbe();
    final ActorRef<IommuUnitActor.Command> unit;
    final ActorRef<IoasidFdActor.Command> fd;
    final int ioas;
    final int devId;

    Rig(Function<IommuUnitActor.Command, IommuUnitActor.UnitReply> script) {
      unit = testKit.spawn(unit(recorder.getRef(), script));
      fd = testKit.spawn(IoasidFdActor.create(5, 1, layout(), UapiSettings.defaults(),
          memory.getRef(), events.getRef(), FaultInjector.NONE, new ManualClock()));
      fd.tell(new IoasidFdActor.DeviceBind(new IoasidFdActor.DeviceHandle("nic", RID, -1, 1, 0,
          unit, testKit.<io.iommulab.actors.device.DeviceActor.Command>createTestProbe().getRef()),
          replies.getRef()));
      devId = replies.expectMessageClass(IoasidFdActor.DeviceBound.class, WAIT).devId();
      fd.tell(new IoasidFdActor.IoasAlloc(0, replies.getRef()));
      ioas = replies.expectMessageClass(IoasidFdActor.IoasAllocated.class, WAIT).outIoasId();
      fd.tell(new IoasidFdActor.DeviceAttach(devId, ioas, replies.getRef()));
      replies.expectMessageClass(IoasidFdActor.DeviceAttached.class, WAIT);
      assertEquals(IoasidFdActor.IoasMapped.class, map().getClass());
      HostMemoryActor.PinsChanged pin = memory.expectMessageClass(HostMemoryActor.PinsChanged.class, WAIT);
      assertTrue(pin.pinned());
    }

    IoasidFdActor.Reply map() {
      fd.tell(new IoasidFdActor.IoasMap(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE
          | Uapi.IOAS_MAP_WRITEABLE, ioas, VA, LEN, IOVA, replies.getRef()));
      return replies.receiveMessage(WAIT);
    }

    IoasidFdActor.Reply unmap() {
      fd.tell(new IoasidFdActor.IoasUnmap(ioas, IOVA, LEN, replies.getRef()));
      return replies.receiveMessage(WAIT);
    }

    FdSnapshot snapshot() {
      fd.tell(new IoasidFdActor.GetSnapshot(replies.getRef()));
      return replies.expectMessageClass(IoasidFdActor.Snapshotted.class, WAIT).snapshot();
    }

    /** The next command of {@code type} the unit received (others skipped). */
    <T extends IommuUnitActor.Command> T received(Class<T> type) {
      return type.cast(recorder.fishForMessage(WAIT, c -> type.isInstance(c)
          ? org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.complete()
          : org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes.continueAndIgnore())
          .get(0));
    }
  }

  @Test
  void aDeferredUnmapReturnsAtOnceAndReleasesItsAreaOnlyAtTheUnitsFlush() {
    Rig rig = new Rig(cmd -> cmd instanceof IommuUnitActor.UnmapRange u && u.flushTo() != null
        ? new IommuUnitActor.Unmapped(u.length(), 40, 9, true) : null);
    IoasidFdActor.IoasUnmapped done = assertInstanceOf(IoasidFdActor.IoasUnmapped.class, rig.unmap());
    assertEquals(LEN, done.length());
    assertEquals(LEN, done.awaitingFlushBytes());
    IommuUnitActor.UnmapRange sent = rig.received(IommuUnitActor.UnmapRange.class);
    FdSnapshot waiting = rig.snapshot();
    assertEquals(1, waiting.lingering().size(), waiting.lingering().toString());
    assertEquals(LEN / 4096, waiting.accounting().userLockedPages(), "still charged");

    IoasidFdActor.Refused busy = assertInstanceOf(IoasidFdActor.Refused.class, rig.map());
    assertEquals(Errno.EEXIST, busy.errno(), "the IOVA is not reused before the flush");
    assertEquals(waiting, rig.snapshot(), "the refused map changed nothing");

    sent.flushTo().tell(new IommuUnitActor.FlushCompleted(0, new long[] {9}, 100));
    assertEquals(new IoasidFdActor.IovaReleased(5, rig.ioas, IOVA, LEN),
        rig.events.expectMessageClass(IoasidFdActor.IovaReleased.class, WAIT));
    HostMemoryActor.PinsChanged unpin = rig.memory.expectMessageClass(HostMemoryActor.PinsChanged.class, WAIT);
    assertTrue(!unpin.pinned() && unpin.length() == LEN);
    assertTrue(rig.snapshot().lingering().isEmpty());
    assertInstanceOf(IoasidFdActor.IoasMapped.class, rig.map(), "free again after the flush");
  }

  @Test
  void aUnitThatStopsCountsItsPendingFlushesAsDone() {
    Rig rig = new Rig(cmd -> cmd instanceof IommuUnitActor.UnmapRange u && u.flushTo() != null
        ? new IommuUnitActor.Unmapped(u.length(), 40, 3, true) : null);
    assertInstanceOf(IoasidFdActor.IoasUnmapped.class, rig.unmap());
    testKit.stop(rig.unit);
    rig.events.expectMessageClass(IoasidFdActor.IovaReleased.class, WAIT);
    assertTrue(!rig.memory.expectMessageClass(HostMemoryActor.PinsChanged.class, WAIT).pinned());
    assertTrue(rig.snapshot().lingering().isEmpty());
  }

  @Test
  void aSaturatedUnitsEbusyIsRetriedUntilItTakesTheUnmapAndTheDetach() {
    int[] unmaps = {0};
    int[] detaches = {0};
    Rig rig = new Rig(cmd -> {
      if (cmd instanceof IommuUnitActor.UnmapRange && ++unmaps[0] <= 3) {
        return new IommuUnitActor.Refused(Errno.EBUSY, "saturated");
      }
      if (cmd instanceof IommuUnitActor.Detach && ++detaches[0] <= 2) {
        return new IommuUnitActor.Refused(Errno.EBUSY, "saturated");
      }
      return null;
    });
    FdSnapshot before = rig.snapshot();
    assertInstanceOf(IoasidFdActor.IoasUnmapped.class, rig.unmap());
    for (int i = 0; i < 4; i++) {
      rig.received(IommuUnitActor.UnmapRange.class);
    }
    assertTrue(!rig.memory.expectMessageClass(HostMemoryActor.PinsChanged.class, WAIT).pinned(),
        "unpinned once the unit took the unmap");
    assertEquals(0, rig.snapshot().unmaps().refused());
    assertEquals(before.unmaps(), rig.snapshot().unmaps());

    rig.fd.tell(new IoasidFdActor.DeviceDetach(rig.devId, rig.replies.getRef()));
    assertEquals(IoasidFdActor.Done.INSTANCE, rig.replies.receiveMessage(WAIT));
    assertEquals(3, detaches[0]);
  }

  @Test
  void aUnitRefusingAnUnmapForAnotherReasonIsABugAndThePagesStayPinned() {
    Rig rig = new Rig(cmd -> cmd instanceof IommuUnitActor.UnmapRange
        ? new IommuUnitActor.Refused(Errno.EINVAL, "a broken unit") : null);
    IoasidFdActor.Refused r = assertInstanceOf(IoasidFdActor.Refused.class, rig.unmap());
    assertEquals(Errno.EIO, r.errno());
    FdSnapshot after = rig.snapshot();
    assertEquals(1, after.unmaps().refused());
    assertEquals(LEN / 4096, after.accounting().userLockedPages(), "the pages stay pinned");
    assertTrue(after.lingering().get(0).contains("stuck"), after.lingering().toString());

    // Close frees the domain first; then nothing can reach the frames and they are unpinned.
    rig.fd.tell(new IoasidFdActor.Close(rig.replies.getRef()));
    IoasidFdActor.Closed closed = rig.replies.expectMessageClass(IoasidFdActor.Closed.class, WAIT);
    assertEquals(LEN / 4096, closed.pagesUnpinned());
    rig.received(IommuUnitActor.FreeDomain.class);
    assertTrue(!rig.memory.expectMessageClass(HostMemoryActor.PinsChanged.class, WAIT).pinned());
  }
}
