package io.iommulab.hardware.memory;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;

/**
 * Host physical memory: RAM at {@code [0, ramBytes)} as 4 KiB frames, each with an owner, a
 * generation and a pin count, handed out by a binary buddy allocator; plus registered device MMIO
 * ranges (CCSR, MSI banks) beyond or beside RAM. Every DMA the emulator completes is judged
 * against it ({@link #check}), so this is the root of the isolation oracle.
 *
 * <h2>Owners</h2>
 *
 * {@link #FREE} (-1) for free RAM, {@link #HOST} (0) for the host kernel (IO page tables, MSI
 * pages, CCSR), VM ids from 1 to {@link #MAX_OWNER}. {@link #owner(long)} returns {@link
 * #UNBACKED} for an address that is neither RAM nor registered MMIO.
 *
 * <h2>Buddy allocator ({@code mm/page_alloc.c})</h2>
 *
 * Blocks of order 0..{@link #MAX_ORDER} (4 KiB .. 1 GiB; 2 MiB is order 9, 64 MiB order 14) are
 * naturally aligned. Allocation takes the lowest-addressed free block of the smallest order that
 * fits and splits it, keeping the lower half and freeing the upper halves (as {@code expand()}
 * does), so placement is deterministic. Freeing merges a block with its buddy ({@code pfn ^ (1 <<
 * order)}) while the buddy is a free block of the same order ({@code __free_one_page}). The free
 * lists are bitsets of free block heads, one per order ({@link HierBitset}), so "lowest free block"
 * is O(1) and "is my buddy free" is one bit test.
 *
 * <h2>Lazy metadata</h2>
 *
 * Memory is described per 2 MiB <em>section</em> (owner, generation, order of the covering
 * allocated block, uniform pin count: 13 bytes plus a reference per section) as long as the
 * section lies inside one block. Only a section carved into smaller blocks gets per-frame owner
 * and order (one packed int per frame) and, after its first sub-section free, per-frame
 * generations; only a partially pinned section gets per-frame pin counts. A section that becomes
 * wholly free again folds back to the per-section form. Budget (asserted by the tests through
 * {@link #metadataBytes()}): a 1 TiB host costs about 9.2 MiB empty and 9.4 MiB with 10,000 VMs
 * of 64 MiB in 2 MiB blocks (target: under 64 MiB); memory carved into 4 KiB blocks costs about
 * 4.4 bytes per frame, 8.4 once its frames have been freed and reallocated (0.2% of what is
 * modeled). {@link #owner(long)} is O(1): one array read, two when the section is carved.
 *
 * <h2>Generations</h2>
 *
 * Every free of a frame increments its generation, so a translation recorded with (hpa,
 * generation) is detectably stale once its frame was freed, even if the frame was reallocated to
 * the same owner. A frame's generation is constant while it is allocated; it may also rise while
 * the frame is free (a section folding back takes the maximum of its frames' generations). It is
 * an int compared for equality: it wraps after 2^32 frees of one frame.
 *
 * <h2>Pins ({@code drivers/iommu/iommufd/pages.c})</h2>
 *
 * iommufd pins a page once per pinner (an IOAS's {@code iopt_pages}, an access); {@link #pin} and
 * {@link #unpin} take byte ranges. Pinning a free or non-RAM frame, unpinning below zero, and
 * freeing a block with a pinned frame are bugs of the caller and throw, leaving state unchanged.
 *
 * <h2>Invariants ({@link #checkInvariants()})</h2>
 *
 * <ul>
 *   <li>the free lists are disjoint, contain only free frames and cover every free frame;
 *   <li>free blocks are maximal: no free block's buddy is a free block of the same order;
 *   <li>no frame is both free and owned; every allocated block is uniform in owner and order;
 *   <li>pinned frames are never free; {@link #pinnedFrames()} counts frames with a pin;
 *   <li>{@link #allocatedBytes(int)} matches a recount per owner and sums with {@link
 *       #freeBytes()} to the RAM size;
 *   <li>per-frame arrays exist only where needed: a carved section is not wholly free, and a
 *       per-frame pin array is never uniform.
 * </ul>
 *
 * <p>Errors: allocation failures are {@link Outcome}s ({@link Errno#ENOMEM}, injector site {@value
 * #SITE_FRAMES}); a refused call changes nothing. Misuse (freeing what was not allocated at that
 * size, bad owners, unaligned addresses) throws. Single-threaded: the owning actor is the lock.
 */
public final class HostMemory {
  /** Owner of free RAM. */
  public static final int FREE = -1;
  /** Owner id of the host kernel. */
  public static final int HOST = 0;
  /** {@link #owner(long)} of an address that is neither RAM nor registered MMIO. */
  public static final int UNBACKED = -2;
  /** An expected owner that no frame has: every frame mismatches (a device with no DMA owner). */
  public static final int NOBODY = -3;
  /** Largest owner id (owners are packed into 24 bits of carved sections). */
  public static final int MAX_OWNER = (1 << 24) - 2;
  /** Largest block order: 2^18 frames = 1 GiB. */
  public static final int MAX_ORDER = 18;
  /** Largest host: 8 TiB, so that a frame number fits an int. */
  public static final long MAX_BYTES = 1L << 43;
  /** Injector site consulted by every frame allocation. */
  public static final String SITE_FRAMES = "host.frames";
  /** Violations kept in the log unless the constructor says otherwise. */
  public static final int DEFAULT_VIOLATION_LOG = 64;

  static final int FRAME_SHIFT = 12;
  static final int SECTION_ORDER = 9;
  static final int SECTION_SHIFT = FRAME_SHIFT + SECTION_ORDER;
  static final int SECTION_FRAMES = 1 << SECTION_ORDER;
  private static final long FRAME_MASK = (1L << FRAME_SHIFT) - 1;

  /** {@code secOwner} of a carved section: look at its per-frame {@code meta}. */
  private static final int SPLIT = Integer.MIN_VALUE;

  private static final int OWNER_MASK = 0xFF_FFFF;
  private static final int ORDER_SHIFT = 24;
  /** Bit offset of order k's free-head bits within a carved section's 1022-bit map. */
  private static final int[] SUB_OFF = {0, 512, 768, 896, 960, 992, 1008, 1016, 1020};
  private static final int SUB_WORDS = 16;

  /** Per-frame detail of one 2 MiB section; exists only while some field is non-null. */
  private static final class Section {
    /** Per frame {@code (owner + 1) | order << 24} (order of the allocated block; 0 if free). */
    int[] meta;
    /** Per-frame generations; null while all equal {@code secGen[s]}. Non-null only with meta. */
    int[] gen;
    /** Free block heads of orders 0..8 ({@link #SUB_OFF}); non-null exactly with meta. */
    long[] freeBits;
    /** Per-frame pin counts; null while uniform ({@code secPins[s]}). Never uniform if present. */
    int[] pins;
  }

  private final long ramBytes;
  private final long frames;
  private final int sections;
  private final FaultInjector injector;

  private final int[] secOwner;
  private final int[] secGen;
  /** Order of the allocated block covering the section (9..18); 0 when free or carved. */
  private final byte[] secOrder;
  private final int[] secPins;
  private final Section[] detail;

