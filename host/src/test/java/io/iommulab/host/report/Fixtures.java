package io.iommulab.host.report;

import com.typesafe.config.ConfigFactory;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.config.scenario.ScenarioOverrides;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.host.scenario.IntervalMerger;
import io.iommulab.host.scenario.IntervalRecorder;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.OracleResult;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Measurements with known values, built by hand the way an engine's recorders would report them,
 * so statistics can be checked exactly.
 *
 * <p>The scenario is the test scenario {@code tiny} (tenants web and db, intervals of 250 ms). In
 * each of its 8 intervals tenant web records 100 maps whose modeled latencies are 1, 2, ..., 100
 * microseconds (so over the run: 800 samples, 8 of each value), 4000 DMA translations of which 40
 * faulted, and 2 map errors; tenant db records 50 maps of 10 us modeled latency.
 */
final class Fixtures {
  static final Instant STARTED = Instant.parse("2026-11-21T12:00:00Z");
  static final long INTERVAL = 250_000_000L;
  static final int INTERVALS = 8;

  private Fixtures() {}

  static ScenarioSettings tiny(Map<String, String> overrides) {
    return ScenarioSettings.fromConfig(
        "tiny",
        ScenarioOverrides.apply(ConfigFactory.parseResources("test-scenarios/tiny.conf"), overrides),
        ConfigFactory.load());
  }

  static ScenarioSettings tiny() {
    return tiny(Map.of());
  }

  /** {@code tiny} with two assertions the fixture satisfies (and, with {@code p99Bound}, breaks). */
  static ScenarioSettings withAssertions(String p99Bound) {
    return tiny(Map.of("assertions", "[ { metric = map.latency.modeled, stat = p99, lt = " + p99Bound + " },"
        + " { metric = dma.faults, stat = ratio, between = [0.005, 0.02] } ]"));
  }

  static List<IntervalSnapshot> snapshots() {
    List<IntervalSnapshot> out = new ArrayList<>();
    IntervalRecorder web = new IntervalRecorder("web");
    IntervalRecorder db = new IntervalRecorder("db");
    IntervalMerger merger = new IntervalMerger();
    for (int i = 0; i < INTERVALS; i++) {
      for (int us = 1; us <= 100; us++) {
        web.record("map.latency.modeled", us * 1000L);
        web.record("map.latency.wall", us * 10_000L);
      }
      web.count("map.count", 100);
      web.count("map.errors", 2);
      web.count("dma.count", 250);
      web.count("dma.translations", 4000);
      web.count("dma.faults", 40);
      db.count("map.count", 50);
      db.record("map.latency.modeled", 10_000L, 50);
      merger.add(web.drain());
      merger.add(db.drain());
      out.add(merger.close(i, i * INTERVAL, (i + 1) * INTERVAL));
    }
    return out;
  }

  static RunAggregator data(ScenarioSettings s) {
    RunAggregator data = new RunAggregator(s);
    snapshots().forEach(data::accept);
    return data;
  }

  /** Every oracle judged and passed. */
  static List<OracleResult> cleanOracles() {
    List<OracleResult> out = new ArrayList<>();
    for (Oracle o : Oracle.values()) {
      out.add(OracleResult.judged(o, 10, 0, List.of(), List.of()));
    }
    return out;
  }

  static RunReport report(ScenarioSettings s) {
    return RunReport.finished(data(s), "fixture", STARTED, true, 2_000_000_000L, cleanOracles(), null, List.of());
  }
}
