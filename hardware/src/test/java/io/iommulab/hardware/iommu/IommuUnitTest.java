package io.iommulab.hardware.iommu;

import static io.iommulab.hardware.iommu.Units.COST;
import static io.iommulab.hardware.iommu.Units.G1;
import static io.iommulab.hardware.iommu.Units.K4;
import static io.iommulab.hardware.iommu.Units.M2;
import static io.iommulab.hardware.iommu.Units.assertRefused;
import static io.iommulab.hardware.iommu.Units.ok;
import static io.iommulab.hardware.iommu.Units.smmu;
import static io.iommulab.hardware.iommu.Units.vtd;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.cache.SyncCompletion;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.FaultRecord;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class IommuUnitTest {
  static final int NO_PASID = FaultRecord.NO_PASID;
  static final int RID_A = 0x0100;
  static final int RID_B = 0x0208;
  static final int RW = Access.READ_WRITE;

  /** A unit with a device at RID_A (20-bit PASIDs, ATS) and a paging domain attached at RID_PASID. */
  static final class Rig {
    final IommuUnit unit;
    final PagingDomain domain;
    final List<InvDescriptor.DevTlb> atc = new ArrayList<>();
    final Translation out = new Translation();

    Rig(Units.Spec spec) {
      unit = spec.unit();
      domain = ok(unit.allocPagingDomain(false, spec.dirtyTracking()));
      ok(unit.addDevice(RID_A, 20, true));
      ok(unit.attach(RID_A, NO_PASID, domain));
    }

    Translation translate(long iova, int access, long now) {
      unit.translate(RID_A, NO_PASID, iova, access, now, out);
      return out;
    }

    void run(List<InvDescriptor> plan) {
      ok(unit.submit(plan));
      unit.processInvalidations(0, atc::add);
    }

    void invalidate(long iova, long length) {
      ok(unit.invalidateRange(domain, Iotlb.ANY_PASID, iova, length));
      unit.processInvalidations(0, atc::add);
    }
  }

  // ------------------------------------------------------------ the stale-hit oracle

  @Test
  void withStaleHitChecksAnIotlbHitTheTableNoLongerGivesIsStaleUntilItIsInvalidated() {
    Rig rig = new Rig(vtd());
    rig.unit.setStaleHitChecks(true);
    ok(rig.domain.map(0x10000, 0x40000, K4, RW));
    assertTrue(rig.translate(0x10010, Access.READ, 0).ok());
    assertTrue(rig.translate(0x10010, Access.READ, 0).ok(), "an IOTLB hit");
    assertFalse(rig.unit.lastHitStale(), "it agrees with the table");
    long walksBefore = rig.unit.walker().busyUntil();
    // The table changes and nothing is invalidated yet: the cached entry is stale.
    ok(rig.domain.unmap(0x10000, K4));
    ok(rig.domain.map(0x10000, 0x80000, K4, RW));
    Translation hit = rig.translate(0x10010, Access.WRITE, 0);
    assertEquals(0x40010, hit.hpa, "served from the IOTLB");
    assertTrue(rig.unit.lastHitStale());
    assertEquals(rig.domain.id(), rig.unit.lastStaleDomainId());
    assertEquals(0, hit.levels, "the check walks at no modeled cost");
    assertEquals(walksBefore, rig.unit.walker().busyUntil());
    rig.invalidate(0x10000, K4);
    assertEquals(0x80010, rig.translate(0x10010, Access.READ, 0).hpa);
    assertTrue(rig.translate(0x10010, Access.READ, 0).ok());
    assertFalse(rig.unit.lastHitStale(), "the refilled entry agrees again");
    rig.unit.setStaleHitChecks(false);
    ok(rig.domain.unmap(0x10000, K4));
    rig.translate(0x10010, Access.READ, 0);
    assertFalse(rig.unit.lastHitStale(), "checks off: hits are not judged");
  }

  // ------------------------------------------------------------ domain lifecycle

  @Test
  void dirtyTrackingWithoutTheCapabilityIsNotSupportedAndAllocatesNothing() {
    IommuUnit unit = vtd().noDirtyTracking().unit();
    assertRefused(unit, Errno.EOPNOTSUPP, () -> unit.allocPagingDomain(false, true));
  }

  @Test
  void aNestParentWithoutNestingIsNotSupportedAndAllocatesNothing() {
    IommuUnit unit = vtd().noNesting().unit();
    assertRefused(unit, Errno.EOPNOTSUPP, () -> unit.allocPagingDomain(true, false));
  }

  @Test
  void domainIdsStartAtOneAndRunOutWithEnospc() {
    IommuUnit unit = vtd().domainIds(4).unit();
    assertEquals(1, ok(unit.allocPagingDomain(false, false)).id());
    assertEquals(2, ok(unit.allocPagingDomain(false, false)).id());
    PagingDomain third = ok(unit.allocPagingDomain(true, false));
    assertEquals(3, third.id());
    assertRefused(unit, Errno.ENOSPC, () -> unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.ENOSPC, () -> unit.allocNestedDomain(third));
  }

  @Test
  void aFreedDomainsIdIsReused() {
    IommuUnit unit = vtd().domainIds(3).unit();
    PagingDomain a = ok(unit.allocPagingDomain(false, false));
    ok(unit.allocPagingDomain(false, false));
    ok(unit.freeDomain(a));
    assertNull(unit.domain(a.id()));
    assertEquals(a.id(), ok(unit.allocPagingDomain(false, false)).id());
    unit.checkInvariants();
  }

  @Test
  void anInjectedDomainAllocationFailureIsEnomemAndAllocatesNothing() {
    FailNth fail = new FailNth();
    IommuUnit unit = vtd().unit(fail);
    fail.arm(1);
    assertRefused(unit, Errno.ENOMEM, () -> unit.allocPagingDomain(false, false));
    assertEquals(IommuUnit.SITE_DOMAIN, fail.failedSite());
    assertEquals(1, ok(unit.allocPagingDomain(false, false)).id());
  }

  @Test
  void freeingAnAttachedDomainIsBusyAndChangesNothing() {
    Rig rig = new Rig(vtd());
    assertRefused(rig.unit, Errno.EBUSY, () -> rig.unit.freeDomain(rig.domain));
    PagingDomain other = ok(rig.unit.allocPagingDomain(false, false));
    ok(rig.unit.attach(RID_A, 7, other));
    assertRefused(rig.unit, Errno.EBUSY, () -> rig.unit.freeDomain(other));
    ok(rig.unit.detach(RID_A, 7));
    ok(rig.unit.freeDomain(other));
  }

  @Test
  void freeingANestParentWithChildrenIsBusyUntilTheChildrenAreFreed() {
    IommuUnit unit = vtd().unit();
    PagingDomain parent = ok(unit.allocPagingDomain(true, false));
    NestedDomain c1 = ok(unit.allocNestedDomain(parent));
    NestedDomain c2 = ok(unit.allocNestedDomain(parent));
    assertEquals(2, parent.nestedChildren());
    assertRefused(unit, Errno.EBUSY, () -> unit.freeDomain(parent));
    ok(unit.freeDomain(c1));
    assertRefused(unit, Errno.EBUSY, () -> unit.freeDomain(parent));
    ok(unit.freeDomain(c2));
    ok(unit.freeDomain(parent));
    assertTrue(unit.domains().isEmpty());
  }

  @Test
  void freeingTwiceOrAnotherUnitsDomainIsRefused() {
    IommuUnit unit = vtd().unit();
    IommuUnit other = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    PagingDomain foreign = ok(other.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EINVAL, () -> unit.freeDomain(foreign));
    ok(unit.freeDomain(d));
    assertRefused(unit, Errno.ENOENT, () -> unit.freeDomain(d));
  }

  @Test
  void freeingADomainDropsItsIotlbEntriesBeforeItsIdIsReused() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0x40000, K4, RW));
    assertTrue(rig.translate(0, Access.READ, 0).ok());
    assertEquals(1, rig.unit.iotlbSize());
    ok(rig.unit.detach(RID_A, NO_PASID));
    ok(rig.unit.freeDomain(rig.domain));
    assertEquals(0, rig.unit.iotlbSize());
  }

  @Test
  void aDomainMapFailingAtAnyNodeAllocationLeavesTheUnitAsBefore() {
    FailNth fail = new FailNth();
    IommuUnit unit = vtd().unit(fail);
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(0, 0, K4, RW));
    int failures = 0;
    for (long n = 1; ; n++) {
      IommuUnit.Snapshot before = unit.snapshot();
      fail.arm(n);
      var r = d.map(G1 - K4, 0x1000_0000L - K4, K4 + M2 + K4, RW);
      if (!fail.consumed()) {
        fail.disarm();
        assertTrue(r.isOk(), r::toString);
        break;
      }
      assertEquals(Errno.ENOMEM, r.errnoOrNull());
      assertEquals(before, unit.snapshot(), "after failing allocation " + n);
      failures++;
    }
    // New nodes: the L1 below 1 GiB, the L2 of the second GiB, the L1 after its 2 MiB page.
    assertEquals(3, failures);
    unit.checkInvariants();
  }

  // ------------------------------------------------------------ devices

  @Test
  void probingARequesterTwiceOrWithBadArgumentsIsRefused() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_A, 8));
    assertRefused(unit, Errno.EEXIST, () -> unit.addDevice(RID_A, 8));
    assertRefused(unit, Errno.EINVAL, () -> unit.addDevice(0x10000, 8));
    assertRefused(unit, Errno.EINVAL, () -> unit.addDevice(-1, 8));
    assertRefused(unit, Errno.EINVAL, () -> unit.addDevice(RID_B, 21));
  }

  @Test
  void anInjectedPasidDirectoryFailureIsEnomemAndProbesNothing() {
    FailNth fail = new FailNth();
    IommuUnit unit = vtd().unit(fail);
    fail.arm(1);
    assertRefused(unit, Errno.ENOMEM, () -> unit.addDevice(RID_A, 20));
    assertEquals(PasidTable.SITE, fail.failedSite());
    assertNull(unit.contextEntry(RID_A));
  }

  @Test
  void removingARequesterWithAttachedPasidsIsBusy() {
    Rig rig = new Rig(vtd());
    assertRefused(rig.unit, Errno.EBUSY, () -> rig.unit.removeDevice(RID_A));
    assertRefused(rig.unit, Errno.ENODEV, () -> rig.unit.removeDevice(RID_B));
    ok(rig.unit.detach(RID_A, NO_PASID));
    ok(rig.unit.removeDevice(RID_A));
    assertNull(rig.unit.contextEntry(RID_A));
  }

  @Test
  void thePasidTableWidthIsTheSmallerOfTheDevicesAndTheUnits() {
    IommuUnit unit = vtd().pasidBits(8).unit();
    ok(unit.addDevice(RID_A, 20));
    ok(unit.addDevice(RID_B, 4));
    assertEquals(8, unit.contextEntry(RID_A).pasidTable().width());
    assertEquals(4, unit.contextEntry(RID_B).pasidTable().width());
  }

  // ------------------------------------------------------------ attach

  @Test
  void attachWithoutPasidUsesRidPasid() {
    Rig rig = new Rig(vtd());
    assertSame(rig.domain, rig.unit.attachedDomain(RID_A, IommuUnit.RID_PASID));
    PasidEntry e = rig.unit.contextEntry(RID_A).pasidTable().get(0);
    assertEquals(rig.domain.id(), e.domainId());
    assertEquals(PasidEntry.Pgtt.SECOND_STAGE, e.pgtt());
  }

  @Test
  void attachingAnotherUnitsDomainIsRefused() {
    IommuUnit unit = vtd().unit();
    IommuUnit other = smmu().unit();
    ok(unit.addDevice(RID_A, 20));
    PagingDomain foreign = ok(other.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EINVAL, () -> unit.attach(RID_A, NO_PASID, foreign));
  }

  @Test
  void attachingAFreedDomainIsRefused() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_A, 20));
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(unit.freeDomain(d));
    assertRefused(unit, Errno.EINVAL, () -> unit.attach(RID_A, NO_PASID, d));
  }

  @Test
  void attachingToAnUnprobedRequesterIsNoDevice() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.ENODEV, () -> unit.attach(RID_A, NO_PASID, d));
  }

  @Test
  void aPasidBeyondTheDeviceOrUnitWidthIsRefused() {
    IommuUnit unit = vtd().pasidBits(8).unit();
    ok(unit.addDevice(RID_A, 20));
    ok(unit.addDevice(RID_B, 4));
    ok(unit.addDevice(0x300, 0));
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EINVAL, () -> unit.attach(RID_A, 256, d));
    assertRefused(unit, Errno.EINVAL, () -> unit.attach(RID_B, 16, d));
    assertRefused(unit, Errno.EINVAL, () -> unit.attach(0x300, 1, d));
    assertRefused(unit, Errno.EINVAL, () -> unit.attach(RID_A, -5, d));
    ok(unit.attach(RID_A, 255, d));
    ok(unit.attach(RID_B, 15, d));
    ok(unit.attach(0x300, NO_PASID, d));
  }

  @Test
  void attachingAnAttachedPasidIsBusy() {
    Rig rig = new Rig(vtd());
    PagingDomain other = ok(rig.unit.allocPagingDomain(false, false));
    assertRefused(rig.unit, Errno.EBUSY, () -> rig.unit.attach(RID_A, NO_PASID, other));
    assertRefused(rig.unit, Errno.EBUSY, () -> rig.unit.attach(RID_A, 0, rig.domain));
  }

  @Test
  void anInjectedPasidLeafFailureIsEnomemAndAttachesNothing() {
    FailNth fail = new FailNth();
    IommuUnit unit = vtd().unit(fail);
    ok(unit.addDevice(RID_A, 20));
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    fail.arm(1);
    assertRefused(unit, Errno.ENOMEM, () -> unit.attach(RID_A, 1000, d));
    assertEquals(PasidTable.SITE, fail.failedSite());
    ok(unit.attach(RID_A, 1000, d));
    // The leaf holding PASIDs 960..1023 exists now: no allocation, nothing to inject.
    PagingDomain d2 = ok(unit.allocPagingDomain(false, false));
    fail.arm(1);
    ok(unit.attach(RID_A, 1001, d2));
    assertFalse(fail.consumed());
    assertEquals(1, unit.contextEntry(RID_A).pasidTable().leaves());
  }

  @Test
  void attachOutsideCachingModeNeedsNoInvalidationAndInCachingModeFlushesThePasid() {
    Rig plain = new Rig(vtd());
    PagingDomain d = ok(plain.unit.allocPagingDomain(false, false));
    assertEquals(List.of(), ok(plain.unit.attach(RID_A, 3, d)));

    Rig cm = new Rig(vtd().cachingMode(true));
    PagingDomain e = ok(cm.unit.allocPagingDomain(false, false));
    List<InvDescriptor> plan = ok(cm.unit.attach(RID_A, 3, e));
    assertEquals(new InvDescriptor.PasidCache(e.id(), 3), plan.get(0));
    assertEquals(new InvDescriptor.IotlbPasid(e.id(), 3), plan.get(1));
    assertTrue(plan.get(2) instanceof InvDescriptor.Wait);
    assertEquals(3, plan.size());
  }

  @Test
  void detachReturnsTheVtdPasidTeardownSequence() {
    Rig rig = new Rig(vtd());
    List<InvDescriptor> plan = ok(rig.unit.detach(RID_A, NO_PASID));
    int did = rig.domain.id();
    assertEquals(new InvDescriptor.PasidCache(did, 0), plan.get(0));
    assertEquals(new InvDescriptor.IotlbDomain(did), plan.get(1));
    // RID_PASID: the device TLB is invalidated without PASID.
    assertEquals(new InvDescriptor.DevTlb(RID_A, NO_PASID, 0, 52), plan.get(2));
    assertTrue(plan.get(3) instanceof InvDescriptor.Wait);
    assertEquals(4, plan.size());
    assertFalse(rig.domain.isAttached());
  }

  @Test
  void detachOfAPasidInvalidatesTheDeviceTlbForThatPasid() {
    Rig rig = new Rig(vtd());
    PagingDomain d = ok(rig.unit.allocPagingDomain(false, false));
    ok(rig.unit.attach(RID_A, 9, d));
    List<InvDescriptor> plan = ok(rig.unit.detach(RID_A, 9));
    assertEquals(new InvDescriptor.PasidCache(d.id(), 9), plan.get(0));
    assertEquals(new InvDescriptor.DevTlb(RID_A, 9, 0, 52), plan.get(2));
  }

  @Test
  void teardownSkipsTheDeviceTlbWithoutAtsOrInCachingMode() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_B, 0));
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(unit.attach(RID_B, NO_PASID, d));
    List<InvDescriptor> plan = ok(unit.detach(RID_B, NO_PASID));
    assertEquals(3, plan.size());
    assertTrue(plan.stream().noneMatch(x -> x instanceof InvDescriptor.DevTlb));

    Rig cm = new Rig(vtd().cachingMode(true));
    plan = ok(cm.unit.detach(RID_A, NO_PASID));
    assertTrue(plan.stream().noneMatch(x -> x instanceof InvDescriptor.DevTlb));
  }

  @Test
  void smmuTeardownOfSsidZeroInvalidatesTheStreamTableEntry() {
    Rig rig = new Rig(smmu());
    List<InvDescriptor> plan = ok(rig.unit.detach(RID_A, NO_PASID));
    assertEquals(new InvDescriptor.ContextCache(RID_A), plan.get(0));
  }

  @Test
  void detachBlocksDmaAndDetachingTwiceIsRefused() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0, K4, RW));
    rig.run(ok(rig.unit.detach(RID_A, NO_PASID)));
    assertEquals(FaultReason.PASID_NOT_VALID, rig.translate(0, Access.READ, 0).fault);
    assertRefused(rig.unit, Errno.EINVAL, () -> rig.unit.detach(RID_A, NO_PASID));
    assertRefused(rig.unit, Errno.ENODEV, () -> rig.unit.detach(RID_B, NO_PASID));
  }

  @Test
  void replaceOfAnUnattachedPasidIsRefusedAndReplaceWithTheSameDomainIsANoOp() {
    Rig rig = new Rig(vtd());
    PagingDomain other = ok(rig.unit.allocPagingDomain(false, false));
    assertRefused(rig.unit, Errno.EINVAL, () -> rig.unit.replace(RID_A, 4, other));
    IommuUnit.Snapshot before = rig.unit.snapshot();
    assertEquals(List.of(), ok(rig.unit.replace(RID_A, NO_PASID, rig.domain)));
    assertEquals(before, rig.unit.snapshot());
  }

  @Test
  void replaceSwitchesTranslationsAndReturnsTheOldDomainsTeardown() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0x10000, K4, RW));
    PagingDomain other = ok(rig.unit.allocPagingDomain(false, false));
    ok(other.map(0, 0x20000, K4, RW));
    assertEquals(0x10000, rig.translate(0, Access.READ, 0).hpa);
    List<InvDescriptor> plan = ok(rig.unit.replace(RID_A, NO_PASID, other));
    assertEquals(new InvDescriptor.IotlbDomain(rig.domain.id()), plan.get(1));
    assertEquals(0x20000, rig.translate(0, Access.READ, 0).hpa);
    assertFalse(rig.domain.isAttached());
    assertTrue(other.isAttached());
    rig.unit.checkInvariants();
  }

  // ------------------------------------------------------------ isolation

  @Test
  void aRequesterReachesOnlyThePasidsOfItsOwnTable() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_A, 20));
    ok(unit.addDevice(RID_B, 20));
    PagingDomain a = ok(unit.allocPagingDomain(false, false));
    PagingDomain b = ok(unit.allocPagingDomain(false, false));
    ok(a.map(0, 0xA000, K4, RW));
    ok(b.map(0, 0xB000, K4, RW));
    ok(unit.attach(RID_A, 5, a));
    Translation out = new Translation();
    unit.translate(RID_B, 5, 0, Access.READ, 0, out);
    assertEquals(FaultReason.PASID_NOT_VALID, out.fault, "B must not reach A's PASID 5");
    ok(unit.attach(RID_B, 5, b));
    unit.translate(RID_B, 5, 0, Access.READ, 0, out);
    assertEquals(0xB000, out.hpa);
    unit.translate(RID_A, 5, 0, Access.READ, 0, out);
    assertEquals(0xA000, out.hpa);
    unit.translate(0x0300, 5, 0, Access.READ, 0, out);
    assertEquals(FaultReason.CONTEXT_NOT_PRESENT, out.fault);
  }

  @Test
  void aDomainSharedByTwoRequestersTranslatesTheSameForBoth() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_A, 0));
    ok(unit.addDevice(RID_B, 0));
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(0, 0xC000, K4, RW));
    ok(unit.attach(RID_A, NO_PASID, d));
    ok(unit.attach(RID_B, NO_PASID, d));
    Translation out = new Translation();
    unit.translate(RID_A, NO_PASID, 0x10, Access.READ, 0, out);
    assertEquals(Translation.Source.WALK, out.source);
    // Same DID and PASID tag: B hits the entry A's walk filled.
    unit.translate(RID_B, NO_PASID, 0x20, Access.READ, 0, out);
    assertEquals(Translation.Source.IOTLB, out.source);
    assertEquals(0xC020, out.hpa);
  }

  // ------------------------------------------------------------ translation

  @Test
  void translationFaultsNameTheFirstCheckThatFails() {
    Rig rig = new Rig(vtd().pasidBits(4));
    ok(rig.domain.map(0, 0, K4, Access.READ));
    Translation out = rig.out;
    rig.unit.translate(RID_B, NO_PASID, 0, Access.READ, 0, out);
    assertEquals(FaultReason.CONTEXT_NOT_PRESENT, out.fault);
    rig.unit.translate(RID_A, 16, 0, Access.READ, 0, out);
    assertEquals(FaultReason.PASID_OUT_OF_RANGE, out.fault);
    rig.unit.translate(RID_A, 3, 0, Access.READ, 0, out);
    assertEquals(FaultReason.PASID_NOT_VALID, out.fault);
    assertEquals(FaultReason.ADDRESS_BEYOND_WIDTH, rig.translate(1L << 48, Access.READ, 0).fault);
    assertEquals(FaultReason.NOT_PRESENT, rig.translate(K4, Access.READ, 0).fault);
    assertEquals(FaultReason.WRITE_DENIED, rig.translate(0, Access.WRITE, 0).fault);
    assertFalse(rig.translate(0, Access.WRITE, 0).ok());
    assertEquals(Translation.Source.FAULT, out.source);
  }

  @Test
  void aReadOfAWriteOnlyPageIsDenied() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0, K4, Access.WRITE));
    assertEquals(FaultReason.READ_DENIED, rig.translate(0, Access.READ, 0).fault);
    assertTrue(rig.translate(0, Access.WRITE, 0).ok());
  }

  @Test
  void dmaIntoTheVtdInterruptWindowIsAReservedRegionFaultEvenWhenMapped() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0xFEE00000L, 0x1000000, M2, RW));
    assertEquals(FaultReason.RESERVED_REGION, rig.translate(0xFEE00000L, Access.WRITE, 0).fault);
    assertEquals(FaultReason.RESERVED_REGION, rig.translate(0xFEEFFFFCL, Access.READ, 0).fault);
    assertTrue(rig.translate(0xFEF00000L, Access.WRITE, 0).ok());
    assertEquals(List.of(ReservedRegion.VTD_MSI), rig.unit.reservedRegions());
  }

  @Test
  void anSmmuReportsASoftwareMsiWindowThatTranslatesThroughThePageTable() {
    Rig rig = new Rig(smmu());
    ReservedRegion swMsi = rig.unit.reservedRegions().get(0);
    assertEquals(ReservedRegion.Type.SW_MSI, swMsi.type());
    assertEquals(0x8000000L, swMsi.start());
    assertEquals(0x80FFFFFL, swMsi.last());
    assertEquals(FaultReason.NOT_PRESENT, rig.translate(0x8000000L, Access.WRITE, 0).fault);
    ok(rig.domain.map(0x8000000L, 0x1230000, K4, Access.WRITE));
    assertEquals(0x1230040L, rig.translate(0x8000040L, Access.WRITE, 0).hpa);
  }

  @Test
  void aMissWalksThenAHitCostsOnlyTheIotlbLookup() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0x5000, K4, RW));
    Translation t = rig.translate(0x123, Access.READ, 1_000);
    assertEquals(Translation.Source.WALK, t.source);
    assertEquals(4, t.levels);
    assertEquals(COST.iotlbHit() + COST.walk(4), t.latencyNs);
    assertEquals(PageSize.SIZE_4K, t.pageSize);
    t = rig.translate(0x456, Access.READ, 2_000);
    assertEquals(Translation.Source.IOTLB, t.source);
    assertEquals(0x5456, t.hpa);
    assertEquals(0, t.levels);
    assertEquals(COST.iotlbHit(), t.latencyNs);
  }

  @Test
  void walksArrivingTogetherQueueBehindEachOtherInThePageWalker() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0, 4 * K4, RW));
    long first = rig.translate(0, Access.READ, 500).latencyNs;
    long second = rig.translate(K4, Access.READ, 500).latencyNs;
    assertEquals(COST.iotlbHit() + COST.walk(4), first);
    assertEquals(first + COST.walk(4), second);
    long later = rig.translate(2 * K4, Access.READ, 10_000).latencyNs;
    assertEquals(first, later);
    assertEquals(3, rig.unit.walker().served());
  }

  @Test
  void aLargePageIsCachedAsOneEntry() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(G1, 3 * G1, G1, RW));
    Translation t = rig.translate(G1 + 0x12345678L, Access.READ, 0);
    assertEquals(PageSize.SIZE_1G, t.pageSize);
    assertEquals(2, t.levels);
    t = rig.translate(G1 + 0x3000_0000L, Access.WRITE, 0);
    assertEquals(Translation.Source.IOTLB, t.source);
    assertEquals(3 * G1 + 0x3000_0000L, t.hpa);
  }

  @Test
  void aForceSnoopDomainsTranslationsCarrySnoop() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_A, 0));
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.enforceCacheCoherency());
    ok(d.map(0, 0, K4, RW));
    ok(unit.attach(RID_A, NO_PASID, d));
    Translation out = new Translation();
    unit.translate(RID_A, NO_PASID, 0, Access.READ, 0, out);
    assertEquals(RW | Access.SNOOP, out.prot);
  }

  @Test
  void aStaleIotlbEntryServesUntilTheInvalidationCompletes() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0x7000, K4, RW));
    assertTrue(rig.translate(0, Access.READ, 0).ok());
    ok(rig.domain.unmap(0, K4));
    // The table no longer maps the page, but the IOTLB does: the hazard the flush closes.
    assertEquals(Translation.Source.IOTLB, rig.translate(0, Access.READ, 0).source);
    long token = ok(rig.unit.invalidateRange(rig.domain, Iotlb.ANY_PASID, 0, K4));
    assertEquals(Translation.Source.IOTLB, rig.translate(0, Access.READ, 0).source);
    List<SyncCompletion> done = rig.unit.processInvalidations(0, rig.atc::add);
    assertEquals(token, done.get(done.size() - 1).token());
    assertEquals(FaultReason.NOT_PRESENT, rig.translate(0, Access.READ, 0).fault);
    assertEquals(List.of(new InvDescriptor.DevTlb(RID_A, NO_PASID, 0, 0)), rig.atc);
  }

  @Test
  void aRangeInvalidationIsWidenedToAnAlignedPowerOfTwoAndFallsBackToTheDomainBeyondTheMask() {
    Rig rig = new Rig(vtd().maxAddressMask(9));
    List<InvDescriptor> plan = ok(rig.unit.planRange(rig.domain, Iotlb.ANY_PASID, 3 * K4, 2 * K4));
    assertEquals(
        new InvDescriptor.IotlbPages(rig.domain.id(), Iotlb.ANY_PASID, 0, 3, false), plan.get(0));
    assertEquals(new InvDescriptor.DevTlb(RID_A, NO_PASID, 0, 3), plan.get(1));
    plan = ok(rig.unit.planRange(rig.domain, Iotlb.ANY_PASID, 0, 2 * M2));
    assertEquals(new InvDescriptor.IotlbDomain(rig.domain.id()), plan.get(0));
  }

  @Test
  void badInvalidationRangesAreRefused() {
    Rig rig = new Rig(vtd());
    PagingDomain foreign = ok(vtd().unit().allocPagingDomain(false, false));
    assertRefused(rig.unit, Errno.EINVAL, () -> rig.unit.invalidateRange(rig.domain, -1, 0, 0));
    assertRefused(
        rig.unit, Errno.EOVERFLOW, () -> rig.unit.invalidateRange(rig.domain, -1, -K4, 2 * K4));
    assertRefused(rig.unit, Errno.EINVAL, () -> rig.unit.invalidateRange(foreign, -1, 0, K4));
    assertRefused(rig.unit, Errno.EINVAL, () -> rig.unit.invalidateRange(rig.domain, -7, 0, K4));
  }

  @Test
  void aFullQueueRefusesTheWholePlanWithEnospcAndQueuesNothing() {
    Rig rig = new Rig(vtd().queueDepth(4));
    ok(rig.unit.invalidateRange(rig.domain, Iotlb.ANY_PASID, 0, K4));
    assertEquals(3, rig.unit.queuePending());
    assertRefused(
        rig.unit, Errno.ENOSPC, () -> rig.unit.invalidateRange(rig.domain, Iotlb.ANY_PASID, 0, K4));
    rig.unit.processInvalidations(0, rig.atc::add);
    ok(rig.unit.invalidateRange(rig.domain, Iotlb.ANY_PASID, 0, K4));
  }

  @Test
  void invalidatingOnePasidReachesOnlyTheAtsRequestersAtThatPasid() {
    Rig rig = new Rig(vtd());
    ok(rig.unit.addDevice(RID_B, 20, true));
    ok(rig.unit.attach(RID_B, 4, rig.domain));
    List<InvDescriptor> plan = ok(rig.unit.planRange(rig.domain, 4, 0, K4));
    assertEquals(new InvDescriptor.IotlbPages(rig.domain.id(), 4, 0, 0, false), plan.get(0));
    assertEquals(new InvDescriptor.DevTlb(RID_B, 4, 0, 0), plan.get(1));
    assertEquals(3, plan.size());
    plan = ok(rig.unit.planRange(rig.domain, Iotlb.ANY_PASID, 0, K4));
    assertEquals(4, plan.size());
  }

  // ------------------------------------------------------------ dirty tracking

  @Test
  void aWriteSetsTheDirtyBitAndAReadDoesNot() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.setDirtyTracking(true));
    ok(rig.domain.map(0, 0, 2 * K4, RW));
    assertTrue(rig.translate(0, Access.READ, 0).ok());
    assertFalse(rig.domain.leaves().get(0).dirty());
    // The read cached the page without WRITE: the write misses and walks, setting the bit.
    Translation t = rig.translate(8, Access.WRITE, 0);
    assertEquals(Translation.Source.WALK, t.source);
    assertTrue(rig.domain.leaves().get(0).dirty());
    assertEquals(Translation.Source.IOTLB, rig.translate(16, Access.WRITE, 0).source);
    assertFalse(rig.domain.leaves().get(1).dirty());
  }

  @Test
  void withDirtyTrackingOffWritesLeaveNoDirtyBits() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0, K4, RW));
    assertTrue(rig.translate(0, Access.WRITE, 0).ok());
    assertFalse(rig.domain.leaves().get(0).dirty());
  }

  @Test
  void afterClearingDirtyBitsAndInvalidatingTheNextWriteMarksThePageAgain() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.setDirtyTracking(true));
    ok(rig.domain.map(0, 0, K4, RW));
    rig.translate(0, Access.WRITE, 0);
    assertEquals(1L, ok(rig.domain.readAndClearDirty(0, K4, true, x -> {})));
    rig.invalidate(0, K4);
    rig.translate(0, Access.WRITE, 0);
    assertTrue(rig.domain.leaves().get(0).dirty());
  }

  // ------------------------------------------------------------ caching mode

  @Test
  void inCachingModeAMapIsInvisibleUntilItIsInvalidated() {
    Rig rig = new Rig(vtd().cachingMode(true));
    assertEquals(FaultReason.NOT_PRESENT, rig.translate(0, Access.READ, 0).fault);
    ok(rig.domain.map(0, 0x9000, K4, RW));
    Translation t = rig.translate(0, Access.READ, 0);
    assertEquals(FaultReason.NOT_PRESENT, t.fault);
    assertEquals(COST.iotlbHit(), t.latencyNs, "served by the cached not-present entry");
    long token = ok(rig.unit.invalidateAfterMap(rig.domain, 0, K4));
    assertNotEquals(0L, token);
    rig.unit.processInvalidations(0, rig.atc::add);
    assertEquals(0x9000, rig.translate(0, Access.READ, 0).hpa);
    assertTrue(rig.atc.isEmpty(), "a not-present result is never in a device TLB");
  }

  @Test
  void outsideCachingModeAMapIsVisibleAtOnceAndNeedsNoInvalidation() {
    Rig rig = new Rig(vtd());
    assertEquals(FaultReason.NOT_PRESENT, rig.translate(0, Access.READ, 0).fault);
    ok(rig.domain.map(0, 0x9000, K4, RW));
    assertEquals(0x9000, rig.translate(0, Access.READ, 0).hpa);
    assertEquals(0L, ok(rig.unit.invalidateAfterMap(rig.domain, 0, K4)));
    assertEquals(0, rig.unit.queuePending());
  }

  // ------------------------------------------------------------ ATS

  @Test
  void anAtsTranslationCostsTheLookupPlusTheRoundTrip() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0x3000, K4, RW));
    rig.unit.atsTranslate(RID_A, NO_PASID, 0x10, Access.READ, 0, rig.out);
    assertEquals(0x3010, rig.out.hpa);
    assertEquals(COST.iotlbHit() + COST.walk(4) + COST.atsTranslation(), rig.out.latencyNs);
    rig.unit.atsTranslate(RID_A, NO_PASID, 0x10, Access.READ, 0, rig.out);
    assertEquals(COST.iotlbHit() + COST.atsTranslation(), rig.out.latencyNs);
  }

  @Test
  void anAtsRequestFromADeviceWithoutAtsIsABug() {
    IommuUnit unit = vtd().unit();
    ok(unit.addDevice(RID_B, 0, false));
    assertThrows(
        IllegalStateException.class,
        () -> unit.atsTranslate(RID_B, NO_PASID, 0, Access.READ, 0, new Translation()));
  }

  // ------------------------------------------------------------ snapshot

  @Test
  void theSnapshotRecordsContextsPasidEntriesDomainsAndCaches() {
    Rig rig = new Rig(vtd());
    ok(rig.domain.map(0, 0, K4, RW));
    rig.translate(0, Access.READ, 0);
    IommuUnit.Snapshot s = rig.unit.snapshot();
    assertEquals(1, s.contexts().size());
    assertEquals(
        new IommuUnit.PasidSnapshot(
            RID_A, 0, rig.domain.id(), PasidEntry.Pgtt.SECOND_STAGE, false, true),
        s.pasidEntries().get(0));
    assertEquals(1, s.domains().get(0).attachments());
    assertEquals(1, s.domains().get(0).table().leaves().size());
    assertEquals(1, s.iotlbSize());
    assertEquals(0, s.queuePending());
  }
}
