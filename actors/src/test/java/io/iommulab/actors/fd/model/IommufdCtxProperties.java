package io.iommulab.actors.fd.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.iommu.ReservedRegion;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Random sequences of MAP (fixed and automatic), UNMAP (strict, or deferred: units answer with
 * flush tokens that complete later, sometimes before the answer is registered), flush reports,
 * COPY, domain add and removal on the model, with the effects of the units taken as succeeded:
 * after every step the invariants hold, every refused step left the snapshot unchanged, the
 * host's pin balance (from PinListener) matches the charges — areas awaiting a flush included —,
 * a map never lands on an area awaiting its flush, and flushing and unmapping everything brings
 * pins and charges back to zero.
 */
class IommufdCtxProperties {

  private static final long MB = 1L << 20;
  private static final long VA = 0x7f00_0000_0000L;

  record Op(int kind, int ioas, long va, long length, long iova) {}

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<Op> op =
        Combinators.combine(
                Arbitraries.integers().between(0, 8),
                Arbitraries.integers().between(0, 1),
                Arbitraries.longs().between(0, 15).map(p -> p * MB / 2),
                Arbitraries.of(0x1000L, MB / 2, MB, 2 * MB, 3 * MB, 0L, 0x800L),
                Arbitraries.longs().between(0, 31).map(p -> p * MB / 2))
            .as(Op::new);
    return op.list().ofMinSize(1).ofMaxSize(40);
  }

  private static GuestMemoryLayout layout() {
    return Fixtures.contiguousGuest(8, VA);
  }

  @Property(tries = 150)
  void refusedStepsChangeNothingAndEverythingBalances(@ForAll("ops") List<Op> ops) {
    long[] hostPinned = {0};
    PinListener pins = new PinListener() {
      @Override
      public void pinned(long userVa, long length) {
        hostPinned[0] += length;
      }

      @Override
      public void unpinned(long userVa, long length) {
        hostPinned[0] -= length;
      }
    };
    IommufdCtx ctx = new IommufdCtx(1, 1, layout(), UapiSettings.defaults().withMemlockLimit(24 * MB), false, false,
        FaultInjector.NONE, pins);
    int[] ioas = {ctx.ioasAlloc(0).value(), ctx.ioasAlloc(0).value()};
    Device dev = ctx.beginBind("d", 8, -1, 1, 0).value();
    ctx.completeBind(dev, new UnitInfo(0, "u", UnitKind.VTD, 0x1000 | 0x20_0000, 48, 0, (1L << 48) - 1, 0, true,
        true, true, true, false, false, List.of(ReservedRegion.VTD_MSI)));
    List<HwPagetable> domains = new ArrayList<>();
    List<Long> pendingTokens = new ArrayList<>();
    long[] nextToken = {1};
    for (Op op : ops) {
      int id = ioas[op.ioas()];
      FdSnapshot before = ctx.snapshot(0);
      Outcome<?> result;
      switch (op.kind()) {
        case 0, 1 -> {
          Outcome<IommufdCtx.MapOp> m = ctx.beginMap(Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE
              | (op.kind() == 0 ? Uapi.IOAS_MAP_FIXED_IOVA : 0), id, VA + op.va(), op.length(), op.iova());
          if (m.isOk()) {
            ctx.finishMap(m.value());
          }
          result = m;
        }
        case 2 -> {
          Outcome<IommufdCtx.UnmapOp> u = ctx.beginUnmap(id, op.iova(), op.length() == 0 ? -1L : op.length());
          if (u.isOk()) {
            ctx.finishUnmap(u.value());
          }
          // An unmap that stops at an area it may not take keeps the earlier areas removed, as the
          // kernel's does: only an unmap that took nothing must change nothing.
          result = u;
        }
        case 3 -> {
          Outcome<IommufdCtx.MapOp> c = ctx.beginCopy(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE,
              ioas[1 - op.ioas()], id, op.length(), op.iova(), op.va() * 2);
          if (c.isOk()) {
            ctx.finishMap(c.value());
          }
          result = c;
        }
        case 4 -> { // add a domain (a manual HWPT_PAGING with its effects succeeded)
          Outcome<HwPagetable> h = ctx.reservePaging(dev, ctx.ioas(id), false, false, false, false, null);
          result = h;
          if (h.isOk()) {
            ctx.domainAllocated(h.value(), domains.size() + 1, 0x1000 | 0x20_0000, 0, (1L << 48) - 1);
            Outcome<List<Area>> added = ctx.addToIoas(h.value());
            if (added.isOk()) {
              ctx.finalizeHwpt(h.value());
              domains.add(h.value());
            } else {
              ctx.abortHwpt(h.value());
            }
            result = added;
          }
        }
        case 5 -> { // remove a domain
          if (domains.isEmpty()) {
            continue;
          }
          HwPagetable h = domains.remove(0);
          ctx.objects().checkDestroy(h.id()).value();
          ctx.detachHwptFromIoas(h);
          ctx.finishDestroyHwpt(h);
          result = Outcome.OK;
        }
        case 6 -> { // a deferred unmap: each domain's unit answers with a token flushed later
          Outcome<IommufdCtx.UnmapOp> u = ctx.beginUnmap(id, op.iova(), op.length() == 0 ? -1L : op.length());
          if (u.isOk()) {
            java.util.Map<Area, List<IommufdCtx.FlushKey>> flushes = new java.util.IdentityHashMap<>();
            for (Area a : u.value().areas()) {
              List<IommufdCtx.FlushKey> keys = new ArrayList<>();
              for (int k = 0; k < u.value().targets().size(); k++) {
                long t = nextToken[0]++;
                keys.add(new IommufdCtx.FlushKey(0, t));
                pendingTokens.add(t);
              }
              flushes.put(a, keys);
            }
            ctx.finishUnmap(u.value(), flushes, java.util.Set.of());
          }
          result = u;
        }
        case 7 -> { // a flush report: the oldest pending token, or one overtaking its unmap's answer
          long t = pendingTokens.isEmpty() ? nextToken[0] : pendingTokens.remove(0);
          for (IommufdCtx.Released r : ctx.flushCompleted(0, new long[] {t})) {
            assertTrue(ctx.ioas(r.ioasId()) == null
                || ctx.ioas(r.ioasId()).iopt().firstArea(r.iova(), r.iova() + r.length() - 1) == null
                || ctx.ioas(r.ioasId()).iopt().firstArea(r.iova(), r.iova() + r.length() - 1).state()
                    != Area.State.UNMAPPING, "a released area left its IOVA");
          }
          result = Outcome.OK;
        }
        default -> result = ctx.iovaRanges(id, 1);
      }
      if (!result.isOk()) {
        assertEquals(before, ctx.snapshot(0), op + " -> " + result);
      }
      ctx.checkInvariants();
      long charged = ctx.accounting().userLockedPages() * Uapi.PAGE_SIZE;
      assertEquals(charged, hostPinned[0], "every charged page was reported pinned once");
    }
    long[] rest = pendingTokens.stream().mapToLong(Long::longValue).toArray();
    ctx.flushCompleted(0, rest);
    assertEquals(0, ctx.areasAwaitingFlush());
    for (int id : ioas) {
      IommufdCtx.UnmapOp all = ctx.beginUnmap(id, 0, -1L).value();
      ctx.finishUnmap(all);
    }
    ctx.checkInvariants();
    assertEquals(0, hostPinned[0]);
    assertEquals(0, ctx.accounting().userLockedPages());
    assertTrue(ctx.snapshot(0).ioases().stream().allMatch(i -> i.areas().isEmpty()));
  }
}
