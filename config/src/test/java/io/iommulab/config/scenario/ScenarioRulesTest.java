package io.iommulab.config.scenario;

import static io.iommulab.config.scenario.Scenarios.problems;
import static io.iommulab.config.scenario.Scenarios.problemsOf;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.iommulab.config.SettingsException;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * Every rule of a scenario file, each with its exact problem: the full key path, the value as
 * written and the rule broken. Problems are collected, never only the first.
 */
class ScenarioRulesTest {

  private static final String ONE_TENANT_AT_A_TIME = "\nscenario.assertions = []";

  /** {@link Scenarios#VALID} with its first tenant replaced by {@code tenant} (no assertions). */
  private static List<String> tenantProblems(String tenant) {
    return problemsOf("scenario.tenants = [ " + tenant + " ]" + ONE_TENANT_AT_A_TIME);
  }

  /** {@link Scenarios#VALID} with one override applied, as -Dkey=value does. */
  private static List<String> overrideProblems(String key, String value) {
    return assertThrows(
            SettingsException.class, () -> Scenarios.withOverrides(Scenarios.VALID, Map.of(key, value)))
        .problems();
  }

  @Test
  void aScenarioWithSeveralProblemsReportsThemAllEachWithItsKeyPath() {
    assertEquals(
        List.of(
            "scenario.duration = 10: must be a duration with a unit (such as 5ns, 2us, 1ms); a bare"
                + " number would mean milliseconds",
            "scenario.invalidation = lazy: must be one of strict, deferred",
            "scenario.tenants[1].vms = 0: must be from 1 to 100000",
            "scenario.assertions[0].stat = p101: must be a statistic: p50, p75, p95, p99, p99.9 (any"
                + " pN from above 0 to 100), min, max, mean, count, rate or ratio"),
        problems(
            """
            scenario {
              description = broken
              duration = 10
              invalidation = lazy
              tenants = [
                { name = a, devices = [ { unit = vtd0 } ], workload {} }
                { name = b, vms = 0, devices = [ { unit = smmu0 } ], workload {} }
              ]
              assertions = [ { metric = violations.isolation, stat = p101, eq = 0 } ]
            }
            """));
  }

  @Nested
  class TheScenarioSection {
    @Test
    void aFileWithoutAScenarioSectionIsRefused() {
      assertEquals(
          List.of(
              "scenario: missing (required, an object { description, duration, tenants, assertions,"
                  + " ... })"),
          problems(""));
    }

    @Test
    void aKeyBesideTheScenarioSectionIsUnknown() {
      assertEquals(
          List.of("foo = 1: unknown key (a scenario file takes scenario)"), problemsOf("foo = 1"));
    }

    @Test
    void aMisspeltScenarioKeyIsAnUnknownKey() {
      assertEquals(
          List.of(
              "scenario.durtion = 5s: unknown key (a scenario takes description, duration, interval,"
                  + " report-every, seed, invalidation, topology, uapi, cost-model, pipeline, tenants,"
                  + " assertions)"),
          problemsOf("scenario.durtion = 5s"));
    }

    @Test
    void theDescriptionIsRequired() {
      assertEquals(
          List.of("scenario.description: missing (required, one line saying what the scenario studies)"),
          problemsOf("scenario.description = null"));
    }

    @Test
    void theDescriptionIsOneNonEmptyLine() {
      assertEquals(
          List.of("scenario.description = \"\": must be a single line of 1 to 100 characters"),
          problemsOf("scenario.description = \"\""));
    }

    @Test
    void theDurationNeedsAUnit() {
      assertEquals(
          List.of(
              "scenario.duration = 10: must be a duration with a unit (such as 5ns, 2us, 1ms); a"
                  + " bare number would mean milliseconds"),
          problemsOf("scenario.duration = 10"));
    }

    @Test
    void theDurationIsFromATenthOfASecondToAYear() {
      assertEquals(
          List.of("scenario.duration = 50ms: must be from 100ms to 366d"),
          problemsOf("scenario.duration = 50ms"));
    }

