package io.iommulab.hardware.pci;

import io.iommulab.config.DeviceSettings;
import io.iommulab.config.Rids;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cache.DeviceAtc;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.fault.PageRequest;
import java.util.Objects;

/**
 * One PCI function: its identity and capabilities from {@link DeviceSettings}, and the state of
 * the capabilities the IOMMU subsystem drives: DMA ownership, bus mastering, ATS (with its device
 * ATC), PASID, PRI (outstanding page requests and PRG indexes) and the MSI vector table. DMA
 * orchestration is not here: the composer puts {@link DmaRequest}s through the unit and memory.
 *
 * <h2>Rules (errno as the kernel returns them, {@code drivers/pci/ats.c} unless noted)</h2>
 *
 * <ul>
 *   <li>ATS: enabling without the capability → EOPNOTSUPP; enabling twice → EBUSY; disabling
 *       while PRI is enabled → EBUSY (PRI needs ATS: drivers disable PRI first, {@code
 *       arm_smmu_disable_pri} before {@code pci_disable_ats}); disabling when off → EINVAL. The
 *       ATC ({@link DeviceAtc}, {@code atcEntries} entries) is created on first use after ATS was
 *       first enabled; it is the composer's job to invalidate it around enable/disable (SMMUv3:
 *       invalidate all, then enable; disable, then invalidate).
 *   <li>PASID: enabling without the capability → EOPNOTSUPP; enabling twice → EINVAL ({@code
 *       pci_enable_pasid}); a PASID outside {@code [0, 2^pasidBits)} or while PASID is disabled →
 *       EINVAL ({@link #checkPasid}).
 *   <li>PRI: enabling without the capability → EOPNOTSUPP; without ATS enabled → EINVAL; while
 *       enabled or not stopped (requests outstanding) → EBUSY ({@code pci_enable_pri}). The
 *       outstanding page request allocation is {@code min(capacity, requested)}. A page request
 *       beyond the allocation is refused ({@link PriIssue#WAIT}: the device must wait for a
 *       response). PRG indexes are 9 bits: 512 groups at most. A PRG response for an index not
 *       outstanding sets the UPRGI status (Unexpected Page Request Group Index) and changes
 *       nothing else; a Response Failure sets RF and the function stops issuing requests until
 *       {@link #resetPri()} (PCIe PRI capability, status register).
 *   <li>MSI vectors: {@code [0, msiVectors)}; each is unprogrammed, remapped ({@link
 *       #MSI_REMAPPED}), or aimed at an MSI bank with a data word.
 *   <li>DMA ownership is decided by the {@link IommuGroup} (a group is owned as a whole), which
 *       records members by RID; the group's owner tells this function ({@link #setOwner}). Losing
 *       the owner clears bus mastering ({@code vfio_pci_core_disable} calls {@code
 *       pci_clear_master}).
 * </ul>
 *
 * <p>Invariants: {@code priOutstanding} equals the sum of requests of open groups and never
 * exceeds the allocation; PRI enabled implies ATS enabled; PASID enabled implies the capability.
 * Refused operations change nothing. Not modeled: an SR-IOV VF sharing its PF's PRI allocation
 * ({@link #virtualFunction()} is carried for the composer).
 */
public final class PciDevice {
  /** PRI outstanding page request capacity when the settings do not give one. */
  public static final int DEFAULT_PRI_CAPACITY = 32;
  /** PRG indexes are 9 bits. */
  public static final int PRG_INDEXES = PageRequest.MAX_GROUP_ID + 1;
  /** PASID width limit (PCIe: 20 bits). */
  public static final int MAX_PASID_BITS = 20;
  /** MSI-X table size limit. */
  public static final int MAX_MSI_VECTORS = 2048;
  /** {@link #msiBank(int)} of a vector never programmed (or cleared). */
  public static final int MSI_UNPROGRAMMED = -2;
  /** {@link #msiBank(int)} of a vector delivered through interrupt remapping. */
  public static final int MSI_REMAPPED = -1;
  /** {@link #openPageRequestGroup()}: all 512 PRG indexes are outstanding; wait. */
  public static final int PRG_WAIT = -1;
  /** {@link #openPageRequestGroup()}: PRI is disabled or stopped by a response failure. */
  public static final int PRG_STOPPED = -2;

