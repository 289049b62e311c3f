/**
 * The Java uAPI of the emulated kernel: {@link io.iommulab.host.uapi.IommuFd} is one open {@code
 * /dev/iommu} (one method per iommufd ioctl, with records named after the iommufd structs) and
 * {@link io.iommulab.host.uapi.VfioDevice} is one VFIO device cdev bound to it. Every method
 * returns a {@code CompletionStage<Outcome<T>>}: {@code Ok} with the ioctl's out fields, or {@code
 * Err} with the errno the kernel would return and a message naming the argument at fault. A stage
 * completes exceptionally only when the emulator itself fails (an ask timed out).
 *
 * <h2>Errno contract</h2>
 *
 * As {@code include/uapi/linux/iommufd.h} and {@code iommufd-uapi.md} §1–§4:
 *
 * <ul>
 *   <li><b>EOPNOTSUPP</b>: a known field with a value the kernel does not support (unknown flag,
 *       unknown type or option, a type DEFAULT).
 *   <li><b>EINVAL</b>: understood but wrong (zero or unaligned length, a start above its last, a
 *       HWPT_ALLOC pt of the wrong type, an attach to a HWPT the device or its group cannot use, a
 *       fault response code other than SUCCESS/INVALID or an unknown cookie).
 *   <li><b>ENOENT</b>: an ID or IOVA that does not exist (a missing, other-typed or being-destroyed
 *       object; an unmap that finds nothing or would cut an area; a copy source not covered by
 *       contiguous areas).
 *   <li><b>ENOMEM</b>: an allocation failed (injected) or RLIMIT_MEMLOCK would be exceeded.
 *   <li><b>EOVERFLOW</b>: arithmetic overflow (iova or length of ULONG_MAX, a wrapping range).
 *   <li><b>EEXIST</b>: a fixed IOVA over an existing area; a second vDEVICE of a device or a taken
 *       virt_id; a second vEVENTQ of a type.
 *   <li><b>EBUSY</b>: DESTROY of an object still referenced; an unmap racing a map of the same
 *       area; the same device attached twice; a device already bound here; RLIMIT_MODE change on an
 *       fd with objects.
 *   <li><b>ENOSPC</b>: no free IOVA range fits an automatic map.
 *   <li><b>EADDRINUSE</b>: reserved and allowed/mapped ranges meet (ALLOW_IOVAS, attach of a device
 *       whose reserved regions or whose domain's aperture exclude an existing mapping); raising the
 *       alignment over a nonconforming area.
 *   <li><b>EMSGSIZE</b>: IOAS_IOVA_RANGES with too small an array.
 *   <li><b>EPERM</b>: bind of a device whose group another owner holds, or whose IOMMU cannot
 *       isolate MSIs (unless allow-unsafe-interrupts); a WRITEABLE copy of read-only pages;
 *       RLIMIT_MODE SET without CAP_SYS_RESOURCE.
 *   <li><b>EFAULT</b>: a user VA outside the VM's memory, found when the pages are pinned.
 *   <li><b>ESPIPE</b>: a FAULT read whose count is not a multiple of the 40-byte record.
 *   <li><b>EIO</b>: an SMMUv3 vIOMMU command the kernel does not pass through, or an unknown vSID.
 *   <li><b>EBADF</b>: any call on a closed fd.
 * </ul>
 *
 * <p>A refused call changes nothing. The kernel's own exceptions are kept: an UNMAP that stops at
 * an area it may not remove (EBUSY, ENOENT) has removed the areas before it; a HWPT_INVALIDATE
 * keeps the effect of the entries before the failing one; a FAULT write keeps the responses before
 * the first bad one. Two ioctls write their struct back even when they fail, so their results
 * carry the errno beside the written-back fields instead of being an {@code Err}: {@code
 * IOAS_IOVA_RANGES} ({@link io.iommulab.host.uapi.IommuFd.IovaRanges}: EMSGSIZE and the number of
 * ranges needed) and {@code HWPT_INVALIDATE} ({@link
 * io.iommulab.host.uapi.IommuFd.HwptInvalidated}: the entry's errno and {@code entry_num}, the
 * entries handled).
 *
 * <h2>Modes</h2>
 *
 * The seed threads' designs are modes of the same fd ({@code ModeUapi} holds their constants),
 * each documented with its rules in its model class of {@code io.iommulab.actors.fd.model}:
 * snoop control ({@code SnoopControl}: IOAS_ALLOC / HWPT_ALLOC snoop flags, device info, attach
 * mismatch EINVAL, per-device KVM events); the legacy VFIO container ({@code VfioType1}: type1
 * over the compat IOAS — EEXIST on overlap, ENOSPC past {@code dma_entry_limit}, v1 / v2 unmap
 * rules, ENODEV without a compat IOAS, EINVAL before VFIO_SET_IOMMU); the VFIO-PAMU container
 * ({@code PamuIommu}: whole windows, EFAULT for physically discontiguous memory, EBUSY for
 * frozen geometry, ENOTTY for its ioctls on a type1 container); per-VM PASIDs with guest
 * page-table binding ({@code SvaPasids}: ENOSPC past the VM's quota, EPERM for a PASID the VM
 * does not hold, EOPNOTSUPP where the IOMMU binds whole PASID tables); software nesting ({@code
 * ShadowNesting}).
 */
package io.iommulab.host.uapi;
