package io.iommulab.hardware.pagetable;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.iommu.Translation;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.function.LongConsumer;

/**
 * A radix I/O page table of 3, 4 or 5 levels (input address width 39, 48 or 57 bits), shaped
 * like a VT-d second-stage table or an SMMUv3 LPAE table with a 4 KiB granule: every level holds
 * 512 entries of 8 bytes and consumes 9 address bits; level 1 maps 4 KiB pages, level 2 2 MiB and
 * level 3 1 GiB pages when the page size is supported ({@code drivers/iommu/intel/iommu.c}
 * {@code pfn_to_dma_pte}; VT-d spec ch. 9, second-stage paging entries).
 *
 * <h2>Storage</h2>
 *
 * Table nodes are {@code long[512]} arrays kept in a pool; a non-leaf entry holds its child's
 * pool index where hardware holds the child's physical address, so a walk is one array read per
 * level. Node 0 is the root and lives as long as the table.
 *
 * <h2>Entry encoding</h2>
 *
 * <pre>
 *  bit  0  R      read permitted          } present  ⇔  (R | W) != 0, as VT-d
 *  bit  1  W      write permitted         } dma_pte_present(); non-leaf entries set both
 *  bit  2  X      execute permitted (Access.EXEC)
 *  bit  7  PS     leaf above level 1 (a 2 MiB or 1 GiB large page; DMA_PTE_LARGE_PAGE)
 *  bit  9  D      dirty: set by a write translation when dirty tracking is on (VT-d SL bit 9)
 *  bit 11  SNP    force snoop (Access.SNOOP, DMA_PTE_SNP)
 *  bits 12..51    leaf: output frame address; non-leaf: child node index &lt;&lt; 12
 * </pre>
 *
 * A level-1 entry is always a leaf; an entry at level 2 or 3 is a leaf iff PS is set.
 *
 * <h2>Rules</h2>
 *
 * <ul>
 *   <li>{@link #map} picks, at each step, the largest supported page size that the IOVA, the
 *       output address and the remaining length allow ({@code iommu_pgsize},
 *       {@code drivers/iommu/iommu.c}), and is all or nothing: on any failure every entry and node
 *       it added is removed again.
 *   <li>{@link #unmap} never splits a large page: a range that cuts a leaf is refused. The
 *       iommufd mock driver WARNs unless unmaps are exact supersets of maps
 *       ({@code drivers/iommu/iommufd/selftest.c} {@code mock_domain_unmap_pages}) and VT-d
 *       unmaps whole large pages ({@code intel_iommu_unmap}); iommufd itself never cuts an area
 *       ({@code io_pagetable.c}).
 * </ul>
 *
 * <h2>Invariants</h2>
 *
 * <ul>
 *   <li>Every non-root node has at least one present entry: a node that becomes empty is freed
 *       and its parent entry cleared ({@code dma_pte_free_pagetable}).
 *   <li>{@code used[n]} equals the number of present entries of node {@code n};
 *       {@link #leafCount()} and {@link #mappedBytes()} equal the leaves and bytes reachable from
 *       the root.
 *   <li>Leaves never overlap, and every leaf lies within the address width.
 * </ul>
 *
 * <p>Not thread-safe: its owner (a domain, owned by one unit actor) is its lock. {@link #walk}
 * and {@link #walkForWrite} allocate nothing.
 */
public final class IoPageTable {

  /** Entries per table node. */
  public static final int ENTRIES = 512;

  /** Smallest (base) page: 4 KiB. */
  public static final long BASE_PAGE = 4096;

  /** Injector site consulted before every table-node allocation. */
  public static final String SITE_NODE = "pagetable.node";

  /** Output (physical) address width: bits 12..51 of an entry. */
  public static final int OUTPUT_WIDTH = 52;

  static final long PTE_R = 1L;
  static final long PTE_W = 1L << 1;
  static final long PTE_X = 1L << 2;
  static final long PTE_PS = 1L << 7;
  static final long PTE_D = 1L << 9;
  static final long PTE_SNP = 1L << 11;
  static final long PTE_ADDR = ((1L << OUTPUT_WIDTH) - 1) & ~0xfffL;

  private static final int ROOT = 0;
  private static final PageSize[] LEVEL_SIZE = {
    null, PageSize.SIZE_4K, PageSize.SIZE_2M, PageSize.SIZE_1G, null, null
  };