  /** Whether a page request could be issued. */
  public enum PriIssue {
    ISSUED,
    /** The outstanding page request allocation is used up: wait for a response. */
    WAIT,
    /** PRI is disabled or stopped by a Response Failure. */
    STOPPED
  }

  /** PRG response codes (PCIe PRG Response Message; iommufd {@code IOMMU_PGFAULT_RESP_*}). */
  public enum PriResponse {
    SUCCESS,
    INVALID_REQUEST,
    RESPONSE_FAILURE
  }

  private final String name;
  private final int rid;
  private final int liodn;
  private final int groupId;
  private final int unitIndex;
  private final int pasidBits;
  private final boolean atsCapable;
  private final int atcEntries;
  private final boolean priCapable;
  private final int priCapacity;
  private final int msiVectors;
  private final boolean noSnoop;
  private final boolean virtualFunction;
  private final long atcSeed;

  private DmaOwner owner = DmaOwner.NONE;
  private boolean busMaster;
  private boolean atsEnabled;
  private boolean atsEverEnabled;
  private DeviceAtc atc;
  private boolean pasidEnabled;

  private boolean priEnabled;
  private int priAllocation;
  private int priOutstanding;
  private int[] prgRequests;
  private final long[] prgOpen = new long[PRG_INDEXES / 64];
  private int prgOpenCount;
  private boolean priResponseFailure;
  private boolean priUnexpectedIndex;

  private final int[] msiBank;
  private final int[] msiData;

  /** A function behind unit {@code unitIndex}; {@code seed} drives its ATC's replacement. */
  public PciDevice(DeviceSettings settings, int unitIndex, long seed) {
    this(settings, unitIndex, seed, DEFAULT_PRI_CAPACITY);
  }

  /**
   * @param priCapacity the PRI capability's outstanding page request capacity
   */
  public PciDevice(DeviceSettings settings, int unitIndex, long seed, int priCapacity) {
    Objects.requireNonNull(settings, "settings");
    this.name = Objects.requireNonNull(settings.name(), "name");
    this.rid =
        Rids.parse(settings.rid())
            .orElseThrow(
                () -> new IllegalArgumentException(name + ": malformed rid " + settings.rid()));
    this.liodn = settings.liodn().orElse(-1);
    this.groupId = settings.group();
    this.unitIndex = unitIndex;
    this.pasidBits = settings.pasidBits();
    this.atsCapable = settings.ats();
    this.atcEntries = settings.atcEntries();
    this.priCapable = settings.pri();
    this.priCapacity = priCapacity;
    this.msiVectors = settings.msiVectors();
    this.noSnoop = settings.noSnoop();
    this.virtualFunction = settings.virtualFunction();
    this.atcSeed = seed;
    if (unitIndex < 0) {
      throw new IllegalArgumentException(name + ": unit index " + unitIndex);
    }
    if (pasidBits < 0 || pasidBits > MAX_PASID_BITS) {
      throw new IllegalArgumentException(name + ": pasidBits " + pasidBits + " not in 0..20");
    }
    if (atsCapable ? atcEntries < 1 : atcEntries < 0) {
      throw new IllegalArgumentException(name + ": atcEntries " + atcEntries);
    }
    if (priCapable && !atsCapable) {
      throw new IllegalArgumentException(name + ": PRI requires ATS");
    }
    if (priCapacity < 1) {
      throw new IllegalArgumentException(name + ": PRI capacity " + priCapacity);
    }
    if (msiVectors < 0 || msiVectors > MAX_MSI_VECTORS) {
      throw new IllegalArgumentException(name + ": msiVectors " + msiVectors);
    }
    msiBank = new int[msiVectors];
    msiData = new int[msiVectors];
    java.util.Arrays.fill(msiBank, MSI_UNPROGRAMMED);
  }

