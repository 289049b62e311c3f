package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The PAMU container mode (seed 003, "RFC: vfio API changes needed for powerpc", April 2013): the
 * fd's VFIO container with {@code VFIO_SET_IOMMU(VFIO_FSL_PAMU_IOMMU)} — the {@code struct
 * vfio_iommu} of {@code drivers/vfio/vfio_iommu_fsl_pamu.c} (nxp-archive/openil_linux). One PAMU
 * domain per container, every group of the container attached to it; the domain itself (aperture,
 * windows, enable state, the SPAACT) is the unit's ({@code PamuDomain}), this object is the VFIO
 * driver's view: its copy of the geometry, the DMA windows it pinned, the MSI banks it mapped.
 *
 * <p>Rules:
 *
 * <ul>
 *   <li>SET_IOMMU(FSL_PAMU) needs a group behind a PAMU in the container (EINVAL, {@code
 *       container.c}) and no type set yet (EINVAL); it allocates the domain and attaches every
 *       such group; a later group is attached at once, a group already in the container is EINVAL
 *       ({@code vfio_iommu_fsl_pamu_attach_group}). A non-PAMU group cannot join a PAMU container,
 *       nor a PAMU group a type1 one (EINVAL: no such domain on its IOMMU). Removing the last group
 *       tears the container down ("the IOMMU will be disabled and all state lost").
 *   <li>GET_ATTR(GEOMETRY) gives the aperture; GET_ATTR(WINDOWS) before the count is set gives the
 *       maximum ("before being set, reading it returns the maximum count"), capped at 256.
 *       SET_ATTR(GEOMETRY) takes {@code [aperture_start, aperture_end]}: a power-of-two size ≥
 *       4 KiB, start aligned to it (EINVAL), EBUSY while the aperture is enabled. SET_ATTR(WINDOWS):
 *       above 256 EINVAL ({@code vfio_handle_set_attr}); before a geometry EINVAL; a power of two
 *       up to the hardware's maximum; EBUSY while enabled ({@code fsl_pamu_set_windows}).
 *   <li>GET_MSI_BANK_COUNT: the number of MSI banks ({@code fsl_msi_get_region_count}): "how many
 *       aperture windows should be reserved for MSI banks". MAP_MSI_BANK{flags, index, iova}:
 *       no READ/WRITE EINVAL, an index with no bank EINVAL ({@code fsl_msi_get_region}), then
 *       the window holding {@code iova} maps the bank's 4 KiB MSIIR page (EBUSY for a window in
 *       use); it answers the MSI address devices must use: the window's iova plus the MSIIR's
 *       offset ({@code fsl_iommu_get_iova}). UNMAP_MSI_BANK{iova}: exactly a mapped bank's iova,
 *       else EINVAL. (The 2013 driver drops these errors and returns 0; the emulator returns
 *       them.)
 *   <li>MAP_DMA ({@code vfio_dma_do_map}, {@code __vfio_dma_map}): flags other than READ|WRITE, or
 *       neither, EINVAL; a wrapping iova or vaddr, or less than a page, EINVAL; overlap of a DMA
 *       mapping EBUSY; pins past RLIMIT_MEMLOCK ENOMEM (MM accounting); no window count ENODEV;
 *       "iova = aperture start + k·window" else EINVAL; whole windows only ("mapsize <
 *       page_size") EINVAL; each window physically contiguous ({@code vaddr_get_pfn}: "All Pages
 *       should be contigious") else EFAULT, as is a vaddr outside the VM's memory; the window's
 *       physical address naturally aligned (the unit, EINVAL). The first map enables the aperture.
 *       All or nothing.
 *   <li>UNMAP_DMA: flags must be 0 (EINVAL); every DMA window meeting the range is disabled
 *       whole and unpinned; the aperture is disabled once no DMA window is left. Answers the bytes
 *       unmapped (the 2013 ioctl writes nothing back; the emulator answers the size as type1 does).
 * </ul>
 *
 * <p>Invariants: every window in {@code windows} is pinned once (its pages object) and charged in
 * MM mode; {@code windowSize} is the aperture size over the window count the unit accepted; the
 * map of windows and MSI banks never overlap; after teardown everything is empty and uncharged.
 */
public final class PamuIommu {

  /** One DMA window the driver mapped: {@code size} bytes at {@code iova} from {@code vaddr}. */
  public record Window(long iova, long vaddr, long size, int prot, Pages pages) {}

  private final GuestMemoryLayout layout;
  private final Accounting accounting;
  private final FaultInjector injector;
  private final PinListener pins;
  private List<Long> msiBanks = List.of();
  private int unitId = -1;
  private int domainId = -1;
  private final List<Device> groups = new ArrayList<>();
  private long apertureStart;
  private long apertureEnd = -1;
  private int windowCount;
  private long windowSize;
  private final TreeMap<Long, Window> windows = new TreeMap<>(Long::compareUnsigned);
  private final TreeMap<Long, Integer> msiMaps = new TreeMap<>(Long::compareUnsigned);
  private int nextPagesId = -1;

  PamuIommu(GuestMemoryLayout layout, Accounting accounting, FaultInjector injector, PinListener pins) {
    this.layout = layout;
    this.accounting = accounting;
    this.injector = injector;
    this.pins = pins;
  }

  /** The host's MSI banks by index: each bank's MSIIR address ({@code fsl_msi_get_region}). */
  public void configureMsiBanks(List<Long> msiirAddresses) {
    msiBanks = List.copyOf(msiirAddresses);
  }

  public boolean isSet() {
    return domainId >= 0;
  }

  public int unitId() {
    return unitId;
  }

  public int domainId() {
    return domainId;
  }

  /** The groups (their first bound device) the container attached to its domain. */
  public List<Device> groups() {
    return List.copyOf(groups);
  }

  public boolean contains(Device d) {
    return groups.contains(d);
  }

  // ---------------------------------------------------------------- container set-up

  /** Devices behind a PAMU, bound to the fd, not yet in the container. */
  static List<Device> pamuDevices(IommufdCtx ctx) {
    List<Device> out = new ArrayList<>();
    for (Device d : ctx.objects().live(Device.class)) {
      if (d.info != null && d.info.kind() == io.iommulab.config.UnitKind.PAMU && !d.destroying) {
        out.add(d);
      }
    }
    return out;
  }

  /**
   * VFIO_SET_IOMMU(FSL_PAMU), first phase: EINVAL once a type is set or without a group behind
   * a PAMU; the devices to attach (all on one unit: a container has one domain) otherwise.
   */
  public Outcome<List<Device>> beginSetIommu(VfioType1 container, IommufdCtx ctx) {
    if (container.iommuType() != 0 || isSet()) {
      return Outcome.err(Errno.EINVAL, "the container's IOMMU is already set (type %d)", container.iommuType());
    }
    List<Device> devs = pamuDevices(ctx);
    if (devs.isEmpty()) {
      return Outcome.err(Errno.EINVAL, "no group behind a PAMU in the container");
    }
    int unit = devs.get(0).unitId();
    for (Device d : devs) {
      if (d.unitId() != unit) {
        return Outcome.err(
            Errno.EINVAL, "device %d sits behind another PAMU than device %d: one domain per container",
            d.id(), devs.get(0).id());
      }
    }
    return Outcome.ok(devs);
  }

  /** The unit allocated the domain and attached {@code attached}: the container is a PAMU one. */
  public void finishSetIommu(VfioType1 container, int unit, int domain, List<Device> attached, long apStart, long apLast) {
    unitId = unit;
    domainId = domain;
    groups.clear();
    groups.addAll(attached);
    apertureStart = apStart;
    apertureEnd = apLast;
    container.pamuSet();
  }

  /** A group joining a set PAMU container: EINVAL when it is in already or on another unit. */
  public Outcome<Void> checkAddGroup(Device d) {
    if (!isSet()) {
      return Outcome.err(Errno.EINVAL, "no PAMU IOMMU set on the container");
    }
    if (groups.contains(d)) {
      return Outcome.err(Errno.EINVAL, "device %d: its group is already in the container", d.id());
    }
    if (d.unitId() != unitId) {
      return Outcome.err(Errno.EINVAL, "device %d sits behind another IOMMU than the container's domain", d.id());
    }
    return Outcome.OK;
  }

  public void groupAdded(Device d) {
    groups.add(d);
  }

  /** The group of {@code d} was detached from the domain (unbind). */
  public void groupRemoved(Device d) {
    groups.remove(d);
  }

  // ---------------------------------------------------------------- attributes

  /** The geometry copy VFIO keeps after a SET_ATTR the unit accepted. */
  public void geometrySet(long start, long end) {
    apertureStart = start;
    apertureEnd = end;
    if (windowCount > 0) {
      windowSize = Long.divideUnsigned(end - start + 1, windowCount);
    }
    msiMaps.clear(); // the unit reprograms the LIODNs and clears every window (none is DMA: EBUSY)
  }

  public void windowCountSet(int count) {
    windowCount = count;
    windowSize = Long.divideUnsigned(apertureEnd - apertureStart + 1, count);
    msiMaps.clear(); // the unit clears every window (none is DMA: EBUSY while enabled)
  }

  /** SET_ATTR(GEOMETRY), the driver's checks: end below start EINVAL; the size to give the unit. */
  public static Outcome<Long> apertureSize(long start, long end) {
    if (Long.compareUnsigned(end, start) < 0) {
      return Outcome.err(Errno.EINVAL, "aperture_end 0x%x below aperture_start 0x%x", end, start);
    }
    long size = end - start + 1;
    if (size == 0) {
      return Outcome.err(Errno.EINVAL, "aperture [0x%x, 0x%x]: the whole 2^64 space", start, end);
    }
    return Outcome.ok(size);
  }

  /** SET_ATTR(WINDOWS), the driver's own check. */
  public static Outcome<Void> checkWindowCount(int count) {
    if (count < 0 || count > ModeUapi.VFIO_PAMU_MAX_WINDOWS) {
      return Outcome.err(
          Errno.EINVAL, "windows %d: VFIO-PAMU takes at most %d", count, ModeUapi.VFIO_PAMU_MAX_WINDOWS);
    }
    return Outcome.OK;
  }

  public int msiBankCount() {
    return msiBanks.size();
  }

  // ---------------------------------------------------------------- MSI banks

  /** MAP_MSI_BANK, the driver's checks: the bank's MSIIR address. */
  public Outcome<Long> checkMapMsiBank(int flags, int bankIndex) {
    if ((flags & (ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE)) == 0) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: neither READ nor WRITE", flags);
    }
    if (bankIndex < 0 || bankIndex >= msiBanks.size()) {
      return Outcome.err(Errno.EINVAL, "msi_bank_index %d: the host has %d MSI banks", bankIndex, msiBanks.size());
    }
    return Outcome.ok(msiBanks.get(bankIndex));
  }

  public void msiBankMapped(long iova, int bankIndex) {
    msiMaps.put(iova, bankIndex);
  }

  /** UNMAP_MSI_BANK: EINVAL unless a bank is mapped at exactly {@code iova}. */
  public Outcome<Void> checkUnmapMsiBank(long iova) {
    if (!msiMaps.containsKey(iova)) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x: no MSI bank mapped there", iova);
    }
    return Outcome.OK;
  }

  public void msiBankUnmapped(long iova) {
    msiMaps.remove(iova);
  }

  public Map<Long, Integer> msiMaps() {
    return java.util.Collections.unmodifiableMap(msiMaps);
  }

  // ---------------------------------------------------------------- DMA

  /** A DMA map in flight: its pinned windows, to install or to unpin. */
  public static final class MapOp {
    final List<Window> windows;
    final long iova;
    final int prot;

    MapOp(List<Window> windows, long iova, int prot) {
      this.windows = windows;
      this.iova = iova;
      this.prot = prot;
    }

    public long iova() {
      return iova;
    }

    public int prot() {
      return prot;
    }

    /** One physically contiguous run per window, for the unit's MapRange. */
    public long[][] runs(GuestMemoryLayout layout) {
      long[] hpas = new long[windows.size()];
      long[] lengths = new long[windows.size()];
      for (int i = 0; i < hpas.length; i++) {
        hpas[i] = layout.userVaToHpa(windows.get(i).vaddr);
        lengths[i] = windows.get(i).size;
      }
      return new long[][] {hpas, lengths};
    }
  }

  /**
   * MAP_DMA, first phase: the driver's checks in its order, then a pin of every window (all or
   * nothing). The owner installs the windows in the unit ({@code MapRange}), then {@link
   * #finishMap} or {@link #abortMap}.
   */
  public Outcome<MapOp> beginMap(int flags, long vaddr, long iova, long size) {
    if (!isSet()) {
      throw new IllegalStateException("PAMU map without a PAMU container");
    }
    int supported = ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE;
    if ((flags & ~supported) != 0 || (flags & supported) == 0) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: READ and/or WRITE only", flags);
    }
    if (IoPagetable.lastOf(iova, Math.max(size, 1)) == null || IoPagetable.lastOf(vaddr, Math.max(size, 1)) == null) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x or vaddr 0x%x + size 0x%x wraps", iova, vaddr, size);
    }
    long npage = Long.divideUnsigned(size, Uapi.PAGE_SIZE);
    if (npage == 0) {
      return Outcome.err(Errno.EINVAL, "size 0x%x: less than a page", size);
    }
    for (Window w : windows.values()) {
      if (overlaps(w.iova, w.size, iova, size)) {
        return Outcome.err(
            Errno.EBUSY, "[0x%x, +0x%x) overlaps the DMA window at 0x%x", iova, size, w.iova);
      }
    }
    if (windowCount == 0) {
      return Outcome.err(Errno.ENODEV, "the window count is not set (SET_ATTR WINDOWS first)");
    }
    List<Window> made = new ArrayList<>();
    long at = iova;
    for (long left = size; left != 0; left -= windowSize, at += windowSize) {
      long off = at - apertureStart;
      if (Long.compareUnsigned(at, apertureStart) < 0
          || Long.compareUnsigned(at, apertureEnd) > 0
          || Long.remainderUnsigned(off, windowSize) != 0) {
        unpin(made);
        return Outcome.err(
            Errno.EINVAL, "iova 0x%x: not aperture start 0x%x + k x window 0x%x", at, apertureStart, windowSize);
      }
      if (Long.compareUnsigned(left, windowSize) < 0) {
        unpin(made);
        return Outcome.err(
            Errno.EINVAL, "iova 0x%x: 0x%x bytes left, a window is 0x%x: whole windows only", at, left, windowSize);
      }
      long va = vaddr + (at - iova);
      if (!layout.containsUserRange(va, windowSize) || layout.contiguousBytes(va) < windowSize) {
        unpin(made);
        return Outcome.err(
            Errno.EFAULT, "vaddr [0x%x, +0x%x): not physically contiguous guest memory", va, windowSize);
      }
      Outcome<Pages> p =
          Pages.alloc(nextPagesId, va, windowSize, (flags & ModeUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0,
              Accounting.Mode.MM, injector);
      if (!p.isOk()) {
        unpin(made);
        return ((Outcome.Err<Pages>) p).cast();
      }
      Outcome<Void> pinned = p.value().pinRef(layout, accounting, injector, pins);
      if (!pinned.isOk()) {
        unpin(made);
        return pinned.map(v -> null);
      }
      nextPagesId--;
      made.add(new Window(at, va, windowSize, protOf(flags), p.value()));
    }
    return Outcome.ok(new MapOp(made, iova, protOf(flags)));
  }

  private static int protOf(int flags) {
    int prot = 0;
    if ((flags & ModeUapi.VFIO_DMA_MAP_FLAG_READ) != 0) {
      prot |= Access.READ;
    }
    if ((flags & ModeUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0) {
      prot |= Access.WRITE;
    }
    return prot;
  }

  private void unpin(List<Window> ws) {
    for (Window w : ws) {
      w.pages.unpinRef(accounting, pins);
    }
  }

  public void finishMap(MapOp op) {
    for (Window w : op.windows) {
      windows.put(w.iova, w);
    }
  }

  public void abortMap(MapOp op) {
    unpin(op.windows);
  }

  /** UNMAP_DMA, first phase: flags (EINVAL), an empty or wrapping range (EINVAL). */
  public Outcome<List<Window>> planUnmap(int flags, long iova, long size) {
    if (flags != 0) {
      return Outcome.err(Errno.EINVAL, "flags 0x%x: must be 0", flags);
    }
    if (size == 0 || IoPagetable.lastOf(iova, size) == null) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x + size 0x%x: empty or wrapping", iova, size);
    }
    List<Window> hit = new ArrayList<>();
    for (Window w : windows.values()) {
      if (overlaps(w.iova, w.size, iova, size)) {
        hit.add(w);
      }
    }
    return Outcome.ok(hit);
  }

  /** The unit disabled {@code hit}: unpin; returns the bytes unmapped. */
  public long finishUnmap(List<Window> hit) {
    long bytes = 0;
    for (Window w : hit) {
      windows.remove(w.iova);
      w.pages.unpinRef(accounting, pins);
      bytes += w.size;
    }
    return bytes;
  }

  /** Whether a device behind a PAMU is bound to the fd or the PAMU container is set. */
  public boolean pamuBound(IommufdCtx ctx) {
    return isSet() || !pamuDevices(ctx).isEmpty();
  }

  /** The DMA windows, in IOVA order. */
  public List<Window> windows() {
    return List.copyOf(windows.values());
  }

  public int windowCount() {
    return windowCount;
  }

  public boolean hasDma() {
    return !windows.isEmpty();
  }

  /** Container gone (last group removed, close): every pin released, the state reset. */
  public void reset(VfioType1 container) {
    for (Window w : windows.values()) {
      w.pages.unpinRef(accounting, pins);
    }
    windows.clear();
    msiMaps.clear();
    groups.clear();
    unitId = -1;
    domainId = -1;
    apertureStart = 0;
    apertureEnd = -1;
    windowCount = 0;
    windowSize = 0;
    container.pamuReset();
  }

  /** Charged pages by mode (for the fd's invariants): {user, mm}. */
  long[] chargedPages() {
    long mm = 0;
    for (Window w : windows.values()) {
      mm += w.pages.npages();
    }
    return new long[] {0, mm};
  }

  long pinnedPages() {
    return chargedPages()[1];
  }

  private static boolean overlaps(long aStart, long aLen, long bStart, long bLen) {
    long aLast = aStart + aLen - 1;
    long bLast = bStart + bLen - 1;
    return Long.compareUnsigned(aStart, bLast) <= 0 && Long.compareUnsigned(bStart, aLast) <= 0;
  }

  String summary() {
    if (!isSet()) {
      return "pamu-container unset";
    }
    StringBuilder sb = new StringBuilder("pamu-container unit=").append(unitId).append(" domain=").append(domainId);
    sb.append(String.format(" aperture=[0x%x,0x%x] windows=%d", apertureStart, apertureEnd, windowCount));
    sb.append(" groups=");
    for (Device d : groups) {
      sb.append(d.id()).append(',');
    }
    for (Window w : windows.values()) {
      sb.append(String.format(" dma@0x%x+0x%x", w.iova, w.size));
    }
    for (Map.Entry<Long, Integer> e : msiMaps.entrySet()) {
      sb.append(String.format(" msi%d@0x%x", e.getValue(), e.getKey()));
    }
    return sb.toString();
  }
}
