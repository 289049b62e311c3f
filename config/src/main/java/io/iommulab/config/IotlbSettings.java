package io.iommulab.config;

import com.typesafe.config.Config;
import java.util.List;
import java.util.Optional;

/**
 * Geometry of one unit's IOTLB: a set-associative cache of {@code sets × ways} entries.
 *
 * <p>Invariants (checked on construction, and reported with key paths by {@link #fromConfig}):
 * {@code sets} is a power of two (the set index is a mask of the page number), {@code ways} is at
 * least 1. From config, sets are 1 to 65536 and ways 1 to 64.
 *
 * @param sets number of sets, a power of two
 * @param ways entries per set
 * @param eviction replacement policy within a set
 */
public record IotlbSettings(int sets, int ways, Eviction eviction) {

  static final List<String> KEYS = List.of("sets", "ways", "eviction");

  /** Replacement policy within one IOTLB set. */
  public enum Eviction {
    LRU("lru"),
    FIFO("fifo"),
    /** Seeded random victim; the seed comes from the owner, never from the clock. */
    RANDOM("random");

    private final String configName;

    Eviction(String configName) {
      this.configName = configName;
    }

    /** The spelling used in HOCON ({@code eviction = lru}). */
    public String configName() {
      return configName;
    }
  }

  public IotlbSettings {
    if (sets < 1 || Integer.bitCount(sets) != 1) {
      throw new IllegalArgumentException("sets = " + sets + ": must be a power of two");
    }
    if (ways < 1) {
      throw new IllegalArgumentException("ways = " + ways + ": must be at least 1");
    }
    if (eviction == null) {
      throw new IllegalArgumentException("eviction: must not be null");
    }
  }

  /**
   * Builds the geometry from one {@code iotlb} object. Problems are named relative to it ({@code
   * sets = 3: ...}); inside a topology they carry the full path.
   *
   * @throws SettingsException listing every problem
   */
  public static IotlbSettings fromConfig(Config iotlb) {
    ConfigReader r = ConfigReader.of(iotlb, "");
    Optional<IotlbSettings> settings = read(r);
    r.problems().throwIfAny();
    return settings.orElseThrow();
  }

  static Optional<IotlbSettings> read(ConfigReader r) {
    int mark = r.mark();
    r.checkKnownKeys(KEYS, "an iotlb");
    int sets = r.getInt("sets", ConfigReader.Rule.powerOfTwoBetween(1, 65536)).orElse(1);
    int ways = r.getInt("ways", ConfigReader.Rule.between(1, 64)).orElse(1);
    Optional<Eviction> eviction = r.getEnum("eviction", Eviction.values(), Eviction::configName);
    if (r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(new IotlbSettings(sets, ways, eviction.orElseThrow()));
  }

  /** Entries in the whole cache. */
  public int capacity() {
    return sets * ways;
  }
}
