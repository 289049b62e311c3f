package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.ConfigReader.Problems;
import io.iommulab.config.ConfigReader.Rule;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * INTERNAL API. Reads {@code iommulab.topology}: per-kind unit defaults, units, device defaults,
 * listed devices, device pools and MSI banks, then checks the rules that span entries, and only
 * when nothing at all is wrong builds the {@link TopologySettings}.
 *
 * <p>Rules that span entries, each reported at the path of the offending entry (a pool's conflict
 * at the pool key that produces it, once per pool and rule):
 *
 * <ul>
 *   <li>unit names are unique; device names (listed and pool members) are unique;
 *   <li>a device's {@code unit} names an existing unit;
 *   <li>a RID is unique per unit (different units are different PCI segments);
 *   <li>a LIODN is present exactly for devices behind a PAMU, below that PAMU's {@code
 *       ppaact-entries}, and two devices share a LIODN only within one group. LIODNs are checked
 *       across all PAMU units: the PAMUs of one SoC share one PPAACT ({@code fsl_pamu.c});
 *   <li>all devices of a group sit behind the same unit (a group is the smallest set the IOMMU
 *       can isolate, so it cannot straddle two IOMMUs);
 *   <li>a device behind a PAMU has no PASIDs and no ATS;
 *   <li>MSI banks are 3 or 4 and their MSIIR pages distinct.
 * </ul>
 *
 * <p>Pools expand to {@code count} devices {@code <prefix>-0 .. <prefix>-(count-1)} with
 * consecutive packed RIDs, groups and LIODNs; RIDs past {@code ff:1f.7} are a problem of the pool.
 * Checks on members are linear in the number of devices (hash maps and per-unit RID tables): a
 * million devices (16 units × 62,500) validate and expand in about 2 s on two cores, and the
 * result holds about 150 MB.
 */
final class TopologyBuilder {

  static final String PATH = "iommulab.topology";

  static final Pattern NAME = Pattern.compile("[a-z][a-z0-9-]*");
  static final String NAME_EXPECTED = "a name matching [a-z][a-z0-9-]*";
  static final String UNIT_REF_EXPECTED = "the name of a unit in units";
  static final String RID_EXPECTED = "a PCI requester id \"bus:dev.fn\"";
  static final String RID_MUST_BE =
      RID_EXPECTED + " (hex bus 00-ff, device 00-1f, function 0-7)";

  static final List<String> TOPOLOGY_KEYS =
      List.of(
          "host-memory",
          "unit-defaults",
          "units",
          "device-defaults",
          "devices",
          "device-pools",
          "msi-bank-defaults",
          "msi-banks");
  static final List<String> DEVICE_FIELD_KEYS =
      List.of(
          "pasid-bits", "ats", "atc-entries", "pri", "msi-vectors", "no-snoop", "virtual-function");
  static final List<String> DEVICE_KEYS =
      concat(List.of("name", "unit", "rid", "liodn", "group"), DEVICE_FIELD_KEYS);
  static final List<String> POOL_KEYS =
      concat(
          List.of("name-prefix", "count", "unit", "first-rid", "first-group", "first-liodn"),
          DEVICE_FIELD_KEYS);

  static final long MIB = 1L << 20;
  static final Rule HOST_MEMORY =
      new Rule(
          v -> v >= 64 * MIB && v <= 64L << 40 && v % (2 * MIB) == 0,
          "must be a multiple of 2MiB from 64MiB to 64TiB");
  /** The largest PPAACT (ppaact-entries is at most 4096): a LIODN is at most 4095. */
  static final int MAX_LIODN = 4095;
  static final int MAX_POOL = 1_000_000;
  static final int MAX_RID = 0xffff;

  private static final Predicate<String> NAME_OK = s -> NAME.matcher(s).matches();

  private TopologyBuilder() {}

  // ------------------------------------------------------------------------------ entry points

  static TopologySettings topologyFromConfig(Config topology) {
    ConfigReader r = ConfigReader.of(topology, PATH);
    Optional<TopologySettings> settings = read(r);
    r.problems().throwIfAny();
    return settings.orElseThrow();
  }

  static IommuUnitSettings unitFromConfig(Config unit) {
    Problems problems = new Problems();
    Map<UnitKind, ConfigReader> defaults = new EnumMap<>(UnitKind.class);
    for (UnitKind kind : UnitKind.values()) {
      defaults.put(kind, referenceSection("unit-defaults." + kind.configName(), problems));
    }
    UnitEntry entry = readUnit(ConfigReader.of(unit, "", problems), defaults);
    problems.throwIfAny();
    return entry.settings();
  }

