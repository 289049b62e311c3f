package io.iommulab.config;

/**
 * Geometry of one unit's IOTLB: a set-associative cache of {@code sets × ways} entries.
 *
 * @param sets number of sets, a power of two
 * @param ways entries per set
 * @param eviction replacement policy within a set
 */
public record IotlbSettings(int sets, int ways, Eviction eviction) {

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

    public String configName() {
      return configName;
    }
  }

  public int capacity() {
    return sets * ways;
  }
}
