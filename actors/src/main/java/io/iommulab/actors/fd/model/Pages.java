package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.memory.GuestMemoryLayout;

/**
 * {@code struct iopt_pages}: the user memory behind one MAP, {@code npages} pages from the
 * page-aligned user VA {@code uptr}, shared by every area that maps a slice of it (the area of the
 * MAP and the areas of COPYs from it; {@code drivers/iommu/iommufd/pages.c}).
 *
 * <p>Pinning is lazy, as in the kernel: the pages are pinned (and charged) only while some area
 * over them sits in an IOAS with at least one domain (the kernel's storage domain holds the PFNs;
 * an IOAS without domains keeps only "a lazy reference"). {@code pinRefs} counts those areas; the
 * pages are pinned once whatever that count is — shared by copies, "pinned and accounted once".
 * Pins are whole: a copy of a sub-range keeps the whole object pinned while it lives, where the
 * kernel unpins the pages no area covers any more (inference: coarser, never unbalanced).
 *
 * <p>Pinning translates through the VM's immutable {@link GuestMemoryLayout}: a user VA outside
 * guest memory fails with EFAULT ("part of the user VA unmapped"). The physically contiguous runs
 * of a slice are what a unit installs ({@link #runCount}, {@link #fillRuns}).
 *
 * <p>Invariants: {@code areaRefs >= pinRefs >= 0}; pinned ⇔ {@code pinRefs > 0}; the charge made
 * at pin time in {@code accountMode} is returned at unpin; an object with {@code areaRefs == 0} is
 * unpinned and dropped.
 */
public final class Pages {

  /** Injector site of the pages allocation ({@code iopt_alloc_pages}). */
  public static final String SITE_ALLOC = "fd.pages";
  /** Injector site of a pin ({@code pfn_reader} batch allocation). */
  public static final String SITE_PIN = "fd.pages.pin";

  private final int id;
  private final long uptr;
  private final long npages;
  private final boolean writable;
  private final Accounting.Mode accountMode;
  int areaRefs;
  int pinRefs;

  Pages(int id, long uptr, long npages, boolean writable, Accounting.Mode accountMode) {
    this.id = id;
    this.uptr = uptr;
    this.npages = npages;
    this.writable = writable;
    this.accountMode = accountMode;
  }

  /**
   * The pages object of a MAP of {@code [userVa, +length)}: EINVAL for a zero or huge length,
   * EOVERFLOW when the range wraps, ENOMEM when the injector fails the allocation.
   */
  static Outcome<Pages> alloc(
      int id, long userVa, long length, boolean writable, Accounting.Mode mode, FaultInjector inj) {
    if (length == 0 || Long.compareUnsigned(length, Uapi.ULONG_MAX - Uapi.PAGE_SIZE) > 0) {
      return Outcome.err(Errno.EINVAL, "length 0x%x: zero or beyond SIZE_MAX - PAGE_SIZE", length);
    }
    if (Long.compareUnsigned(length, Uapi.ULONG_MAX - userVa) > 0) {
      return Outcome.err(
          Errno.EOVERFLOW, "user_va 0x%x + length 0x%x overflows", userVa, length);
    }
    if (inj.shouldFail(SITE_ALLOC)) {
      return Outcome.err(Errno.ENOMEM, "pages allocation failed (injected)");
    }
    long start = userVa & -Uapi.PAGE_SIZE;
    long span = userVa + length - start; // >= 1; userVa + length cannot wrap (checked above)
    long npages = Long.divideUnsigned(span - 1, Uapi.PAGE_SIZE) + 1;
    return Outcome.ok(new Pages(id, start, npages, writable, mode));
  }

  public int id() {
    return id;
  }

  /** Page-aligned first user VA. */
  public long uptr() {
    return uptr;
  }

  public long npages() {
    return npages;
  }

  public long lengthBytes() {
    return npages * Uapi.PAGE_SIZE;
  }

  public boolean writable() {
    return writable;
  }

  public Accounting.Mode accountMode() {
    return accountMode;
  }

  public boolean pinned() {
    return pinRefs > 0;
  }

  public int areaRefs() {
    return areaRefs;
  }

  public int pinRefs() {
    return pinRefs;
  }

  /**
   * One more area over these pages lives in an IOAS with domains: pins on the first (EFAULT
   * outside guest memory, ENOMEM from the injector or past RLIMIT_MEMLOCK; nothing changed then).
   */
  Outcome<Void> pinRef(
      GuestMemoryLayout layout, Accounting acct, FaultInjector inj, PinListener listener) {
    if (pinRefs == 0) {
      long bytes = lengthBytes();
      if (!layout.containsUserRange(uptr, bytes)) {
        return Outcome.err(
            Errno.EFAULT,
            "user VA [0x%x, +0x%x) is not all guest memory of VM %d",
            uptr,
            bytes,
            layout.vmId());
      }
      if (inj.shouldFail(SITE_PIN)) {
        return Outcome.err(Errno.ENOMEM, "pinning %d pages failed (injected)", npages);
      }
      Outcome<Void> charged = acct.charge(accountMode, npages);
      if (!charged.isOk()) {
        return charged;
      }
      listener.pinned(uptr, bytes);
    }
    pinRefs++;
    return Outcome.OK;
  }

  /** Drops a reference taken by {@link #pinRef}; the last one unpins and uncharges. */
  void unpinRef(Accounting acct, PinListener listener) {
    if (pinRefs <= 0) {
      throw new IllegalStateException("pages " + id + ": unpin without pin");
    }
    pinRefs--;
    if (pinRefs == 0) {
      acct.uncharge(accountMode, npages);
      listener.unpinned(uptr, lengthBytes());
    }
  }

  /** Number of physically contiguous runs backing {@code [offset, +length)} of these pages. */
  public int runCount(GuestMemoryLayout layout, long offset, long length) {
    int n = 0;
    long va = uptr + offset;
    long left = length;
    while (left > 0) {
      long c = layout.contiguousBytes(va);
      if (c <= 0) {
        throw new IllegalStateException(String.format("user VA 0x%x outside guest memory", va));
      }
      long take = Math.min(c, left);
      va += take;
      left -= take;
      n++;
    }
    return n;
  }

  /**
   * Writes the runs of {@code [offset, +length)} into {@code hpas}/{@code lengths} from index
   * {@code at}; returns the index after the last one written.
   */
  public int fillRuns(
      GuestMemoryLayout layout, long offset, long length, long[] hpas, long[] lengths, int at) {
    long va = uptr + offset;
    long left = length;
    int i = at;
    while (left > 0) {
      long take = Math.min(layout.contiguousBytes(va), left);
      hpas[i] = layout.userVaToHpa(va);
      lengths[i] = take;
      i++;
      va += take;
      left -= take;
    }
    return i;
  }

  @Override
  public String toString() {
    return String.format(
        "Pages[%d va 0x%x %d pages %s %s areas=%d pins=%d]",
        id, uptr, npages, writable ? "rw" : "ro", accountMode, areaRefs, pinRefs);
  }
}
