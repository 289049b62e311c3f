package io.iommulab.actors.vm;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.unit.IommuUnitActor;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What the guest driver of a VM remembers of one of its open IOMMU fds (an {@link IoasidFdActor}
 * child): the IOASes it allocated and the buffers it mapped in each (the guest's view, kept for
 * its IOVA allocator, its lazily mapped buffers and the stale-translation oracle: the fd's object
 * table is the authority), the devices it bound with their DEVICE object ids and where each is
 * attached, the FAULT queue of the fd and the fault-capable HWPT of each (IOAS, unit).
 *
 * <p>Invariants: an area is recorded only once the fd mapped it (eager) or its IOVA was reserved
 * (lazy: pages are mapped one by one as page requests arrive, each a 4 KiB area of the fd);
 * areas of an IOAS are disjoint; a binding's {@code hwptId} is non-zero exactly while attached.
 * Plain data: the VM actor owns it and keeps the invariants.
 */
final class GuestFd {
  final int fd;
  /** The context id units record as the DMA owner: unique on the host. */
  final int ictxId;

  final ActorRef<IoasidFdActor.Command> ref;
  final Map<Integer, Ioas> ioas = new TreeMap<>();
  final Map<String, Binding> bound = new LinkedHashMap<>();
  /** (ioasId, unitId) → the HWPT_PAGING allocated with this fd's FAULT queue (PRI devices). */
  final Map<Long, Integer> faultHwpts = new HashMap<>();
  /**
   * (ioasId, unitId) → the PASID-capable HWPT_PAGING (with this fd's FAULT queue for PRI devices)
   * a device's RID moves to before its first PASID is attached.
   */
  final Map<Long, Integer> pasidHwpts = new HashMap<>();
  /** (ioasId, unitId) → the NEST_PARENT HWPT_PAGING over the IOAS (the stage 2 of nested domains). */
  final Map<Long, Integer> nestParents = new HashMap<>();
  /** (ioasId, unitId) → the HWPT_NESTED (the guest's stage-1 domain) its devices share. */
  final Map<Long, int[]> nestedHwpts = new HashMap<>();
  /** The FAULT object, 0 until a PRI device is attached. */
  int faultId;
  boolean readingFaults;
  /** A readable edge arrived while reading: read once more before stopping. */
  boolean readAgain;

  GuestFd(int fd, int ictxId, ActorRef<IoasidFdActor.Command> ref) {
    this.fd = fd;
    this.ictxId = ictxId;
    this.ref = ref;
  }

  /** The oracle's address-space key of an IOAS of this fd. */
  long space(int ioasId) {
    return ((long) fd << 32) | (ioasId & 0xffffffffL);
  }

  static long faultHwptKey(int ioasId, int unitId) {
    return ((long) ioasId << 32) | (unitId & 0xffffffffL);
  }

  Binding bindingOf(int devId) {
    for (Binding b : bound.values()) {
      if (b.devId == devId) {
        return b;
      }
    }
    return null;
  }

  static final class Ioas {
    final int id;
    /** iova → area. */
    final TreeMap<Long, Area> areas = new TreeMap<>();
    /**
     * Pieces (fd areas) unmapped with a deferred flush, by IOVA → the buffer they belonged to: its
     * IOVA is not handed out again until every piece was released ({@code IovaReleased}).
     */
    final TreeMap<Long, Area> flushing = new TreeMap<>();
    /** Pieces whose release overtook their unmap's answer. */
    final java.util.Set<Long> releasedEarly = new java.util.HashSet<>();

    Ioas(int id) {
      this.id = id;
    }

    /** The first area overlapping {@code [iova, iova + length)}, or null. */
    Area overlapping(long iova, long length) {
      Map.Entry<Long, Area> e = areas.lowerEntry(iova + length);
      return e != null && e.getValue().iova + e.getValue().length > iova ? e.getValue() : null;
    }

    /** The area holding {@code iova}, or null. */
    Area holding(long iova) {
      Map.Entry<Long, Area> e = areas.floorEntry(iova);
      return e != null && iova - e.getValue().iova < e.getValue().length ? e.getValue() : null;
    }
  }

  /**
   * A buffer: {@code [iova, iova + length)} → guest physical {@code [gpa, gpa + length)}. {@code
   * lazy}: pages are mapped on page request; {@code installed} marks those mapped so far. {@code
   * ownIova}: the VM's IOVA allocator handed the IOVA out (freed on unmap).
   */
  static final class Area {
    final long iova;
    final long length;
    final long gpa;
    final int prot;
    final boolean lazy;
    final boolean ownIova;
    final BitSet installed = new BitSet();
    /** Pieces of this buffer unmapped and awaiting their flush. */
    int awaitingFlush;

    Area(long iova, long length, long gpa, int prot, boolean lazy, boolean ownIova) {
      this.iova = iova;
      this.length = length;
      this.gpa = gpa;
      this.prot = prot;
      this.lazy = lazy;
      this.ownIova = ownIova;
    }
  }

  static final class Binding {
    final DeviceHandle handle;
    final int devId;
    final IommuUnitActor.UnitInfo info;
    int ioasId;
    int hwptId;
    /** Attached through a nested HWPT: its DMA uses guest IOVAs. */
    boolean nested;
    /** PASID → the HWPT it is attached to (always one of the IOAS {@code ioasId}). */
    final Map<Integer, Integer> pasids = new TreeMap<>();

    Binding(DeviceHandle handle, int devId, IommuUnitActor.UnitInfo info) {
      this.handle = handle;
      this.devId = devId;
      this.info = info;
    }

    boolean attached() {
      return hwptId != 0;
    }
  }
}
