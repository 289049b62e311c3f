/**
 * The Freescale PAMU (Peripheral Access Management Unit) of the v3.11–v5.x window API: per-LIODN
 * primary entries, a shared pool of secondary (subwindow) entries, aperture/window domains, DMA
 * translation through the tables, the access-violation ISR, and the VFIO-PAMU map semantics.
 * Sources: {@code drivers/iommu/fsl_pamu.c}, {@code fsl_pamu.h}, {@code fsl_pamu_domain.c}
 * (WarrickJiang/linux-yocto-4.1), {@code drivers/vfio/vfio_iommu_fsl_pamu.c} and
 * {@code arch/powerpc/sysdev/fsl_msi.c} (nxp-archive/openil_linux), and the 2013 thread "RFC: vfio
 * API changes needed for powerpc".
 *
 * <p>Errno contract (the driver's where it has one): EINVAL for a rule broken by an argument
 * (sizes, alignment, window index, LIODN beyond the PPAACT, SPAACT exhausted); EBUSY for state
 * that forbids the call (geometry or count while enabled, window already enabled, LIODN attached
 * elsewhere, domain freed with LIODNs); ENODEV when windows are not configured or nothing is
 * mapped to enable; ENOENT for detaching a LIODN that is not attached; ENOMEM when the fault
 * injector fails site {@code "pamu.domain"} or {@code "pamu.spaace"}. A refused call changes
 * nothing: compare {@link io.iommulab.hardware.pamu.PamuUnit#snapshot()} before and after.
 */
package io.iommulab.hardware.pamu;
