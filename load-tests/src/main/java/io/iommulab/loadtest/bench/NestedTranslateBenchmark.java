package io.iommulab.loadtest.bench;

import static io.iommulab.loadtest.bench.BenchUnits.GPA_BASE;
import static io.iommulab.loadtest.bench.BenchUnits.OFFSET;
import static io.iommulab.loadtest.bench.BenchUnits.ONE_MI;
import static io.iommulab.loadtest.bench.BenchUnits.PAGE;
import static io.iommulab.loadtest.bench.BenchUnits.RID;
import static io.iommulab.loadtest.bench.BenchUnits.RW;
import static io.iommulab.loadtest.bench.BenchUnits.STEP_NS;
import static io.iommulab.loadtest.bench.BenchUnits.iovaOfPage;
import static io.iommulab.loadtest.bench.BenchUnits.ok;

import io.iommulab.config.IotlbSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.iommu.IommuUnit;
import io.iommulab.hardware.iommu.NestedDomain;
import io.iommulab.hardware.iommu.PagingDomain;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.pagetable.IoPageTable;
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
 * {@link IommuUnit#translate} through a {@link NestedDomain}: guest stage 1 (IOVA → GPA) over a
 * NEST_PARENT stage 2 (GPA → HPA), both 48-bit 4-level tables of 4 KiB pages, when the IOTLB
 * misses (a two-dimensional walk) and when it hits.
 *
 * <pre>
 *                       translate(rid, NO_PASID, iova, READ, now)
 *  +-------------+ ----------------------------------------------> +-----------------------------+
 *  |  benchmark  |                                                 | IommuUnit  VT-d, 48-bit     |
 *  |   thread    | <------------ Translation (hpa) --------------- |  PASID entry: PGTT=NESTED   |
 *  +-------------+                                                 |  IOTLB probe (nested DID)   |
 *        ^                                                         |   nestedHit:  HIT, done     |
 *        | iova = seq[i++ mod n]                                   |   nestedMiss: MISS (1 entry)|
 *  +-------------+                                                 |  stage 1: IOVA -> GPA       |
 *  | nestedHit:  |  64 hot pages, 64 x 8 IOTLB                     |   4 reads, 1 Mi pages       |
 *  | nestedMiss: |  1 Mi pages, SEQUENTIAL or RANDOM, 1 x 1 IOTLB   |  stage 2: GPA -> HPA        |
 *  +-------------+                                                 |   4 reads, 1 Mi pages       |
 *                                                                  |  IOTLB insert (combined)    |
 *                                                                  +-----------------------------+
 *
 *  Measured: one nested translate.  Modeled cost of a miss: s1*(s2+1)+s2 = 24 entry reads.
 *  The issue sets no nested target; expected: a hit as a paging hit (below 50 ns), a miss about
 *  one stage-1 plus one stage-2 walk, i.e. below 2 x 150 ns.
 * </pre>
 *
 * <p>The model does not perform the 20 stage-2 walks of the stage-1 table pages that the modeled
 * cost charges for (their GPAs are assumed mapped, see {@link NestedDomain}): the host work is one
 * stage-1 walk plus one stage-2 walk, so a miss should cost about two 1-D walks.
 *
 * <p>Noise: working sets beyond the 2 MiB L2 live in an L3 this VM shares with other tenants of
 * the host; single iterations then vary up to 2×, hence 10 measured iterations. Compare medians
 * of the iterations (JMH's JSON has them) as well as the mean.
 *
 * <p>Invalidates the number: a hit ratio other than 0 (miss) or below 99.9% (hit), checked after
 * each iteration; a last translation that is not a {@code NESTED_WALK} of 24 reads (miss) or an
 * {@code IOTLB} hit (checked); a non-advancing {@code now} (the walker would queue).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch"})
public class NestedTranslateBenchmark {

  /** A unit with a nested domain attached at {@link BenchUnits#RID} and its own IOVA sequence. */
  abstract static class Rig {
    IommuUnit unit;
    final Translation out = new Translation();
    final BenchUnits.IotlbWindow window = new BenchUnits.IotlbWindow();
    long[] iovas;
    int mask;
    int next;
    long now;

    /** Maps {@code pages} IOVA → GPA (stage 1) → HPA (stage 2) pages of 4 KiB, linearly. */
    void build(IotlbSettings iotlb, int pages) {
      unit = BenchUnits.vtdUnit(iotlb);
      PagingDomain parent = ok(unit.allocPagingDomain(true, false));
      NestedDomain nested = ok(unit.allocNestedDomain(parent));
      IoPageTable stage1 = nested.stage1();
      for (long p = 0; p < pages; p++) {
        long gpa = GPA_BASE + p * PAGE;
        ok(parent.map(gpa, gpa + (1L << 40), PAGE, RW));
        ok(stage1.map(iovaOfPage(p), gpa, PAGE, RW));
      }
      ok(unit.addDevice(RID, 0));
      ok(unit.attach(RID, FaultRecord.NO_PASID, nested));
    }

    void translateFirst() {
      unit.translate(RID, FaultRecord.NO_PASID, iovas[0], Access.READ, now += STEP_NS, out);
      BenchUnits.checkTranslation(
          out, Translation.Source.NESTED_WALK, CostModel.nestedWalkReads(4, 4), "first walk");
      long expected = iovas[0] - iovaOfPage(0) + GPA_BASE + (1L << 40);
      if (out.hpa != expected) {
        throw new IllegalStateException(
            "wrong hpa " + out + ", expected 0x" + Long.toHexString(expected));
      }
    }

    long translate() {
      unit.translate(
          RID, FaultRecord.NO_PASID, iovas[next++ & mask], Access.READ, now += STEP_NS, out);
      return out.hpa;
    }

    @Setup(Level.Iteration)
    public void beginIteration() {
      window.begin(unit.iotlb());
    }
  }

  /** 64 hot pages of 1024 mapped, the reference IOTLB geometry: every translate hits. */
  @State(Scope.Thread)
  public static class Warm extends Rig {
    @Setup(Level.Trial)
    public void setUp() {
      build(BenchUnits.DEFAULT_IOTLB, 1024);
      iovas = new long[64];
      for (int i = 0; i < iovas.length; i++) {
        iovas[i] = iovaOfPage(7L * i) + OFFSET;
      }
      mask = BenchUnits.maskOf(iovas);
      translateFirst();
      for (long iova : iovas) {
        unit.translate(RID, FaultRecord.NO_PASID, iova, Access.READ, now += STEP_NS, out);
      }
      unit.translate(RID, FaultRecord.NO_PASID, iovas[0], Access.READ, now += STEP_NS, out);
      BenchUnits.checkTranslation(out, Translation.Source.IOTLB, 0, "warm IOTLB");
    }

    @TearDown(Level.Iteration)
    public void endIteration() {
      window.end(unit.iotlb(), "nestedHit", 0.999, 1.0);
      BenchUnits.checkTranslation(out, Translation.Source.IOTLB, 0, "last translation");
    }
  }

  /** 1 Mi pages in both stages, a one-entry IOTLB: every translate walks both stages. */
  @State(Scope.Thread)
  public static class Cold extends Rig {
    @Param({"SEQUENTIAL", "RANDOM"})
    public AccessPattern pattern;

    @Setup(Level.Trial)
    public void setUp() {
      build(BenchUnits.ONE_ENTRY_IOTLB, ONE_MI);
      long[] pages = BenchUnits.pageOrder(ONE_MI, pattern);
      iovas = new long[ONE_MI];
      for (int i = 0; i < ONE_MI; i++) {
        iovas[i] = iovaOfPage(pages[i]) + OFFSET;
      }
      mask = BenchUnits.maskOf(iovas);
      translateFirst();
      // iovas[0] is cached now: start at 1 so that the first request misses too.
      next = 1;
    }

    @TearDown(Level.Iteration)
    public void endIteration() {
      window.end(unit.iotlb(), "nestedMiss " + pattern, 0.0, 0.0);
      BenchUnits.checkTranslation(
          out, Translation.Source.NESTED_WALK, CostModel.nestedWalkReads(4, 4), "last walk");
    }
  }

  @Benchmark
  public long nestedHit(Warm s) {
    return s.translate();
  }

  @Benchmark
  public long nestedMiss(Cold s) {
    return s.translate();
  }
}