  static DeviceSettings deviceFromConfig(Config device) {
    Problems problems = new Problems();
    Source s =
        readDevice(
            ConfigReader.of(device, "", problems), referenceSection("device-defaults", problems));
    problems.throwIfAny();
    return toSettings(s, 0, s.name);
  }

  /** A section of the shipped reference.conf under {@code iommulab.topology}, named by its path. */
  static ConfigReader referenceSection(String key, Problems problems) {
    String path = PATH + "." + key;
    return ConfigReader.of(ConfigFactory.defaultReference().getConfig(path), path, problems);
  }

  // ------------------------------------------------------------------------------- the section

  static Optional<TopologySettings> read(ConfigReader t) {
    int mark = t.mark();
    t.checkKnownKeys(TOPOLOGY_KEYS, "the topology");
    long hostMemory = t.getBytes("host-memory", HOST_MEMORY).orElse(0);

    Map<UnitKind, ConfigReader> unitDefaults = readUnitDefaults(t);
    List<UnitEntry> units = readUnits(t, unitDefaults);

    ConfigReader deviceDefaults = t.getObject("device-defaults").orElse(null);
    if (deviceDefaults != null) {
      deviceDefaults.checkKnownKeys(DEVICE_FIELD_KEYS, "device-defaults");
      readFields(deviceDefaults.partial());
    }
    List<Source> sources = new ArrayList<>();
    for (ConfigReader d : t.getObjectList("devices", "a list of devices").orElse(List.of())) {
      if (d != null) {
        sources.add(readDevice(d, deviceDefaults));
      }
    }
    if (t.has("device-pools")) {
      for (ConfigReader p : t.getObjectList("device-pools", "a list of device pools").get()) {
        if (p != null) {
          sources.add(readPool(p, deviceDefaults));
        }
      }
    }
    List<MsiBankSettings> banks = readMsiBanks(t);

    resolveUnits(units, sources);
    checkMembers(units, sources);

    if (t.failedSince(mark)) {
      return Optional.empty();
    }
    List<IommuUnitSettings> unitSettings = new ArrayList<>(units.size());
    for (UnitEntry u : units) {
      unitSettings.add(u.settings());
    }
    return Optional.of(new TopologySettings(hostMemory, unitSettings, expand(sources), banks));
  }

  // ------------------------------------------------------------------------------------- units

  /** One entry of {@code units}, as far as it could be read; settings null when anything failed. */
  private record UnitEntry(
      ConfigReader reader, String name, UnitKind kind, IommuUnitSettings settings) {}

  private static Map<UnitKind, ConfigReader> readUnitDefaults(ConfigReader t) {
    Map<UnitKind, ConfigReader> defaults = new EnumMap<>(UnitKind.class);
    Optional<ConfigReader> all = t.getObject("unit-defaults");
    if (all.isEmpty()) {
      return defaults;
    }
    List<String> kinds = new ArrayList<>();
    for (UnitKind kind : UnitKind.values()) {
      kinds.add(kind.configName());
    }
    all.get().checkKnownKeys(kinds, "unit-defaults");
    for (UnitKind kind : UnitKind.values()) {
      Optional<ConfigReader> d = all.get().getObject(kind.configName());
      if (d.isPresent()) {
        d.get().checkKnownKeys(fieldKeys(kind), "unit-defaults." + kind.configName());
        // Validated here even if no unit uses it; partial, since a unit may give what it omits.
        readUnitFields(d.get().partial(), null, kind);
        defaults.put(kind, d.get());
      }
    }
    return defaults;
  }

  private static List<UnitEntry> readUnits(ConfigReader t, Map<UnitKind, ConfigReader> defaults) {
    List<UnitEntry> units = new ArrayList<>();
    Map<String, UnitEntry> byName = new HashMap<>();
    for (ConfigReader u :
        t.getObjectList("units", "a list of units { name, kind, ... }").orElse(List.of())) {
      if (u == null) {
        continue;
      }
      UnitEntry entry = readUnit(u, defaults);
      if (entry.name() != null) {
        UnitEntry first = byName.putIfAbsent(entry.name(), entry);
        if (first != null) {
          u.entryProblem("name", "duplicate unit name, first used by " + label(first.reader()));
        }
      }
      units.add(entry);
    }
    return units;
  }