  /** Visits one leaf. */
  @FunctionalInterface
  public interface LeafVisitor {
    /**
     * @param prot {@link Access} bits of the leaf (READ, WRITE, EXEC, SNOOP)
     */
    void leaf(long iova, long pa, PageSize size, int prot);
  }

  /** A leaf as a value, for snapshots and tests. */
  public record Leaf(long iova, long pa, PageSize size, int prot, boolean dirty) {
    @Override
    public String toString() {
      return String.format(
          "Leaf[0x%x->0x%x %s %s%s%s]",
          iova,
          pa,
          size,
          Access.describe(prot),
          (prot & Access.SNOOP) != 0 ? " snp" : "",
          dirty ? " dirty" : "");
    }
  }

  /** Everything observable about a table, for "a refused call changed nothing" assertions. */
  public record Snapshot(List<Leaf> leaves, int nodeCount, long mappedBytes) {
    public Snapshot {
      leaves = List.copyOf(leaves);
    }
  }

  private final int levels;
  private final int addressWidth;
  private final long pageSizeBitmap;
  private final long[] sizesDescending;
  private final FaultInjector injector;

  private long[][] pool;
  private int[] used;
  private int[] freeList;
  private int freeTop;
  private int highWater;
  private int nodeCount;
  private long leafCount;
  private long mappedBytes;

  /** Scratch path of the descent in progress, for pruning after a failed allocation. */
  private final int[] pathNode = new int[6];

  private final int[] pathIndex = new int[6];

  /**
   * @param addressWidth input address width: 39, 48 or 57 bits
   * @param pageSizes supported page sizes; 4 KiB is required, 2 MiB and 1 GiB are optional
   * @param injector consulted at {@value #SITE_NODE} before each node allocation
   */
  public IoPageTable(int addressWidth, List<PageSize> pageSizes, FaultInjector injector) {
    if (addressWidth != 39 && addressWidth != 48 && addressWidth != 57) {
      throw new IllegalArgumentException("address width must be 39, 48 or 57: " + addressWidth);
    }
    this.addressWidth = addressWidth;
    this.levels = (addressWidth - 12) / 9;
    long bitmap = 0;
    for (PageSize p : pageSizes) {
      if (p.leafLevel().isEmpty()) {
        throw new IllegalArgumentException("a radix table cannot map " + p + " pages");
      }
      bitmap |= p.bytes();
    }
    if ((bitmap & BASE_PAGE) == 0) {
      throw new IllegalArgumentException("4 KiB pages are always supported: " + pageSizes);
    }
    this.pageSizeBitmap = bitmap;
    this.sizesDescending =
        new long[Long.bitCount(bitmap)];
    int i = 0;
    for (long b = Long.highestOneBit(bitmap); b != 0; b >>>= 1) {
      if ((bitmap & b) != 0) {
        sizesDescending[i++] = b;
      }
    }
    this.injector = Objects.requireNonNull(injector, "injector");
    resetPool();
  }

  /** A table supporting the page sizes in {@code bitmap} (bytes OR-ed, as pgsize_bitmap). */
  public static IoPageTable ofBitmap(int addressWidth, long bitmap, FaultInjector injector) {
    List<PageSize> sizes = new ArrayList<>();
    for (PageSize p : PageSize.values()) {
      if ((bitmap & p.bytes()) != 0) {
        sizes.add(p);
      }
    }
    if (Long.bitCount(bitmap) != sizes.size()) {
      throw new IllegalArgumentException(String.format("unknown page sizes in 0x%x", bitmap));
    }
    return new IoPageTable(addressWidth, sizes, injector);
  }

  private void resetPool() {
    pool = new long[16][];
    used = new int[16];
    freeList = new int[16];
    freeTop = 0;
    pool[ROOT] = new long[ENTRIES];
    highWater = 1;
    nodeCount = 1;
    leafCount = 0;
    mappedBytes = 0;
  }

  // ---------------------------------------------------------------- geometry

  public int levels() {
    return levels;
  }

  public int addressWidth() {
    return addressWidth;
  }

  /** Supported page sizes as a bitmap of byte counts ({@code pgsize_bitmap}). */
  public long pageSizeBitmap() {
    return pageSizeBitmap;
  }

  /** Supported page sizes, ascending. */
  public List<PageSize> pageSizes() {
    List<PageSize> out = new ArrayList<>();
    for (PageSize p : PageSize.values()) {
      if ((pageSizeBitmap & p.bytes()) != 0) {
        out.add(p);
      }
    }
    return Collections.unmodifiableList(out);
  }