    @Test
    void theIntervalMustNotExceedTheDuration() {
      assertEquals(
          List.of("scenario.interval = 20s: must not exceed duration (10s)"),
          problemsOf("scenario.interval = 20s"));
    }

    @Test
    void reportEveryIsZeroOrFromASecondToADay() {
      assertEquals(
          List.of("scenario.report-every = 500ms: must be 0s (only at the end) or from 1s to 1d"),
          problemsOf("scenario.report-every = 500ms"));
    }

    @Test
    void reportEveryIsAtLeastTheInterval() {
      assertEquals(
          List.of("scenario.report-every = 1s: must be 0s or at least interval (2s)"),
          problemsOf("scenario.interval = 2s\nscenario.report-every = 1s"));
    }

    @Test
    void theSeedIsAnInteger() {
      assertEquals(List.of("scenario.seed = abc: must be an integer"), problemsOf("scenario.seed = abc"));
    }

    @Test
    void theInvalidationModeIsStrictOrDeferred() {
      assertEquals(
          List.of("scenario.invalidation = lazy: must be one of strict, deferred"),
          problemsOf("scenario.invalidation = lazy"));
    }
  }

  @Nested
  class TheHost {
    @Test
    void theTopologyIsDefaultOrAnObject() {
      assertEquals(
          List.of("scenario.topology = big: must be default or an object of iommulab.topology keys"),
          problemsOf("scenario.topology = big"));
    }

    @Test
    void aBadTopologyOverrideIsNamedWhereTheScenarioWroteIt() {
      assertEquals(
          List.of(
              "scenario.topology.host-memory = 3MiB: must be a multiple of 2MiB from 64MiB to 64TiB"),
          problemsOf("scenario.topology.host-memory = 3MiB"));
    }

    @Test
    void replacingTheUnitsNamesTheInheritedDevicesThatLostTheirUnit() {
      assertEquals(
          List.of(
              "iommulab.topology.devices[4].unit = vtd1: no such unit (units are vtd0, smmu0)",
              "iommulab.topology.devices[7].unit = pamu0: no such unit (units are vtd0, smmu0)",
              "iommulab.topology.devices[8].unit = pamu0: no such unit (units are vtd0, smmu0)",
              "iommulab.topology.devices[9].unit = pamu0: no such unit (units are vtd0, smmu0)"),
          problemsOf(
              "scenario.topology.units = [ { name = vtd0, kind = vtd }, { name = smmu0, kind = smmuv3 } ]"));
    }

    @Test
    void aMisspeltTopologyKeyIsAnUnknownKeyOfTheScenariosTopology() {
      List<String> p = problemsOf("scenario.topology.host-memroy = 1GiB");
      assertEquals(1, p.size());
      assertEquals(
          "scenario.topology.host-memroy = 1GiB: unknown key (the topology takes host-memory,",
          p.get(0).substring(0, p.get(0).indexOf("host-memory,") + "host-memory,".length()));
    }

    @Test
    void uapiOverridesAreAnObjectAndChecked() {
      assertEquals(
          List.of("scenario.uapi = 5: must be an object of iommulab.uapi keys"),
          problemsOf("scenario.uapi = 5"));
      assertEquals(
          List.of("scenario.uapi.memlock-limit = 5: must be at least 0 and a multiple of 4K"),
          problemsOf("scenario.uapi.memlock-limit = 5"));
    }

    @Test
    void theInvalidationPipelinesModeIsSetByTheScenariosInvalidationOnly() {
      assertEquals(
          List.of(
              "scenario.pipeline.invalidation.mode = deferred: set by scenario.invalidation (strict or"
                  + " deferred); give the mode there"),
          problemsOf("scenario.pipeline.invalidation.mode = deferred"));
    }

    @Test
    void pipelineOverridesAreChecked() {
      assertEquals(
          List.of("scenario.pipeline.invalidation.flush-timeout = 20s: must be from 1ns to 10s"),
          problemsOf("scenario.pipeline.invalidation.flush-timeout = 20s"));
    }

