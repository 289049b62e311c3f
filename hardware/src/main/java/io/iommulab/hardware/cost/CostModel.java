package io.iommulab.hardware.cost;

import io.iommulab.config.CostModelSettings;

/**
 * Modeled latencies of the emulated hardware, from {@link CostModelSettings}. Pure arithmetic:
 * queueing behind a busy resource is added by {@link ContendedResource}. No cited source gives
 * per-operation cycle counts ({@code hardware-rules.md} §4, "Gap"), so the defaults are
 * calibrated by ratio and every figure is configurable.
 */
public final class CostModel {
  private final CostModelSettings s;

  public CostModel(CostModelSettings settings) {
    this.s = settings;
  }

  public CostModelSettings settings() {
    return s;
  }

  public long iotlbHit() {
    return s.iotlbHitNs();
  }

  /** A one-dimensional walk reading {@code levels} entries. */
  public long walk(int levels) {
    return levels * s.walkLevelNs();
  }

  /**
   * A two-dimensional (nested) walk: each of the {@code s1Levels} stage-1 table reads is at a
   * guest-physical address and needs its own stage-2 walk, and so does the final output address:
   * {@code s1·(s2+1) + s2} entry reads.
   */
  public long nestedWalk(int s1Levels, int s2Levels) {
    return nestedWalkReads(s1Levels, s2Levels) * s.walkLevelNs();
  }

  public static int nestedWalkReads(int s1Levels, int s2Levels) {
    return s1Levels * (s2Levels + 1) + s2Levels;
  }

  public long atcHit() {
    return s.atcHitNs();
  }

  public long atsTranslation() {
    return s.atsTranslationNs();
  }

  public long descriptor() {
    return s.invalidationDescriptorNs();
  }

  public long sync() {
    return s.syncNs();
  }

  public long atcInvalidationRoundTrip() {
    return s.atcInvalidationRoundTripNs();
  }

  public long pageRequest() {
    return s.pageRequestNs();
  }

  public long faultReport() {
    return s.faultReportNs();
  }

  public long pteWrites(long entries) {
    return entries * s.pteWriteNs();
  }

  public long pamuLookup() {
    return s.pamuLookupNs();
  }

  /** The costs of the shipped {@code reference.conf} ({@code iommulab.cost-model}). */
  public static CostModel defaults() {
    return new CostModel(CostModelSettings.defaults());
  }
}
