package io.iommulab.hardware.msi;

import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * One MPIC MSI bank: a 4 KiB MSIIR page whose single register raises any of the bank's vectors
 * (8 MSIRs × 32 = 256 by default). Whoever can write the MSIIR can raise every vector of the bank,
 * which is why a bank shared by two owners breaks interrupt isolation ({@link MsiBankSet}; the
 * 2013 VFIO-PAMU thread: "an MSI group is only used by one VFIO group").
 *
 * <p>Vectors are numbered densely, {@code vector = msir * 32 + bit}; the data word a device writes
 * is {@link #data(int)}, which depends on the {@link MsiirFormat}. Allocation takes the free vector
 * with the lowest data word, as {@code msi_bitmap_alloc_hwirqs(&bitmap, 1)} does in
 * {@code arch/powerpc/sysdev/fsl_msi.c}.
 *
 * <p>Invariants: a vector is free exactly when its rid is {@link #FREE}; {@code used} equals the
 * number of allocated vectors; the per-owner and per-group counters equal the counts over the
 * allocated vectors (so {@link #owners()} and {@link #groups()} are exact).
 */
public final class MsiBank {
  /** Owner id of groups the host keeps (not assigned to any VM). */
  public static final int HOST = -1;
  /** Rid value of a free vector. */
  public static final int FREE = -1;

  private final MsiBankSettings settings;
  private final MsiirFormat format;
  private final FaultInjector injector;
  private final int vectors;
  /** Vector indices in ascending data-word order: the allocation order. */
  private final int[] allocationOrder;
  private final int[] rid;
  private final int[] group;
  private final int[] owner;
  private int used;
  private final TreeMap<Integer, Integer> ownerVectors = new TreeMap<>();
  private final TreeMap<Integer, Integer> groupVectors = new TreeMap<>();

  public MsiBank(MsiBankSettings settings, FaultInjector injector) {
    this(settings, MsiirFormat.forVectors(settings.vectors()), injector);
  }

  public MsiBank(MsiBankSettings settings, MsiirFormat format, FaultInjector injector) {
    if ((settings.msiirAddress() & 0xfffL) != 0 || settings.msiirAddress() < 0) {
      throw new IllegalArgumentException(
          String.format("msiirAddress 0x%x: not a 4 KiB page", settings.msiirAddress()));
    }
    int v = settings.vectors();
    if (v <= 0 || v % MsiirFormat.IRQS_PER_MSIR != 0 || v > format.maxVectors()) {
      // fsl_of_msi_probe: "msi available range ... is not IRQ-aligned"
      throw new IllegalArgumentException(
          "vectors " + v + ": must be whole MSIRs of 32, at most " + format.maxVectors()
              + " for " + format);
    }
    this.settings = settings;
    this.format = format;
    this.injector = injector;
    this.vectors = v;
    this.rid = new int[v];
    this.group = new int[v];
    this.owner = new int[v];
    Arrays.fill(rid, FREE);
    Arrays.fill(group, FREE);
    Arrays.fill(owner, FREE);
    Integer[] order = new Integer[v];
    for (int i = 0; i < v; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (a, b) -> Integer.compare(data(a), data(b)));
    this.allocationOrder = new int[v];
    for (int i = 0; i < v; i++) {
      allocationOrder[i] = order[i];
    }
  }

  public int index() {
    return settings.index();
  }

  public MsiBankSettings settings() {
    return settings;
  }

  /** Host physical address of the MSIIR register (the start of its 4 KiB page). */
  public long msiirAddress() {
    return settings.msiirAddress();
  }

  /** The 4 KiB page holding the MSIIR: what a PAMU window maps for this bank. */
  public long msiirPage() {
    return settings.msiirAddress() & ~0xfffL;
  }

  public MsiirFormat format() {
    return format;
  }

  public int vectors() {
    return vectors;
  }

  public int usedVectors() {
    return used;
  }

  public int freeVectors() {
    return vectors - used;
  }

  /**
   * Allocates the free vector with the lowest data word for {@code rid} of {@code group}, owned
   * by {@code owner}.
   *
   * @return the vector; ENOSPC when the bank is full, ENOMEM when the injector fails site
   *     {@code "msi.vector"}, EINVAL for an argument out of range
   */
  public Outcome<Integer> allocate(int rid, int group, int owner) {
    if (rid < 0 || rid > 0xffff) {
      return Outcome.err(Errno.EINVAL, "rid 0x%x: not a 16-bit requester id", rid);
    }
    if (group < 0) {
      return Outcome.err(Errno.EINVAL, "group %d: negative", group);
    }
    if (owner < HOST) {
      return Outcome.err(Errno.EINVAL, "owner %d: below HOST (-1)", owner);
    }
    if (used == vectors) {
      return Outcome.err(Errno.ENOSPC, "bank %d: all %d vectors in use", index(), vectors);
    }
    if (injector.shouldFail("msi.vector")) {
      return Outcome.err(Errno.ENOMEM, "bank %d: vector allocation failed (injected)", index());
    }
    for (int v : allocationOrder) {
      if (this.rid[v] == FREE) {
        this.rid[v] = rid;
        this.group[v] = group;
        this.owner[v] = owner;
        used++;
        ownerVectors.merge(owner, 1, Integer::sum);
        groupVectors.merge(group, 1, Integer::sum);
        return Outcome.ok(v);
      }
    }
    throw new IllegalStateException("bank " + index() + ": used " + used + " but no free vector");
  }

  /** Frees {@code vector}; ENOENT when it is not allocated, EINVAL when out of range. */
  public Outcome<Void> free(int vector) {
    if (vector < 0 || vector >= vectors) {
      return Outcome.err(Errno.EINVAL, "vector %d: bank %d has %d", vector, index(), vectors);
    }
    if (rid[vector] == FREE) {
      return Outcome.err(Errno.ENOENT, "vector %d of bank %d: not allocated", vector, index());
    }
    release(vector);
    return Outcome.OK;
  }

  /** Frees every vector of {@code rid}; returns how many. */
  public int freeAllOf(int rid) {
    int n = 0;
    for (int v = 0; v < vectors; v++) {
      if (this.rid[v] == rid && rid != FREE) {
        release(v);
        n++;
      }
    }
    return n;
  }

  private void release(int v) {
    decrement(ownerVectors, owner[v]);
    decrement(groupVectors, group[v]);
    rid[v] = FREE;
    group[v] = FREE;
    owner[v] = FREE;
    used--;
  }

  private static void decrement(Map<Integer, Integer> counts, int key) {
    int left = counts.get(key) - 1;
    if (left == 0) {
      counts.remove(key);
    } else {
      counts.put(key, left);
    }
  }

  /**
   * Re-owns every vector of {@code group}: the group was assigned to (or taken from) a VM. Called
   * by {@link MsiBankSet#setGroupOwner} for a set of banks, and by the owner of a lone bank.
   */
  public void retagOwner(int group, int newOwner) {
    if (newOwner < HOST) {
      throw new IllegalArgumentException("owner " + newOwner + " below HOST (-1)");
    }
    for (int v = 0; v < vectors; v++) {
      if (rid[v] != FREE && this.group[v] == group && owner[v] != newOwner) {
        decrement(ownerVectors, owner[v]);
        owner[v] = newOwner;
        ownerVectors.merge(newOwner, 1, Integer::sum);
      }
    }
  }

  public boolean isAllocated(int vector) {
    return rid[vector] != FREE;
  }

  /** The rid using {@code vector}, or {@link #FREE}. */
  public int ridOf(int vector) {
    return rid[vector];
  }

  public int groupOf(int vector) {
    return group[vector];
  }

  public int ownerOf(int vector) {
    return owner[vector];
  }

  /** The data word a device writes to the MSIIR to raise {@code vector}. */
  public int data(int vector) {
    return format.encode(vector / MsiirFormat.IRQS_PER_MSIR, vector % MsiirFormat.IRQS_PER_MSIR);
  }

  /** The vector a data word raises, or -1 when the word selects no vector of this bank. */
  public int vectorOfData(int data) {
    int msir = format.msirOf(data);
    int bit = format.bitOf(data);
    if (format.encode(msir, bit) != data) {
      return -1; // bits outside the srs/ibs fields
    }
    int v = msir * MsiirFormat.IRQS_PER_MSIR + bit;
    return v < vectors ? v : -1;
  }

  /** Vectors {@code rid} holds in this bank. */
  public int vectorsOf(int rid) {
    int n = 0;
    for (int v = 0; v < vectors; v++) {
      if (this.rid[v] == rid && rid != FREE) {
        n++;
      }
    }
    return n;
  }

  public boolean usedByGroup(int group) {
    return groupVectors.containsKey(group);
  }

  /** True when a vector of an owner other than {@code owner} is allocated here. */
  public boolean usedByOwnerOtherThan(int owner) {
    int n = ownerVectors.size();
    return n > 1 || (n == 1 && ownerVectors.firstKey() != owner);
  }

  /** The IOMMU groups with a vector in this bank. */
  public SortedSet<Integer> groups() {
    return Collections.unmodifiableSortedSet(new TreeSet<>(groupVectors.keySet()));
  }

  /** The owners with a vector in this bank. */
  public SortedSet<Integer> owners() {
    return Collections.unmodifiableSortedSet(new TreeSet<>(ownerVectors.keySet()));
  }

  /** The rids with a vector in this bank. */
  public SortedSet<Integer> rids() {
    TreeSet<Integer> s = new TreeSet<>();
    for (int v = 0; v < vectors; v++) {
      if (rid[v] != FREE) {
        s.add(rid[v]);
      }
    }
    return Collections.unmodifiableSortedSet(s);
  }

  /** Two or more owners have vectors here: each can raise the other's interrupts. */
  public boolean isShared() {
    return ownerVectors.size() > 1;
  }

  /** Immutable copy of the bank's state. */
  public State state() {
    List<Integer> r = new ArrayList<>(vectors);
    List<Integer> g = new ArrayList<>(vectors);
    List<Integer> o = new ArrayList<>(vectors);
    for (int v = 0; v < vectors; v++) {
      r.add(rid[v]);
      g.add(group[v]);
      o.add(owner[v]);
    }
    return new State(index(), used, List.copyOf(r), List.copyOf(g), List.copyOf(o));
  }

  /** Per-vector rid, group and owner ({@link #FREE} when free). */
  public record State(int index, int used, List<Integer> rids, List<Integer> groups, List<Integer> owners) {}

  @Override
  public String toString() {
    return String.format(
        "MsiBank[%d msiir=0x%x %s %d/%d used owners=%s]",
        index(), msiirAddress(), format, used, vectors, ownerVectors.keySet());
  }
}
