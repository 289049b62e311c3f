package io.iommulab.hardware.pamu;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.msi.MsiBank;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;

/**
 * A PAMU domain (an {@code iommu_domain} of {@code drivers/iommu/fsl_pamu_domain.c}): an aperture,
 * a number of equal windows in it, each optionally enabled onto a physical range, the LIODNs
 * attached, and whether DMA is enabled. On top sits the VFIO-PAMU contract of
 * {@code drivers/vfio/vfio_iommu_fsl_pamu.c} (nxp-archive/openil_linux): {@link #map} covers whole
 * windows and enables the domain, {@link #unmap} disables it once nothing is mapped, and
 * {@link #mapMsiBank} gives an MSI bank's 4 KiB MSIIR page a whole window.
 *
 * <p>Rules, each returning the driver's errno (order as in the driver):
 *
 * <ul>
 *   <li>{@link #setGeometry}: size a power of two ≥ 4 KiB, start aligned to it (EINVAL); EBUSY
 *       while enabled ({@code configure_domain_geometry}).
 *   <li>{@link #setWindowCount}: EBUSY while enabled; EINVAL before any geometry; a power of two
 *       ≤ the hardware maximum (EINVAL) ({@code fsl_pamu_set_windows}). Each attached LIODN of a
 *       multi-window domain gets its own {@code count - 1} contiguous SPAACEs from the shared pool
 *       ({@code pamu_config_ppaace}): EINVAL when the pool has no such run, ENOMEM when the
 *       injector fails site {@code "pamu.spaace"}.
 *   <li>{@link #windowEnable}: ENODEV before a window count; w &lt; count, size ≤ subwindow size,
 *       a power of two ≥ 4 KiB (EINVAL); with one window EBUSY while enabled and the aperture
 *       start aligned to the size (EINVAL); EBUSY when the window is already enabled
 *       ({@code fsl_pamu_window_enable}, {@code pamu_config_spaace}).
 *   <li>{@link #enable}: ENODEV when no window is enabled ({@code configure_domain_dma_state}).
 *   <li>{@link #attach}: EINVAL for a LIODN beyond the PPAACT ({@code handle_attach_device}).
 * </ul>
 *
 * <p>Invariants ({@link #checkInvariants()}):
 *
 * <ul>
 *   <li>{@code mappedWindows} equals the number of enabled windows; an enabled domain has at least
 *       one enabled window (the model disables the domain when its last window goes).
 *   <li>Geometry and window count never change while the domain is enabled (EBUSY).
 *   <li>Once the window count is set, every attached LIODN's PPAACE carries the domain's geometry
 *       and window count, and its subwindow entries mirror the domain's windows.
 *   <li>A LIODN is attached to at most one domain ({@link PamuUnit} checks the cross links).
 * </ul>
 *
 * <p>Deviations from the 4.1 driver, each to keep the model's state consistent (see also the
 * method docs): the SPAACEs a LIODN held are freed when the window count changes (the driver
 * allocates fresh ones and leaks the old); a domain is freed only without LIODNs (EBUSY; the
 * driver detaches them); attaching a LIODN attached elsewhere is EBUSY (the 4.1 driver detaches
 * it from the old domain, later iommu cores refuse); window sizes are checked whether or not a
 * LIODN is attached (the driver checks them only while programming a PAACE); the domain is
 * disabled whenever its last enabled window is disabled (the driver does this for one window
 * only).
 */
public final class PamuDomain {
  /** Window index meaning "every window" for {@link #setStash} and {@link #setOperationMapping}. */
  public static final int ALL_WINDOWS = -1;
  /** {@code PAMU_PAGE_SIZE}. */
  public static final long PAMU_PAGE_SIZE = 4096;
  /** Operation-mapping table entries ({@code OME_NUMBER_ENTRIES}); an OMI must be below. */
  public static final int OMI_LIMIT = 16;
  /** Size of an MSI bank's region ({@code fsl_msi_get_region}: 0x1000). */
  public static final long MSI_REGION_SIZE = 0x1000;

  /** Who enabled a window. */
  public enum WindowUse {
    NONE,
    /** {@link #windowEnable} directly (the iommu API). */
    WINDOW,
    /** {@link #map} (VFIO DMA map). */
    DMA,
    /** {@link #mapMsiBank}. */
    MSI
  }

  private final PamuUnit unit;
  private final int id;
  private long apertureStart;
  private long apertureSize;
  private boolean geometrySet;
  /** The configured window count; 0 until {@link #setWindowCount}. */
  private int count;
  private boolean enabled;
  private boolean freed;
  private int mapped;
  private int dmaWindows;
  private final BitSet liodns = new BitSet();

  private final boolean[] valid;
  private final long[] paddr;
  private final long[] size;
  private final int[] prot;
  private final int[] stash;
  private final int[] omi;
  private final WindowUse[] use;
  private final int[] msiBank;
  private final long[] msiMapIova;

