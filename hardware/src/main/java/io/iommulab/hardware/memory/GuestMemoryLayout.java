package io.iommulab.hardware.memory;

import io.iommulab.hardware.PageSize;
import java.util.Objects;

/**
 * Where a VM's memory lives: GPA {@code g} is user VA {@code userVaBase + g}, and backing page
 * {@code i} (GPA {@code [i·page, (i+1)·page)}) sits at host frame {@code pageFrame[i]}. Immutable,
 * so the VM actor and the fd actors of that VM can share it: the layout of a VMM's memory does not
 * change while the VM lives (no balloon or memory hotplug is modeled). The owning {@link
 * GuestMemory} adds what does change: pins and release.
 *
 * <p>{@code runEnd[i]} is the index one past the last backing page physically consecutive with
 * page {@code i}, which makes {@link #contiguousBytes(long)} O(1). Invariants: arrays of equal
 * length, {@code i < runEnd[i] ≤ pageCount}. The arrays are copied in and never handed out.
 */
public record GuestMemoryLayout(
    int vmId, long bytes, PageSize backing, long userVaBase, int[] pageFrame, int[] runEnd) {

  public GuestMemoryLayout {
    Objects.requireNonNull(backing, "backing");
    pageFrame = pageFrame.clone();
    runEnd = runEnd.clone();
    if (pageFrame.length != runEnd.length || (long) pageFrame.length << backing.shift() != bytes) {
      throw new IllegalArgumentException("layout arrays do not describe " + bytes + " bytes");
    }
    for (int i = 0; i < runEnd.length; i++) {
      if (runEnd[i] <= i || runEnd[i] > runEnd.length) {
        throw new IllegalArgumentException("run table broken at page " + i);
      }
    }
  }

  /** Builds the layout of backing pages at {@code pages} (host physical addresses). */
  static GuestMemoryLayout of(
      int vmId, long bytes, PageSize backing, long userVaBase, long[] pages) {
    int n = pages.length;
    int[] frames = new int[n];
    for (int i = 0; i < n; i++) {
      frames[i] = (int) (pages[i] >>> HostMemory.FRAME_SHIFT);
    }
    int[] runEnd = new int[n];
    long framesPerPage = backing.frames();
    for (int i = n - 1; i >= 0; i--) {
      boolean joins = i + 1 < n && (long) frames[i + 1] == frames[i] + framesPerPage;
      runEnd[i] = joins ? runEnd[i + 1] : i + 1;
    }
    return new GuestMemoryLayout(vmId, bytes, backing, userVaBase, frames, runEnd);
  }

  /** A copy: the layout's own array is never handed out. */
  @Override
  public int[] pageFrame() {
    return pageFrame.clone();
  }

  /** A copy: the layout's own array is never handed out. */
  @Override
  public int[] runEnd() {
    return runEnd.clone();
  }

  /** End (exclusive) of the user VA range. */
  public long userVaEnd() {
    return userVaBase + bytes;
  }

  public int pageCount() {
    return pageFrame.length;
  }

  /** Host physical address of backing page {@code i}. */
  public long pageHpa(int i) {
    return (long) pageFrame[i] << HostMemory.FRAME_SHIFT;
  }

  /** Host physical address of {@code gpa}, or -1 outside guest memory. O(1). */
  public long gpaToHpa(long gpa) {
    if (gpa < 0 || gpa >= bytes) {
      return -1;
    }
    int i = (int) (gpa >>> backing.shift());
    return ((long) pageFrame[i] << HostMemory.FRAME_SHIFT) + (gpa & backing.mask());
  }

  /** Guest physical address of user VA {@code va}, or -1 outside the mapping. */
  public long userVaToGpa(long va) {
    long gpa = va - userVaBase;
    return va < userVaBase || gpa >= bytes ? -1 : gpa;
  }

  /** Host physical address of user VA {@code va}, or -1 outside the mapping. */
  public long userVaToHpa(long va) {
    long gpa = userVaToGpa(va);
    return gpa < 0 ? -1 : gpaToHpa(gpa);
  }

  /** True when {@code [va, va + length)} lies wholly inside the mapping (length > 0). */
  public boolean containsUserRange(long va, long length) {
    return length > 0 && va >= userVaBase && va - userVaBase <= bytes - length;
  }

  /**
   * Bytes physically contiguous from user VA {@code va} (to the end of its run of back-to-back
   * backing pages, at least to the end of its own page); 0 outside the mapping. O(1).
   */
  public long contiguousBytes(long va) {
    long gpa = userVaToGpa(va);
    return gpa < 0 ? 0 : gpaContiguousBytes(gpa);
  }

  /** As {@link #contiguousBytes(long)}, by guest physical address. */
  public long gpaContiguousBytes(long gpa) {
    if (gpa < 0 || gpa >= bytes) {
      return 0;
    }
    int i = (int) (gpa >>> backing.shift());
    return ((long) runEnd[i] << backing.shift()) - gpa;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof GuestMemoryLayout l
        && vmId == l.vmId
        && bytes == l.bytes
        && backing == l.backing
        && userVaBase == l.userVaBase
        && java.util.Arrays.equals(pageFrame, l.pageFrame)
        && java.util.Arrays.equals(runEnd, l.runEnd);
  }

  @Override
  public int hashCode() {
    return Objects.hash(vmId, bytes, backing, userVaBase, java.util.Arrays.hashCode(pageFrame));
  }

  @Override
  public String toString() {
    return String.format(
        "GuestMemoryLayout[vm=%d %s in %d %s pages at va 0x%x]",
        vmId, HostMemory.formatBytes(bytes), pageFrame.length, backing, userVaBase);
  }
}