    @Test
    void costModelOverridesAreChecked() {
      assertEquals(
          List.of("scenario.cost-model.sync = -1ns: must not be negative"),
          problemsOf("scenario.cost-model.sync = -1ns"));
    }
  }

  @Nested
  class Tenants {
    @Test
    void aScenarioNeedsAtLeastOneTenant() {
      assertEquals(
          List.of("scenario.tenants = []: must list 1 to 256 tenants"),
          problemsOf("scenario.tenants = []"));
    }

    @Test
    void tenantNamesAreUnique() {
      assertEquals(
          List.of("scenario.tenants[2].name = web: duplicate tenant name, first used by scenario.tenants[0]"),
          problemsOf("scenario.tenants += { name = web, devices = [ { unit = vtd1 } ], workload {} }"));
    }

    @Test
    void aTenantNeedsAName() {
      assertEquals(
          List.of("scenario.tenants[0].name: missing (required, a name matching [a-z][a-z0-9-]*)"),
          tenantProblems("{ devices = [ { unit = vtd0 } ], workload {} }"));
    }

    @Test
    void vmsAreFromOneToAHundredThousand() {
      assertEquals(
          List.of("scenario.tenants[1].vms = 0: must be from 1 to 100000"),
          overrideProblems("tenants[1].vms", "0"));
    }

    @Test
    void memoryIsAMultipleOfTheBackingPageSize() {
      assertEquals(
          List.of("scenario.tenants[0].memory = 3M: must be a multiple of backing (2MiB)"),
          tenantProblems("{ name = a, memory = 3M, devices = [ { unit = vtd0 } ], workload {} }"));
    }

    @Test
    void theBackingPageSizeIsOneTheHardwareHas() {
      assertEquals(
          List.of("scenario.tenants[0].backing = 3M: must be one of 4K, 2M, 64M, 1G"),
          tenantProblems("{ name = a, backing = 3M, devices = [ { unit = vtd0 } ], workload {} }"));
    }

    @Test
    void theGuestMemoryOfAllVmsMustFitInTheHost() {
      assertEquals(
          List.of(
              "scenario.tenants: the guest memory of all VMs (32.5GiB: web 2 x 16GiB, db 1 x 512MiB)"
                  + " exceeds the host's 32GiB (topology host-memory)"),
          overrideProblems("tenants[0].memory", "16GiB"));
    }

    @Test
    void aMisspeltTenantKeyIsAnUnknownKey() {
      assertEquals(
          List.of(
              "scenario.tenants[0].vm = 2: unknown key (a tenant takes name, vms, memory, backing,"
                  + " devices, domains, pasids-per-device, nested, pamu-windows, workload)"),
          tenantProblems("{ name = a, vm = 2, devices = [ { unit = vtd0 } ], workload {} }"));
    }
  }

  @Nested
  class Devices {
    @Test
    void aSlotNeedsASource() {
      assertEquals(
          List.of(
              "scenario.tenants[0].devices[0]: needs one of pool, unit or names (where the VMs'"
                  + " devices come from)"),
          tenantProblems("{ name = a, devices = [ { per-vm = 1 } ], workload {} }"));
    }

    @Test
    void aSlotHasOnlyOneSource() {
      assertEquals(
          List.of(
              "scenario.tenants[0].devices[0]: gives pool and unit; give only one of pool, unit or names"),
          tenantProblems("{ name = a, devices = [ { pool = x, unit = vtd0 } ], workload {} }"));
    }

    @Test
    void aPoolMustExist() {
      assertEquals(
          List.of("scenario.tenants[0].devices[0].pool = x: no such device pool (there are none)"),
          tenantProblems("{ name = a, devices = [ { pool = x } ], workload {} }"));
    }

    @Test
    void aUnitMustExist() {
      assertEquals(
          List.of(
              "scenario.tenants[0].devices[0].unit = vtd9: no such unit (units are vtd0, vtd1, smmu0,"
                  + " pamu0)"),
          tenantProblems("{ name = a, devices = [ { unit = vtd9 } ], workload {} }"));
    }