  /** Orders 9..MAX: bit b set when the block of frames [b << k, (b + 1) << k) is free. */
  private final HierBitset[] freeHeads = new HierBitset[MAX_ORDER + 1];
  /** Orders 0..8: bit s set when carved section s holds a free block of that order. */
  private final HierBitset[] sectionsWithFree = new HierBitset[SECTION_ORDER];

  private final long[] freeBlockCount = new long[MAX_ORDER + 1];
  private long freeFrames;
  private long pinnedFrames;
  private final OwnerLedger ledger = new OwnerLedger();

  private long[] mmioStart = new long[4];
  private long[] mmioLast = new long[4];
  private int[] mmioOwner = new int[4];
  private int mmioCount;
  /** RAM carved out by {@link #reserve}: pairs {start, last} (inclusive), never freed. */
  private final List<long[]> reservedRam = new ArrayList<>();

  private final long[] checkCounts = new long[DmaCheck.values().length];
  private final long[] logHpa;
  private final int[] logExpected;
  private final int[] logActual;
  private final byte[] logKind;
  private int logSize;
  private long logDropped;
  private long lastOffendingHpa = -1;
  private boolean pinChecks;
  private int lastActualOwner = FREE;

  public HostMemory(long bytes, FaultInjector injector) {
    this(bytes, injector, DEFAULT_VIOLATION_LOG);
  }

  /**
   * @param bytes RAM size, a positive multiple of 2 MiB, at most {@link #MAX_BYTES}
   * @param violationLog how many non-OK checks {@link #violation(int)} keeps (the first ones)
   */
  public HostMemory(long bytes, FaultInjector injector, int violationLog) {
    if (bytes <= 0 || (bytes & ((1L << SECTION_SHIFT) - 1)) != 0 || bytes > MAX_BYTES) {
      throw new IllegalArgumentException(
          "host memory " + bytes + " bytes: must be a positive multiple of 2 MiB up to 8 TiB");
    }
    if (violationLog < 0) {
      throw new IllegalArgumentException("violationLog < 0: " + violationLog);
    }
    this.injector = Objects.requireNonNull(injector, "injector");
    this.ramBytes = bytes;
    this.frames = bytes >>> FRAME_SHIFT;
    this.sections = (int) (bytes >>> SECTION_SHIFT);
    secOwner = new int[sections];
    secGen = new int[sections];
    secOrder = new byte[sections];
    secPins = new int[sections];
    detail = new Section[sections];
    Arrays.fill(secOwner, FREE);
    for (int k = SECTION_ORDER; k <= MAX_ORDER; k++) {
      freeHeads[k] = new HierBitset((int) (frames >>> k));
    }
    for (int k = 0; k < SECTION_ORDER; k++) {
      sectionsWithFree[k] = new HierBitset(sections);
    }
    // Carve RAM into maximal naturally aligned blocks, as memblock hands memory to the buddy.
    long pfn = 0;
    while (pfn < frames) {
      int k = MAX_ORDER;
      while ((pfn & ((1L << k) - 1)) != 0 || pfn + (1L << k) > frames) {
        k--;
      }
      insertFree(pfn, k);
      pfn += 1L << k;
    }
    freeFrames = frames;
    logHpa = new long[violationLog];
    logExpected = new int[violationLog];
    logActual = new int[violationLog];
    logKind = new byte[violationLog];
  }

  // ---------------------------------------------------------------------------------------------
  // Allocation

  /**
   * Allocates one naturally aligned block of {@code size} owned by {@code owner}.
   *
   * @return its host physical address; {@link Errno#ENOMEM} when no free block of that order (or
   *     larger) exists, or when the injector fails site {@value #SITE_FRAMES}
   */
  public Outcome<Long> allocate(int owner, PageSize size) {
    checkOwner(owner);
    int k = orderOf(size);
    if (injector.shouldFail(SITE_FRAMES)) {
      return Outcome.err(
          Errno.ENOMEM,
          "%s block for owner %d: injected failure (%s)",
          sizeName(size),
          owner,
          SITE_FRAMES);
    }
    long pfn = allocateOrder(owner, k);
    if (pfn < 0) {
      return noMemory(owner, size, 1);
    }
    return Outcome.ok(pfn << FRAME_SHIFT);
  }

  /**
   * Allocates {@code count} blocks of {@code size}, all or nothing: the free lists are checked to
   * hold enough first, and the injector is consulted once.
   *
   * @return the blocks' addresses in allocation order (ascending when memory is unfragmented)
   */
  public Outcome<long[]> allocateBlocks(int owner, PageSize size, int count) {
    checkOwner(owner);
    if (count < 0) {
      throw new IllegalArgumentException("count < 0: " + count);
    }
    int k = orderOf(size);
    if (injector.shouldFail(SITE_FRAMES)) {
      return Outcome.err(
          Errno.ENOMEM,
          "%d %s blocks for owner %d: injected failure (%s)",
          count,
          sizeName(size),
          owner,
          SITE_FRAMES);
    }
    if (blocksAvailable(k, count) < count) {
      return noMemory(owner, size, count);
    }
    long[] out = new long[count];
    for (int i = 0; i < count; i++) {
      long pfn = allocateOrder(owner, k);
      if (pfn < 0) {
        throw new IllegalStateException("free lists promised " + count + " blocks of order " + k);
      }
      out[i] = pfn << FRAME_SHIFT;
    }
    return Outcome.ok(out);
  }

  /** How many blocks of {@code size} could be allocated now (capped at {@code limit}). */
  public long blocksAvailable(PageSize size, long limit) {
    return blocksAvailable(orderOf(size), limit);
  }

  private long blocksAvailable(int k, long limit) {
    long n = 0;
    for (int j = k; j <= MAX_ORDER && n < limit; j++) {
      long per = 1L << (j - k);
      long blocks = freeBlockCount[j];
      n += blocks > (limit - n) / per ? limit - n : blocks * per;
    }
    return Math.min(n, limit);
  }

  private <T> Outcome<T> noMemory(int owner, PageSize size, int count) {
    String what =
        count == 1
            ? String.format(
                "one %s block for owner %d: no free block of %s or larger",
                sizeName(size), owner, sizeName(size))
            : String.format("%d %s blocks for owner %d: only %d can be carved from free memory",
                count, sizeName(size), owner, blocksAvailable(orderOf(size), count));
    return Outcome.err(
        Errno.ENOMEM,
        "%s (%s free, largest free block %s)",
        what,
        formatBytes(freeBytes()),
        formatBytes(largestFreeBlockBytes()));
  }

  /**
   * Frees a block allocated by {@link #allocate} at exactly this size. Freeing anything else, a
   * block holding a pinned frame, or reserved memory is a bug and throws with nothing changed.
   */
  public void free(long hpa, PageSize size) {
    int k = orderOf(size);
    if (hpa < 0 || hpa >= ramBytes || !size.isAligned(hpa)) {
      throw new IllegalArgumentException(
          String.format("free of 0x%x (%s): not an aligned RAM address", hpa, sizeName(size)));
    }
    long pfn = hpa >>> FRAME_SHIFT;
    int owner = allocatedBlockOwner(pfn, k);
    if (owner < 0) {
      throw new IllegalStateException(
          String.format("free of 0x%x (%s): no %s block is allocated there (%s)",
              hpa, sizeName(size), sizeName(size), describeFrame(pfn)));
    }
    long last = hpa + size.bytes() - 1;
    for (long[] r : reservedRam) {
      if (r[0] <= last && hpa <= r[1]) {
        throw new IllegalStateException(
            String.format(
                "free of 0x%x (%s): reserved range [0x%x, 0x%x]",
                hpa, sizeName(size), r[0], r[1]));
      }
    }
    if (anyPinned(hpa, size.bytes())) {
      throw new IllegalStateException(
          String.format("free of 0x%x (%s): the block has pinned frames", hpa, sizeName(size)));
    }
    freeBlock(pfn, k, owner);
  }

