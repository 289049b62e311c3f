package io.iommulab.hardware.pamu;

/**
 * One PAMU access control entry (PAACE), primary (per LIODN, in the PPAACT) or secondary (a
 * subwindow, in the shared SPAACT). Models the fields of {@code struct paace} in
 * {@code drivers/iommu/fsl_pamu.h} that decide a translation: WBA, WSE, MW, AP, V, ATM, WCE,
 * TWBA, SWSE, FSPI, CID (stash), OMI, the coherency-required bit and a SPAACE's LIODN field.
 * Sizes are kept in the hardware encoding, {@code size = 2^(code+1)}.
 *
 * <p>A PPAACE with MW set also carries subwindow 0 (its TWBA, SWSE and AP); subwindows 1..n-1 are
 * SPAACEs {@code FSPI .. FSPI+n-2}. Subwindow 0 has no valid bit of its own (the PPAACE's V is the
 * LIODN's), so the driver disables it by setting AP to deny ({@code pamu_disable_spaace}).
 *
 * <p>Mutated only by {@link PamuUnit} and {@link PamuDomain}; read through {@link #state()}.
 */
public final class Paace {
  public static final int AP_DENIED = 0; // PAACE_AP_PERMS_DENIED
  public static final int AP_QUERY = 1; // read
  public static final int AP_UPDATE = 2; // write
  public static final int AP_ALL = 3;
  public static final int ATM_NO_XLATE = 0; // PAACE_ATM_NO_XLATE
  public static final int ATM_WINDOW_XLATE = 1; // PAACE_ATM_WINDOW_XLATE
  /** CID / OMI value meaning "not configured" (the driver's {@code ~(u32)0}). */
  public static final int NONE = -1;
  /** WSE of the default entry: 2^36 bytes, 64 GiB ({@code setup_default_ppaace}). */
  public static final int DEFAULT_WSE = 35;

  final boolean primary;
  boolean valid;
  int ap;
  long wba;
  int wse;
  boolean multiWindow;
  int wce;
  int fspi;
  int atm;
  long twba;
  int swse;
  int cid = NONE;
  int omi = NONE;
  boolean coherent;
  /** SPAACE_AF_LIODN of a secondary entry; NONE for primaries and unused secondaries. */
  int liodn = NONE;

  Paace(boolean primary) {
    this.primary = primary;
  }

  /** The hardware size encoding of a power-of-two size: {@code size = 2^(wse+1)}. */
  static int encodeSize(long size) {
    return 62 - Long.numberOfLeadingZeros(size);
  }

  static long decodeSize(int code) {
    return 1L << (code + 1);
  }

  /** WCE of a subwindow count: {@code count = 2^(wce+1)} ({@code map_subwindow_cnt_to_wce}). */
  static int encodeCount(int count) {
    return Integer.numberOfTrailingZeros(count) - 1;
  }

  /** Clears every field, as the {@code memset} of {@code enable_default_dma_window} does. */
  void clear() {
    valid = false;
    ap = AP_DENIED;
    wba = 0;
    wse = 0;
    multiWindow = false;
    wce = 0;
    fspi = 0;
    atm = ATM_NO_XLATE;
    twba = 0;
    swse = 0;
    cid = NONE;
    omi = NONE;
    coherent = false;
    liodn = NONE;
  }

  /**
   * The default entry ({@code setup_default_ppaace} + {@code pamu_enable_liodn}): a valid 64 GiB
   * window at 0, no translation, all permissions. A LIODN with this entry bypasses the IOMMU.
   */
  void setDefault() {
    clear();
    coherent = true;
    wse = DEFAULT_WSE;
    atm = ATM_NO_XLATE;
    ap = AP_ALL;
    valid = true;
  }

  public State state() {
    return new State(
        primary, valid, ap, wba, wse, multiWindow, wce, fspi, atm, twba, swse, cid, omi, coherent, liodn);
  }

  /**
   * Immutable copy of an entry.
   *
   * @param wse window size code (primary): window = 2^(wse+1)
   * @param wce subwindow count code (primary, MW): count = 2^(wce+1)
   * @param swse enabled (sub)window size code: 2^(swse+1)
   */
  public record State(
      boolean primary,
      boolean valid,
      int ap,
      long wba,
      int wse,
      boolean multiWindow,
      int wce,
      int fspi,
      int atm,
      long twba,
      int swse,
      int cid,
      int omi,
      boolean coherent,
      int liodn) {

    public long windowSize() {
      return decodeSize(wse);
    }

    public int subwindowCount() {
      return multiWindow ? 1 << (wce + 1) : 1;
    }

    public long subwindowSize() {
      return decodeSize(swse);
    }

    /** The default bypass entry of a detached LIODN. */
    public boolean isDefaultBypass() {
      return primary && valid && atm == ATM_NO_XLATE && ap == AP_ALL && wba == 0 && wse == DEFAULT_WSE
          && !multiWindow;
    }
  }
}
