package io.iommulab.hardware.iommu;

import static io.iommulab.hardware.iommu.Units.COST;
import static io.iommulab.hardware.iommu.Units.G1;
import static io.iommulab.hardware.iommu.Units.K4;
import static io.iommulab.hardware.iommu.Units.M2;
import static io.iommulab.hardware.iommu.Units.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;

/**
 * Properties required by the issue: (a) a paging domain agrees with {@link RefTable} over random
 * map/unmap/translate sequences; (b) nested translation equals the composition of two reference
 * tables; (c) through the unit, no translation returns a stale IOTLB hit once the invalidation
 * covering it has completed.
 */
class TranslationPropertiesTest {
  /** Addresses live in a 16 MiB window, so operations collide often. */
  static final int WINDOW_PAGES = 4096;

  static final int NO_PASID = FaultRecord.NO_PASID;

  sealed interface Op permits MapOp, UnmapOp, TranslateOp, ProcessOp {}

  record MapOp(long iova, long pa, long length, int prot) implements Op {}

  /** Unmap; in (c) followed by an invalidation, processed at once when {@code sync}. */
  record UnmapOp(long iova, long length, boolean sync) implements Op {}

  record TranslateOp(boolean viaNested, long iova, int access) implements Op {}

  /** (c): run the invalidation queue to its last Wait. */
  record ProcessOp() implements Op {}

  static Arbitrary<Long> iovas() {
    return Arbitraries.oneOf(
        Arbitraries.integers().between(0, 7).map(i -> i * M2),
        Arbitraries.integers().between(0, WINDOW_PAGES - 1).map(i -> i * K4),
        Arbitraries.integers().between(1, 7).map(i -> i * M2 - K4));
  }

  static Arbitrary<Long> pas() {
    return Arbitraries.oneOf(
        Arbitraries.integers().between(0, 63).map(i -> i * M2),
        Arbitraries.integers().between(0, 1 << 16).map(i -> i * K4));
  }

  static Arbitrary<Long> lengths() {
    return Arbitraries.of(K4, 2 * K4, 5 * K4, M2 - K4, M2, M2 + K4, 2 * M2, 3 * M2 + 2 * K4);
  }

  static Arbitrary<Integer> prots() {
    return Arbitraries.frequency(
        Tuple.of(4, Access.READ_WRITE),
        Tuple.of(2, Access.READ),
        Tuple.of(2, Access.WRITE),
        Tuple.of(1, Access.READ | Access.EXEC),
        Tuple.of(1, 0));
  }

  static Arbitrary<Integer> accesses() {
    return Arbitraries.of(Access.READ, Access.WRITE, Access.READ_WRITE);
  }

  @Provide
  Arbitrary<List<Long>> sizes() {
    return Arbitraries.of(List.of(K4), List.of(K4, M2), List.of(K4, M2, G1));
  }

  @Provide
  Arbitrary<List<Op>> domainOps() {
    Arbitrary<Op> map = Combinators.combine(iovas(), pas(), lengths(), prots()).as(MapOp::new);
    Arbitrary<Op> unmap =
        Combinators.combine(iovas(), lengths()).as((i, l) -> new UnmapOp(i, l, true));
    Arbitrary<Op> translate =
        Combinators.combine(iovas(), Arbitraries.longs().between(0, K4 - 1), accesses())
            .as((i, off, a) -> new TranslateOp(false, i + off, a));
    return Arbitraries.frequencyOf(Tuple.of(5, map), Tuple.of(3, unmap), Tuple.of(2, translate))
        .list()
        .ofMinSize(1)
        .ofMaxSize(40);
  }

  // ------------------------------------------------------------------ (a)