  /** Owner of the allocated block of order k headed at pfn, or -1 if there is no such block. */
  private int allocatedBlockOwner(long pfn, int k) {
    int s = (int) (pfn >>> SECTION_ORDER);
    if (k >= SECTION_ORDER) {
      int o = secOwner[s];
      return o >= 0 && secOrder[s] == k ? o : -1;
    }
    if (secOwner[s] != SPLIT) {
      return -1;
    }
    int m = detail[s].meta[(int) (pfn & (SECTION_FRAMES - 1))];
    int o = (m & OWNER_MASK) - 1;
    return o >= 0 && (m >>> ORDER_SHIFT) == k ? o : -1;
  }

  private void freeBlock(long pfn, int k, int owner) {
    long n = 1L << k;
    if (k >= SECTION_ORDER) {
      int s0 = (int) (pfn >>> SECTION_ORDER);
      int count = 1 << (k - SECTION_ORDER);
      for (int s = s0; s < s0 + count; s++) {
        secGen[s]++;
        secOwner[s] = FREE;
        secOrder[s] = 0;
      }
    } else {
      int s = (int) (pfn >>> SECTION_ORDER);
      int f = (int) (pfn & (SECTION_FRAMES - 1));
      Section d = detail[s];
      if (d.gen == null) {
        d.gen = new int[SECTION_FRAMES];
        Arrays.fill(d.gen, secGen[s]);
      }
      for (int i = f; i < f + n; i++) {
        d.gen[i]++;
      }
      Arrays.fill(d.meta, f, (int) (f + n), 0);
    }
    ledger.add(owner, -(n << FRAME_SHIFT));
    freeFrames += n;
    // __free_one_page: merge with the buddy while it is a free block of the same order.
    while (k < MAX_ORDER) {
      long buddy = pfn ^ (1L << k);
      if (!isFreeHead(buddy, k)) {
        break;
      }
      removeFree(buddy, k);
      pfn = Math.min(pfn, buddy);
      k++;
      if (k == SECTION_ORDER) {
        foldSection((int) (pfn >>> SECTION_ORDER));
      }
    }
    insertFree(pfn, k);
  }

  private long allocateOrder(int owner, int k) {
    int j = k;
    long pfn = -1;
    for (; j <= MAX_ORDER; j++) {
      pfn = lowestFree(j);
      if (pfn >= 0) {
        break;
      }
    }
    if (pfn < 0) {
      return -1;
    }
    removeFree(pfn, j);
    while (j > k) {
      j--;
      if (j == SECTION_ORDER - 1) {
        carveSection((int) (pfn >>> SECTION_ORDER));
      }
      insertFree(pfn + (1L << j), j);
    }
    markAllocated(pfn, k, owner);
    return pfn;
  }

  /** Takes exactly the block [pfn, pfn + 2^k) out of the free block containing it. */
  private void allocateAt(long pfn, int k, int owner) {
    int j = k;
    long head = pfn;
    while (true) {
      head = pfn & -(1L << j);
      if (isFreeHead(head, j)) {
        break;
      }
      if (++j > MAX_ORDER) {
        throw new IllegalStateException(
            String.format("frame 0x%x: free, but no free block contains it", pfn));
      }
    }
    removeFree(head, j);
    while (j > k) {
      j--;
      if (j == SECTION_ORDER - 1) {
        carveSection((int) (head >>> SECTION_ORDER));
      }
      long half = 1L << j;
      if (pfn >= head + half) {
        insertFree(head, j);
        head += half;
      } else {
        insertFree(head + half, j);
      }
    }
    markAllocated(pfn, k, owner);
  }

  private void markAllocated(long pfn, int k, int owner) {
    long n = 1L << k;
    int s = (int) (pfn >>> SECTION_ORDER);
    if (k >= SECTION_ORDER) {
      int count = 1 << (k - SECTION_ORDER);
      for (int i = s; i < s + count; i++) {
        secOwner[i] = owner;
        secOrder[i] = (byte) k;
      }
    } else {
      int f = (int) (pfn & (SECTION_FRAMES - 1));
      Arrays.fill(detail[s].meta, f, (int) (f + n), (owner + 1) | (k << ORDER_SHIFT));
    }
    ledger.add(owner, n << FRAME_SHIFT);
    freeFrames -= n;
  }

  /** A free 2 MiB section is split into smaller blocks: it gets per-frame metadata. */
  private void carveSection(int s) {
    if (secOwner[s] != FREE || detail[s] != null) {
      throw new IllegalStateException("carving section " + s + " which is not wholly free");
    }
    Section d = new Section();
    d.meta = new int[SECTION_FRAMES];
    d.freeBits = new long[SUB_WORDS];
    detail[s] = d;
    secOwner[s] = SPLIT;
  }

  /** A carved section became wholly free: back to per-section metadata. */
  private void foldSection(int s) {
    Section d = detail[s];
    int g = secGen[s];
    if (d.gen != null) {
      for (int x : d.gen) {
        if (Integer.compareUnsigned(x, g) > 0) {
          g = x;
        }
      }
    }
    if (d.pins != null) {
      throw new IllegalStateException("section " + s + " is wholly free but has per-frame pins");
    }
    secGen[s] = g;
    secOwner[s] = FREE;
    secOrder[s] = 0;
    detail[s] = null;
  }

  private long lowestFree(int k) {
    if (k >= SECTION_ORDER) {
      int b = freeHeads[k].first();
      return b < 0 ? -1 : (long) b << k;
    }
    int s = sectionsWithFree[k].first();
    if (s < 0) {
      return -1;
    }
    int f = firstSub(detail[s].freeBits, k);
    return ((long) s << SECTION_ORDER) | f;
  }

  private boolean isFreeHead(long pfn, int k) {
    if (pfn < 0 || pfn + (1L << k) > frames) {
      return false;
    }
    if (k >= SECTION_ORDER) {
      return freeHeads[k].get((int) (pfn >>> k));
    }
    Section d = detail[(int) (pfn >>> SECTION_ORDER)];
    if (d == null || d.freeBits == null) {
      return false;
    }
    int bit = SUB_OFF[k] + ((int) (pfn & (SECTION_FRAMES - 1)) >>> k);
    return (d.freeBits[bit >>> 6] & (1L << bit)) != 0;
  }

  private void insertFree(long pfn, int k) {
    if (k >= SECTION_ORDER) {
      freeHeads[k].set((int) (pfn >>> k));
    } else {
      int s = (int) (pfn >>> SECTION_ORDER);
      int bit = SUB_OFF[k] + ((int) (pfn & (SECTION_FRAMES - 1)) >>> k);
      detail[s].freeBits[bit >>> 6] |= 1L << bit;
      sectionsWithFree[k].set(s);
    }
    freeBlockCount[k]++;
  }