  private static UnitEntry readUnit(ConfigReader entry, Map<UnitKind, ConfigReader> defaults) {
    int mark = entry.mark();
    String name = entry.getString("name", NAME_OK, NAME_EXPECTED).orElse(null);
    UnitKind kind = entry.getEnum("kind", UnitKind.values(), UnitKind::configName).orElse(null);
    if (kind == null) {
      // Without a kind there is no key list to check against and no defaults to apply.
      return new UnitEntry(entry, name, null, null);
    }
    entry.checkKnownKeys(
        concat(List.of("name", "kind"), fieldKeys(kind)), "a " + kind.configName() + " unit");
    ConfigReader r = defaults.containsKey(kind) ? entry.withFallback(defaults.get(kind)) : entry;
    IommuUnitSettings settings = readUnitFields(r, name, kind).orElse(null);
    return new UnitEntry(entry, name, kind, entry.failedSince(mark) ? null : settings);
  }

  private static Optional<IommuUnitSettings> readUnitFields(
      ConfigReader r, String name, UnitKind kind) {
    if (kind.isPaging()) {
      return PagingUnitSettings.read(r, name, kind).map(u -> u);
    }
    return PamuUnitSettings.read(r, name).map(u -> u);
  }

  private static List<String> fieldKeys(UnitKind kind) {
    return kind.isPaging() ? PagingUnitSettings.FIELD_KEYS : PamuUnitSettings.FIELD_KEYS;
  }

  // ------------------------------------------------------------------------ devices and pools

  /** The device fields shared by devices, pools and device-defaults; null where invalid. */
  private record Fields(
      Integer pasidBits,
      Boolean ats,
      Integer atcEntries,
      Boolean pri,
      Integer msiVectors,
      Boolean noSnoop,
      Boolean virtualFunction) {}

  /** A listed device (one member) or a pool (count members), as far as it could be read. */
  private static final class Source {
    final ConfigReader r;
    final boolean pool;
    /** {@code devices[3]} or {@code device-pools[1]}: how other problems refer to it. */
    final String label;

    String name;
    String unitName;
    int unit = -1;
    UnitKind unitKind;
    int count = 1;
    int firstRid = -1;
    int firstGroup = -1;
    boolean liodnGiven;
    int firstLiodn = -1;
    Fields fields;
    String[] memberNames;
    /** Bit per {@link Conflict} already reported for this pool: one report per pool and rule. */
    int reported;

    Source(ConfigReader r, boolean pool) {
      this.r = r;
      this.pool = pool;
      this.label = label(r);
    }

    String key(String listedKey, String poolKey) {
      return pool ? poolKey : listedKey;
    }
  }

  private enum Conflict {
    NAME,
    RID,
    GROUP,
    LIODN
  }

  private static Source readDevice(ConfigReader entry, ConfigReader defaults) {
    entry.checkKnownKeys(DEVICE_KEYS, "a device");
    ConfigReader r = defaults == null ? entry : entry.withFallback(defaults);
    Source s = new Source(r, false);
    // Identity keys come from the entry alone: device-defaults may not give them.
    s.name = entry.getString("name", NAME_OK, NAME_EXPECTED).orElse(null);
    s.unitName = entry.getString("unit", NAME_OK, UNIT_REF_EXPECTED).orElse(null);
    s.firstRid = readRid(entry, "rid");
    s.liodnGiven = entry.has("liodn");
    if (s.liodnGiven) {
      s.firstLiodn = entry.getInt("liodn", Rule.between(0, MAX_LIODN)).orElse(-1);
    }
    s.firstGroup = entry.getInt("group", Rule.atLeast(0)).orElse(-1);
    s.fields = readFields(r);
    return s;
  }

