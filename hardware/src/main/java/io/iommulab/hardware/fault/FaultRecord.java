package io.iommulab.hardware.fault;

/**
 * What an IOMMU unit reports: an unrecoverable DMA fault or a recoverable page request. Records
 * are immutable and carry only ids and numbers, so they can cross actor and stream boundaries.
 */
public sealed interface FaultRecord permits DmaFault, PageRequest {

  /** PASID value meaning "no PASID on the request". */
  int NO_PASID = -1;

  /** Index of the reporting unit in the topology. */
  int unitId();

  /** Requester id (or LIODN for PAMU). */
  int rid();

  /** PASID, or {@link #NO_PASID}. */
  int pasid();

  /** Modeled time of the report, in nanoseconds. */
  long timeNs();

  default boolean pasidValid() {
    return pasid() != NO_PASID;
  }
}
