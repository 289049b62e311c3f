package io.iommulab.loadtest.bench;

import io.iommulab.config.IotlbSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.iommu.IommuUnit;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Fixtures shared by the hardware benchmarks: a VT-d-like unit, page layouts and precomputed IOVA
 * sequences. Everything here runs in {@code @Setup}, never inside a measured method.
 */
final class BenchUnits {

  /** Requester 01:00.0. */
  static final int RID = 0x0100;

  static final long PAGE = IoPageTable.BASE_PAGE;

  /** 1 Mi pages: 4 GiB of 4 KiB mappings. */
  static final int ONE_MI = 1 << 20;

  /**
   * First mapped IOVA: 8 GiB, so 2 Mi pages (8 GiB) above it stay clear of the VT-d interrupt
   * window at 0xFEE0_0000 and inside the 48-bit width.
   */
  static final long IOVA_BASE = 1L << 33;

  /** IOVA page {@code i} maps to {@code iova + PA_OFFSET}: no PA array needed in the loop. */
  static final long PA_OFFSET = (1L << 40) - IOVA_BASE;

  /** Guest-physical base of the nested benchmarks' stage-1 outputs. */
  static final long GPA_BASE = 1L << 32;

  /**
   * Modeled time between two requests: longer than the longest modeled walk (a 4×4 nested walk,
   * 24 reads × 25 ns = 600 ns), so the page walker is idle at every arrival and no queueing
   * latency accumulates in {@code ContendedResource}.
   */
  static final long STEP_NS = 1_000;

  /** Sub-page offset added to IOVAs so translations exercise the offset arithmetic. */
  static final long OFFSET = 0x123;

  static final int RW = Access.READ_WRITE;

  static final List<Long> SIZES =
      List.of(PageSize.SIZE_4K.bytes(), PageSize.SIZE_2M.bytes(), PageSize.SIZE_1G.bytes());

  /** The reference.conf geometry: 64 sets × 8 ways, LRU. */
  static final IotlbSettings DEFAULT_IOTLB = new IotlbSettings(64, 8, IotlbSettings.Eviction.LRU);

  /** One entry: any two different consecutive pages miss. */
  static final IotlbSettings ONE_ENTRY_IOTLB = new IotlbSettings(1, 1, IotlbSettings.Eviction.LRU);

  private BenchUnits() {}

  /** A 48-bit (4-level) VT-d unit with every capability, not in caching mode. */
  static IommuUnit vtdUnit(IotlbSettings iotlb) {
    PagingUnitSettings s =
        new PagingUnitSettings(
            "bench-vtd0", UnitKind.VTD, 48, SIZES, true, true, true, true, 20, 256, iotlb, 256, 18,
            false);
    return new IommuUnit(0, s, CostModel.defaults(), 42, FaultInjector.NONE);
  }

  /** A standalone 48-bit table with the unit's page sizes. */
  static IoPageTable table48() {
    return new IoPageTable(
        48, List.of(PageSize.SIZE_4K, PageSize.SIZE_2M, PageSize.SIZE_1G), FaultInjector.NONE);
  }

  static <T> T ok(Outcome<T> o) {
    if (!o.isOk()) {
      throw new IllegalStateException("benchmark setup failed: " + o);
    }
    return o.value();
  }

  static long iovaOfPage(long page) {
    return IOVA_BASE + page * PAGE;
  }

  /** Page indices {@code 0..n-1}, ascending or shuffled by a fixed seed. */
  static long[] pageOrder(int n, AccessPattern pattern) {
    long[] order = new long[n];
    for (int i = 0; i < n; i++) {
      order[i] = i;
    }
    if (pattern == AccessPattern.RANDOM) {
      shuffle(order, 0x10AA_1AB5L);
    }
    return order;
  }

  static void shuffle(long[] a, long seed) {
    SplittableRandom rnd = new SplittableRandom(seed);
    for (int i = a.length - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      long t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }

  /** The index mask of a power-of-two-sized sequence. */
  static int maskOf(long[] sequence) {
    if (Integer.bitCount(sequence.length) != 1) {
      throw new IllegalArgumentException("sequence length " + sequence.length + " not 2^k");
    }
    return sequence.length - 1;
  }

  /**
   * IOTLB hit/miss counts over one measurement iteration. Benchmarks whose meaning depends on the
   * hit ratio check it here and fail the run when it is wrong, so a number that measures the
   * other path is never reported.
   */
  static final class IotlbWindow {
    private long hits0;
    private long misses0;

    void begin(Iotlb iotlb) {
      hits0 = iotlb.hits();
      misses0 = iotlb.misses();
    }

    /** IOTLB lookups since {@link #begin}. */
    long lookups(Iotlb iotlb) {
      return iotlb.hits() - hits0 + iotlb.misses() - misses0;
    }

    /** Prints the window's hit ratio and throws when it is outside {@code [min, max]}. */
    void end(Iotlb iotlb, String what, double min, double max) {
      long h = iotlb.hits() - hits0;
      long m = iotlb.misses() - misses0;
      double ratio = h + m == 0 ? Double.NaN : (double) h / (h + m);
      System.out.printf(
          "  [%s] IOTLB hit ratio %.6f (%d hits, %d misses)%n", what, ratio, h, m);
      if (!(ratio >= min && ratio <= max)) {
        throw new IllegalStateException(
            what + ": IOTLB hit ratio " + ratio + " outside [" + min + ", " + max
                + "]: the benchmark measured the wrong path");
      }
    }
  }

  /** Throws unless {@code t} is a successful translation of the expected kind and depth. */
  static void checkTranslation(Translation t, Translation.Source source, int levels, String what) {
    if (!t.ok() || t.source != source || t.levels != levels) {
      throw new IllegalStateException(
          what + ": expected " + source + " with " + levels + " reads, got " + t + " levels "
              + t.levels);
    }
  }
}