  PamuDomain(PamuUnit unit, int id) {
    this.unit = unit;
    this.id = id;
    this.apertureStart = unit.settings().defaultApertureStart();
    this.apertureSize = unit.settings().defaultApertureSize();
    int max = unit.maxWindows();
    valid = new boolean[max];
    paddr = new long[max];
    size = new long[max];
    prot = new int[max];
    stash = new int[max];
    omi = new int[max];
    use = new WindowUse[max];
    msiBank = new int[max];
    msiMapIova = new long[max];
    resetWindows();
  }

  private void resetWindows() {
    Arrays.fill(valid, false);
    Arrays.fill(paddr, 0);
    Arrays.fill(size, 0);
    Arrays.fill(prot, 0);
    Arrays.fill(stash, Paace.NONE);
    Arrays.fill(omi, Paace.NONE);
    Arrays.fill(use, WindowUse.NONE);
    Arrays.fill(msiBank, -1);
    Arrays.fill(msiMapIova, 0);
    mapped = 0;
    dmaWindows = 0;
  }

  static boolean validAperture(long start, long size) {
    return size >= PAMU_PAGE_SIZE
        && Long.bitCount(size) == 1
        && (start & (size - 1)) == 0
        && Long.compareUnsigned(start + size - 1, start) >= 0;
  }

  private void live() {
    if (freed) {
      throw new IllegalStateException("PAMU domain " + id + " used after free");
    }
  }

  // ---------------------------------------------------------------- geometry and windows

  /**
   * {@code DOMAIN_ATTR_GEOMETRY}: the aperture {@code [start, start + size)}. The driver only
   * records it; once a window count is set the model also reprograms the attached LIODNs and
   * clears the windows, as {@link #setWindowCount} with the same count would (the driver would
   * leave PAACEs of the old geometry behind).
   *
   * @return EINVAL unless size is a power of two ≥ 4 KiB and start is size-aligned; EBUSY while
   *     enabled; with a window count set, the errors of {@link #setWindowCount}
   */
  public Outcome<Void> setGeometry(long start, long size) {
    live();
    if (size < PAMU_PAGE_SIZE || Long.bitCount(size) != 1) {
      return Outcome.err(Errno.EINVAL, "aperture size 0x%x: not a power of two >= 4 KiB", size);
    }
    if ((start & (size - 1)) != 0) {
      return Outcome.err(Errno.EINVAL, "aperture start 0x%x: not aligned to its size 0x%x", start, size);
    }
    if (Long.compareUnsigned(start + size - 1, start) < 0) {
      return Outcome.err(Errno.EINVAL, "aperture [0x%x, +0x%x): wraps past 2^64", start, size);
    }
    if (enabled) {
      return Outcome.err(Errno.EBUSY, "domain %d: enabled, geometry is frozen", id);
    }
    if (count > 0) {
      Outcome<Void> r = configure(count, start, size);
      if (!r.isOk()) {
        return r;
      }
    }
    apertureStart = start;
    apertureSize = size;
    geometrySet = true;
    return Outcome.OK;
  }

  /**
   * {@code DOMAIN_ATTR_WINDOWS}: splits the aperture into {@code n} windows of
   * {@code aperture / n}, window i starting at {@code start + i * size}. Clears every window and
   * reprograms every attached LIODN (V clear: DMA stays off until {@link #enable}); a multi-window
   * LIODN gets {@code n - 1} contiguous SPAACEs, all LIODNs or none.
   *
   * @return EBUSY while enabled; EINVAL before a geometry, for a count that is not a power of two
   *     up to {@link PamuUnit#maxWindows()}, for windows below 4 KiB, or when the SPAACT has no
   *     free run of n−1 entries for some LIODN; ENOMEM when the injector fails "pamu.spaace"
   */
  public Outcome<Void> setWindowCount(int n) {
    live();
    if (enabled) {
      return Outcome.err(Errno.EBUSY, "domain %d: enabled, window count is frozen", id);
    }
    if (!geometrySet) {
      return Outcome.err(Errno.EINVAL, "domain %d: set the geometry before the window count", id);
    }
    if (n < 1 || Integer.bitCount(n) != 1 || n > unit.maxWindows()) {
      return Outcome.err(
          Errno.EINVAL, "window count %d: not a power of two up to %d", n, unit.maxWindows());
    }
    return configure(n, apertureStart, apertureSize);
  }

  private Outcome<Void> configure(int n, long start, long apSize) {
    long sub = apSize / n;
    if (sub < PAMU_PAGE_SIZE) {
      return Outcome.err(
          Errno.EINVAL, "window count %d: windows of 0x%x bytes are below 4 KiB", n, sub);
    }
    int[] attached = liodns.stream().toArray();
    int[] fspi = new int[attached.length];
    SpaactPool.Saved saved = unit.pool.save();
    for (int l : attached) {
      Paace p = unit.ppaact[l];
      if (p.multiWindow) {
        unit.pool.free(p.fspi, subwindows(p) - 1);
      }
    }
    if (n > 1) {
      for (int i = 0; i < attached.length; i++) {
        if (unit.injector().shouldFail("pamu.spaace")) {
          unit.pool.restore(saved);
          return Outcome.err(
              Errno.ENOMEM, "liodn %d: SPAACE allocation failed (injected)", attached[i]);
        }
        int f = unit.pool.allocate(n - 1);
        if (f < 0) {
          int largest = unit.pool.largestFreeRun();
          unit.pool.restore(saved);
          return Outcome.err(
              Errno.EINVAL,
              "liodn %d: SPAACT exhausted, %d contiguous entries needed, longest free run %d",
              attached[i], n - 1, largest);
        }
        fspi[i] = f;
      }
    }
    for (int l : attached) {
      clearSpaaces(unit.ppaact[l]);
    }
    apertureStart = start;
    apertureSize = apSize;
    count = n;
    resetWindows();
    for (int i = 0; i < attached.length; i++) {
      programBase(attached[i], fspi[i]);
    }
    return Outcome.OK;
  }

