package io.iommulab.hardware.pamu;

import io.iommulab.hardware.fault.DmaFault;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.FaultRecord;

/**
 * The access-violation registers as the ISR ({@code pamu_av_isr} in {@code fsl_pamu.c}) reads and
 * logs them: AVS1 (violation type bits, the LIODN at bits 31:16), AVA (the faulting address),
 * POEA (the address of the PAACE that refused the access, 0 when none).
 *
 * @param action what the ISR did about it
 */
public record PamuViolation(
    int liodn,
    long iova,
    int access,
    FaultReason reason,
    int avs1,
    long ava,
    long poea,
    long timeNs,
    IsrAction action) {

  /** The ISR's response to one reported violation. */
  public enum IsrAction {
    /** The LIODN was valid: the ISR cleared its V bit ({@code pamu_disable_liodn}). */
    LIODN_DISABLED,
    /**
     * The LIODN was already disabled: erratum A-003638; the ISR cleared the AV interrupt enable
     * in PICS, so later violations are not reported.
     */
    AV_INTERRUPTS_MASKED,
    /** The LIODN is beyond the PPAACT; the 4.1 ISR hits {@code BUG_ON}, the model only logs. */
    NONE
  }

  /** AVS1 bit 0: an access violation is latched ({@code PAMU_AVS1_AV}). */
  public static final int AVS1_AV = 0x1;
  /** AVS1 bits 31:16 hold the LIODN ({@code PAMU_AVS1_LIODN_SHIFT}). */
  public static final int AVS1_LIODN_SHIFT = 16;

  /** The LIODN field of an AVS1 value. */
  public static int liodnOf(int avs1) {
    return avs1 >>> AVS1_LIODN_SHIFT;
  }

  public DmaFault toDmaFault(int unitId) {
    return new DmaFault(unitId, liodn, FaultRecord.NO_PASID, iova, access, reason, timeNs);
  }
}