  private void removeFree(long pfn, int k) {
    if (k >= SECTION_ORDER) {
      freeHeads[k].clear((int) (pfn >>> k));
    } else {
      int s = (int) (pfn >>> SECTION_ORDER);
      long[] bits = detail[s].freeBits;
      int bit = SUB_OFF[k] + ((int) (pfn & (SECTION_FRAMES - 1)) >>> k);
      bits[bit >>> 6] &= ~(1L << bit);
      if (firstSub(bits, k) < 0) {
        sectionsWithFree[k].clear(s);
      }
    }
    freeBlockCount[k]--;
  }

  /** Lowest free block head of order k (< 9) in a carved section's bit map, as a frame index. */
  private static int firstSub(long[] bits, int k) {
    int start = SUB_OFF[k];
    int end = start + (SECTION_FRAMES >>> k);
    for (int w = start >>> 6; w <= (end - 1) >>> 6; w++) {
      int base = w << 6;
      int lo = Math.max(start, base) - base;
      int hi = Math.min(end, base + 64) - base;
      long mask = (hi == 64 ? -1L : (1L << hi) - 1) & (-1L << lo);
      long word = bits[w] & mask;
      if (word != 0) {
        return (base + Long.numberOfTrailingZeros(word) - start) << k;
      }
    }
    return -1;
  }

  // ---------------------------------------------------------------------------------------------
  // Reservations and MMIO

  /**
   * Gives a fixed host range to {@code owner} for good: RAM is carved out of the free lists (as
   * memblock reservations are), a range wholly outside RAM is registered as device MMIO (CCSR,
   * MSI banks: the MSIIR pages at {@code 0xffe044000} and up lie beyond the RAM of a PAMU SoC).
   * A RAM reservation is permanent: freeing any of it is a bug.
   *
   * @return EINVAL for an unaligned, empty, overflowing range or one straddling the end of RAM;
   *     EBUSY when RAM in the range is not free or the MMIO range overlaps a registered one;
   *     ENOMEM (site {@value #SITE_FRAMES}) for injected failures of a RAM reservation
   */
  public Outcome<Void> reserve(long hpa, long length, int owner) {
    checkOwner(owner);
    if (hpa < 0 || length <= 0 || (hpa & FRAME_MASK) != 0 || (length & FRAME_MASK) != 0) {
      return Outcome.err(
          Errno.EINVAL,
          "reserve [0x%x, +0x%x): start and length must be 4 KiB aligned, length > 0",
          hpa,
          length);
    }
    long last = hpa + length - 1;
    if (last < hpa) {
      return Outcome.err(Errno.EINVAL, "reserve [0x%x, +0x%x): overflows", hpa, length);
    }
    if (hpa < ramBytes && last >= ramBytes) {
      return Outcome.err(
          Errno.EINVAL,
          "reserve [0x%x, 0x%x]: straddles the end of RAM at 0x%x",
          hpa,
          last,
          ramBytes);
    }
    if (hpa >= ramBytes) {
      return registerMmio(hpa, last, owner);
    }
    for (long a = hpa; a <= last; ) {
      int o = owner(a);
      if (o != FREE) {
        return Outcome.err(
            Errno.EBUSY, "reserve [0x%x, 0x%x]: frame 0x%x is owned by %d", hpa, last, a, o);
      }
      long pfn = a >>> FRAME_SHIFT;
      int s = (int) (pfn >>> SECTION_ORDER);
      a = secOwner[s] == SPLIT ? a + (1L << FRAME_SHIFT) : (long) (s + 1) << SECTION_SHIFT;
    }
    if (injector.shouldFail(SITE_FRAMES)) {
      return Outcome.err(
          Errno.ENOMEM, "reserve [0x%x, 0x%x]: injected failure (%s)", hpa, last, SITE_FRAMES);
    }
    long pfn = hpa >>> FRAME_SHIFT;
    long end = (last >>> FRAME_SHIFT) + 1;
    while (pfn < end) {
      int k = MAX_ORDER;
      while ((pfn & ((1L << k) - 1)) != 0 || pfn + (1L << k) > end) {
        k--;
      }
      allocateAt(pfn, k, owner);
      pfn += 1L << k;
    }
    reservedRam.add(new long[] {hpa, last});
    return Outcome.OK;
  }

  private Outcome<Void> registerMmio(long start, long last, int owner) {
    int i = 0;
    while (i < mmioCount && mmioStart[i] < start) {
      i++;
    }
    if ((i > 0 && mmioLast[i - 1] >= start) || (i < mmioCount && mmioStart[i] <= last)) {
      int j = i > 0 && mmioLast[i - 1] >= start ? i - 1 : i;
      return Outcome.err(
          Errno.EBUSY,
          "reserve MMIO [0x%x, 0x%x]: overlaps [0x%x, 0x%x] of owner %d",
          start,
          last,
          mmioStart[j],
          mmioLast[j],
          mmioOwner[j]);
    }
    if (mmioCount == mmioStart.length) {
      mmioStart = Arrays.copyOf(mmioStart, mmioCount * 2);
      mmioLast = Arrays.copyOf(mmioLast, mmioCount * 2);
      mmioOwner = Arrays.copyOf(mmioOwner, mmioCount * 2);
    }
    System.arraycopy(mmioStart, i, mmioStart, i + 1, mmioCount - i);
    System.arraycopy(mmioLast, i, mmioLast, i + 1, mmioCount - i);
    System.arraycopy(mmioOwner, i, mmioOwner, i + 1, mmioCount - i);
    mmioStart[i] = start;
    mmioLast[i] = last;
    mmioOwner[i] = owner;
    mmioCount++;
    return Outcome.OK;
  }

