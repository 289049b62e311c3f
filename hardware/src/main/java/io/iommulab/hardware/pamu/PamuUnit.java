package io.iommulab.hardware.pamu;

import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.iommu.Translation;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.TreeMap;

/**
 * A Freescale PAMU: the PPAACT (one primary entry per LIODN), the SPAACT (a pool of secondary
 * entries shared by every LIODN, see {@link SpaactPool}), the domains built on them, DMA
 * translation through the tables, and the access-violation interrupt. All PAMUs of a SoC share one
 * set of tables ({@code fsl_pamu_probe}), so one {@code PamuUnit} models them all.
 *
 * <p>Sources: {@code drivers/iommu/fsl_pamu.c} and {@code fsl_pamu.h} (tables, default entry,
 * {@code pamu_av_isr}, erratum A-003638), {@code drivers/iommu/fsl_pamu_domain.c} (domains, see
 * {@link PamuDomain}); WarrickJiang/linux-yocto-4.1, the v3.11–v5.x window API.
 *
 * <p>At reset every LIODN has the default entry ({@code setup_liodns} and
 * {@code enable_remaining_liodns}): a valid 64 GiB window at 0 without translation and with all
 * permissions, that is, <b>bypass</b>. Detaching a LIODN restores it
 * ({@code enable_default_dma_window}), as the driver does; so does nothing at all: a LIODN attached
 * to a domain whose window count was never set keeps bypassing, because the driver programs the
 * PPAACE only once the domain has windows ({@code handle_attach_device}).
 *
 * <p>Access violations: every faulting translation is a violation. Unless AV interrupts are
 * masked the ISR runs at once: it latches AVS1/AVA/POEA ({@link #lastViolation()}) and, if the
 * LIODN's V bit is set, clears it, so later DMA from that LIODN faults
 * {@link FaultReason#LIODN_DISABLED} until software re-enables it ({@link #enableLiodn},
 * re-attach, or {@link PamuDomain#enable()}). A violation for a LIODN already disabled is treated
 * as erratum A-003638: the ISR clears the AV interrupt enable, and from then on violations are
 * only counted ({@link #suppressedViolationReports()}) and no longer disable anything, until
 * {@link #unmaskAccessViolations()} (what {@code setup_one_pamu} does on resume).
 *
 * <p>Invariants (checked by {@link #checkInvariants()}):
 *
 * <ul>
 *   <li>A LIODN is attached to at most one live domain, and that domain lists it.
 *   <li>The SPAACE ranges of the multi-window PPAACEs are disjoint, inside the pool, and are
 *       exactly the pool's allocated ranges; a used SPAACE's LIODN field names its owner.
 *   <li>A LIODN not attached to any domain either has the default entry or was disabled
 *       (by a violation or {@link #disableLiodn}) after getting it.
 *   <li>Every live domain's own invariants hold ({@link PamuDomain}).
 * </ul>
 */
public final class PamuUnit {
  /**
   * Modeled physical address of the PPAACT; the SPAACT follows it, rounded up to a power-of-two
   * number of pages as in {@code fsl_pamu_probe}. Only POEA values use these addresses.
   */
  public static final long TABLE_BASE = 0x7f00_0000L;

  static final int PAACE_BYTES = 64;
  private static final PageSize[] PAGE_SIZES_DESC = {
    PageSize.SIZE_1G, PageSize.SIZE_64M, PageSize.SIZE_2M, PageSize.SIZE_4K
  };

  private final int unitId;
  private final PamuUnitSettings settings;
  private final CostModel cost;
  private final FaultInjector injector;
  final Paace[] ppaact;
  final Paace[] spaact;
  final SpaactPool pool;
  /** The domain each LIODN is attached to, or null. */
  final PamuDomain[] liodnDomain;
  private final TreeMap<Integer, PamuDomain> domains = new TreeMap<>();
  private int nextDomainId = 1;
  private final long spaactBase;

  private boolean avMasked;
  private long violations;
  private long reported;
  private long suppressed;
  private long liodnsDisabled;
  private boolean latched;
  private int lastLiodn;
  private long lastIova;
  private int lastAccess;
  private FaultReason lastReason;
  private int avs1;
  private long ava;
  private long poea;
  private long lastTime;
  private PamuViolation.IsrAction lastAction;

