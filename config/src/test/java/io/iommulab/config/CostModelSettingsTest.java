package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

class CostModelSettingsTest {

  @Test
  void theSectionBuilderNamesProblemsByTheirFullPath() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                CostModelSettings.fromConfig(
                    ConfigFactory.parseString("sync = -1ns, atc-hit = 3")
                        .withFallback(ConfigFactory.defaultReference().getConfig(CostModelSettings.PATH))));
    assertEquals(
        List.of(
            "iommulab.cost-model.atc-hit = 3: must be a duration with a unit (such as 5ns, 2us, 1ms);"
                + " a bare number would mean milliseconds",
            "iommulab.cost-model.sync = -1ns: must not be negative"),
        e.problems());
  }

  @Test
  void anEmptySectionReportsEveryCostAsMissing() {
    SettingsException e =
        assertThrows(
            SettingsException.class, () -> CostModelSettings.fromConfig(ConfigFactory.empty()));
    assertEquals(11, e.problems().size());
    assertEquals(
        "iommulab.cost-model.iotlb-hit: missing (required, a duration with a unit (such as 5ns, 2us,"
            + " 1ms))",
        e.problems().get(0));
  }

  @Test
  void eachCostLandsInItsOwnField() {
    CostModelSettings c =
        CostModelSettings.fromConfig(
            ConfigFactory.parseString(
                "iotlb-hit = 1ns, walk-level = 2ns, atc-hit = 3ns, ats-translation = 4ns,"
                    + " invalidation-descriptor = 5ns, sync = 6ns, atc-invalidation-round-trip = 7ns,"
                    + " page-request = 8ns, fault-report = 9ns, pte-write = 10ns, pamu-lookup = 11ns"));
    assertEquals(new CostModelSettings(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), c);
  }

  @Test
  void theConstructorRefusesANegativeCost() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new CostModelSettings(5, 25, 3, 400, 20, -1, 1_000, 2_000, 300, 10, 8));
  }

  @Test
  void theTopologySectionBuilderMatchesTheFullBuilder() {
    assertEquals(
        IommulabSettings.defaults().topology(),
        TopologySettings.fromConfig(ConfigFactory.defaultReference().getConfig(TopologySettings.PATH)));
  }
}
