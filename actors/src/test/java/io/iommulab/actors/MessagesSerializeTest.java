package io.iommulab.actors;

import io.iommulab.actors.pipeline.FaultSinks;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.DomainType;
import io.iommulab.actors.unit.IommuUnitActor.PageResponseCode;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Every message of a short scenario (both unit kinds, a device with ATS and PRI, the memory oracle,
 * MSI banks, refusals, snapshots) is round-tripped through jackson-cbor before delivery: what a
 * sharded cluster of hosts would put on the wire.
 */
class MessagesSerializeTest {
  static final ActorTestKit testKit = Wire.serializingKit();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int NONE = IommuUnitActor.NO_PASID;

  private static final long IOVA = 0x40_0000L;

  @Test
  void aScenarioOfEveryActorRoundTripsThroughJacksonCbor() {
    assertTrue(testKit.system().settings().config().getBoolean("pekko.actor.serialize-messages"));
    ManualClock clock = new ManualClock(500);
    PagingUnitSettings vtd = Fixtures.vtd("vtd0");
    PamuUnitSettings pamuSettings = Fixtures.pamu("pamu0");
    ActorRef<HostMemoryActor.Command> memory =
        testKit.spawn(HostMemoryActor.create(Fixtures.topology(List.of(vtd, pamuSettings)),
            FaultInjector.NONE));
    Map<Integer, ActorRef<MsiBankActor.Command>> banks = new HashMap<>();
    for (MsiBankSettings s : Fixtures.banks()) {
      banks.put(s.index(), testKit.spawn(MsiBankActor.create(s, FaultInjector.NONE)));
    }
    ActorRef<IommuUnitActor.Command> unit =
        testKit.spawn(IommuUnitActor.create(0, vtd, CostModel.defaults(), clock, 1,
            FaultInjector.NONE, memory, banks));
    ActorRef<IommuUnitActor.Command> pamu =
        testKit.spawn(IommuUnitActor.create(1, pamuSettings, CostModel.defaults(), clock, 1,
            FaultInjector.NONE, memory, banks));

    TestProbe<HostMemoryActor.GuestMemoryReply> memReplies = testKit.createTestProbe();
    memory.tell(new HostMemoryActor.AllocateGuestMemory(1, 4 * Fixtures.MIB, PageSize.SIZE_2M,
        memReplies.getRef()));
    GuestMemoryLayout guest =
        memReplies.expectMessageClass(HostMemoryActor.GuestMemoryAllocated.class).layout();
    assertEquals(4 * Fixtures.MIB, guest.bytes());
    memory.tell(new HostMemoryActor.AllocateGuestMemory(1, Fixtures.MIB, PageSize.SIZE_2M,
        memReplies.getRef()));
    assertEquals(Errno.EEXIST,
        memReplies.expectMessageClass(HostMemoryActor.MemoryRefused.class).errno());
    // The two pages the DMA below reaches are pinned first, as an fd pins before it maps.
    memory.tell(new HostMemoryActor.PinsChanged(1, guest.userVaBase(), 2 * 4096, true));

    DeviceSettings gpuSettings = Fixtures.ats("gpu", "vtd0", "02:00.0", 2, true);
    ActorRef<DeviceActor.Command> gpu =
        testKit.spawn(DeviceActor.create(gpuSettings, 0, unit, memory, clock, 3));
    TestProbe<IommuUnitActor.UnitReply> replies = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.RegisterDevice(0x200, -1, 2, 8, true, true, gpu, replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    unit.tell(new IommuUnitActor.ClaimDmaOwner(0x200, 5, 1, replies.getRef()));
    IommuUnitActor.UnitInfo info =
        replies.expectMessageClass(IommuUnitActor.DmaOwnerClaimed.class).info();
    assertEquals(1, info.reservedRegions().size());
    unit.tell(new IommuUnitActor.AllocDomain(DomainType.PAGING, false, true, 0, replies.getRef()));
    int domain = replies.expectMessageClass(IommuUnitActor.DomainAllocated.class).domainId();
    unit.tell(new IommuUnitActor.AllocDomain(DomainType.PAMU, false, false, 0, replies.getRef()));
    assertEquals(Errno.EOPNOTSUPP, replies.expectMessageClass(IommuUnitActor.Refused.class).errno());
    TestProbe<IommuUnitActor.FaultEvent> fd = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.Attach(0x200, NONE, domain, FaultSinks.unbatching(testKit, fd.getRef()),
        0L, replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    unit.tell(new IommuUnitActor.MapRange(domain, IOVA, new long[] {guest.pageHpa(0)},
        new long[] {4096}, Access.READ_WRITE, replies.getRef()));
    replies.expectMessageClass(IommuUnitActor.Mapped.class);

    // DMA with ATS: a hit path, a page request answered by the "fd", a retry.
    TestProbe<DeviceActor.DmaCompleted> completions = testKit.createTestProbe();
    gpu.tell(new DeviceActor.DmaBurst(NONE, new long[] {IOVA, IOVA + 4096}, new int[] {8, 8},
        new int[] {Access.WRITE, Access.READ}, 1, completions.getRef()));
    IommuUnitActor.PageRequested pr = fd.expectMessageClass(IommuUnitActor.PageRequested.class);
    unit.tell(new IommuUnitActor.MapRange(domain, IOVA + 4096, new long[] {guest.pageHpa(0) + 4096},
        new long[] {4096}, Access.READ, replies.getRef()));
    replies.expectMessageClass(IommuUnitActor.Mapped.class);
    unit.tell(new IommuUnitActor.RespondPageRequest(0x200, NONE, pr.request().groupId(),
        PageResponseCode.SUCCESS, 0L));
    DeviceActor.DmaCompleted done = completions.receiveMessage();
    assertArrayEquals(new byte[] {0, 0}, done.status());

    unit.tell(new IommuUnitActor.ReadAndClearDirty(domain, IOVA, 8192, true, replies.getRef()));
    assertNotNull(replies.expectMessageClass(IommuUnitActor.DirtyRead.class).dirtyIovas());
    unit.tell(IommuUnitActor.UnmapRange.strict(domain, IOVA, 8192, replies.getRef()));
    assertEquals(8192, replies.expectMessageClass(IommuUnitActor.Unmapped.class).bytes());
    unit.tell(new IommuUnitActor.TranslateBurst(0x200, NONE, new long[] {IOVA}, new int[] {4},
        new int[] {Access.READ}, false, 9, testKit.<IommuUnitActor.BurstTranslated>createTestProbe().getRef()));
    assertEquals(IOVA, fd.expectMessageClass(IommuUnitActor.DmaFaulted.class).fault().iova());

    TestProbe<IommuUnitActor.UnitSnapshotted> snaps = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.GetSnapshot(snaps.getRef()));
    IommuUnitActor.UnitSnapshotted pagingSnapshot = snaps.receiveMessage();
    assertNotNull(pagingSnapshot.paging());
    Wire.assertRoundTrips(testKit, pagingSnapshot);
    Wire.assertRoundTrips(testKit, info);
    TestProbe<IommuUnitActor.UnitStats> stats = testKit.createTestProbe();
    unit.tell(new IommuUnitActor.GetStats(stats.getRef()));
    IommuUnitActor.UnitStats unitStats = stats.receiveMessage();
    assertTrue(unitStats.faultLog().isEmpty());
    Wire.assertRoundTrips(testKit, unitStats);

    // PAMU: windows, an MSI bank, a write delivered to it.
    TestProbe<DeviceActor.Command> dpaa = testKit.createTestProbe();
    pamu.tell(new IommuUnitActor.RegisterDevice(0x300, 1, 7, 0, false, false, dpaa.getRef(), replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    pamu.tell(new IommuUnitActor.ClaimDmaOwner(0x300, 6, 1, replies.getRef()));
    replies.expectMessageClass(IommuUnitActor.DmaOwnerClaimed.class);
    dpaa.expectMessage(new DeviceActor.OwnerChanged(1, 6));
    pamu.tell(new IommuUnitActor.AllocDomain(DomainType.PAMU, false, false, 0, replies.getRef()));
    int pd = replies.expectMessageClass(IommuUnitActor.DomainAllocated.class).domainId();
    pamu.tell(new IommuUnitActor.PamuSetGeometry(pd, 0, 2 * Fixtures.MIB, replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    pamu.tell(new IommuUnitActor.PamuSetWindowCount(pd, 8, replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    pamu.tell(new IommuUnitActor.PamuGetGeometry(pd, replies.getRef()));
    replies.expectMessageClass(IommuUnitActor.PamuGeometry.class);
    pamu.tell(new IommuUnitActor.Attach(0x300, NONE, pd, null, 0L, replies.getRef()));
    replies.expectMessage(IommuUnitActor.Done.INSTANCE);
    // A DMA window enables the domain (a bank window alone does not).
    pamu.tell(new IommuUnitActor.MapRange(pd, 256 * 1024, new long[] {guest.pageHpa(1)},
        new long[] {256 * 1024}, Access.READ_WRITE, replies.getRef()));
    replies.expectMessageClass(IommuUnitActor.Mapped.class);
    pamu.tell(new IommuUnitActor.PamuMapMsiBank(pd, 0, Fixtures.MSIIR0, 0, replies.getRef()));
    long msiIova = replies.expectMessageClass(IommuUnitActor.MsiBankMapped.class).msiIova();
    TestProbe<MsiBankActor.BankReply> bankReplies = testKit.createTestProbe();
    banks.get(0).tell(new MsiBankActor.AllocateVectors(0x300, 7, 1, bankReplies.getRef()));
    int data = bankReplies.expectMessageClass(MsiBankActor.VectorsAllocated.class).data()[0];
    pamu.tell(new IommuUnitActor.MsiWrite(0x300, msiIova, data));
    // The unit has sent its Deliver by the time it answers: only then ask the bank.
    pamu.tell(new IommuUnitActor.GetStats(stats.getRef()));
    assertEquals(1, stats.receiveMessage().msiWrites());
    banks.get(0).tell(new MsiBankActor.GetBankState(bankReplies.getRef()));
    assertEquals(1, bankReplies.expectMessageClass(MsiBankActor.BankState.class).delivered());
    pamu.tell(new IommuUnitActor.GetSnapshot(snaps.getRef()));
    IommuUnitActor.UnitSnapshotted pamuSnapshot = snaps.receiveMessage();
    assertNotNull(pamuSnapshot.pamu());
    Wire.assertRoundTrips(testKit, pamuSnapshot);

    TestProbe<DeviceActor.DeviceState> states = testKit.createTestProbe();
    gpu.tell(new DeviceActor.GetState(states.getRef()));
    assertEquals(1, states.receiveMessage().ownerVmId());
    TestProbe<DeviceActor.Quiesced> quiesced = testKit.createTestProbe();
    gpu.tell(new DeviceActor.Quiesce(quiesced.getRef()));
    quiesced.receiveMessage();
    gpu.tell(new DeviceActor.Resume());

    TestProbe<HostMemoryActor.MemoryReport> reports = testKit.createTestProbe();
    memory.tell(new HostMemoryActor.GetReport(reports.getRef()));
    HostMemoryActor.MemoryReport report = reports.receiveMessage();
    Wire.assertRoundTrips(testKit, report);
    assertEquals(2, report.pinnedFrames());
    assertTrue(report.checks().get(DmaCheck.OK) >= 2);
  }
}