  @Property(tries = 300)
  void aPagingDomainAgreesWithTheReferenceModel(
      @ForAll("sizes") List<Long> sizes, @ForAll("domainOps") List<Op> ops) {
    IommuUnit unit = Units.vtd().sizes(sizes).unit();
    PagingDomain d = ok(unit.allocPagingDomain(false, false));
    RefTable ref = new RefTable(sizes);
    Translation out = new Translation();
    for (Op op : ops) {
      IoPageTable.Snapshot before = d.tableSnapshot();
      if (op instanceof MapOp m) {
        Errno expected = ref.map(m.iova(), m.pa(), m.length(), m.prot());
        Outcome<Void> got = d.map(m.iova(), m.pa(), m.length(), m.prot());
        assertEquals(expected, got.errnoOrNull(), () -> op + " -> " + got);
        if (!got.isOk()) {
          assertEquals(before, d.tableSnapshot(), "refused " + op + " changed the table");
        }
      } else if (op instanceof UnmapOp u) {
        long expected = ref.unmap(u.iova(), u.length());
        Outcome<Long> got = d.unmap(u.iova(), u.length());
        if (expected < 0) {
          assertEquals(Errno.EINVAL, got.errnoOrNull(), () -> op + " -> " + got);
          assertEquals(before, d.tableSnapshot(), "refused " + op + " changed the table");
        } else {
          assertEquals(expected, got.value(), op::toString);
        }
      } else if (op instanceof TranslateOp t) {
        RefTable.Hit h = ref.lookup(t.iova());
        boolean mapped = d.iovaToPhys(t.iova(), out);
        assertEquals(h != null, mapped, op::toString);
        if (h != null) {
          assertEquals(h.pa(), out.hpa, op::toString);
          assertEquals(h.prot(), out.prot, op::toString);
          assertEquals(h.size(), out.pageSize.bytes(), op::toString);
        }
      }
      assertEquals(ref.leaves(), RefTable.of(d.leaves()), () -> "after " + op);
    }
    d.checkInvariants();
  }

  // ------------------------------------------------------------------ (b)

  @Provide
  Arbitrary<List<MapOp>> stageMaps() {
    return Combinators.combine(iovas(), iovas(), lengths(), prots())
        .as(MapOp::new)
        .list()
        .ofMaxSize(12);
  }

  @Property(tries = 300)
  void aNestedTranslationIsTheCompositionOfItsTwoStages(
      @ForAll("sizes") List<Long> sizes,
      @ForAll("stageMaps") List<MapOp> stage1,
      @ForAll("stageMaps") List<MapOp> stage2,
      @ForAll("probes") List<Long> probes) {
    IommuUnit unit = Units.vtd().sizes(sizes).unit();
    PagingDomain parent = ok(unit.allocPagingDomain(true, false));
    NestedDomain nested = ok(unit.allocNestedDomain(parent));
    RefTable ref1 = new RefTable(sizes);
    RefTable ref2 = new RefTable(sizes);
    for (MapOp m : stage1) {
      assertEquals(
          ref1.map(m.iova(), m.pa(), m.length(), m.prot()),
          nested.stage1().map(m.iova(), m.pa(), m.length(), m.prot()).errnoOrNull());
    }
    for (MapOp m : stage2) {
      assertEquals(
          ref2.map(m.iova(), m.pa(), m.length(), m.prot()),
          parent.map(m.iova(), m.pa(), m.length(), m.prot()).errnoOrNull());
    }
    Translation out = new Translation();
    for (long iova : probes) {
      out.reset();
      FaultReason fault = nested.walk(iova, false, COST, out);
      RefTable.Hit h1 = ref1.lookup(iova);
      if (h1 == null) {
        assertEquals(FaultReason.NOT_PRESENT, fault);
        continue;
      }
      RefTable.Hit h2 = ref2.lookup(h1.pa());
      if (h2 == null) {
        assertEquals(FaultReason.STAGE2_NOT_PRESENT, fault);
        continue;
      }
      assertNull(fault);
      assertEquals(h2.pa(), out.hpa);
      assertEquals(h1.prot() & h2.prot(), out.prot);
      assertEquals(Math.min(h1.size(), h2.size()), out.pageSize.bytes());
      assertEquals(Translation.Source.NESTED_WALK, out.source);
    }
  }

  @Provide
  Arbitrary<List<Long>> probes() {
    return Combinators.combine(iovas(), Arbitraries.longs().between(0, K4 - 1))
        .as(Long::sum)
        .list()
        .ofMinSize(1)
        .ofMaxSize(40);
  }

  // ------------------------------------------------------------------ (c)

  static final int RID_A = 0x0100;
  static final int RID_B = 0x0200;

  @Provide
  Arbitrary<List<Op>> unitOps() {
    Arbitrary<Op> map = Combinators.combine(iovas(), pas(), lengths(), prots()).as(MapOp::new);
    Arbitrary<Op> unmap =
        Combinators.combine(iovas(), lengths(), Arbitraries.of(true, true, false))
            .as(UnmapOp::new);
    Arbitrary<Op> translate =
        Combinators.combine(
                Arbitraries.of(false, true),
                iovas(),
                Arbitraries.longs().between(0, K4 - 1),
                accesses())
            .as((n, i, off, a) -> new TranslateOp(n, i + off, a));
    Arbitrary<Op> process = Arbitraries.just(new ProcessOp());
    return Arbitraries.frequencyOf(
            Tuple.of(3, map), Tuple.of(3, unmap), Tuple.of(6, translate), Tuple.of(1, process))
        .list()
        .ofMinSize(1)
        .ofMaxSize(60);
  }

