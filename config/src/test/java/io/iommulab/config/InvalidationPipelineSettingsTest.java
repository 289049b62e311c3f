package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import io.iommulab.config.InvalidationPipelineSettings.Mode;
import java.util.List;
import org.junit.jupiter.api.Test;

class InvalidationPipelineSettingsTest {

  @Test
  void theShippedDefaultsAreStrictWithLinuxsFlushQueueBounds() {
    InvalidationPipelineSettings d = InvalidationPipelineSettings.defaults();
    assertEquals(new InvalidationPipelineSettings(Mode.STRICT, 1024, 4096, 256, 256, 10_000_000, true), d);
    assertEquals(Mode.DEFERRED, InvalidationPipelineSettings.deferred().mode());
    assertEquals(d, InvalidationPipelineSettings.fromRoot(ConfigFactory.defaultReference()));
  }

  @Test
  void theStaleHitOracleIsOnByDefaultAndCanBeTurnedOff() {
    assertEquals(true, InvalidationPipelineSettings.defaults().staleHitChecks());
    InvalidationPipelineSettings off =
        InvalidationPipelineSettings.fromRoot(
            ConfigFactory.parseString("iommulab.pipeline.invalidation.stale-hit-checks = off")
                .withFallback(ConfigFactory.defaultReference()));
    assertEquals(InvalidationPipelineSettings.defaults().withStaleHitChecks(false), off);
  }

  @Test
  void theWholeBuildReadsTheModeOfTheRunAndReportsProblemsByPath() {
    assertEquals(InvalidationPipelineSettings.defaults(), IommulabSettings.defaults().invalidation());
    IommulabSettings deferred =
        IommulabSettings.fromConfig(
            ConfigFactory.parseString("iommulab.pipeline.invalidation.mode = deferred")
                .withFallback(ConfigFactory.defaultReference()));
    assertEquals(Mode.DEFERRED, deferred.invalidation().mode());
    assertEquals(deferred, IommulabSettings.defaults().withInvalidationMode(Mode.DEFERRED));
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                IommulabSettings.fromConfig(
                    ConfigFactory.parseString("iommulab.pipeline.invalidation.max-batch = 0")
                        .withFallback(ConfigFactory.defaultReference())));
    assertEquals(
        List.of("iommulab.pipeline.invalidation.max-batch = 0: must be from 1 to 1048576"),
        e.problems());
  }

  @Test
  void anOverrideInAFullConfigIsRead() {
    InvalidationPipelineSettings s =
        InvalidationPipelineSettings.fromRoot(
            ConfigFactory.parseString(
                    "iommulab.pipeline.invalidation { mode = deferred, flush-timeout = 2ms,"
                        + " flush-entries = 64 }")
                .withFallback(ConfigFactory.defaultReference()));
    assertEquals(new InvalidationPipelineSettings(Mode.DEFERRED, 1024, 4096, 256, 64, 2_000_000, true), s);
  }

  @Test
  void everyProblemIsNamedByItsFullPath() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                InvalidationPipelineSettings.fromConfig(
                    ConfigFactory.parseString(
                            "mode = lazy, ingress-capacity = 0, flush-timeout = 10,"
                                + " max-parked = -1, flush-entry = 3")
                        .withFallback(
                            ConfigFactory.defaultReference()
                                .getConfig(InvalidationPipelineSettings.PATH))));
    assertEquals(
        List.of(
            "iommulab.pipeline.invalidation.flush-entry = 3: unknown key (the invalidation pipeline"
                + " takes mode, ingress-capacity, max-parked, max-batch, flush-entries,"
                + " flush-timeout, stale-hit-checks)",
            "iommulab.pipeline.invalidation.mode = lazy: must be strict or deferred",
            "iommulab.pipeline.invalidation.ingress-capacity = 0: must be from 1 to 1048576",
            "iommulab.pipeline.invalidation.max-parked = -1: must be from 0 to 1048576",
            "iommulab.pipeline.invalidation.flush-timeout = 10: must be a duration with a unit (such"
                + " as 5ns, 2us, 1ms); a bare number would mean milliseconds"),
        e.problems());
  }

  @Test
  void aConfigWithoutTheSectionIsRefused() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () -> InvalidationPipelineSettings.fromRoot(ConfigFactory.empty()));
    assertEquals(1, e.problems().size());
  }

  @Test
  void theConstructorRefusesUnboundedOrEmptyQueues() {
    assertThrows(IllegalArgumentException.class,
        () -> new InvalidationPipelineSettings(Mode.STRICT, 0, 1, 1, 1, 1, true));
    assertThrows(IllegalArgumentException.class,
        () -> new InvalidationPipelineSettings(Mode.STRICT, 1, 1, 1 << 21, 1, 1, true));
    assertThrows(IllegalArgumentException.class,
        () -> new InvalidationPipelineSettings(Mode.DEFERRED, 1, 1, 1, 1, 0, true));
    assertThrows(IllegalArgumentException.class,
        () -> new InvalidationPipelineSettings(null, 1, 1, 1, 1, 1, true));
  }
}
