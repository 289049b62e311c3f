package io.iommulab.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.Optional;

/**
 * Settings of the emulated kernel's user API (iommufd and VFIO type1), under {@code
 * iommulab.uapi}: what a host administrator sets with rlimits and module parameters.
 *
 * <p>Invariants (checked on construction; reported with key paths by {@link #fromConfig}): {@code
 * memlockLimit} is at least 0 and a multiple of 4 KiB (RLIMIT_MEMLOCK is counted in pages by
 * {@code drivers/iommu/iommufd/pages.c} {@code incr_user_locked_vm}); {@code vfioDmaEntryLimit} is
 * from 1 to 65535 ({@code dma_entry_limit} of {@code drivers/vfio/vfio_iommu_type1.c}, a
 * {@code U16_MAX} default added for CVE-2019-3882).
 *
 * @param memlockLimit RLIMIT_MEMLOCK of every user, in bytes: pinned pages charged past it fail
 *     with ENOMEM
 * @param allowUnsafeInterrupts the {@code allow_unsafe_interrupts} module parameter: bind a device
 *     whose IOMMU cannot isolate MSIs (otherwise EPERM)
 * @param defaultAccountMode the accounting mode of a newly opened fd ({@code /dev/iommu} opens in
 *     USER mode, {@code /dev/vfio/vfio} in MM mode; {@code main.c} {@code iommufd_fops_open})
 * @param vfioDmaEntryLimit VFIO type1 {@code dma_entry_limit}: mappings per container
 * @param pasidsPerVm PASIDs one VM may hold at once (its IOASID set's quota, the /dev/ioasid
 *     design of 2021): the next allocation fails with ENOSPC
 * @param faultQueueDepth page requests one FAULT object holds (partial and queued, not those read
 *     and awaiting a response), from 1 to 2^20: a request arriving at a full queue is lost and
 *     counted, and the queue ends with a lost-events record (the vEVENTQ rule applied to FAULT)
 */