  /**
   * RID_A uses the parent P at RID_PASID; RID_B uses a nested domain whose stage 1 maps the
   * window identically onto GPAs, so its truth is P's mapping of the same address. Every unmap of
   * P is followed by its invalidation; while it is pending, translations of the range (for the
   * nested user: all, as its whole IOTLB is flushed) are unconstrained; after it completed they
   * must equal the tables.
   */
  @Property(tries = 250)
  void noTranslationIsStaleAfterItsInvalidationCompleted(
      @ForAll("sizes") List<Long> sizes,
      @ForAll boolean cachingMode,
      @ForAll("masks") int maxAddressMask,
      @ForAll("unitOps") List<Op> ops) {
    IommuUnit unit =
        Units.vtd().sizes(sizes).cachingMode(cachingMode).maxAddressMask(maxAddressMask).unit();
    PagingDomain p = ok(unit.allocPagingDomain(true, false));
    NestedDomain n = ok(unit.allocNestedDomain(p));
    ok(n.stage1().map(0, 0, 8 * M2, Access.READ_WRITE | Access.EXEC));
    ok(unit.addDevice(RID_A, 0, true));
    ok(unit.addDevice(RID_B, 0, true));
    ok(unit.attach(RID_A, NO_PASID, p));
    ok(unit.attach(RID_B, NO_PASID, n));
    List<long[]> pending = new ArrayList<>();
    Translation out = new Translation();
    Translation truth = new Translation();
    long now = 0;
    for (Op op : ops) {
      now += 50;
      if (op instanceof MapOp m) {
        if (p.map(m.iova(), m.pa(), m.length(), m.prot()).isOk()) {
          // Caching mode: a new map is seen only after its invalidation.
          if (ok(unit.invalidateAfterMap(p, m.iova(), m.length())) != 0) {
            unit.processInvalidations(now, x -> {});
            pending.clear();
          }
        }
      } else if (op instanceof UnmapOp u) {
        if (ok0(p.unmap(u.iova(), u.length())) > 0) {
          ok(unit.invalidateRange(p, Iotlb.ANY_PASID, u.iova(), u.length()));
          pending.add(new long[] {u.iova(), u.iova() + u.length()});
          if (u.sync()) {
            unit.processInvalidations(now, x -> {});
            pending.clear();
          }
        }
      } else if (op instanceof ProcessOp) {
        unit.processInvalidations(now, x -> {});
        pending.clear();
      } else if (op instanceof TranslateOp t) {
        int rid = t.viaNested() ? RID_B : RID_A;
        unit.translate(rid, NO_PASID, t.iova(), t.access(), now, out);
        boolean constrained = t.viaNested() ? pending.isEmpty() : !covered(pending, t.iova());
        if (!constrained) {
          continue;
        }
        truth.reset();
        boolean mapped = p.iovaToPhys(t.iova(), truth);
        if (!mapped) {
          assertFalse(out.ok(), () -> "stale hit " + out + " for " + op);
          assertEquals(
              t.viaNested() ? FaultReason.STAGE2_NOT_PRESENT : FaultReason.NOT_PRESENT,
              out.fault,
              op::toString);
        } else if (!Access.permits(truth.prot, t.access())) {
          assertFalse(out.ok(), () -> "stale permission " + out + " for " + op);
        } else {
          assertTrue(out.ok(), () -> out + " for " + op);
          assertEquals(truth.hpa, out.hpa, () -> "stale address for " + op);
          assertEquals(truth.prot, out.prot, op::toString);
        }
      }
    }
    unit.checkInvariants();
  }

  @Provide
  Arbitrary<Integer> masks() {
    return Arbitraries.of(2, 9, 18);
  }

  private static long ok0(Outcome<Long> o) {
    return o.isOk() ? o.value() : 0;
  }

  private static boolean covered(List<long[]> ranges, long iova) {
    for (long[] r : ranges) {
      if (iova >= r[0] && iova < r[1]) {
        return true;
      }
    }
    return false;
  }
}
