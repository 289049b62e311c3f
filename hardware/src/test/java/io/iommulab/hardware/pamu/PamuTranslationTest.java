package io.iommulab.hardware.pamu;

import static io.iommulab.hardware.pamu.Pamus.GIB;
import static io.iommulab.hardware.pamu.Pamus.MIB;
import static io.iommulab.hardware.pamu.Pamus.domain;
import static io.iommulab.hardware.pamu.Pamus.ok;
import static io.iommulab.hardware.pamu.Pamus.seedDomain;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.iommu.Translation;
import org.junit.jupiter.api.Test;

/** DMA through the PAACT: windows, subwindows, every fault reason, and the violation ISR. */
class PamuTranslationTest {
  private static final long RAM0 = 0x1_0000_0000L;
  private static final long RAM1 = 0x2_4000_0000L;

  private final PamuUnit u = Pamus.unit();
  private final Translation t = new Translation();

  private Translation dma(int liodn, long iova, int access) {
    return u.translate(liodn, iova, access, 1_000, t.reset());
  }

  /** Seed layout: windows 0 and 1 map guest RAM, enabled, LIODN 1 attached. */
  private PamuDomain guest() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(0, RAM0, 64 * MIB, Access.READ_WRITE));
    ok(d.windowEnable(1, RAM1, 64 * MIB, Access.READ));
    ok(d.enable());
    return d;
  }

  @Test
  void aLiodnWithTheDefaultEntryBypassesTranslationInsideThe64GiBWindow() {
    Translation r = dma(3, 0x8_1234_5678L, Access.WRITE);
    assertTrue(r.ok());
    assertEquals(0x8_1234_5678L, r.hpa);
    assertEquals(PageSize.SIZE_1G, r.pageSize);
    assertEquals(FaultReason.OUTSIDE_APERTURE, dma(3, 64 * GIB, Access.READ).fault);
  }

  @Test
  void aLiodnAttachedToADomainWithoutWindowCountStillBypasses() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 1 * GIB));
    ok(d.attach(3));
    // the driver programs the PPAACE only once the domain has windows
    assertTrue(u.isBypass(3));
    assertEquals(0x7_0000_0000L, dma(3, 0x7_0000_0000L, Access.WRITE).hpa);
    ok(d.setWindowCount(4));
    assertEquals(FaultReason.LIODN_DISABLED, dma(3, 0, Access.READ).fault);
  }

  @Test
  void aDmaThroughASubwindowLandsAtTheWindowsPhysicalBasePlusTheOffset() {
    guest();
    Translation r = dma(1, 64 * MIB + 0x1234, Access.READ);
    assertTrue(r.ok(), r::toString);
    assertEquals(RAM1 + 0x1234, r.hpa);
    assertEquals(Translation.Source.PAMU_WINDOW, r.source);
    assertEquals(PageSize.SIZE_64M, r.pageSize);
    assertEquals(Access.READ | Access.SNOOP, r.prot);
    assertEquals(2, r.levels, "PPAACE then SPAACE");
    assertEquals(CostModel.defaults().pamuLookup(), r.latencyNs);
    Translation w0 = dma(1, 0x10, Access.WRITE);
    assertEquals(RAM0 + 0x10, w0.hpa);
    assertEquals(1, w0.levels, "subwindow 0 lives in the PPAACE");
    assertSame(t, w0, "the caller's Translation is filled in, nothing allocated");
  }

  @Test
  void aDmaThroughASingleWindowUsesThePpaaceTranslation() {
    PamuDomain d = domain(u);
    ok(d.setGeometry(1 * GIB, 1 * GIB));
    ok(d.setWindowCount(1));
    ok(d.attach(2));
    ok(d.windowEnable(0, RAM0, 256 * MIB, Access.READ_WRITE));
    ok(d.enable());
    assertEquals(RAM0 + 0x0abc_d000L, dma(2, 1 * GIB + 0x0abc_d000L, Access.WRITE).hpa);
    assertEquals(FaultReason.WINDOW_DISABLED, dma(2, 1 * GIB + 256 * MIB, Access.READ).fault,
        "inside the aperture, beyond the single window's enabled size");
    ok(u.enableLiodn(2)); // the violation above disabled it
    assertEquals(FaultReason.OUTSIDE_APERTURE, dma(2, 0, Access.READ).fault);
  }

  @Test
  void anAddressOutsideTheApertureFaultsOutsideAperture() {
    guest();
    assertEquals(FaultReason.OUTSIDE_APERTURE, dma(1, 512 * MIB, Access.READ).fault);
  }

  @Test
  void aDisabledSubwindowFaultsWindowDisabled() {
    guest();
    assertEquals(FaultReason.WINDOW_DISABLED, dma(1, 3 * 64 * MIB, Access.READ).fault);
  }

  @Test
  void aDisabledSubwindowZeroFaultsAsAPermissionViolationBecauseItIsDisabledByApDeny() {
    PamuDomain d = guest();
    ok(d.windowDisable(0));
    assertEquals(FaultReason.READ_DENIED, dma(1, 0x100, Access.READ).fault);
  }

  @Test
  void anOffsetBeyondTheSubwindowsEnabledSizeFaultsWindowDisabled() {
    PamuDomain d = guest();
    ok(d.windowEnable(2, RAM0 + 64 * MIB, 4096, Access.READ_WRITE));
    assertTrue(dma(1, 2 * 64 * MIB + 0xff8, Access.WRITE).ok());
    assertEquals(FaultReason.WINDOW_DISABLED, dma(1, 2 * 64 * MIB + 0x1000, Access.WRITE).fault);
  }

  @Test
  void aWriteToAReadOnlyWindowFaultsWriteDeniedAndAReadOfAWriteOnlyWindowReadDenied() {
    PamuDomain d = guest();
    assertEquals(FaultReason.WRITE_DENIED, dma(1, 64 * MIB, Access.WRITE).fault);
    ok(u.enableLiodn(1));
    ok(d.windowEnable(5, RAM0 + 128 * MIB, 64 * MIB, Access.WRITE));
    assertEquals(FaultReason.READ_DENIED, dma(1, 5 * 64 * MIB, Access.READ).fault);
  }

  @Test
  void aLiodnOfADomainThatIsNotEnabledFaultsLiodnDisabled() {
    PamuDomain d = seedDomain(u, 1);
    ok(d.windowEnable(0, RAM0, 64 * MIB, Access.READ_WRITE));
    assertEquals(FaultReason.LIODN_DISABLED, dma(1, 0, Access.READ).fault);
  }

  @Test
  void aViolationDisablesTheLiodnAndLatchesAvs1AvaAndPoea() {
    guest();
    Translation r = dma(1, 3 * 64 * MIB + 8, Access.WRITE);
    assertEquals(FaultReason.WINDOW_DISABLED, r.fault);
    assertFalse(u.isLiodnValid(1));
    PamuViolation v = u.lastViolation().orElseThrow();
    assertEquals(1, PamuViolation.liodnOf(u.avs1()));
    assertEquals(PamuViolation.AVS1_AV, u.avs1() & PamuViolation.AVS1_AV);
    assertEquals(3 * 64 * MIB + 8, u.ava());
    assertEquals(u.spaaceAddress(u.ppaace(1).fspi() + 2), u.poea(), "the SPAACE of subwindow 3");
    assertEquals(PamuViolation.IsrAction.LIODN_DISABLED, v.action());
    assertEquals(1_000, v.timeNs());
    assertEquals(FaultReason.WINDOW_DISABLED, v.toDmaFault(0).reason());
    // later DMA from it faults even where it was allowed
    assertEquals(FaultReason.LIODN_DISABLED, dma(1, 0, Access.READ).fault);
  }

  @Test
  void aViolationForAnAlreadyDisabledLiodnMasksAvInterruptsAsErratumA003638() {
    guest();
    dma(1, 3 * 64 * MIB, Access.READ); // disables LIODN 1
    dma(1, 0, Access.READ); // reported for a disabled LIODN
    assertTrue(u.avInterruptsMasked());
    assertEquals(PamuViolation.IsrAction.AV_INTERRUPTS_MASKED, u.lastViolation().orElseThrow().action());
    assertEquals(2, u.reportedViolations());
    ok(u.enableLiodn(1));
    assertTrue(dma(1, 0, Access.READ).ok(), "software re-enabled the LIODN");
    // masked: the next violation raises no interrupt, so nothing disables the LIODN
    assertEquals(FaultReason.WINDOW_DISABLED, dma(1, 3 * 64 * MIB, Access.READ).fault);
    assertTrue(u.isLiodnValid(1));
    assertEquals(1, u.suppressedViolationReports());
    assertEquals(3, u.violations());
    u.unmaskAccessViolations();
    dma(1, 3 * 64 * MIB, Access.READ);
    assertFalse(u.isLiodnValid(1));
  }

  @Test
  void reattachingToAnEnabledDomainReenablesALiodnTheIsrDisabled() {
    PamuDomain d = guest();
    dma(1, 3 * 64 * MIB, Access.READ);
    assertFalse(u.isLiodnValid(1));
    ok(d.attach(1));
    assertTrue(dma(1, 0x40, Access.WRITE).ok());
    u.checkInvariants();
  }

  @Test
  void enablingTheDomainAgainAlsoReenablesIt() {
    PamuDomain d = guest();
    dma(1, 3 * 64 * MIB, Access.READ);
    ok(d.enable());
    assertTrue(dma(1, 0x40, Access.WRITE).ok());
  }

  @Test
  void aLiodnBeyondThePpaactFaultsWithoutTouchingAnyEntry() {
    PamuSnapshot before = u.snapshot();
    assertEquals(FaultReason.LIODN_DISABLED, dma(0x600, 0, Access.READ).fault);
    assertEquals(PamuViolation.IsrAction.NONE, u.lastViolation().orElseThrow().action());
    assertEquals(before.ppaact(), u.snapshot().ppaact());
    assertFalse(u.avInterruptsMasked());
  }
}
