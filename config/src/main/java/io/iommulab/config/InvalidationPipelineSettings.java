package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * How each IOMMU unit's invalidation stream batches and completes invalidations: built from
 * {@code iommulab.pipeline.invalidation}. Every buffer of the stream is bounded by one of these
 * numbers; nothing in the pipeline grows with the offered load.
 *
 * <p>Modes (the kernel's {@code iommu.strict=1} and lazy / flush-queue modes):
 *
 * <ul>
 *   <li>{@link Mode#STRICT}: an unmap is answered only when every cache that may hold its
 *       translations dropped them (the sync completed and every device TLB acknowledged). Requests
 *       arriving while a batch executes are merged into the next one; no timer is involved.
 *   <li>{@link Mode#DEFERRED}: as the DMA API's flush queue ({@code drivers/iommu/dma-iommu.c},
 *       {@code IOVA_FQ_SIZE} 256 entries, {@code IOVA_FQ_TIMEOUT} 10 ms): an unmap is answered once
 *       its page-table entries are gone and its invalidation is queued; the queue is flushed when it
 *       holds {@code flushEntries} requests or {@code flushTimeoutNs} after its first entry, and
 *       the issuer is told when its flush completed. Detach, replace and user invalidations stay
 *       synchronous in both modes and flush the queue at once.
 * </ul>
 *
 * @param mode strict or deferred
 * @param ingressCapacity requests the unit's ingress queue holds before the unit parks new ones
 * @param maxParked requests the unit holds while its ingress queue is full; beyond that it refuses
 *     new invalidating commands with EBUSY before changing anything
 * @param maxBatch requests merged into one batch in strict mode
 * @param flushEntries requests in the deferred flush queue that force a flush (and its bound)
 * @param flushTimeoutNs time after the first queued request at which a deferred flush is due
 * @param staleHitChecks the stale-hit oracle: every IOTLB hit is cross-checked against the current
 *     page table (no modeled cost, some wall time); a stale hit is legal only while an
 *     invalidation covering it is pending
 */
public record InvalidationPipelineSettings(
    Mode mode,
    int ingressCapacity,
    int maxParked,
    int maxBatch,
    int flushEntries,
    long flushTimeoutNs,
    boolean staleHitChecks) {

  /** Where the section lives in a full config; problems are named under it. */
  public static final String PATH = "iommulab.pipeline.invalidation";

  static final List<String> KEYS =
      List.of(
          "mode", "ingress-capacity", "max-parked", "max-batch", "flush-entries", "flush-timeout",
          "stale-hit-checks");

  /** Largest value of the count settings: more than any ring a driver uses, still bounded. */
  static final int MAX_COUNT = 1 << 20;

  /** Longest flush timeout accepted: a deferred unmap must not hold its frames for minutes. */
  static final long MAX_TIMEOUT_NS = 10_000_000_000L;

  /** When the issuer of an unmap is answered. */
  public enum Mode {
    /** After the invalidation completed ({@code iommu.strict=1}). */
    STRICT,
    /** After the page-table change; the invalidation is batched in a flush queue (lazy mode). */
    DEFERRED;

    /** The name used in configuration: {@code strict}, {@code deferred}. */
    public String configName() {
      return name().toLowerCase(Locale.ROOT);
    }

    static Optional<Mode> parse(String text) {
      for (Mode m : values()) {
        if (m.configName().equals(text)) {
          return Optional.of(m);
        }
      }
      return Optional.empty();
    }
  }

  public InvalidationPipelineSettings {
    if (mode == null) {
      throw new IllegalArgumentException("mode: missing");
    }
    checkCount("ingress-capacity", ingressCapacity, 1);
    checkCount("max-parked", maxParked, 0);
    checkCount("max-batch", maxBatch, 1);
    checkCount("flush-entries", flushEntries, 1);
    if (flushTimeoutNs < 1 || flushTimeoutNs > MAX_TIMEOUT_NS) {
      throw new IllegalArgumentException(
          "flush-timeout = " + flushTimeoutNs + "ns: must be from 1ns to 10s");
    }
  }

  private static void checkCount(String key, int value, int min) {
    if (value < min || value > MAX_COUNT) {
      throw new IllegalArgumentException(
          key + " = " + value + ": must be from " + min + " to " + MAX_COUNT);
    }
  }

  /** The shipped defaults: strict, 1024-request ingress, Linux's 256 entries / 10 ms flush queue. */
  public static InvalidationPipelineSettings defaults() {
    return fromConfig(ConfigFactory.defaultReference().getConfig(PATH));
  }

  /** The shipped defaults in strict mode. */
  public static InvalidationPipelineSettings strict() {
    return defaults().withMode(Mode.STRICT);
  }

  /** The shipped defaults in deferred mode. */
  public static InvalidationPipelineSettings deferred() {
    return defaults().withMode(Mode.DEFERRED);
  }

  public InvalidationPipelineSettings withMode(Mode m) {
    return new InvalidationPipelineSettings(
        m, ingressCapacity, maxParked, maxBatch, flushEntries, flushTimeoutNs, staleHitChecks);
  }

  /** The same settings with the stale-hit oracle on or off. */
  public InvalidationPipelineSettings withStaleHitChecks(boolean on) {
    return new InvalidationPipelineSettings(
        mode, ingressCapacity, maxParked, maxBatch, flushEntries, flushTimeoutNs, on);
  }

  /**
   * Builds the settings from the {@code iommulab.pipeline.invalidation} section (for example
   * {@code ConfigFactory.load().getConfig(InvalidationPipelineSettings.PATH)}).
   *
   * @throws SettingsException listing every missing, mistyped, out-of-range or unknown key, by its
   *     full path
   */
  public static InvalidationPipelineSettings fromConfig(Config section) {
    ConfigReader r = ConfigReader.of(section, PATH);
    Optional<InvalidationPipelineSettings> s = read(r);
    r.problems().throwIfAny();
    return s.orElseThrow();
  }

  /**
   * The section of a full config ({@code ConfigFactory.load()}, or a parsed file over
   * {@code ConfigFactory.defaultReference()}); an unresolved config is resolved first.
   */
  public static InvalidationPipelineSettings fromRoot(Config root) {
    Config resolved;
    try {
      resolved = root.resolve();
    } catch (ConfigException e) {
      throw new SettingsException(List.of(e.getMessage()));
    }
    if (!resolved.hasPath(PATH)) {
      throw new SettingsException(
          List.of(PATH + ": missing (required, an object; is reference.conf on the classpath?)"));
    }
    return fromConfig(resolved.getConfig(PATH));
  }

  static Optional<InvalidationPipelineSettings> read(ConfigReader r) {
    int mark = r.mark();
    r.checkKnownKeys(KEYS, "the invalidation pipeline");
    Optional<Mode> mode =
        r.getString("mode", t -> Mode.parse(t).isPresent(), "strict or deferred")
            .flatMap(Mode::parse);
    ConfigReader.Rule count = ConfigReader.Rule.between(1, MAX_COUNT);
    int ingress = r.getInt("ingress-capacity", count).orElse(0);
    int parked = r.getInt("max-parked", ConfigReader.Rule.between(0, MAX_COUNT)).orElse(0);
    int batch = r.getInt("max-batch", count).orElse(0);
    int entries = r.getInt("flush-entries", count).orElse(0);
    long timeout =
        r.getNanos("flush-timeout", new ConfigReader.Rule(
                v -> v >= 1 && v <= MAX_TIMEOUT_NS, "must be from 1ns to 10s"))
            .orElse(0);
    boolean staleChecks = r.getBoolean("stale-hit-checks").orElse(true);
    if (r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(
        new InvalidationPipelineSettings(
            mode.orElseThrow(), ingress, parked, batch, entries, timeout, staleChecks));
  }
}
