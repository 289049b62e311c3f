package io.iommulab.hardware.msi;

/**
 * Which banks a device's vectors come from. Linux "can allocate MSIs from the 3 banks any way it
 * wants" (2013 VFIO-PAMU thread); {@code fsl_setup_msi_irqs()} in
 * {@code arch/powerpc/sysdev/fsl_msi.c} takes, for each vector, the first bank on its list with a
 * free vector: that is {@link #PACK}. The others are what a kernel could do instead.
 */
public enum MsiAllocationPolicy {
  /** Round robin over the banks: each vector from the next bank with room after the last used. */
  SPREAD,
  /** The first bank with room, in bank order (what {@code fsl_setup_msi_irqs()} does). */
  PACK,
  /**
   * Keep one IOMMU group's vectors in as few banks as possible: prefer banks the group already
   * uses, then banks no other owner uses, then a bank that fits all remaining vectors, then the
   * emptiest. Lets VFIO groups of different VMs keep separate banks while banks last.
   */
  GROUP_AFFINE
}