  private static Source readPool(ConfigReader entry, ConfigReader defaults) {
    entry.checkKnownKeys(POOL_KEYS, "a device pool");
    ConfigReader r = defaults == null ? entry : entry.withFallback(defaults);
    Source s = new Source(r, true);
    s.name = entry.getString("name-prefix", NAME_OK, NAME_EXPECTED).orElse(null);
    s.count = entry.getInt("count", Rule.between(1, MAX_POOL)).orElse(-1);
    s.unitName = entry.getString("unit", NAME_OK, UNIT_REF_EXPECTED).orElse(null);
    s.firstRid = readRid(entry, "first-rid");
    s.firstGroup = entry.getInt("first-group", Rule.atLeast(0)).orElse(-1);
    s.liodnGiven = entry.has("first-liodn");
    if (s.liodnGiven) {
      s.firstLiodn = entry.getInt("first-liodn", Rule.between(0, MAX_LIODN)).orElse(-1);
    }
    s.fields = readFields(r);
    if (s.count > 0 && s.firstRid >= 0 && s.firstRid + (long) s.count - 1 > MAX_RID) {
      r.entryProblem(
          "count",
          "the pool's RIDs from "
              + Rids.format(s.firstRid)
              + " run past ff:1f.7 (at most "
              + (MAX_RID + 1 - s.firstRid)
              + " devices fit)");
      s.firstRid = -1;
    }
    if (s.count > 0 && s.firstGroup >= 0 && s.firstGroup + (long) s.count - 1 > Integer.MAX_VALUE) {
      r.entryProblem(
          "count",
          "the pool's groups from " + s.firstGroup + " run past " + Integer.MAX_VALUE);
      s.firstGroup = -1;
    }
    return s;
  }

  private static int readRid(ConfigReader r, String key) {
    Optional<String> rid =
        r.getString(key, text -> Rids.parse(text).isPresent(), RID_EXPECTED, RID_MUST_BE);
    return rid.isPresent() ? Rids.parse(rid.get()).getAsInt() : -1;
  }

  private static Fields readFields(ConfigReader r) {
    Integer pasidBits = boxed(r.getInt("pasid-bits", Rule.between(0, 20)));
    Boolean ats = r.getBoolean("ats").orElse(null);
    Integer atcEntries = boxed(r.getInt("atc-entries", Rule.between(1, 4096)));
    Boolean pri = r.getBoolean("pri").orElse(null);
    Integer msiVectors = boxed(r.getInt("msi-vectors", Rule.between(0, 2048)));
    Boolean noSnoop = r.getBoolean("no-snoop").orElse(null);
    Boolean virtualFunction = r.getBoolean("virtual-function").orElse(null);
    if (Boolean.TRUE.equals(pri) && Boolean.FALSE.equals(ats)) {
      r.entryProblem(
          "pri", "requires ats = on (PRI extends ATS: a page request follows a failed translation)");
    }
    return new Fields(pasidBits, ats, atcEntries, pri, msiVectors, noSnoop, virtualFunction);
  }

  private static Integer boxed(OptionalInt v) {
    return v.isPresent() ? v.getAsInt() : null;
  }

  // ---------------------------------------------------------------------------- cross-entry

  /** Resolves each device's unit and checks the rules that depend on the unit's kind. */
  private static void resolveUnits(List<UnitEntry> units, List<Source> sources) {
    Map<String, Integer> byName = new HashMap<>();
    List<String> names = new ArrayList<>();
    for (int i = 0; i < units.size(); i++) {
      String name = units.get(i).name();
      if (name != null && byName.putIfAbsent(name, i) == null) {
        names.add(name);
      }
    }
    String known = names.isEmpty() ? "there are none" : "units are " + String.join(", ", names);
    for (Source s : sources) {
      if (s.unitName == null) {
        continue;
      }
      Integer u = byName.get(s.unitName);
      if (u == null) {
        s.r.entryProblem("unit", "no such unit (" + known + ")");
        continue;
      }
      s.unit = u;
      UnitEntry unit = units.get(u);
      s.unitKind = unit.kind();
      if (unit.kind() == UnitKind.PAMU) {
        checkPamuDevice(s, unit);
      } else if (unit.kind() != null && s.liodnGiven) {
        s.r.entryProblem(
            s.key("liodn", "first-liodn"),
            "only a device behind a PAMU unit has a LIODN ("
                + unit.name()
                + " is a "
                + unit.kind().configName()
                + " unit)");
        s.firstLiodn = -1;
      }
    }
  }