  private static int shift(int level) {
    return 12 + 9 * (level - 1);
  }

  private static int index(long iova, int level) {
    return (int) (iova >>> shift(level)) & (ENTRIES - 1);
  }

  private static boolean present(long pte) {
    return (pte & (PTE_R | PTE_W)) != 0;
  }

  private static boolean isLeaf(long pte, int level) {
    return level == 1 || (pte & PTE_PS) != 0;
  }

  private static int child(long pte) {
    return (int) ((pte & PTE_ADDR) >>> 12);
  }

  private static int levelOfSize(long size) {
    return (Long.numberOfTrailingZeros(size) - 12) / 9 + 1;
  }

  static long protToPte(int prot) {
    long pte = 0;
    if ((prot & Access.READ) != 0) {
      pte |= PTE_R;
    }
    if ((prot & Access.WRITE) != 0) {
      pte |= PTE_W;
    }
    if ((prot & Access.EXEC) != 0) {
      pte |= PTE_X;
    }
    if ((prot & Access.SNOOP) != 0) {
      pte |= PTE_SNP;
    }
    return pte;
  }

  static int pteToProt(long pte) {
    int prot = 0;
    if ((pte & PTE_R) != 0) {
      prot |= Access.READ;
    }
    if ((pte & PTE_W) != 0) {
      prot |= Access.WRITE;
    }
    if ((pte & PTE_X) != 0) {
      prot |= Access.EXEC;
    }
    if ((pte & PTE_SNP) != 0) {
      prot |= Access.SNOOP;
    }
    return prot;
  }

  // ---------------------------------------------------------------- node pool

  private int allocNode() {
    int idx;
    if (freeTop > 0) {
      idx = freeList[--freeTop];
    } else {
      idx = highWater++;
      if (idx == pool.length) {
        pool = Arrays.copyOf(pool, idx * 2);
        used = Arrays.copyOf(used, idx * 2);
      }
      pool[idx] = new long[ENTRIES];
    }
    used[idx] = 0;
    nodeCount++;
    return idx;
  }

  /** Frees an empty node; its entries are all zero already, so it is reused as is. */
  private void freeNode(int idx) {
    if (idx == ROOT || used[idx] != 0) {
      throw new IllegalStateException("freeing node " + idx + " with " + used[idx] + " entries");
    }
    if (freeTop == freeList.length) {
      freeList = Arrays.copyOf(freeList, freeTop * 2);
    }
    freeList[freeTop++] = idx;
    nodeCount--;
  }

  // ---------------------------------------------------------------- map

  /**
   * Maps {@code [iova, iova + length)} to {@code [pa, pa + length)}.
   *
   * @param prot {@link Access} bits: READ and/or WRITE (at least one), optionally EXEC and SNOOP
   * @return OK; EINVAL (bad prot, zero or unaligned length, unaligned iova or pa, range beyond the
   *     input or output address width); EOVERFLOW (the range wraps 2^64); EEXIST (overlaps a
   *     present entry); ENOMEM (node allocation failed). On error nothing changed.
   */
  public Outcome<Void> map(long iova, long pa, long length, int prot) {
    if ((prot & (Access.READ | Access.WRITE)) == 0) {
      return Outcome.err(Errno.EINVAL, "prot 0x%x: neither READ nor WRITE", prot);
    }
    if ((prot & ~(Access.READ | Access.WRITE | Access.EXEC | Access.SNOOP)) != 0) {
      return Outcome.err(Errno.EINVAL, "prot 0x%x: bits other than READ|WRITE|EXEC|SNOOP", prot);
    }
    Outcome<Void> range = checkRange(iova, length);
    if (range != null) {
      return range;
    }
    if ((pa & (BASE_PAGE - 1)) != 0) {
      return Outcome.err(Errno.EINVAL, "pa 0x%x: not aligned to %d", pa, BASE_PAGE);
    }
    long paEnd = pa + length;
    if (Long.compareUnsigned(paEnd, pa) <= 0) {
      return Outcome.err(
          Errno.EOVERFLOW, "pa 0x%x + length 0x%x: wraps past 2^64", pa, length);
    }
    if (Long.compareUnsigned(paEnd, 1L << OUTPUT_WIDTH) > 0) {
      return Outcome.err(
          Errno.EINVAL,
          "pa range [0x%x, 0x%x): beyond the %d-bit output address width",
          pa,
          paEnd,
          OUTPUT_WIDTH);
    }
    long bits = protToPte(prot);
    long cur = iova;
    long curPa = pa;
    long remaining = length;
    while (remaining != 0) {
      long size = pickSize(cur, curPa, remaining);
      int status = install(cur, curPa, levelOfSize(size), bits);
      if (status != 0) {
        if (cur != iova) {
          removeRange(ROOT, levels, 0, iova, cur);
        }
        if (status == 1) {
          return Outcome.err(
              Errno.EEXIST,
              "iova range [0x%x, 0x%x): 0x%x is already mapped",
              iova,
              iova + length,
              cur);
        }
        return Outcome.err(
            Errno.ENOMEM, "iova 0x%x: table node allocation failed (%s)", cur, SITE_NODE);
      }
      cur += size;
      curPa += size;
      remaining -= size;
    }
    return Outcome.OK;
  }

