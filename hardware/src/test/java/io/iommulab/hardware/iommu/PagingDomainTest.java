package io.iommulab.hardware.iommu;

import static io.iommulab.hardware.iommu.Units.K4;
import static io.iommulab.hardware.iommu.Units.M2;
import static io.iommulab.hardware.iommu.Units.assertRefused;
import static io.iommulab.hardware.iommu.Units.ok;
import static io.iommulab.hardware.iommu.Units.vtd;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PagingDomainTest {

  @Test
  void mapAndUnmapDelegateToTheTableAndTheAlignmentIsTheSmallestPage() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    assertEquals(K4, d.iovaAlignment());
    ok(d.map(0, 4 * M2, 2 * M2, Access.READ_WRITE));
    assertEquals(2 * M2, d.mappedBytes());
    assertEquals(2, d.leafCount());
    assertEquals(2 * M2, ok(d.unmap(0, 2 * M2)));
    assertTrue(d.isEmpty());
  }

  @Test
  void aUnitWithOnlyFourKPagesMapsFourMegAsOneThousandTwentyFourLeaves() {
    IommuUnit unit = vtd().sizes(List.of(K4)).unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(2 * M2, 4 * M2, 2 * M2, Access.READ_WRITE));
    assertEquals(1024, d.leafCount());
    assertEquals(List.of(PageSize.SIZE_4K), d.pageSizes());
  }

  @Test
  void aForceSnoopDomainMarksEveryNewMapSnooped() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.enforceCacheCoherency());
    assertTrue(d.isCacheCoherencyEnforced());
    ok(d.map(0, 0, K4, Access.READ));
    assertEquals(Access.READ | Access.SNOOP, d.leaves().get(0).prot());
  }

  @Test
  void withoutForceSnoopTheCallersSnoopBitIsIgnored() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(0, 0, K4, Access.READ | Access.SNOOP));
    assertEquals(Access.READ, d.leaves().get(0).prot());
  }

  @Test
  void enforcingCacheCoherencyOnADomainWithMappingsIsRefusedAndChangesNothing() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(0, 0, K4, Access.READ));
    assertRefused(unit, Errno.EINVAL, d::enforceCacheCoherency);
    assertFalse(d.isCacheCoherencyEnforced());
  }

  @Test
  void aDomainThatOnceHadMappingsStaysRefusedAfterUnmappingThemAsVtdsHasMappingsIsSticky() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(0, 0, K4, Access.READ));
    ok(d.unmap(0, K4));
    assertRefused(unit, Errno.EINVAL, d::enforceCacheCoherency);
  }

  @Test
  void enforcingCacheCoherencyWithoutSnoopControlIsRefusedAndChangesNothing() {
    IommuUnit unit = vtd().noSnoopControl().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EINVAL, d::enforceCacheCoherency);
    assertFalse(d.isCacheCoherencyEnforced());
  }

  @Test
  void enforcingCacheCoherencyIsIdempotentOnceSetEvenWithMappings() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.enforceCacheCoherency());
    ok(d.map(0, 0, K4, Access.READ));
    ok(d.enforceCacheCoherency());
    assertTrue(d.isCacheCoherencyEnforced());
  }

  @Test
  void dirtyTrackingCannotBeSwitchedOnWithoutTheDirtyTrackingFlag() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    assertRefused(unit, Errno.EINVAL, () -> d.setDirtyTracking(true));
    assertRefused(
        unit, Errno.EOPNOTSUPP, () -> d.readAndClearDirty(0, K4, true, iova -> {}));
    PagingDomain tracked = ok(unit.allocPagingDomain(false, true));
    ok(tracked.setDirtyTracking(true));
    assertTrue(tracked.isDirtyTrackingEnabled());
    ok(tracked.setDirtyTracking(false));
    assertFalse(tracked.isDirtyTrackingEnabled());
  }

  @Test
  void refusedMapsAndUnmapsOfADomainChangeNothing() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(0, 0, M2, Access.READ_WRITE));
    assertRefused(unit, Errno.EEXIST, () -> d.map(M2 - K4, 0, 2 * K4, Access.READ));
    assertRefused(unit, Errno.EINVAL, () -> d.unmap(K4, K4));
    assertRefused(unit, Errno.EINVAL, () -> d.map(M2, 0, K4, 0));
    assertRefused(unit, Errno.EOVERFLOW, () -> d.map(-K4, 0, 2 * K4, Access.READ));
  }

  @Test
  void readAndClearDirtyReportsPagesWrittenThroughTheUnit() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, true));
    ok(d.setDirtyTracking(true));
    ok(unit.addDevice(0x10, 0));
    ok(unit.attach(0x10, -1, d));
    ok(d.map(0, 0x200000, 4 * K4, Access.READ_WRITE));
    Translation out = new Translation();
    unit.translate(0x10, -1, 2 * K4 + 5, Access.WRITE, 0, out);
    assertTrue(out.ok());
    List<Long> dirty = new ArrayList<>();
    assertEquals(1L, ok(d.readAndClearDirty(0, 4 * K4, true, dirty::add)));
    assertEquals(List.of(2 * K4), dirty);
  }

  @Test
  void aFreedDomainCannotBeUsed() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(unit.freeDomain(d));
    assertFalse(d.isLive());
    assertThrows(IllegalStateException.class, () -> d.map(0, 0, K4, Access.READ));
  }

  @Test
  void leavesAreReportedWithTheirSizes() {
    IommuUnit unit = vtd().unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    ok(d.map(M2 - K4, M2 - K4, M2 + K4, Access.READ));
    List<IoPageTable.Leaf> leaves = d.leaves();
    assertEquals(2, leaves.size());
    assertEquals(PageSize.SIZE_4K, leaves.get(0).size());
    assertEquals(PageSize.SIZE_2M, leaves.get(1).size());
  }
}
