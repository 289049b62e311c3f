package io.iommulab.hardware.iommu;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.List;

/**
 * One requester's scalable-mode PASID table: a directory of 4 KiB leaf tables of 64 entries
 * each, indexed by the 20-bit PASID (directory index {@code pasid >> 6}, leaf index
 * {@code pasid & 63}). The directory is sized at probe for the requester's PASID width; leaves
 * are allocated on demand and, as in the kernel, kept until the table is freed
 * ({@code drivers/iommu/intel/pasid.c} {@code intel_pasid_alloc_table},
 * {@code intel_pasid_get_entry}: "The pasid directory table entry won't be freed after
 * allocation").
 *
 * <p>Isolation: the table is reached only through its requester's {@link ContextEntry}, so a
 * PASID of one RID can never select another RID's address space (hardware-rules §2, "PASID table
 * per RID"; the 2021 IOASID thread: "access to a PASID must be limited by RID").
 *
 * <p>Invariants: {@code limit() == 1 << width()}; an entry is present only inside an allocated
 * leaf; {@link #present()} counts present entries.
 */
public final class PasidTable {

  /** Entries per leaf table: 4 KiB of 64-byte entries. */
  public static final int LEAF_ENTRIES = 64;

  /** Largest PASID width (VT-d and PCIe: 20 bits). */
  public static final int MAX_PASID_BITS = 20;

  /** Injector site consulted before allocating the directory or a leaf table. */
  public static final String SITE = "pasid.table";

  private final int width;
  private final PasidEntry[][] directory;
  private int leaves;
  private int present;

  private PasidTable(int width) {
    this.width = width;
    this.directory = new PasidEntry[Math.max(1, (1 << width) / LEAF_ENTRIES)][];
  }

  /** Allocates the directory for {@code width} PASID bits (0 = RID_PASID only). */
  static Outcome<PasidTable> allocate(int width, FaultInjector injector) {
    if (width < 0 || width > MAX_PASID_BITS) {
      throw new IllegalArgumentException("PASID width " + width);
    }
    if (injector.shouldFail(SITE)) {
      return Outcome.err(Errno.ENOMEM, "PASID directory allocation failed (%s)", SITE);
    }
    return Outcome.ok(new PasidTable(width));
  }

  /** PASID width this table covers. */
  public int width() {
    return width;
  }

  /** One past the largest PASID the table covers. */
  public int limit() {
    return 1 << width;
  }

  /** The present entry at {@code pasid}, or null. {@code pasid} must be within the limit. */
  public PasidEntry get(int pasid) {
    PasidEntry[] leaf = directory[pasid >>> 6];
    return leaf == null ? null : leaf[pasid & (LEAF_ENTRIES - 1)];
  }

  /** Makes sure the leaf holding {@code pasid} exists; ENOMEM (nothing changed) when it cannot. */
  Outcome<Void> ensureLeaf(int pasid, FaultInjector injector) {
    int d = pasid >>> 6;
    if (directory[d] != null) {
      return Outcome.OK;
    }
    if (injector.shouldFail(SITE)) {
      return Outcome.err(
          Errno.ENOMEM, "pasid %d: PASID leaf table allocation failed (%s)", pasid, SITE);
    }
    directory[d] = new PasidEntry[LEAF_ENTRIES];
    leaves++;
    return Outcome.OK;
  }

  /** Installs an entry; the leaf must exist and the slot be free. */
  void set(int pasid, PasidEntry entry) {
    PasidEntry[] leaf = directory[pasid >>> 6];
    if (leaf == null) {
      throw new IllegalStateException("pasid " + pasid + ": leaf table not allocated");
    }
    if (leaf[pasid & (LEAF_ENTRIES - 1)] == null) {
      present++;
    }
    leaf[pasid & (LEAF_ENTRIES - 1)] = entry;
  }

  /** Clears the entry at {@code pasid}; returns the old entry. */
  PasidEntry clear(int pasid) {
    PasidEntry[] leaf = directory[pasid >>> 6];
    if (leaf == null || leaf[pasid & (LEAF_ENTRIES - 1)] == null) {
      throw new IllegalStateException("pasid " + pasid + ": not present");
    }
    PasidEntry old = leaf[pasid & (LEAF_ENTRIES - 1)];
    leaf[pasid & (LEAF_ENTRIES - 1)] = null;
    present--;
    return old;
  }

  /** Leaf tables allocated. */
  public int leaves() {
    return leaves;
  }

  /** Present entries. */
  public int present() {
    return present;
  }

  /** Present entries in ascending PASID order. */
  public List<PasidEntry> entries() {
    List<PasidEntry> out = new ArrayList<>();
    for (PasidEntry[] leaf : directory) {
      if (leaf == null) {
        continue;
      }
      for (PasidEntry e : leaf) {
        if (e != null) {
          out.add(e);
        }
      }
    }
    return out;
  }
}