    @Test
    void namedDevicesMustExist() {
      assertEquals(
          List.of("scenario.tenants[0].devices[0].names[1] = nic9: no such device"),
          tenantProblems("{ name = a, devices = [ { names = [nic0, nic9] } ], workload {} }"));
    }

    @Test
    void perVmIsFromOneToSixtyFour() {
      assertEquals(
          List.of("scenario.tenants[0].devices[0].per-vm = 65: must be from 1 to 64"),
          tenantProblems("{ name = a, devices = [ { unit = vtd0, per-vm = 65 } ], workload {} }"));
    }

    @Test
    void aSourceWithTooFewFreeDevicesSaysHowManyCouldBeAssigned() {
      assertEquals(
          List.of(
              "scenario.tenants[0].devices[0].per-vm = 1: 5 VMs x 1 = 5 devices from unit vtd0 are"
                  + " needed, only 2 could be assigned (each device goes to one VM, with its whole"
                  + " IOMMU group)"),
          tenantProblems(
              "{ name = a, vms = 5, memory = 64MiB, devices = [ { unit = vtd0 } ], workload {} }"));
    }

    @Test
    void aDeviceCannotBeSplitFromItsGroup() {
      assertEquals(
          List.of(
              "scenario.tenants[0].devices[0].per-vm = 1: 1 VM x 1 = 1 device from names [gpu0] is"
                  + " needed, only 0 could be assigned (each device goes to one VM, with its whole"
                  + " IOMMU group)"),
          tenantProblems("{ name = a, devices = [ { names = [gpu0] } ], workload {} }"));
    }

    @Test
    void aDeviceGoesToOneTenantOnly() {
      assertEquals(
          List.of(
              "scenario.tenants[1].devices[0].per-vm = 1: 1 VM x 1 = 1 device from names [nic2] is"
                  + " needed, only 0 could be assigned (each device goes to one VM, with its whole"
                  + " IOMMU group)"),
          overrideProblems("tenants[1].devices[0]", "{ names = [nic2] }"));
    }

    @Test
    void aSharedHwptNeedsEachVmsDevicesBehindOneUnit() {
      assertEquals(
          List.of(
              "scenario.tenants[0].domains = shared-hwpt: needs each VM's devices behind one unit (a"
                  + " HWPT belongs to one unit); vm 1 has devices behind smmu0 and vtd0"),
          tenantProblems(
              "{ name = a, domains = shared-hwpt, devices = [ { names = [nic0, nic2], per-vm = 2 } ],"
                  + " workload {} }"));
    }

    @Test
    void nestingNeedsUnitsThatNest() {
      assertEquals(
          List.of(
              "scenario.tenants[0].nested = on: needs devices behind units with nesting = on; device"
                  + " dpaa0 is behind pamu0 (a pamu unit)"),
          tenantProblems("{ name = a, nested = on, devices = [ { unit = pamu0 } ], workload {} }"));
    }

    @Test
    void pasidsNeedDevicesWithPasids() {
      assertEquals(
          List.of(
              "scenario.tenants[0].pasids-per-device = 4: needs devices with PASIDs; device nvme0 has"
                  + " pasid-bits = 0"),
          tenantProblems(
              "{ name = a, pasids-per-device = 4, devices = [ { names = [nvme0] } ], workload {} }"));
    }

    @Test
    void pamuWindowsAreAPowerOfTwo() {
      assertEquals(
          List.of("scenario.tenants[0].pamu-windows = 12: must be a power of two from 1 to 256"),
          tenantProblems("{ name = a, pamu-windows = 12, devices = [ { unit = pamu0 } ], workload {} }"));
    }

    @Test
    void pamuWindowsAreAtMostTheUnitsMaximum() {
      assertEquals(
          List.of(
              "scenario.tenants[0].pamu-windows = 64: device dpaa0 is behind pamu0, whose max-windows"
                  + " = 32"),
          problemsOf("scenario.topology.unit-defaults.pamu.max-windows = 32\n"
              + "scenario.tenants = [ { name = a, pamu-windows = 64, devices = [ { unit = pamu0 } ],"
              + " workload {} } ]" + ONE_TENANT_AT_A_TIME));
    }

