package io.iommulab.config.scenario;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigRenderOptions;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.IommulabSettings;
import io.iommulab.config.ScenarioBuilder;
import io.iommulab.config.UapiSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * A validated scenario: a host (the default topology or overrides of {@code iommulab.topology},
 * {@code iommulab.uapi}, {@code iommulab.cost-model} and {@code iommulab.pipeline}), tenants of VMs with their devices and
 * workloads, a duration, a seed, the invalidation mode and assertions. Read from a HOCON file
 * whose root is {@code scenario { ... }}; every key a file omits comes from {@code
 * iommulab.scenario-defaults} (documented key by key in the config module's reference.conf).
 *
 * <p>{@link #fromConfig} checks every rule and reports every problem at once, each with its full
 * key path, value and rule ({@code scenario.tenants[1].vms = 0: must be from 1 to 100000}), and
 * assigns devices to VMs (deterministically, in topology order, whole IOMMU groups), so a
 * scenario that validates can be started.
 *
 * @param name the scenario's name: the bundled name, or the file name without {@code .conf}
 * @param description one line saying what the scenario studies
 * @param duration how long the workload runs
 * @param interval length of one interval of the time series (and of the progress bar's steps)
 * @param reportEvery how often a run rewrites its summary and HTML report while it runs (soak
 *     runs); zero: only at the end
 * @param seed the run's seed: every actor's and the workload's randomness derive from it
 * @param invalidation strict or deferred unmaps: sets {@code iommulab.host.strict-unmap} (what the
 *     stale-translation oracle judges) and the units' {@code iommulab.pipeline.invalidation.mode}
 * @param iommulab the host's topology and cost model after the scenario's overrides
 * @param uapi the uAPI limits after the scenario's overrides
 * @param pipeline the units' invalidation stream after the scenario's {@code pipeline} overrides,
 *     in the scenario's invalidation mode
 * @param tenants the tenants, VM ids running on from 1 across them
 * @param assertions the assertions, in file order
 * @param resolved the resolved configuration: {@code scenario} (after command-line overrides,
 *     every default filled in) and {@code iommulab} (topology, uapi, cost model and host settings
 *     the host runs with). Rendered into every result file.
 */
public record ScenarioSettings(
    String name,
    String description,
    Duration duration,
    Duration interval,
    Duration reportEvery,
    long seed,
    InvalidationMode invalidation,
    IommulabSettings iommulab,
    UapiSettings uapi,
    InvalidationPipelineSettings pipeline,
    List<TenantSettings> tenants,
    List<AssertionSettings> assertions,
    Config resolved) {

  /** The root key of a scenario file. */
  public static final String PATH = "scenario";

  /** Where the defaults of omitted scenario keys live in a full config (reference.conf). */
  public static final String DEFAULTS_PATH = "iommulab.scenario-defaults";

  public ScenarioSettings {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(description, "description");
    Objects.requireNonNull(invalidation, "invalidation");
    Objects.requireNonNull(iommulab, "iommulab");
    Objects.requireNonNull(uapi, "uapi");
    Objects.requireNonNull(pipeline, "pipeline");
    Objects.requireNonNull(resolved, "resolved");
    tenants = List.copyOf(tenants);
    assertions = List.copyOf(assertions);
    if (duration.isNegative() || duration.isZero() || interval.isNegative() || interval.isZero()) {
      throw new IllegalArgumentException("duration and interval must be positive");
    }
    if (tenants.isEmpty()) {
      throw new IllegalArgumentException("a scenario needs at least one tenant");
    }
  }

  /**
   * Reads and checks the scenario {@code file} (its root holds {@code scenario}), with the
   * defaults, topology, uAPI and cost model of {@code base} (normally {@code ConfigFactory.load()}:
   * application.conf over the reference.conf files).
   *
   * @param name the scenario's name (results are named after it)
   * @throws io.iommulab.config.SettingsException listing every problem, each with its full key path
   */
  public static ScenarioSettings fromConfig(String name, Config file, Config base) {
    return ScenarioBuilder.build(name, file, base);
  }

  /** {@link #fromConfig(String, Config, Config)} over {@code ConfigFactory.load()}. */
  public static ScenarioSettings fromConfig(String name, Config file) {
    return fromConfig(name, file, ConfigFactory.load());
  }

  /** Every operation some tenant performs. */
  public Set<Operation> operations() {
    Set<Operation> ops = EnumSet.noneOf(Operation.class);
    for (TenantSettings t : tenants) {
      ops.addAll(t.workload().operations());
    }
    return ops;
  }

  public Optional<TenantSettings> tenant(String tenantName) {
    return tenants.stream().filter(t -> t.name().equals(tenantName)).findFirst();
  }

  public List<String> tenantNames() {
    return tenants.stream().map(TenantSettings::name).toList();
  }

  /** VMs of every tenant. */
  public int vmCount() {
    int n = 0;
    for (TenantSettings t : tenants) {
      n += t.vms();
    }
    return n;
  }

  /** Every assertion's concrete checks, in assertion order. */
  public List<AssertionSettings.Check> checks() {
    List<AssertionSettings.Check> checks = new ArrayList<>();
    for (AssertionSettings a : assertions) {
      checks.addAll(
          a.expand(tenantNames(), t -> tenant(t).map(x -> x.workload().operations()).orElse(Set.of())));
    }
    return checks;
  }

  /** The {@code iommulab} section the host runs with: topology, uapi, cost model, host. */
  public Config iommulabConfig() {
    return resolved.getConfig("iommulab");
  }

  /**
   * {@link #iommulabConfig()} as the overrides map {@code Host.start(name, overrides, ...)} takes:
   * the host is then built from exactly the resolved configuration.
   */
  public Map<String, Object> hostOverrides() {
    return Map.of("iommulab", resolved.getObject("iommulab").unwrapped());
  }

  /** The resolved configuration as JSON (results embed it) or, with {@code json} false, HOCON. */
  public String renderResolved(boolean json) {
    ConfigRenderOptions options =
        json
            ? ConfigRenderOptions.concise().setJson(true)
            : ConfigRenderOptions.defaults().setOriginComments(false).setComments(false).setJson(false);
    return resolved.root().render(options);
  }
}
