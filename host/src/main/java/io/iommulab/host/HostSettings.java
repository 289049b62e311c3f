package io.iommulab.host;

import com.typesafe.config.Config;
import java.time.Duration;

/**
 * The {@code iommulab.host} section: settings of the guardian, its VMs and the facade (the
 * topology and cost model are {@link io.iommulab.config.IommulabSettings}).
 *
 * @param seed seed of the run, from which every actor's seed is derived
 * @param askTimeout how long an actor waits for another's answer before treating it as a bug
 * @param vmPasidQuota PASIDs one VM may hold at once
 * @param strictUnmap unmaps return after the invalidation sync; the oracle judges stale DMA
 */
public record HostSettings(long seed, Duration askTimeout, int vmPasidQuota, boolean strictUnmap) {

  public static final String PATH = "iommulab.host";

  public HostSettings {
    if (askTimeout == null || askTimeout.isNegative() || askTimeout.isZero()) {
      throw new IllegalArgumentException(PATH + ".ask-timeout = " + askTimeout + ": must be positive");
    }
    if (vmPasidQuota < 1 || vmPasidQuota > (1 << 20) - 1) {
      throw new IllegalArgumentException(
          PATH + ".vm-pasid-quota = " + vmPasidQuota + ": must be from 1 to 1048575");
    }
  }

  /** Reads {@code iommulab.host} of a full config (reference.conf of this module as fallback). */
  public static HostSettings fromConfig(Config root) {
    Config c = root.getConfig(PATH);
    return new HostSettings(
        c.getLong("seed"),
        c.getDuration("ask-timeout"),
        c.getInt("vm-pasid-quota"),
        c.getBoolean("strict-unmap"));
  }

  /** The shipped defaults. */
  public static HostSettings defaults() {
    return fromConfig(com.typesafe.config.ConfigFactory.defaultReference());
  }

  public HostSettings withSeed(long newSeed) {
    return new HostSettings(newSeed, askTimeout, vmPasidQuota, strictUnmap);
  }
}
