package io.iommulab.host.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.host.scenario.IntervalMerger;
import io.iommulab.host.scenario.IntervalRecorder;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RunAggregatorTest {

  @Test
  void aRunThatDroppedMoreThanOnePercentOfAnOperationsArrivalsIsToldItsLoadWasNotSustained() {
    RunAggregator data = new RunAggregator(Fixtures.tiny());
    IntervalRecorder web = new IntervalRecorder("web");
    web.count("map.count", 90);
    web.count("map.late", 45);
    web.count("map.dropped", 10);
    web.count("dma.count", 1000);
    web.count("dma.dropped", 10);
    IntervalMerger merger = new IntervalMerger();
    merger.add(web.drain());
    data.accept(merger.close(0, 0, 1_000_000_000L));

    List<String> notes = data.loadNotes();
    assertEquals(1, notes.size(), notes.toString());
    assertTrue(notes.get(0).startsWith("load: map: 10.0% of 100 arrivals dropped, 50.0% of the completed ones issued late"),
        notes.get(0));
  }

  @Test
  void aRunThatDroppedNothingHasNoLoadNote() {
    assertEquals(List.of(), Fixtures.data(Fixtures.tiny()).loadNotes());
  }

  @Test
  void countersAddUpOverIntervalsAndTenants() {
    RunAggregator data = Fixtures.data(Fixtures.tiny());
    assertEquals(800, data.stats("map.count", "web", 0).count());
    assertEquals(400, data.stats("map.count", "db", 0).count());
    assertEquals(1200, data.stats("map.count", RunAggregator.GLOBAL, 0).count());
  }

  @Test
  void aRateIsTheCountOverTheMeasuredSeconds() {
    RunAggregator data = Fixtures.data(Fixtures.tiny());
    assertEquals(2.0, data.seconds(0));
    assertEquals(600.0, data.stats("map.count", RunAggregator.GLOBAL, 0).rate());
  }

  @Test
  void aRatioIsTheCounterOverItsBase() {
    RunAggregator data = Fixtures.data(Fixtures.tiny());
    assertEquals(0.01, data.stats("dma.faults", "web", 0).ratio());
    assertEquals(16.0 / 1200, data.stats("map.errors", RunAggregator.GLOBAL, 0).ratio());
    assertNull(data.stats("unmap.errors", "db", 0).ratio(), "a base of 0 gives no ratio");
  }

  @Test
  void latencyPercentilesComeFromTheMergedHistograms() {
    RunAggregator data = Fixtures.data(Fixtures.tiny());
    MetricStats web = data.stats("map.latency.modeled", "web", 0);
    assertEquals(800, web.count());
    assertEquals(1000, web.min());
    assertEquals(100_000, web.max(), 100);
    assertEquals(50_500, web.mean(), 50);
    // HdrHistogram with 3 significant digits: the value at a percentile is exact to 0.1%.
    assertEquals(50_000, web.percentiles().get("p50"), 50);
    assertEquals(75_000, web.percentiles().get("p75"), 75);
    assertEquals(95_000, web.percentiles().get("p95"), 95);
    assertEquals(99_000, web.percentiles().get("p99"), 99);
    assertEquals(100_000, web.percentiles().get("p99.9"), 100);
    assertEquals(List.of("p50", "p75", "p95", "p99", "p99.9"), List.copyOf(web.percentiles().keySet()));
  }

  @Test
  void globalLatenciesMergeEveryTenant() {
    RunAggregator data = Fixtures.data(Fixtures.tiny());
    MetricStats all = data.stats("map.latency.modeled", RunAggregator.GLOBAL, 0);
    assertEquals(1200, all.count());
    // 400 db samples at 10 us sit below the web median: the global median moves down.
    assertTrue(all.percentiles().get("p50") < 40_000, all.toString());
  }

  @Test
  void aPercentileAnAssertionNamesIsReportedToo() {
    RunAggregator data =
        Fixtures.data(Fixtures.tiny(Map.of("assertions[0].stat", "p99.99")));
    assertTrue(data.stats("map.latency.modeled", "web", 0).percentiles().containsKey("p99.99"));
  }

  @Test
  void aWindowCountsOnlyTheIntervalsStartingAtOrAfterIt() {
    RunAggregator data = Fixtures.data(Fixtures.tiny(Map.of("assertions[0].after", "1s")));
    assertEquals(1.0, data.seconds(1_000_000_000L));
    assertEquals(400, data.stats("map.count", "web", 1_000_000_000L).count());
    assertEquals(800, data.stats("map.count", "web", 0).count());
  }

  @Test
  void theTimeSeriesHasOneRowPerIntervalWithEachOperation() {
    RunAggregator data = Fixtures.data(Fixtures.tiny());
    assertEquals(8, data.rows().size());
    IntervalRow row = data.rows().get(3);
    assertEquals(0.75, row.startSeconds());
    assertEquals(1.0, row.endSeconds());
    assertEquals(150, row.operations().get("map").count());
    assertEquals(600.0, row.operations().get("map").rate());
    assertEquals(2, row.operations().get("map").errors());
    assertNull(row.operations().get("unmap").p99Modeled(), "no unmap samples in the fixture");
  }

  @Test
  void aGapInTheIntervalsIsNoted() {
    RunAggregator data = new RunAggregator(Fixtures.tiny());
    data.accept(Fixtures.snapshots().get(0));
    data.accept(Fixtures.snapshots().get(2));
    assertEquals(List.of("interval 2 arrived where 1 was expected"), data.notes());
  }
}