  /**
   * Validates an input range: length a non-zero multiple of 4 KiB, iova aligned, no 2^64 wrap,
   * within the address width. Returns null when valid.
   */
  private <T> Outcome<T> checkRange(long iova, long length) {
    if (length == 0 || (length & (BASE_PAGE - 1)) != 0) {
      return Outcome.err(
          Errno.EINVAL, "length 0x%x: not a non-zero multiple of %d", length, BASE_PAGE);
    }
    if ((iova & (BASE_PAGE - 1)) != 0) {
      return Outcome.err(Errno.EINVAL, "iova 0x%x: not aligned to %d", iova, BASE_PAGE);
    }
    long end = iova + length;
    if (Long.compareUnsigned(end, iova) <= 0) {
      return Outcome.err(
          Errno.EOVERFLOW, "iova 0x%x + length 0x%x: wraps past 2^64", iova, length);
    }
    if (Long.compareUnsigned(end, 1L << addressWidth) > 0) {
      return Outcome.err(
          Errno.EINVAL,
          "iova range [0x%x, 0x%x): beyond the %d-bit address width",
          iova,
          end,
          addressWidth);
    }
    return null;
  }

  /** The largest supported page size that {@code iova}, {@code pa} and {@code remaining} allow. */
  private long pickSize(long iova, long pa, long remaining) {
    long merged = iova | pa;
    for (long size : sizesDescending) {
      if (Long.compareUnsigned(size, remaining) <= 0 && (merged & (size - 1)) == 0) {
        return size;
      }
    }
    throw new IllegalStateException("no page size fits: 4 KiB alignment was checked");
  }

  /**
   * Installs one leaf. Returns 0 on success, 1 when an entry is already present on the way or at
   * the slot (nothing changed), 2 when a node allocation failed (nodes added by this descent are
   * freed again).
   */
  private int install(long iova, long pa, int level, long bits) {
    int node = ROOT;
    int depth = 0;
    for (int l = levels; l > level; l--) {
      int idx = index(iova, l);
      long pte = pool[node][idx];
      pathNode[depth] = node;
      pathIndex[depth] = idx;
      depth++;
      if (present(pte)) {
        if (isLeaf(pte, l)) {
          return 1;
        }
        node = child(pte);
      } else {
        if (injector.shouldFail(SITE_NODE)) {
          prunePath(depth - 1);
          return 2;
        }
        int c = allocNode();
        pool[node][idx] = PTE_R | PTE_W | ((long) c << 12);
        used[node]++;
        node = c;
      }
    }
    int idx = index(iova, level);
    if (present(pool[node][idx])) {
      return 1;
    }
    long leaf = bits | (pa & PTE_ADDR);
    if (level > 1) {
      leaf |= PTE_PS;
    }
    pool[node][idx] = leaf;
    used[node]++;
    leafCount++;
    mappedBytes += 1L << shift(level);
    return 0;
  }

  /**
   * After a failed allocation, frees the empty nodes the descent created: from the deepest node
   * reached upwards, while a node is empty. Pre-existing nodes are never empty (invariant), so
   * only this descent's nodes go.
   */
  private void prunePath(int deepest) {
    for (int d = deepest; d >= 1; d--) {
      int parent = pathNode[d - 1];
      int node = pathNode[d];
      if (used[node] != 0) {
        return;
      }
      pool[parent][pathIndex[d - 1]] = 0;
      used[parent]--;
      freeNode(node);
    }
  }

