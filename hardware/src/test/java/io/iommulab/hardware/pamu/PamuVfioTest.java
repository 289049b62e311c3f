package io.iommulab.hardware.pamu;

import static io.iommulab.hardware.pamu.Pamus.GIB;
import static io.iommulab.hardware.pamu.Pamus.MIB;
import static io.iommulab.hardware.pamu.Pamus.assertRefused;
import static io.iommulab.hardware.pamu.Pamus.domain;
import static io.iommulab.hardware.pamu.Pamus.ok;
import static io.iommulab.hardware.pamu.Pamus.seedDomain;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.msi.MsiAllocationPolicy;
import io.iommulab.hardware.msi.MsiBank;
import io.iommulab.hardware.msi.MsiBankSet;
import io.iommulab.hardware.msi.MsiDelivery;
import io.iommulab.hardware.msi.MsiVector;
import java.util.List;
import org.junit.jupiter.api.Test;

/** vfio_iommu_fsl_pamu.c on top of the domain: whole-window maps, enable on map, MSI banks. */
class PamuVfioTest {
  private static final long RAM = 0x1_0000_0000L; // guest RAM, physically contiguous, 64 MiB aligned
  private static final long WIN = 64 * MIB;

  private final PamuUnit u = Pamus.unit();
  private final MsiBankSet banks =
      new MsiBankSet(
          List.of(
              new MsiBankSettings(0, 0xf_fe04_4000L, 256),
              new MsiBankSettings(1, 0xf_fe04_5000L, 256),
              new MsiBankSettings(2, 0xf_fe04_6000L, 256)),
          MsiAllocationPolicy.PACK,
          FaultInjector.NONE);
  private final Translation t = new Translation();