    @Test
    void pamuWindowsNeedADeviceBehindAPamu() {
      assertEquals(
          List.of(
              "scenario.tenants[0].pamu-windows = 4: is only for devices behind a PAMU, and no device"
                  + " of the tenant is"),
          tenantProblems("{ name = a, pamu-windows = 4, devices = [ { unit = vtd0 } ], workload {} }"));
    }

    @Test
    void pageRequestsNeedDevicesWithPri() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.page-requests.rate = 5: needs devices with pri = on;"
                  + " device nvme0 has pri = off"),
          tenantProblems(
              "{ name = a, devices = [ { names = [nvme0] } ], workload { page-requests.rate = 5 } }"));
    }
  }

  @Nested
  class Workloads {
    @Test
    void aRateIsANumberPerSecondOrPerMinuteOrPerHour() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.map.rate = fast: must be a rate per VM: a number per"
                  + " second, or with /s, /min or /h (100, 100/s, 30/min, 2/h)"),
          overrideProblems("tenants[0].workload.map.rate", "fast"));
    }

    @Test
    void aRateIsAtMostTenMillionPerSecond() {
      assertEquals(
          List.of("scenario.tenants[0].workload.map.rate = 1000000000: must be at most 10000000/s"),
          overrideProblems("tenants[0].workload.map.rate", "1e9"));
    }

    @Test
    void mapSizesAreMultiplesOfFourKilobytes() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.map.sizes[1] = 5000: must be a multiple of 4KiB from 4KiB"
                  + " to 1TiB"),
          overrideProblems("tenants[0].workload.map.sizes", "[4K, 5000, 1G]"));
    }

    @Test
    void whatIsMappedAtOnceMustFitInTheVm() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.map.hold = 1s: 1000/s x 1s x 2MiB = 1.953GiB mapped at"
                  + " once would exceed the VM's memory (256MiB)"),
          overrideProblems("tenants[0].workload.map", "{ rate = 1000, hold = 1s, sizes = [2M] }"));
    }

    @Test
    void theDmaWorkingSetMustFitInTheVm() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.dma.working-set = 1GiB: must not exceed the VM's memory"
                  + " (256MiB)"),
          overrideProblems("tenants[0].workload.dma.working-set", "1GiB"));
    }

    @Test
    void theAccessMixNeedsSomeWeight() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.dma.mix: the weights of read, write and read-write must"
                  + " not all be 0"),
          overrideProblems("tenants[0].workload.dma.mix", "{ read = 0, write = 0 }"));
    }

    @Test
    void theStrayFractionIsAFraction() {
      assertEquals(
          List.of("scenario.tenants[0].workload.dma.stray-fraction = 2: must be a fraction from 0 to 1"),
          overrideProblems("tenants[0].workload.dma.stray-fraction", "2"));
    }

    @Test
    void guestInvalidationsNeedNesting() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.invalidations.rate = 5: needs nested = on (guest"
                  + " invalidations are of nested stage-1 domains)"),
          tenantProblems(
              "{ name = a, devices = [ { names = [nvme0] } ], workload { invalidations.rate = 5 } }"));
    }

    @Test
    void scheduledUnplugsHappenBeforeTheEnd() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.hotplug.at[1] = 20s: must be before the end of the run"
                  + " (duration = 10s)"),
          overrideProblems("tenants[0].workload.hotplug", "{ at = [2s, 20s] }"));
    }

    @Test
    void randomUnplugsMustBeReplugged() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.hotplug.replug-after = never: must be a duration when"
                  + " rate > 0 (never only with at = [...]: random unplugs that are never replugged"
                  + " would run out of devices)"),
          overrideProblems("tenants[0].workload.hotplug", "{ rate = 1, replug-after = never }"));
    }

    @Test
    void unplugTargetsMustExistInEveryVm() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.hotplug.devices = no-snoop: every VM needs 1 such device"
                  + " to unplug; vm 1 has 0"),
          overrideProblems(
              "tenants[0].workload.hotplug", "{ at = [2s], devices = no-snoop, replug-after = never }"));
    }

    @Test
    void aMisspeltWorkloadKeyIsAnUnknownKey() {
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.mapp = {}: unknown key (a workload takes map, dma,"
                  + " page-requests, invalidations, hotplug, wbinvd)"),
          overrideProblems("tenants[0].workload.mapp", "{}"));
      assertEquals(
          List.of(
              "scenario.tenants[0].workload.map.size = 4K: unknown key (workload.map takes rate,"
                  + " sizes, hold)"),
          overrideProblems("tenants[0].workload.map.size", "4K"));
    }
  }

  @Nested
  class Assertions {
    private List<String> assertionProblems(String assertion) {
      return problemsOf("scenario.assertions = [ " + assertion + " ]");
    }

    @Test
    void theMetricMustExist() {
      assertEquals(
          List.of("scenario.assertions[0].metric = map.latency: no such metric (iommulab list --metrics lists them)"),
          assertionProblems("{ metric = map.latency, stat = p99, lt = 1ms }"));
    }

    @Test
    void theStatisticMustBeOneTheMetricHas() {
      assertEquals(
          List.of(
              "scenario.assertions[0].stat = p99: map.count is a counter: its statistics are count,"
                  + " rate and ratio"),
          assertionProblems("{ metric = map.count, stat = p99, lt = 1 }"));
      assertEquals(
          List.of(
              "scenario.assertions[0].stat = ratio: map.latency.wall is a latency: its statistics are"
                  + " pN, min, max, mean, count and rate"),
          assertionProblems("{ metric = map.latency.wall, stat = ratio, lt = 1 }"));
    }

    @Test
    void aPercentileIsAboveZeroAndAtMostAHundred() {
      assertEquals(
          List.of(
              "scenario.assertions[0].stat = p101: must be a statistic: p50, p75, p95, p99, p99.9"
                  + " (any pN from above 0 to 100), min, max, mean, count, rate or ratio"),
          assertionProblems("{ metric = map.latency.wall, stat = p101, lt = 1ms }"));
    }

    @Test
    void aRatioNeedsAMetricWithABase() {
      assertEquals(
          List.of(
              "scenario.assertions[0].stat = ratio: ratio needs a metric with a base"
                  + " (dma.translations has none; dma.faults, faults.lost, wbinvd.emulated and"
                  + " <op>.errors have one)"),
          assertionProblems("{ metric = dma.translations, stat = ratio, lt = 1 }"));
    }

    @Test
    void theTenantMustExist() {
      assertEquals(
          List.of("scenario.assertions[0].tenant = cache: no such tenant (tenants are db, web)"),
          assertionProblems("{ metric = map.count, stat = count, gt = 1, tenant = cache }"));
    }

    @Test
    void theScopeMustPerformTheOperation() {
      assertEquals(
          List.of(
              "scenario.assertions[0].metric = wbinvd.count: no tenant's workload performs wbinvd"
                  + " operations"),
          assertionProblems("{ metric = wbinvd.count, stat = count, gt = 1 }"));
      assertEquals(
          List.of(
              "scenario.assertions[0].metric = dma.count: the workload of tenant db performs no dma"
                  + " operations"),
          assertionProblems("{ metric = dma.count, stat = count, gt = 1, tenant = db }"));
    }

    @Test
    void exactlyOneComparisonIsGiven() {
      assertEquals(
          List.of(
              "scenario.assertions[0]: needs one of lt, lte, gt, gte, eq, between (the comparison)"),
          assertionProblems("{ metric = map.count, stat = count }"));
      assertEquals(
          List.of(
              "scenario.assertions[0]: gives lt and gt; give only one of lt, lte, gt, gte, eq,"
                  + " between"),
          assertionProblems("{ metric = map.count, stat = count, lt = 1, gt = 0 }"));
    }

    @Test
    void aLatencyBoundIsADurationWithAUnit() {
      assertEquals(
          List.of(
              "scenario.assertions[0].lt = 20: must be a duration with a unit (such as 5ns, 2us,"
                  + " 1ms); a bare number would mean milliseconds"),
          assertionProblems("{ metric = map.latency.modeled, stat = p99, lt = 20 }"));
    }

    @Test
    void aCountBoundIsANumberOfAtLeastZero() {
      assertEquals(
          List.of("scenario.assertions[0].gt = -1: must be a number of at least 0"),
          assertionProblems("{ metric = map.count, stat = count, gt = -1 }"));
    }

    @Test
    void betweenIsALowAndAHighBound() {
      assertEquals(
          List.of("scenario.assertions[0].between = 5: must be [low, high], such as [10, 20]"),
          assertionProblems("{ metric = map.count, stat = count, between = 5 }"));
      assertEquals(
          List.of("scenario.assertions[0].between = [5, 1]: the low bound must not exceed the high bound"),
          assertionProblems("{ metric = map.count, stat = count, between = [5, 1] }"));
    }

    @Test
    void afterIsBeforeTheEndOfTheRun() {
      assertEquals(
          List.of("scenario.assertions[0].after = 10s: must be before the end of the run (duration = 10s)"),
          assertionProblems("{ metric = map.count, stat = count, gt = 1, after = 10s }"));
    }

    @Test
    void aMisspeltAssertionKeyIsAnUnknownKey() {
      assertEquals(
          List.of(
              "scenario.assertions[0].less = 1: unknown key (an assertion takes metric, stat, tenant,"
                  + " after, lt, lte, gt, gte, eq, between)",
              "scenario.assertions[0]: needs one of lt, lte, gt, gte, eq, between (the comparison)"),
          assertionProblems("{ metric = map.count, stat = count, less = 1 }"));
    }
  }

  @Nested
  class Overrides {
    @Test
    void anOverrideReplacesTheValueWrittenInTheFile() {
      ScenarioSettings s =
          Scenarios.withOverrides(
              Scenarios.VALID,
              Map.of("duration", "5s", "scenario.seed", "7", "tenants[0].workload.map.sizes", "[8K]"));
      assertEquals(java.time.Duration.ofSeconds(5), s.duration());
      assertEquals(7, s.seed());
      assertEquals(List.of(8192L), s.tenants().get(0).workload().map().sizes());
    }

    @Test
    void anOverriddenValueIsCheckedLikeAWrittenOne() {
      assertEquals(
          List.of("scenario.tenants[1].vms = 0: must be from 1 to 100000"),
          overrideProblems("tenants[1].vms", "0"));
    }

    @Test
    void anOverrideMayAddAKeyTheFileOmits() {
      ScenarioSettings s =
          Scenarios.withOverrides(Scenarios.VALID, Map.of("tenants[1].workload.wbinvd.rate", "3/s"));
      assertEquals(3, s.tenant("db").orElseThrow().workload().wbinvd().rate());
    }

    @Test
    void anIndexPastTheEndOfAListIsRefused() {
      assertEquals(
          List.of("scenario.tenants[5].vms (from -Dtenants[5].vms): scenario.tenants has 2 elements"
              + " (indexes from 0)"),
          overrideProblems("tenants[5].vms", "3"));
    }

    @Test
    void anIndexIntoSomethingThatIsNotAListIsRefused() {
      assertEquals(
          List.of("scenario.duration[0] (from -Dduration[0]): scenario.duration is not a list"),
          overrideProblems("duration[0]", "3"));
    }

    @Test
    void aMalformedKeyIsRefused() {
      assertEquals(
          List.of("scenario.tenants..vms (from -Dtenants..vms): not a key path such as duration or"
              + " tenants[0].vms"),
          overrideProblems("tenants..vms", "3"));
    }

    @Test
    void aValueThatIsNotHoconIsAString() {
      ScenarioSettings s =
          Scenarios.withOverrides(Scenarios.VALID, Map.of("description", "a: b"));
      assertEquals("a: b", s.description());
    }
  }
}