  // ---------------------------------------------------------------------------------------------
  // Identity and capabilities

  public String name() {
    return name;
  }

  /** Requester id, {@code bus << 8 | dev << 3 | fn}. */
  public int rid() {
    return rid;
  }

  public String ridText() {
    return Rids.format(rid);
  }

  /** PAMU LIODN, or -1 for a device not behind a PAMU. */
  public int liodn() {
    return liodn;
  }

  public int group() {
    return groupId;
  }

  public int unitIndex() {
    return unitIndex;
  }

  public int pasidBits() {
    return pasidBits;
  }

  /** PASIDs the function supports: {@code 2^pasidBits}, 0 without the capability. */
  public int maxPasids() {
    return pasidBits == 0 ? 0 : 1 << pasidBits;
  }

  public boolean atsCapable() {
    return atsCapable;
  }

  public int atcEntries() {
    return atcEntries;
  }

  public boolean priCapable() {
    return priCapable;
  }

  public int priCapacity() {
    return priCapacity;
  }

  public int msiVectors() {
    return msiVectors;
  }

  /** The function issues No Snoop TLPs (non-coherent DMA unless the IOMMU forces snooping). */
  public boolean noSnoop() {
    return noSnoop;
  }

  public boolean virtualFunction() {
    return virtualFunction;
  }

  // ---------------------------------------------------------------------------------------------
  // Ownership and bus mastering

  public DmaOwner dmaOwner() {
    return owner;
  }

  /** The {@code HostMemory} owner this function's DMA is expected to touch. */
  public int expectedMemoryOwner() {
    return owner.memoryOwner();
  }

  /**
   * The function's DMA owner changed: its {@link IommuGroup} (held by the unit the function sits
   * behind) granted or withdrew a claim, and the owner of this model is told. Losing the owner
   * clears bus mastering ({@code vfio_pci_core_disable} calls {@code pci_clear_master}).
   */
  public void setOwner(DmaOwner newOwner) {
    owner = Objects.requireNonNull(newOwner, "owner");
    if (newOwner == DmaOwner.NONE) {
      busMaster = false;
    }
  }

  public boolean busMaster() {
    return busMaster;
  }

  /** The Bus Master Enable bit of the command register, as the owner's driver sets it. */
  public void setBusMaster(boolean on) {
    busMaster = on;
  }

  /** True when a DMA may leave the function: an owner and bus mastering. */
  public boolean canMasterDma() {
    return busMaster && owner != DmaOwner.NONE;
  }

  // ---------------------------------------------------------------------------------------------
  // ATS

  public boolean atsEnabled() {
    return atsEnabled;
  }

  public Outcome<Void> enableAts() {
    if (!atsCapable) {
      return Outcome.err(Errno.EOPNOTSUPP, "%s: enable ATS: no ATS capability", name);
    }
    if (atsEnabled) {
      return Outcome.err(Errno.EBUSY, "%s: enable ATS: already enabled", name);
    }
    atsEnabled = true;
    atsEverEnabled = true;
    return Outcome.OK;
  }

  public Outcome<Void> disableAts() {
    if (!atsEnabled) {
      return Outcome.err(Errno.EINVAL, "%s: disable ATS: not enabled", name);
    }
    if (priEnabled) {
      return Outcome.err(Errno.EBUSY, "%s: disable ATS: PRI is enabled and needs ATS", name);
    }
    atsEnabled = false;
    return Outcome.OK;
  }

  /**
   * The function's ATC, created with {@code atcEntries} entries the first time it is asked for
   * after ATS was first enabled. Asking before ATS was ever enabled is a bug.
   */
  public DeviceAtc atc() {
    if (atc == null) {
      if (!atsEverEnabled) {
        throw new IllegalStateException(name + ": no ATC before ATS is enabled");
      }
      atc = new DeviceAtc(atcEntries, atcSeed);
    }
    return atc;
  }

  /** True once {@link #atc()} created the ATC. */
  public boolean hasAtc() {
    return atc != null;
  }