  // ---------------------------------------------------------------- unmap

  /**
   * Removes every leaf inside {@code [iova, iova + length)} and frees table nodes that become
   * empty.
   *
   * @return the bytes unmapped (0 if nothing was mapped there); EINVAL (zero or unaligned length,
   *     unaligned iova, beyond the address width, or the range cuts a leaf, i.e. a large page
   *     lies only partly inside it: no split); EOVERFLOW (the range wraps 2^64). On error nothing
   *     changed.
   */
  public Outcome<Long> unmap(long iova, long length) {
    Outcome<Long> range = checkRange(iova, length);
    if (range != null) {
      return range;
    }
    long last = iova + length - 1;
    long cutFirst = leafStartContaining(iova);
    if (cutFirst != -1 && cutFirst != iova) {
      return Outcome.err(
          Errno.EINVAL,
          "iova 0x%x: inside a large page starting at 0x%x (unmap does not split pages)",
          iova,
          cutFirst);
    }
    long lastStart = leafStartContaining(last);
    if (lastStart != -1) {
      long lastEnd = lastStart + leafSizeContaining(last);
      if (Long.compareUnsigned(lastEnd - 1, last) > 0) {
        return Outcome.err(
            Errno.EINVAL,
            "iova range [0x%x, 0x%x): ends inside a large page [0x%x, 0x%x) (unmap does not split"
                + " pages)",
            iova,
            iova + length,
            lastStart,
            lastEnd);
      }
    }
    return unmapped(removeRange(ROOT, levels, 0, iova, iova + length));
  }

  private static final Outcome<Long> UNMAPPED_NONE = Outcome.ok(0L);
  private static final Outcome<Long> UNMAPPED_4K = Outcome.ok(PageSize.SIZE_4K.bytes());
  private static final Outcome<Long> UNMAPPED_2M = Outcome.ok(PageSize.SIZE_2M.bytes());
  private static final Outcome<Long> UNMAPPED_1G = Outcome.ok(PageSize.SIZE_1G.bytes());

  /**
   * The result of an unmap of {@code bytes}. Unmaps of one page are the common case; sharing their
   * immutable results keeps the unmap path free of allocation (a boxed Long and an Ok per call).
   */
  private static Outcome<Long> unmapped(long bytes) {
    if (bytes == 0) {
      return UNMAPPED_NONE;
    } else if (bytes == PageSize.SIZE_4K.bytes()) {
      return UNMAPPED_4K;
    } else if (bytes == PageSize.SIZE_2M.bytes()) {
      return UNMAPPED_2M;
    } else if (bytes == PageSize.SIZE_1G.bytes()) {
      return UNMAPPED_1G;
    }
    return Outcome.ok(bytes);
  }

  /** Start of the leaf containing {@code iova}, or -1. */
  private long leafStartContaining(long iova) {
    int node = ROOT;
    for (int l = levels; l >= 1; l--) {
      long pte = pool[node][index(iova, l)];
      if (!present(pte)) {
        return -1;
      }
      if (isLeaf(pte, l)) {
        return iova & ~((1L << shift(l)) - 1);
      }
      node = child(pte);
    }
    throw new IllegalStateException("walk ran past level 1");
  }

  private long leafSizeContaining(long iova) {
    int node = ROOT;
    for (int l = levels; l >= 1; l--) {
      long pte = pool[node][index(iova, l)];
      if (isLeaf(pte, l)) {
        return 1L << shift(l);
      }
      node = child(pte);
    }
    throw new IllegalStateException("walk ran past level 1");
  }

  /**
   * Removes the leaves of {@code node} (at {@code level}, covering from {@code base}) within
   * {@code [start, end)}; callers guarantee no leaf straddles the range boundaries.
   */
  private long removeRange(int node, int level, long base, long start, long end) {
    int sh = shift(level);
    long span = 1L << sh;
    long nodeLast = base + (span << 9) - 1;
    long from = Long.compareUnsigned(start, base) > 0 ? start : base;
    long to = Long.compareUnsigned(end - 1, nodeLast) < 0 ? end - 1 : nodeLast;
    int first = index(from, level);
    int lastIdx = index(to, level);
    long removed = 0;
    long[] entries = pool[node];
    for (int i = first; i <= lastIdx; i++) {
      long pte = entries[i];
      if (!present(pte)) {
        continue;
      }
      if (isLeaf(pte, level)) {
        entries[i] = 0;
        used[node]--;
        leafCount--;
        mappedBytes -= span;
        removed += span;
      } else {
        int c = child(pte);
        removed += removeRange(c, level - 1, base + (long) i * span, start, end);
        if (used[c] == 0) {
          entries[i] = 0;
          used[node]--;
          freeNode(c);
        }
      }
    }
    return removed;
  }

