package io.iommulab.actors.unit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.device.DeviceActor.AtcInvalidate;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor.Answer;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.Correlated;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.Mapped;
import io.iommulab.actors.unit.IommuUnitActor.Refused;
import io.iommulab.actors.unit.IommuUnitActor.UnitSnapshotted;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * {@link Correlated} MapRange and UnmapRange: the same effect and reply as the plain command, sent
 * as an {@link Answer} carrying the caller's correlation id, so one adapter can match replies that
 * come back out of order.
 */
class CorrelatedRequestsTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int GPU = 0x0300;
  private static final int NONE = IommuUnitActor.NO_PASID;
  private static final long IOVA = 0x40_0000L;
  private static final long PAGE = 4096;

  private final UnitHarness h = new UnitHarness(testKit, Fixtures.vtd("vtd0"));
  private final TestProbe<Answer> answers = testKit.createTestProbe();

  private MapRange map(int domain, long iova, long hpa, long length) {
    return new MapRange(domain, iova, new long[] {hpa}, new long[] {length}, Access.READ_WRITE, null);
  }

  @Test
  void aCorrelatedMapAndUnmapHaveThePlainCommandsEffectAndAnswerWithTheirIds() {
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    int d = h.pagingDomain();

    h.unit.tell(Correlated.of(17, map(d, IOVA, vm.pageHpa(0), 4 * PAGE), answers.getRef()));
    Answer mapped = answers.receiveMessage();
    assertEquals(17, mapped.corr());
    // The map's modeled charge: one pte-write per leaf written.
    assertEquals(new Mapped(4 * PAGE, io.iommulab.hardware.cost.CostModel.defaults().pteWrites(4)), mapped.reply());
    assertEquals(4 * PAGE, h.snapshot().paging().domains().get(0).table().mappedBytes());

    h.unit.tell(Correlated.of(18, UnmapRange.strict(d, IOVA, 4 * PAGE, null), answers.getRef()));
    Answer unmapped = answers.receiveMessage();
    assertEquals(18, unmapped.corr());
    assertEquals(4 * PAGE, ((Unmapped) unmapped.reply()).bytes());
    assertEquals(0, h.snapshot().paging().domains().get(0).table().mappedBytes());
  }

  @Test
  void aRefusedCorrelatedMapAnswersTheRefusalWithItsIdAndChangesNothing() {
    GuestMemoryLayout vm = h.vm(1, 2 * Fixtures.MIB);
    int d = h.pagingDomain();
    h.map(d, IOVA, vm.pageHpa(0), PAGE, Access.READ_WRITE);
    UnitSnapshotted before = h.snapshot();

    h.unit.tell(Correlated.of(5, map(d, IOVA, vm.pageHpa(0), PAGE), answers.getRef()));
    Answer a = answers.receiveMessage();
    assertEquals(5, a.corr());
    assertEquals(Errno.EEXIST, ((Refused) a.reply()).errno(), a.toString());
    h.unit.tell(Correlated.of(6, map(99, IOVA, vm.pageHpa(0), PAGE), answers.getRef()));
    assertEquals(Errno.ENOENT, ((Refused) answers.receiveMessage().reply()).errno());
    assertEquals(before, h.snapshot());
  }

  @Test
  void aCorrelatedEnvelopeWithNeitherOrBothCommandsIsEinval() {
    h.unit.tell(new Correlated(1, null, null, answers.getRef()));
    assertEquals(Errno.EINVAL, ((Refused) answers.receiveMessage().reply()).errno());
    h.unit.tell(new Correlated(2, map(1, IOVA, 0, PAGE), UnmapRange.strict(1, IOVA, PAGE, null), answers.getRef()));
    Answer a = answers.receiveMessage();
    assertEquals(2, a.corr());
    assertEquals(Errno.EINVAL, ((Refused) a.reply()).errno());
  }

  @Test
  void anUnmapWaitingForAnAtcAckIsAnsweredAfterALaterMapEachWithItsOwnId() {
    GuestMemoryLayout vm = h.vm(1, 4 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> gpu = h.device(GPU, 2, true);
    h.claim(GPU, 5, 1, gpu);
    int d = h.pagingDomain();
    h.map(d, IOVA, vm.pageHpa(0), 4 * PAGE, Access.READ_WRITE);
    h.attach(GPU, NONE, d, null);
    assertEquals(0, h.burst(GPU, NONE, new long[] {IOVA}, Access.READ, true).status()[0]);

    h.unit.tell(Correlated.of(1, UnmapRange.strict(d, IOVA, 4 * PAGE, null), answers.getRef()));
    AtcInvalidate inv = gpu.expectMessageClass(AtcInvalidate.class);
    h.unit.tell(Correlated.of(2, map(d, IOVA + Fixtures.MIB, vm.pageHpa(1), PAGE), answers.getRef()));
    Answer first = answers.receiveMessage();
    assertEquals(2, first.corr(), "the map, answered while the unmap waits for the device");
    assertEquals(new Mapped(PAGE, io.iommulab.hardware.cost.CostModel.defaults().pteWrites(1)), first.reply());
    answers.expectNoMessage(Duration.ofMillis(20));
    h.unit.tell(new AtcInvalidationAcked(GPU, inv.token()));
    Answer second = answers.receiveMessage();
    assertEquals(1, second.corr());
    assertEquals(4 * PAGE, ((Unmapped) second.reply()).bytes());
  }

  @Test
  void aPamuAnswersCorrelatedWindowMapsAndUnmaps() {
    Map<Integer, ActorRef<MsiBankActor.Command>> banks = new HashMap<>();
    for (MsiBankSettings s : Fixtures.banks()) {
      banks.put(s.index(), testKit.spawn(MsiBankActor.create(s, FaultInjector.NONE)));
    }
    UnitHarness p = new UnitHarness(testKit, Fixtures.pamu("pamu0"), banks);
    GuestMemoryLayout vm = p.vm(1, 2 * Fixtures.MIB);
    int d = p.ask(new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAMU, false, false, 0,
        p.replies.getRef()), IommuUnitActor.DomainAllocated.class).domainId();
    p.ok(new IommuUnitActor.PamuSetGeometry(d, 0, 2 * Fixtures.MIB, p.replies.getRef()));
    p.ok(new IommuUnitActor.PamuSetWindowCount(d, 8, p.replies.getRef()));
    long window = 2 * Fixtures.MIB / 8;

    p.unit.tell(Correlated.of(40, map(d, 0, vm.pageHpa(0), window), answers.getRef()));
    Answer mapped = answers.receiveMessage();
    assertEquals(40, mapped.corr());
    assertEquals(new Mapped(window, io.iommulab.hardware.cost.CostModel.defaults().pteWrites(1)), mapped.reply());
    p.unit.tell(Correlated.of(41, UnmapRange.strict(d, 0, window, null), answers.getRef()));
    Answer unmapped = answers.receiveMessage();
    assertEquals(41, unmapped.corr());
    assertEquals(window, ((Unmapped) unmapped.reply()).bytes());
  }

  @Test
  void correlatedEnvelopesAndAnswersTravelThroughJacksonCbor() {
    ActorTestKit checked = ActorTestKit.create(com.typesafe.config.ConfigFactory.parseString(
        "pekko.actor.serialize-messages = on\n"
            + "pekko.actor.no-serialization-verification-needed-class-prefix = []\n"));
    try {
      UnitHarness c = new UnitHarness(checked, Fixtures.vtd("vtd0"));
      TestProbe<Answer> to = checked.createTestProbe();
      GuestMemoryLayout vm = c.vm(1, 2 * Fixtures.MIB);
      int d = c.pagingDomain();
      c.unit.tell(Correlated.of(7, map(d, IOVA, vm.pageHpa(0), PAGE), to.getRef()));
      assertEquals(new Answer(7, new Mapped(PAGE, io.iommulab.hardware.cost.CostModel.defaults().pteWrites(1)), null, null),
          to.receiveMessage());
      c.unit.tell(Correlated.of(8, map(d, IOVA, vm.pageHpa(0), PAGE), to.getRef()));
      assertEquals(Errno.EEXIST, to.receiveMessage().refused().errno());
      c.unit.tell(Correlated.of(9, UnmapRange.strict(d, IOVA, PAGE, null), to.getRef()));
      assertEquals(PAGE, to.receiveMessage().unmapped().bytes());
      Serialization serialization = SerializationExtension.get(checked.system().classicSystem());
      Answer a = Answer.of(3, new Refused(Errno.EINVAL, "run 0: not aligned"));
      Serializer serializer = serialization.findSerializerFor(a);
      assertTrue(serializer.getClass().getSimpleName().contains("Cbor"), serializer.getClass().getName());
      assertEquals(a, serialization.deserialize(serializer.toBinary(a), serializer.identifier(),
          Serializers.manifestFor(serializer, a)).get());
    } finally {
      checked.shutdownTestKit();
    }
  }
}