public record UapiSettings(
    long memlockLimit,
    boolean allowUnsafeInterrupts,
    AccountMode defaultAccountMode,
    int vfioDmaEntryLimit,
    int pasidsPerVm,
    int faultQueueDepth) {

  /** Where the section lives in a full config; problems are named under it. */
  public static final String PATH = "iommulab.uapi";

  static final List<String> KEYS =
      List.of(
          "memlock-limit",
          "allow-unsafe-interrupts",
          "default-account-mode",
          "vfio-dma-entry-limit",
          "pasids-per-vm",
          "fault-queue-depth");

  /** Default FAULT depth: a VT-d page request queue of 16 pages (2048 descriptors). */
  public static final int DEFAULT_FAULT_QUEUE_DEPTH = 2048;

  private static final ConfigReader.Rule FAULT_DEPTH = ConfigReader.Rule.between(1, 1 << 20);

  private static final long PAGE = 4096;

  private static final ConfigReader.Rule MEMLOCK =
      new ConfigReader.Rule(v -> v >= 0 && v % PAGE == 0, "must be at least 0 and a multiple of 4K");

  /**
   * How an fd charges pinned pages against {@link #memlockLimit} ({@code enum
   * iopt_pages_account_mode} minus NONE, which a CAP_IPC_LOCK opener gets regardless of mode).
   */
  public enum AccountMode {
    /** Per user: {@code user->locked_vm}, as io_uring does ({@code IOPT_PAGES_ACCOUNT_USER}). */
    USER("user"),
    /** Per process: {@code mm->locked_vm}, as VFIO type1 does ({@code IOPT_PAGES_ACCOUNT_MM}). */
    MM("mm");

    private final String configName;

    AccountMode(String configName) {
      this.configName = configName;
    }

    public String configName() {
      return configName;
    }
  }

  public UapiSettings {
    if (defaultAccountMode == null) {
      throw new IllegalArgumentException("default-account-mode must not be null");
    }
    if (!MEMLOCK.test().test(memlockLimit)) {
      throw new IllegalArgumentException(
          "memlock-limit = " + memlockLimit + ": " + MEMLOCK.text());
    }
    if (vfioDmaEntryLimit < 1 || vfioDmaEntryLimit > 65535) {
      throw new IllegalArgumentException(
          "vfio-dma-entry-limit = " + vfioDmaEntryLimit + ": must be from 1 to 65535");
    }
    if (pasidsPerVm < 1 || pasidsPerVm > MAX_PASIDS) {
      throw new IllegalArgumentException(
          "pasids-per-vm = " + pasidsPerVm + ": must be from 1 to " + MAX_PASIDS);
    }
    if (!FAULT_DEPTH.test().test(faultQueueDepth)) {
      throw new IllegalArgumentException(
          "fault-queue-depth = " + faultQueueDepth + ": " + FAULT_DEPTH.text());
    }
  }

  /** PASIDs 1 to 2^20 - 1 (PASID 0 is the RID's own address space on VT-d). */
  public static final int MAX_PASIDS = (1 << 20) - 1;

  /** Default of {@code pasids-per-vm} when the section leaves it out. */
  public static final int DEFAULT_PASIDS_PER_VM = 1024;

  /**
   * Builds the settings from the {@code iommulab.uapi} section (for example {@code
   * ConfigFactory.load().getConfig(UapiSettings.PATH)}). Problems are named by their full path.
   *
   * @throws SettingsException listing every missing, mistyped, out-of-range or unknown key
   */
  public static UapiSettings fromConfig(Config uapi) {
    ConfigReader r = ConfigReader.of(uapi, PATH);
    Optional<UapiSettings> settings = read(r);
    r.problems().throwIfAny();
    return settings.orElseThrow();
  }

  /** The settings of the shipped {@code reference.conf}. */
  public static UapiSettings defaults() {
    return fromConfig(ConfigFactory.defaultReference().getConfig(PATH));
  }

  /** These settings with another memlock limit (tests and scenarios). */
  public UapiSettings withMemlockLimit(long bytes) {
    return new UapiSettings(bytes, allowUnsafeInterrupts, defaultAccountMode, vfioDmaEntryLimit, pasidsPerVm,
        faultQueueDepth);
  }

  /** These settings with {@code allow_unsafe_interrupts} set as given. */
  public UapiSettings withAllowUnsafeInterrupts(boolean allow) {
    return new UapiSettings(memlockLimit, allow, defaultAccountMode, vfioDmaEntryLimit, pasidsPerVm,
        faultQueueDepth);
  }

  /** These settings with another VFIO type1 {@code dma_entry_limit}. */
  public UapiSettings withVfioDmaEntryLimit(int limit) {
    return new UapiSettings(memlockLimit, allowUnsafeInterrupts, defaultAccountMode, limit, pasidsPerVm,
        faultQueueDepth);
  }

  /** These settings with another per-VM PASID quota. */
  public UapiSettings withPasidsPerVm(int quota) {
    return new UapiSettings(memlockLimit, allowUnsafeInterrupts, defaultAccountMode, vfioDmaEntryLimit, quota,
        faultQueueDepth);
  }

  /** These settings with another FAULT depth. */
  public UapiSettings withFaultQueueDepth(int depth) {
    return new UapiSettings(memlockLimit, allowUnsafeInterrupts, defaultAccountMode, vfioDmaEntryLimit,
        pasidsPerVm, depth);
  }

  static Optional<UapiSettings> read(ConfigReader r) {
    int mark = r.mark();
    r.checkKnownKeys(KEYS, "the uapi section");
    long memlock = r.getBytes("memlock-limit", MEMLOCK).orElse(0);
    boolean unsafe = r.getBoolean("allow-unsafe-interrupts").orElse(false);
    AccountMode mode =
        r.getEnum("default-account-mode", AccountMode.values(), AccountMode::configName)
            .orElse(AccountMode.USER);
    int limit =
        r.getInt("vfio-dma-entry-limit", ConfigReader.Rule.between(1, 65535)).orElse(65535);
    int pasids =
        r.getInt("pasids-per-vm", ConfigReader.Rule.between(1, MAX_PASIDS)).orElse(DEFAULT_PASIDS_PER_VM);
    int depth = r.getInt("fault-queue-depth", FAULT_DEPTH).orElse(DEFAULT_FAULT_QUEUE_DEPTH);
    if (r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(new UapiSettings(memlock, unsafe, mode, limit, pasids, depth));
  }
}
