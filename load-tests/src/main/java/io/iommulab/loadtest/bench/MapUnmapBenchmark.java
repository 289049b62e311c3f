package io.iommulab.loadtest.bench;

import static io.iommulab.loadtest.bench.BenchUnits.PA_OFFSET;
import static io.iommulab.loadtest.bench.BenchUnits.PAGE;
import static io.iommulab.loadtest.bench.BenchUnits.RID;
import static io.iommulab.loadtest.bench.BenchUnits.RW;
import static io.iommulab.loadtest.bench.BenchUnits.STEP_NS;
import static io.iommulab.loadtest.bench.BenchUnits.iovaOfPage;
import static io.iommulab.loadtest.bench.BenchUnits.ok;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cache.AtcSink;
import io.iommulab.hardware.cache.Iotlb;
import io.iommulab.hardware.cache.SyncCompletion;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.iommu.IommuUnit;
import io.iommulab.hardware.iommu.PagingDomain;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link PagingDomain#map} and {@link PagingDomain#unmap} of one 4 KiB page in a steady state
 * where {@code mapped} pages stay mapped, for 1 Ki to 1 Mi mapped pages: the cost must grow at
 * most logarithmically with the number of mappings (a radix table is O(levels); what grows is the
 * CPU-cache footprint of the table).
 *
 * <pre>
 *   IOVA space from 8 GiB, 2 x mapped page slots:
 *
 *   slot:   0     1     2     3     4     5    ...   2m-2  2m-1
 *         +-----+-----+-----+-----+-----+-----+     +-----+-----+
 *         | MAP |     | MAP |     | MAP |     | ... | MAP |     |    MAP = one of the m
 *         +-----+-----+-----+-----+-----+-----+     +-----+-----+    mapped 4 KiB pages
 *            ^     ^
 *            |     +-- mapFreshUnmap:      map a hole (random order), unmap it again
 *            +-------- unmapRemapExisting: unmap a mapped page (random order), map it back
 *                      unmapInvalidateRemap: as above plus the IOTLB invalidation an iommufd
 *                      unmap issues (invalidateRange + processInvalidations), full 64 x 8 IOTLB
 *
 *   Measured: one map + one unmap (a pair) per op; the table holds m leaves before and after.
 *   Target (issue): cost at 1 Mi mapped pages at most logarithmically above 1 Ki.
 * </pre>
 *
 * <p>Holes interleave with mapped pages, so a fresh page lands in a leaf table that already
 * exists (an IOVA allocator hands out addresses near live ones) and the walk goes through the
 * same table nodes the mapped pages use: with 1 Mi pages these are 4096 leaf tables (16 MiB), more
 * than L2 and half of L3, visited in random order.
 *
 * <p>Noise: working sets beyond the 2 MiB L2 live in an L3 this VM shares with other tenants of
 * the host; single iterations then vary up to 2×, hence 10 measured iterations. Compare medians
 * of the iterations (JMH's JSON has them) as well as the mean.
 *
 * <p>Invalidates the number: a map or unmap that fails (the op throws); a leaf count other than
 * {@code mapped} after an iteration (checked); a map that picks a large page (impossible: one 4
 * KiB page per call). Allocation is part of the cost: see {@code -prof gc}
 * ({@code gc.alloc.rate.norm}).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
@State(Scope.Thread)
public class MapUnmapBenchmark {

  /** Pages mapped in the steady state. */
  @Param({"1024", "16384", "262144", "1048576"})
  public int mapped;

  private IommuUnit unit;
  private PagingDomain domain;
  private long[] holes;
  private long[] existing;
  private int mask;
  private int nextHole;
  private int nextExisting;
  private long now;
  private final AtcSink noAts =
      command -> {
        throw new IllegalStateException("no ATS requester is attached: " + command);
      };

  @Setup(Level.Trial)
  public void setUp() {
    unit = BenchUnits.vtdUnit(BenchUnits.DEFAULT_IOTLB);
    domain = ok(unit.allocPagingDomain(false, false));
    ok(unit.addDevice(RID, 0));
    ok(unit.attach(RID, FaultRecord.NO_PASID, domain));
    holes = new long[mapped];
    existing = new long[mapped];
    for (int k = 0; k < mapped; k++) {
      existing[k] = iovaOfPage(2L * k);
      holes[k] = iovaOfPage(2L * k + 1);
      ok(domain.map(existing[k], existing[k] + PA_OFFSET, PAGE, RW));
    }
    BenchUnits.shuffle(existing, 0xE715_71A6L);
    BenchUnits.shuffle(holes, 0x0B0E_5EEDL);
    mask = BenchUnits.maskOf(holes);
    // Fill the IOTLB the way live DMA would, so invalidations scan a full cache.
    Translation out = new Translation();
    for (int i = 0; i < 4 * BenchUnits.DEFAULT_IOTLB.capacity(); i++) {
      unit.translate(
          RID, FaultRecord.NO_PASID, existing[i & mask], Access.READ, now += STEP_NS, out);
    }
    checkSteadyState();
  }

  @TearDown(Level.Iteration)
  public void checkSteadyState() {
    if (domain.leafCount() != mapped || domain.mappedBytes() != mapped * IoPageTable.BASE_PAGE) {
      throw new IllegalStateException("not in steady state: " + domain);
    }
    if (unit.queuePending() != 0) {
      throw new IllegalStateException(unit.queuePending() + " invalidation descriptors left");
    }
  }

  private static long mapOrThrow(PagingDomain d, long iova) {
    Outcome<Void> m = d.map(iova, iova + PA_OFFSET, PAGE, RW);
    if (!m.isOk()) {
      throw new IllegalStateException("map 0x" + Long.toHexString(iova) + ": " + m);
    }
    return 1;
  }

  /** Maps a page at a free IOVA inside the mapped span, then unmaps it. */
  @Benchmark
  public long mapFreshUnmap() {
    long iova = holes[nextHole++ & mask];
    long r = mapOrThrow(domain, iova);
    return r + domain.unmap(iova, PAGE).value();
  }

  /** Unmaps a mapped page, then maps it back to the same physical page. */
  @Benchmark
  public long unmapRemapExisting() {
    long iova = existing[nextExisting++ & mask];
    long bytes = domain.unmap(iova, PAGE).value();
    return bytes + mapOrThrow(domain, iova);
  }

  /**
   * As {@link #unmapRemapExisting} with the IOTLB invalidation between unmap and re-map that
   * iommufd's unmap performs ({@code iommu_unmap} + {@code iotlb_sync}): page-selective IOTLB
   * descriptor plus a Wait, submitted and processed.
   */
  @Benchmark
  public long unmapInvalidateRemap() {
    long iova = existing[nextExisting++ & mask];
    long bytes = domain.unmap(iova, PAGE).value();
    long token = unit.invalidateRange(domain, Iotlb.ANY_PASID, iova, PAGE).value();
    List<SyncCompletion> done = unit.processInvalidations(now += STEP_NS, noAts);
    if (done.isEmpty() || done.get(done.size() - 1).token() != token) {
      throw new IllegalStateException("wait " + token + " did not complete: " + done);
    }
    return bytes + mapOrThrow(domain, iova);
  }
}
