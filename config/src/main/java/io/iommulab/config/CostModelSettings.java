package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.Optional;

/**
 * Modeled latencies in nanoseconds. These are the emulated hardware's costs, never measured wall
 * time. Contended resources (the invalidation queue, the page walker) add queueing on top.
 *
 * <p>Built from {@code iommulab.cost-model}, where each cost is a HOCON duration ({@code 25ns},
 * {@code 1us}); every cost is at least 0.
 *
 * @param iotlbHitNs an IOTLB hit
 * @param walkLevelNs one page-table level read during a walk
 * @param atcHitNs a device ATC hit (translated request)
 * @param atsTranslationNs an ATS translation request round trip (device to IOMMU and back), on
 *     top of the IOMMU's own lookup
 * @param invalidationDescriptorNs processing one invalidation descriptor
 * @param syncNs a sync (VT-d wait descriptor / SMMUv3 CMD_SYNC) completion
 * @param atcInvalidationRoundTripNs a device ATC invalidation round trip (PCIe message and
 *     completion)
 * @param pageRequestNs delivering one page request to software
 * @param faultReportNs recording one unrecoverable fault
 * @param pteWriteNs writing one page-table entry on map or unmap
 * @param pamuLookupNs a PAMU PAACE window lookup
 */
public record CostModelSettings(
    long iotlbHitNs,
    long walkLevelNs,
    long atcHitNs,
    long atsTranslationNs,
    long invalidationDescriptorNs,
    long syncNs,
    long atcInvalidationRoundTripNs,
    long pageRequestNs,
    long faultReportNs,
    long pteWriteNs,
    long pamuLookupNs) {

  /** Where the section lives in a full config; problems are named under it. */
  public static final String PATH = "iommulab.cost-model";

  static final List<String> KEYS =
      List.of(
          "iotlb-hit",
          "walk-level",
          "atc-hit",
          "ats-translation",
          "invalidation-descriptor",
          "sync",
          "atc-invalidation-round-trip",
          "page-request",
          "fault-report",
          "pte-write",
          "pamu-lookup");

  private static final ConfigReader.Rule NOT_NEGATIVE =
      new ConfigReader.Rule(v -> v >= 0, "must not be negative");

  public CostModelSettings {
    long[] all = {
      iotlbHitNs, walkLevelNs, atcHitNs, atsTranslationNs, invalidationDescriptorNs, syncNs,
      atcInvalidationRoundTripNs, pageRequestNs, faultReportNs, pteWriteNs, pamuLookupNs
    };
    for (int i = 0; i < all.length; i++) {
      if (all[i] < 0) {
        throw new IllegalArgumentException(KEYS.get(i) + " = " + all[i] + "ns: must not be negative");
      }
    }
  }

  /**
   * Builds the cost model from the {@code iommulab.cost-model} section (for example {@code
   * ConfigFactory.load().getConfig(CostModelSettings.PATH)}). Problems are named by their full
   * path under {@code iommulab.cost-model}.
   *
   * @throws SettingsException listing every missing, mistyped, negative or unknown key
   */
  public static CostModelSettings fromConfig(Config costModel) {
    ConfigReader r = ConfigReader.of(costModel, PATH);
    Optional<CostModelSettings> settings = read(r);
    r.problems().throwIfAny();
    return settings.orElseThrow();
  }

  /** The costs of the shipped {@code reference.conf}, the same as the hardware model's defaults. */
  public static CostModelSettings defaults() {
    return fromConfig(ConfigFactory.defaultReference().getConfig(PATH));
  }

  static Optional<CostModelSettings> read(ConfigReader r) {
    int mark = r.mark();
    r.checkKnownKeys(KEYS, "the cost model");
    long[] ns = new long[KEYS.size()];
    for (int i = 0; i < ns.length; i++) {
      ns[i] = r.getNanos(KEYS.get(i), NOT_NEGATIVE).orElse(0);
    }
    if (r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(
        new CostModelSettings(
            ns[0], ns[1], ns[2], ns[3], ns[4], ns[5], ns[6], ns[7], ns[8], ns[9], ns[10]));
  }
}