  public PamuUnit(int unitId, PamuUnitSettings settings, CostModel cost, FaultInjector injector) {
    if (settings.ppaactEntries() <= 0 || settings.ppaactEntries() > 0xffff) {
      throw new IllegalArgumentException("ppaactEntries " + settings.ppaactEntries());
    }
    if (settings.spaactEntries() < 0) {
      throw new IllegalArgumentException("spaactEntries " + settings.spaactEntries());
    }
    int max = settings.maxWindows();
    if (max < 1 || max > 256 || Integer.bitCount(max) != 1) {
      throw new IllegalArgumentException("maxWindows " + max + ": a power of two up to 256");
    }
    if (!PamuDomain.validAperture(settings.defaultApertureStart(), settings.defaultApertureSize())) {
      throw new IllegalArgumentException("default aperture is not a size-aligned power of two");
    }
    this.unitId = unitId;
    this.settings = settings;
    this.cost = cost;
    this.injector = injector;
    this.ppaact = new Paace[settings.ppaactEntries()];
    this.spaact = new Paace[settings.spaactEntries()];
    this.liodnDomain = new PamuDomain[settings.ppaactEntries()];
    for (int i = 0; i < ppaact.length; i++) {
      ppaact[i] = new Paace(true);
      ppaact[i].setDefault();
    }
    for (int i = 0; i < spaact.length; i++) {
      spaact[i] = new Paace(false);
    }
    this.pool = new SpaactPool(settings.spaactEntries());
    long ppaactBytes = (long) ppaact.length * PAACE_BYTES;
    long pages = (ppaactBytes + 4095) / 4096;
    this.spaactBase = TABLE_BASE + 4096L * Long.highestOneBit(pages * 2 - 1);
  }

  public int unitId() {
    return unitId;
  }

  public PamuUnitSettings settings() {
    return settings;
  }

  CostModel cost() {
    return cost;
  }

  FaultInjector injector() {
    return injector;
  }

  /** Hardware maximum window count per LIODN ({@code pamu_get_max_subwin_cnt}, PC3.MWCE). */
  public int maxWindows() {
    return settings.maxWindows();
  }

  public int liodnCount() {
    return ppaact.length;
  }

  /** The shared SPAACT pool (read-only use: sizes, ranges, fragmentation). */
  public SpaactPool spaactPool() {
    return pool;
  }

  // ---------------------------------------------------------------- domains

  /**
   * Allocates an unmanaged domain ({@code fsl_pamu_domain_alloc}) with the default aperture and
   * no window count.
   *
   * @return ENOMEM when the injector fails site {@code "pamu.domain"}
   */
  public Outcome<PamuDomain> allocDomain() {
    if (injector.shouldFail("pamu.domain")) {
      return Outcome.err(Errno.ENOMEM, "PAMU %d: domain allocation failed (injected)", unitId);
    }
    PamuDomain d = new PamuDomain(this, nextDomainId++);
    domains.put(d.id(), d);
    return Outcome.ok(d);
  }

  void forget(PamuDomain d) {
    domains.remove(d.id());
  }

  public Collection<PamuDomain> domains() {
    return Collections.unmodifiableCollection(domains.values());
  }

  public Optional<PamuDomain> domain(int id) {
    return Optional.ofNullable(domains.get(id));
  }

  /** The domain {@code liodn} is attached to. */
  public Optional<PamuDomain> domainOf(int liodn) {
    return liodn >= 0 && liodn < liodnDomain.length
        ? Optional.ofNullable(liodnDomain[liodn])
        : Optional.empty();
  }

  // ---------------------------------------------------------------- PAACT access

  public Paace.State ppaace(int liodn) {
    return ppaact[liodn].state();
  }

  public Paace.State spaace(int index) {
    return spaact[index].state();
  }

  /** The PPAACE's V bit: DMA from the LIODN is looked up at all. */
  public boolean isLiodnValid(int liodn) {
    return ppaact[liodn].valid;
  }

  /** The LIODN has the default entry: its DMA bypasses translation inside 64 GiB. */
  public boolean isBypass(int liodn) {
    return ppaact[liodn].state().isDefaultBypass();
  }

  /**
   * Sets the PPAACE's V bit ({@code pamu_enable_liodn}): how software re-enables a LIODN the ISR
   * disabled.
   *
   * @return ENOENT for a LIODN beyond the PPAACT, EINVAL for an entry never configured (WSE 0)
   */
  public Outcome<Void> enableLiodn(int liodn) {
    if (liodn < 0 || liodn >= ppaact.length) {
      return Outcome.err(Errno.ENOENT, "liodn %d: no PPAACE (table has %d)", liodn, ppaact.length);
    }
    if (ppaact[liodn].wse == 0) {
      return Outcome.err(Errno.EINVAL, "liodn %d: PPAACE not configured", liodn);
    }
    ppaact[liodn].valid = true;
    return Outcome.OK;
  }

  /** Clears the PPAACE's V bit ({@code pamu_disable_liodn}); ENOENT beyond the PPAACT. */
  public Outcome<Void> disableLiodn(int liodn) {
    if (liodn < 0 || liodn >= ppaact.length) {
      return Outcome.err(Errno.ENOENT, "liodn %d: no PPAACE (table has %d)", liodn, ppaact.length);
    }
    ppaact[liodn].valid = false;
    return Outcome.OK;
  }