  private static void checkPamuDevice(Source s, UnitEntry unit) {
    PamuUnitSettings pamu =
        unit.settings() instanceof PamuUnitSettings p ? p : null;
    String liodnKey = s.key("liodn", "first-liodn");
    String behind = "behind PAMU unit " + unit.name();
    if (!s.liodnGiven) {
      s.r.missingBecause(
          liodnKey,
          behind,
          pamu == null ? "a LIODN" : "a LIODN from 0 to " + (pamu.ppaactEntries() - 1));
    } else if (s.firstLiodn >= 0 && pamu != null && s.count > 0) {
      int ppaact = pamu.ppaactEntries();
      long last = s.firstLiodn + (long) s.count - 1;
      if (last >= ppaact) {
        String why = " (" + unit.name() + " has ppaact-entries = " + ppaact + ")";
        if (s.pool) {
          s.r.entryProblem(
              liodnKey,
              "the pool's " + s.count + " LIODNs run past " + (ppaact - 1) + why);
        } else {
          s.r.entryProblem(liodnKey, "must be from 0 to " + (ppaact - 1) + why);
        }
        s.firstLiodn = -1;
      }
    }
    if (s.fields.pasidBits() != null && s.fields.pasidBits() > 0) {
      s.r.entryProblem("pasid-bits", "must be 0 " + behind + " (a PAMU has no PASIDs)");
    }
    if (Boolean.TRUE.equals(s.fields.ats())) {
      s.r.entryProblem("ats", "must be off " + behind + " (a PAMU has no ATS)");
    }
  }

  /**
   * Name uniqueness, RID uniqueness per unit, group-to-unit consistency and LIODN sharing, over
   * every member of every source. Owners are packed {@code source << 32 | member}.
   */
  private static void checkMembers(List<UnitEntry> units, List<Source> sources) {
    Map<String, Long> nameOwner = new HashMap<>();
    long[][] ridOwner = new long[units.size()][];
    Map<Integer, Long> groupOwner = new HashMap<>();
    long[] liodnOwner = new long[MAX_LIODN + 1];
    Arrays.fill(liodnOwner, -1);

    for (int si = 0; si < sources.size(); si++) {
      Source s = sources.get(si);
      if (s.count < 1) {
        continue;
      }
      if (s.name != null) {
        s.memberNames = new String[s.count];
      }
      for (int m = 0; m < s.count; m++) {
        long me = (long) si << 32 | m;
        if (s.name != null) {
          String name = s.pool ? s.name + "-" + m : s.name;
          s.memberNames[m] = name;
          Long first = nameOwner.putIfAbsent(name, me);
          if (first != null) {
            String by = owner(sources, first);
            conflict(
                s,
                Conflict.NAME,
                "name",
                "duplicate device name, first used by " + by,
                "name-prefix",
                memberLabel(s, m) + " duplicates the name of " + by);
          }
        }
        if (s.unit >= 0 && s.firstRid >= 0) {
          long[] table = ridOwner[s.unit];
          if (table == null) {
            table = new long[MAX_RID + 1];
            Arrays.fill(table, -1);
            ridOwner[s.unit] = table;
          }
          int rid = s.firstRid + m;
          if (table[rid] >= 0) {
            String used =
                "already used on "
                    + units.get(s.unit).name()
                    + " by "
                    + owner(sources, table[rid])
                    + "; a RID is unique per unit";
            conflict(
                s,
                Conflict.RID,
                "rid",
                used,
                "first-rid",
                memberLabel(s, m) + " gets rid " + Rids.format(rid) + ", " + used);
          } else {
            table[rid] = me;
          }
        }
        int group = s.firstGroup >= 0 ? s.firstGroup + m : -1;
        if (s.unit >= 0 && group >= 0) {
          Long first = groupOwner.putIfAbsent(group, me);
          if (first != null) {
            Source other = sources.get((int) (first >>> 32));
            if (other.unit != s.unit) {
              String sits =
                  " already sits behind "
                      + units.get(other.unit).name()
                      + " with "
                      + owner(sources, first)
                      + ", but ";
              String rule =
                  " is behind "
                      + units.get(s.unit).name()
                      + "; all devices of a group sit behind one unit";
              conflict(
                  s,
                  Conflict.GROUP,
                  "group",
                  "group " + group + sits + "this device" + rule,
                  "first-group",
                  memberLabel(s, m) + " gets group " + group + ", which" + sits + "the pool" + rule);
            }
          }
        }
        if (s.firstLiodn >= 0 && s.unitKind == UnitKind.PAMU && group >= 0) {
          int liodn = s.firstLiodn + m;
          long first = liodnOwner[liodn];
          if (first < 0) {
            liodnOwner[liodn] = me;
          } else {
            Source other = sources.get((int) (first >>> 32));
            int otherGroup = other.firstGroup + (int) first;
            if (otherGroup != group) {
              String used =
                  "already used by "
                      + owner(sources, first)
                      + " in group "
                      + otherGroup
                      + "; devices may share a LIODN only within one group";
              conflict(
                  s,
                  Conflict.LIODN,
                  "liodn",
                  used,
                  "first-liodn",
                  memberLabel(s, m) + " gets liodn " + liodn + ", " + used);
            }
          }
        }
      }
    }
  }

