package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * Settings of the fault pipeline, under {@code iommulab.fault-pipeline}: the stream through which
 * every IOMMU unit publishes its fault records (unrecoverable DMA faults and page requests) to the
 * iommufd contexts that own the faulting attach handles.
 *
 * <p>Invariants (checked on construction; reported with key paths by {@link #fromConfig}): both
 * ingress capacities from 1 to 2^20 records; {@code batchSize} from 1 to 65536; {@code parallelism}
 * from 1 to 1024; {@code ackTimeout} from 1 ms to 10 min; {@code tenantClasses} from 0 to 65536.
 *
 * @param faultIngressCapacity records of unrecoverable faults the unit holds before the pipeline
 *     drains them: the VT-d primary fault recording registers / SMMUv3 event queue. A record
 *     reported while it is full is lost and counted (VT-d PFO, SMMUv3 "EVTQ overflow")
 * @param pageRequestIngressCapacity page requests the unit holds before the pipeline drains them:
 *     the VT-d page request queue / SMMUv3 PRI queue. A request arriving while it is full is lost
 *     and counted (PRS.PRO, "PRIQ overflow"); a lost last page is answered at once by the unit
 * @param batchSize the most records one message to an fd carries
 * @param parallelism batches in flight at once, at most one per fd (per-fd order)
 * @param ackTimeout how long an fd may take to acknowledge a batch before its records are counted
 *     lost (the fd stopped without closing)
 * @param tenantClasses the tenant tag of metrics is {@code vmId % tenantClasses}; 0 tags by VM id
 */
public record FaultPipelineSettings(
    int faultIngressCapacity,
    int pageRequestIngressCapacity,
    int batchSize,
    int parallelism,
    Duration ackTimeout,
    int tenantClasses) {

  /** Where the section lives in a full config; problems are named under it. */
  public static final String PATH = "iommulab.fault-pipeline";

  static final List<String> KEYS =
      List.of(
          "fault-ingress-capacity",
          "page-request-ingress-capacity",
          "batch-size",
          "parallelism",
          "ack-timeout",
          "tenant-classes");

  private static final ConfigReader.Rule CAPACITY = ConfigReader.Rule.between(1, 1 << 20);
  private static final ConfigReader.Rule BATCH = ConfigReader.Rule.between(1, 65536);
  private static final ConfigReader.Rule PARALLELISM = ConfigReader.Rule.between(1, 1024);
  private static final ConfigReader.Rule TIMEOUT =
      ConfigReader.Rule.between(1_000_000L, 600_000_000_000L);
  private static final ConfigReader.Rule TENANTS = ConfigReader.Rule.between(0, 65536);

  public FaultPipelineSettings {
    check("fault-ingress-capacity", faultIngressCapacity, CAPACITY);
    check("page-request-ingress-capacity", pageRequestIngressCapacity, CAPACITY);
    check("batch-size", batchSize, BATCH);
    check("parallelism", parallelism, PARALLELISM);
    if (ackTimeout == null) {
      throw new IllegalArgumentException("ack-timeout must not be null");
    }
    check("ack-timeout", ackTimeout.toNanos(), TIMEOUT);
    check("tenant-classes", tenantClasses, TENANTS);
  }

  private static void check(String key, long value, ConfigReader.Rule rule) {
    if (!rule.test().test(value)) {
      throw new IllegalArgumentException(key + " = " + value + ": " + rule.text());
    }
  }

  /**
   * Builds the settings from the {@code iommulab.fault-pipeline} section. Problems are named by
   * their full path.
   *
   * @throws SettingsException listing every missing, mistyped, out-of-range or unknown key
   */
  public static FaultPipelineSettings fromConfig(Config section) {
    ConfigReader r = ConfigReader.of(section, PATH);
    Optional<FaultPipelineSettings> settings = read(r);
    r.problems().throwIfAny();
    return settings.orElseThrow();
  }

  /** The settings of the shipped {@code reference.conf}. */
  public static FaultPipelineSettings defaults() {
    return fromConfig(ConfigFactory.defaultReference().getConfig(PATH));
  }

  /** These settings with other ingress capacities (tests and scenarios). */
  public FaultPipelineSettings withIngress(int faults, int pageRequests) {
    return new FaultPipelineSettings(
        faults, pageRequests, batchSize, parallelism, ackTimeout, tenantClasses);
  }

  /** These settings with another batch size. */
  public FaultPipelineSettings withBatchSize(int records) {
    return new FaultPipelineSettings(
        faultIngressCapacity, pageRequestIngressCapacity, records, parallelism, ackTimeout,
        tenantClasses);
  }

  /** The metric tag of VM {@code vmId}: a bounded set of tenant classes, never one per actor. */
  public String tenantOf(int vmId) {
    return tenantClasses == 0 ? "vm-" + vmId : "tenant-" + Math.floorMod(vmId, tenantClasses);
  }

  static Optional<FaultPipelineSettings> read(ConfigReader r) {
    int mark = r.mark();
    r.checkKnownKeys(KEYS, "the fault pipeline");
    int faults = r.getInt("fault-ingress-capacity", CAPACITY).orElse(1);
    int prs = r.getInt("page-request-ingress-capacity", CAPACITY).orElse(1);
    int batch = r.getInt("batch-size", BATCH).orElse(1);
    int parallelism = r.getInt("parallelism", PARALLELISM).orElse(1);
    long timeout = r.getNanos("ack-timeout", TIMEOUT).orElse(1_000_000L);
    int tenants = r.getInt("tenant-classes", TENANTS).orElse(0);
    if (r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(
        new FaultPipelineSettings(
            faults, prs, batch, parallelism, Duration.ofNanos(timeout), tenants));
  }
}
