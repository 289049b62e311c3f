package io.iommulab.actors.fd.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The fd model's side of deferred unmaps: an area whose units answered before flushing keeps its
 * IOVA, pin and charge until every flush is reported; a unit that stopped counts as flushed; a
 * unit that refused the unmap leaves the area stuck (pinned) until its IOAS has no domain left;
 * close cannot finish while an area waits.
 */
class DeferredUnmapModelTest {

  private static final long MB = 1L << 20;
  private static final long VA = 0x7f00_0000_0000L;
  private static final long IOVA = 0x10_0000L;

  private final long[] hostPinned = {0};
  private final IommufdCtx ctx =
      new IommufdCtx(1, 1, layout(), UapiSettings.defaults(), false, false, FaultInjector.NONE,
          new PinListener() {
            @Override
            public void pinned(long userVa, long length) {
              hostPinned[0] += length;
            }

            @Override
            public void unpinned(long userVa, long length) {
              hostPinned[0] -= length;
            }
          });
  private final Device dev = bind();
  private final int ioasId = ctx.ioasAlloc(0).value();
  private final HwPagetable domain = addDomain(ioasId, 1);

  private static GuestMemoryLayout layout() {
    return Fixtures.contiguousGuest(4, VA);
  }

  private Device bind() {
    Device d = ctx.beginBind("d", 8, -1, 1, 0).value();
    return ctx.completeBind(d, new UnitInfo(0, "u", UnitKind.VTD, 0x1000 | 0x20_0000, 48, 0,
        (1L << 48) - 1, 0, true, true, true, true, false, false, List.of(ReservedRegion.VTD_MSI)))
        .value();
  }

  private HwPagetable addDomain(int ioas, int domainId) {
    HwPagetable h = ctx.reservePaging(dev, ctx.ioas(ioas), false, false, false, false, null).value();
    ctx.domainAllocated(h, domainId, 0x1000 | 0x20_0000, 0, (1L << 48) - 1);
    ctx.addToIoas(h).value();
    ctx.finalizeHwpt(h);
    return h;
  }

  private void map(long iova, long length) {
    ctx.finishMap(ctx.beginMap(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE
        | Uapi.IOAS_MAP_WRITEABLE, ioasId, VA, length, iova).value());
  }

  /** Unmaps {@code [iova, +length)} with unit 0's answer carrying flush {@code token}. */
  private IommufdCtx.UnmapOp deferredUnmap(long iova, long length, long... tokens) {
    IommufdCtx.UnmapOp op = ctx.beginUnmap(ioasId, iova, length).value();
    List<IommufdCtx.FlushKey> keys = new java.util.ArrayList<>();
    for (long t : tokens) {
      keys.add(new IommufdCtx.FlushKey(0, t));
    }
    ctx.finishUnmap(op, Map.of(op.areas().get(0), keys), Set.of());
    return op;
  }

  private long charged() {
    return ctx.accounting().userLockedPages() * Uapi.PAGE_SIZE;
  }

  @Test
  void anAreaAwaitingItsFlushKeepsItsIovaPinAndChargeUntilTheLastFlushIsReported() {
    map(IOVA, MB);
    deferredUnmap(IOVA, MB, 7, 8);
    assertEquals(MB, hostPinned[0]);
    assertEquals(MB, charged());
    assertEquals(1, ctx.areasAwaitingFlush());
    FdSnapshot snap = ctx.snapshot(0);
    assertEquals(List.of("ioas " + ioasId + " [0x100000, 0x1fffff] awaiting 2 flushes"), snap.lingering());
    assertEquals("AWAITING_FLUSH", snap.ioases().get(0).areas().get(0).state());
    assertFalse(snap.isEmpty());
    ctx.checkInvariants();

    FdSnapshot before = ctx.snapshot(0);
    assertEquals(Errno.EEXIST, ctx.beginMap(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE,
        ioasId, VA, MB, IOVA).errnoOrNull(), "the IOVA is not reused before the flush");
    assertEquals(Errno.ENOENT, ctx.beginUnmap(ioasId, IOVA, MB).errnoOrNull(), "unmapped already");
    assertEquals(before, ctx.snapshot(0));
    IommufdCtx.MapOp autoMap = ctx.beginMap(Uapi.IOAS_MAP_READABLE, ioasId, VA, MB, 0).value();
    long auto = autoMap.iova();
    assertTrue(auto + MB <= IOVA || auto > IOVA + MB - 1, "auto IOVA skips the area: " + auto);
    ctx.finishMap(autoMap);

    assertEquals(List.of(), ctx.flushCompleted(0, new long[] {7}));
    assertEquals(List.of(new IommufdCtx.Released(ioasId, IOVA, MB)),
        ctx.flushCompleted(0, new long[] {8}));
    assertEquals(0, ctx.areasAwaitingFlush());
    ctx.checkInvariants();
    assertEquals(new FdSnapshot.UnmapCounters(1, 2, 0), ctx.snapshot(0).unmaps());
  }