  @Test
  void theThreadsExampleGuestMapsRamInFourWindowsAndThreeMsiBanksInTheNextThree() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(0, RAM, 4 * WIN, Access.READ_WRITE));
    for (int b = 0; b < banks.msiBankCount(); b++) {
      ok(d.mapMsiBank(banks.bank(b), 0x1000_0000L + b * WIN));
    }
    assertEquals(7, d.mappedWindows());
    assertFalse(d.isWindowEnabled(7));
    assertEquals(0x1400_0000L, d.msiIova(banks.bank(1)).value());
    assertEquals(0xf_fe04_5000L, d.windowPaddr(5));
    assertEquals(0x1000, d.windowMappedSize(5), "a whole 64 MiB window for one 4 KiB page");
    assertEquals(PamuDomain.WindowUse.MSI, d.windowUse(4));
    u.checkInvariants();
  }

  @Test
  void aBankKnownOnlyByIndexAndAddressMapsLikeTheBankItself() {
    PamuDomain d = seedDomain(u, 1);
    MsiBankSettingsView bank = new MsiBankSettingsView(banks.bank(2).index(), banks.bank(2).msiirAddress());
    ok(d.mapMsiBank(bank.index(), bank.address(), 6 * WIN + 0x2000));
    assertEquals(PamuDomain.WindowUse.MSI, d.windowUse(6));
    assertEquals(2, d.windowMsiBank(6));
    assertEquals(banks.bank(2).msiirPage(), d.windowPaddr(6));
    assertEquals(d.msiIova(banks.bank(2)).value(), d.msiIova(bank.index(), bank.address()).value());
    assertEquals(6 * WIN + (bank.address() & 0xfff), d.msiIova(bank.index(), bank.address()).value());
    assertRefused(u, Errno.EBUSY, () -> d.mapMsiBank(0, banks.bank(0).msiirAddress(), 6 * WIN));
    assertRefused(u, Errno.EINVAL, () -> d.mapMsiBank(-1, banks.bank(0).msiirAddress(), 5 * WIN));
    assertRefused(u, Errno.EINVAL, () -> d.mapMsiBank(0, banks.bank(0).msiirAddress(), 8 * WIN));
    assertEquals(Errno.EINVAL, d.msiIova(0, banks.bank(0).msiirAddress()).errnoOrNull());
    u.checkInvariants();
  }

  private record MsiBankSettingsView(int index, long address) {}

  @Test
  void theFirstMapEnablesTheDomainAndUnmappingEverythingDisablesIt() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.mapMsiBank(banks.bank(0), 7 * WIN));
    assertFalse(d.isEnabled(), "an MSI bank map does not enable the aperture");
    ok(d.map(0, RAM, WIN, Access.READ_WRITE));
    assertTrue(d.isEnabled());
    assertTrue(u.isLiodnValid(1));
    ok(d.map(2 * WIN, RAM + 2 * WIN, 2 * WIN, Access.READ));
    assertEquals(WIN, d.unmap(0, WIN).value());
    assertTrue(d.isEnabled(), "windows 2 and 3 are still mapped");
    assertEquals(2 * WIN, d.unmap(0, 8 * WIN).value());
    assertFalse(d.isEnabled(), "no DMA mapping left, even with the MSI window");
    assertFalse(u.isLiodnValid(1));
    assertTrue(d.isWindowEnabled(7));
    u.checkInvariants();
  }

  @Test
  void geometryAndWindowCountAreFrozenWhileMappedAndFreeAfterTheLastUnmap() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(WIN, RAM, WIN, Access.READ_WRITE));
    assertRefused(u, Errno.EBUSY, () -> d.setGeometry(0, 1 * GIB));
    assertRefused(u, Errno.EBUSY, () -> d.setWindowCount(16));
    ok(d.unmap(WIN, WIN));
    ok(d.setWindowCount(16));
  }

  @Test
  void aMapThatDoesNotStartOnAWindowBoundaryIsEinvalAndChangesNothing() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.map(0x1000, RAM, WIN, Access.READ_WRITE));
  }

  @Test
  void aMapThatIsNotWholeWindowsIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.map(0, RAM, WIN + 0x1000, Access.READ_WRITE));
    assertRefused(u, Errno.EINVAL, () -> d.map(0, RAM, 0x1000, Access.READ_WRITE));
  }

  @Test
  void aMapOutsideOrRunningPastTheApertureIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.map(8 * WIN, RAM, WIN, Access.READ_WRITE));
    assertRefused(u, Errno.EINVAL, () -> d.map(6 * WIN, RAM, 4 * WIN, Access.READ_WRITE));
  }

  @Test
  void aMapWithoutReadOrWriteOrEmptyOrWrappingIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.map(0, RAM, WIN, 0));
    assertRefused(u, Errno.EINVAL, () -> d.map(0, RAM, 0, Access.READ));
    assertRefused(u, Errno.EINVAL, () -> d.map(-WIN, RAM, 2 * WIN, Access.READ));
  }

  @Test
  void aMapBeforeTheWindowCountIsEnodev() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 512 * MIB));
    assertRefused(u, Errno.ENODEV, () -> d.map(0, RAM, WIN, Access.READ));
  }

  @Test
  void aMapOverlappingAMappingOrAnMsiWindowIsEbusy() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(WIN, RAM, 2 * WIN, Access.READ_WRITE));
    ok(d.mapMsiBank(banks.bank(0), 4 * WIN));
    assertRefused(u, Errno.EBUSY, () -> d.map(0, RAM, 2 * WIN, Access.READ));
    assertRefused(u, Errno.EBUSY, () -> d.map(3 * WIN, RAM, 2 * WIN, Access.READ));
  }

  @Test
  void aMapIsAllOrNothingWhenALaterWindowIsRefused() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.map(0, RAM + 0x1000, 2 * WIN, Access.READ));
    // windows 0 and 1 are fine, window 2 holds an MSI bank: nothing of the call may stay enabled
    ok(d.mapMsiBank(banks.bank(0), 2 * WIN));
    assertRefused(u, Errno.EBUSY, () -> d.map(0, RAM, 3 * WIN, Access.READ));
    assertFalse(d.isWindowEnabled(0));
  }

  @Test
  void unmappingPartOfAWindowUnmapsTheWholeWindow() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(0, RAM, 2 * WIN, Access.READ_WRITE));
    assertEquals(WIN, d.unmap(WIN + 0x1000, 0x1000).value());
    assertFalse(d.isWindowEnabled(1));
    assertEquals(Errno.EINVAL, d.unmap(0, 0).errnoOrNull());
  }

  @Test
  void aMapReenablesLiodnsTheViolationIsrDisabled() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(0, RAM, WIN, Access.READ));
    u.translate(1, 5 * WIN, Access.READ, 0, t.reset());
    assertFalse(u.isLiodnValid(1));
    ok(d.map(WIN, RAM + WIN, WIN, Access.READ));
    assertTrue(u.isLiodnValid(1));
  }

  @Test
  void anMsiBankTakesAWholeWindowButOnlyItsFirstPageTranslates() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(0, RAM, WIN, Access.READ_WRITE));
    MsiBank bank = banks.bank(2);
    ok(d.mapMsiBank(bank, 6 * WIN + 0x123)); // any iova in the window selects it
    long iova = d.msiIova(bank).value();
    assertEquals(6 * WIN, iova);
    assertEquals(bank.msiirAddress(), u.translate(1, iova, Access.WRITE, 0, t.reset()).hpa);
    assertEquals(FaultReason.WINDOW_DISABLED, u.translate(1, iova + 0x1000, Access.WRITE, 0, t.reset()).fault);
  }

  @Test
  void mappingAnMsiBankIntoAnEnabledWindowIsEbusyAndOutsideTheApertureEinval() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.map(0, RAM, WIN, Access.READ_WRITE));
    assertRefused(u, Errno.EBUSY, () -> d.mapMsiBank(banks.bank(0), 0x40));
    assertRefused(u, Errno.EINVAL, () -> d.mapMsiBank(banks.bank(0), 8 * WIN));
    assertRefused(u, Errno.EINVAL, () -> d.mapMsiBank(banks.bank(0), WIN, 0));
    PamuDomain fresh = domain(u);
    assertRefused(u, Errno.ENODEV, () -> fresh.mapMsiBank(banks.bank(0), 0));
  }

  @Test
  void theMsiIovaOfAnUnmappedBankIsEinvalAndUnmappingAnUnknownMsiIovaIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.mapMsiBank(banks.bank(0), 5 * WIN + 8));
    assertEquals(Errno.EINVAL, d.msiIova(banks.bank(1)).errnoOrNull());
    assertRefused(u, Errno.EINVAL, () -> d.unmapMsiBank(5 * WIN));
    ok(d.unmapMsiBank(5 * WIN + 8)); // the exact iova given to MAP_MSI_BANK
    assertEquals(Errno.EINVAL, d.msiIova(banks.bank(0)).errnoOrNull());
  }

  @Test
  void userSpaceReservesOneWindowPerBankAndTheDeviceRaisesItsOwnVector() {
    PamuDomain d = seedDomain(u, 1);
    int reserve = banks.msiBankCount();
    ok(d.map(0, RAM, (d.windowCount() - reserve) * WIN, Access.READ_WRITE));
    for (int b = 0; b < reserve; b++) {
      ok(d.mapMsiBank(banks.bank(b), d.windowIova(d.windowCount() - reserve + b)));
    }
    MsiVector v = banks.allocate(0x0100, 1, 1).value().get(0);
    long address = d.msiIova(banks.bank(v.bank())).value();
    Translation r = u.translate(1, address, Access.WRITE, 0, t.reset());
    MsiDelivery fired = banks.deliver(0x0100, r.hpa, v.data()).value();
    assertEquals(v.vector(), fired.vector());
    assertFalse(fired.crossOwner());
  }

  @Test
  void twoVmsSharingAPackedBankCanRaiseEachOthersInterrupts() {
    PamuDomain vmA = seedDomain(u, 1);
    PamuDomain vmB = seedDomain(u, 2);
    banks.setGroupOwner(10, 100);
    banks.setGroupOwner(20, 200);
    MsiVector a = banks.allocate(0x0100, 10, 1).value().get(0);
    banks.allocate(0x0200, 20, 1);
    assertEquals(1, banks.isolationReport().size(), "PACK put both in bank 0");
    ok(vmA.mapMsiBank(banks.bank(0), 7 * WIN));
    ok(vmB.mapMsiBank(banks.bank(0), 7 * WIN));
    ok(vmB.map(0, RAM, WIN, Access.READ_WRITE));
    // VM B's device writes VM A's data word to its own (legitimately mapped) MSI window
    Translation r = u.translate(2, vmB.msiIova(banks.bank(0)).value(), Access.WRITE, 0, t.reset());
    assertTrue(r.ok());
    MsiDelivery fired = banks.deliver(0x0200, r.hpa, a.data()).value();
    assertTrue(fired.crossOwner());
    assertEquals(100, fired.targetOwner());
    assertEquals(1, banks.crossOwnerInterrupts());
  }
}
