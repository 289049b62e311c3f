package io.iommulab.hardware.cache;

import static io.iommulab.hardware.fault.FaultRecord.NO_PASID;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.IotlbSettings;
import io.iommulab.config.IotlbSettings.Eviction;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * The IOTLB and the device ATC against a map-based reference model that forgets nothing but what
 * an invalidation covers. The real caches may hold less (they evict), never more, and never
 * anything else: every hit is the translation last inserted for that tag and page, and while
 * nothing was evicted they agree exactly, the smallest covering page size winning.
 */
class CachesAgainstReferenceModelTest {

  private static final PageSize[] SIZES = {PageSize.SIZE_4K, PageSize.SIZE_2M, PageSize.SIZE_1G};
  private static final int[] MASKS = {0, 1, 2, 3, 8, 9, 10, 18, 30, 52};
  private static final int[][] GEOMETRIES = {{1, 4}, {2, 2}, {4, 2}, {8, 4}, {64, 8}};

  /** One cached translation in the reference: tag (domain, PASID), size and page base. */
  record Key(int domainId, int pasid, PageSize size, long base) {}

  record Val(long hpaBase, int prot) {}

  sealed interface Op {}

  record Insert(int domainId, int pasid, long iova, PageSize size, long hpa, int prot) implements Op {}

  record Lookup(int domainId, int pasid, long iova) implements Op {}

  record InvDomain(int domainId) implements Op {}

  record InvPasid(int domainId, int pasid) implements Op {}

  /** For the ATC: pasid is the request's (NO_PASID wipes all), mask is the size order. */
  record InvPages(int domainId, int pasid, long address, int mask) implements Op {}

  record InvAll() implements Op {}

  /**
   * IOVAs concentrated on few pages so that inserts, lookups and invalidations collide: two low
   * GiB regions and the top GiB of the 64-bit space.
   */
  static Arbitrary<Long> iovas() {
    Arbitrary<Long> region = Arbitraries.of(0L, 1L, (1L << 34) - 1);
    return Combinators.combine(
            region,
            Arbitraries.integers().between(0, 3),
            Arbitraries.integers().between(0, 7),
            Arbitraries.integers().between(0, 4095))
        .as((r, m2, k4, off) -> (r << 30) | ((long) m2 << 21) | ((long) k4 << 12) | off);
  }

  static Arbitrary<Integer> domains() {
    return Arbitraries.integers().between(0, 2);
  }

  static Arbitrary<Integer> pasids() {
    return Arbitraries.integers().between(-1, 1);
  }

