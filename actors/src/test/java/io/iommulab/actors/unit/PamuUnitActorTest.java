package io.iommulab.actors.unit;

import io.iommulab.actors.pipeline.FaultSinks;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor.MemoryReport;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor.AllocDomain;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.DmaFaulted;
import io.iommulab.actors.unit.IommuUnitActor.DomainAllocated;
import io.iommulab.actors.unit.IommuUnitActor.DomainType;
import io.iommulab.actors.unit.IommuUnitActor.EnforceCacheCoherency;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.FreeDomain;
import io.iommulab.actors.unit.IommuUnitActor.InvalidateUser;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.MsiBankMapped;
import io.iommulab.actors.unit.IommuUnitActor.MsiWrite;
import io.iommulab.actors.unit.IommuUnitActor.PamuGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuGetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuMapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetWindowCount;
import io.iommulab.actors.unit.IommuUnitActor.PamuUnmapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.ReadAndClearDirty;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.Replace;
import io.iommulab.actors.unit.IommuUnitActor.SetDirtyTracking;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Map;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Unmap;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.fault.FaultReason;
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

/** A PAMU unit actor with real MSI bank actors: the 2013 thread's windows and MSI banks. */
class PamuUnitActorTest {
  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int DPAA = 0x0300;
  private static final int PCIE = 0x0308;
  private static final int NONE = IommuUnitActor.NO_PASID;
  /** A 2 MiB aperture in 8 windows of 256 KiB. */
  private static final long APERTURE = 2 * Fixtures.MIB;
  private static final long WINDOW = APERTURE / 8;

  private final Map<Integer, ActorRef<MsiBankActor.Command>> banks = spawnBanks();
  private final UnitHarness h = new UnitHarness(testKit, Fixtures.pamu("pamu0"), banks);
  private final TestProbe<MsiBankActor.BankReply> bankReplies = testKit.createTestProbe();

  private static Map<Integer, ActorRef<MsiBankActor.Command>> spawnBanks() {
    Map<Integer, ActorRef<MsiBankActor.Command>> m = new HashMap<>();
    for (MsiBankSettings s : Fixtures.banks()) {
      m.put(s.index(), testKit.spawn(MsiBankActor.create(s, FaultInjector.NONE)));
    }
    return Map.copyOf(m);
  }

  private int domain() {
    return h.ask(new AllocDomain(DomainType.PAMU, false, false, 0, h.replies.getRef()),
        DomainAllocated.class).domainId();
  }

  /** A domain with the test geometry, {@code rid} claimed by {@code vm} and attached. */
  private int attachedDomain(int rid, int vm, TestProbe<DeviceActor.Command> dev,
      ActorRef<FaultEvent> sink) {
    int d = domain();
    h.ok(new PamuSetGeometry(d, 0, APERTURE, h.replies.getRef()));
    h.ok(new PamuSetWindowCount(d, 8, h.replies.getRef()));
    h.claim(rid, vm, vm, dev);
    h.ok(new Attach(rid, NONE, d, sink, 0L, h.replies.getRef()));
    return d;
  }

  private MsiBankActor.BankState bank(int index) {
    banks.get(index).tell(new MsiBankActor.GetBankState(bankReplies.getRef()));
    return bankReplies.expectMessageClass(MsiBankActor.BankState.class);
  }

