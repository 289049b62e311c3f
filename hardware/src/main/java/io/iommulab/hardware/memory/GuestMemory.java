package io.iommulab.hardware.memory;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import java.util.Objects;

/**
 * One VM's guest-physical memory: {@code [0, bytes)} of GPA backed by host blocks of one page
 * size (4 KiB, 2 MiB, 64 MiB or 1 GiB, as hugetlbfs would back it), owned by the VM in {@link
 * HostMemory}. The VMM (QEMU) maps the whole of it at one user virtual address, {@link
 * #userVaBase()}, so that uAPI map calls name memory by user VA as {@code IOMMU_IOAS_MAP} does;
 * {@link #pin} and {@link #unpin} are the {@code pin_user_pages} side of {@code
 * drivers/iommu/iommufd/pages.c}.
 *
 * <p>Layout: GPA {@code g} is user VA {@code userVaBase + g}; backing page {@code i} covers GPA
 * {@code [i·page, (i+1)·page)} and sits at host frame {@code pageFrame[i]}. A precomputed run
 * table makes {@link #contiguousBytes(long)} O(1): the bytes from an address that are physically
 * contiguous, across backing pages that the buddy allocator happened to place back to back (large
 * IOMMU pages and PAMU windows need such runs; VFIO-PAMU refuses a window otherwise). Metadata: 8
 * bytes per backing page.
 *
 * <p>Invariants: while the object lives (until {@link #release()}), every backing frame is owned
 * by {@link #vmId()} in the host memory; the backing pages are distinct and naturally aligned;
 * {@code runEnd[i] > i} and pages {@code i .. runEnd[i]-1} are physically consecutive. Creation is
 * all or nothing. Releasing with a pinned frame left is a bug (iommufd must have unpinned:
 * {@code iopt_release_pages} WARNs on leftovers) and throws with nothing freed. Use after release
 * throws.
 */
public final class GuestMemory {
  /** End (exclusive) of the user half of a 48-bit x86-64 / arm64 address space. */
  public static final long USER_VA_LIMIT = 1L << 47;
  private static final long DEFAULT_VA_FLOOR = 0x1000_0000_0000L;
  private static final long ONE_TIB = 1L << 40;
  private static final int DEFAULT_VA_SLOTS = 96;

  private final GuestMemoryLayout layout;
  private final HostMemory host;
  private boolean released;

  private GuestMemory(HostMemory host, GuestMemoryLayout layout) {
    this.host = host;
    this.layout = layout;
  }

  /**
   * The default user VA of a VM's memory. Each VMM is its own process, so bases could coincide;
   * they differ per VM id (96 slots of 1 TiB from 16 TiB up, 1 GiB aligned) so that a VA of one
   * VM wrongly used with another's memory usually misses. Guests over 1 TiB start at 16 TiB.
   */
  public static long defaultUserVaBase(int vmId, long bytes) {
    if (bytes > ONE_TIB) {
      return DEFAULT_VA_FLOOR;
    }
    return DEFAULT_VA_FLOOR + Math.floorMod(vmId, DEFAULT_VA_SLOTS) * ONE_TIB;
  }

  /** Creates guest memory at {@link #defaultUserVaBase(int, long)}. */
  public static Outcome<GuestMemory> create(
      int vmId, long bytes, PageSize backing, HostMemory host) {
    return create(vmId, bytes, backing, host, defaultUserVaBase(vmId, bytes));
  }