  private static int subwindows(Paace p) {
    return 1 << (p.wce + 1);
  }

  private void clearSpaaces(Paace p) {
    if (p.multiWindow) {
      for (int i = p.fspi; i < p.fspi + subwindows(p) - 1; i++) {
        unit.spaact[i].clear();
      }
    }
  }

  /**
   * {@code iommu_domain_window_enable}: maps window {@code w} onto {@code [paddr, paddr + size)}
   * with {@link Access} READ/WRITE bits {@code prot}. The physical range must be naturally aligned
   * to its size: the VFIO-PAMU header states it ("physical address of the mapping must be
   * naturally aligned with the mapping size") and the translated base has no low bits; the
   * driver does not check it, the model refuses with EINVAL (a hardware requirement, inferred).
   *
   * @return see the class Javadoc; EINVAL also for a misaligned or wrapping physical range
   */
  public Outcome<Void> windowEnable(int w, long paddr, long size, int prot) {
    live();
    Outcome<Void> refused = checkWindowEnable(w, paddr, size);
    if (refused != null) {
      return refused;
    }
    enableWindow(w, paddr, size, prot, WindowUse.WINDOW);
    return Outcome.OK;
  }

  private Outcome<Void> checkWindowEnable(int w, long pa, long sz) {
    if (count == 0) {
      return Outcome.err(Errno.ENODEV, "domain %d: window count not set", id);
    }
    if (w < 0 || w >= count) {
      return Outcome.err(Errno.EINVAL, "window %d: domain has %d", w, count);
    }
    long sub = windowSize();
    if (Long.compareUnsigned(sz, sub) > 0) {
      return Outcome.err(Errno.EINVAL, "size 0x%x: larger than the window size 0x%x", sz, sub);
    }
    if (count == 1 && enabled) {
      return Outcome.err(Errno.EBUSY, "domain %d: single window while enabled; disable first", id);
    }
    if (sz < PAMU_PAGE_SIZE || Long.bitCount(sz) != 1) {
      return Outcome.err(Errno.EINVAL, "size 0x%x: not a power of two >= 4 KiB", sz);
    }
    if (count == 1 && (apertureStart & (sz - 1)) != 0) {
      return Outcome.err(
          Errno.EINVAL, "size 0x%x: aperture start 0x%x is not aligned to it", sz, apertureStart);
    }
    if ((pa & (sz - 1)) != 0) {
      return Outcome.err(
          Errno.EINVAL, "paddr 0x%x: not naturally aligned to the size 0x%x", pa, sz);
    }
    if (Long.compareUnsigned(pa + sz - 1, pa) < 0) {
      return Outcome.err(Errno.EINVAL, "paddr 0x%x + 0x%x: wraps past 2^64", pa, sz);
    }
    if (valid[w]) {
      return Outcome.err(Errno.EBUSY, "window %d: already enabled; disable it first", w);
    }
    return null;
  }