  /** Reports a member's conflict: a listed device at its key, a pool once per rule. */
  private static void conflict(
      Source s, Conflict rule, String listedKey, String listedText, String poolKey, String poolText) {
    if (!s.pool) {
      s.r.entryProblem(listedKey, listedText);
      return;
    }
    int bit = 1 << rule.ordinal();
    if ((s.reported & bit) == 0) {
      s.reported |= bit;
      s.r.entryProblem(poolKey, poolText);
    }
  }

  /** How a pool's problem names one of its members: {@code member nic-5}. */
  private static String memberLabel(Source s, int m) {
    return "member " + (s.name != null ? s.name + "-" + m : "#" + m);
  }

  /** {@code devices[0] (nic0)} or {@code device-pools[1] member nic-5}. */
  private static String owner(List<Source> sources, long owner) {
    Source s = sources.get((int) (owner >>> 32));
    int member = (int) owner;
    String name = s.memberNames != null ? s.memberNames[member] : null;
    if (s.pool) {
      return s.label + " member " + (name != null ? name : "#" + member);
    }
    return name != null ? s.label + " (" + name + ")" : s.label;
  }

  // ---------------------------------------------------------------------------------- results

  private static List<DeviceSettings> expand(List<Source> sources) {
    int total = 0;
    for (Source s : sources) {
      total = Math.addExact(total, s.count);
    }
    List<DeviceSettings> devices = new ArrayList<>(total);
    for (Source s : sources) {
      for (int m = 0; m < s.count; m++) {
        devices.add(toSettings(s, m, s.memberNames[m]));
      }
    }
    return devices;
  }

  private static DeviceSettings toSettings(Source s, int member, String name) {
    Fields f = s.fields;
    return new DeviceSettings(
        name,
        s.unitName,
        Rids.format(s.firstRid + member),
        s.liodnGiven ? OptionalInt.of(s.firstLiodn + member) : OptionalInt.empty(),
        s.firstGroup + member,
        f.pasidBits(),
        f.ats(),
        f.atcEntries(),
        f.pri(),
        f.msiVectors(),
        f.noSnoop(),
        f.virtualFunction());
  }

  // ------------------------------------------------------------------------------- MSI banks

  private static List<MsiBankSettings> readMsiBanks(ConfigReader t) {
    ConfigReader defaults = t.getObject("msi-bank-defaults").orElse(null);
    if (defaults != null) {
      defaults.checkKnownKeys(MsiBankSettings.DEFAULT_KEYS, "msi-bank-defaults");
      defaults.partial().getInt("vectors", MsiBankSettings.VECTORS);
    }
    Optional<List<ConfigReader>> entries =
        t.getObjectList("msi-banks", "a list of 3 or 4 MSI banks { msiir-address, vectors }");
    if (entries.isEmpty()) {
      return List.of();
    }
    int n = entries.get().size();
    if (n < 3 || n > 4) {
      t.problemWithValue(
          "msi-banks",
          n + (n == 1 ? " bank" : " banks"),
          "must have 3 or 4 banks (an MPIC has 3, later parts 4)");
    }
    List<MsiBankSettings> banks = new ArrayList<>();
    Map<Long, ConfigReader> byAddress = new HashMap<>();
    for (int i = 0; i < n; i++) {
      ConfigReader b = entries.get().get(i);
      if (b == null) {
        continue;
      }
      ConfigReader r = defaults == null ? b : b.withFallback(defaults);
      Optional<MsiBankSettings> bank = MsiBankSettings.read(r, i);
      if (bank.isPresent()) {
        ConfigReader first = byAddress.putIfAbsent(bank.get().msiirAddress(), b);
        if (first != null) {
          r.entryProblem(
              "msiir-address", "same MSIIR page as " + label(first) + "; banks must be distinct");
        }
        banks.add(bank.get());
      }
    }
    return banks;
  }

  // ---------------------------------------------------------------------------------- helpers

  /** The last segment of a reader's path: {@code units[2]}, {@code devices[3]}. */
  private static String label(ConfigReader r) {
    String path = r.path();
    return path.substring(path.lastIndexOf('.') + 1);
  }

  private static List<String> concat(List<String> a, List<String> b) {
    List<String> all = new ArrayList<>(a);
    all.addAll(b);
    return List.copyOf(all);
  }
}
