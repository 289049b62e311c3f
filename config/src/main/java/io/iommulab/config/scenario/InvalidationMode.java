package io.iommulab.config.scenario;

/**
 * How unmaps invalidate: {@code strict} (an unmap returns only after the IOTLB and device-TLB
 * invalidation has completed; the stale-translation oracle counts any DMA that completes at an
 * IOVA whose unmap had returned) or {@code deferred} (flush-queue style: an unmap may return
 * before the flush; stale hits in that window are counted as tolerated, not as violations). Sets
 * {@code iommulab.host.strict-unmap} and {@code iommulab.pipeline.invalidation.mode}.
 */
public enum InvalidationMode {
  STRICT("strict"),
  DEFERRED("deferred");

  private final String configName;

  InvalidationMode(String configName) {
    this.configName = configName;
  }

  public String configName() {
    return configName;
  }
}
