package io.iommulab.hardware.pamu;

import static io.iommulab.hardware.pamu.Pamus.GIB;
import static io.iommulab.hardware.pamu.Pamus.MIB;
import static io.iommulab.hardware.pamu.Pamus.assertRefused;
import static io.iommulab.hardware.pamu.Pamus.domain;
import static io.iommulab.hardware.pamu.Pamus.ok;
import static io.iommulab.hardware.pamu.Pamus.seedDomain;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The window rules of fsl_pamu_domain.c, each with its errno and "refusal changes nothing". */
class PamuDomainRulesTest {
  private final PamuUnit u = Pamus.unit();

  @Test
  void aNewDomainHasTheDefault64GiBApertureAndReportsTheHardwareMaximumWindowCount() {
    PamuDomain d = domain(u);
    assertEquals(0, d.apertureStart());
    assertEquals(64 * GIB, d.apertureSize());
    assertFalse(d.isGeometrySet());
    assertEquals(256, d.windowCount());
    assertFalse(d.isWindowCountSet());
  }

  @Test
  void aDomainAllocationTheInjectorFailsIsEnomemAndChangesNothing() {
    FailNth fail = new FailNth();
    PamuUnit v = Pamus.unit(0x800, fail);
    fail.arm(1);
    assertRefused(v, Errno.ENOMEM, v::allocDomain);
    assertEquals("pamu.domain", fail.failedSite());
    assertTrue(v.domains().isEmpty());
  }

  // ---------------------------------------------------------------- geometry