  @Test
  void aFlushReportedBeforeItsUnmapWasAnsweredReleasesTheAreaAtOnce() {
    map(IOVA, MB);
    assertEquals(List.of(), ctx.flushCompleted(0, new long[] {3}));
    deferredUnmap(IOVA, MB, 3);
    assertEquals(0, ctx.areasAwaitingFlush());
    assertTrue(ctx.snapshot(0).lingering().isEmpty());
    ctx.checkInvariants();
    map(IOVA, MB); // free again
  }

  @Test
  void aStoppedUnitCountsAsFlushedNowAndLater() {
    map(IOVA, MB);
    map(IOVA + MB, MB);
    deferredUnmap(IOVA, MB, 1);
    assertEquals(List.of(new IommufdCtx.Released(ioasId, IOVA, MB)), ctx.unitGone(0));
    deferredUnmap(IOVA + MB, MB, 2);
    assertEquals(0, ctx.areasAwaitingFlush(), "a flush of a gone unit is never waited for");
    ctx.checkInvariants();
  }

  @Test
  void destroyingTheIoasKeepsTheAwaitingAreasPinnedUntilTheirFlush() {
    map(IOVA, MB);
    deferredUnmap(IOVA, MB, 5);
    ctx.objects().checkDestroy(domain.id()).value();
    ctx.detachHwptFromIoas(domain);
    ctx.finishDestroyHwpt(domain);
    assertEquals(MB, hostPinned[0], "the last domain went, but the flush has not");
    ctx.beginDestroy(ioasId).value();
    assertEquals(MB, hostPinned[0]);
    assertEquals(MB, charged());
    ctx.checkInvariants();
    assertThrows(IllegalStateException.class, ctx::finishClose, "close waits for the flush");
    assertEquals(List.of(new IommufdCtx.Released(ioasId, IOVA, MB)),
        ctx.flushCompleted(0, new long[] {5}));
    assertEquals(0, hostPinned[0]);
    assertEquals(0, charged());
    ctx.checkInvariants();
  }

  @Test
  void anAreaAUnitRefusedToUnmapStaysPinnedUntilItsIoasHasNoDomain() {
    map(IOVA, MB);
    IommufdCtx.UnmapOp op = ctx.beginUnmap(ioasId, IOVA, MB).value();
    ctx.finishUnmap(op, Map.of(), Set.of(op.areas().get(0)));
    assertEquals(MB, hostPinned[0]);
    assertEquals(List.of("ioas " + ioasId + " [0x100000, 0x1fffff] stuck (a unit refused to unmap it)"),
        ctx.snapshot(0).lingering());
    assertEquals(1, ctx.snapshot(0).unmaps().refused());
    ctx.checkInvariants();
    // A domain added meanwhile never gets the stuck area.
    HwPagetable second = addDomain(ioasId, 2);
    ctx.checkInvariants();
    for (HwPagetable h : List.of(domain, second)) {
      ctx.objects().checkDestroy(h.id()).value();
      ctx.detachHwptFromIoas(h);
      ctx.finishDestroyHwpt(h);
    }
    assertEquals(0, hostPinned[0], "no domain can reach it any more");
    assertTrue(ctx.snapshot(0).lingering().isEmpty());
    ctx.checkInvariants();
  }
}
