package io.iommulab.host;

import com.typesafe.config.Config;
import io.iommulab.config.UapiSettings;
import java.time.Duration;

/**
 * The {@code iommulab.host} section: settings of the guardian, its VMs and the facade (the
 * topology and cost model are {@link io.iommulab.config.IommulabSettings}).
 *
 * @param seed seed of the run, from which every actor's seed is derived
 * @param askTimeout how long an actor waits for another's answer before treating it as a bug
 * @param vmPasidQuota PASIDs one VM may hold at once
 * @param strictUnmap unmaps return after the invalidation sync; the oracle judges stale DMA
 * @param uapi the emulated kernel's uAPI settings ({@code iommulab.uapi}): what every VM's fds
 *     run with
 */
public record HostSettings(
    long seed, Duration askTimeout, int vmPasidQuota, boolean strictUnmap, UapiSettings uapi) {

  public static final String PATH = "iommulab.host";

  public HostSettings {
    if (uapi == null) {
      throw new IllegalArgumentException("uapi settings must not be null");
    }
    if (askTimeout == null || askTimeout.isNegative() || askTimeout.isZero()) {
      throw new IllegalArgumentException(PATH + ".ask-timeout = " + askTimeout + ": must be positive");
    }
    if (vmPasidQuota < 1 || vmPasidQuota > (1 << 20) - 1) {
      throw new IllegalArgumentException(
          PATH + ".vm-pasid-quota = " + vmPasidQuota + ": must be from 1 to 1048575");
    }
  }

  /**
   * Reads {@code iommulab.host} and {@code iommulab.uapi} of a full config (the shipped
   * reference.conf files as fallback).
   */
  public static HostSettings fromConfig(Config root) {
    Config c = root.getConfig(PATH);
    return new HostSettings(
        c.getLong("seed"),
        c.getDuration("ask-timeout"),
        c.getInt("vm-pasid-quota"),
        c.getBoolean("strict-unmap"),
        UapiSettings.fromConfig(root.getConfig(UapiSettings.PATH)));
  }

  /** The shipped defaults. */
  public static HostSettings defaults() {
    return fromConfig(com.typesafe.config.ConfigFactory.defaultReference());
  }

  public HostSettings withSeed(long newSeed) {
    return new HostSettings(newSeed, askTimeout, vmPasidQuota, strictUnmap, uapi);
  }
}