  @Test
  void aGeometryWhoseSizeIsNotAPowerOfTwoIsEinvalAndChangesNothing() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.EINVAL, () -> d.setGeometry(0, 3 * MIB));
  }

  @Test
  void aGeometryBelow4KiBIsEinval() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.EINVAL, () -> d.setGeometry(0, 2048));
  }

  @Test
  void aGeometryWhoseStartIsNotAlignedToItsSizeIsEinval() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.EINVAL, () -> d.setGeometry(256 * MIB, 512 * MIB));
    ok(d.setGeometry(512 * MIB, 512 * MIB));
  }

  @Test
  void aGeometryThatWrapsPast2To64IsEinval() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.EINVAL, () -> d.setGeometry(0xffff_ffff_ffff_f000L, 0x2000));
  }

  @Test
  void theGeometryIsFrozenWhileTheDomainIsEnabled() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(0, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.enable());
    assertRefused(u, Errno.EBUSY, () -> d.setGeometry(0, 1 * GIB));
    ok(d.disable());
    ok(d.setGeometry(0, 1 * GIB));
  }

  @Test
  void aNewGeometryOnAConfiguredDomainReprogramsItsLiodnsAndClearsItsWindows() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(0, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.setGeometry(1 * GIB, 1 * GIB));
    assertEquals(8, d.windowCount());
    assertEquals(128 * MIB, d.windowSize());
    assertEquals(0, d.mappedWindows());
    assertEquals(1 * GIB, u.ppaace(1).wba());
    assertEquals(1 * GIB, u.ppaace(1).windowSize());
    u.checkInvariants();
  }

  // ---------------------------------------------------------------- window count

  @Test
  void theWindowCountBeforeAnyGeometryIsEinval() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.EINVAL, () -> d.setWindowCount(8));
  }

  @Test
  void aWindowCountThatIsNotAPowerOfTwoOrAboveTheMaximumIsEinval() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 1 * GIB));
    assertRefused(u, Errno.EINVAL, () -> d.setWindowCount(3));
    assertRefused(u, Errno.EINVAL, () -> d.setWindowCount(0));
    assertRefused(u, Errno.EINVAL, () -> d.setWindowCount(512));
  }

  @Test
  void windowsSmallerThan4KiBAreEinval() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 16 * 1024));
    assertRefused(u, Errno.EINVAL, () -> d.setWindowCount(8));
    ok(d.setWindowCount(4));
  }

  @Test
  void theWindowCountIsFrozenWhileTheDomainIsEnabled() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(3, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.enable());
    assertRefused(u, Errno.EBUSY, () -> d.setWindowCount(4));
  }

  @Test
  void theWindowCountSplitsTheApertureIntoEqualWindowsFromItsStart() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(2 * GIB, 512 * MIB));
    ok(d.setWindowCount(8));
    assertEquals(8, d.windowCount());
    assertEquals(64 * MIB, d.windowSize());
    assertEquals(2 * GIB + 5 * 64 * MIB, d.windowIova(5));
    assertEquals(5, d.windowOf(2 * GIB + 5 * 64 * MIB + 123));
  }

  // ---------------------------------------------------------------- window enable

  @Test
  void enablingAWindowBeforeTheWindowCountIsEnodev() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 1 * GIB));
    assertRefused(u, Errno.ENODEV, () -> d.windowEnable(0, 0, 4096, Access.READ));
  }

  @Test
  void enablingAWindowBeyondTheCountIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.windowEnable(8, 0, 4096, Access.READ));
    assertRefused(u, Errno.EINVAL, () -> d.windowEnable(-1, 0, 4096, Access.READ));
  }

  @Test
  void enablingMoreThanTheWindowSizeIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.windowEnable(0, 0, 128 * MIB, Access.READ));
  }

  @Test
  void anEnabledSizeThatIsNotAPowerOfTwoOrBelow4KiBIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.windowEnable(0, 0, 12 * 1024, Access.READ));
    assertRefused(u, Errno.EINVAL, () -> d.windowEnable(0, 0, 2048, Access.READ));
  }

  @Test
  void aPhysicalAddressNotNaturallyAlignedToTheSizeIsEinval() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.EINVAL, () -> d.windowEnable(0, 0x1_0010_0000L, 64 * MIB, Access.READ));
    ok(d.windowEnable(0, 0x1_0010_0000L, 1 * MIB, Access.READ));
  }

  @Test
  void enablingAWindowThatIsAlreadyEnabledIsEbusy() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(2, 0x1_0000_0000L, 64 * MIB, Access.READ));
    assertRefused(u, Errno.EBUSY, () -> d.windowEnable(2, 0x2_0000_0000L, 64 * MIB, Access.READ));
  }

  @Test
  void aSingleWindowCannotBeUpdatedWhileTheDomainIsEnabled() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 1 * GIB));
    ok(d.setWindowCount(1));
    ok(d.attach(1));
    ok(d.windowEnable(0, 0x1_0000_0000L, 256 * MIB, Access.READ_WRITE));
    ok(d.enable());
    // even a window that is not enabled: with one window the PPAACE is live
    assertRefused(u, Errno.EBUSY, () -> d.windowEnable(0, 0x1_0000_0000L, 256 * MIB, Access.READ));
  }

  @Test
  void aSingleWindowProgramsThePpaaceAloneWithTheEnabledSize() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 1 * GIB));
    ok(d.setWindowCount(1));
    ok(d.attach(7));
    ok(d.windowEnable(0, 0x1_4000_0000L, 256 * MIB, Access.READ));
    Paace.State p = u.ppaace(7);
    assertFalse(p.multiWindow());
    assertEquals(256 * MIB, p.windowSize());
    assertEquals(0x1_4000_0000L, p.twba());
    assertEquals(Paace.AP_QUERY, p.ap());
    assertEquals(0, u.spaactPool().used());
  }

  // ---------------------------------------------------------------- enable, disable

  @Test
  void enablingADomainWithNothingMappedIsEnodev() {
    PamuDomain d = seedDomain(u, 1);
    assertRefused(u, Errno.ENODEV, d::enable);
  }

  @Test
  void enablingSetsVOnEveryAttachedLiodnAndDisablingClearsIt() {
    PamuDomain d = seedDomain(u, 1, 2);
    ok(d.windowEnable(1, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    assertFalse(u.isLiodnValid(1));
    ok(d.enable());
    assertTrue(u.isLiodnValid(1) && u.isLiodnValid(2));
    ok(d.disable());
    assertFalse(u.isLiodnValid(1) || u.isLiodnValid(2));
  }

  @Test
  void disablingTheLastEnabledWindowDisablesTheDomain() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(1, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.windowEnable(2, 0x1_0400_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.enable());
    ok(d.windowDisable(1));
    assertTrue(d.isEnabled());
    ok(d.windowDisable(2));
    assertFalse(d.isEnabled());
    assertFalse(u.isLiodnValid(1));
    u.checkInvariants();
  }

  @Test
  void disablingSubwindowZeroDeniesAccessAndOtherSubwindowsLoseTheirValidBit() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(0, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.windowEnable(1, 0x1_0400_0000L, 64 * MIB, Access.READ_WRITE));
    int fspi = u.ppaace(1).fspi();
    assertTrue(u.spaace(fspi).valid());
    ok(d.windowDisable(0));
    ok(d.windowDisable(1));
    assertEquals(Paace.AP_DENIED, u.ppaace(1).ap());
    assertFalse(u.spaace(fspi).valid());
  }

  @Test
  void disablingAWindowBeforeTheCountIsEnodevAndOutOfRangeIsEinval() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.ENODEV, () -> d.windowDisable(0));
    ok(d.setGeometry(0, 1 * GIB));
    ok(d.setWindowCount(2));
    assertRefused(u, Errno.EINVAL, () -> d.windowDisable(2));
  }

  // ---------------------------------------------------------------- attach, detach, free

  @Test
  void attachingALiodnBeyondThePpaactIsEinval() {
    PamuDomain d = seedDomain(u);
    assertRefused(u, Errno.EINVAL, () -> d.attach(0x500));
    assertRefused(u, Errno.EINVAL, () -> d.attach(-1));
  }

  @Test
  void attachingALiodnAttachedToAnotherDomainIsEbusy() {
    PamuDomain a = seedDomain(u, 9);
    PamuDomain b = seedDomain(u);
    assertRefused(u, Errno.EBUSY, () -> b.attach(9));
    assertEquals(a, u.domainOf(9).orElseThrow());
  }

  @Test
  void attachProgramsThePpaaceFromTheDomainWithValidClearUntilEnabled() {
    PamuDomain d = seedDomain(u);
    ok(d.windowEnable(2, 0x1_0800_0000L, 64 * MIB, Access.READ));
    ok(d.attach(5));
    Paace.State p = u.ppaace(5);
    assertFalse(p.valid());
    assertTrue(p.multiWindow());
    assertEquals(8, p.subwindowCount());
    assertEquals(512 * MIB, p.windowSize());
    Paace.State s = u.spaace(p.fspi() + 1);
    assertTrue(s.valid());
    assertEquals(0x1_0800_0000L, s.twba());
    assertEquals(5, s.liodn());
    assertEquals(List.of(5), d.liodns());
  }

  @Test
  void detachingRestoresTheDefaultBypassEntryAndFreesTheSpaaces() {
    PamuDomain d = seedDomain(u, 5);
    assertEquals(7, u.spaactPool().used());
    ok(d.detach(5));
    assertTrue(u.isBypass(5));
    assertEquals(0, u.spaactPool().used());
    assertTrue(u.domainOf(5).isEmpty());
    u.checkInvariants();
  }

  @Test
  void detachingALiodnThatIsNotAttachedHereIsEnoent() {
    PamuDomain a = seedDomain(u, 5);
    PamuDomain b = seedDomain(u);
    assertRefused(u, Errno.ENOENT, () -> b.detach(5));
    assertRefused(u, Errno.ENOENT, () -> a.detach(6));
    assertRefused(u, Errno.EINVAL, () -> a.detach(0x500));
  }

  @Test
  void freeingADomainWithLiodnsAttachedIsEbusy() {
    PamuDomain d = seedDomain(u, 5);
    assertRefused(u, Errno.EBUSY, d::free);
    ok(d.detach(5));
    ok(d.free());
    assertTrue(u.domains().isEmpty());
    assertThrows(IllegalStateException.class, () -> d.attach(5));
  }

  // ---------------------------------------------------------------- stash and operation mapping

  @Test
  void theStashTargetCanChangeWhileEnabledAndReachesTheLiveEntries() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(1, 0x1_0000_0000L, 64 * MIB, Access.READ_WRITE));
    ok(d.enable());
    ok(d.setStash(1, 0x21));
    assertEquals(0x21, u.spaace(u.ppaace(1).fspi()).cid());
    ok(d.setStash(PamuDomain.ALL_WINDOWS, 0x10));
    assertEquals(0x10, u.ppaace(1).cid());
    assertEquals(0x10, d.stash(7).value());
    ok(d.setOperationMapping(PamuDomain.ALL_WINDOWS, 2));
    assertEquals(2, u.ppaace(1).omi());
    assertTrue(d.isEnabled());
    u.checkInvariants();
  }

  @Test
  void stashAndOperationMappingBeforeTheWindowCountAreEnodevAndBadValuesEinval() {
    PamuDomain d = domain(u);
    assertRefused(u, Errno.ENODEV, () -> d.setStash(PamuDomain.ALL_WINDOWS, 1));
    ok(d.setGeometry(0, 1 * GIB));
    ok(d.setWindowCount(4));
    assertRefused(u, Errno.EINVAL, () -> d.setStash(4, 1));
    assertRefused(u, Errno.EINVAL, () -> d.setStash(0, 256));
    assertRefused(u, Errno.EINVAL, () -> d.setOperationMapping(0, 16));
    assertEquals(Errno.EINVAL, d.stash(4).errnoOrNull());
  }
}