  // ---------------------------------------------------------------- walk

  /**
   * Translates {@code iova}: fills {@code out.hpa} (offset included), {@code prot} ({@link Access}
   * bits plus SNOOP), {@code pageSize}, {@code levels} (entries read), {@code source = WALK} and
   * clears {@code fault}. When nothing is mapped returns false with only {@code out.levels}
   * filled (0 if {@code iova} is beyond the address width). Allocates nothing.
   */
  public boolean walk(long iova, Translation out) {
    return walk(iova, out, false);
  }

  /**
   * As {@link #walk}, for a write: when the leaf grants WRITE its dirty bit is set, as hardware
   * with dirty tracking (VT-d SSADE, SMMUv3 HTTU DBM) does on a write translation.
   */
  public boolean walkForWrite(long iova, Translation out) {
    return walk(iova, out, true);
  }

  private boolean walk(long iova, Translation out, boolean write) {
    if ((iova >>> addressWidth) != 0) {
      out.levels = 0;
      return false;
    }
    long[] entries = pool[ROOT];
    int read = 0;
    for (int l = levels; l >= 1; l--) {
      int idx = index(iova, l);
      long pte = entries[idx];
      read++;
      if (!present(pte)) {
        out.levels = read;
        return false;
      }
      if (l == 1 || (pte & PTE_PS) != 0) {
        if (write && (pte & PTE_W) != 0 && (pte & PTE_D) == 0) {
          entries[idx] = pte | PTE_D;
        }
        long mask = (1L << shift(l)) - 1;
        out.hpa = (pte & PTE_ADDR & ~mask) | (iova & mask);
        out.prot = pteToProt(pte);
        out.pageSize = LEVEL_SIZE[l];
        out.levels = read;
        out.fault = null;
        out.source = Translation.Source.WALK;
        return true;
      }
      entries = pool[(int) ((pte & PTE_ADDR) >>> 12)];
    }
    throw new IllegalStateException("walk ran past level 1");
  }

  /** Whether the leaf mapping {@code iova} has its dirty bit set (false if unmapped). */
  public boolean isDirty(long iova) {
    if ((iova >>> addressWidth) != 0) {
      return false;
    }
    int node = ROOT;
    for (int l = levels; l >= 1; l--) {
      long pte = pool[node][index(iova, l)];
      if (!present(pte)) {
        return false;
      }
      if (isLeaf(pte, l)) {
        return (pte & PTE_D) != 0;
      }
      node = child(pte);
    }
    throw new IllegalStateException("walk ran past level 1");
  }

  // ---------------------------------------------------------------- dirty tracking

  /**
   * Reports (and, with {@code clear}, clears) the dirty leaves intersecting
   * {@code [iova, iova + length)} in ascending order, one call per dirty leaf with the leaf's
   * first IOVA clipped to {@code iova}: the page-size steps of {@code intel_iommu_read_and_clear_dirty}
   * and the mock's {@code mock_domain_read_and_clear_dirty}. Callers must invalidate the IOTLB for
   * cleared ranges afterwards, as iommufd does ({@code iommu_iotlb_sync} after
   * {@code read_and_clear_dirty}), or cached writable translations keep writing without marking.
   *
   * @return the number of dirty leaves reported; EINVAL / EOVERFLOW on a bad range
   */
  public Outcome<Long> readAndClearDirty(
      long iova, long length, boolean clear, LongConsumer dirtyPageIova) {
    Outcome<Long> range = checkRange(iova, length);
    if (range != null) {
      return range;
    }
    return Outcome.ok(dirtyRange(ROOT, levels, 0, iova, iova + length, clear, dirtyPageIova));
  }

