package io.iommulab.config.scenario;

import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import io.iommulab.config.SettingsException;
import java.util.List;
import java.util.Map;

/** Builds scenarios from HOCON snippets over the shipped reference.conf, as the runner does. */
final class Scenarios {
  private Scenarios() {}

  /** A small valid scenario: two tenants on the default topology, a map and DMA mix. */
  static final String VALID =
      """
      scenario {
        description = "two tenants on the default host"
        duration = 10s
        seed = 42
        tenants = [
          { name = web, vms = 2, memory = 256MiB, devices = [ { unit = smmu0 } ]
            workload { map { rate = 100, sizes = [4K, 64K] }, dma { rate = 1000 } } }
          { name = db, vms = 1, memory = 512MiB, devices = [ { names = [nvme0] } ]
            workload { map { rate = 10 } } }
        ]
        assertions = [
          { metric = map.latency.modeled, stat = p99, lt = 20us }
          { metric = dma.translations, stat = rate, gt = 100000, tenant = web }
          { metric = violations.isolation, stat = count, eq = 0 }
        ]
      }
      """;

  static ScenarioSettings load(String hocon) {
    return ScenarioSettings.fromConfig("test", ConfigFactory.parseString(hocon), ConfigFactory.defaultReference());
  }

  /** {@link #VALID} with {@code extra} HOCON appended (later keys win, objects merge). */
  static ScenarioSettings valid(String extra) {
    return load(VALID + "\n" + extra);
  }

  static List<String> problems(String hocon) {
    return assertThrows(SettingsException.class, () -> load(hocon)).problems();
  }

  /** Problems of {@link #VALID} with {@code extra} appended. */
  static List<String> problemsOf(String extra) {
    return problems(VALID + "\n" + extra);
  }

  static ScenarioSettings withOverrides(String hocon, Map<String, String> overrides) {
    return ScenarioSettings.fromConfig(
        "test",
        ScenarioOverrides.apply(ConfigFactory.parseString(hocon), overrides),
        ConfigFactory.defaultReference());
  }
}