  /**
   * Allocates all backing pages from {@code host}, owned by {@code vmId}, all or nothing.
   *
   * @return EINVAL when {@code bytes} is not a positive multiple of the backing page size or the
   *     VA range is unaligned or leaves the user address space; ENOMEM (with the host's message)
   *     when the host cannot supply every page
   */
  public static Outcome<GuestMemory> create(
      int vmId, long bytes, PageSize backing, HostMemory host, long userVaBase) {
    Objects.requireNonNull(backing, "backing");
    Objects.requireNonNull(host, "host");
    if (vmId < 1 || vmId > HostMemory.MAX_OWNER) {
      throw new IllegalArgumentException("vmId " + vmId + " is not a VM id");
    }
    if (bytes <= 0 || !backing.isAligned(bytes)) {
      return Outcome.err(
          Errno.EINVAL,
          "guest memory of VM %d: %d bytes is not a positive multiple of its %s backing pages",
          vmId,
          bytes,
          HostMemory.sizeName(backing));
    }
    long pages = bytes >>> backing.shift();
    if (pages > Integer.MAX_VALUE) {
      return Outcome.err(
          Errno.EINVAL,
          "guest memory of VM %d: %d %s pages are too many",
          vmId,
          pages,
          HostMemory.sizeName(backing));
    }
    if (userVaBase < 0
        || !backing.isAligned(userVaBase)
        || userVaBase > USER_VA_LIMIT - bytes) {
      return Outcome.err(
          Errno.EINVAL,
          "guest memory of VM %d: user VA [0x%x, +0x%x) must be %s aligned and below 0x%x",
          vmId,
          userVaBase,
          bytes,
          HostMemory.sizeName(backing),
          USER_VA_LIMIT);
    }
    return host.allocateBlocks(vmId, backing, (int) pages)
        .map(hpas -> new GuestMemory(host, GuestMemoryLayout.of(vmId, bytes, backing, userVaBase, hpas)));
  }

  /** The immutable layout, shareable with the VM's other owners (its fds). */
  public GuestMemoryLayout layout() {
    live();
    return layout;
  }

  public int vmId() {
    return layout.vmId();
  }

  public long bytes() {
    return layout.bytes();
  }

  public PageSize backing() {
    return layout.backing();
  }

  public long userVaBase() {
    return layout.userVaBase();
  }

  /** End (exclusive) of the user VA range. */
  public long userVaEnd() {
    return layout.userVaEnd();
  }

  public int pageCount() {
    return layout.pageCount();
  }

  /** Host physical address of backing page {@code i}. */
  public long pageHpa(int i) {
    live();
    return layout.pageHpa(i);
  }

  public boolean isReleased() {
    return released;
  }

  /** Host physical address of {@code gpa}, or -1 outside guest memory. O(1). */
  public long gpaToHpa(long gpa) {
    live();
    return layout.gpaToHpa(gpa);
  }

  /** Guest physical address of user VA {@code va}, or -1 outside the mapping. */
  public long userVaToGpa(long va) {
    live();
    return layout.userVaToGpa(va);
  }

  /** Host physical address of user VA {@code va}, or -1 outside the mapping. */
  public long userVaToHpa(long va) {
    live();
    return layout.userVaToHpa(va);
  }

  /** True when {@code [va, va + length)} lies wholly inside the mapping (length > 0). */
  public boolean containsUserRange(long va, long length) {
    live();
    return layout.containsUserRange(va, length);
  }

  /**
   * Bytes physically contiguous from user VA {@code va} (to the end of its run of back-to-back
   * backing pages, at least to the end of its own page); 0 outside the mapping. O(1).
   */
  public long contiguousBytes(long va) {
    live();
    return layout.contiguousBytes(va);
  }

  /** As {@link #contiguousBytes(long)}, by guest physical address. */
  public long gpaContiguousBytes(long gpa) {
    live();
    return layout.gpaContiguousBytes(gpa);
  }

  /**
   * Pins the frames backing {@code [va, va + length)} once more, as {@code pin_user_pages} for
   * one pinner.
   *
   * @return EFAULT when part of the range is not guest memory (nothing pinned)
   */
  public Outcome<Void> pin(long va, long length) {
    if (!containsUserRange(va, length)) {
      return Outcome.err(
          Errno.EFAULT,
          "pin [0x%x, +0x%x) of VM %d: not within user VA [0x%x, 0x%x)",
          va,
          length,
          vmId(),
          userVaBase(),
          userVaEnd());
    }
    forEachRun(va, length, true);
    return Outcome.OK;
  }

