package io.iommulab.hardware.iommu;

import static io.iommulab.hardware.iommu.Units.COST;
import static io.iommulab.hardware.iommu.Units.K4;
import static io.iommulab.hardware.iommu.Units.M2;
import static io.iommulab.hardware.iommu.Units.assertRefused;
import static io.iommulab.hardware.iommu.Units.ok;
import static io.iommulab.hardware.iommu.Units.vtd;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.InvDescriptor;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.FaultRecord;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class NestedDomainTest {
  static final int NO_PASID = FaultRecord.NO_PASID;
  static final int RW = Access.READ_WRITE;

  @Test
  void nestingOnAUnitWithoutItIsNotSupported() {
    IommuUnit unit = vtd().noNesting().unit();
    PagingDomain plain = ok(unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EOPNOTSUPP, () -> unit.allocNestedDomain(plain));
  }

  @Test
  void aParentWithoutNestParentIsRefused() {
    IommuUnit unit = vtd().unit();
    PagingDomain plain = ok(unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EINVAL, () -> unit.allocNestedDomain(plain));
  }

  @Test
  void aParentOfAnotherUnitOrAFreedParentIsRefused() {
    IommuUnit unit = vtd().unit();
    IommuUnit other = vtd().unit();
    PagingDomain foreign = ok(other.allocPagingDomain(true, false));
    assertRefused(unit, Errno.EINVAL, () -> unit.allocNestedDomain(foreign));
    PagingDomain gone = ok(unit.allocPagingDomain(true, false));
    ok(unit.freeDomain(gone));
    assertRefused(unit, Errno.EINVAL, () -> unit.allocNestedDomain(gone));
  }

  /** Parent maps GPA 2 MiB pages; the guest maps IOVA 4 KiB pages onto GPAs. */
  static final class NestRig {
    final IommuUnit unit = vtd().unit();
    final PagingDomain parent = ok(unit.allocPagingDomain(true, false));
    final NestedDomain nested = ok(unit.allocNestedDomain(parent));
    final Translation out = new Translation();

    NestRig() {
      ok(unit.addDevice(0x10, 20, true));
      ok(unit.attach(0x10, NO_PASID, nested));
    }

    Translation translate(long iova, int access) {
      unit.translate(0x10, NO_PASID, iova, access, 0, out);
      return out;
    }
  }

  @Test
  void aNestedTranslationComposesStageOneThenStageTwo() {
    NestRig r = new NestRig();
    ok(r.parent.map(4 * M2, 40 * M2, M2, RW));
    ok(r.nested.stage1().map(0x7000, 4 * M2 + 0x3000, K4, Access.READ));
    Translation t = r.translate(0x7123, Access.READ);
    assertTrue(t.ok(), t::toString);
    assertEquals(40 * M2 + 0x3123, t.hpa);
    assertEquals(Access.READ, t.prot, "prot is the intersection");
    assertEquals(PageSize.SIZE_4K, t.pageSize, "the smaller page");
    assertEquals(Translation.Source.NESTED_WALK, t.source);
    assertEquals(CostModel.nestedWalkReads(4, 3), t.levels);
    assertEquals(COST.iotlbHit() + COST.nestedWalk(4, 3), t.latencyNs);
    assertEquals(FaultReason.WRITE_DENIED, r.translate(0x7000, Access.WRITE).fault);
    PasidEntry e = r.unit.contextEntry(0x10).pasidTable().get(0);
    assertEquals(PasidEntry.Pgtt.NESTED, e.pgtt());
    assertEquals(r.nested.id(), e.domainId());
  }

  @Test
  void aMissingStageOneEntryIsNotPresentAndAMissingStageTwoEntryIsAStageTwoFault() {
    NestRig r = new NestRig();
    assertEquals(FaultReason.NOT_PRESENT, r.translate(0x7000, Access.READ).fault);
    ok(r.nested.stage1().map(0x7000, 9 * M2, K4, RW));
    assertEquals(FaultReason.STAGE2_NOT_PRESENT, r.translate(0x7000, Access.READ).fault);
    ok(r.parent.map(8 * M2, 0, 2 * M2, RW));
    assertTrue(r.translate(0x7000, Access.READ).ok());
  }

  @Test
  void aLargeStageOnePageOverSmallStageTwoPagesIsCachedAtTheSmallerSize() {
    NestRig r = new NestRig();
    ok(r.parent.map(0, 0x4000_0000L, M2, RW));
    ok(r.nested.stage1().map(2 * M2, 0, M2, RW));
    ok(r.parent.unmap(0, M2));
    ok(r.parent.map(0, 0x4000_0000L, K4, RW));
    ok(r.parent.map(K4, 0x5000_0000L, K4, RW));
    Translation t = r.translate(2 * M2 + K4 + 8, Access.WRITE);
    assertEquals(0x5000_0008L, t.hpa);
    assertEquals(PageSize.SIZE_4K, t.pageSize);
    assertEquals(0x4000_0010L, r.translate(2 * M2 + 16, Access.READ).hpa);
  }

  @Test
  void aForceSnoopParentSetsPageSnoopInTheNestedPasidEntryAndInTranslations() {
    IommuUnit unit = vtd().unit();
    PagingDomain parent = ok(unit.allocPagingDomain(true, false));
    ok(parent.enforceCacheCoherency());
    NestedDomain nested = ok(unit.allocNestedDomain(parent));
    ok(unit.addDevice(0x10, 0));
    ok(unit.attach(0x10, NO_PASID, nested));
    assertTrue(unit.contextEntry(0x10).pasidTable().get(0).pageSnoop());
    ok(parent.map(0, 0, M2, RW));
    ok(nested.stage1().map(0, 0, K4, RW));
    Translation out = new Translation();
    unit.translate(0x10, NO_PASID, 0, Access.READ, 0, out);
    assertEquals(RW | Access.SNOOP, out.prot);
  }

  @Test
  void manyNestedDomainsShareOneParent() {
    IommuUnit unit = vtd().unit();
    PagingDomain parent = ok(unit.allocPagingDomain(true, false));
    ok(parent.map(0, 0x100_0000L, M2, RW));
    Translation out = new Translation();
    for (int i = 0; i < 3; i++) {
      NestedDomain n = ok(unit.allocNestedDomain(parent));
      ok(n.stage1().map(0x1000, (long) i * K4, K4, RW));
      ok(unit.addDevice(0x20 + i, 0));
      ok(unit.attach(0x20 + i, NO_PASID, n));
    }
    for (int i = 0; i < 3; i++) {
      unit.translate(0x20 + i, NO_PASID, 0x1000, Access.READ, 0, out);
      assertEquals(0x100_0000L + i * K4, out.hpa);
    }
    assertEquals(3, parent.nestedChildren());
    unit.checkInvariants();
  }

  @Test
  void aParentChangeFlushesEveryNestedChildsWholeIotlbAndDeviceTlb() {
    IommuUnit unit = vtd().unit();
    PagingDomain parent = ok(unit.allocPagingDomain(true, false));
    NestedDomain a = ok(unit.allocNestedDomain(parent));
    NestedDomain b = ok(unit.allocNestedDomain(parent));
    ok(unit.addDevice(0x10, 20, true));
    ok(unit.addDevice(0x18, 20, false));
    ok(unit.addDevice(0x20, 20, true));
    ok(unit.attach(0x10, NO_PASID, a));
    ok(unit.attach(0x18, NO_PASID, b));
    ok(unit.attach(0x20, 5, parent));
    List<InvDescriptor> plan = ok(unit.planRange(parent, Iotlb.ANY_PASID, 0, K4));
    assertEquals(
        List.of(
            new InvDescriptor.IotlbPages(parent.id(), Iotlb.ANY_PASID, 0, 0, false),
            new InvDescriptor.IotlbDomain(a.id()),
            new InvDescriptor.IotlbDomain(b.id()),
            new InvDescriptor.DevTlb(0x20, 5, 0, 0),
            new InvDescriptor.DevTlb(0x10, NO_PASID, 0, 52)),
        plan.subList(0, plan.size() - 1));
    assertTrue(plan.get(plan.size() - 1) instanceof InvDescriptor.Wait);
  }

  @Test
  void afterAParentUnmapAndItsInvalidationTheChildNoLongerTranslates() {
    NestRig r = new NestRig();
    ok(r.parent.map(0, 0x100_0000L, M2, RW));
    ok(r.nested.stage1().map(0, 0x1000, K4, RW));
    assertTrue(r.translate(0, Access.READ).ok());
    ok(r.parent.unmap(0, M2));
    assertEquals(Translation.Source.IOTLB, r.translate(0, Access.READ).source);
    ok(r.unit.invalidateRange(r.parent, Iotlb.ANY_PASID, 0, M2));
    List<InvDescriptor.DevTlb> atc = new ArrayList<>();
    r.unit.processInvalidations(0, atc::add);
    assertEquals(FaultReason.STAGE2_NOT_PRESENT, r.translate(0, Access.READ).fault);
    assertEquals(List.of(new InvDescriptor.DevTlb(0x10, NO_PASID, 0, 52)), atc);
  }

  @Test
  void aGuestStageOneInvalidationTargetsTheNestedDomainsId() {
    NestRig r = new NestRig();
    ok(r.parent.map(0, 0x100_0000L, M2, RW));
    ok(r.nested.stage1().map(0, 0x1000, K4, RW));
    assertTrue(r.translate(0, Access.READ).ok());
    ok(r.nested.stage1().unmap(0, K4));
    ok(r.nested.stage1().map(0, 0x2000, K4, RW));
    assertEquals(0x100_1000L, r.translate(0, Access.READ).hpa, "stale until invalidated");
    List<InvDescriptor> plan = ok(r.unit.planRange(r.nested, NO_PASID, 0, K4));
    assertEquals(new InvDescriptor.IotlbPages(r.nested.id(), 0, 0, 0, false), plan.get(0));
    ok(r.unit.submit(plan));
    r.unit.processInvalidations(0, x -> {});
    assertEquals(0x100_2000L, r.translate(0, Access.READ).hpa);
  }

  @Test
  void dirtyTrackingOnTheParentMarksStageTwoPagesWrittenThroughTheChild() {
    IommuUnit unit = vtd().unit();
    PagingDomain parent = ok(unit.allocPagingDomain(true, true));
    ok(parent.setDirtyTracking(true));
    NestedDomain n = ok(unit.allocNestedDomain(parent));
    ok(unit.addDevice(0x10, 0));
    ok(unit.attach(0x10, NO_PASID, n));
    ok(parent.map(0, 0, 2 * K4, RW));
    ok(n.stage1().map(0, K4, K4, RW));
    Translation out = new Translation();
    unit.translate(0x10, NO_PASID, 0, Access.READ, 0, out);
    assertTrue(parent.leaves().stream().noneMatch(l -> l.dirty()));
    unit.translate(0x10, NO_PASID, 0, Access.WRITE, 0, out);
    assertEquals(Translation.Source.NESTED_WALK, out.source);
    assertTrue(parent.leaves().get(1).dirty());
    assertTrue(!parent.leaves().get(0).dirty());
  }
}
