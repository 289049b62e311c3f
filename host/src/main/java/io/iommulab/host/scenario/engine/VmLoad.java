package io.iommulab.host.scenario.engine;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;
import java.util.SplittableRandom;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What the workload driver knows of one VM it drives: the guest driver's side of its devices,
 * IOASes and buffers, its arrival schedules and its random streams. Plain data: the {@link
 * Workload} actor that drives the VM owns it.
 */
final class VmLoad {

  /** Where a device of the VM stands in its life. */
  enum DevState {
    /** Not set up yet (or being set up: bind, attach, PASIDs, nesting, PAMU windows). */
    SETTING_UP,
    /** Attached and usable for DMA. */
    READY,
    /** Its attach failed (a PAMU whose SPAACT was dry): retried later. */
    DETACHED,
    /** The workload asked the host to unplug it. */
    UNPLUGGING,
    /** Out of the host; plugged back after {@code replug-after}, or never. */
    UNPLUGGED
  }

  /** One assigned device. */
  static final class Dev {
    final String name;
    DeviceHandle handle;
    DevState state = DevState.SETTING_UP;
    int devId;
    Space space;
    /** PASIDs the VM allocated for this device (kept across replugs). */
    final List<Integer> pasids = new ArrayList<>();
    /** Nested: the unit's id of the guest's stage-1 domain. */
    int nestedDomainId;
    /** PAMU: the window size of the container, 0 until its windows are set. */
    long windowSize;
    int windowCount;
    int msiBank = -1;
    boolean vectorsHeld;
    /** Container operations (PAMU maps and unmaps) in flight: a PAMU unplug waits for them. */
    int pamuOpsInFlight;
    /** DMA bursts in flight on this device. */
    int dmaInFlight;
    boolean unplugWanted;

    Dev(String name) {
      this.name = name;
    }

    boolean pamu() {
      return handle.liodn() >= 0;
    }
  }

  /** A buffer mapped in a space (or, on a PAMU, a DMA window of the container). */
  static final class Held {
    final Space space;
    final long iova;
    final long length;
    final long gpa;
    /** When its unmap is due; Long.MAX_VALUE for the working set. */
    long unmapDue;
    /** Index in {@link Space#held}, -1 once its unmap was issued. */
    int index = -1;
    /** DMA bursts in flight into this buffer (its unmap waits for them). */
    int dmaRefs;
    /** Its unmap was put off while DMA into it was in flight (not late: the guest's choice). */
    boolean waitedForDma;

    Held(Space space, long iova, long length, long gpa) {
      this.space = space;
      this.iova = iova;
      this.length = length;
      this.gpa = gpa;
    }
  }

  /**
   * One IOAS of the VM (or its PAMU container): the working set, the churn buffers mapped and
   * not yet being unmapped, the IOVA allocator.
   */
  static final class Space {
    int ioasId;
    final IovaSpace iovas = new IovaSpace();
    Held workingSet;
    final List<Held> held = new ArrayList<>();
    long heldBytes;
    /** Nested: stage-1 IOVAs of the working set start here (guest IOVAs). */
    long guestIovaBase = -1;
    /** PAMU: which windows of the container are mapped (DMA) or taken (MSI bank). */
    boolean[] windows;

    void add(Held h) {
      h.index = held.size();
      held.add(h);
      heldBytes += h.length;
    }

    /** Takes {@code h} out of the DMA targets (its unmap is issued). */
    void remove(Held h) {
      if (h.index < 0) {
        return;
      }
      Held last = held.remove(held.size() - 1);
      if (last != h) {
        held.set(h.index, last);
        last.index = h.index;
      }
      h.index = -1;
      heldBytes -= h.length;
    }
  }

  final int vmId;
  final long memoryBytes;
  final List<String> deviceNames;
  final SplittableRandom choices;
  final SplittableRandom arrivals;
  ActorRef<VmActor.Command> ref;
  GuestMemoryLayout layout;
  int fd;
  ActorRef<IoasidFdActor.Command> fdRef;
  final List<Dev> devs = new ArrayList<>();
  final List<Space> spaces = new ArrayList<>();
  boolean started;
  boolean failed;
  boolean closed;
  long readyAt = -1;
  Schedule map;
  Schedule dma;
  Schedule pageRequests;
  Schedule invalidations;
  Schedule hotplug;
  Schedule wbinvd;
  final PriorityQueue<Held> unmapsDue = new PriorityQueue<>((a, b) -> Long.compare(a.unmapDue, b.unmapDue));
  int unmapsInFlight;
  /** Fixed hotplug times still ahead, on the run's clock. */
  final List<Long> hotplugAt = new ArrayList<>();
  boolean hotplugBusy;
  /** Faults or page requests since the fd's fault statistics were last read. */
  boolean faultActivity;
  boolean faultStatsAsked;
  long faultsDelivered;
  long faultsLost;
  /** Stale violations the VM reported, and how many of them were sent on with their events. */
  long staleSeen;
  int staleReported;
  boolean staleAsked;
  /** KVM's counters as the VM's last WBINVD reported them. */
  long kvmRegistrations;
  long kvmUnregistrations;

  VmLoad(int vmId, long memoryBytes, List<String> deviceNames, long seed) {
    this.vmId = vmId;
    this.memoryBytes = memoryBytes;
    this.deviceNames = List.copyOf(deviceNames);
    SplittableRandom root = new SplittableRandom(seed);
    this.choices = root.split();
    this.arrivals = root.split();
    for (String d : deviceNames) {
      devs.add(new Dev(d));
    }
  }

  Dev dev(String name) {
    for (Dev d : devs) {
      if (d.name.equals(name)) {
        return d;
      }
    }
    return null;
  }

  /** Devices usable for DMA now. */
  int readyCount() {
    int n = 0;
    for (Dev d : devs) {
      if (d.state == DevState.READY) {
        n++;
      }
    }
    return n;
  }

  /** A device usable for DMA, chosen uniformly (seeded), or null. */
  Dev randomReady() {
    int n = readyCount();
    if (n == 0) {
      return null;
    }
    int k = choices.nextInt(n);
    for (Dev d : devs) {
      if (d.state == DevState.READY && k-- == 0) {
        return d;
      }
    }
    throw new IllegalStateException();
  }
}
