package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class FaultPipelineSettingsTest {

  @Test
  void theShippedDefaultsAreTheOnesDocumented() {
    FaultPipelineSettings s = FaultPipelineSettings.defaults();
    assertEquals(
        new FaultPipelineSettings(1024, 2048, 256, 16, Duration.ofSeconds(5), 16), s);
    assertEquals(s, IommulabSettings.defaults().faultPipeline());
  }

  @Test
  void everyProblemIsReportedWithItsFullPath() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                FaultPipelineSettings.fromConfig(
                    ConfigFactory.parseString(
                            "fault-ingress-capacity = 0, batch-size = 70000, ack-timeout = 1ns,"
                                + " depth = 3")
                        .withFallback(
                            ConfigFactory.defaultReference()
                                .getConfig(FaultPipelineSettings.PATH))));
    assertEquals(
        List.of(
            "iommulab.fault-pipeline.depth = 3: unknown key (the fault pipeline takes"
                + " fault-ingress-capacity, page-request-ingress-capacity, batch-size,"
                + " parallelism, ack-timeout, tenant-classes)",
            "iommulab.fault-pipeline.fault-ingress-capacity = 0: must be from 1 to 1048576",
            "iommulab.fault-pipeline.batch-size = 70000: must be from 1 to 65536",
            "iommulab.fault-pipeline.ack-timeout = 1ns: must be from 1000000 to 600000000000"),
        e.problems());
  }

  @Test
  void aProblemInTheSectionIsReportedByTheWholeBuild() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                IommulabSettings.fromConfig(
                    ConfigFactory.parseString("iommulab.fault-pipeline.parallelism = 0")
                        .withFallback(ConfigFactory.defaultReference())));
    assertEquals(
        List.of("iommulab.fault-pipeline.parallelism = 0: must be from 1 to 1024"),
        e.problems());
  }

  @Test
  void tenantTagsAreBoundedClassesOfTheVmId() {
    FaultPipelineSettings s = FaultPipelineSettings.defaults();
    assertEquals("tenant-3", s.tenantOf(19));
    assertEquals("tenant-3", s.tenantOf(3));
    assertEquals(
        "vm-19",
        new FaultPipelineSettings(1, 1, 1, 1, Duration.ofSeconds(1), 0).tenantOf(19));
  }
}
