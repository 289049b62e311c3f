package io.iommulab.actors.pipeline;

import io.iommulab.actors.unit.IommuUnitActor.PageResponseCode;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.fault.FaultReason;

/**
 * What becomes of a fault record, per unit kind, in one place. Units and fds ask here and do what
 * the answer says; nothing else decides.
 *
 * <table>
 *   <caption>Fault records, from the unit to the owner</caption>
 *   <tr><th>record</th><th>at the unit</th><th>in the pipeline</th><th>at the owning fd</th></tr>
 *   <tr><td>DMA fault, no attach handle</td><td>{@link AtUnit#LOG_UNHANDLED}: counted, first
 *       ones kept in the unit's fault log (the host's dmesg)</td><td>—</td><td>—</td></tr>
 *   <tr><td>page request, no handler</td><td>{@link AtUnit#ANSWER_INVALID} when its last page
 *       arrives ({@code io-pgfault.c}: no iopf param → INVALID)</td><td>—</td><td>—</td></tr>
 *   <tr><td>any record with a handle</td><td>{@link AtUnit#PUBLISH}</td><td>ingress full →
 *       lost, counted per unit (VT-d PFO / PRS.PRO, SMMUv3 EVTQ / PRIQ overflow); a lost last
 *       page is answered {@link #lastPageLostAtIngress()} by the unit, and the owners drop the
 *       unit's partial groups once the ingress drained ({@code iopf_queue_discard_partial})</td>
 *       <td>below</td></tr>
 *   <tr><td>PAMU access violation</td><td colspan="2">the unit model's ISR has already disabled
 *       the LIODN ({@code fsl_pamu.c} {@code pamu_av_isr})</td><td>{@link
 *       AtOwner#DISABLED_OWNER_TOLD}: the owner (the fd's VM) is told once per violation that
 *       disabled it; later LIODN-disabled faults are recorded</td></tr>
 *   <tr><td>VT-d / SMMUv3 DMA fault</td><td colspan="2"></td><td>{@link AtOwner#TO_VEVENTQ} when
 *       the device has a vDEVICE in the vIOMMU of its HWPT and that vIOMMU a vEVENTQ of its type
 *       (SMMUv3 nested faults report the vSID, iommufd-uapi §4.2; bounded, lost-events on
 *       overflow); else {@link AtOwner#RECORD} in the fd's fault statistics. SMMUv3 stage-2
 *       faults are never forwarded to the guest (arm-smmu-v3: "stage-2 faults are not
 *       forwarded").</td></tr>
 *   <tr><td>page request</td><td colspan="2"></td><td>the FAULT queue of the handle's HWPT,
 *       grouped until LAST_PAGE, answered by cookie; a full queue loses the request (a lost last
 *       page fails its group {@link #lastPageLostAtOwner()}); a handle that is gone (detached,
 *       replaced, fd closed) loses it — its group was answered INVALID by the unit when the handle
 *       went away, and a response names the handle's token, so a late answer never reaches a newer
 *       group of the same PRG index</td></tr>
 * </table>
 *
 * <p>Every record published is delivered (a queue or the fd's fault statistics) or counted lost
 * (ingress overflow, queue overflow, handle gone, or an fd that never acknowledged): exactly one.
 */
public final class FaultPolicy {
  private FaultPolicy() {}

  /** What the unit does with a record it raises. */
  public enum AtUnit {
    /** The attach handle has a sink: into the unit's pipeline. */
    PUBLISH,
    /** A DMA fault nobody handles: the unit's own log. */
    LOG_UNHANDLED,
    /** A page request nobody handles: INVALID to the device at its last page. */
    ANSWER_INVALID
  }

  /** What the owning fd does with an unrecoverable DMA fault. */
  public enum AtOwner {
    /** PAMU: the LIODN is disabled; the owner is told. */
    DISABLED_OWNER_TOLD,
    /** Into the vIOMMU's vEVENTQ, for the guest to read. */
    TO_VEVENTQ,
    /** Counted in the fd's fault statistics only (the host logs it). */
    RECORD
  }

  /** At the unit: {@code pageRequest} or a DMA fault, with or without a sink on its handle. */
  public static AtUnit atUnit(boolean pageRequest, boolean hasSink) {
    if (hasSink) {
      return AtUnit.PUBLISH;
    }
    return pageRequest ? AtUnit.ANSWER_INVALID : AtUnit.LOG_UNHANDLED;
  }

  /**
   * At the owner: a DMA fault of {@code reason} from a unit of {@code kind}; {@code veventq}
   * whether the device has a vEVENTQ route.
   */
  public static AtOwner atOwner(UnitKind kind, FaultReason reason, boolean veventq) {
    switch (kind) {
      case PAMU -> {
        return reason == FaultReason.LIODN_DISABLED ? AtOwner.RECORD : AtOwner.DISABLED_OWNER_TOLD;
      }
      case SMMUV3 -> {
        if (reason == FaultReason.STAGE2_NOT_PRESENT) {
          return AtOwner.RECORD;
        }
        return veventq ? AtOwner.TO_VEVENTQ : AtOwner.RECORD;
      }
      default -> {
        return veventq ? AtOwner.TO_VEVENTQ : AtOwner.RECORD;
      }
    }
  }

  /**
   * The unit's answer to a group whose last page its full ingress lost: SUCCESS, so the device
   * retries and faults again (VT-d spec 7.5.1 auto-response on a full page request queue; SMMUv3
   * PRIQ alike — inference).
   */
  public static PageResponseCode lastPageLostAtIngress() {
    return PageResponseCode.SUCCESS;
  }

  /**
   * The owner's answer to a group whose last page it could not queue (full FAULT queue), or
   * whose handle it cannot find when the record names none: INVALID, as {@code
   * iommufd_auto_response_faults} answers.
   */
  public static PageResponseCode lastPageLostAtOwner() {
    return PageResponseCode.INVALID;
  }
}