  private long dirtyRange(
      int node, int level, long base, long start, long end, boolean clear, LongConsumer sink) {
    int sh = shift(level);
    long span = 1L << sh;
    long nodeLast = base + (span << 9) - 1;
    long from = Long.compareUnsigned(start, base) > 0 ? start : base;
    long to = Long.compareUnsigned(end - 1, nodeLast) < 0 ? end - 1 : nodeLast;
    long n = 0;
    long[] entries = pool[node];
    for (int i = index(from, level), last = index(to, level); i <= last; i++) {
      long pte = entries[i];
      if (!present(pte)) {
        continue;
      }
      long entryBase = base + (long) i * span;
      if (isLeaf(pte, level)) {
        if ((pte & PTE_D) != 0) {
          if (clear) {
            entries[i] = pte & ~PTE_D;
          }
          sink.accept(Long.compareUnsigned(entryBase, start) < 0 ? start : entryBase);
          n++;
        }
      } else {
        n += dirtyRange(child(pte), level - 1, entryBase, start, end, clear, sink);
      }
    }
    return n;
  }

  // ---------------------------------------------------------------- inspection

  /** Bytes mapped by present leaves. */
  public long mappedBytes() {
    return mappedBytes;
  }

  /** Present leaves. */
  public long leafCount() {
    return leafCount;
  }

  /** Live table nodes, the root included. */
  public int nodeCount() {
    return nodeCount;
  }

  public boolean isEmpty() {
    return leafCount == 0;
  }

  /** Visits every leaf in ascending IOVA order. */
  public void forEachLeaf(LeafVisitor visitor) {
    visit(ROOT, levels, 0, (pte, iova, level) -> visitor.leaf(
        iova, pte & PTE_ADDR & ~((1L << shift(level)) - 1), LEVEL_SIZE[level], pteToProt(pte)));
  }

  /** Every leaf as a value, ascending. */
  public List<Leaf> leaves() {
    List<Leaf> out = new ArrayList<>();
    visit(ROOT, levels, 0, (pte, iova, level) -> out.add(
        new Leaf(iova, pte & PTE_ADDR, LEVEL_SIZE[level], pteToProt(pte), (pte & PTE_D) != 0)));
    return out;
  }

  public Snapshot snapshot() {
    return new Snapshot(leaves(), nodeCount, mappedBytes);
  }

  @FunctionalInterface
  private interface RawVisitor {
    void visit(long pte, long iova, int level);
  }

  private void visit(int node, int level, long base, RawVisitor v) {
    long span = 1L << shift(level);
    long[] entries = pool[node];
    for (int i = 0; i < ENTRIES; i++) {
      long pte = entries[i];
      if (!present(pte)) {
        continue;
      }
      long iova = base + (long) i * span;
      if (isLeaf(pte, level)) {
        v.visit(pte, iova, level);
      } else {
        visit(child(pte), level - 1, iova, v);
      }
    }
  }

  /** Removes every mapping and frees every node but the root. */
  public void clear() {
    resetPool();
  }

  /**
   * Checks the structural invariants (for tests): entry counts, no empty non-root node, leaf and
   * byte totals, node count. Throws IllegalStateException on a violation.
   */
  public void checkInvariants() {
    long[] totals = new long[3];
    checkNode(ROOT, levels, totals);
    if (totals[0] != leafCount || totals[1] != mappedBytes || totals[2] + 1 != nodeCount) {
      throw new IllegalStateException(
          String.format(
              "counters: leaves %d/%d bytes %d/%d nodes %d/%d",
              totals[0], leafCount, totals[1], mappedBytes, totals[2] + 1, nodeCount));
    }
  }

  private void checkNode(int node, int level, long[] totals) {
    int present = 0;
    for (long pte : pool[node]) {
      if (!present(pte)) {
        if (pte != 0) {
          throw new IllegalStateException("non-present entry with bits " + Long.toHexString(pte));
        }
        continue;
      }
      present++;
      if (isLeaf(pte, level)) {
        if ((pageSizeBitmap & (1L << shift(level))) == 0) {
          throw new IllegalStateException("leaf of unsupported size at level " + level);
        }
        totals[0]++;
        totals[1] += 1L << shift(level);
      } else {
        int c = child(pte);
        if (used[c] == 0) {
          throw new IllegalStateException("empty non-root node " + c);
        }
        totals[2]++;
        checkNode(c, level - 1, totals);
      }
    }
    if (present != used[node]) {
      throw new IllegalStateException(
          "node " + node + " counts " + used[node] + " entries, has " + present);
    }
  }

  @Override
  public String toString() {
    return String.format(
        "IoPageTable[%d-bit, %d levels, %d leaves, 0x%x bytes, %d nodes]",
        addressWidth, levels, leafCount, mappedBytes, nodeCount);
  }
}
