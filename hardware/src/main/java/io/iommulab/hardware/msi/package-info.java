/**
 * MPIC-style MSI banks: each a 4 KiB MSIIR page carrying many vectors, the policy that spreads a
 * device's vectors over the banks, and the interrupt-isolation bookkeeping of banks shared by
 * owners (VMs). Sources: {@code arch/powerpc/sysdev/fsl_msi.c} and
 * {@code drivers/vfio/vfio_iommu_fsl_pamu.c} (nxp-archive/openil_linux), and the 2013 thread
 * "RFC: vfio API changes needed for powerpc".
 *
 * <p>Errno contract: EINVAL for an argument out of range; ENOSPC when the banks lack free
 * vectors; ENOMEM when the fault injector fails site {@code "msi.vector"}; ENOENT when freeing a
 * vector that is not allocated. A refused call changes nothing (compare
 * {@link io.iommulab.hardware.msi.MsiBankSet#snapshot()}).
 */
package io.iommulab.hardware.msi;