  /** Drops one pin from the frames backing the range; a range outside guest memory is a bug. */
  public void unpin(long va, long length) {
    if (!containsUserRange(va, length)) {
      throw new IllegalArgumentException(
          String.format("unpin [0x%x, +0x%x) of VM %d: not guest memory", va, length, vmId()));
    }
    // Validate the whole range before changing anything, so a bad unpin changes nothing.
    for (long gpa = va - userVaBase(), end = gpa + length; gpa < end; ) {
      long run = Math.min(gpaContiguousBytes(gpa), end - gpa);
      long hpa = gpaToHpa(gpa);
      if (!host.allPinned(hpa, run)) {
        throw new IllegalStateException(
            String.format("unpin of VM %d [0x%x, +0x%x): a frame of hpa [0x%x, +0x%x) is not"
                + " pinned", vmId(), va, length, hpa, run));
      }
      gpa += run;
    }
    forEachRun(va, length, false);
  }

  private void forEachRun(long va, long length, boolean pin) {
    long gpa = va - userVaBase();
    long end = gpa + length;
    while (gpa < end) {
      long run = Math.min(gpaContiguousBytes(gpa), end - gpa);
      long hpa = gpaToHpa(gpa);
      if (pin) {
        host.pin(hpa, run);
      } else {
        host.unpin(hpa, run);
      }
      gpa += run;
    }
  }

  /**
   * Returns every backing page to the host. A pinned frame left is a bug: this throws and frees
   * nothing.
   */
  public void release() {
    live();
    int pages = layout.pageCount();
    long pageBytes = layout.backing().bytes();
    for (int i = 0; i < pages; i++) {
      long hpa = layout.pageHpa(i);
      if (host.anyPinned(hpa, pageBytes)) {
        throw new IllegalStateException(
            String.format(
                "release of VM %d memory: backing page %d (hpa 0x%x) still has pinned frames",
                vmId(), i, hpa));
      }
    }
    for (int i = 0; i < pages; i++) {
      host.free(layout.pageHpa(i), layout.backing());
    }
    released = true;
  }

  /**
   * Checks that every backing frame is still owned by this VM and naturally aligned; throws if
   * not. (The run table's own invariants are checked when the layout is built.)
   */
  public void checkInvariants() {
    live();
    PageSize backing = layout.backing();
    for (int i = 0; i < layout.pageCount(); i++) {
      long hpa = layout.pageHpa(i);
      if (!backing.isAligned(hpa)) {
        throw new IllegalStateException(
            String.format(
                "VM %d page %d at 0x%x is not %s aligned",
                vmId(), i, hpa, HostMemory.sizeName(backing)));
      }
      if (host.classify(hpa, backing.bytes(), vmId()) != DmaCheck.OK) {
        throw new IllegalStateException(
            String.format(
                "VM %d page %d at 0x%x: frame 0x%x is owned by %d",
                vmId(), i, hpa, host.lastOffendingHpa(), host.lastActualOwner()));
      }
    }
  }

  /** Heap bytes of this object's metadata (64-bit JVM, compressed oops). */
  public long metadataBytes() {
    return 48 + 2 * ((16 + 4L * layout.pageCount() + 7) & ~7L);
  }

  private void live() {
    if (released) {
      throw new IllegalStateException("guest memory of VM " + vmId() + " was released");
    }
  }

  @Override
  public String toString() {
    return String.format(
        "GuestMemory[vm=%d %s in %d %s pages at va 0x%x%s]",
        vmId(),
        HostMemory.formatBytes(bytes()),
        layout.pageCount(),
        layout.backing(),
        userVaBase(),
        released ? " released" : "");
  }
}
