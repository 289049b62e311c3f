package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.List;

/**
 * The legacy VFIO container served on the fd: {@code /dev/vfio/vfio} ioctls (VFIO_SET_IOMMU,
 * VFIO_CHECK_EXTENSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA) over the
 * fd's compat IOAS ({@code ictx->vfio_ioas}), as iommufd serves them ({@code
 * drivers/iommu/iommufd/vfio_compat.c}) — with the mapping rules of the type1 driver itself
 * ({@code drivers/vfio/vfio_iommu_type1.c}), which is what a VMM written for type1 expects.
 *
 * <p>Structure (as {@code vfio_compat.c}): the container's mappings ({@code struct vfio_dma}) are
 * the areas of the compat IOAS — one MAP_DMA is one area — so pinning, accounting, domains,
 * replay into a domain added later and invalidation are the IOAS's. There is no second copy of
 * the mappings: a raw IOAS_MAP on the compat IOAS is a mapping of the container too. MAP_DMA pins
 * in MM mode ("Maps created through the legacy interface always use VFIO compatible rlimit
 * accounting").
 *
 * <p>Rules ({@code vfio_iommu_type1.c} unless noted):
 *
 * <ul>
 *   <li>The compat IOAS is created by the first group added to the container ({@code
 *       iommufd_vfio_compat_ioas_create}) or chosen with IOMMU_VFIO_IOAS SET; GET without one is
 *       ENODEV, SET of a missing IOAS ENOENT; DESTROY of the compat IOAS clears it ({@code
 *       main.c}).
 *   <li>VFIO_SET_IOMMU: EINVAL once a type is set ({@code container.c}: "container->iommu_driver");
 *       TYPE1 and TYPE1v2 need the compat IOAS (ENODEV: "VFIO fails the set_iommu if there is no
 *       group"); another type is EINVAL ({@code vfio_compat.c}). TYPE1 (v1) disables large pages
 *       so that any range can be unmapped ({@code iommufd_vfio_set_iommu}).
 *   <li>Before SET_IOMMU the container has no driver: MAP, UNMAP and GET_INFO are EINVAL ({@code
 *       container.c} {@code vfio_fops_unl_ioctl}).
 *   <li>MAP_DMA, in order ({@code vfio_dma_do_map}): flags other than READ|WRITE EINVAL (VADDR:
 *       "It is hard to see how this could be implemented safely", {@code vfio_compat.c}); no
 *       READ/WRITE, size 0, or size, iova or vaddr off the smallest IOMMU page → EINVAL; iova or
 *       vaddr wrapping → EINVAL; overlap of an existing mapping → EEXIST; {@code dma_avail == 0}
 *       → ENOSPC ({@code dma_entry_limit}, 65535 by default, CVE-2019-3882); outside the valid
 *       IOVA list (reserved regions, apertures) → EINVAL; pinning: EFAULT, ENOMEM.
 *   <li>UNMAP_DMA ({@code vfio_dma_do_unmap}): flags other than ALL → EINVAL; ALL with a nonzero
 *       iova or size → EINVAL; otherwise size 0, iova or size off the smallest page, or a wrapping
 *       range → EINVAL. v1: "an unmap request offset from the beginning of the original mapping
 *       will return success with zero sized unmap. And an unmap request covering the first iova
 *       of mapping will unmap the entire range." v2: "Unmap requests must fully cover previous
 *       mappings ... there must not be any previous mappings bisected by the range" (EINVAL);
 *       "The v2 interface will only return success and a size of zero if there were no mappings
 *       within the range." Mappings are taken in IOVA order from the lowest overlapping one (the
 *       newer kernels' {@code vfio_find_dma_first_node} walk).
 *   <li>GET_INFO: flags PGSIZES|CAPS, the page sizes ({@code vfio_pgsize_bitmap}: the AND of the
 *       domains' sizes, sub-page sizes folded into PAGE_SIZE), the IOVA_RANGE capability (holes of
 *       the reserved ranges) and DMA_AVAIL (mappings left under the limit; iommufd's compat
 *       reports U32_MAX, the emulator keeps type1's limit).
 *   <li>CHECK_EXTENSION: TYPE1, TYPE1v2, UNMAP_ALL 1; DMA_CC_IOMMU 1 when a type1 container is set
 *       and every domain of the compat IOAS enforces coherency; TYPE1_NESTING and UPDATE_VADDR 0
 *       ({@code vfio_compat.c}); FSL_PAMU 1 where a PAMU device is bound; on a PAMU container only
 *       FSL_PAMU answers 1 ({@code vfio_iommu_fsl_pamu.c}).
 * </ul>
 *
 * <p>Type1 operations are serialized by the owner (the driver's {@code iommu->lock}), so a plan
 * made here is still true when its IOAS unmap runs, unless the user races raw IOAS ioctls on the
 * compat IOAS (then the IOAS's own errnos apply).
 */
