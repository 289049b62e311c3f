package io.iommulab.hardware.msi;

/**
 * How an MSI's data word selects a shared-interrupt register (MSIR, the "srs" field) and a bit in
 * it (the "ibs" field): {@code data = msir << srsShift | bit << ibsShift}, the {@code msi_hwirq()}
 * macro of {@code arch/powerpc/sysdev/fsl_msi.c}. Each MSIR carries 32 interrupts
 * ({@code IRQS_PER_MSI_REG}).
 */
public enum MsiirFormat {
  /** Classic MPIC MSIIR: {@code MSIIR_SRS_SHIFT 5}, {@code MSIIR_IBS_SHIFT 0}; 8 MSIRs. */
  MSIIR(5, 0, 8),
  /** MPIC v4.3 MSIIR1: {@code MSIIR1_SRS_SHIFT 0}, {@code MSIIR1_IBS_SHIFT 4}; 16 MSIRs. */
  MSIIR1(0, 4, 16);

  /** {@code IRQS_PER_MSI_REG}. */
  public static final int IRQS_PER_MSIR = 32;

  private static final int SRS_MASK = 0xf; // MSI_SRS_MASK
  private static final int IBS_MASK = 0x1f; // MSI_IBS_MASK

  private final int srsShift;
  private final int ibsShift;
  private final int maxRegisters;

  MsiirFormat(int srsShift, int ibsShift, int maxRegisters) {
    this.srsShift = srsShift;
    this.ibsShift = ibsShift;
    this.maxRegisters = maxRegisters;
  }

  public int srsShift() {
    return srsShift;
  }

  public int ibsShift() {
    return ibsShift;
  }

  /** MSIR registers the format can address. */
  public int maxRegisters() {
    return maxRegisters;
  }

  public int maxVectors() {
    return maxRegisters * IRQS_PER_MSIR;
  }

  /** The data word that raises bit {@code bit} of MSIR {@code msir}. */
  public int encode(int msir, int bit) {
    return msir << srsShift | bit << ibsShift;
  }

  /** The MSIR index a data word selects. */
  public int msirOf(int data) {
    return (data >>> srsShift) & SRS_MASK;
  }

  /** The bit a data word selects. */
  public int bitOf(int data) {
    return (data >>> ibsShift) & IBS_MASK;
  }

  /** The format a bank of {@code vectors} needs: MSIIR up to 256, MSIIR1 beyond. */
  public static MsiirFormat forVectors(int vectors) {
    return vectors <= MSIIR.maxVectors() ? MSIIR : MSIIR1;
  }
}
