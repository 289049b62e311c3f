package io.iommulab.actors.vm;

import io.iommulab.actors.unit.IommuUnitActor;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The VM's record of one open IOMMU fd while it drives the units directly (the stand-in until the
 * fd actor takes over): the IOASes it allocated with their areas, the devices it bound (DMA
 * ownership claimed with this fd as the context) and where each is attached, and the paging
 * domain each IOAS has on each unit (one per unit, as iommufd's auto domains: devices of one unit
 * attached to one IOAS share it).
 *
 * <p>Invariants: an area is in its IOAS only once every domain of the IOAS maps it (the map
 * finished); areas of an IOAS are disjoint; a binding's {@code ioasId} names an IOAS of this fd
 * and the domain of that IOAS on the device's unit exists with the binding counted in its {@code
 * attached}. Plain data: the VM actor owns it and keeps the invariants.
 */
final class GuestFd {
  final int fd;
  /** The context id units record as the DMA owner: unique on the host. */
  final int ictxId;
  final Map<Integer, Ioas> ioas = new TreeMap<>();
  final Map<String, Binding> bound = new LinkedHashMap<>();
  private int nextObjectId = 1;

  GuestFd(int fd, int ictxId) {
    this.fd = fd;
    this.ictxId = ictxId;
  }

  int nextObjectId() {
    return nextObjectId++;
  }

  /** The oracle's address-space key of an IOAS of this fd. */
  long space(int ioasId) {
    return ((long) fd << 32) | (ioasId & 0xffffffffL);
  }

  static final class Ioas {
    final int id;
    /** iova → area; only finished maps. */
    final TreeMap<Long, Area> areas = new TreeMap<>();
    /** unitId → the IOAS's domain on that unit. */
    final Map<Integer, Domain> domains = new TreeMap<>();

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
   * A mapped buffer: {@code [iova, iova + length)} → guest physical {@code [gpa, gpa + length)}.
   * {@code lazy}: pages are installed on page request (a PRI buffer) rather than at map time;
   * {@code installed} counts the pages installed so far. {@code ownIova}: the VM's IOVA allocator
   * handed the IOVA out (freed on unmap).
   */
  static final class Area {
    final long iova;
    final long length;
    final long gpa;
    final int prot;
    final boolean lazy;
    final boolean ownIova;
    final java.util.BitSet installed = new java.util.BitSet();

    Area(long iova, long length, long gpa, int prot, boolean lazy, boolean ownIova) {
      this.iova = iova;
      this.length = length;
      this.gpa = gpa;
      this.prot = prot;
      this.lazy = lazy;
      this.ownIova = ownIova;
    }
  }

  static final class Domain {
    final int unitId;
    final int domainId;
    final ActorRef<IommuUnitActor.Command> unit;
    int attached;

    Domain(int unitId, int domainId, ActorRef<IommuUnitActor.Command> unit) {
      this.unitId = unitId;
      this.domainId = domainId;
      this.unit = unit;
    }
  }

  static final class Binding {
    final DeviceHandle handle;
    final int devId;
    final IommuUnitActor.UnitInfo info;
    Integer ioasId;

    Binding(DeviceHandle handle, int devId, IommuUnitActor.UnitInfo info) {
      this.handle = handle;
      this.devId = devId;
      this.info = info;
    }
  }
}