  // ---------------------------------------------------------------------------------------------
  // PASID

  public boolean pasidEnabled() {
    return pasidEnabled;
  }

  public Outcome<Void> enablePasid() {
    if (pasidBits == 0) {
      return Outcome.err(Errno.EOPNOTSUPP, "%s: enable PASID: no PASID capability", name);
    }
    if (pasidEnabled) {
      return Outcome.err(Errno.EINVAL, "%s: enable PASID: already enabled", name);
    }
    pasidEnabled = true;
    return Outcome.OK;
  }

  public void disablePasid() {
    pasidEnabled = false;
  }

  /**
   * Whether the function may tag a request (or be attached) with {@code pasid}: {@link
   * FaultRecord#NO_PASID} always; otherwise PASID must be enabled and {@code pasid} below {@code
   * 2^pasidBits}, else EINVAL.
   */
  public Outcome<Void> checkPasid(int pasid) {
    if (pasid == FaultRecord.NO_PASID) {
      return Outcome.OK;
    }
    if (pasid < 0 || pasid >= maxPasids()) {
      return Outcome.err(
          Errno.EINVAL, "%s: pasid %d beyond the function's %d-bit width", name, pasid, pasidBits);
    }
    if (!pasidEnabled) {
      return Outcome.err(Errno.EINVAL, "%s: pasid %d: PASID is not enabled", name, pasid);
    }
    return Outcome.OK;
  }

  // ---------------------------------------------------------------------------------------------
  // PRI

  public boolean priEnabled() {
    return priEnabled;
  }

  /** Outstanding page request allocation set at the last enable (0 before). */
  public int priAllocation() {
    return priAllocation;
  }

  public int priOutstanding() {
    return priOutstanding;
  }

  public int openPageRequestGroups() {
    return prgOpenCount;
  }

  /** PRI status STOPPED: disabled and no request outstanding. */
  public boolean priStopped() {
    return !priEnabled && priOutstanding == 0;
  }

  /** PRI status RF: a Response Failure was received. */
  public boolean priResponseFailure() {
    return priResponseFailure;
  }

  /** PRI status UPRGI: a response named a PRG index that was not outstanding. */
  public boolean priUnexpectedGroupIndex() {
    return priUnexpectedIndex;
  }

  /**
   * Enables PRI with an outstanding page request allocation of {@code min(capacity, requests)}
   * ({@code pci_enable_pri}).
   */
  public Outcome<Void> enablePri(int requests) {
    if (!priCapable) {
      return Outcome.err(Errno.EOPNOTSUPP, "%s: enable PRI: no PRI capability", name);
    }
    if (!atsEnabled) {
      return Outcome.err(Errno.EINVAL, "%s: enable PRI: ATS is not enabled", name);
    }
    if (requests < 1) {
      return Outcome.err(Errno.EINVAL, "%s: enable PRI: allocation %d < 1", name, requests);
    }
    if (priEnabled || !priStopped()) {
      return Outcome.err(
          Errno.EBUSY,
          "%s: enable PRI: %s",
          name,
          priEnabled ? "already enabled" : priOutstanding + " requests still outstanding");
    }
    if (prgRequests == null) {
      prgRequests = new int[PRG_INDEXES];
    }
    priAllocation = Math.min(priCapacity, requests);
    priEnabled = true;
    return Outcome.OK;
  }

  /**
   * Clears PRI Enable ({@code pci_disable_pri}). Outstanding requests stay until their responses
   * arrive; the function is STOPPED once none is left.
   */
  public void disablePri() {
    priEnabled = false;
  }

  /**
   * PRI Control Reset: forgets outstanding requests, PRG indexes and the RF/UPRGI status. EBUSY
   * while PRI is enabled ({@code pci_reset_pri}).
   */
  public Outcome<Void> resetPri() {
    if (!priCapable) {
      return Outcome.err(Errno.EOPNOTSUPP, "%s: reset PRI: no PRI capability", name);
    }
    if (priEnabled) {
      return Outcome.err(Errno.EBUSY, "%s: reset PRI: PRI is enabled", name);
    }
    clearPriState();
    return Outcome.OK;
  }

