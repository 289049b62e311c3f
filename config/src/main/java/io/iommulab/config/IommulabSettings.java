package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.Optional;

/**
 * Everything under {@code iommulab}: the host topology, the cost model, the fault pipeline and the
 * units' invalidation stream.
 *
 * <p>Other modules may add their own sections under {@code iommulab}; only {@code
 * iommulab.topology}, {@code iommulab.cost-model}, {@code iommulab.fault-pipeline} and {@code
 * iommulab.pipeline.invalidation} (both optional: their defaults when absent) are read (and
 * checked for unknown keys) here. The invalidation mode ({@code
 * iommulab.pipeline.invalidation.mode}, strict or deferred) is per run: a scenario sets it in the
 * config the host starts with.
 */
public record IommulabSettings(
    TopologySettings topology,
    CostModelSettings costModel,
    FaultPipelineSettings faultPipeline,
    InvalidationPipelineSettings invalidation) {

  public IommulabSettings {
    java.util.Objects.requireNonNull(faultPipeline, "faultPipeline");
    java.util.Objects.requireNonNull(invalidation, "invalidation");
  }

  /** The same settings with the units' invalidation stream in {@code mode}. */
  public IommulabSettings withInvalidationMode(InvalidationPipelineSettings.Mode mode) {
    return new IommulabSettings(topology, costModel, faultPipeline, invalidation.withMode(mode));
  }

  /**
   * Builds the settings from a full config: the result of {@code ConfigFactory.load()}, or a
   * parsed file with {@code ConfigFactory.defaultReference()} as fallback. An unresolved config is
   * resolved first.
   *
   * @throws SettingsException listing every problem in the topology and the cost model, each with
   *     its full key path (such as {@code iommulab.topology.units[2].max-windows = 300: must be a
   *     power of two from 1 to 256})
   */
  public static IommulabSettings fromConfig(Config root) {
    Config resolved;
    try {
      resolved = root.resolve();
    } catch (ConfigException e) {
      throw new SettingsException(List.of(e.getMessage()));
    }
    ConfigReader r = ConfigReader.of(resolved, "");
    Optional<ConfigReader> section =
        r.requireObject("iommulab", "the iommulab section; is reference.conf on the classpath?");
    Optional<TopologySettings> topology =
        section
            .flatMap(s -> s.requireObject("topology", "an object"))
            .flatMap(TopologyBuilder::read);
    Optional<CostModelSettings> costModel =
        section
            .flatMap(s -> s.requireObject("cost-model", "an object"))
            .flatMap(CostModelSettings::read);
    Optional<ConfigReader> pipelineSection = section.flatMap(s -> s.getObject("fault-pipeline"));
    Optional<FaultPipelineSettings> pipeline =
        pipelineSection.isPresent()
            ? pipelineSection.flatMap(FaultPipelineSettings::read)
            : Optional.of(FaultPipelineSettings.defaults());
    Optional<ConfigReader> invalidationSection =
        section.flatMap(s -> s.getObject("pipeline")).flatMap(s -> s.getObject("invalidation"));
    Optional<InvalidationPipelineSettings> invalidation =
        invalidationSection.isPresent()
            ? invalidationSection.flatMap(InvalidationPipelineSettings::read)
            : Optional.of(InvalidationPipelineSettings.defaults());
    r.problems().throwIfAny();
    return new IommulabSettings(
        topology.orElseThrow(), costModel.orElseThrow(), pipeline.orElseThrow(),
        invalidation.orElseThrow());
  }

  /** {@link #fromConfig} of {@code ConfigFactory.load()}: application.conf over reference.conf. */
  public static IommulabSettings load() {
    return fromConfig(ConfigFactory.load());
  }

  /** The settings of the shipped {@code reference.conf} alone: the default topology. */
  public static IommulabSettings defaults() {
    return fromConfig(ConfigFactory.defaultReference());
  }
}
