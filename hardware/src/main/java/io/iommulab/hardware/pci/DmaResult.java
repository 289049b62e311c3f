package io.iommulab.hardware.pci;

import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.memory.DmaCheck;

/**
 * The outcome of one {@link DmaRequest}, filled in by whoever composes the path device → IOMMU
 * unit → memory. Mutable and reused by its single owner (like {@code Translation}) so the hot
 * path allocates nothing; read it before the next request through the same object.
 *
 * <p>Which fields mean something depends on {@link #status}:
 *
 * <ul>
 *   <li>{@link Status#COMPLETED}: {@link #hpa} of the first byte, {@link #check} (the isolation
 *       oracle's verdict, {@code HostMemory.check}), {@link #snooped};
 *   <li>{@link Status#FAULTED}: {@link #fault}, an unrecoverable fault was recorded;
 *   <li>{@link Status#PAGE_REQUEST}: {@link #prgIndex}, the device issued a page request and
 *       waits for the group's response (PRI);
 *   <li>{@link Status#PRI_WAIT}: the device could not issue a page request (no credit or no PRG
 *       index) and must retry later;
 *   <li>{@link Status#MSI}: the write hit an MSI doorbell and went to {@link #msiBank} (-1 for an
 *       interrupt-remapping table); MSI writes are never judged as memory;
 *   <li>{@link Status#ABORTED}: the function cannot master DMA (bus master off, or no owner); no
 *       TLP left the device.
 * </ul>
 *
 * {@link #completionNs} is always the modeled completion time.
 */
public final class DmaResult {

  public enum Status {
    COMPLETED,
    FAULTED,
    PAGE_REQUEST,
    PRI_WAIT,
    MSI,
    ABORTED
  }

  public Status status;
  public long hpa;
  public DmaCheck check;
  public boolean snooped;
  public FaultReason fault;
  public int prgIndex;
  public int msiBank;
  public long completionNs;

  public DmaResult reset() {
    status = null;
    hpa = -1;
    check = null;
    snooped = false;
    fault = null;
    prgIndex = -1;
    msiBank = -1;
    completionNs = 0;
    return this;
  }

  public DmaResult completed(long hpa, DmaCheck check, boolean snooped, long completionNs) {
    reset();
    this.status = Status.COMPLETED;
    this.hpa = hpa;
    this.check = check;
    this.snooped = snooped;
    this.completionNs = completionNs;
    return this;
  }

  public DmaResult faulted(FaultReason fault, long completionNs) {
    reset();
    this.status = Status.FAULTED;
    this.fault = fault;
    this.completionNs = completionNs;
    return this;
  }

  public DmaResult pageRequested(int prgIndex, long completionNs) {
    reset();
    this.status = Status.PAGE_REQUEST;
    this.prgIndex = prgIndex;
    this.completionNs = completionNs;
    return this;
  }

  public DmaResult priWait(long completionNs) {
    reset();
    this.status = Status.PRI_WAIT;
    this.completionNs = completionNs;
    return this;
  }

  public DmaResult msi(int bank, long completionNs) {
    reset();
    this.status = Status.MSI;
    this.msiBank = bank;
    this.completionNs = completionNs;
    return this;
  }

  public DmaResult aborted(long completionNs) {
    reset();
    this.status = Status.ABORTED;
    this.completionNs = completionNs;
    return this;
  }

  /** True when the DMA reached memory and the oracle found it clean. */
  public boolean clean() {
    return status == Status.COMPLETED && check == DmaCheck.OK;
  }

  @Override
  public String toString() {
    return switch (status == null ? Status.ABORTED : status) {
      case COMPLETED -> String.format(
          "DmaResult[completed hpa=0x%x %s%s @%dns]", hpa, check, snooped ? " snooped" : "",
          completionNs);
      case FAULTED -> "DmaResult[fault " + fault + " @" + completionNs + "ns]";
      case PAGE_REQUEST -> "DmaResult[page request prg " + prgIndex + " @" + completionNs + "ns]";
      case PRI_WAIT -> "DmaResult[pri wait @" + completionNs + "ns]";
      case MSI -> "DmaResult[msi bank " + msiBank + " @" + completionNs + "ns]";
      case ABORTED -> status == null ? "DmaResult[empty]" : "DmaResult[aborted]";
    };
  }
}
