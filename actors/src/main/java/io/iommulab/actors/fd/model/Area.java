package io.iommulab.actors.fd.model;

/**
 * {@code struct iopt_area}: IOVA {@code [iova, last]} (inclusive) mapping the bytes of
 * {@link Pages} from {@code pagesOffset} ({@code drivers/iommu/iommufd/io_pagetable.h}).
 *
 * <p>States follow the kernel's two-phase map: {@link State#MAPPING} is an area inserted with
 * {@code pages == NULL} — it reserves its IOVA while the domains are filled, and an unmap that
 * meets it fails with EBUSY; {@link State#MAPPED} is a published area; {@link State#UNMAPPING}
 * is an area an unmap has taken (the kernel sets {@code area->pages = NULL} and drops it from the
 * tree under the lock; here it keeps its IOVA until the units have invalidated, so a racing fixed
 * MAP at that IOVA still gets EEXIST and a racing UNMAP no longer sees it).
 *
 * <p>{@code holdsPin}: the area holds one of its pages' pin references (its IOAS had a domain when
 * it was filled or when a domain was added).
 *
 * <p>An UNMAPPING area outlives its unmap in two cases. <em>Awaiting a flush</em> ({@code
 * pendingFlushes > 0}): a unit in deferred mode removed its page-table entries and answered before
 * invalidating its caches; until every such unit reports the flush ({@code FlushCompleted}) the
 * area keeps its IOVA (a map there is EEXIST, auto-IOVA skips it) and its pin and charge, since an
 * IOTLB or device-TLB entry may still reach its frames. <em>Stuck</em> ({@code unmapFailed}): a
 * unit refused to remove it (a bug of that unit, reported): its frames may still be mapped, so it
 * keeps its IOVA and pin until every domain of its IOAS is gone.
 */
public final class Area {

  /** See the class comment. */
  public enum State {
    MAPPING,
    MAPPED,
    UNMAPPING
  }

  final long iova;
  final long last;
  final Pages pages;
  final long pagesOffset;
  final int prot;
  State state = State.MAPPING;
  boolean holdsPin;
  /** Deferred unmaps of this area whose flush has not been reported yet. */
  int pendingFlushes;
  /** A unit refused to unmap this area (a bug): it stays pinned until its domains are gone. */
  boolean unmapFailed;

  Area(long iova, long last, Pages pages, long pagesOffset, int prot) {
    this.iova = iova;
    this.last = last;
    this.pages = pages;
    this.pagesOffset = pagesOffset;
    this.prot = prot;
  }

  public long iova() {
    return iova;
  }

  /** Inclusive last IOVA. */
  public long last() {
    return last;
  }

  public long length() {
    return last - iova + 1;
  }

  public Pages pages() {
    return pages;
  }

  /** Byte offset of the area's first IOVA in its pages ({@code start_byte}). */
  public long pagesOffset() {
    return pagesOffset;
  }

  /** {@code area->page_offset}: the sub-page offset of the first byte. */
  public long pageOffset() {
    return (pages.uptr() + pagesOffset) & (Uapi.PAGE_SIZE - 1);
  }

  /** {@link io.iommulab.hardware.Access} READ/WRITE bits. */
  public int prot() {
    return prot;
  }

  public State state() {
    return state;
  }

  public boolean holdsPin() {
    return holdsPin;
  }

  /** Flushes (one per deferred unit unmap) this area still waits for; 0 when none. */
  public int pendingFlushes() {
    return pendingFlushes;
  }

  /** Whether a unit refused to unmap this area (it stays pinned until its domains are gone). */
  public boolean unmapFailed() {
    return unmapFailed;
  }

  /** Taken by an unmap and not released yet: awaiting a flush, or stuck. */
  public boolean lingering() {
    return state == State.UNMAPPING && (pendingFlushes > 0 || unmapFailed);
  }

  @Override
  public String toString() {
    return String.format("Area[0x%x-0x%x %s%s pages %d +0x%x]", iova, last, state,
        pendingFlushes > 0 ? " awaiting " + pendingFlushes + " flushes" : unmapFailed ? " stuck" : "",
        pages.id(), pagesOffset);
  }
}