  static Arbitrary<Op> ops(boolean atc) {
    Arbitrary<Op> insert =
        Combinators.combine(
                domains(),
                pasids(),
                iovas(),
                Arbitraries.of(SIZES),
                Arbitraries.longs().between(0, 1L << 40),
                Arbitraries.integers().between(1, 3))
            .as(Insert::new);
    Arbitrary<Op> lookup = Combinators.combine(domains(), pasids(), iovas()).as(Lookup::new);
    Arbitrary<Op> invDomain = domains().map(InvDomain::new);
    Arbitrary<Op> invPasid = Combinators.combine(domains(), pasids()).as(InvPasid::new);
    Arbitrary<Op> invPages =
        Combinators.combine(
                domains(),
                atc ? pasids() : Arbitraries.integers().between(Iotlb.ANY_PASID, 1),
                iovas(),
                Arbitraries.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9).map(i -> MASKS[i]))
            .as(
                (d, p, a, m) ->
                    // The ATC widens any address itself; the IOTLB takes aligned spans only.
                    new InvPages(d, p, atc ? a : a & ~Iotlb.spanLast(0, m), m));
    Arbitrary<Op> invAll = Arbitraries.just(new InvAll());
    List<Arbitrary<Op>> choices =
        atc
            ? List.of(insert, insert, lookup, lookup, invPages, invAll)
            : List.of(insert, insert, insert, lookup, lookup, lookup, invDomain, invPasid, invPages, invAll);
    return Arbitraries.oneOf(choices);
  }

  @Provide
  Arbitrary<List<Op>> iotlbOps() {
    return ops(false).list().ofMinSize(1).ofMaxSize(150);
  }

  @Provide
  Arbitrary<List<Op>> atcOps() {
    return ops(true).list().ofMinSize(1).ofMaxSize(150);
  }

  private static boolean overlaps(Key k, long start, long last) {
    long eLast = k.base() + k.size().mask();
    return Long.compareUnsigned(k.base(), last) <= 0 && Long.compareUnsigned(start, eLast) <= 0;
  }

  private static void removeIf(Map<Key, Val> ref, Predicate<Key> covered) {
    ref.keySet().removeIf(covered);
  }

  /** The smallest cached page of the reference covering {@code iova} for the tag, or null. */
  private static Key covering(Map<Key, Val> ref, int domainId, int pasid, long iova) {
    for (PageSize s : SIZES) {
      Key k = new Key(domainId, pasid, s, iova & ~s.mask());
      if (ref.containsKey(k)) {
        return k;
      }
    }
    return null;
  }

  private static void checkLookup(
      Map<Key, Val> ref, int domainId, int pasid, long iova, boolean hit, Translation out,
      long evictions, Translation.Source source) {
    Key smallest = covering(ref, domainId, pasid, iova);
    if (hit) {
      Key k = new Key(domainId, pasid, out.pageSize, iova & ~out.pageSize.mask());
      Val v = ref.get(k);
      assertNotNull(v, "hit from an invalidated or never inserted entry " + k);
      assertEquals(v.hpaBase() | (iova & out.pageSize.mask()), out.hpa);
      assertEquals(v.prot(), out.prot);
      assertEquals(source, out.source);
      if (evictions == 0) {
        assertEquals(smallest, k, "nothing evicted: the smallest covering page must hit");
      }
    } else {
      assertNull(out.source, "a miss leaves the translation untouched");
      if (evictions == 0) {
        assertNull(smallest, "nothing evicted, yet a cached translation missed");
      }
    }
  }

  @Property(tries = 200)
  void theIotlbOnlyEverHitsTheLastTranslationInsertedAndNotInvalidatedSince(
      @ForAll("iotlbOps") List<Op> ops,
      @ForAll @IntRange(min = 0, max = 4) int geometry,
      @ForAll Eviction eviction,
      @ForAll long seed) {
    int[] g = GEOMETRIES[geometry];
    Iotlb real = new Iotlb(new IotlbSettings(g[0], g[1], eviction), seed);
    Map<Key, Val> ref = new HashMap<>();
    Translation out = new Translation();
    for (Op op : ops) {
      if (op instanceof Insert x) {
        real.insert(x.domainId(), x.pasid(), x.iova(), x.hpa(), x.size(), x.prot());
        ref.put(
            new Key(x.domainId(), x.pasid(), x.size(), x.iova() & ~x.size().mask()),
            new Val(x.hpa() & ~x.size().mask(), x.prot()));
      } else if (op instanceof Lookup x) {
        boolean hit = real.lookup(x.domainId(), x.pasid(), x.iova(), out.reset());
        checkLookup(ref, x.domainId(), x.pasid(), x.iova(), hit, out, real.evictions(),
            Translation.Source.IOTLB);
      } else if (op instanceof InvDomain x) {
        real.invalidateDomain(x.domainId());
        removeIf(ref, k -> k.domainId() == x.domainId());
      } else if (op instanceof InvPasid x) {
        real.invalidatePasid(x.domainId(), x.pasid());
        removeIf(ref, k -> k.domainId() == x.domainId() && k.pasid() == x.pasid());
      } else if (op instanceof InvPages x) {
        real.invalidatePages(x.domainId(), x.pasid(), x.address(), x.mask());
        long last = x.mask() >= 52 ? -1L : x.address() + (1L << (x.mask() + 12)) - 1;
        removeIf(
            ref,
            k -> k.domainId() == x.domainId()
                && (x.pasid() == Iotlb.ANY_PASID || k.pasid() == x.pasid())
                && overlaps(k, x.address(), last));
      } else if (op instanceof InvAll) {
        real.invalidateAll();
        ref.clear();
      }
      assertTrue(real.size() <= real.capacity(), "size beyond capacity");
      assertTrue(real.size() <= ref.size(), "the cache holds an entry the reference dropped");
      if (real.evictions() == 0) {
        assertEquals(ref.size(), real.size());
      }
    }
    real.checkInvariants();
    // Every remaining reference entry either hits with its own translation or was evicted.
    for (Map.Entry<Key, Val> e : ref.entrySet()) {
      Key k = e.getKey();
      boolean hit = real.lookup(k.domainId(), k.pasid(), k.base(), out.reset());
      checkLookup(ref, k.domainId(), k.pasid(), k.base(), hit, out, real.evictions(),
          Translation.Source.IOTLB);
    }
  }

  /** The ATC invalidation span, computed the slow way: grow until both ends share a block. */
  private static long[] atcSpan(long address, int order) {
    if (order >= 52) {
      return new long[] {0, -1L};
    }
    long first = address >>> 12;
    long lastPage = Math.min(first + (1L << order) - 1, (1L << 52) - 1);
    int m = 0;
    while ((first >>> m) != (lastPage >>> m)) {
      m++;
    }
    long start = (first >>> m) << m;
    long end = start + (1L << m) - 1;
    return new long[] {start << 12, (end << 12) | 0xFFF};
  }

  @Property(tries = 200)
  void theAtcOnlyEverHitsTheLastTranslationInsertedAndNotInvalidatedSince(
      @ForAll("atcOps") List<Op> ops,
      @ForAll @IntRange(min = 0, max = 4) int geometry,
      @ForAll Eviction eviction,
      @ForAll long seed) {
    int[] g = GEOMETRIES[geometry];
    DeviceAtc real = new DeviceAtc(new IotlbSettings(g[0], g[1], eviction), seed);
    Map<Key, Val> ref = new HashMap<>();
    Translation out = new Translation();
    for (Op op : ops) {
      // The ATC has no domain: its key's domain is always 0.
      if (op instanceof Insert x) {
        real.insert(x.pasid(), x.iova(), x.hpa(), x.size(), x.prot());
        ref.put(
            new Key(0, x.pasid(), x.size(), x.iova() & ~x.size().mask()),
            new Val(x.hpa() & ~x.size().mask(), x.prot()));
      } else if (op instanceof Lookup x) {
        boolean hit = real.lookup(x.pasid(), x.iova(), out.reset());
        checkLookup(ref, 0, x.pasid(), x.iova(), hit, out, real.evictions(),
            Translation.Source.ATC);
      } else if (op instanceof InvPages x) {
        real.invalidate(x.pasid(), x.address(), x.mask());
        long[] span = atcSpan(x.address(), x.mask());
        removeIf(
            ref,
            k -> (x.pasid() == NO_PASID || k.pasid() == x.pasid()) && overlaps(k, span[0], span[1]));
      } else if (op instanceof InvAll) {
        real.invalidateAll();
        ref.clear();
      }
      assertTrue(real.size() <= real.capacity(), "size beyond capacity");
      assertTrue(real.size() <= ref.size(), "the ATC holds an entry the reference dropped");
      if (real.evictions() == 0) {
        assertEquals(ref.size(), real.size());
      }
    }
    real.checkInvariants();
    for (Map.Entry<Key, Val> e : ref.entrySet()) {
      Key k = e.getKey();
      boolean hit = real.lookup(k.pasid(), k.base(), out.reset());
      checkLookup(ref, 0, k.pasid(), k.base(), hit, out, real.evictions(), Translation.Source.ATC);
    }
  }
}
