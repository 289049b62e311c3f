package io.iommulab.actors.msi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.msi.MsiBankActor.AllocateVectors;
import io.iommulab.actors.msi.MsiBankActor.BankRefused;
import io.iommulab.actors.msi.MsiBankActor.BankReply;
import io.iommulab.actors.msi.MsiBankActor.BankState;
import io.iommulab.actors.msi.MsiBankActor.Deliver;
import io.iommulab.actors.msi.MsiBankActor.FreeVectors;
import io.iommulab.actors.msi.MsiBankActor.GetBankState;
import io.iommulab.actors.msi.MsiBankActor.SetGroupOwner;
import io.iommulab.actors.msi.MsiBankActor.VectorsAllocated;
import io.iommulab.actors.msi.MsiBankActor.VectorsFreed;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class MsiBankActorTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private final ActorRef<MsiBankActor.Command> bank =
      testKit.spawn(MsiBankActor.create(new MsiBankSettings(1, Fixtures.MSIIR0, 64),
          FaultInjector.NONE));
  private final TestProbe<BankReply> replies = testKit.createTestProbe();

  private BankState state() {
    bank.tell(new GetBankState(replies.getRef()));
    return replies.expectMessageClass(BankState.class);
  }

  private VectorsAllocated allocate(int rid, int group, int count) {
    bank.tell(new AllocateVectors(rid, group, count, replies.getRef()));
    return replies.expectMessageClass(VectorsAllocated.class);
  }

  private void assertRefused(Errno errno, MsiBankActor.Command command) {
    BankState before = state();
    bank.tell(command);
    BankRefused r = replies.expectMessageClass(BankRefused.class);
    assertEquals(errno, r.errno(), r.message());
    assertEquals(1, r.bankIndex());
    assertEquals(before, state());
  }

  @Test
  void vectorsComeLowestDataWordFirstWithTheirDataWords() {
    VectorsAllocated a = allocate(0x100, 3, 3);
    assertArrayEquals(new int[] {0, 1, 2}, a.vectors());
    assertArrayEquals(new int[] {0, 1, 2}, a.data());
    assertEquals(Fixtures.MSIIR0, a.msiirAddress());
    assertEquals(61, a.freeVectors());
    assertEquals(List.of(3), state().groups());
  }

  @Test
  void badAllocationsAreRefusedAllOrNothing() {
    allocate(0x100, 3, 60);
    assertRefused(Errno.ENOSPC, new AllocateVectors(0x200, 4, 5, replies.getRef()));
    assertRefused(Errno.EINVAL, new AllocateVectors(0x100, 4, 1, replies.getRef()));
    assertRefused(Errno.EINVAL, new AllocateVectors(0x200, 4, 0, replies.getRef()));
    assertRefused(Errno.EINVAL, new AllocateVectors(0x10000, 4, 1, replies.getRef()));
    assertRefused(Errno.EINVAL, new AllocateVectors(0x200, -1, 1, replies.getRef()));
    assertRefused(Errno.ENOENT, new FreeVectors(0x300, replies.getRef()));
  }

  @Test
  void anInjectedFailureMidwayFreesWhatTheCallTook() {
    int[] calls = {0};
    ActorRef<MsiBankActor.Command> flaky =
        testKit.spawn(MsiBankActor.create(new MsiBankSettings(2, Fixtures.MSIIR0 + 0x1000, 32),
            site -> ++calls[0] == 3));
    flaky.tell(new AllocateVectors(0x100, 1, 4, replies.getRef()));
    assertEquals(Errno.ENOMEM, replies.expectMessageClass(BankRefused.class).errno());
    flaky.tell(new GetBankState(replies.getRef()));
    assertEquals(32, replies.expectMessageClass(BankState.class).freeVectors());
  }

  @Test
  void freeingReturnsEveryVectorOfTheRid() {
    allocate(0x100, 3, 4);
    bank.tell(new FreeVectors(0x100, replies.getRef()));
    assertEquals(new VectorsFreed(1, 4), replies.receiveMessage());
    assertEquals(64, state().freeVectors());
  }

  @Test
  void aBankSharedByTwoOwnersIsAnIsolationBreach() {
    bank.tell(new SetGroupOwner(3, 10));
    bank.tell(new SetGroupOwner(4, 10));
    allocate(0x100, 3, 1);
    allocate(0x200, 4, 1);
    assertFalse(state().isolationBroken(), "one owner, two groups: still isolated");
    bank.tell(new SetGroupOwner(4, 11));
    BankState s = state();
    assertTrue(s.isolationBroken());
    assertEquals(1, s.breaches());
    assertEquals(List.of(10, 11), s.owners());
    assertEquals(List.of(3, 4), s.groups());
    // The second owner leaves: isolation holds again; the breach stays counted.
    bank.tell(new FreeVectors(0x200, replies.getRef()));
    replies.expectMessageClass(VectorsFreed.class);
    assertFalse(state().isolationBroken());
    assertEquals(1, state().breaches());
  }

  @Test
  void deliveriesAreCountedAndCrossOwnerWritesFlagged() {
    bank.tell(new SetGroupOwner(3, 10));
    bank.tell(new SetGroupOwner(4, 11));
    VectorsAllocated mine = allocate(0x100, 3, 1);
    VectorsAllocated theirs = allocate(0x200, 4, 1);
    bank.tell(new Deliver(0x100, Fixtures.MSIIR0, mine.data()[0]));
    bank.tell(new Deliver(0x100, Fixtures.MSIIR0, theirs.data()[0]));
    bank.tell(new Deliver(0x100, Fixtures.MSIIR0, 40));
    bank.tell(new Deliver(0x100, Fixtures.MSIIR0 + 4, 0));
    BankState s = state();
    assertEquals(3, s.delivered());
    assertEquals(1, s.crossOwnerInterrupts());
    assertEquals(1, s.spurious());
    assertEquals(1, s.misdirected());
  }
}
