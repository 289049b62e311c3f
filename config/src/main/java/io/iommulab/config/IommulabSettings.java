package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.Optional;

/**
 * Everything under {@code iommulab}: the host topology, the cost model and the fault pipeline.
 *
 * <p>Other modules may add their own sections under {@code iommulab}; only {@code
 * iommulab.topology}, {@code iommulab.cost-model} and {@code iommulab.fault-pipeline} (optional:
 * its defaults when absent) are read (and checked for unknown keys) here.
 */
public record IommulabSettings(
    TopologySettings topology, CostModelSettings costModel, FaultPipelineSettings faultPipeline) {

  /** Topology and cost model; the fault pipeline takes its defaults. */
  public IommulabSettings(TopologySettings topology, CostModelSettings costModel) {
    this(topology, costModel, FaultPipelineSettings.defaults());
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
    r.problems().throwIfAny();
    return new IommulabSettings(
        topology.orElseThrow(), costModel.orElseThrow(), pipeline.orElseThrow());
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
