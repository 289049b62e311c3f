package io.iommulab.hardware.pamu;

import static io.iommulab.hardware.pamu.Pamus.GIB;
import static io.iommulab.hardware.pamu.Pamus.assertRefused;
import static io.iommulab.hardware.pamu.Pamus.domain;
import static io.iommulab.hardware.pamu.Pamus.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The SPAACT is one pool for every LIODN of every domain: VMs compete for it. */
class SpaactContentionTest {

  private static PamuDomain windows(PamuUnit u, int count) {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 4 * GIB));
    ok(d.setWindowCount(count));
    return d;
  }

  @Test
  void aMultiWindowLiodnTakesCountMinusOneContiguousSpaacesAndAnotherLiodnItsOwnRun() {
    PamuUnit u = Pamus.unit();
    PamuDomain d = windows(u, 8);
    assertEquals(0, u.spaactPool().used(), "no LIODN, no SPAACE");
    ok(d.attach(1));
    ok(d.attach(2));
    assertEquals(0, u.ppaace(1).fspi());
    assertEquals(7, u.ppaace(2).fspi());
    assertEquals(List.of(new SpaactPool.Range(0, 7), new SpaactPool.Range(7, 7)), u.spaactPool().ranges());
    u.checkInvariants();
  }

  @Test
  void aSingleWindowUsesThePpaaceAlone() {
    PamuUnit u = Pamus.unit();
    PamuDomain d = windows(u, 1);
    ok(d.attach(1));
    assertEquals(0, u.spaactPool().used());
  }

  @Test
  void twoVmsCompeteForTheSharedPoolUntilEinvalAndADetachMakesRoomAgain() {
    PamuUnit u = Pamus.unit();
    PamuDomain vmA = windows(u, 256);
    PamuDomain vmB = windows(u, 256);
    // 0x800 entries hold eight runs of 255
    for (int l = 0; l < 4; l++) {
      ok(vmA.attach(l));
      ok(vmB.attach(100 + l));
    }
    assertEquals(8 * 255, u.spaactPool().used());
    assertRefused(u, Errno.EINVAL, () -> vmB.attach(104));
    assertRefused(u, Errno.EINVAL, () -> vmA.attach(4));
    ok(vmA.detach(2));
    ok(vmB.attach(104));
    // attaches alternated A, B, A, B, A: A's LIODN 2 held the fifth run
    assertEquals(4 * 255, u.ppaace(104).fspi(), "B took the run A gave back");
    assertRefused(u, Errno.EINVAL, () -> vmA.attach(2));
    u.checkInvariants();
  }

  @Test
  void fragmentationRefusesACountTheFreeTotalWouldAllow() {
    PamuUnit u = Pamus.unit(16, FaultInjector.NONE);
    PamuDomain small = windows(u, 4);
    for (int l = 1; l <= 5; l++) {
      ok(small.attach(l)); // 5 runs of 3 = 15 entries
    }
    ok(small.detach(2));
    ok(small.detach(4));
    assertEquals(7, u.spaactPool().free());
    assertEquals(3, u.spaactPool().largestFreeRun());
    PamuDomain big = windows(u, 8); // needs a run of 7
    assertRefused(u, Errno.EINVAL, () -> big.attach(9));
    PamuDomain fits = windows(u, 4);
    ok(fits.attach(9));
    assertEquals(3, u.ppaace(9).fspi(), "first fit: the lowest hole");
  }

  @Test
  void changingTheWindowCountReturnsTheOldRunsAndTakesNewOnes() {
    PamuUnit u = Pamus.unit(64, FaultInjector.NONE);
    PamuDomain d = windows(u, 8);
    ok(d.attach(1));
    ok(d.attach(2));
    assertEquals(14, u.spaactPool().used());
    ok(d.setWindowCount(16));
    assertEquals(30, u.spaactPool().used());
    assertEquals(List.of(new SpaactPool.Range(0, 15), new SpaactPool.Range(15, 15)), u.spaactPool().ranges());
    ok(d.setWindowCount(1));
    assertEquals(0, u.spaactPool().used());
    u.checkInvariants();
  }

  @Test
  void aWindowCountThatFitsForOneLiodnButNotForAllIsRefusedAndKeepsTheOldRuns() {
    PamuUnit u = Pamus.unit(24, FaultInjector.NONE);
    PamuDomain d = windows(u, 4);
    ok(d.attach(1));
    ok(d.attach(2));
    // 16 windows need 15 each: the first LIODN fits in 24, the second does not
    assertRefused(u, Errno.EINVAL, () -> d.setWindowCount(16));
    assertEquals(4, d.windowCount());
    assertEquals(List.of(new SpaactPool.Range(0, 3), new SpaactPool.Range(3, 3)), u.spaactPool().ranges());
  }

  @Test
  void anInjectedSpaaceFailureIsEnomemAndChangesNothing() {
    FailNth fail = new FailNth();
    PamuUnit u = Pamus.unit(0x800, fail);
    PamuDomain d = windows(u, 8);
    ok(d.attach(1));
    ok(d.attach(2));
    fail.arm(2); // the second LIODN's allocation
    assertRefused(u, Errno.ENOMEM, () -> d.setWindowCount(16));
    assertEquals("pamu.spaace", fail.failedSite());
    fail.arm(1);
    assertRefused(u, Errno.ENOMEM, () -> d.attach(3));
    assertTrue(u.domainOf(3).isEmpty());
  }

  @Test
  void freeingADomainAfterDetachingItsLiodnsEmptiesThePool() {
    PamuUnit u = Pamus.unit();
    PamuDomain d = windows(u, 64);
    for (int l = 0; l < 10; l++) {
      ok(d.attach(l));
    }
    assertEquals(630, u.spaactPool().used());
    for (int l = 0; l < 10; l++) {
      ok(d.detach(l));
    }
    ok(d.free());
    assertEquals(0, u.spaactPool().used());
    u.checkInvariants();
  }
}
