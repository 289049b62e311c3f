package io.iommulab.hardware.iommu;

import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.fault.FaultReason;

/**
 * The result of one translation, filled in by the unit (or cache) that served it. Mutable and
 * reused by its single owner so that the hot path allocates nothing; read it before the next
 * translation through the same object.
 */
public final class Translation {

  /** What served the translation. */
  public enum Source {
    IOTLB,
    WALK,
    NESTED_WALK,
    ATC,
    PAMU_WINDOW,
    FAULT
  }

  /** Host physical address of the requested IOVA (valid when {@link #ok()}). */
  public long hpa;
  /** Granted {@link io.iommulab.hardware.Access} bits, plus {@code Access.SNOOP}. */
  public int prot;
  /** Size of the page that mapped the IOVA. */
  public PageSize pageSize;
  /** Why the translation failed, or null. */
  public FaultReason fault;
  public Source source;
  /** Modeled latency of the lookup, including queueing for contended resources. */
  public long latencyNs;
  /** Page-table entries read (0 on a cache hit). */
  public int levels;

  public Translation reset() {
    hpa = -1;
    prot = 0;
    pageSize = null;
    fault = null;
    source = null;
    latencyNs = 0;
    levels = 0;
    return this;
  }

  public boolean ok() {
    return fault == null && source != null && source != Source.FAULT;
  }

  /** Marks this translation failed. */
  public Translation fail(FaultReason reason, long latency) {
    hpa = -1;
    prot = 0;
    pageSize = null;
    fault = reason;
    source = Source.FAULT;
    latencyNs = latency;
    return this;
  }

  @Override
  public String toString() {
    return ok()
        ? String.format(
            "Translation[hpa=0x%x prot=%d size=%s via %s %dns]",
            hpa, prot, pageSize, source, latencyNs)
        : "Translation[fault=" + fault + " " + latencyNs + "ns]";
  }
}
