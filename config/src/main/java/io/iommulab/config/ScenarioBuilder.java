package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigObject;
import com.typesafe.config.ConfigValue;
import com.typesafe.config.ConfigValueFactory;
import com.typesafe.config.ConfigValueType;
import io.iommulab.config.ConfigReader.Problems;
import io.iommulab.config.ConfigReader.Rule;
import io.iommulab.config.scenario.AssertionSettings;
import io.iommulab.config.scenario.Comparator;
import io.iommulab.config.scenario.DeviceSlot;
import io.iommulab.config.scenario.DomainLayout;
import io.iommulab.config.scenario.HotplugTargets;
import io.iommulab.config.scenario.InvalidationMode;
import io.iommulab.config.scenario.MetricCatalog;
import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.ScenarioSettings;
import io.iommulab.config.scenario.Stat;
import io.iommulab.config.scenario.TenantSettings;
import io.iommulab.config.scenario.Units;
import io.iommulab.config.scenario.WorkloadSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalLong;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * INTERNAL API: use {@link ScenarioSettings#fromConfig}. Reads a scenario file, layered over
 * {@code iommulab.scenario-defaults}, reads the host it names (the scenario's {@code topology},
 * {@code uapi} and {@code cost-model} over the base config's sections, problems of the host named
 * where the value was written), assigns devices to VMs and checks every rule; only when nothing
 * at all is wrong it builds the {@link ScenarioSettings}.
 *
 * <p>Rules that span entries: tenant names are unique; every VM gets its devices (whole IOMMU
 * groups, each device to one VM); the guest memory of all VMs fits in the host; shared HWPTs need
 * a VM's devices behind one unit; nesting, PASIDs and page requests need devices and units that
 * have them; scheduled unplugs need a target device in every VM and happen before the end;
 * assertions name known metrics, statistics the metric has, tenants that exist, operations the
 * scope performs, and bounds of the right kind (a duration for a latency, a number otherwise).
 */
public final class ScenarioBuilder {

  static final List<String> FILE_KEYS = List.of("scenario");
  static final List<String> SCENARIO_KEYS =
      List.of(
          "description",
          "duration",
          "interval",
          "report-every",
          "seed",
          "invalidation",
          "topology",
          "uapi",
          "cost-model",
          "pipeline",
          "tenants",
          "assertions");
  static final List<String> TENANT_KEYS =
      List.of(
          "name", "vms", "memory", "backing", "devices", "domains", "pasids-per-device", "nested",
          "pamu-windows", "workload");
  static final List<String> SLOT_KEYS = List.of("pool", "unit", "names", "per-vm");
  static final List<String> WORKLOAD_KEYS =
      List.of("map", "dma", "page-requests", "invalidations", "hotplug", "wbinvd");
  static final List<String> MAP_KEYS = List.of("rate", "sizes", "hold");
  static final List<String> DMA_KEYS =
      List.of("rate", "burst", "access-size", "working-set", "mix", "stray-fraction");
  static final List<String> MIX_KEYS = List.of("read", "write", "read-write");
  static final List<String> PAGE_REQUEST_KEYS = List.of("rate", "buffer-size");
  static final List<String> INVALIDATION_KEYS = List.of("rate", "size");
  static final List<String> HOTPLUG_KEYS = List.of("rate", "at", "replug-after", "devices");
  static final List<String> WBINVD_KEYS = List.of("rate");
  static final List<String> COMPARATOR_KEYS = List.of("lt", "lte", "gt", "gte", "eq", "between");
  static final List<String> ASSERTION_KEYS =
      List.of("metric", "stat", "tenant", "after", "lt", "lte", "gt", "gte", "eq", "between");

  static final int MAX_TENANTS = 256;
  static final int MAX_DEVICES_PER_VM = 64;
  static final int MAX_DESCRIPTION = 100;
  static final long KIB4 = 4096;
  static final long SECOND = 1_000_000_000L;
  static final long DAY = 86_400 * SECOND;

  static final Rule DURATION = new Rule(v -> v >= SECOND / 10 && v <= 366 * DAY, "must be from 100ms to 366d");
  static final Rule INTERVAL = new Rule(v -> v >= SECOND / 100 && v <= 3600 * SECOND, "must be from 10ms to 1h");
  static final Rule REPORT_EVERY =
      new Rule(v -> v == 0 || (v >= SECOND && v <= DAY), "must be 0s (only at the end) or from 1s to 1d");
  static final Rule MEMORY =
      new Rule(v -> v >= KIB4 && v <= 64L << 40, "must be from 4KiB to 64TiB");
  static final Rule BACKING =
      new Rule(v -> v == KIB4 || v == 2L << 20 || v == 64L << 20 || v == 1L << 30,
          "must be one of 4K, 2M, 64M, 1G");
  static final Rule PAGES =
      new Rule(v -> v >= KIB4 && v <= 1L << 40 && v % KIB4 == 0,
          "must be a multiple of 4KiB from 4KiB to 1TiB");
  static final Rule WORKING_SET =
      new Rule(v -> v >= 0 && v <= 1L << 40 && v % KIB4 == 0,
          "must be a multiple of 4KiB from 0 to 1TiB");
  static final Rule HOLD = new Rule(v -> v >= 0 && v <= 3600 * SECOND, "must be from 0s to 1h");
  static final Rule AT = new Rule(v -> v >= 0, "must not be negative");

  static final String NAME_EXPECTED = TopologyBuilder.NAME_EXPECTED;
  static final String RATE_EXPECTED =
      "a rate per VM: a number per second, or with /s, /min or /h (100, 100/s, 30/min, 2/h)";
  private static final Pattern RATE = Pattern.compile(
      "\\s*([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*(/\\s*(s|min|h))?\\s*");
  private static final Predicate<String> NAME_OK = s -> TopologyBuilder.NAME.matcher(s).matches();

  private ScenarioBuilder() {}

  // ------------------------------------------------------------------------------- entry point

  /**
   * INTERNAL API: {@link ScenarioSettings#fromConfig(String, Config, Config)}.
   *
   * @throws SettingsException listing every problem
   */
  public static ScenarioSettings build(String name, Config file, Config base) {
    Problems problems = new Problems();
    Config resolvedFile;
    Config resolvedBase;
    try {
      resolvedFile = file.resolve();
      resolvedBase = base.resolve();
    } catch (ConfigException e) {
      throw new SettingsException(List.of(e.getMessage()));
    }
    ConfigReader root = ConfigReader.of(resolvedFile, "", problems);
    root.checkKnownKeys(FILE_KEYS, "a scenario file");
    Optional<ConfigReader> own =
        root.requireObject(
            ScenarioSettings.PATH, "an object { description, duration, tenants, assertions, ... }");
    ConfigReader defaults = section(resolvedBase, ScenarioSettings.DEFAULTS_PATH, problems);
    Optional<ScenarioSettings> settings =
        own.flatMap(s -> new ScenarioBuilder.Read(name, s, defaults, resolvedFile, resolvedBase).read());
    problems.throwIfAny();
    return settings.orElseThrow();
  }

  private static ConfigReader section(Config base, String path, Problems problems) {
    Config c = base.hasPath(path) ? base.getConfig(path) : ConfigFactory.empty();
    return ConfigReader.of(c, path, problems).partial();
  }

  // ------------------------------------------------------------------------------- one reading

  /** The state of one reading: what was read so far, for the rules that span sections. */
  private static final class Read {
    final String name;
    final ConfigReader own;
    final ConfigReader s;
    final ConfigReader defaults;
    final Config file;
    final Config base;
    final Problems problems;

    long durationNs = -1;
    /** Whether tenants was a list of 1 to 256 entries: assertions may then name tenants. */
    boolean tenantsRead;
    TopologySettings topology;
    Config topologyConfig;

    Read(String name, ConfigReader own, ConfigReader defaults, Config file, Config base) {
      this.name = name;
      this.own = own;
      this.s = own.withFallback(defaults);
      this.defaults = defaults;
      this.file = file;
      this.base = base;
      this.problems = own.problems();
    }

    Optional<ScenarioSettings> read() {
      int mark = s.mark();
      own.checkKnownKeys(SCENARIO_KEYS, "a scenario");
      String description =
          s.getString(
                  "description",
                  t -> !t.isBlank() && !t.contains("\n") && t.length() <= MAX_DESCRIPTION,
                  "one line saying what the scenario studies",
                  "a single line of 1 to " + MAX_DESCRIPTION + " characters")
              .orElse(null);
      durationNs = s.getNanos("duration", DURATION).orElse(-1);
      long intervalNs = s.getNanos("interval", INTERVAL).orElse(-1);
      if (intervalNs > 0 && durationNs > 0 && intervalNs > durationNs) {
        s.entryProblem("interval", "must not exceed duration (" + Units.nanos(durationNs) + ")");
      }
      long reportEveryNs = s.getNanos("report-every", REPORT_EVERY).orElse(-1);
      if (reportEveryNs > 0 && intervalNs > 0 && reportEveryNs < intervalNs) {
        s.entryProblem("report-every", "must be 0s or at least interval (" + Units.nanos(intervalNs) + ")");
      }
      long seed = s.getLong("seed", Rule.any()).orElse(0);
      InvalidationMode invalidation =
          s.getEnum("invalidation", InvalidationMode.values(), InvalidationMode::configName).orElse(null);

      Optional<IommulabSettings> host = readHost();
      Optional<UapiSettings> uapi = readSection("uapi", UapiSettings.PATH, UapiSettings::read);
      Optional<InvalidationPipelineSettings> pipeline = readPipeline(invalidation);

      List<TenantEntry> tenants = readTenants();
      if (topology != null && !tenants.isEmpty()) {
        assignDevices(tenants);
        checkMemory(tenants);
      }
      List<AssertionSettings> assertions = readAssertions(tenants);

      if (s.failedSince(mark)) {
        return Optional.empty();
      }
      List<TenantSettings> built = new ArrayList<>();
      for (TenantEntry t : tenants) {
        built.add(t.build());
      }
      Config resolved = resolved(host.orElseThrow(), seed, invalidation);
      return Optional.of(
          new ScenarioSettings(
              name,
              description,
              Duration.ofNanos(durationNs),
              Duration.ofNanos(intervalNs),
              Duration.ofNanos(reportEveryNs),
              seed,
              invalidation,
              host.orElseThrow(),
              uapi.orElseThrow(),
              pipeline.orElseThrow(),
              built,
              assertions,
              resolved));
    }

    // ----------------------------------------------------------------------------------- host

    /** The topology and cost model: the scenario's overrides over the base config's sections. */
    private Optional<IommulabSettings> readHost() {
      Optional<ConfigReader> topo = overrides("topology", TopologySettings.PATH, true);
      Optional<TopologySettings> t = topo.flatMap(TopologyBuilder::read);
      Optional<CostModelSettings> c =
          readSection("cost-model", CostModelSettings.PATH, CostModelSettings::read);
      if (t.isEmpty() || c.isEmpty()) {
        return Optional.empty();
      }
      topology = t.get();
      topologyConfig = merged("topology", TopologySettings.PATH);
      return Optional.of(new IommulabSettings(t.get(), c.get(), FaultPipelineSettings.defaults(),
          InvalidationPipelineSettings.defaults()));
    }

    /**
     * The invalidation pipeline: the scenario's {@code pipeline} overrides over {@code
     * iommulab.pipeline}, its mode set by {@code scenario.invalidation} (and only there).
     */
    private Optional<InvalidationPipelineSettings> readPipeline(InvalidationMode invalidation) {
      Optional<ConfigReader> p = overrides("pipeline", "iommulab.pipeline", false);
      if (p.isEmpty()) {
        return Optional.empty();
      }
      p.get().checkKnownKeys(List.of("invalidation"), "the pipeline section");
      if (file.hasPath(ScenarioSettings.PATH + ".pipeline.invalidation.mode")) {
        problems.add(ScenarioSettings.PATH + ".pipeline.invalidation.mode = "
            + ConfigReader.render(file.getValue(ScenarioSettings.PATH + ".pipeline.invalidation.mode"))
            + ": set by scenario.invalidation (strict or deferred); give the mode there");
        return Optional.empty();
      }
      Optional<InvalidationPipelineSettings> read =
          p.get().requireObject("invalidation", "an object").flatMap(InvalidationPipelineSettings::read);
      if (read.isEmpty() || invalidation == null) {
        return Optional.empty();
      }
      return Optional.of(read.get().withMode(invalidation == InvalidationMode.STRICT
          ? InvalidationPipelineSettings.Mode.STRICT
          : InvalidationPipelineSettings.Mode.DEFERRED));
    }

    private <T> Optional<T> readSection(
        String key, String basePath, java.util.function.Function<ConfigReader, Optional<T>> read) {
      return overrides(key, basePath, false).flatMap(read);
    }

    /**
     * A reader of the scenario's {@code key} object over the base config's {@code basePath}: a
     * problem of a value written in the scenario is named {@code scenario.<key>...}, one of a value
     * inherited from the base {@code iommulab....}. For the topology, the string {@code default}
     * means no overrides.
     */
    private Optional<ConfigReader> overrides(String key, String basePath, boolean defaultWord) {
      ConfigReader baseSection = ConfigReader.of(
          base.hasPath(basePath) ? base.getConfig(basePath) : ConfigFactory.empty(), basePath, problems);
      if (!own.has(key)) {
        return Optional.of(baseSection);
      }
      ConfigValueType type = own.typeOf(key).orElseThrow();
      if (type == ConfigValueType.OBJECT) {
        return own.getObject(key).map(o -> o.withFallback(baseSection));
      }
      if (defaultWord) {
        Optional<String> word =
            own.getString(key, "default"::equals, "default or an object of " + basePath + " keys");
        return word.map(w -> baseSection);
      }
      own.problem(key, "must be an object of " + basePath + " keys");
      return Optional.empty();
    }

    /** The scenario's {@code key} object merged over the base section, as HOCON merges them. */
    private Config merged(String key, String basePath) {
      Config baseSection = base.hasPath(basePath) ? base.getConfig(basePath) : ConfigFactory.empty();
      Config scenario = file.getConfig(ScenarioSettings.PATH);
      if (scenario.hasPath(key) && scenario.getValue(key).valueType() == ConfigValueType.OBJECT) {
        return scenario.getConfig(key).withFallback(baseSection);
      }
      return baseSection;
    }

    // -------------------------------------------------------------------------------- tenants

    private List<TenantEntry> readTenants() {
      List<TenantEntry> out = new ArrayList<>();
      Optional<List<ConfigReader>> list =
          s.getObjectList("tenants", "a list of tenants { name, vms, devices, workload, ... }");
      if (list.isEmpty()) {
        return out;
      }
      if (list.get().isEmpty() || list.get().size() > MAX_TENANTS) {
        s.problem("tenants", "must list 1 to " + MAX_TENANTS + " tenants");
        return out;
      }
      tenantsRead = true;
      Optional<ConfigReader> tenantDefaults = defaults.getObject("tenant");
      Map<String, TenantEntry> byName = new HashMap<>();
      int nextVmId = 1;
      for (ConfigReader entry : list.get()) {
        if (entry == null) {
          continue;
        }
        TenantEntry t = readTenant(entry, tenantDefaults.orElse(null));
        if (t.name != null) {
          TenantEntry first = byName.putIfAbsent(t.name, t);
          if (first != null) {
            entry.entryProblem("name", "duplicate tenant name, first used by " + first.r.path());
          }
        }
        if (t.vms > 0) {
          t.firstVmId = nextVmId;
          nextVmId += t.vms;
        }
        out.add(t);
      }
      return out;
    }

    private TenantEntry readTenant(ConfigReader entry, ConfigReader tenantDefaults) {
      entry.checkKnownKeys(TENANT_KEYS, "a tenant");
      ConfigReader r = tenantDefaults == null ? entry : entry.withFallback(tenantDefaults);
      TenantEntry t = new TenantEntry(r);
      int mark = r.mark();
      t.name = entry.getString("name", NAME_OK, NAME_EXPECTED).orElse(null);
      t.vms = r.getInt("vms", Rule.between(1, TenantSettings.MAX_VMS)).orElse(-1);
      t.memory = r.getBytes("memory", MEMORY).orElse(-1);
      t.backing = r.getBytes("backing", BACKING).orElse(-1);
      if (t.memory > 0 && t.backing > 0 && t.memory % t.backing != 0) {
        r.entryProblem("memory", "must be a multiple of backing (" + Units.bytes(t.backing) + ")");
      }
      t.slots = readSlots(entry);
      t.domains = r.getEnum("domains", DomainLayout.values(), DomainLayout::configName).orElse(null);
      t.pasids = r.getInt("pasids-per-device", Rule.between(0, (1 << 20) - 1)).orElse(-1);
      t.nested = r.getBoolean("nested").orElse(false);
      t.pamuWindows = r.getInt("pamu-windows", Rule.powerOfTwoBetween(1, 256)).orElse(-1);
      t.workload = r.requireObject("workload", "an object { map, dma, ... }").flatMap(w -> readWorkload(t, w)).orElse(null);
      t.valid = !r.failedSince(mark);
      return t;
    }

    private List<SlotEntry> readSlots(ConfigReader tenant) {
      List<SlotEntry> out = new ArrayList<>();
      Optional<List<ConfigReader>> list =
          tenant.getObjectList("devices", "a list of device slots { pool | unit | names, per-vm }");
      if (list.isEmpty()) {
        return null;
      }
      if (list.get().isEmpty()) {
        tenant.problem("devices", "must list at least one device slot");
        return null;
      }
      Optional<ConfigReader> slotDefaults = defaults.getObject("device-slot");
      int perVm = 0;
      boolean ok = true;
      for (ConfigReader entry : list.get()) {
        if (entry == null) {
          ok = false;
          continue;
        }
        entry.checkKnownKeys(SLOT_KEYS, "a device slot");
        ConfigReader r = slotDefaults.map(entry::withFallback).orElse(entry);
        int mark = r.mark();
        List<String> given = new ArrayList<>();
        for (String k : List.of("pool", "unit", "names")) {
          if (entry.has(k)) {
            given.add(k);
          }
        }
        DeviceSlot.Source source = null;
        if (given.size() != 1) {
          problems.add(entry.path() + (given.isEmpty()
              ? ": needs one of pool, unit or names (where the VMs' devices come from)"
              : ": gives " + String.join(" and ", given) + "; give only one of pool, unit or names"));
        } else if (given.get(0).equals("pool")) {
          source = entry.getString("pool", NAME_OK, "the name-prefix of a device pool").map(DeviceSlot.Pool::new).orElse(null);
        } else if (given.get(0).equals("unit")) {
          source = entry.getString("unit", NAME_OK, "the name of a unit").map(DeviceSlot.Unit::new).orElse(null);
        } else {
          source = entry.getStringList("names", NAME_OK, "device names").map(DeviceSlot.Named::new).orElse(null);
          if (source != null && ((DeviceSlot.Named) source).devices().isEmpty()) {
            entry.problem("names", "must name at least one device");
            source = null;
          }
        }
        int n = r.getInt("per-vm", Rule.between(1, MAX_DEVICES_PER_VM)).orElse(-1);
        if (r.failedSince(mark) || source == null || n < 1) {
          ok = false;
          continue;
        }
        perVm += n;
        out.add(new SlotEntry(entry, new DeviceSlot(source, n)));
      }
      if (ok && perVm > MAX_DEVICES_PER_VM) {
        tenant.problemWithValue(
            "devices", "[...]", "the slots give " + perVm + " devices per VM: must be at most " + MAX_DEVICES_PER_VM);
        ok = false;
      }
      return ok ? out : null;
    }

    // ------------------------------------------------------------------------------- workload

    private Optional<WorkloadSettings> readWorkload(TenantEntry t, ConfigReader w) {
      int mark = w.mark();
      checkOwnKeys(w, WORKLOAD_KEYS, "a workload");
      Optional<WorkloadSettings.Mapping> map = sub(w, "map", MAP_KEYS).flatMap(m -> readMap(t, m));
      Optional<WorkloadSettings.Dma> dma = sub(w, "dma", DMA_KEYS).flatMap(d -> readDma(t, d));
      Optional<WorkloadSettings.PageRequests> pr = sub(w, "page-requests", PAGE_REQUEST_KEYS).flatMap(p -> {
        double rate = rate(p);
        long size = p.getBytes("buffer-size", PAGES).orElse(-1);
        if (size > 0 && t.memory > 0 && size > t.memory) {
          p.entryProblem("buffer-size", "must not exceed the VM's memory (" + Units.bytes(t.memory) + ")");
        }
        return rate >= 0 && size > 0 ? Optional.of(new WorkloadSettings.PageRequests(rate, size)) : Optional.empty();
      });
      Optional<WorkloadSettings.Invalidations> inv = sub(w, "invalidations", INVALIDATION_KEYS).flatMap(i -> {
        double rate = rate(i);
        long size = i.getBytes("size", PAGES).orElse(-1);
        if (rate > 0 && !t.nested) {
          i.entryProblem("rate", "needs nested = on (guest invalidations are of nested stage-1 domains)");
        }
        return rate >= 0 && size > 0 ? Optional.of(new WorkloadSettings.Invalidations(rate, size)) : Optional.empty();
      });
      Optional<WorkloadSettings.Hotplug> hotplug = sub(w, "hotplug", HOTPLUG_KEYS).flatMap(this::readHotplug);
      Optional<WorkloadSettings.Wbinvd> wbinvd = sub(w, "wbinvd", WBINVD_KEYS).flatMap(x -> {
        double rate = rate(x);
        return rate >= 0 ? Optional.of(new WorkloadSettings.Wbinvd(rate)) : Optional.empty();
      });
      if (w.failedSince(mark)) {
        return Optional.empty();
      }
      return Optional.of(new WorkloadSettings(
          map.orElseThrow(), dma.orElseThrow(), pr.orElseThrow(), inv.orElseThrow(),
          hotplug.orElseThrow(), wbinvd.orElseThrow()));
    }

    /** A workload section; its defaults come from the tenant defaults' workload. */
    private Optional<ConfigReader> sub(ConfigReader w, String key, List<String> keys) {
      Optional<ConfigReader> r = w.requireObject(key, "an object { " + String.join(", ", keys) + " }");
      r.ifPresent(x -> checkOwnKeys(x, keys, "workload." + key));
      return r;
    }

    private Optional<WorkloadSettings.Mapping> readMap(TenantEntry t, ConfigReader m) {
      double rate = rate(m);
      Optional<List<Long>> sizes = m.getBytesList("sizes", PAGES);
      if (sizes.isPresent() && sizes.get().isEmpty()) {
        m.problem("sizes", "must list at least one size");
        sizes = Optional.empty();
      }
      long hold = m.getNanos("hold", HOLD).orElse(-1);
      if (sizes.isEmpty() || rate < 0 || hold < 0) {
        return Optional.empty();
      }
      WorkloadSettings.Mapping map = new WorkloadSettings.Mapping(rate, sizes.get(), Duration.ofNanos(hold));
      if (t.memory > 0) {
        long largest = map.largestSize();
        if (largest > t.memory) {
          m.entryProblem("sizes", "must not exceed the VM's memory (" + Units.bytes(t.memory) + ")");
        } else if (rate * (hold / 1e9) * largest > t.memory) {
          m.entryProblem("hold", Units.rate(rate) + " x " + Units.nanos(hold) + " x " + Units.bytes(largest)
              + " = " + Units.bytes((long) (rate * (hold / 1e9) * largest))
              + " mapped at once would exceed the VM's memory (" + Units.bytes(t.memory) + ")");
        }
      }
      return Optional.of(map);
    }

    private Optional<WorkloadSettings.Dma> readDma(TenantEntry t, ConfigReader d) {
      double rate = rate(d);
      int burst = d.getInt("burst", Rule.between(1, 4096)).orElse(-1);
      long accessSize = d.getBytes("access-size", Rule.between(1, 4096)).orElse(-1);
      long workingSet = d.getBytes("working-set", WORKING_SET).orElse(-1);
      if (rate > 0 && workingSet > 0 && t.memory > 0 && workingSet > t.memory) {
        d.entryProblem("working-set", "must not exceed the VM's memory (" + Units.bytes(t.memory) + ")");
      }
      double[] mix = d.requireObject("mix", "an object { read, write, read-write }").map(x -> {
        checkOwnKeys(x, MIX_KEYS, "workload.dma.mix");
        double[] weights = new double[3];
        boolean ok = true;
        for (int i = 0; i < 3; i++) {
          OptionalDouble v = x.getDouble(MIX_KEYS.get(i), 0, 1e9, "a weight from 0 to 1000000000");
          ok &= v.isPresent();
          weights[i] = v.orElse(0);
        }
        if (ok && weights[0] + weights[1] + weights[2] == 0) {
          problems.add(x.path() + ": the weights of read, write and read-write must not all be 0");
          ok = false;
        }
        return ok ? weights : null;
      }).orElse(null);
      double stray = d.getDouble("stray-fraction", 0, 1, "a fraction from 0 to 1").orElse(-1);
      if (rate < 0 || burst < 1 || accessSize < 1 || workingSet < 0 || mix == null || stray < 0) {
        return Optional.empty();
      }
      double sum = mix[0] + mix[1] + mix[2];
      double read = mix[0] / sum;
      double write = mix[1] / sum;
      return Optional.of(new WorkloadSettings.Dma(
          rate, burst, (int) accessSize, workingSet, read, write, 1 - read - write, stray));
    }

    private Optional<WorkloadSettings.Hotplug> readHotplug(ConfigReader h) {
      double rate = rate(h);
      Optional<List<Long>> at = h.getNanosList("at", AT);
      if (at.isPresent() && durationNs > 0) {
        for (int i = 0; i < at.get().size(); i++) {
          if (at.get().get(i) >= durationNs) {
            problems.add(h.path("at") + "[" + i + "] = " + Units.nanos(at.get().get(i))
                + ": must be before the end of the run (duration = " + Units.nanos(durationNs) + ")");
            at = Optional.empty();
            break;
          }
        }
      }
      Optional<Duration> replug = Optional.empty();
      boolean replugOk = true;
      if (h.typeOf("replug-after").filter(ty -> ty == ConfigValueType.STRING).isPresent()
          && h.getString("replug-after", x -> true, "").orElse("").equals("never")) {
        if (rate > 0) {
          h.entryProblem("replug-after", "must be a duration when rate > 0 (never only with at = [...]:"
              + " random unplugs that are never replugged would run out of devices)");
          replugOk = false;
        }
      } else {
        long ns = h.getNanos("replug-after", HOLD).orElse(-1);
        replugOk = ns >= 0;
        replug = ns >= 0 ? Optional.of(Duration.ofNanos(ns)) : Optional.empty();
      }
      HotplugTargets devices =
          h.getEnum("devices", HotplugTargets.values(), HotplugTargets::configName).orElse(null);
      if (rate < 0 || at.isEmpty() || !replugOk || devices == null) {
        return Optional.empty();
      }
      List<Duration> times = at.get().stream().map(Duration::ofNanos).toList();
      return Optional.of(new WorkloadSettings.Hotplug(rate, times, replug, devices));
    }

    /** The {@code rate} of a workload section in operations per second per VM; -1 if wrong. */
    private double rate(ConfigReader r) {
      Optional<String> text = r.getString("rate", t -> RATE.matcher(t).matches(), RATE_EXPECTED);
      if (text.isEmpty()) {
        return -1;
      }
      String compact = text.get().replaceAll("\\s", "");
      int slash = compact.indexOf('/');
      double v = Double.parseDouble(slash < 0 ? compact : compact.substring(0, slash));
      String unit = slash < 0 ? "s" : compact.substring(slash + 1);
      if (unit.equals("min")) {
        v /= 60;
      } else if (unit.equals("h")) {
        v /= 3600;
      }
      if (!(v <= WorkloadSettings.MAX_RATE)) {
        r.problem("rate", "must be at most " + Units.number(WorkloadSettings.MAX_RATE) + "/s");
        return -1;
      }
      return v;
    }

    // --------------------------------------------------------------------- device assignment

    /**
     * Hands each VM its devices, tenant by tenant, VM by VM, slot by slot, in the order the
     * source lists them, always whole IOMMU groups, each device to one VM; then checks what the
     * tenant's settings need of its devices. A slot that cannot serve every VM is reported once.
     */
    private void assignDevices(List<TenantEntry> tenants) {
      Map<String, DeviceSettings> devices = new HashMap<>();
      Map<Integer, List<String>> groups = new HashMap<>();
      Map<String, List<String>> byUnit = new LinkedHashMap<>();
      for (DeviceSettings d : topology.devices()) {
        devices.put(d.name(), d);
        groups.computeIfAbsent(d.group(), g -> new ArrayList<>()).add(d.name());
        byUnit.computeIfAbsent(d.unit(), u -> new ArrayList<>()).add(d.name());
      }
      Map<String, List<String>> pools = pools();
      Set<String> taken = new HashSet<>();
      for (TenantEntry t : tenants) {
        if (!t.valid || t.slots == null || t.vms < 1) {
          continue;
        }
        List<List<String>> candidates = new ArrayList<>();
        List<Set<String>> candidateSets = new ArrayList<>();
        boolean ok = true;
        for (SlotEntry slot : t.slots) {
          List<String> c = candidates(slot, devices, byUnit, pools);
          ok &= c != null;
          candidates.add(c);
          candidateSets.add(c == null ? Set.of() : new HashSet<>(c));
        }
        if (!ok) {
          t.valid = false;
          continue;
        }
        int[] cursor = new int[t.slots.size()];
        List<List<String>> assigned = new ArrayList<>(t.vms);
        for (int vm = 0; vm < t.vms && ok; vm++) {
          List<String> mine = new ArrayList<>();
          for (int si = 0; si < t.slots.size() && ok; si++) {
            SlotEntry slot = t.slots.get(si);
            List<String> c = candidates.get(si);
            Set<String> inSlot = candidateSets.get(si);
            int need = slot.slot.perVm();
            while (cursor[si] < c.size() && taken.contains(c.get(cursor[si]))) {
              cursor[si]++;
            }
            for (int i = cursor[si]; i < c.size() && need > 0; i++) {
              String d = c.get(i);
              if (taken.contains(d)) {
                continue;
              }
              List<String> members = groups.get(devices.get(d).group());
              if (members.size() > need || !inSlot.containsAll(members)
                  || members.stream().anyMatch(taken::contains)) {
                continue;
              }
              taken.addAll(members);
              mine.addAll(members);
              need -= members.size();
            }
            if (need > 0) {
              int wanted = t.vms * slot.slot.perVm();
              int got = vm * slot.slot.perVm() + (slot.slot.perVm() - need);
              slot.r.problemWithValue("per-vm", Integer.toString(slot.slot.perVm()),
                  t.vms + (t.vms == 1 ? " VM" : " VMs") + " x " + slot.slot.perVm() + " = " + wanted
                      + (wanted == 1 ? " device" : " devices") + " from " + slot.slot.source().describe()
                      + (wanted == 1 ? " is" : " are") + " needed, only " + got + " could be assigned (each device goes to one VM,"
                      + " with its whole IOMMU group)");
              ok = false;
            }
          }
          assigned.add(mine);
        }
        if (!ok) {
          t.valid = false;
          continue;
        }
        t.vmDevices = assigned;
        checkDevices(t, devices);
      }
    }

    /** Device pools of the topology: name-prefix → member names, in order. */
    private Map<String, List<String>> pools() {
      Map<String, List<String>> pools = new LinkedHashMap<>();
      if (topologyConfig.hasPath("device-pools")) {
        for (Config p : topologyConfig.getConfigList("device-pools")) {
          String prefix = p.getString("name-prefix");
          int count = p.getInt("count");
          List<String> members = new ArrayList<>(count);
          for (int i = 0; i < count; i++) {
            members.add(prefix + "-" + i);
          }
          pools.put(prefix, members);
        }
      }
      return pools;
    }

    private List<String> candidates(
        SlotEntry slot,
        Map<String, DeviceSettings> devices,
        Map<String, List<String>> byUnit,
        Map<String, List<String>> pools) {
      DeviceSlot.Source source = slot.slot.source();
      if (source instanceof DeviceSlot.Pool p) {
        List<String> members = pools.get(p.prefix());
        if (members == null) {
          slot.r.problem("pool", "no such device pool (" + known("pools", pools.keySet()) + ")");
        }
        return members;
      }
      if (source instanceof DeviceSlot.Unit u) {
        if (topology.unit(u.name()).isEmpty()) {
          slot.r.problem("unit", "no such unit (" + known("units",
              topology.units().stream().map(IommuUnitSettings::name).toList()) + ")");
          return null;
        }
        return byUnit.getOrDefault(u.name(), List.of());
      }
      List<String> names = ((DeviceSlot.Named) source).devices();
      boolean ok = true;
      for (int i = 0; i < names.size(); i++) {
        if (!devices.containsKey(names.get(i))) {
          problems.add(slot.r.path("names") + "[" + i + "] = " + names.get(i) + ": no such device");
          ok = false;
        }
      }
      return ok ? names : null;
    }

    private static String known(String what, java.util.Collection<String> names) {
      return names.isEmpty() ? "there are none" : what + " are " + String.join(", ", names);
    }

    /** What the tenant's settings need of the devices it got; the first offender is named. */
    private void checkDevices(TenantEntry t, Map<String, DeviceSettings> devices) {
      ConfigReader r = t.r;
      for (int vm = 0; vm < t.vmDevices.size(); vm++) {
        Set<String> units = new java.util.TreeSet<>();
        for (String d : t.vmDevices.get(vm)) {
          units.add(devices.get(d).unit());
        }
        if (t.domains == DomainLayout.SHARED_HWPT && units.size() > 1) {
          r.entryProblem("domains", "needs each VM's devices behind one unit (a HWPT belongs to one"
              + " unit); vm " + t.vmId(vm) + " has devices behind " + String.join(" and ", units));
          t.valid = false;
          break;
        }
      }
      int pasidQuota = base.hasPath("iommulab.host.vm-pasid-quota") ? base.getInt("iommulab.host.vm-pasid-quota") : Integer.MAX_VALUE;
      boolean anyPamu = false;
      for (int vm = 0; vm < t.vmDevices.size(); vm++) {
        List<String> vmDevices = t.vmDevices.get(vm);
        for (String name : vmDevices) {
          DeviceSettings d = devices.get(name);
          IommuUnitSettings unit = topology.unit(d.unit()).orElseThrow();
          PagingUnitSettings paging = unit instanceof PagingUnitSettings p ? p : null;
          if (unit instanceof PamuUnitSettings pamu) {
            anyPamu = true;
            if (t.pamuWindows > pamu.maxWindows()) {
              r.entryProblem("pamu-windows", "device " + name + " is behind " + pamu.name()
                  + ", whose max-windows = " + pamu.maxWindows());
              return;
            }
          }
          if (t.nested && (paging == null || !paging.nesting())) {
            r.entryProblem("nested", "needs devices behind units with nesting = on; device " + name
                + " is behind " + unit.name() + (paging == null ? " (a pamu unit)" : ", which has nesting = off"));
            return;
          }
          if (t.pasids > 0 && (d.pasidBits() == 0 || paging == null || paging.pasidBits() == 0)) {
            r.entryProblem("pasids-per-device", "needs devices with PASIDs; device " + name
                + (d.pasidBits() == 0 ? " has pasid-bits = 0" : " is behind " + unit.name() + ", which has no PASIDs"));
            return;
          }
          if (t.pasids > 0 && Math.min(d.pasidBits(), paging.pasidBits()) < 20
              && t.pasids >= 1L << Math.min(d.pasidBits(), paging.pasidBits())) {
            r.entryProblem("pasids-per-device", "device " + name + " has only "
                + ((1L << Math.min(d.pasidBits(), paging.pasidBits())) - 1) + " PASIDs besides PASID 0");
            return;
          }
          if (t.workload != null && t.workload.pageRequests().rate() > 0 && !d.pri()) {
            problems.add(r.path("workload") + ".page-requests.rate = "
                + Units.number(t.workload.pageRequests().rate()) + ": needs devices with pri = on; device "
                + name + " has pri = off");
            t.valid = false;
            return;
          }
        }
        if (t.pasids > 0 && (long) t.pasids * vmDevices.size() > pasidQuota) {
          r.entryProblem("pasids-per-device", "with " + vmDevices.size() + " devices per VM needs "
              + (long) t.pasids * vmDevices.size() + " PASIDs per VM, more than iommulab.host.vm-pasid-quota = "
              + pasidQuota);
          return;
        }
        if (t.workload != null && t.workload.hotplug().enabled()) {
          WorkloadSettings.Hotplug h = t.workload.hotplug();
          long targets = vmDevices.stream().filter(n -> h.devices().accepts(devices.get(n).noSnoop())).count();
          long needed = h.replugAfter().isEmpty() ? h.at().size() : 1;
          if (targets < needed) {
            problems.add(r.path("workload") + ".hotplug.devices = " + h.devices().configName()
                + ": every VM needs " + needed + (needed == 1 ? " such device" : " such devices")
                + " to unplug; vm " + t.vmId(vm) + " has " + targets);
            t.valid = false;
            return;
          }
        }
      }
      if (!anyPamu && t.pamuWindows > 1) {
        r.entryProblem("pamu-windows", "is only for devices behind a PAMU, and no device of the tenant is");
      }
    }

    private void checkMemory(List<TenantEntry> tenants) {
      double total = 0;
      List<String> parts = new ArrayList<>();
      for (TenantEntry t : tenants) {
        if (t.vms > 0 && t.memory > 0) {
          total += (double) t.vms * t.memory;
          parts.add(t.name + " " + t.vms + " x " + Units.bytes(t.memory));
        }
      }
      if (total > topology.hostMemoryBytes()) {
        problems.add(s.path("tenants") + ": the guest memory of all VMs ("
            + Units.bytes((long) Math.min(total, Long.MAX_VALUE)) + ": "
            + String.join(", ", parts) + ") exceeds the host's " + Units.bytes(topology.hostMemoryBytes())
            + " (topology host-memory)");
      }
    }

    // ----------------------------------------------------------------------------- assertions

    private List<AssertionSettings> readAssertions(List<TenantEntry> tenants) {
      List<AssertionSettings> out = new ArrayList<>();
      if (!own.has("assertions")) {
        return out;
      }
      Optional<List<ConfigReader>> list =
          own.getObjectList("assertions", "a list of assertions { metric, stat, lt | gt | ... }");
      if (list.isEmpty()) {
        return out;
      }
      Map<String, TenantEntry> byName = new HashMap<>();
      for (TenantEntry t : tenants) {
        if (t.name != null) {
          byName.putIfAbsent(t.name, t);
        }
      }
      for (int i = 0; i < list.get().size(); i++) {
        ConfigReader a = list.get().get(i);
        if (a != null) {
          readAssertion(i, a, tenants, byName).ifPresent(out::add);
        }
      }
      return out;
    }

    private Optional<AssertionSettings> readAssertion(
        int index, ConfigReader a, List<TenantEntry> tenants, Map<String, TenantEntry> byName) {
      int mark = a.mark();
      a.checkKnownKeys(ASSERTION_KEYS, "an assertion");
      Optional<String> metricText =
          a.getString("metric", MetricCatalog::isWellFormed, "a metric name such as map.latency.modeled or *.latency.modeled");
      List<MetricCatalog.Metric> metrics = List.of();
      if (metricText.isPresent()) {
        metrics = MetricCatalog.match(metricText.get());
        if (metrics.isEmpty()) {
          a.problem("metric", "no such metric (iommulab list --metrics lists them)");
        }
      }
      Optional<Stat> stat = a.getString("stat", t -> Stat.parse(t).isPresent(), Stat.EXPECTED).map(t -> Stat.parse(t).get());
      Optional<String> tenant = Optional.empty();
      if (a.has("tenant")) {
        tenant = a.getString("tenant", t -> t.equals(AssertionSettings.EACH_TENANT) || NAME_OK.test(t),
            "a tenant name, or \"*\" for each tenant");
        if (tenantsRead && tenant.isPresent() && !tenant.get().equals(AssertionSettings.EACH_TENANT)
            && !byName.containsKey(tenant.get())) {
          a.problem("tenant", "no such tenant (" + known("tenants", byName.keySet().stream().sorted().toList()) + ")");
        }
      }
      long after = 0;
      if (a.has("after")) {
        after = a.getNanos("after", AT).orElse(-1);
        if (after > 0 && durationNs > 0 && after >= durationNs) {
          a.entryProblem("after", "must be before the end of the run (duration = " + Units.nanos(durationNs) + ")");
        }
      }
      if (stat.isPresent()) {
        for (MetricCatalog.Metric m : metrics) {
          String why = statProblem(m, stat.get());
          if (why != null) {
            a.entryProblem("stat", why);
            break;
          }
        }
      }
      // Which operations the scope performs: an assertion on an operation nobody does is a typo.
      if (tenantsRead && !metrics.isEmpty()
          && (tenant.isEmpty() || !tenant.get().equals(AssertionSettings.EACH_TENANT))) {
        List<TenantEntry> scope = tenant.isEmpty() ? tenants
            : byName.containsKey(tenant.get()) ? List.of(byName.get(tenant.get())) : List.of();
        boolean any = false;
        for (MetricCatalog.Metric m : metrics) {
          any |= m.operation().isEmpty()
              || scope.stream().anyMatch(t -> t.workload != null && t.workload.operations().contains(m.operation().get()));
        }
        boolean known = scope.stream().allMatch(t -> t.workload != null);
        if (!any && known && !scope.isEmpty()) {
          String op = metrics.get(0).operation().map(Operation::configName).orElse("");
          a.entryProblem("metric", tenant.isEmpty()
              ? "no tenant's workload performs " + op + " operations"
              : "the workload of tenant " + tenant.get() + " performs no " + op + " operations");
        }
      }
      List<String> given = new ArrayList<>();
      for (String k : COMPARATOR_KEYS) {
        if (a.has(k)) {
          given.add(k);
        }
      }
      Comparator comparator = null;
      double low = 0;
      double high = 0;
      boolean latency = stat.isPresent() && stat.get().isLatencyValued()
          && !metrics.isEmpty() && metrics.get(0).kind() == MetricCatalog.Kind.LATENCY;
      if (given.size() != 1) {
        problems.add(a.path() + (given.isEmpty()
            ? ": needs one of lt, lte, gt, gte, eq, between (the comparison)"
            : ": gives " + String.join(" and ", given) + "; give only one of lt, lte, gt, gte, eq, between"));
      } else if (!metrics.isEmpty() && stat.isPresent()) {
        // Without a known metric and statistic the kind of bound (duration or number) is unknown.
        String key = given.get(0);
        comparator = Comparator.valueOf(key.toUpperCase(java.util.Locale.ROOT));
        if (comparator == Comparator.BETWEEN) {
          double[] bounds = bounds(a, latency);
          if (bounds != null) {
            low = bounds[0];
            high = bounds[1];
          }
        } else {
          OptionalDouble v = bound(a, key, latency);
          low = v.orElse(0);
          high = low;
        }
      }
      if (a.failedSince(mark)) {
        return Optional.empty();
      }
      return Optional.of(new AssertionSettings(index, metricText.get(), tenant, stat.get(), comparator, low, high,
          Duration.ofNanos(after), latency));
    }

    /** Why {@code stat} does not apply to {@code m}, or null. */
    private static String statProblem(MetricCatalog.Metric m, Stat stat) {
      if (m.kind() == MetricCatalog.Kind.COUNTER) {
        if (stat.kind() == Stat.Kind.RATIO && m.ratioBase().isEmpty()) {
          return "ratio needs a metric with a base (" + m.name() + " has none; dma.faults, faults.lost,"
              + " wbinvd.emulated and <op>.errors have one)";
        }
        if (stat.kind() != Stat.Kind.COUNT && stat.kind() != Stat.Kind.RATE && stat.kind() != Stat.Kind.RATIO) {
          return m.name() + " is a counter: its statistics are count, rate and ratio";
        }
        return null;
      }
      if (stat.kind() == Stat.Kind.RATIO) {
        return m.name() + " is a latency: its statistics are pN, min, max, mean, count and rate";
      }
      return null;
    }

    private OptionalDouble bound(ConfigReader a, String key, boolean latency) {
      if (latency) {
        OptionalLong ns = a.getNanos(key, AT);
        return ns.isPresent() ? OptionalDouble.of(ns.getAsLong()) : OptionalDouble.empty();
      }
      return a.getDouble(key, 0, Double.MAX_VALUE, "a number of at least 0");
    }

    private double[] bounds(ConfigReader a, boolean latency) {
      String what = latency ? "[low, high] as durations, such as [10us, 20us]" : "[low, high], such as [10, 20]";
      if (a.typeOf("between").orElse(null) != ConfigValueType.LIST) {
        a.problem("between", "must be " + what);
        return null;
      }
      double[] out = new double[2];
      List<Long> ns = null;
      List<String> numbers = null;
      if (latency) {
        ns = a.getNanosList("between", AT).orElse(null);
      } else {
        numbers = a.getStringList("between", t -> parseNonNegative(t) >= 0, "a number of at least 0").orElse(null);
      }
      int size = latency ? (ns == null ? -1 : ns.size()) : (numbers == null ? -1 : numbers.size());
      if (size < 0) {
        return null;
      }
      if (size != 2) {
        a.problem("between", "must be " + what);
        return null;
      }
      for (int i = 0; i < 2; i++) {
        out[i] = latency ? ns.get(i) : parseNonNegative(numbers.get(i));
      }
      if (out[0] > out[1]) {
        a.problem("between", "the low bound must not exceed the high bound");
        return null;
      }
      return out;
    }

    private static double parseNonNegative(String t) {
      try {
        double d = Double.parseDouble(t);
        return Double.isFinite(d) && d >= 0 ? d : -1;
      } catch (NumberFormatException e) {
        return -1;
      }
    }

    /** Reports the keys of {@code r}'s own object that are not in {@code keys}. */
    private static void checkOwnKeys(ConfigReader r, List<String> keys, String what) {
      r.checkKnownKeys(keys, what);
    }

    // ------------------------------------------------------------------------------ resolved

    /**
     * The resolved configuration: the scenario with every default filled in and the {@code
     * iommulab} sections the host runs with (the seed, strict-unmap and the invalidation
     * pipeline's mode set from the scenario).
     */
    private Config resolved(IommulabSettings host, long seed, InvalidationMode invalidation) {
      Config d = base.getConfig(ScenarioSettings.DEFAULTS_PATH);
      Config sc = file.getConfig(ScenarioSettings.PATH);
      Config top = sc.withFallback(d.withoutPath("tenant").withoutPath("device-slot"));
      List<ConfigValue> tenants = new ArrayList<>();
      Config tenantDefaults = d.getConfig("tenant");
      Config slotDefaults = d.getConfig("device-slot");
      for (Config t : sc.getConfigList("tenants")) {
        Config full = t.withFallback(tenantDefaults);
        List<ConfigValue> slots = new ArrayList<>();
        for (Config slot : t.getConfigList("devices")) {
          slots.add(slot.withFallback(slotDefaults).root());
        }
        full = full.withValue("devices", ConfigValueFactory.fromIterable(slots));
        tenants.add(full.root());
      }
      top = top.withValue("tenants", ConfigValueFactory.fromIterable(tenants));
      if (!top.hasPath("assertions")) {
        top = top.withValue("assertions", ConfigValueFactory.fromIterable(List.of()));
      }
      Config hostSection = base.hasPath("iommulab.host") ? base.getConfig("iommulab.host") : ConfigFactory.empty();
      hostSection = hostSection
          .withValue("seed", ConfigValueFactory.fromAnyRef(seed))
          .withValue("strict-unmap", ConfigValueFactory.fromAnyRef(invalidation == InvalidationMode.STRICT));
      ConfigObject iommulab = ConfigFactory.empty()
          .withValue("topology", topologyConfig.root())
          .withValue("uapi", merged("uapi", UapiSettings.PATH).root())
          .withValue("cost-model", merged("cost-model", CostModelSettings.PATH).root())
          .withValue("pipeline", merged("pipeline", "iommulab.pipeline")
              .withValue("invalidation.mode", ConfigValueFactory.fromAnyRef(invalidation.configName())).root())
          .withValue("host", hostSection.root())
          .root();
      return ConfigFactory.empty()
          .withValue(ScenarioSettings.PATH, top.root())
          .withValue("iommulab", iommulab);
    }
  }

  // ----------------------------------------------------------------------------------- entries

  /** A tenant as far as it could be read; {@code valid} false once anything about it failed. */
  private static final class TenantEntry {
    final ConfigReader r;
    boolean valid;
    String name;
    int vms;
    int firstVmId = 1;
    long memory;
    long backing;
    List<SlotEntry> slots;
    DomainLayout domains;
    int pasids;
    boolean nested;
    int pamuWindows;
    WorkloadSettings workload;
    List<List<String>> vmDevices;

    TenantEntry(ConfigReader r) {
      this.r = r;
    }

    int vmId(int i) {
      return firstVmId + i;
    }

    TenantSettings build() {
      List<DeviceSlot> s = slots.stream().map(x -> x.slot).toList();
      return new TenantSettings(
          name, vms, firstVmId, memory, backing, s, domains, pasids, nested, pamuWindows, workload, vmDevices);
    }
  }

  private record SlotEntry(ConfigReader r, DeviceSlot slot) {}
}