  /** Index of the MMIO range containing {@code hpa}, or -1. */
  private int mmioIndex(long hpa) {
    int lo = 0;
    int hi = mmioCount - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      if (mmioLast[mid] < hpa) {
        lo = mid + 1;
      } else if (mmioStart[mid] > hpa) {
        hi = mid - 1;
      } else {
        return mid;
      }
    }
    return -1;
  }

  // ---------------------------------------------------------------------------------------------
  // Queries

  public long ramBytes() {
    return ramBytes;
  }

  public boolean isRam(long hpa) {
    return hpa >= 0 && hpa < ramBytes;
  }

  public boolean isMmio(long hpa) {
    return hpa >= ramBytes && mmioIndex(hpa) >= 0;
  }

  /**
   * Owner of the frame (or MMIO range) holding {@code hpa}: {@link #FREE}, {@link #HOST}, a VM id,
   * or {@link #UNBACKED}. O(1) for RAM.
   */
  public int owner(long hpa) {
    if (hpa >= 0 && hpa < ramBytes) {
      long pfn = hpa >>> FRAME_SHIFT;
      int s = (int) (pfn >>> SECTION_ORDER);
      int o = secOwner[s];
      if (o != SPLIT) {
        return o;
      }
      return (detail[s].meta[(int) (pfn & (SECTION_FRAMES - 1))] & OWNER_MASK) - 1;
    }
    int i = hpa < 0 ? -1 : mmioIndex(hpa);
    return i < 0 ? UNBACKED : mmioOwner[i];
  }

  /** Generation of the RAM frame holding {@code hpa}; 0 for MMIO and unbacked addresses. */
  public int generation(long hpa) {
    if (hpa < 0 || hpa >= ramBytes) {
      return 0;
    }
    long pfn = hpa >>> FRAME_SHIFT;
    int s = (int) (pfn >>> SECTION_ORDER);
    Section d = detail[s];
    return d != null && d.gen != null ? d.gen[(int) (pfn & (SECTION_FRAMES - 1))] : secGen[s];
  }

  /** Pin count of the RAM frame holding {@code hpa}; 0 outside RAM. */
  public int pinCount(long hpa) {
    if (hpa < 0 || hpa >= ramBytes) {
      return 0;
    }
    long pfn = hpa >>> FRAME_SHIFT;
    int s = (int) (pfn >>> SECTION_ORDER);
    Section d = detail[s];
    return d != null && d.pins != null ? d.pins[(int) (pfn & (SECTION_FRAMES - 1))] : secPins[s];
  }

  /** Frames with a pin count above zero. */
  public long pinnedFrames() {
    return pinnedFrames;
  }

  public long freeBytes() {
    return freeFrames << FRAME_SHIFT;
  }

  /** Bytes of RAM allocated to (or reserved for) {@code owner}. */
  public long allocatedBytes(int owner) {
    return owner < 0 ? 0 : ledger.get(owner);
  }

  /** Free blocks of exactly {@code order} on the free lists. */
  public long freeBlocks(int order) {
    if (order < 0 || order > MAX_ORDER) {
      throw new IllegalArgumentException("order " + order);
    }
    return freeBlockCount[order];
  }

  /** Size of the largest free block, 0 when memory is full. */
  public long largestFreeBlockBytes() {
    for (int k = MAX_ORDER; k >= 0; k--) {
      if (freeBlockCount[k] > 0) {
        return 1L << (k + FRAME_SHIFT);
      }
    }
    return 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Pinning

  /**
   * Pins every frame of {@code [hpa, hpa + length)} once more (one pinner, as {@code
   * pin_user_pages} for one {@code iopt_pages}). Every frame must be allocated RAM; otherwise this
   * throws with nothing changed.
   */
  public void pin(long hpa, long length) {
    long first = firstFrame(hpa, length, "pin");
    long end = first + framesIn(hpa, length);
    for (long pfn = first; pfn < end; ) {
      int s = (int) (pfn >>> SECTION_ORDER);
      if (secOwner[s] != SPLIT) {
        if (secOwner[s] < 0) {
          throw new IllegalArgumentException(
              String.format("pin of frame 0x%x: %s", pfn << FRAME_SHIFT, describeFrame(pfn)));
        }
        pfn = (long) (s + 1) << SECTION_ORDER;
      } else {
        if (owner(pfn << FRAME_SHIFT) < 0) {
          throw new IllegalArgumentException(
              String.format("pin of frame 0x%x: %s", pfn << FRAME_SHIFT, describeFrame(pfn)));
        }
        pfn++;
      }
    }
    addPins(first, end, 1);
  }

  /** Drops one pin from every frame of the range; unpinning below zero throws, changing nothing. */
  public void unpin(long hpa, long length) {
    long first = firstFrame(hpa, length, "unpin");
    long end = first + framesIn(hpa, length);
    for (long pfn = first; pfn < end; ) {
      int s = (int) (pfn >>> SECTION_ORDER);
      Section d = detail[s];
      if (d == null || d.pins == null) {
        if (secPins[s] == 0) {
          throw new IllegalStateException(
              String.format("unpin of frame 0x%x: not pinned", pfn << FRAME_SHIFT));
        }
        pfn = (long) (s + 1) << SECTION_ORDER;
      } else {
        if (d.pins[(int) (pfn & (SECTION_FRAMES - 1))] == 0) {
          throw new IllegalStateException(
              String.format("unpin of frame 0x%x: not pinned", pfn << FRAME_SHIFT));
        }
        pfn++;
      }
    }
    addPins(first, end, -1);
  }

  /** True if every frame of the range has at least one pin (section-aware, not per frame). */
  public boolean allPinned(long hpa, long length) {
    long first = firstFrame(hpa, length, "allPinned");
    long end = first + framesIn(hpa, length);
    for (long pfn = first; pfn < end; ) {
      int s = (int) (pfn >>> SECTION_ORDER);
      Section d = detail[s];
      long sectionEnd = Math.min(end, (long) (s + 1) << SECTION_ORDER);
      if (d == null || d.pins == null) {
        if (secPins[s] == 0) {
          return false;
        }
      } else {
        for (long p = pfn; p < sectionEnd; p++) {
          if (d.pins[(int) (p & (SECTION_FRAMES - 1))] == 0) {
            return false;
          }
        }
      }
      pfn = sectionEnd;
    }
    return true;
  }

  /** The first address of a frame of RAM {@code [from, to]} with no pin, or -1. Allocates nothing. */
  private long firstUnpinned(long from, long to) {
    long pfn = from >>> FRAME_SHIFT;
    long end = (to >>> FRAME_SHIFT) + 1;
    while (pfn < end) {
      int s = (int) (pfn >>> SECTION_ORDER);
      Section d = detail[s];
      long sectionEnd = Math.min(end, (long) (s + 1) << SECTION_ORDER);
      if (d == null || d.pins == null) {
        if (secPins[s] == 0) {
          return Math.max(from, pfn << FRAME_SHIFT);
        }
      } else {
        for (long p = pfn; p < sectionEnd; p++) {
          if (d.pins[(int) (p & (SECTION_FRAMES - 1))] == 0) {
            return Math.max(from, p << FRAME_SHIFT);
          }
        }
      }
      pfn = sectionEnd;
    }
    return -1;
  }

  /** True if any frame of the range has a pin. */
  public boolean anyPinned(long hpa, long length) {
    long first = firstFrame(hpa, length, "anyPinned");
    long end = first + framesIn(hpa, length);
    for (long pfn = first; pfn < end; ) {
      int s = (int) (pfn >>> SECTION_ORDER);
      Section d = detail[s];
      long sectionEnd = Math.min(end, (long) (s + 1) << SECTION_ORDER);
      if (d == null || d.pins == null) {
        if (secPins[s] != 0) {
          return true;
        }
      } else {
        for (long p = pfn; p < sectionEnd; p++) {
          if (d.pins[(int) (p & (SECTION_FRAMES - 1))] != 0) {
            return true;
          }
        }
      }
      pfn = sectionEnd;
    }
    return false;
  }

  private void addPins(long first, long end, int delta) {
    for (long pfn = first; pfn < end; ) {
      int s = (int) (pfn >>> SECTION_ORDER);
      long sectionStart = (long) s << SECTION_ORDER;
      long sectionEnd = sectionStart + SECTION_FRAMES;
      long to = Math.min(end, sectionEnd);
      Section d = detail[s];
      if ((d == null || d.pins == null) && pfn == sectionStart && to == sectionEnd) {
        int before = secPins[s];
        secPins[s] = before + delta;
        pinnedFrames += pinnedDelta(before, before + delta) * (long) SECTION_FRAMES;
      } else {
        if (d == null) {
          d = new Section();
          detail[s] = d;
        }
        if (d.pins == null) {
          d.pins = new int[SECTION_FRAMES];
          Arrays.fill(d.pins, secPins[s]);
          secPins[s] = 0;
        }
        for (long p = pfn; p < to; p++) {
          int f = (int) (p & (SECTION_FRAMES - 1));
          int before = d.pins[f];
          d.pins[f] = before + delta;
          pinnedFrames += pinnedDelta(before, before + delta);
        }
        foldPins(s, d);
      }
      pfn = to;
    }
  }

  private static int pinnedDelta(int before, int after) {
    return (after > 0 ? 1 : 0) - (before > 0 ? 1 : 0);
  }

  private void foldPins(int s, Section d) {
    int v = d.pins[0];
    for (int i = 1; i < SECTION_FRAMES; i++) {
      if (d.pins[i] != v) {
        return;
      }
    }
    secPins[s] = v;
    d.pins = null;
    if (d.meta == null) {
      detail[s] = null;
    }
  }

  private long firstFrame(long hpa, long length, String what) {
    if (length <= 0 || hpa < 0 || hpa >= ramBytes || length > ramBytes - hpa) {
      throw new IllegalArgumentException(
          String.format("%s of [0x%x, +0x%x): not a non-empty RAM range", what, hpa, length));
    }
    return hpa >>> FRAME_SHIFT;
  }

  private static long framesIn(long hpa, long length) {
    return ((hpa + length - 1) >>> FRAME_SHIFT) - (hpa >>> FRAME_SHIFT) + 1;
  }

  // ---------------------------------------------------------------------------------------------
  // The isolation oracle

  /**
   * Judges a completed DMA access of {@code length} bytes at {@code hpa} made on behalf of {@code
   * expectedOwner} (a VM id, {@link #HOST} for a kernel driver, or {@link #NOBODY}), counts the
   * verdict and logs it when not OK. Allocates nothing. MSI writes are delivered to the MSI bank by
   * the composer and never reach this check.
   *
   * <p><b>Pins.</b> For a VM, a RAM frame it owns must also be pinned ({@link
   * DmaCheck#UNPINNED_FRAME} otherwise): a frame can be reused (freed, given to another VM) only
   * after its last unpin, so "no DMA reaches an unpinned frame" implies "no DMA reaches a reused
   * frame" — and it catches the early unpin itself, before any reuse happens to expose it. The
   * verdict is sound although pins and checks reach the memory actor as separate messages from
   * different senders, locally (in one JVM a send enqueues into the receiver's mailbox at once, so
   * a message sent causally after another arrives after it), because of two orderings that the
   * senders keep: (1) an fd sends the {@code PinsChanged} of a pin
   * <em>before</em> the map that makes the frame reachable, so the pin is in the memory actor's
   * mailbox before any check of a DMA that could use the mapping (the unit answers the map, the
   * device is then told, the unit then sends the check: every step causally after the pin); (2) a
   * unit (or, for a translated request served from its ATC, the device) sends a DMA's {@code
   * CheckDma} <em>before</em> it acknowledges the unmap or invalidation that removes the
   * translation the DMA used — each checks the DMA when it performs it, and the
   * unpin is sent by the fd only after that acknowledgement (strict: the Unmapped answer; deferred:
   * the FlushCompleted after the sync and every device's ATC acknowledgement). So a check arriving
   * after the unpin judges a DMA whose translation existed after its frame was released: a real
   * stale-translation or missing-pin bug, never an artefact of message order. Accesses on behalf
   * of {@link #HOST} or {@link #NOBODY}, and MMIO, are not judged for pins. The pin verdict is
   * given only with {@link #setPinChecks} on (the memory actor turns it on; a bare model used
   * without pinners judges ownership alone); {@link #classify} never gives it.
   */
  public DmaCheck check(long hpa, long length, int expectedOwner) {
    DmaCheck c = classify(hpa, length, expectedOwner);
    if (c == DmaCheck.OK && pinChecks && expectedOwner > HOST && hpa < ramBytes) {
      long lastRam = Math.min(hpa + length - 1, ramBytes - 1);
      long unpinned = firstUnpinned(hpa, lastRam);
      if (unpinned >= 0) {
        lastOffendingHpa = unpinned;
        lastActualOwner = expectedOwner;
        c = DmaCheck.UNPINNED_FRAME;
      }
    }
    checkCounts[c.ordinal()]++;
    if (c != DmaCheck.OK) {
      if (logSize < logHpa.length) {
        logHpa[logSize] = lastOffendingHpa;
        logExpected[logSize] = expectedOwner;
        logActual[logSize] = lastActualOwner;
        logKind[logSize] = (byte) c.ordinal();
        logSize++;
      } else {
        logDropped++;
      }
    }
    return c;
  }

  /** Turns the {@link DmaCheck#UNPINNED_FRAME} verdict of {@link #check} on or off (off by default). */
  public void setPinChecks(boolean on) {
    this.pinChecks = on;
  }

  public boolean pinChecks() {
    return pinChecks;
  }

  /**
   * The ownership verdict of {@link #check} without counting or logging (never {@link
   * DmaCheck#UNPINNED_FRAME}). The first offending address and
   * its owner are left in {@link #lastOffendingHpa()} and {@link #lastActualOwner()}.
   */
  public DmaCheck classify(long hpa, long length, int expectedOwner) {
    if (length <= 0) {
      throw new IllegalArgumentException("DMA length must be positive: " + length);
    }
    if (expectedOwner == FREE || expectedOwner == UNBACKED) {
      throw new IllegalArgumentException("expected owner " + expectedOwner + " owns nothing");
    }
    long last = hpa + length - 1;
    if (hpa < 0 || last < hpa) {
      return offend(hpa, UNBACKED);
    }
    long addr = hpa;
    while (true) {
      long next;
      int o;
      if (addr < ramBytes) {
        long pfn = addr >>> FRAME_SHIFT;
        int s = (int) (pfn >>> SECTION_ORDER);
        o = secOwner[s];
        if (o == SPLIT) {
          o = (detail[s].meta[(int) (pfn & (SECTION_FRAMES - 1))] & OWNER_MASK) - 1;
          next = (pfn + 1) << FRAME_SHIFT;
        } else {
          next = (long) (s + 1) << SECTION_SHIFT;
        }
      } else {
        int i = mmioIndex(addr);
        if (i < 0) {
          return offend(addr, UNBACKED);
        }
        o = mmioOwner[i];
        next = mmioLast[i] + 1;
      }
      if (o != expectedOwner) {
        return offend(addr, o);
      }
      if (next < 0 || last < next) {
        lastOffendingHpa = -1;
        lastActualOwner = expectedOwner;
        return DmaCheck.OK;
      }
      addr = next;
    }
  }

  private DmaCheck offend(long hpa, int actual) {
    lastOffendingHpa = hpa;
    lastActualOwner = actual;
    if (actual == FREE) {
      return DmaCheck.FREED_FRAME;
    }
    if (actual == HOST) {
      return DmaCheck.HOST_FRAME;
    }
    if (actual == UNBACKED) {
      return DmaCheck.UNBACKED;
    }
    return DmaCheck.ISOLATION_VIOLATION;
  }

  /** First offending byte address of the last classification, or -1 if it was OK. */
  public long lastOffendingHpa() {
    return lastOffendingHpa;
  }

  /** Owner found at {@link #lastOffendingHpa()} by the last classification. */
  public int lastActualOwner() {
    return lastActualOwner;
  }

  /** How many {@link #check} calls returned {@code kind}. */
  public long checkCount(DmaCheck kind) {
    return checkCounts[kind.ordinal()];
  }

  /** Non-OK checks kept in the log (the first ones, up to the log's capacity). */
  public int violationLogSize() {
    return logSize;
  }

  /** Non-OK checks that did not fit in the log. */
  public long violationsDropped() {
    return logDropped;
  }

  public Violation violation(int i) {
    if (i < 0 || i >= logSize) {
      throw new IndexOutOfBoundsException("violation " + i + " of " + logSize);
    }
    return new Violation(logHpa[i], logExpected[i], logActual[i], DmaCheck.ofOrdinal(logKind[i]));
  }

  // ---------------------------------------------------------------------------------------------
  // Invariants, accounting, digest

  /**
   * Verifies every invariant listed in the class comment; throws IllegalStateException naming the
   * first one broken. Cost O(sections + carved frames); for tests and debug checks.
   */
  public void checkInvariants() {
    OwnerLedger recount = new OwnerLedger();
    long free = 0;
    long pinned = 0;
    BitSet coveredSections = new BitSet(sections);
    long[] blockCounts = new long[MAX_ORDER + 1];
    for (int k = SECTION_ORDER; k <= MAX_ORDER; k++) {
      HierBitset heads = freeHeads[k];
      heads.checkSummaries();
      for (int b = heads.next(0); b >= 0; b = heads.next(b + 1)) {
        blockCounts[k]++;
        long pfn = (long) b << k;
        int s0 = (int) (pfn >>> SECTION_ORDER);
        for (int s = s0; s < s0 + (1 << (k - SECTION_ORDER)); s++) {
          if (secOwner[s] != FREE || detail[s] != null) {
            fail("free block at frame 0x%x order %d covers section %d owned by %d",
                pfn, k, s, secOwner[s]);
          }
          if (coveredSections.get(s)) {
            fail("section %d is on two free lists", s);
          }
          coveredSections.set(s);
        }
        checkMaximal(pfn, k);
      }
    }
    for (int k = 0; k < SECTION_ORDER; k++) {
      sectionsWithFree[k].checkSummaries();
    }
    for (int s = 0; s < sections; s++) {
      Section d = detail[s];
      int o = secOwner[s];
      if (o == SPLIT) {
        if (d == null || d.meta == null || d.freeBits == null) {
          fail("carved section %d has no per-frame metadata", s);
        }
        free += checkCarvedSection(s, d, recount, blockCounts);
      } else {
        if (d != null && (d.meta != null || d.gen != null || d.freeBits != null)) {
          fail("uniform section %d has per-frame owners or generations", s);
        }
        for (int k = 0; k < SECTION_ORDER; k++) {
          if (sectionsWithFree[k].get(s)) {
            fail("uniform section %d is listed with free order-%d blocks", s, k);
          }
        }
        if (o == FREE) {
          free += SECTION_FRAMES;
          if (!coveredSections.get(s)) {
            fail("free section %d is on no free list", s);
          }
          if (secOrder[s] != 0) {
            fail("free section %d has block order %d", s, secOrder[s]);
          }
        } else {
          if (o < 0 || o > MAX_OWNER) {
            fail("section %d has owner %d", s, o);
          }
          int k = secOrder[s];
          if (k < SECTION_ORDER || k > MAX_ORDER) {
            fail("allocated section %d has block order %d", s, k);
          }
          int head = s & -(1 << (k - SECTION_ORDER));
          if (secOwner[head] != o || secOrder[head] != k) {
            fail("section %d (owner %d, order %d) disagrees with its block head %d", s, o, k, head);
          }
          recount.add(o, (long) SECTION_FRAMES << FRAME_SHIFT);
        }
      }
      if (d != null && d.pins != null) {
        boolean uniform = true;
        for (int f = 0; f < SECTION_FRAMES; f++) {
          int p = d.pins[f];
          uniform &= p == d.pins[0];
          if (p < 0) {
            fail("frame 0x%x has pin count %d", ((long) s << SECTION_ORDER) + f, p);
          }
          if (p > 0) {
            pinned++;
            if (ownerOfFrame(s, f) < 0) {
              fail("frame 0x%x is pinned but free", ((long) s << SECTION_ORDER) + f);
            }
          }
        }
        if (uniform) {
          fail("section %d keeps a uniform per-frame pin array", s);
        }
      } else {
        if (secPins[s] < 0) {
          fail("section %d has pin count %d", s, secPins[s]);
        }
        if (secPins[s] > 0) {
          pinned += SECTION_FRAMES;
          for (int f = 0; f < SECTION_FRAMES; f++) {
            if (ownerOfFrame(s, f) < 0) {
              fail("frame 0x%x is pinned but free", ((long) s << SECTION_ORDER) + f);
            }
          }
        }
      }
      if (d != null && d.meta == null && d.pins == null) {
        fail("section %d keeps an empty detail", s);
      }
    }
    for (int k = 0; k <= MAX_ORDER; k++) {
      if (blockCounts[k] != freeBlockCount[k]) {
        fail("order %d: %d free blocks listed, counter says %d", k, blockCounts[k],
            freeBlockCount[k]);
      }
    }
    if (free != freeFrames) {
      fail("%d free frames found, counter says %d", free, freeFrames);
    }
    if (pinned != pinnedFrames) {
      fail("%d pinned frames found, counter says %d", pinned, pinnedFrames);
    }
    long allocated = 0;
    for (int i = 0; i < ledger.capacity(); i++) {
      int key = ledger.keyAt(i);
      if (key != Integer.MIN_VALUE) {
        if (recount.get(key) != ledger.valueAt(i)) {
          fail("owner %d: ledger says %d bytes, frames say %d", key, ledger.valueAt(i),
              recount.get(key));
        }
        allocated += ledger.valueAt(i);
      }
    }
    for (int i = 0; i < recount.capacity(); i++) {
      int key = recount.keyAt(i);
      if (key != Integer.MIN_VALUE && recount.valueAt(i) != ledger.get(key)) {
        fail("owner %d holds %d bytes missing from the ledger", key, recount.valueAt(i));
      }
    }
    if (allocated + (free << FRAME_SHIFT) != ramBytes) {
      fail("allocated %d + free %d bytes != RAM %d", allocated, free << FRAME_SHIFT, ramBytes);
    }
  }

  /** Checks a carved section; returns its free frame count. */
  private long checkCarvedSection(int s, Section d, OwnerLedger recount, long[] blockCounts) {
    long base = (long) s << SECTION_ORDER;
    long[] covered = new long[SECTION_FRAMES / 64];
    long free = 0;
    for (int k = 0; k < SECTION_ORDER; k++) {
      boolean any = false;
      for (int i = 0; i < (SECTION_FRAMES >>> k); i++) {
        int bit = SUB_OFF[k] + i;
        if ((d.freeBits[bit >>> 6] & (1L << bit)) == 0) {
          continue;
        }
        any = true;
        blockCounts[k]++;
        int f0 = i << k;
        for (int f = f0; f < f0 + (1 << k); f++) {
          if (d.meta[f] != 0) {
            fail("free block at frame 0x%x order %d holds allocated frame 0x%x", base + f0, k,
                base + f);
          }
          if ((covered[f >>> 6] & (1L << f)) != 0) {
            fail("frame 0x%x is on two free lists", base + f);
          }
          covered[f >>> 6] |= 1L << f;
        }
        checkMaximal(base + f0, k);
      }
      if (any != sectionsWithFree[k].get(s)) {
        fail("section %d: order-%d free blocks %s but the section summary says %s", s, k, any,
            sectionsWithFree[k].get(s));
      }
    }
    for (int f = 0; f < SECTION_FRAMES; f++) {
      int m = d.meta[f];
      if (m == 0) {
        free++;
        if ((covered[f >>> 6] & (1L << f)) == 0) {
          fail("free frame 0x%x is on no free list", base + f);
        }
        continue;
      }
      int o = (m & OWNER_MASK) - 1;
      int k = m >>> ORDER_SHIFT;
      if (o < 0 || k >= SECTION_ORDER) {
        fail("frame 0x%x has meta 0x%x", base + f, m);
      }
      int head = f & -(1 << k);
      if (d.meta[head] != m) {
        fail("frame 0x%x disagrees with its block head 0x%x", base + f, base + head);
      }
      recount.add(o, 1L << FRAME_SHIFT);
    }
    if (free == SECTION_FRAMES) {
      fail("carved section %d is wholly free but was not folded", s);
    }
    return free;
  }

  private void checkMaximal(long pfn, int k) {
    if (k < MAX_ORDER && isFreeHead(pfn ^ (1L << k), k)) {
      fail("free block at frame 0x%x order %d has a free buddy", pfn, k);
    }
  }

  private int ownerOfFrame(int s, int f) {
    int o = secOwner[s];
    return o != SPLIT ? o : (detail[s].meta[f] & OWNER_MASK) - 1;
  }

  private static void fail(String format, Object... args) {
    throw new IllegalStateException("HostMemory invariant: " + String.format(format, args));
  }

  /**
   * Heap bytes of the model's metadata, counted from the arrays it holds as a 64-bit JVM with
   * compressed oops lays them out (16-byte array headers, 16-byte object headers, 4-byte
   * references). Excludes the violation log, which the constructor sizes.
   */
  public long metadataBytes() {
    long bytes = 64; // this object
    bytes += arrayBytes(sections, 4) * 3 + arrayBytes(sections, 1) + arrayBytes(sections, 4);
    for (HierBitset b : freeHeads) {
      bytes += b == null ? 0 : b.heapBytes();
    }
    for (HierBitset b : sectionsWithFree) {
      bytes += b.heapBytes();
    }
    bytes += arrayBytes(freeBlockCount.length, 8) + ledger.heapBytes();
    bytes += arrayBytes(mmioStart.length, 8) * 2 + arrayBytes(mmioOwner.length, 4);
    bytes += 40L * reservedRam.size();
    for (Section d : detail) {
      if (d != null) {
        bytes += 32;
        bytes += d.meta == null ? 0 : arrayBytes(SECTION_FRAMES, 4);
        bytes += d.gen == null ? 0 : arrayBytes(SECTION_FRAMES, 4);
        bytes += d.freeBits == null ? 0 : arrayBytes(SUB_WORDS, 8);
        bytes += d.pins == null ? 0 : arrayBytes(SECTION_FRAMES, 4);
      }
    }
    return bytes;
  }

  private static long arrayBytes(long length, int element) {
    return (16 + length * element + 7) & ~7L;
  }

  /** Sections carved into blocks smaller than 2 MiB (with per-frame owners). */
  public int carvedSections() {
    int n = 0;
    for (int s = 0; s < sections; s++) {
      if (secOwner[s] == SPLIT) {
        n++;
      }
    }
    return n;
  }

  /**
   * A 64-bit digest of the whole model state (owners, generations, orders, pins, free lists,
   * ledger, MMIO, reservations; not the DMA-check statistics). Tests compare digests before and
   * after a refused call to show that it changed nothing.
   */
  public long stateDigest() {
    long h = 0xcbf29ce484222325L;
    h = mix(h, ramBytes);
    for (int s = 0; s < sections; s++) {
      h = mix(h, secOwner[s]);
      h = mix(h, secGen[s]);
      h = mix(h, secOrder[s]);
      h = mix(h, secPins[s]);
      Section d = detail[s];
      if (d != null) {
        h = mix(h, s);
        h = mix(h, Arrays.hashCode(d.meta));
        h = mix(h, Arrays.hashCode(d.gen));
        h = mix(h, Arrays.hashCode(d.freeBits));
        h = mix(h, Arrays.hashCode(d.pins));
      }
    }
    for (HierBitset b : freeHeads) {
      if (b != null) {
        for (int w = 0; w < b.leafWords(); w++) {
          h = mix(h, b.leafWord(w));
        }
      }
    }
    for (HierBitset b : sectionsWithFree) {
      for (int w = 0; w < b.leafWords(); w++) {
        h = mix(h, b.leafWord(w));
      }
    }
    for (long c : freeBlockCount) {
      h = mix(h, c);
    }
    h = mix(h, freeFrames);
    h = mix(h, pinnedFrames);
    long owners = 0;
    for (int i = 0; i < ledger.capacity(); i++) {
      if (ledger.keyAt(i) != Integer.MIN_VALUE && ledger.valueAt(i) != 0) {
        owners += mix(mix(0x9E3779B97F4A7C15L, ledger.keyAt(i)), ledger.valueAt(i));
      }
    }
    h = mix(h, owners);
    for (int i = 0; i < mmioCount; i++) {
      h = mix(mix(mix(h, mmioStart[i]), mmioLast[i]), mmioOwner[i]);
    }
    for (long[] r : reservedRam) {
      h = mix(mix(h, r[0]), r[1]);
    }
    return h;
  }

  private static long mix(long h, long v) {
    long x = (h ^ v) * 0x100000001b3L;
    return x ^ (x >>> 29);
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** Buddy order of a page size: 4K → 0, 2M → 9, 64M → 14, 1G → 18. */
  public static int orderOf(PageSize size) {
    return size.shift() - FRAME_SHIFT;
  }

  private static void checkOwner(int owner) {
    if (owner < HOST || owner > MAX_OWNER) {
      throw new IllegalArgumentException("owner " + owner + " is not the host or a VM id");
    }
  }

  private String describeFrame(long pfn) {
    int s = (int) (pfn >>> SECTION_ORDER);
    int o = ownerOfFrame(s, (int) (pfn & (SECTION_FRAMES - 1)));
    if (o == FREE) {
      return "the frame is free";
    }
    int k = secOwner[s] == SPLIT
        ? detail[s].meta[(int) (pfn & (SECTION_FRAMES - 1))] >>> ORDER_SHIFT
        : secOrder[s];
    long head = pfn & -(1L << k);
    return String.format("owner %d holds an order-%d block at 0x%x", o, k, head << FRAME_SHIFT);
  }

  /** "4 KiB", "2 MiB", "64 MiB", "1 GiB". */
  static String sizeName(PageSize size) {
    return formatBytes(size.bytes());
  }

  static String formatBytes(long bytes) {
    if (bytes >= 1L << 30 && bytes % (1L << 30) == 0) {
      return (bytes >> 30) + " GiB";
    }
    if (bytes >= 1L << 20 && bytes % (1L << 20) == 0) {
      return (bytes >> 20) + " MiB";
    }
    if (bytes >= 1L << 10 && bytes % (1L << 10) == 0) {
      return (bytes >> 10) + " KiB";
    }
    return bytes + " bytes";
  }
}