public final class VfioType1 {

  private final int dmaEntryLimit;
  private Ioas vfioIoas;
  private int iommuType;

  VfioType1(int dmaEntryLimit) {
    this.dmaEntryLimit = dmaEntryLimit;
  }

  /** The compat IOAS, or null. */
  public Ioas compatIoas() {
    return vfioIoas;
  }

  /** 0 until VFIO_SET_IOMMU, then the type set. */
  public int iommuType() {
    return iommuType;
  }

  public boolean isType1() {
    return iommuType == ModeUapi.VFIO_TYPE1_IOMMU || iommuType == ModeUapi.VFIO_TYPE1v2_IOMMU;
  }

  /** DESTROY of an IOAS: the compat IOAS pointer is cleared with it ({@code main.c}). */
  void ioasDestroyed(Ioas ioas) {
    if (vfioIoas == ioas) {
      vfioIoas = null;
    }
  }

  /** IOMMU_VFIO_IOAS: GET (ENODEV without one), SET (ENOENT), CLEAR; other ops EOPNOTSUPP. */
  public Outcome<Integer> vfioIoas(int op, int ioasId, IommufdCtx ctx) {
    switch (op) {
      case ModeUapi.VFIO_IOAS_GET:
        return vfioIoas == null
            ? Outcome.err(Errno.ENODEV, "no compat IOAS: attach a group or SET one")
            : Outcome.ok(vfioIoas.id());
      case ModeUapi.VFIO_IOAS_SET:
        Ioas ioas = ctx.ioas(ioasId);
        if (ioas == null) {
          return Outcome.err(Errno.ENOENT, "IOAS %d: no such object", ioasId);
        }
        vfioIoas = ioas;
        return Outcome.ok(ioasId);
      case ModeUapi.VFIO_IOAS_CLEAR:
        vfioIoas = null;
        return Outcome.ok(0);
      default:
        return Outcome.err(Errno.EOPNOTSUPP, "op %d: must be GET, SET or CLEAR", op);
    }
  }

  /**
   * {@code iommufd_vfio_compat_ioas_create}: the compat IOAS, created (and published like a user
   * object) when there is none. ENOMEM from the injector.
   */
  public Outcome<Ioas> compatIoasCreate(IommufdCtx ctx) {
    if (vfioIoas != null) {
      return Outcome.ok(vfioIoas);
    }
    Outcome<Integer> id = ctx.ioasAlloc(0);
    if (!id.isOk()) {
      return ((Outcome.Err<Integer>) id).cast();
    }
    vfioIoas = ctx.ioas(id.value());
    return Outcome.ok(vfioIoas);
  }

  /**
   * Undoes {@link #compatIoasCreate} when the SET_CONTAINER that created {@code created} is refused
   * (its group's attach failed), so the refused call changes nothing. The kernel creates the compat
   * IOAS in SET_CONTAINER and attaches later, at device open; here both are one call. An IOAS that
   * meanwhile got areas or users (another call found it) stays, as the kernel's would.
   */
  public void compatIoasAbort(IommufdCtx ctx, Ioas created) {
    if (vfioIoas != created || !created.iopt().areas().isEmpty()) {
      return;
    }
    if (ctx.beginDestroy(created.id()).isOk()) {
      vfioIoas = null;
    }
  }

  /** VFIO_SET_IOMMU of a type1 type (FSL_PAMU is the PAMU container's). */
  public Outcome<Void> setIommu(int type) {
    if (iommuType != 0) {
      return Outcome.err(Errno.EINVAL, "the container's IOMMU is already set (type %d)", iommuType);
    }
    if (type != ModeUapi.VFIO_TYPE1_IOMMU && type != ModeUapi.VFIO_TYPE1v2_IOMMU) {
      return Outcome.err(Errno.EINVAL, "type %d: not an IOMMU type this container offers", type);
    }
    if (vfioIoas == null) {
      return Outcome.err(Errno.ENODEV, "no group in the container (no compat IOAS)");
    }
    if (type == ModeUapi.VFIO_TYPE1_IOMMU) {
      Outcome<Void> o = vfioIoas.iopt().setLargePages(false);
      if (!o.isOk()) {
        return o;
      }
    }
    iommuType = type;
    return Outcome.OK;
  }

