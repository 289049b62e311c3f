package io.iommulab.host.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.OracleResult;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Each statistic and each comparison against the fixture's known values: tenant web maps with
 * modeled latencies of 1 to 100 us (8 of each), 800 maps in 2 s (400/s), 32000 DMA translations
 * of which 320 faulted (ratio 0.01); tenant db 400 maps of 10 us.
 */
class AssertionEvaluatorTest {

  private static List<AssertionResult> judge(String assertions, List<OracleResult> oracles) {
    ScenarioSettings s = Fixtures.tiny(Map.of("assertions", "[ " + assertions + " ]"));
    Map<String, OracleResult> byName = new LinkedHashMap<>();
    for (OracleResult o : oracles) {
      byName.put(o.oracle(), o);
    }
    return AssertionEvaluator.evaluate(Fixtures.data(s), byName);
  }

  private static AssertionResult one(String assertion) {
    List<AssertionResult> r = judge(assertion, Fixtures.cleanOracles());
    assertEquals(1, r.size(), r.toString());
    return r.get(0);
  }

  @Test
  void aPercentileBelowItsBoundPasses() {
    AssertionResult r = one("{ metric = map.latency.modeled, stat = p50, lt = 60us, tenant = web }");
    assertTrue(r.passed(), r.message());
    assertEquals(50_000, r.observed(), 50);
    assertEquals("map.latency.modeled p50 < 60us [tenant web]", r.check());
    assertTrue(r.message().startsWith("observed 50."), r.message());
  }

  @Test
  void aPercentileAboveItsBoundFailsWithTheObservedValue() {
    AssertionResult r = one("{ metric = map.latency.modeled, stat = p99, lt = 90us, tenant = web }");
    assertFalse(r.passed());
    assertEquals(99_000, r.observed(), 99);
    assertTrue(r.message().matches("observed 99(\\.\\d+)?us, expected p99 < 90us"), r.message());
  }

  @Test
  void anyPercentileMayBeAsked() {
    assertTrue(one("{ metric = map.latency.modeled, stat = p99.9, lte = 101us, tenant = web }").passed());
    AssertionResult r = one("{ metric = map.latency.modeled, stat = p12.5, between = [12us, 14us], tenant = web }");
    assertTrue(r.passed(), r.message());
  }

  @Test
  void minMaxAndMeanAreOfTheSamples() {
    assertTrue(one("{ metric = map.latency.modeled, stat = min, gte = 1us, tenant = web }").passed());
    assertFalse(one("{ metric = map.latency.modeled, stat = min, gt = 1us, tenant = web }").passed());
    AssertionResult max = one("{ metric = map.latency.modeled, stat = max, lt = 100us, tenant = web }");
    assertFalse(max.passed(), max.message());
    assertEquals(100_000, max.observed(), 100);
    AssertionResult mean = one("{ metric = map.latency.modeled, stat = mean, between = [50us, 51us], tenant = web }");
    assertTrue(mean.passed(), mean.message());
  }

  @Test
  void countEqualsExactly() {
    assertTrue(one("{ metric = map.count, stat = count, eq = 800, tenant = web }").passed());
    AssertionResult r = one("{ metric = map.count, stat = count, eq = 801, tenant = web }");
    assertFalse(r.passed());
    assertEquals("observed 800, expected count = 801", r.message());
  }

  @Test
  void ltAndGtAreStrictLteAndGteInclusive() {
    assertTrue(one("{ metric = map.count, stat = rate, gte = 400, tenant = web }").passed());
    assertFalse(one("{ metric = map.count, stat = rate, gt = 400, tenant = web }").passed());
    assertTrue(one("{ metric = map.count, stat = rate, lte = 400, tenant = web }").passed());
    assertFalse(one("{ metric = map.count, stat = rate, lt = 400, tenant = web }").passed());
    assertTrue(one("{ metric = map.count, stat = rate, gt = 399, tenant = web }").passed());
  }

  @Test
  void aRatioIsJudgedAgainstBothInclusiveBoundsOfBetween() {
    AssertionResult r = one("{ metric = dma.faults, stat = ratio, between = [0.01, 0.01], tenant = web }");
    assertTrue(r.passed(), r.message());
    assertEquals(0.01, r.observed());
    assertEquals(List.of(0.01, 0.01), r.expected());
    assertFalse(one("{ metric = dma.faults, stat = ratio, lt = 0.005 }").passed());
  }

  @Test
  void aLatencyWithoutSamplesFailsWithNoData() {
    AssertionResult r = one("{ metric = unmap.latency.modeled, stat = p99, lt = 1ms }");
    assertFalse(r.passed());
    assertNull(r.observed());
    assertEquals("no data", r.observedText());
    assertEquals("no data: no samples of unmap.latency.modeled in scope global, expected p99 < 1ms", r.message());
  }

  @Test
  void afterJudgesOnlyTheLaterIntervals() {
    assertTrue(one("{ metric = map.count, stat = count, eq = 400, tenant = web, after = 1s }").passed());
    assertTrue(one("{ metric = map.count, stat = rate, eq = 400, tenant = web, after = 1s }").passed());
  }

  @Test
  void eachTenantIsJudgedOnItsOwn() {
    List<AssertionResult> r = judge("{ metric = map.count, stat = count, gt = 500, tenant = \"*\" }", Fixtures.cleanOracles());
    assertEquals(2, r.size());
    assertEquals("tenant web", r.get(0).scope());
    assertTrue(r.get(0).passed());
    assertEquals("tenant db", r.get(1).scope());
    assertFalse(r.get(1).passed());
  }

  @Test
  void theGlobalViolationCountIsTheOraclesFinalVerdict() {
    List<OracleResult> oracles = new java.util.ArrayList<>(Fixtures.cleanOracles());
    oracles.set(0, OracleResult.judged(Oracle.ISOLATION, 100, 2, List.of(), List.of("found at shutdown")));
    List<AssertionResult> r = judge("{ metric = violations.isolation, stat = count, eq = 0 }", oracles);
    assertFalse(r.get(0).passed());
    assertEquals(2.0, r.get(0).observed());
    assertEquals("observed 2, expected count = 0", r.get(0).message());
  }
}