  @Test
  void domainsAreWindowedAndPagingCommandsAreNotSupported() {
    DomainAllocated d = h.ask(new AllocDomain(DomainType.PAMU, false, false, 0, h.replies.getRef()),
        DomainAllocated.class);
    assertEquals((1L << 36) - 1, d.apertureLast());
    int id = d.domainId();
    h.refused(Errno.EOPNOTSUPP, new AllocDomain(DomainType.PAGING, false, false, 0, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new AllocDomain(DomainType.NESTED, false, false, id, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new Replace(DPAA, NONE, id, null, 0L, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new EnforceCacheCoherency(id, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new SetDirtyTracking(id, true, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new ReadAndClearDirty(id, 0, 4096, false, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new Stage1Map(id, 0, 0, 4096, Access.READ, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new Stage1Unmap(id, 0, 4096, h.replies.getRef()));
    h.refused(Errno.EOPNOTSUPP, new InvalidateUser(id, List.of(), h.replies.getRef()));
  }

  @Test
  void geometryAndWindowCountFollowTheDriversRules() {
    int d = domain();
    h.refused(Errno.EINVAL, new PamuSetWindowCount(d, 8, h.replies.getRef()));
    h.refused(Errno.EINVAL, new PamuSetGeometry(d, 0x1000, APERTURE, h.replies.getRef()));
    h.refused(Errno.EINVAL, new PamuSetGeometry(d, 0, 3 * Fixtures.MIB, h.replies.getRef()));
    h.refused(Errno.ENOENT, new PamuSetGeometry(99, 0, APERTURE, h.replies.getRef()));
    h.ok(new PamuSetGeometry(d, 0, APERTURE, h.replies.getRef()));
    h.refused(Errno.EINVAL, new PamuSetWindowCount(d, 3, h.replies.getRef()));
    h.refused(Errno.EINVAL, new PamuSetWindowCount(d, 512, h.replies.getRef()));
    h.ok(new PamuSetWindowCount(d, 8, h.replies.getRef()));
    PamuGeometry g = h.ask(new PamuGetGeometry(d, h.replies.getRef()), PamuGeometry.class);
    assertEquals(new PamuGeometry(0, APERTURE, 8, 256, true, false), g);
  }

  @Test
  void commandsOnAMissingDomainAreRefusedAndChangeNothing() {
    int d = domain();
    h.refused(Errno.ENOENT, new PamuGetGeometry(99, h.replies.getRef()));
    h.refused(Errno.ENOENT, new PamuSetWindowCount(99, 8, h.replies.getRef()));
    h.refused(Errno.ENOENT, new PamuMapMsiBank(99, 0, Fixtures.MSIIR0, 0, h.replies.getRef()));
    h.refused(Errno.ENOENT, new PamuUnmapMsiBank(99, 0, h.replies.getRef()));
    h.refused(Errno.ENOENT, new FreeDomain(99, h.replies.getRef()));
    h.refused(Errno.ENOENT, new MapRange(99, 0, new long[] {0}, new long[] {WINDOW}, Access.READ,
        h.replies.getRef()));
    h.refused(Errno.EINVAL, UnmapRange.strict(d, 0, 0, h.replies.getRef()));
    h.refused(Errno.ENODEV, new PamuMapMsiBank(d, 0, Fixtures.MSIIR0, 0, h.replies.getRef()));
    h.refused(Errno.ENODEV, new Detach(DPAA, NONE, h.replies.getRef()));
  }

  @Test
  void devicesAreRegisteredByLiodnWithoutPasidOrAts() {
    TestProbe<DeviceActor.Command> probe = testKit.createTestProbe();
    h.refused(Errno.EINVAL, new RegisterDevice(DPAA, 0x500, 7, 0, false, false, probe.getRef(), h.replies.getRef()));
    h.refused(Errno.EINVAL, new RegisterDevice(DPAA, 1, 7, 0, true, false, probe.getRef(), h.replies.getRef()));
    h.refused(Errno.EINVAL, new RegisterDevice(DPAA, 1, 7, 4, false, false, probe.getRef(), h.replies.getRef()));
    TestProbe<DeviceActor.Command> dpaa = h.pamuDevice(DPAA, 7, 1);
    UnitInfo info = h.claim(DPAA, 3, 3, dpaa).info();
    assertEquals(UnitKind.PAMU, info.kind());
    assertEquals(0, info.pasidBits());
    assertEquals(List.of(), info.reservedRegions());
  }

  @Test
  void attachingNeedsAnOwnerAndNoPasid() {
    TestProbe<DeviceActor.Command> dpaa = h.pamuDevice(DPAA, 7, 1);
    int d = domain();
    h.refused(Errno.EPERM, new Attach(DPAA, NONE, d, null, 0L, h.replies.getRef()));
    h.claim(DPAA, 3, 3, dpaa);
    h.refused(Errno.EINVAL, new Attach(DPAA, 1, d, null, 0L, h.replies.getRef()));
    h.refused(Errno.ENOENT, new Attach(DPAA, NONE, 42, null, 0L, h.replies.getRef()));
    h.ok(new Attach(DPAA, NONE, d, null, 0L, h.replies.getRef()));
    h.refused(Errno.EBUSY, new Attach(DPAA, NONE, d, null, 0L, h.replies.getRef()));
    h.refused(Errno.EBUSY, new FreeDomain(d, h.replies.getRef()));
    h.ok(new Detach(DPAA, NONE, h.replies.getRef()));
    assertTrue(h.snapshot().pamu().ppaact().get(1).isDefaultBypass(),
        "a detached LIODN gets the default bypass entry back");
    h.refused(Errno.EINVAL, new Detach(DPAA, NONE, h.replies.getRef()));
    h.ok(new FreeDomain(d, h.replies.getRef()));
  }

  @Test
  void dmaGoesThroughTheWindowsAndAViolationDisablesTheLiodn() {
    GuestMemoryLayout vm = h.vm(3, 4 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> dpaa = h.pamuDevice(DPAA, 7, 1);
    TestProbe<FaultEvent> fd = testKit.createTestProbe();
    int d = attachedDomain(DPAA, 3, dpaa, FaultSinks.unbatching(testKit, fd.getRef()));
    h.refused(Errno.EINVAL, new MapRange(d, 0x1000, new long[] {vm.pageHpa(0)},
        new long[] {WINDOW}, Access.READ_WRITE, h.replies.getRef()));
    h.map(d, 0, vm.pageHpa(0), 2 * WINDOW, Access.READ_WRITE);
    MemoryReport before = h.report();
    BurstTranslated ok = h.burst(DPAA, NONE, new long[] {0x40, WINDOW + 0x80}, Access.WRITE, false);
    assertEquals(0, ok.status()[0]);
    assertEquals(vm.pageHpa(0) + WINDOW + 0x80, ok.hpas()[1]);
    assertEquals(2, h.report().checks().get(DmaCheck.OK) - before.checks().get(DmaCheck.OK));

    BurstTranslated bad = h.burst(DPAA, NONE, new long[] {3 * WINDOW}, Access.READ, false);
    assertEquals((byte) (FaultReason.WINDOW_DISABLED.ordinal() + 1), bad.status()[0]);
    assertEquals(FaultReason.WINDOW_DISABLED, fd.expectMessageClass(DmaFaulted.class).fault().reason());
    BurstTranslated after = h.burst(DPAA, NONE, new long[] {0x40}, Access.READ, false);
    assertEquals((byte) (FaultReason.LIODN_DISABLED.ordinal() + 1), after.status()[0],
        "the violation ISR disabled the LIODN");
    fd.expectMessageClass(DmaFaulted.class);

    Unmapped u = h.ask(UnmapRange.strict(d, 0, 2 * WINDOW, h.replies.getRef()), Unmapped.class);
    assertEquals(2 * WINDOW, u.bytes());
    assertFalse(h.ask(new PamuGetGeometry(d, h.replies.getRef()), PamuGeometry.class).enabled());
  }

  @Test
  void anMsiWriteThroughTheBankWindowReachesTheBank() {
    GuestMemoryLayout vm = h.vm(3, 2 * Fixtures.MIB);
    TestProbe<DeviceActor.Command> dpaa = h.pamuDevice(DPAA, 7, 1);
    int d = attachedDomain(DPAA, 3, dpaa, null);
    h.map(d, 0, vm.pageHpa(0), WINDOW, Access.READ_WRITE);
    h.refused(Errno.EINVAL, new PamuMapMsiBank(d, 9, Fixtures.MSIIR0, 7 * WINDOW, h.replies.getRef()));
    long msiIova = h.ask(new PamuMapMsiBank(d, 1, Fixtures.MSIIR0 + 0x1000, 7 * WINDOW + 0x40,
        h.replies.getRef()), MsiBankMapped.class).msiIova();
    assertEquals(7 * WINDOW, msiIova);
    h.refused(Errno.EBUSY, new PamuMapMsiBank(d, 0, Fixtures.MSIIR0, 7 * WINDOW, h.replies.getRef()));
    banks.get(1).tell(new MsiBankActor.AllocateVectors(DPAA, 7, 2, bankReplies.getRef()));
    MsiBankActor.VectorsAllocated v =
        bankReplies.expectMessageClass(MsiBankActor.VectorsAllocated.class);
    h.unit.tell(new MsiWrite(DPAA, msiIova, v.data()[1]));
    // A write into the DMA window is memory, not an interrupt.
    h.unit.tell(new MsiWrite(DPAA, 0x100, 5));
    // The unit has sent its Deliver by the time it answers: only then ask the bank.
    assertEquals(2, h.stats().msiWrites());
    MsiBankActor.BankState s = bank(1);
    assertEquals(1, s.delivered());
    assertEquals(0, s.crossOwnerInterrupts());
    assertEquals(0, bank(0).delivered());
    h.ok(new PamuUnmapMsiBank(d, 7 * WINDOW + 0x40, h.replies.getRef()));
    h.refused(Errno.EINVAL, new PamuUnmapMsiBank(d, 7 * WINDOW + 0x40, h.replies.getRef()));
  }

  @Test
  void groupsOfTwoVmsSharingABankBreakInterruptIsolation() {
    TestProbe<DeviceActor.Command> dpaa = h.pamuDevice(DPAA, 7, 1);
    TestProbe<DeviceActor.Command> pcie = h.pamuDevice(PCIE, 8, 2);
    h.claim(DPAA, 3, 3, dpaa);
    h.claim(PCIE, 4, 4, pcie);
    banks.get(0).tell(new MsiBankActor.AllocateVectors(DPAA, 7, 1, bankReplies.getRef()));
    bankReplies.expectMessageClass(MsiBankActor.VectorsAllocated.class);
    banks.get(0).tell(new MsiBankActor.AllocateVectors(PCIE, 8, 1, bankReplies.getRef()));
    bankReplies.expectMessageClass(MsiBankActor.VectorsAllocated.class);
    MsiBankActor.BankState s = bank(0);
    assertTrue(s.isolationBroken());
    assertEquals(List.of(3, 4), s.owners(), "the unit told the bank each group's owner");
    assertEquals(1, s.breaches());
  }
}