  private void enableWindow(int w, long pa, long sz, int pr, WindowUse u) {
    valid[w] = true;
    paddr[w] = pa;
    size[w] = sz;
    prot[w] = pr & Access.READ_WRITE;
    use[w] = u;
    mapped++;
    if (u == WindowUse.DMA) {
      dmaWindows++;
    }
    for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
      programWindow(l, w);
    }
  }

  /**
   * {@code iommu_domain_window_disable}: subwindow 0 gets AP=deny (it lives in the PPAACE), the
   * others lose their SPAACE V bit ({@code pamu_disable_spaace}). Disabling a window that is not
   * enabled does nothing, as in the driver. When the last enabled window goes while the domain is
   * enabled the domain is disabled: the driver does this for a single window, the model for any
   * count, so an enabled domain always has a window.
   *
   * @return ENODEV before a window count, EINVAL for a window index out of range
   */
  public Outcome<Void> windowDisable(int w) {
    live();
    if (count == 0) {
      return Outcome.err(Errno.ENODEV, "domain %d: window count not set", id);
    }
    if (w < 0 || w >= count) {
      return Outcome.err(Errno.EINVAL, "window %d: domain has %d", w, count);
    }
    if (valid[w]) {
      disableWindow(w);
    }
    return Outcome.OK;
  }

  private void disableWindow(int w) {
    if (use[w] == WindowUse.DMA) {
      dmaWindows--;
    }
    valid[w] = false;
    use[w] = WindowUse.NONE;
    msiBank[w] = -1;
    msiMapIova[w] = 0;
    mapped--;
    for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
      Paace p = unit.ppaact[l];
      if (count > 1 && w > 0) {
        unit.spaact[p.fspi + w - 1].valid = false;
      } else {
        p.ap = Paace.AP_DENIED;
      }
    }
    if (enabled && mapped == 0) {
      disable();
    }
  }

  // ---------------------------------------------------------------- enable and disable

  /**
   * {@code DOMAIN_ATTR_FSL_PAMU_ENABLE = 1}: sets V on every attached LIODN's PPAACE. Also
   * re-enables LIODNs the violation ISR disabled.
   *
   * @return ENODEV when no window is enabled
   */
  public Outcome<Void> enable() {
    live();
    if (mapped == 0) {
      return Outcome.err(Errno.ENODEV, "domain %d: nothing mapped, cannot enable DMA", id);
    }
    enabled = true;
    for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
      unit.ppaact[l].valid = true;
    }
    return Outcome.OK;
  }

  /** {@code DOMAIN_ATTR_FSL_PAMU_ENABLE = 0}: clears V on every attached LIODN. */
  public Outcome<Void> disable() {
    live();
    enabled = false;
    for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
      unit.ppaact[l].valid = false;
    }
    return Outcome.OK;
  }

  // ---------------------------------------------------------------- attach and detach

  /**
   * Attaches {@code liodn}. With a window count set this programs the PPAACE (and, for several
   * windows, {@code count - 1} fresh contiguous SPAACEs) from the domain's geometry and windows,
   * with V set exactly when the domain is enabled (the 4.1 driver leaves V clear until the next
   * enable). Without a window count the driver programs nothing: the LIODN keeps its default
   * bypass entry until {@link #setWindowCount}. Attaching a LIODN again to the same domain
   * reprograms it (and so re-enables it when the domain is enabled).
   *
   * @return EINVAL for a LIODN beyond the PPAACT or when the SPAACT lacks a run of count−1;
   *     EBUSY when it is attached to another domain; ENOMEM when the injector fails "pamu.spaace"
   */
  public Outcome<Void> attach(int liodn) {
    live();
    if (liodn < 0 || liodn >= unit.liodnCount()) {
      return Outcome.err(Errno.EINVAL, "liodn %d: beyond the PPAACT (%d entries)", liodn, unit.liodnCount());
    }
    PamuDomain current = unit.liodnDomain[liodn];
    if (current != null && current != this) {
      return Outcome.err(Errno.EBUSY, "liodn %d: attached to domain %d", liodn, current.id);
    }
    if (current == this) {
      if (count > 0) {
        programLiodn(liodn, unit.ppaact[liodn].fspi);
      }
      return Outcome.OK;
    }
    int fspi = 0;
    if (count > 1) {
      if (unit.injector().shouldFail("pamu.spaace")) {
        return Outcome.err(Errno.ENOMEM, "liodn %d: SPAACE allocation failed (injected)", liodn);
      }
      fspi = unit.pool.allocate(count - 1);
      if (fspi < 0) {
        return Outcome.err(
            Errno.EINVAL,
            "liodn %d: SPAACT exhausted, %d contiguous entries needed, longest free run %d",
            liodn, count - 1, unit.pool.largestFreeRun());
      }
    }
    unit.liodnDomain[liodn] = this;
    liodns.set(liodn);
    if (count > 0) {
      programLiodn(liodn, fspi);
    }
    return Outcome.OK;
  }

  /**
   * Detaches {@code liodn}: frees its SPAACEs and restores the default entry, which is valid and
   * bypasses translation ({@code remove_device_ref}, {@code enable_default_dma_window}).
   *
   * @return EINVAL for a LIODN beyond the PPAACT, ENOENT when it is not attached here
   */
  public Outcome<Void> detach(int liodn) {
    live();
    if (liodn < 0 || liodn >= unit.liodnCount()) {
      return Outcome.err(Errno.EINVAL, "liodn %d: beyond the PPAACT (%d entries)", liodn, unit.liodnCount());
    }
    if (unit.liodnDomain[liodn] != this) {
      return Outcome.err(Errno.ENOENT, "liodn %d: not attached to domain %d", liodn, id);
    }
    Paace p = unit.ppaact[liodn];
    if (p.multiWindow) {
      clearSpaaces(p);
      unit.pool.free(p.fspi, subwindows(p) - 1);
    }
    p.setDefault();
    unit.liodnDomain[liodn] = null;
    liodns.clear(liodn);
    return Outcome.OK;
  }

  /**
   * Frees the domain. The driver detaches every LIODN first; the model refuses instead, so a
   * caller cannot silently hand devices back to bypass.
   *
   * @return EBUSY while LIODNs are attached
   */
  public Outcome<Void> free() {
    live();
    if (!liodns.isEmpty()) {
      return Outcome.err(Errno.EBUSY, "domain %d: LIODNs %s still attached", id, liodns);
    }
    freed = true;
    enabled = false;
    unit.forget(this);
    return Outcome.OK;
  }

  /** {@code pamu_set_liodn} then {@code map_liodn}, then V as the domain's enable state. */
  private void programLiodn(int l, int fspi) {
    programBase(l, fspi);
    for (int w = 0; w < count; w++) {
      if (valid[w]) {
        programWindow(l, w);
      }
    }
    unit.ppaact[l].valid = enabled;
  }

  /** {@code pamu_set_liodn}: geometry, window count, every (sub)window disabled, V clear. */
  private void programBase(int l, int fspi) {
    Paace p = unit.ppaact[l];
    p.clear();
    p.coherent = true;
    p.wba = apertureStart;
    p.wse = Paace.encodeSize(apertureSize);
    p.atm = Paace.ATM_WINDOW_XLATE;
    p.ap = Paace.AP_DENIED;
    p.cid = stash[0];
    p.omi = omi[0];
    if (count > 1) {
      int subCode = Paace.encodeSize(windowSize());
      p.multiWindow = true;
      p.wce = Paace.encodeCount(count);
      p.fspi = fspi;
      p.swse = subCode;
      for (int w = 1; w < count; w++) {
        Paace s = unit.spaact[fspi + w - 1];
        s.clear();
        s.coherent = true;
        s.liodn = l;
        s.atm = Paace.ATM_WINDOW_XLATE;
        s.ap = Paace.AP_DENIED;
        s.swse = subCode;
        s.cid = stash[w];
        s.omi = omi[w];
      }
    }
  }

  /** {@code update_liodn}: one enabled window into the LIODN's entries. */
  private void programWindow(int l, int w) {
    Paace p = unit.ppaact[l];
    if (count > 1) {
      Paace e = w == 0 ? p : unit.spaact[p.fspi + w - 1];
      e.swse = Paace.encodeSize(size[w]);
      e.atm = Paace.ATM_WINDOW_XLATE;
      e.twba = paddr[w];
      e.ap = prot[w];
      e.cid = stash[w];
      e.omi = omi[w];
      if (w > 0) {
        e.valid = true;
      }
    } else {
      // map_win: the single window shrinks the PPAACE window to the enabled size
      p.wba = apertureStart;
      p.wse = Paace.encodeSize(size[0]);
      p.atm = Paace.ATM_WINDOW_XLATE;
      p.twba = paddr[0];
      p.ap = prot[0];
      p.cid = stash[0];
      p.omi = omi[0];
    }
  }

  private Paace entry(int l, int w) {
    Paace p = unit.ppaact[l];
    return count > 1 && w > 0 ? unit.spaact[p.fspi + w - 1] : p;
  }

  // ---------------------------------------------------------------- stash and operation mapping

  /**
   * {@code DOMAIN_ATTR_FSL_PAMU_STASH}: the cache stash target (CID) of one window or of
   * {@link #ALL_WINDOWS}. Allowed while enabled: live PAACEs are updated in place
   * ({@code pamu_update_paace_field}).
   *
   * @return ENODEV before a window count; EINVAL for a window out of range or a stash id that is
   *     not an 8-bit CID (the driver's {@code get_stash_id} failing)
   */
  public Outcome<Void> setStash(int window, int stashId) {
    live();
    Outcome<Void> refused = checkAttrWindow(window);
    if (refused != null) {
      return refused;
    }
    if (stashId < 0 || stashId > 0xff) {
      return Outcome.err(Errno.EINVAL, "stash id %d: not an 8-bit cache id", stashId);
    }
    int from = window == ALL_WINDOWS ? 0 : window;
    int to = window == ALL_WINDOWS ? count : window + 1;
    for (int w = from; w < to; w++) {
      stash[w] = stashId;
      for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
        entry(l, w).cid = stashId;
      }
    }
    return Outcome.OK;
  }

  /**
   * {@code DOMAIN_ATTR_FSL_PAMU_OP_MAP}: the operation-mapping index of one window or of
   * {@link #ALL_WINDOWS}; allowed while enabled.
   *
   * @return ENODEV before a window count; EINVAL for a window out of range or omi ≥ 16
   */
  public Outcome<Void> setOperationMapping(int window, int omiIndex) {
    live();
    Outcome<Void> refused = checkAttrWindow(window);
    if (refused != null) {
      return refused;
    }
    if (omiIndex < 0 || omiIndex >= OMI_LIMIT) {
      return Outcome.err(Errno.EINVAL, "omi %d: the operation mapping table has %d entries", omiIndex, OMI_LIMIT);
    }
    int from = window == ALL_WINDOWS ? 0 : window;
    int to = window == ALL_WINDOWS ? count : window + 1;
    for (int w = from; w < to; w++) {
      omi[w] = omiIndex;
      for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
        entry(l, w).omi = omiIndex;
      }
    }
    return Outcome.OK;
  }

  private Outcome<Void> checkAttrWindow(int window) {
    if (count == 0) {
      return Outcome.err(Errno.ENODEV, "domain %d: window count not set", id);
    }
    if (window != ALL_WINDOWS && (window < 0 || window >= count)) {
      return Outcome.err(Errno.EINVAL, "window %d: domain has %d", window, count);
    }
    return null;
  }

  /** The stash id of {@code window}, {@link Paace#NONE} when unset; EINVAL out of range. */
  public Outcome<Integer> stash(int window) {
    live();
    if (window < 0 || window >= count) {
      return Outcome.err(Errno.EINVAL, "window %d: domain has %d", window, count);
    }
    return Outcome.ok(stash[window]);
  }

  // ---------------------------------------------------------------- VFIO-PAMU

  /**
   * {@code VFIO_IOMMU_MAP_DMA} of {@code vfio_iommu_fsl_pamu.c}: maps {@code [iova, iova + size)}
   * onto the physically contiguous {@code [paddr, paddr + size)}, one whole window per chunk
   * ({@code iova = aperture start + k * window size}), then enables the domain, which sets V on
   * every attached LIODN (so a map also re-enables LIODNs the violation ISR disabled).
   * All or nothing: every window is checked before any is enabled (the driver rolls back by
   * disabling every window of the range, including ones it did not enable).
   *
   * @return EINVAL without READ/WRITE in {@code prot}, for an empty or wrapping range, an iova
   *     outside the aperture or not on a window boundary, a size that is not whole windows (the
   *     driver silently drops a trailing partial window), or any {@link #windowEnable} EINVAL;
   *     ENODEV before a window count; EBUSY when the range overlaps a DMA mapping or a window
   *     already enabled
   */
  public Outcome<Void> map(long iova, long paddr, long size, int prot) {
    live();
    if ((prot & Access.READ_WRITE) == 0) {
      return Outcome.err(Errno.EINVAL, "prot 0x%x: neither READ nor WRITE", prot);
    }
    if (Long.compareUnsigned(size, PAMU_PAGE_SIZE) < 0) {
      return Outcome.err(Errno.EINVAL, "size 0x%x: less than one page", size);
    }
    if (wraps(iova, size)) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x + 0x%x: wraps past 2^64", iova, size);
    }
    if (wraps(paddr, size)) {
      return Outcome.err(Errno.EINVAL, "paddr 0x%x + 0x%x: wraps past 2^64", paddr, size);
    }
    if (count == 0) {
      return Outcome.err(Errno.ENODEV, "domain %d: window count not set", id);
    }
    long win = windowSize();
    for (int w = 0; w < count; w++) {
      if (use[w] == WindowUse.DMA && overlaps(w, iova, size)) {
        return Outcome.err(
            Errno.EBUSY, "iova 0x%x + 0x%x: overlaps the DMA mapping of window %d", iova, size, w);
      }
    }
    if (!apertureContains(iova)) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x: outside the aperture [0x%x, +0x%x)", iova, apertureStart, apertureSize);
    }
    long off = iova - apertureStart;
    if (Long.remainderUnsigned(off, win) != 0) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x: not aligned to the window size 0x%x", iova, win);
    }
    if (Long.remainderUnsigned(size, win) != 0) {
      return Outcome.err(Errno.EINVAL, "size 0x%x: not a whole number of 0x%x windows", size, win);
    }
    long first = Long.divideUnsigned(off, win);
    long n = Long.divideUnsigned(size, win);
    if (first + n > count) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x + 0x%x: runs past the aperture end", iova, size);
    }
    for (int k = 0; k < n; k++) {
      Outcome<Void> refused = checkWindowEnable((int) first + k, paddr + k * win, win);
      if (refused != null) {
        return refused;
      }
    }
    for (int k = 0; k < n; k++) {
      enableWindow((int) first + k, paddr + k * win, win, prot, WindowUse.DMA);
    }
    return enable();
  }

  /**
   * {@code VFIO_IOMMU_UNMAP_DMA}: disables every DMA-mapped window overlapping
   * {@code [iova, iova + size)} (whole windows, as the driver does) and, when no DMA mapping is
   * left, disables the domain, even if MSI bank windows remain.
   *
   * @return the bytes unmapped; EINVAL for an empty or wrapping range
   */
  public Outcome<Long> unmap(long iova, long size) {
    live();
    if (size == 0 || wraps(iova, size)) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x + 0x%x: empty or wrapping range", iova, size);
    }
    long unmapped = 0;
    for (int w = 0; w < count; w++) {
      if (use[w] == WindowUse.DMA && overlaps(w, iova, size)) {
        disableWindow(w);
        unmapped += windowSize();
      }
    }
    if (dmaWindows == 0 && enabled) {
      disable();
    }
    return Outcome.ok(unmapped);
  }

  /** {@link #mapMsiBank(MsiBank, long, int)} with WRITE permission: an MSI is a posted write. */
  public Outcome<Void> mapMsiBank(MsiBank bank, long iova) {
    return mapMsiBank(bank, iova, Access.WRITE);
  }

  /**
   * {@code VFIO_IOMMU_PAMU_MAP_MSI_BANK}: enables the window holding {@code iova} onto the bank's
   * 4 KiB MSIIR page ({@code fsl_msi_get_region}: size 0x1000), so one bank takes a whole window
   * for one page. Does not enable the domain.
   *
   * @return EINVAL without READ/WRITE or for an iova outside the aperture, ENODEV before a window
   *     count, and the errors of {@link #windowEnable} (EBUSY for a window in use)
   */
  public Outcome<Void> mapMsiBank(MsiBank bank, long iova, int prot) {
    return mapMsiBank(bank.index(), bank.msiirAddress(), iova, prot);
  }

  /**
   * {@link #mapMsiBank(MsiBank, long, int)} for a bank known only by its index and MSIIR address,
   * with WRITE permission: the bank model belongs to another owner (the bank's actor), which this
   * domain never reads.
   *
   * @return EINVAL for a negative bank index or an MSIIR address that is negative, and the errors
   *     of {@link #mapMsiBank(MsiBank, long, int)}
   */
  public Outcome<Void> mapMsiBank(int bankIndex, long msiirAddress, long iova) {
    return mapMsiBank(bankIndex, msiirAddress, iova, Access.WRITE);
  }

  private Outcome<Void> mapMsiBank(int bankIndex, long msiirAddress, long iova, int prot) {
    live();
    if (bankIndex < 0) {
      return Outcome.err(Errno.EINVAL, "bank %d: negative index", bankIndex);
    }
    if (msiirAddress < 0) {
      return Outcome.err(Errno.EINVAL, "msiirAddress 0x%x: not a physical address", msiirAddress);
    }
    long page = msiirAddress & ~(MSI_REGION_SIZE - 1);
    if ((prot & Access.READ_WRITE) == 0) {
      return Outcome.err(Errno.EINVAL, "prot 0x%x: neither READ nor WRITE", prot);
    }
    if (count == 0) {
      return Outcome.err(Errno.ENODEV, "domain %d: window count not set", id);
    }
    if (!apertureContains(iova)) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x: outside the aperture [0x%x, +0x%x)", iova, apertureStart, apertureSize);
    }
    int w = windowOf(iova);
    Outcome<Void> refused = checkWindowEnable(w, page, MSI_REGION_SIZE);
    if (refused != null) {
      return refused;
    }
    enableWindow(w, page, MSI_REGION_SIZE, prot, WindowUse.MSI);
    msiBank[w] = bankIndex;
    msiMapIova[w] = iova;
    return Outcome.OK;
  }

  /**
   * {@code VFIO_IOMMU_PAMU_UNMAP_MSI_BANK}: disables the MSI window mapped at exactly {@code iova}.
   *
   * @return EINVAL when no MSI bank was mapped at that iova
   */
  public Outcome<Void> unmapMsiBank(long iova) {
    live();
    for (int w = 0; w < count; w++) {
      if (use[w] == WindowUse.MSI && msiMapIova[w] == iova) {
        disableWindow(w);
        return Outcome.OK;
      }
    }
    return Outcome.err(Errno.EINVAL, "iova 0x%x: no MSI bank mapped there", iova);
  }

  /**
   * The MSI address a device behind this domain must use for {@code bank}
   * ({@code fsl_iommu_get_iova} in {@code fsl_msi.c}): the iova of the window mapping the bank's
   * MSIIR page plus the MSIIR's offset in the page.
   *
   * @return EINVAL when no window maps the page
   */
  public Outcome<Long> msiIova(MsiBank bank) {
    return msiIova(bank.index(), bank.msiirAddress());
  }

  /** {@link #msiIova(MsiBank)} for a bank known by its index and MSIIR address. */
  public Outcome<Long> msiIova(int bankIndex, long msiirAddress) {
    live();
    long page = msiirAddress & ~(MSI_REGION_SIZE - 1);
    for (int w = 0; w < count; w++) {
      if (valid[w] && paddr[w] == page) {
        return Outcome.ok(windowIova(w) + (msiirAddress & (MSI_REGION_SIZE - 1)));
      }
    }
    return Outcome.err(Errno.EINVAL, "bank %d: its MSIIR page is not mapped in domain %d", bankIndex, id);
  }

  private static boolean wraps(long start, long len) {
    long end = start + len;
    return end != 0 && Long.compareUnsigned(end, start) < 0;
  }

  /** Window w overlaps {@code [iova, iova + len)}. */
  private boolean overlaps(int w, long iova, long len) {
    long ws = windowIova(w);
    long wl = ws + windowSize() - 1;
    long last = iova + len - 1;
    return Long.compareUnsigned(iova, wl) <= 0 && Long.compareUnsigned(last, ws) >= 0;
  }

  // ---------------------------------------------------------------- queries

  public int id() {
    return id;
  }

  public PamuUnit unit() {
    return unit;
  }

  public boolean isFreed() {
    return freed;
  }

  public long apertureStart() {
    return apertureStart;
  }

  public long apertureSize() {
    return apertureSize;
  }

  /** Last address of the aperture (inclusive). */
  public long apertureLast() {
    return apertureStart + apertureSize - 1;
  }

  /** The geometry was set explicitly (the driver's {@code geom_size != 0}). */
  public boolean isGeometrySet() {
    return geometrySet;
  }

  boolean apertureContains(long iova) {
    return Long.compareUnsigned(iova, apertureStart) >= 0
        && Long.compareUnsigned(iova - apertureStart, apertureSize) < 0;
  }

  /**
   * {@code DOMAIN_ATTR_WINDOWS}: the window count; before it is set, the hardware maximum
   * ({@code iommu_alloc_dma_domain} starts {@code win_cnt} at {@code pamu_get_max_subwin_cnt()}).
   */
  public int windowCount() {
    return count == 0 ? unit.maxWindows() : count;
  }

  public boolean isWindowCountSet() {
    return count > 0;
  }

  /** Size of each window: aperture / window count. */
  public long windowSize() {
    return apertureSize / windowCount();
  }

  /** First iova of window {@code w}: aperture start + w · window size. */
  public long windowIova(int w) {
    return apertureStart + w * windowSize();
  }

  /** Index of the window holding {@code iova} (which must be inside the aperture). */
  public int windowOf(long iova) {
    return (int) Long.divideUnsigned(iova - apertureStart, windowSize());
  }

  public boolean isEnabled() {
    return enabled;
  }

  public int mappedWindows() {
    return mapped;
  }

  public int dmaMappedWindows() {
    return dmaWindows;
  }

  public boolean isWindowEnabled(int w) {
    return valid[w];
  }

  public long windowPaddr(int w) {
    return paddr[w];
  }

  /** The enabled size of window {@code w} (≤ {@link #windowSize()}). */
  public long windowMappedSize(int w) {
    return size[w];
  }

  public int windowProt(int w) {
    return prot[w];
  }

  public WindowUse windowUse(int w) {
    return use[w];
  }

  /** The MSI bank mapped in window {@code w}, or -1. */
  public int windowMsiBank(int w) {
    return msiBank[w];
  }

  /** Attached LIODNs, ascending. */
  public List<Integer> liodns() {
    return liodns.stream().boxed().toList();
  }

  BitSet liodnSet() {
    return liodns;
  }

  // ---------------------------------------------------------------- state and invariants

  public State state() {
    List<WindowState> ws = new ArrayList<>(count);
    for (int w = 0; w < count; w++) {
      ws.add(new WindowState(w, valid[w], paddr[w], size[w], prot[w], stash[w], omi[w], use[w], msiBank[w], msiMapIova[w]));
    }
    return new State(
        id, apertureStart, apertureSize, geometrySet, count, enabled, mapped, liodns(), List.copyOf(ws));
  }

  /**
   * Immutable copy of a domain.
   *
   * @param windowCount the configured count, 0 when unset
   */
  public record State(
      int id,
      long apertureStart,
      long apertureSize,
      boolean geometrySet,
      int windowCount,
      boolean enabled,
      int mappedWindows,
      List<Integer> liodns,
      List<WindowState> windows) {}

  /** Immutable copy of a window. */
  public record WindowState(
      int index,
      boolean valid,
      long paddr,
      long size,
      int prot,
      int stashId,
      int omi,
      WindowUse use,
      int msiBank,
      long msiMapIova) {}

  void checkInvariants() {
    int v = 0;
    int dma = 0;
    for (int w = 0; w < valid.length; w++) {
      if (valid[w]) {
        if (w >= count) {
          throw new IllegalStateException("domain " + id + ": window " + w + " valid beyond count " + count);
        }
        v++;
      }
      if (use[w] == WindowUse.DMA) {
        dma++;
      }
      if (valid[w] != (use[w] != WindowUse.NONE)) {
        throw new IllegalStateException("domain " + id + ": window " + w + " use " + use[w]);
      }
    }
    if (v != mapped || dma != dmaWindows) {
      throw new IllegalStateException("domain " + id + ": mapped " + mapped + "/" + dmaWindows + " but " + v + "/" + dma);
    }
    if (enabled && mapped == 0) {
      throw new IllegalStateException("domain " + id + ": enabled with no window");
    }
    if (count == 0) {
      return;
    }
    for (int l = liodns.nextSetBit(0); l >= 0; l = liodns.nextSetBit(l + 1)) {
      Paace p = unit.ppaact[l];
      boolean single = count == 1;
      // a disabled single window leaves map_win's shrunken WSE behind, as in the driver
      long expectSize = single && valid[0] ? size[0] : apertureSize;
      boolean sizeOk = Paace.decodeSize(p.wse) == expectSize || (single && !valid[0]);
      if (p.wba != apertureStart || !sizeOk || p.multiWindow == single) {
        throw new IllegalStateException("liodn " + l + ": PPAACE geometry differs from domain " + id);
      }
      if (!single && subwindows(p) != count) {
        throw new IllegalStateException("liodn " + l + ": PPAACE has " + subwindows(p) + " subwindows, domain " + count);
      }
      for (int w = 0; w < count; w++) {
        Paace e = entry(l, w);
        boolean on = (w > 0 && !single) ? e.valid : e.ap != Paace.AP_DENIED || (valid[w] && prot[w] == 0);
        if (on != valid[w]) {
          throw new IllegalStateException("liodn " + l + " window " + w + ": entry " + on + ", domain " + valid[w]);
        }
        if (valid[w] && e.twba != paddr[w]) {
          throw new IllegalStateException("liodn " + l + " window " + w + ": TWBA differs");
        }
      }
    }
  }

  @Override
  public String toString() {
    return String.format(
        "PamuDomain[%d aperture=[0x%x, +0x%x) windows=%s mapped=%d %s liodns=%s]",
        id, apertureStart, apertureSize, count == 0 ? "unset" : Integer.toString(count), mapped,
        enabled ? "enabled" : "disabled", liodns);
  }
}