  /** The PAMU container took the container: no type1 type may be set any more. */
  void pamuSet() {
    iommuType = ModeUapi.VFIO_FSL_PAMU_IOMMU;
  }

  /** The PAMU container lost its last group: "effectively also returning the VFIO file ... to an initial state". */
  void pamuReset() {
    if (iommuType == ModeUapi.VFIO_FSL_PAMU_IOMMU) {
      iommuType = 0;
    }
  }

  /** VFIO_CHECK_EXTENSION; {@code pamuBound}: a device behind a PAMU is bound to the fd. */
  public int checkExtension(int extension, boolean pamuBound) {
    if (iommuType == ModeUapi.VFIO_FSL_PAMU_IOMMU) {
      return extension == ModeUapi.VFIO_FSL_PAMU_IOMMU ? 1 : 0;
    }
    switch (extension) {
      case ModeUapi.VFIO_TYPE1_IOMMU:
      case ModeUapi.VFIO_TYPE1v2_IOMMU:
      case ModeUapi.VFIO_UNMAP_ALL:
        return 1;
      case ModeUapi.VFIO_DMA_CC_IOMMU:
        if (!isType1() || vfioIoas == null) {
          return 0;
        }
        for (HwPagetable h : vfioIoas.hwpts) {
          if (!h.enforceCacheCoherency) {
            return 0;
          }
        }
        return 1;
      case ModeUapi.VFIO_FSL_PAMU_IOMMU:
        return pamuBound ? 1 : 0;
      default:
        return 0; // TYPE1_NESTING, UPDATE_VADDR and the rest
    }
  }

  private Outcome<Ioas> driver() {
    if (!isType1()) {
      return Outcome.err(Errno.EINVAL, "no type1 IOMMU set on the container (VFIO_SET_IOMMU first)");
    }
    if (vfioIoas == null) {
      return Outcome.err(Errno.ENODEV, "the compat IOAS was destroyed or cleared");
    }
    return Outcome.ok(vfioIoas);
  }

  /** {@code vfio_pgsize_bitmap}: the AND of the domains' page sizes, at least PAGE_SIZE. */
  public long pgsizeBitmap() {
    long bitmap = Uapi.ULONG_MAX;
    if (vfioIoas != null) {
      for (HwPagetable h : vfioIoas.hwpts) {
        bitmap &= h.pgsizeBitmap;
      }
    }
    if ((bitmap & (Uapi.PAGE_SIZE - 1)) != 0) {
      bitmap &= -Uapi.PAGE_SIZE;
      bitmap |= Uapi.PAGE_SIZE;
    }
    return bitmap;
  }

  private long mask() {
    return Long.lowestOneBit(pgsizeBitmap()) - 1;
  }

  /** {@code iommu->dma_avail}: mappings left under {@code dma_entry_limit}. */
  public int dmaAvail() {
    int used = vfioIoas == null ? 0 : vfioIoas.iopt().areaCount();
    return Math.max(dmaEntryLimit - used, 0);
  }

  /** What VFIO_IOMMU_GET_INFO writes back. */
  public record Info(int flags, long iovaPgsizes, List<IovaRange> iovaRanges, int dmaAvail) {}

  public Outcome<Info> info() {
    Outcome<Ioas> d = driver();
    if (!d.isOk()) {
      return ((Outcome.Err<Ioas>) d).cast();
    }
    return Outcome.ok(
        new Info(
            ModeUapi.VFIO_IOMMU_INFO_PGSIZES | ModeUapi.VFIO_IOMMU_INFO_CAPS,
            pgsizeBitmap(),
            d.value().iopt().iovaRanges(),
            dmaAvail()));
  }

