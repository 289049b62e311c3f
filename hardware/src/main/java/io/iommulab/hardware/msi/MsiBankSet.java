package io.iommulab.hardware.msi;

import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * All MPIC MSI banks of the host (3 or 4), the policy that decides which banks a device's vectors
 * come from, and the interrupt-isolation bookkeeping that follows from it.
 *
 * <p>Sources: {@code arch/powerpc/sysdev/fsl_msi.c} ({@code fsl_setup_msi_irqs} walks the banks
 * for every vector; {@code fsl_msi_get_region_count} counts the banks; {@code fsl_msi_cascade}
 * decodes the MSIR bit into a vector), {@code drivers/vfio/vfio_iommu_fsl_pamu.c}
 * ({@code VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT}), and the 2013 VFIO-PAMU thread.
 *
 * <p>Invariants:
 *
 * <ul>
 *   <li>A device's allocation is all or nothing: after a refused {@link #allocate} no vector of
 *       the call is held and the SPREAD cursor is unchanged.
 *   <li>Every allocated vector's owner equals {@link #ownerOf(int)} of its group (owners are
 *       re-tagged by {@link #setGroupOwner}).
 *   <li>A rid belongs to one group for its lifetime; allocation under another group is EINVAL.
 *   <li>{@code breached[b]} is true exactly when bank b holds vectors of two or more owners;
 *       {@link #breachEvents()} counts its false-to-true transitions.
 * </ul>
 */
public final class MsiBankSet {
  /** Owner reported for a writer whose rid never had a group recorded. */
  public static final int UNKNOWN_OWNER = -2;

  private final List<MsiBank> banks;
  private final Map<Integer, MsiBank> byIndex = new HashMap<>();
  private final Map<Long, MsiBank> byPage = new HashMap<>();
  private MsiAllocationPolicy policy;
  /** SPREAD: position in {@link #banks} to try first for the next vector. */
  private int cursor;
  private final Map<Integer, Integer> ridGroup = new TreeMap<>();
  private final Map<Integer, Integer> groupOwner = new TreeMap<>();
  private final boolean[] breached;
  private long breachEvents;
  private long delivered;
  private long crossOwner;
  private long spurious;

  public MsiBankSet(
      List<MsiBankSettings> settings, MsiAllocationPolicy policy, FaultInjector injector) {
    if (settings.isEmpty()) {
      throw new IllegalArgumentException("no MSI banks");
    }
    List<MsiBank> list = new ArrayList<>(settings.size());
    for (MsiBankSettings s : settings) {
      MsiBank b = new MsiBank(s, injector);
      if (byIndex.put(s.index(), b) != null) {
        throw new IllegalArgumentException("duplicate MSI bank index " + s.index());
      }
      if (byPage.put(b.msiirPage(), b) != null) {
        throw new IllegalArgumentException(
            String.format("MSI bank %d: MSIIR page 0x%x used twice", s.index(), b.msiirPage()));
      }
      list.add(b);
    }
    this.banks = List.copyOf(list);
    this.policy = policy;
    this.breached = new boolean[banks.size()];
  }

  public List<MsiBank> banks() {
    return banks;
  }

  /** The bank with index {@code index}; a bug to ask for one that does not exist. */
  public MsiBank bank(int index) {
    MsiBank b = byIndex.get(index);
    if (b == null) {
      throw new IllegalArgumentException("no MSI bank " + index);
    }
    return b;
  }

  public Optional<MsiBank> findBank(int index) {
    return Optional.ofNullable(byIndex.get(index));
  }

  public MsiAllocationPolicy policy() {
    return policy;
  }

  public void setPolicy(MsiAllocationPolicy policy) {
    this.policy = policy;
  }

  /**
   * {@code VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT}: how many aperture windows user space should
   * reserve for MSI banks. The openil {@code vfio_iommu_fsl_pamu.c} returns
   * {@code fsl_msi_get_region_count()}, which counts every probed bank whatever the device uses
   * (the thread's "returns max # of MSI banks"), so this is the number of banks.
   */
  public int msiBankCount() {
    return banks.size();
  }

  /**
   * Allocates {@code count} vectors for {@code rid} of {@code group} under the current policy,
   * all or nothing. The vectors are owned by {@link #ownerOf(int)} of the group.
   *
   * @return the vectors in allocation order; EINVAL for a bad argument or a rid already seen in
   *     another group, ENOSPC when the banks together lack {@code count} free vectors, ENOMEM
   *     when the injector fails a {@code "msi.vector"} site (everything rolled back)
   */
  public Outcome<List<MsiVector>> allocate(int rid, int group, int count) {
    if (count <= 0) {
      return Outcome.err(Errno.EINVAL, "count %d: must be positive", count);
    }
    if (rid < 0 || rid > 0xffff) {
      return Outcome.err(Errno.EINVAL, "rid 0x%x: not a 16-bit requester id", rid);
    }
    if (group < 0) {
      return Outcome.err(Errno.EINVAL, "group %d: negative", group);
    }
    Integer known = ridGroup.get(rid);
    if (known != null && known != group) {
      return Outcome.err(Errno.EINVAL, "rid 0x%x: belongs to group %d, not %d", rid, known, group);
    }
    int free = 0;
    for (MsiBank b : banks) {
      free += b.freeVectors();
    }
    if (free < count) {
      return Outcome.err(
          Errno.ENOSPC, "rid 0x%x: %d vectors requested, %d free in %d banks",
          rid, count, free, banks.size());
    }
    int owner = ownerOf(group);
    int savedCursor = cursor;
    List<MsiVector> got = new ArrayList<>(count);
    while (got.size() < count) {
      MsiBank b = choose(group, owner, count - got.size());
      Outcome<Integer> v = b.allocate(rid, group, owner);
      if (!v.isOk()) {
        for (MsiVector g : got) {
          bank(g.bank()).free(g.vector());
        }
        cursor = savedCursor;
        return ((Outcome.Err<Integer>) v).cast();
      }
      got.add(new MsiVector(b.index(), v.value(), b.data(v.value()), b.msiirAddress()));
      if (policy == MsiAllocationPolicy.SPREAD) {
        cursor = (banks.indexOf(b) + 1) % banks.size();
      }
    }
    ridGroup.put(rid, group);
    refreshBreaches();
    return Outcome.ok(List.copyOf(got));
  }

  /** The bank the next vector of {@code group} comes from; some bank has a free vector. */
  private MsiBank choose(int group, int owner, int remaining) {
    int n = banks.size();
    switch (policy) {
      case SPREAD:
        for (int i = 0; i < n; i++) {
          MsiBank b = banks.get((cursor + i) % n);
          if (b.freeVectors() > 0) {
            return b;
          }
        }
        break;
      case PACK:
        for (MsiBank b : banks) {
          if (b.freeVectors() > 0) {
            return b;
          }
        }
        break;
      case GROUP_AFFINE:
        MsiBank best = null;
        for (MsiBank b : banks) {
          if (b.freeVectors() > 0 && (best == null || affineBetter(b, best, group, owner, remaining))) {
            best = b;
          }
        }
        if (best != null) {
          return best;
        }
        break;
      default:
        throw new IllegalStateException("policy " + policy);
    }
    throw new IllegalStateException("free vectors were counted but no bank has one");
  }

  private static boolean affineBetter(MsiBank a, MsiBank b, int group, int owner, int remaining) {
    int c = Boolean.compare(a.usedByGroup(group), b.usedByGroup(group));
    if (c == 0) {
      c = Boolean.compare(!a.usedByOwnerOtherThan(owner), !b.usedByOwnerOtherThan(owner));
    }
    if (c == 0) {
      c = Boolean.compare(a.freeVectors() >= remaining, b.freeVectors() >= remaining);
    }
    if (c == 0) {
      c = Integer.compare(a.freeVectors(), b.freeVectors());
    }
    return c > 0; // ties keep the earlier bank
  }

  /** Frees every vector of {@code rid} in every bank; returns how many. */
  public int free(int rid) {
    int n = 0;
    for (MsiBank b : banks) {
      n += b.freeAllOf(rid);
    }
    if (n > 0) {
      refreshBreaches();
    }
    return n;
  }

  /** Frees one vector; ENOENT when it is not allocated to {@code v}'s rid. */
  public Outcome<Void> free(int rid, MsiVector v) {
    MsiBank b = byIndex.get(v.bank());
    if (b == null) {
      return Outcome.err(Errno.EINVAL, "bank %d: no such MSI bank", v.bank());
    }
    if (v.vector() < 0 || v.vector() >= b.vectors() || b.ridOf(v.vector()) != rid) {
      return Outcome.err(
          Errno.ENOENT, "vector %d of bank %d: not allocated to rid 0x%x", v.vector(), v.bank(), rid);
    }
    b.free(v.vector());
    refreshBreaches();
    return Outcome.OK;
  }

  /** Vectors {@code rid} holds, by bank then vector. */
  public List<MsiVector> vectorsOf(int rid) {
    List<MsiVector> out = new ArrayList<>();
    for (MsiBank b : banks) {
      for (int v = 0; v < b.vectors(); v++) {
        if (b.ridOf(v) == rid && rid != MsiBank.FREE) {
          out.add(new MsiVector(b.index(), v, b.data(v), b.msiirAddress()));
        }
      }
    }
    return out;
  }

  /** Indices of the banks holding a vector of {@code rid}. */
  public SortedSet<Integer> banksUsedBy(int rid) {
    TreeSet<Integer> s = new TreeSet<>();
    for (MsiBank b : banks) {
      if (b.vectorsOf(rid) > 0) {
        s.add(b.index());
      }
    }
    return Collections.unmodifiableSortedSet(s);
  }

  /**
   * Indices of the banks holding a vector of {@code group}: the windows a VFIO user really needs
   * (the thread's "if only one MSI bank was involved the kernel could get clever").
   */
  public SortedSet<Integer> banksUsedByGroup(int group) {
    TreeSet<Integer> s = new TreeSet<>();
    for (MsiBank b : banks) {
      if (b.usedByGroup(group)) {
        s.add(b.index());
      }
    }
    return Collections.unmodifiableSortedSet(s);
  }

  /** The bank whose MSIIR page holds {@code hpa}. */
  public Optional<MsiBank> bankByMsiirAddress(long hpa) {
    return Optional.ofNullable(byPage.get(hpa & ~0xfffL));
  }

  /**
   * Records that {@code group} now belongs to {@code owner} (a VM id, or {@link MsiBank#HOST}),
   * re-owning its vectors and recomputing the isolation state.
   */
  public Outcome<Void> setGroupOwner(int group, int owner) {
    if (group < 0) {
      return Outcome.err(Errno.EINVAL, "group %d: negative", group);
    }
    if (owner < MsiBank.HOST) {
      return Outcome.err(Errno.EINVAL, "owner %d: below HOST (-1)", owner);
    }
    if (owner == MsiBank.HOST) {
      groupOwner.remove(group);
    } else {
      groupOwner.put(group, owner);
    }
    for (MsiBank b : banks) {
      b.retagOwner(group, owner);
    }
    refreshBreaches();
    return Outcome.OK;
  }

  /** Owner of {@code group}; {@link MsiBank#HOST} until assigned. */
  public int ownerOf(int group) {
    return groupOwner.getOrDefault(group, MsiBank.HOST);
  }

  /** Records the group of a device that has no vectors yet, so its MSI writes are attributed. */
  public Outcome<Void> setDeviceGroup(int rid, int group) {
    Integer known = ridGroup.get(rid);
    if (known != null && known != group) {
      return Outcome.err(Errno.EINVAL, "rid 0x%x: belongs to group %d, not %d", rid, known, group);
    }
    if (group < 0) {
      return Outcome.err(Errno.EINVAL, "group %d: negative", group);
    }
    ridGroup.put(rid, group);
    return Outcome.OK;
  }

  private void refreshBreaches() {
    for (int i = 0; i < banks.size(); i++) {
      boolean now = banks.get(i).isShared();
      if (now && !breached[i]) {
        breachEvents++;
      }
      breached[i] = now;
    }
  }

  /** Every bank holding vectors of two or more owners, in bank order. */
  public List<IsolationBreach> isolationReport() {
    List<IsolationBreach> out = new ArrayList<>();
    for (MsiBank b : banks) {
      if (b.isShared()) {
        out.add(
            new IsolationBreach(
                b.index(), b.msiirAddress(), new ArrayList<>(b.groups()), new ArrayList<>(b.owners())));
      }
    }
    return out;
  }

  /** Banks currently shared by two or more owners. */
  public int breachedBanks() {
    int n = 0;
    for (boolean b : breached) {
      n += b ? 1 : 0;
    }
    return n;
  }

  /** Times a bank went from one owner (or none) to several. */
  public long breachEvents() {
    return breachEvents;
  }

  /**
   * A device's write of {@code data} to host physical address {@code hpa} (after its IOMMU
   * translated the MSI address). Decodes the MSIR and bit as {@code fsl_msi_cascade} does and
   * reports whose vector fired; a vector of another owner counts as a cross-owner interrupt, an
   * unallocated one as spurious.
   *
   * @return EINVAL when {@code hpa} is not a bank's MSIIR or {@code data} selects no vector
   */
  public Outcome<MsiDelivery> deliver(int rid, long hpa, int data) {
    MsiBank b = byPage.get(hpa & ~0xfffL);
    if (b == null) {
      return Outcome.err(Errno.EINVAL, "hpa 0x%x: not in an MSIIR page", hpa);
    }
    if (hpa != b.msiirAddress()) {
      return Outcome.err(
          Errno.EINVAL, "hpa 0x%x: not the MSIIR of bank %d (0x%x)", hpa, b.index(), b.msiirAddress());
    }
    int v = b.vectorOfData(data);
    if (v < 0) {
      return Outcome.err(Errno.EINVAL, "data 0x%x: selects no vector of bank %d", data, b.index());
    }
    Integer wg = ridGroup.get(rid);
    int writerOwner = wg == null ? UNKNOWN_OWNER : ownerOf(wg);
    delivered++;
    if (!b.isAllocated(v)) {
      spurious++;
      return Outcome.ok(
          new MsiDelivery(b.index(), v, MsiBank.FREE, MsiBank.FREE, MsiBank.FREE, rid, writerOwner, true, false));
    }
    int targetOwner = b.ownerOf(v);
    boolean cross = targetOwner != writerOwner;
    if (cross) {
      crossOwner++;
    }
    return Outcome.ok(
        new MsiDelivery(
            b.index(), v, b.ridOf(v), b.groupOf(v), targetOwner, rid, writerOwner, false, cross));
  }

  public long deliveredInterrupts() {
    return delivered;
  }

  public long crossOwnerInterrupts() {
    return crossOwner;
  }

  public long spuriousInterrupts() {
    return spurious;
  }

  /** Immutable copy of the allocation state, for before/after comparisons. */
  public Snapshot snapshot() {
    List<MsiBank.State> states = new ArrayList<>(banks.size());
    for (MsiBank b : banks) {
      states.add(b.state());
    }
    return new Snapshot(
        List.copyOf(states), cursor, Map.copyOf(ridGroup), Map.copyOf(groupOwner), breachEvents);
  }

  /** The whole allocation state. */
  public record Snapshot(
      List<MsiBank.State> banks,
      int spreadCursor,
      Map<Integer, Integer> ridGroups,
      Map<Integer, Integer> groupOwners,
      long breachEvents) {}

  /** Checks the invariants of the class Javadoc; throws IllegalStateException when one fails. */
  public void checkInvariants() {
    for (int i = 0; i < banks.size(); i++) {
      MsiBank b = banks.get(i);
      if (breached[i] != b.isShared()) {
        throw new IllegalStateException("bank " + b.index() + ": stale breach flag");
      }
      int used = 0;
      for (int v = 0; v < b.vectors(); v++) {
        if (b.isAllocated(v)) {
          used++;
          int g = b.groupOf(v);
          if (b.ownerOf(v) != ownerOf(g)) {
            throw new IllegalStateException(
                "bank " + b.index() + " vector " + v + ": owner " + b.ownerOf(v)
                    + " but group " + g + " belongs to " + ownerOf(g));
          }
          Integer rg = ridGroup.get(b.ridOf(v));
          if (rg == null || rg != g) {
            throw new IllegalStateException("bank " + b.index() + " vector " + v + ": rid group");
          }
        }
      }
      if (used != b.usedVectors()) {
        throw new IllegalStateException("bank " + b.index() + ": used count " + b.usedVectors());
      }
    }
  }
}
