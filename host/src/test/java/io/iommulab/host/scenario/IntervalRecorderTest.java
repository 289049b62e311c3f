package io.iommulab.host.scenario;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.dataformat.cbor.databind.CBORMapper;
import io.iommulab.config.scenario.Oracle;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;
import org.junit.jupiter.api.Test;

/** The recorder an actor owns, the collector's merger, and the messages between them. */
class IntervalRecorderTest {

  @Test
  void aDrainIsAnImmutableSampleAndResetsTheRecorder() {
    IntervalRecorder r = new IntervalRecorder("web");
    r.count("map.count", 3);
    r.record("map.latency.modeled", 1_000);
    r.record("map.latency.modeled", 3_000, 2);
    TenantSample s = r.drain();
    assertEquals("web", s.tenant());
    assertEquals(3, s.counter("map.count"));
    Histogram h = s.latencies().get("map.latency.modeled").decode();
    assertEquals(3, h.getTotalCount());
    assertEquals(1_000, h.getMinValue());
    assertTrue(r.isEmpty());
    TenantSample empty = r.drain();
    assertEquals(Map.of(), empty.counters());
    assertEquals(Map.of(), empty.latencies());
  }

  @Test
  void aMetricOutsideTheCatalogueIsABugOfTheEngine() {
    IntervalRecorder r = new IntervalRecorder("web");
    assertEquals("map.latencyy is not a latency of the metric catalogue",
        assertThrows(IllegalArgumentException.class, () -> r.record("map.latencyy", 1)).getMessage());
    assertEquals("map.latency.modeled is not a counter of the metric catalogue",
        assertThrows(IllegalArgumentException.class, () -> r.count("map.latency.modeled", 1)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> r.count("map.count", -1));
  }

  @Test
  void theMergerAddsTheSamplesOfEveryRecorderOfATenant() {
    IntervalRecorder a = new IntervalRecorder("web");
    IntervalRecorder b = new IntervalRecorder("web");
    IntervalRecorder c = new IntervalRecorder("db");
    a.count("dma.count", 2);
    a.record("dma.latency.modeled", 100);
    b.count("dma.count", 5);
    b.record("dma.latency.modeled", 900);
    c.count(Oracle.ISOLATION.metric(), 1);
    IntervalMerger m = new IntervalMerger();
    m.add(a.drain());
    m.add(b.drain());
    m.add(c.drain());
    IntervalSnapshot s = m.close(0, 0, 1_000_000_000L);
    assertEquals(2, s.tenants().size());
    TenantSample web = s.tenants().get(0);
    assertEquals(7, web.counter("dma.count"));
    Histogram h = web.latencies().get("dma.latency.modeled").decode();
    assertEquals(2, h.getTotalCount());
    assertEquals(900, h.getMaxValue(), 1);
    assertEquals(1, s.total("violations.isolation"));
    assertEquals(List.of(), m.close(1, 1_000_000_000L, 2_000_000_000L).tenants(), "the next interval starts empty");
  }

  @Test
  void anIntervalMustEndAfterItStarts() {
    assertThrows(IllegalArgumentException.class, () -> new IntervalSnapshot(0, 5, 5, List.of()));
  }

  @Test
  void samplesAndViolationsTravelAsCbor() throws Exception {
    IntervalRecorder r = new IntervalRecorder("web");
    r.count("map.count", 3);
    r.record("map.latency.wall", 12_345);
    IntervalSnapshot s = new IntervalSnapshot(4, 10, 20, List.of(r.drain()));
    CBORMapper cbor = new CBORMapper();
    assertEquals(s, cbor.readValue(cbor.writeValueAsBytes(s), IntervalSnapshot.class));
    Violation v = new Violation("isolation", 1, "web", 3, 99, "what", List.of(new TraceEvent(1, 2, "step")));
    assertEquals(v, cbor.readValue(cbor.writeValueAsBytes(v), Violation.class));
    OracleResult o = OracleResult.judged(Oracle.ISOLATION, 10, 1, List.of(v), List.of("note"));
    assertEquals(o, cbor.readValue(cbor.writeValueAsBytes(o), OracleResult.class));
  }

  @Test
  void verdictsOfOneOracleAdd() {
    OracleResult a = OracleResult.judged(Oracle.FD_CLOSE, 10, 1, List.of(), List.of("a"));
    OracleResult b = OracleResult.judged(Oracle.FD_CLOSE, 5, 2, List.of(), List.of("b"));
    OracleResult sum = a.plus(b);
    assertEquals(15, sum.checks());
    assertEquals(3, sum.violations());
    assertEquals(List.of("a", "b"), sum.notes());
    assertEquals(a, a.plus(OracleResult.notJudged(Oracle.FD_CLOSE, "x")));
  }
}
