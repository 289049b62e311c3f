package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;

/**
 * {@code struct iommu_hwpt_pgfault}, one 40-byte record read from a FAULT queue (6 × u32, u64
 * addr, u32 length, u32 cookie; {@code include/uapi/linux/iommufd.h}). Every record of one page
 * request group carries the group's {@code cookie}.
 *
 * @param flags {@link Uapi#PGFAULT_FLAGS_PASID_VALID}, {@link Uapi#PGFAULT_FLAGS_LAST_PAGE}
 * @param devId the device object ID of the requester
 * @param pasid the PASID when PASID_VALID
 * @param grpid the page request group index
 * @param perm {@link Uapi#PGFAULT_PERM_READ} ... bits
 * @param addr the faulting address (page aligned)
 * @param length 0: a page request is one page (the kernel fills 0)
 * @param cookie the group's cookie, at least 1, to answer with
 */
public record HwptPgfault(
    int flags, int devId, int pasid, int grpid, int perm, long addr, int length, int cookie)
    implements CborSerializable {}
