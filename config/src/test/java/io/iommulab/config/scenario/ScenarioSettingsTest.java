package io.iommulab.config.scenario;

import static io.iommulab.config.scenario.Scenarios.load;
import static io.iommulab.config.scenario.Scenarios.valid;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.IommulabSettings;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** What a valid scenario becomes: defaults, device assignment, the resolved configuration. */
class ScenarioSettingsTest {

  @Test
  void aValidScenarioKeepsWhatItSaysAndTakesEveryOmittedKeyFromTheDefaults() {
    ScenarioSettings s = load(Scenarios.VALID);
    assertEquals("test", s.name());
    assertEquals("two tenants on the default host", s.description());
    assertEquals(Duration.ofSeconds(10), s.duration());
    assertEquals(Duration.ofSeconds(1), s.interval());
    assertEquals(Duration.ZERO, s.reportEvery());
    assertEquals(42, s.seed());
    assertEquals(InvalidationMode.STRICT, s.invalidation());
    TenantSettings web = s.tenant("web").orElseThrow();
    assertEquals(2, web.vms());
    assertEquals(256L << 20, web.memoryBytes());
    assertEquals(2L << 20, web.backingBytes());
    assertEquals(DomainLayout.PER_VM_IOAS, web.domains());
    assertEquals(100, web.workload().map().rate());
    assertEquals(List.of(4096L, 65536L), web.workload().map().sizes());
    assertEquals(Duration.ofMillis(10), web.workload().map().hold());
    assertEquals(16, web.workload().dma().burst());
    assertEquals(0.5, web.workload().dma().read());
    assertEquals(0, web.workload().pageRequests().rate());
  }

  @Test
  void vmIdsRunOnAcrossTenantsFromOne() {
    ScenarioSettings s = load(Scenarios.VALID);
    assertEquals(1, s.tenants().get(0).firstVmId());
    assertEquals(3, s.tenants().get(1).firstVmId());
    assertEquals(3, s.vmCount());
  }

  @Test
  void devicesAreHandedOutInTopologyOrderEachToOneVm() {
    ScenarioSettings s = load(Scenarios.VALID);
    assertEquals(List.of(List.of("nic2"), List.of("accel0")), s.tenant("web").orElseThrow().vmDevices());
    assertEquals(List.of(List.of("nvme0")), s.tenant("db").orElseThrow().vmDevices());
  }

  @Test
  void aDeviceGroupGoesWholeToOneVm() {
    ScenarioSettings s =
        valid("scenario.tenants = [ { name = gpu, devices = [ { names = [gpu0, gpu0-audio], per-vm = 2 } ], workload {} } ]"
            + "\nscenario.assertions = []");
    assertEquals(List.of(List.of("gpu0", "gpu0-audio")), s.tenants().get(0).vmDevices());
  }

  @Test
  void slotsOfOneTenantEachGiveEveryVmTheirShare() {
    ScenarioSettings s =
        load(
            """
            scenario {
              description = pools
              topology.device-pools = [
                { name-prefix = fast, count = 4, unit = vtd0, first-rid = "10:00.0", first-group = 100 }
                { name-prefix = slow, count = 4, unit = vtd1, first-rid = "20:00.0", first-group = 200, no-snoop = on }
              ]
              tenants = [ { name = t, vms = 3, memory = 64MiB,
                devices = [ { pool = fast }, { pool = slow } ], workload {} } ]
            }
            """);
    assertEquals(
        List.of(List.of("fast-0", "slow-0"), List.of("fast-1", "slow-1"), List.of("fast-2", "slow-2")),
        s.tenants().get(0).vmDevices());
  }

  @Test
  void pamuWindowsApplyToDevicesBehindAPamu() {
    ScenarioSettings s =
        valid("scenario.tenants = [ { name = p, pamu-windows = 16, devices = [ { unit = pamu0 } ], workload {} } ]"
            + "\nscenario.assertions = []");
    assertEquals(16, s.tenants().get(0).pamuWindows());
    assertEquals(1, load(Scenarios.VALID).tenants().get(0).pamuWindows());
  }

  @Test
  void ratesAcceptPerSecondPerMinuteAndPerHour() {
    ScenarioSettings s =
        valid("scenario.tenants = [ { name = a, devices = [ { unit = vtd0 } ],"
            + " workload { map { rate = 30/min }, dma { rate = \"2/h\" }, wbinvd { rate = 10/s } } } ]"
            + "\nscenario.assertions = []");
    WorkloadSettings w = s.tenants().get(0).workload();
    assertEquals(0.5, w.map().rate(), 1e-12);
    assertEquals(2.0 / 3600, w.dma().rate(), 1e-12);
    assertEquals(10, w.wbinvd().rate());
  }

  @Test
  void theOperationsOfAWorkloadAreThoseWithARate() {
    ScenarioSettings s = load(Scenarios.VALID);
    assertEquals(Set.of(Operation.ATTACH, Operation.MAP, Operation.UNMAP, Operation.DMA), s.operations());
    assertEquals(
        Set.of(Operation.ATTACH, Operation.MAP, Operation.UNMAP),
        s.tenant("db").orElseThrow().workload().operations());
  }