  /**
   * VFIO_IOMMU_MAP_DMA up to the IOAS: the checks of {@code vfio_dma_do_map} before pinning.
   * Returns the compat IOAS to map into (fixed IOVA, MM accounting); its own checks (reserved
   * ranges and apertures EINVAL, pinning EFAULT / ENOMEM) follow.
   */
  public Outcome<Ioas> checkMap(int flags, long vaddr, long iova, long size) {
    Outcome<Ioas> d = driver();
    if (!d.isOk()) {
      return d;
    }
    int supported = ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE;
    if ((flags & ~supported) != 0) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: only READ and WRITE are supported", flags);
    }
    long mask = mask();
    if ((flags & supported) == 0 || size == 0 || ((size | iova | vaddr) & mask) != 0) {
      return Outcome.err(
          Errno.EINVAL,
          "flags 0x%x, size 0x%x, iova 0x%x, vaddr 0x%x: READ or WRITE, a nonzero size, all aligned to 0x%x",
          flags, size, iova, vaddr, mask + 1);
    }
    if (IoPagetable.lastOf(iova, size) == null || IoPagetable.lastOf(vaddr, size) == null) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x or vaddr 0x%x + size 0x%x wraps", iova, vaddr, size);
    }
    Area a = d.value().iopt().firstArea(iova, iova + size - 1);
    if (a != null) {
      return Outcome.err(
          Errno.EEXIST, "[0x%x, +0x%x) overlaps the mapping [0x%x, 0x%x]", iova, size, a.iova, a.last);
    }
    if (dmaAvail() == 0) {
      return Outcome.err(Errno.ENOSPC, "dma_entry_limit: %d mappings in the container", dmaEntryLimit);
    }
    return d;
  }

  /**
   * What an UNMAP_DMA removes: the whole areas in {@code [iova, last]} (one IOAS unmap of that
   * hull, whose every area is taken; none when {@code bytes == 0}), or everything ({@code all}:
   * IOAS unmap-all).
   */
  public record UnmapPlan(Ioas ioas, boolean all, long iova, long last, long bytes) {}

  public Outcome<UnmapPlan> planUnmap(int flags, long iova, long size) {
    Outcome<Ioas> d = driver();
    if (!d.isOk()) {
      return ((Outcome.Err<Ioas>) d).cast();
    }
    Ioas ioas = d.value();
    if ((flags & ~ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL) != 0) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: only ALL is supported", flags);
    }
    boolean all = (flags & ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL) != 0;
    long last;
    if (all) {
      if (iova != 0 || size != 0) {
        return Outcome.err(Errno.EINVAL, "UNMAP_ALL with iova 0x%x, size 0x%x: both must be 0", iova, size);
      }
      last = Uapi.ULONG_MAX;
    } else {
      long mask = mask();
      if (size == 0 || ((size | iova) & mask) != 0) {
        return Outcome.err(
            Errno.EINVAL, "iova 0x%x, size 0x%x: a nonzero size, both aligned to 0x%x", iova, size, mask + 1);
      }
      Long l = IoPagetable.lastOf(iova, size);
      if (l == null) {
        return Outcome.err(Errno.EINVAL, "iova 0x%x + size 0x%x wraps", iova, size);
      }
      last = l;
    }
    List<Area> in = new ArrayList<>();
    for (Area a : ioas.iopt().areasIn(iova, last)) {
      if (a.state != Area.State.UNMAPPING) {
        in.add(a);
      }
    }
    boolean v2 = iommuType == ModeUapi.VFIO_TYPE1v2_IOMMU;
    if (v2 && !all && !in.isEmpty()) {
      Area first = in.get(0);
      if (Long.compareUnsigned(first.iova, iova) < 0) {
        return Outcome.err(
            Errno.EINVAL, "iova 0x%x bisects the mapping [0x%x, 0x%x] (TYPE1v2)", iova, first.iova, first.last);
      }
      Area end = in.get(in.size() - 1);
      if (Long.compareUnsigned(last, end.last) < 0) {
        return Outcome.err(
            Errno.EINVAL, "last 0x%x bisects the mapping [0x%x, 0x%x] (TYPE1v2)", last, end.iova, end.last);
      }
    }
    if (all) {
      long bytes = 0;
      for (Area a : in) {
        bytes += a.length();
      }
      return Outcome.ok(new UnmapPlan(ioas, true, 0, Uapi.ULONG_MAX, bytes));
    }
    long bytes = 0;
    long hullStart = 0;
    long hullLast = 0;
    for (Area a : in) {
      if (!v2 && Long.compareUnsigned(iova, a.iova) > 0) {
        break; // v1: "offset from the beginning of the original mapping ... zero sized unmap"
      }
      if (bytes == 0) {
        hullStart = a.iova;
      }
      hullLast = a.last; // v1: the whole mapping, even past the request's end
      bytes += a.length();
    }
    return Outcome.ok(new UnmapPlan(ioas, false, hullStart, hullLast, bytes));
  }

  /** One line for snapshots. */
  String summary() {
    return "vfio-container type=" + iommuType + " compat-ioas=" + (vfioIoas == null ? 0 : vfioIoas.id());
  }
}