  /** Modeled physical address of a LIODN's PPAACE (what POEA holds for it). */
  public long ppaaceAddress(int liodn) {
    return TABLE_BASE + (long) liodn * PAACE_BYTES;
  }

  /** Modeled physical address of SPAACE {@code index}. */
  public long spaaceAddress(int index) {
    return spaactBase + (long) index * PAACE_BYTES;
  }

  // ---------------------------------------------------------------- translation

  /**
   * Translates one DMA of {@code liodn} at {@code iova} through the tables, as the hardware does;
   * allocates nothing. A fault is also an access violation (see the class Javadoc).
   *
   * @param access {@link Access} bits of the request; READ and WRITE are checked against AP
   * @param now modeled time, recorded with a violation
   * @return {@code out}
   */
  public Translation translate(int liodn, long iova, int access, long now, Translation out) {
    long lat = cost.pamuLookup();
    if (liodn < 0 || liodn >= ppaact.length) {
      return violation(FaultReason.LIODN_DISABLED, liodn, iova, access, 0, now, out, lat);
    }
    Paace p = ppaact[liodn];
    if (!p.valid) {
      return violation(
          FaultReason.LIODN_DISABLED, liodn, iova, access, ppaaceAddress(liodn), now, out, lat);
    }
    long off = iova - p.wba;
    int sizeCode = p.wse + 1; // log2 of the window size
    if (Long.compareUnsigned(iova, p.wba) < 0 || (sizeCode < 64 && Long.compareUnsigned(off, 1L << sizeCode) >= 0)) {
      PamuDomain d = liodnDomain[liodn];
      FaultReason r =
          !p.multiWindow && d != null && d.apertureContains(iova)
              ? FaultReason.WINDOW_DISABLED // a single window smaller than the aperture
              : FaultReason.OUTSIDE_APERTURE;
      return violation(r, liodn, iova, access, ppaaceAddress(liodn), now, out, lat);
    }
    Paace e = p;
    long entryAddress = ppaaceAddress(liodn);
    long winOff = off;
    long enabledSize;
    int reads = 1;
    if (p.multiWindow) {
      int subShift = sizeCode - (p.wce + 1);
      int idx = (int) (off >>> subShift);
      winOff = off & ((1L << subShift) - 1);
      if (idx > 0) {
        int si = p.fspi + idx - 1;
        e = spaact[si];
        entryAddress = spaaceAddress(si);
        reads = 2;
        if (!e.valid) {
          return violation(FaultReason.WINDOW_DISABLED, liodn, iova, access, entryAddress, now, out, lat);
        }
      }
      enabledSize = Paace.decodeSize(e.swse);
      if (Long.compareUnsigned(winOff, enabledSize) >= 0) {
        return violation(FaultReason.WINDOW_DISABLED, liodn, iova, access, entryAddress, now, out, lat);
      }
    } else {
      enabledSize = sizeCode < 64 ? 1L << sizeCode : Long.MAX_VALUE;
    }
    int requested = access & Access.READ_WRITE;
    if ((requested & ~e.ap) != 0) {
      FaultReason r =
          (requested & Access.WRITE & ~e.ap) != 0 ? FaultReason.WRITE_DENIED : FaultReason.READ_DENIED;
      return violation(r, liodn, iova, access, entryAddress, now, out, lat);
    }
    out.hpa = e.atm == Paace.ATM_NO_XLATE ? iova : e.twba + winOff;
    out.prot = e.ap | (e.coherent ? Access.SNOOP : 0);
    out.pageSize = pageSizeFor(enabledSize);
    out.fault = null;
    out.source = Translation.Source.PAMU_WINDOW;
    out.latencyNs = lat;
    out.levels = reads;
    return out;
  }

  private static PageSize pageSizeFor(long windowBytes) {
    for (PageSize s : PAGE_SIZES_DESC) {
      if (Long.compareUnsigned(s.bytes(), windowBytes) <= 0) {
        return s;
      }
    }
    return PageSize.SIZE_4K;
  }

  private Translation violation(
      FaultReason reason, int liodn, long iova, int access, long entryAddress, long now,
      Translation out, long lat) {
    violations++;
    if (avMasked) {
      suppressed++;
      return out.fail(reason, lat);
    }
    reported++;
    latched = true;
    lastLiodn = liodn;
    lastIova = iova;
    lastAccess = access;
    lastReason = reason;
    avs1 = (liodn & 0xffff) << PamuViolation.AVS1_LIODN_SHIFT | PamuViolation.AVS1_AV | reason.pamuAvsBits();
    ava = iova;
    poea = entryAddress;
    lastTime = now;
    if (liodn < 0 || liodn >= ppaact.length) {
      lastAction = PamuViolation.IsrAction.NONE;
    } else if (ppaact[liodn].valid) {
      ppaact[liodn].valid = false;
      liodnsDisabled++;
      lastAction = PamuViolation.IsrAction.LIODN_DISABLED;
    } else {
      avMasked = true;
      lastAction = PamuViolation.IsrAction.AV_INTERRUPTS_MASKED;
    }
    return out.fail(reason, lat);
  }