  @Test
  void theResolvedConfigurationHasTheScenarioWithDefaultsAndTheHostItRunsOn() {
    ScenarioSettings s = load(Scenarios.VALID);
    Config r = s.resolved();
    assertEquals("10s", r.getString("scenario.duration"));
    assertEquals("1s", r.getString("scenario.interval"));
    assertEquals("2M", r.getConfigList("scenario.tenants").get(0).getString("backing"));
    assertEquals(42, r.getLong("iommulab.host.seed"));
    assertTrue(r.getBoolean("iommulab.host.strict-unmap"));
    assertEquals("32GiB", r.getString("iommulab.topology.host-memory"));
    assertTrue(r.hasPath("iommulab.uapi.memlock-limit"));
    assertTrue(r.hasPath("iommulab.cost-model.sync"));
    assertTrue(s.renderResolved(true).startsWith("{"));
  }

  @Test
  void deferredInvalidationTurnsStrictUnmapOffAndDefersThePipeline() {
    ScenarioSettings s = valid("scenario.invalidation = deferred\nscenario.pipeline.invalidation.flush-entries = 64");
    assertFalse(s.resolved().getBoolean("iommulab.host.strict-unmap"));
    assertEquals("deferred", s.resolved().getString("iommulab.pipeline.invalidation.mode"));
    assertEquals(io.iommulab.config.InvalidationPipelineSettings.Mode.DEFERRED, s.pipeline().mode());
    assertEquals(64, s.pipeline().flushEntries());
    assertEquals(64, s.resolved().getInt("iommulab.pipeline.invalidation.flush-entries"));
  }

  @Test
  void strictInvalidationMakesThePipelineStrict() {
    ScenarioSettings s = load(Scenarios.VALID);
    assertEquals("strict", s.resolved().getString("iommulab.pipeline.invalidation.mode"));
    assertEquals(io.iommulab.config.InvalidationPipelineSettings.Mode.STRICT, s.pipeline().mode());
  }

  @Test
  void theHostOverridesBuildExactlyTheScenariosTopologyAndCostModel() {
    ScenarioSettings s =
        valid("scenario.topology.host-memory = 8GiB\nscenario.cost-model.sync = 300ns");
    Config host = ConfigFactory.parseMap(s.hostOverrides()).withFallback(ConfigFactory.defaultReference());
    IommulabSettings built = IommulabSettings.fromConfig(host);
    assertEquals(s.iommulab(), built);
    assertEquals(8L << 30, built.topology().hostMemoryBytes());
    assertEquals(300, built.costModel().syncNs());
  }

  @Test
  void topologyOverridesMergeOverTheDefaultHost() {
    ScenarioSettings s = valid("scenario.topology.device-defaults.msi-vectors = 2");
    assertEquals(10, s.iommulab().topology().devices().size());
    assertEquals(2, s.iommulab().topology().device("nvme0").orElseThrow().msiVectors());
  }

  @Test
  void uapiOverridesApply() {
    assertTrue(valid("scenario.uapi.allow-unsafe-interrupts = on").uapi().allowUnsafeInterrupts());
  }

  @Test
  void assertionsKeepTheirBoundsInNanosecondsForLatenciesAndAsNumbersOtherwise() {
    List<AssertionSettings> a = load(Scenarios.VALID).assertions();
    assertEquals(20_000, a.get(0).low());
    assertTrue(a.get(0).latencyValued());
    assertEquals(100_000, a.get(1).low());
    assertFalse(a.get(1).latencyValued());
    assertEquals(Optional.of("web"), a.get(1).tenant());
    assertEquals("map.latency.modeled p99 < 20us", a.get(0).text());
    assertEquals("dma.translations rate > 100000 for tenant web", a.get(1).text());
  }

  @Test
  void aWildcardMetricBecomesOneCheckPerOperationTheScenarioPerforms() {
    ScenarioSettings s =
        valid("scenario.assertions = [ { metric = \"*.latency.modeled\", stat = p99.9, lt = 1ms } ]");
    assertEquals(
        List.of(
            "attach.latency.modeled p99.9 < 1ms [global]",
            "map.latency.modeled p99.9 < 1ms [global]",
            "unmap.latency.modeled p99.9 < 1ms [global]",
            "dma.latency.modeled p99.9 < 1ms [global]"),
        s.checks().stream().map(AssertionSettings.Check::text).toList());
  }

  @Test
  void eachTenantBecomesOneCheckPerTenantThatPerformsTheOperation() {
    ScenarioSettings s =
        valid("scenario.assertions = [ { metric = dma.count, stat = count, gt = 0, tenant = \"*\", after = 2s } ]");
    assertEquals(
        List.of("dma.count count > 0 [tenant web] after 2s"),
        s.checks().stream().map(AssertionSettings.Check::text).toList());
    s = valid("scenario.assertions = [ { metric = map.errors, stat = ratio, lt = 0.01, tenant = \"*\" } ]");
    assertEquals(2, s.checks().size());
  }

  @Test
  void betweenHasTwoInclusiveBounds() {
    AssertionSettings a =
        valid("scenario.assertions = [ { metric = map.latency.wall, stat = mean, between = [1us, 2ms] } ]")
            .assertions()
            .get(0);
    assertEquals(Comparator.BETWEEN, a.comparator());
    assertEquals(1_000, a.low());
    assertEquals(2_000_000, a.high());
    assertEquals("map.latency.wall mean in [1us, 2ms]", a.text());
  }
}
