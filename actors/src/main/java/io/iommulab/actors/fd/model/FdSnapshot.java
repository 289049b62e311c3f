package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;
import io.iommulab.config.UapiSettings;
import java.util.List;

/**
 * Everything observable about one fd, as values: for "a refused call changed nothing" assertions
 * (equal before and after) and for leak checks after close (empty, all counters zero).
 *
 * @param ictxId the fd's context id
 * @param accountMode the fd's RLIMIT mode
 * @param objects published objects by id, with their users count and a one-line summary
 * @param tombstones ids held by tombstoned vDEVICEs (unusable until close)
 * @param reservedIds ids reserved by operations in flight (not visible to the uAPI)
 * @param ioases every IOAS's io page table
 * @param accounting pinned and charged pages
 * @param pendingOperations asynchronous operations in flight
 * @param modes one line of state per mode of the seed threads (VFIO container, PAMU container,
 *     SVA PASIDs), equal for equal state
 * @param lingering areas an unmap took that still hold their IOVA and pins: awaiting the flush of
 *     a deferred unmap ({@code "ioas 2 [0x100000, 0x1fffff] awaiting 1 flush"}), or stuck after a
 *     unit refused to unmap them (a bug), in the order they were unmapped
 * @param unmaps deferred unmaps registered, flushes reported, and unmaps a unit refused (bugs,
 *     each logged as an error) since the fd was opened
 */
public record FdSnapshot(
    int ictxId,
    UapiSettings.AccountMode accountMode,
    List<ObjectSnapshot> objects,
    List<Integer> tombstones,
    List<Integer> reservedIds,
    List<IoasSnapshot> ioases,
    AccountingSnapshot accounting,
    int pendingOperations,
    List<String> modes,
    List<String> lingering,
    UnmapCounters unmaps)
    implements CborSerializable {

  /**
   * What the fd's unmaps did: {@code deferred} area unmaps answered before the flush, {@code
   * flushes} reported by units, {@code refused} unmaps (or teardown steps) a unit refused with
   * anything but a saturated stream — a bug, reported and counted; the pages stay pinned.
   */
  public record UnmapCounters(long deferred, long flushes, long refused) implements CborSerializable {
    public static final UnmapCounters NONE = new UnmapCounters(0, 0, 0);
  }

  public FdSnapshot {
    lingering = List.copyOf(lingering);
    java.util.Objects.requireNonNull(unmaps, "unmaps");
    objects = List.copyOf(objects);
    tombstones = List.copyOf(tombstones);
    reservedIds = List.copyOf(reservedIds);
    ioases = List.copyOf(ioases);
    modes = List.copyOf(modes);
  }

  /**
   * One object: {@code users} counts the references other objects and attachments hold on it
   * (DESTROY needs 0); {@code summary} describes its state (flags, attachments, queue depth).
   */
  public record ObjectSnapshot(int id, ObjectType type, int users, String summary)
      implements CborSerializable {}

  /** One area: {@code [iova, last]}, its pages (id) at {@code pagesOffset}, prot, and state. */
  public record AreaSnapshot(
      long iova, long last, int pagesId, long pagesOffset, int prot, String state)
      implements CborSerializable {}

  /** One reserved IOVA range and the owner that reserved it ("device 3", "hwpt 5"). */
  public record ReservedSnapshot(long start, long last, String owner) implements CborSerializable {}

  /**
   * One IOAS: alignment, areas in IOVA order, reserved ranges, allowed ranges, the HWPT_PAGING ids
   * whose domains mirror it, the huge-pages option.
   */
  public record IoasSnapshot(
      int id,
      long iovaAlignment,
      List<AreaSnapshot> areas,
      List<ReservedSnapshot> reserved,
      List<IovaRange> allowed,
      List<Integer> hwpts,
      boolean hugePages)
      implements CborSerializable {
    public IoasSnapshot {
      areas = List.copyOf(areas);
      reserved = List.copyOf(reserved);
      allowed = List.copyOf(allowed);
      hwpts = List.copyOf(hwpts);
    }
  }

  /**
   * Pins and charges: {@code pinnedPages} counts pages pinned once per pages object (shared by
   * copies), {@code userLockedPages}/{@code mmLockedPages} what is charged in each mode, {@code
   * pagesObjects} live pages objects.
   */
  public record AccountingSnapshot(
      long limitPages,
      long pinnedPages,
      long userLockedPages,
      long mmLockedPages,
      int pagesObjects)
      implements CborSerializable {}

  /** True when nothing is left: no object, no pin, no charge, nothing in flight. */
  public boolean isEmpty() {
    return objects.isEmpty()
        && tombstones.isEmpty()
        && reservedIds.isEmpty()
        && ioases.isEmpty()
        && accounting.pinnedPages() == 0
        && accounting.userLockedPages() == 0
        && accounting.mmLockedPages() == 0
        && accounting.pagesObjects() == 0
        && pendingOperations == 0
        && lingering.isEmpty();
  }
}