  /** The last violation the ISR saw (registers as it logged them). */
  public Optional<PamuViolation> lastViolation() {
    if (!latched) {
      return Optional.empty();
    }
    return Optional.of(
        new PamuViolation(
            lastLiodn, lastIova, lastAccess, lastReason, avs1, ava, poea, lastTime, lastAction));
  }

  /** AVS1 as last latched (0 before any reported violation). */
  public int avs1() {
    return avs1;
  }

  public long ava() {
    return ava;
  }

  public long poea() {
    return poea;
  }

  /** PICS AV enable is clear: violations are no longer reported (erratum A-003638 handling). */
  public boolean avInterruptsMasked() {
    return avMasked;
  }

  /** Sets the AV interrupt enable again, as {@code setup_one_pamu} does on resume. */
  public void unmaskAccessViolations() {
    avMasked = false;
  }

  /** Every faulting translation. */
  public long violations() {
    return violations;
  }

  /** Violations the ISR handled. */
  public long reportedViolations() {
    return reported;
  }

  /** Violations that raised no interrupt because AV interrupts were masked. */
  public long suppressedViolationReports() {
    return suppressed;
  }

  /** LIODNs the ISR disabled. */
  public long liodnsDisabledByViolations() {
    return liodnsDisabled;
  }

  // ---------------------------------------------------------------- snapshot and invariants

  /** Immutable copy of every table entry, the pool, the domains and the violation state. */
  public PamuSnapshot snapshot() {
    List<Paace.State> p = new ArrayList<>(ppaact.length);
    for (Paace e : ppaact) {
      p.add(e.state());
    }
    List<Paace.State> s = new ArrayList<>(spaact.length);
    for (Paace e : spaact) {
      s.add(e.state());
    }
    List<PamuDomain.State> d = new ArrayList<>(domains.size());
    for (PamuDomain dom : domains.values()) {
      d.add(dom.state());
    }
    return new PamuSnapshot(
        List.copyOf(p), List.copyOf(s), List.copyOf(pool.ranges()), List.copyOf(d), avMasked,
        violations, reported, suppressed, lastViolation().orElse(null));
  }

  /** Checks the invariants of this class and of every live domain. */
  public void checkInvariants() {
    pool.checkInvariants();
    List<SpaactPool.Range> fromTables = new ArrayList<>();
    for (int l = 0; l < ppaact.length; l++) {
      Paace p = ppaact[l];
      PamuDomain d = liodnDomain[l];
      if (d != null && (d.isFreed() || !d.liodnSet().get(l) || domains.get(d.id()) != d)) {
        throw new IllegalStateException("liodn " + l + ": attached to a domain that does not list it");
      }
      if (p.multiWindow) {
        if (d == null) {
          throw new IllegalStateException("liodn " + l + ": multi-window PPAACE but not attached");
        }
        int n = (1 << (p.wce + 1)) - 1;
        fromTables.add(new SpaactPool.Range(p.fspi, n));
        for (int i = p.fspi; i < p.fspi + n; i++) {
          if (spaact[i].liodn != l) {
            throw new IllegalStateException("SPAACE " + i + ": LIODN field " + spaact[i].liodn + ", used by " + l);
          }
        }
      }
      if (d == null) {
        Paace.State st = p.state();
        boolean defaultEntry =
            st.atm() == Paace.ATM_NO_XLATE && st.ap() == Paace.AP_ALL && st.wse() == Paace.DEFAULT_WSE
                && st.wba() == 0 && !st.multiWindow();
        if (!defaultEntry) {
          throw new IllegalStateException("liodn " + l + ": detached without the default entry");
        }
      }
    }
    fromTables.sort((a, b) -> Integer.compare(a.first(), b.first()));
    if (!fromTables.equals(pool.ranges())) {
      throw new IllegalStateException(
          "SPAACT ranges in the PPAACEs " + fromTables + " differ from the pool's " + pool.ranges());
    }
    for (PamuDomain d : domains.values()) {
      d.checkInvariants();
      for (int l = d.liodnSet().nextSetBit(0); l >= 0; l = d.liodnSet().nextSetBit(l + 1)) {
        if (liodnDomain[l] != d) {
          throw new IllegalStateException("domain " + d.id() + " lists liodn " + l + " owned elsewhere");
        }
      }
    }
  }

  @Override
  public String toString() {
    return String.format(
        "PamuUnit[%d %s liodns=%d spaact=%d/%d domains=%d]",
        unitId, settings.name(), ppaact.length, pool.used(), pool.entries(), domains.size());
  }
}