  private void clearPriState() {
    priOutstanding = 0;
    prgOpenCount = 0;
    java.util.Arrays.fill(prgOpen, 0);
    if (prgRequests != null) {
      java.util.Arrays.fill(prgRequests, 0);
    }
    priResponseFailure = false;
    priUnexpectedIndex = false;
  }

  /**
   * Opens a page request group: the lowest free 9-bit PRG index; {@link #PRG_WAIT} when all 512
   * are outstanding; {@link #PRG_STOPPED} when PRI is disabled or stopped by a Response Failure
   * (both can happen in a race with a detach, so they are answers, not bugs).
   */
  public int openPageRequestGroup() {
    if (!priEnabled || priResponseFailure) {
      return PRG_STOPPED;
    }
    if (prgOpenCount == PRG_INDEXES) {
      return PRG_WAIT;
    }
    for (int w = 0; w < prgOpen.length; w++) {
      long free = ~prgOpen[w];
      if (free != 0) {
        int bit = Long.numberOfTrailingZeros(free);
        prgOpen[w] |= 1L << bit;
        prgOpenCount++;
        int prg = (w << 6) + bit;
        prgRequests[prg] = 0;
        return prg;
      }
    }
    throw new IllegalStateException(name + ": PRG count says free, bitmap says full");
  }

  public boolean pageRequestGroupOpen(int prg) {
    return prg >= 0 && prg < PRG_INDEXES && (prgOpen[prg >>> 6] & (1L << prg)) != 0;
  }

  /**
   * Issues one page request of group {@code prg} (which must be open: a bug otherwise). Refused
   * with {@link PriIssue#WAIT} when the outstanding allocation is used up, {@link
   * PriIssue#STOPPED} when PRI is disabled or stopped; nothing changes then.
   */
  public PriIssue issuePageRequest(int prg) {
    if (!pageRequestGroupOpen(prg)) {
      throw new IllegalStateException(name + ": page request in PRG " + prg + " that is not open");
    }
    if (!priEnabled || priResponseFailure) {
      return PriIssue.STOPPED;
    }
    if (priOutstanding >= priAllocation) {
      return PriIssue.WAIT;
    }
    priOutstanding++;
    prgRequests[prg]++;
    return PriIssue.ISSUED;
  }

  /** Requests outstanding in group {@code prg} (0 if not open). */
  public int pageRequestsInGroup(int prg) {
    return pageRequestGroupOpen(prg) ? prgRequests[prg] : 0;
  }

  /**
   * A PRG response arrived: its group's requests are released and the index freed. Returns the
   * number of requests released, or -1 for an index not outstanding (UPRGI is set, nothing else
   * changes). {@link PriResponse#RESPONSE_FAILURE} also sets RF: the function stops issuing page
   * requests until {@link #resetPri()}.
   */
  public int completePageRequestGroup(int prg, PriResponse response) {
    Objects.requireNonNull(response, "response");
    if (!pageRequestGroupOpen(prg)) {
      priUnexpectedIndex = true;
      return -1;
    }
    int released = prgRequests[prg];
    prgRequests[prg] = 0;
    prgOpen[prg >>> 6] &= ~(1L << prg);
    prgOpenCount--;
    priOutstanding -= released;
    if (response == PriResponse.RESPONSE_FAILURE) {
      priResponseFailure = true;
    }
    return released;
  }

  // ---------------------------------------------------------------------------------------------
  // MSI

  /**
   * Programs vector {@code vector} to write {@code data} to MSI bank {@code bank}, or to go
   * through interrupt remapping ({@code bank == MSI_REMAPPED}).
   *
   * @return EINVAL for a vector outside {@code [0, msiVectors)} or a negative bank other than
   *     {@link #MSI_REMAPPED}
   */
  public Outcome<Void> programMsiVector(int vector, int bank, int data) {
    if (vector < 0 || vector >= msiVectors) {
      return Outcome.err(
          Errno.EINVAL, "%s: MSI vector %d: the function has %d", name, vector, msiVectors);
    }
    if (bank < MSI_REMAPPED) {
      return Outcome.err(Errno.EINVAL, "%s: MSI vector %d: bank %d", name, vector, bank);
    }
    msiBank[vector] = bank;
    msiData[vector] = data;
    return Outcome.OK;
  }

  public void clearMsiVector(int vector) {
    checkVector(vector);
    msiBank[vector] = MSI_UNPROGRAMMED;
    msiData[vector] = 0;
  }

  /** Bank of {@code vector}, {@link #MSI_REMAPPED}, or {@link #MSI_UNPROGRAMMED}. */
  public int msiBank(int vector) {
    checkVector(vector);
    return msiBank[vector];
  }

  public int msiData(int vector) {
    checkVector(vector);
    return msiData[vector];
  }

  public boolean msiProgrammed(int vector) {
    return msiBank(vector) != MSI_UNPROGRAMMED;
  }

  private void checkVector(int vector) {
    if (vector < 0 || vector >= msiVectors) {
      throw new IllegalArgumentException(name + ": MSI vector " + vector + " of " + msiVectors);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reset and invariants

  /**
   * Function Level Reset: bus mastering, ATS, PASID and PRI off, PRI state and MSI table cleared,
   * the ATC (if any) invalidated (PCIe: an FLR invalidates the ATC). Ownership is unchanged: it
   * belongs to the group.
   */
  public void functionLevelReset() {
    busMaster = false;
    atsEnabled = false;
    pasidEnabled = false;
    priEnabled = false;
    priAllocation = 0;
    clearPriState();
    java.util.Arrays.fill(msiBank, MSI_UNPROGRAMMED);
    java.util.Arrays.fill(msiData, 0);
    if (atc != null) {
      atc.invalidateAll();
    }
  }

  /** Checks the invariants in the class comment; throws IllegalStateException if one is broken. */
  public void checkInvariants() {
    if (priEnabled && !atsEnabled) {
      throw new IllegalStateException(name + ": PRI enabled without ATS");
    }
    if (pasidEnabled && pasidBits == 0) {
      throw new IllegalStateException(name + ": PASID enabled without the capability");
    }
    int open = 0;
    long sum = 0;
    for (int prg = 0; prg < PRG_INDEXES; prg++) {
      if (pageRequestGroupOpen(prg)) {
        open++;
        sum += prgRequests[prg];
      }
    }
    if (open != prgOpenCount || sum != priOutstanding) {
      throw new IllegalStateException(
          String.format("%s: %d open groups holding %d requests; counters say %d and %d", name,
              open, sum, prgOpenCount, priOutstanding));
    }
    if (priOutstanding > priAllocation) {
      throw new IllegalStateException(
          name + ": " + priOutstanding + " requests beyond the allocation " + priAllocation);
    }
  }

  /** A compact description of the mutable state, for snapshots in tests and logs. */
  public String stateSummary() {
    StringBuilder sb = new StringBuilder(name).append('{');
    sb.append("owner=").append(owner);
    sb.append(" bm=").append(busMaster);
    sb.append(" ats=").append(atsEnabled);
    sb.append(" pasid=").append(pasidEnabled);
    sb.append(" pri=").append(priEnabled).append('/').append(priAllocation);
    sb.append(" out=").append(priOutstanding).append(" prgs=").append(prgOpenCount);
    sb.append('#').append(java.util.Arrays.hashCode(prgOpen));
    sb.append('#').append(java.util.Arrays.hashCode(prgRequests));
    sb.append(" rf=").append(priResponseFailure).append(" uprgi=").append(priUnexpectedIndex);
    sb.append(" msi=").append(java.util.Arrays.toString(msiBank));
    sb.append(java.util.Arrays.toString(msiData));
    return sb.append('}').toString();
  }

  @Override
  public String toString() {
    return "PciDevice[" + name + " " + ridText() + " group " + groupId + "]";
  }
}
