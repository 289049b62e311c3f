package io.iommulab.actors.memory;

import io.iommulab.actors.CborSerializable;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemory;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import io.iommulab.hardware.memory.HostMemory;
import io.iommulab.hardware.memory.Violation;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import kamon.Kamon;
import kamon.metric.Counter;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * Owns the host's physical memory ({@link HostMemory}) and every VM's {@link GuestMemory}: frame
 * allocation and release, pin bookkeeping, and the isolation oracle that checks every completed
 * DMA against frame ownership.
 *
 * <p>State: one {@code HostMemory} of the topology's RAM size, with each MSI bank's MSIIR page
 * registered as host-owned MMIO (a device writing it is never judged as a memory access: the
 * MSI path delivers it; anything else reaching it is a {@link DmaCheck#HOST_FRAME}), and the live
 * {@code GuestMemory} of each VM, by VM id. Other actors see only the immutable {@link
 * GuestMemoryLayout} handed out at allocation.
 *
 * <p>The oracle ({@link CheckDma}) judges each access with {@link HostMemory#check}, allocation
 * free, pins included: a VM's access to one of its frames that nobody pins is {@link
 * DmaCheck#UNPINNED_FRAME} (see {@code HostMemory.check} for why that is sound although pins and
 * checks come from different actors); verdicts are counted, the first non-OK ones are logged by the model (bounded) and the rest
 * counted as dropped. Pin bookkeeping from fds is fire and forget: a bad one (a pin outside guest
 * memory, an unpin below zero, an unknown VM) is a bug of the sender, logged at error level and
 * kept in {@link MemoryReport#bugs()}, never a silent crash and never a half-applied change (the
 * model validates before it changes anything).
 *
 * <p>Metrics (Kamon, one series per verdict, never per actor instance):
 * {@code iommulab.memory.dma-checks{verdict}}, {@code iommulab.memory.bugs}.
 */
public final class HostMemoryActor extends AbstractBehavior<HostMemoryActor.Command> {

  /** Bugs kept in {@link MemoryReport#bugs()}; later ones are only logged and counted. */
  static final int BUG_LOG = 64;

  /**
   * The host's memory: RAM of {@code topology.hostMemoryBytes()}, the MSI banks' MSIIR pages
   * registered as host MMIO. {@code injector} fails internal allocations in fault sweeps.
   */
  public static Behavior<Command> create(TopologySettings topology, FaultInjector injector) {
    return Behaviors.setup(context -> new HostMemoryActor(context, topology, injector));
  }

  public sealed interface Command extends CborSerializable
      permits AllocateGuestMemory, ReleaseGuestMemory, PinsChanged, CheckDma, GetReport {}

  /** Backs a new VM's memory; replies {@link GuestMemoryAllocated} or {@link MemoryRefused}. */
  public record AllocateGuestMemory(
      int vmId, long bytes, PageSize backing, ActorRef<GuestMemoryReply> replyTo)
      implements Command {}

  /**
   * Returns a VM's memory to the host; replies {@link GuestMemoryReleased}, or {@link
   * MemoryRefused} with EBUSY while frames are still pinned (an fd of the VM is still open) and
   * ENOENT for an unknown VM.
   */
  public record ReleaseGuestMemory(int vmId, ActorRef<GuestMemoryReply> replyTo)
      implements Command {}

  /**
   * Pin bookkeeping from an fd (fire and forget, in order per sender): {@code [userVa, +length)} of
   * VM {@code vmId} was pinned ({@code pinned}) or unpinned once more. The fd's own accounting is
   * authoritative for its limits; this keeps the host's frame pin counts for the oracle (a pinned
   * frame is never freed; every pin is gone when all fds are closed).
   */
  public record PinsChanged(int vmId, long userVa, long length, boolean pinned)
      implements Command {}

  /**
   * Completed DMA accesses to check (fire and forget): {@code count} accesses at {@code hpas[i]} of
   * {@code lengths[i]} bytes by requester {@code rid} (PASID {@code pasid}) behind unit
   * {@code unitId}, expected to touch only frames of {@code expectedOwner} (a VM id, or
   * {@code HostMemory.HOST} for a device no VM owns). The arrays belong to the message.
   */
  public record CheckDma(
      int expectedOwner,
      int unitId,
      int rid,
      int pasid,
      long[] hpas,
      int[] lengths,
      int count,
      long timeNs)
      implements Command {}

  public record GetReport(ActorRef<MemoryReport> replyTo) implements Command {}

  public sealed interface GuestMemoryReply extends CborSerializable
      permits GuestMemoryAllocated, GuestMemoryReleased, MemoryRefused {}

  public record GuestMemoryAllocated(GuestMemoryLayout layout) implements GuestMemoryReply {}

  public record GuestMemoryReleased(int vmId, long bytes) implements GuestMemoryReply {}

  public record MemoryRefused(Errno errno, String message) implements GuestMemoryReply {}

  /**
   * The oracle's view: DMA checks by verdict, the first violations (bounded log) and how many more
   * were dropped, pinned frames, and per-owner allocation.
   */
  public record MemoryReport(
      long ramBytes,
      long freeBytes,
      long pinnedFrames,
      Map<DmaCheck, Long> checks,
      List<Violation> violations,
      long violationsDropped,
      Map<Integer, Long> allocatedBytesByOwner,
      List<String> bugs)
      implements CborSerializable {}

  // ================================================================ implementation

  private static final DmaCheck[] VERDICTS = DmaCheck.values();

  private final HostMemory memory;
  private final Map<Integer, GuestMemory> guests = new TreeMap<>();
  private final List<String> bugs = new ArrayList<>();
  private long bugCount;
  /** Per-verdict tallies of the message being checked (reused: the check loop allocates nothing). */
  private final long[] tally = new long[VERDICTS.length];

  private final Counter[] checkCounters = new Counter[VERDICTS.length];
  private final Counter bugCounter;

  private HostMemoryActor(
      ActorContext<Command> context, TopologySettings topology, FaultInjector injector) {
    super(context);
    this.memory = new HostMemory(topology.hostMemoryBytes(), injector);
    memory.setPinChecks(true); // a VM's DMA must reach pinned frames only (UNPINNED_FRAME)
    for (MsiBankSettings bank : topology.msiBanks()) {
      long page = bank.msiirAddress() & ~0xFFFL;
      Outcome<Void> r = memory.reserve(page, 0x1000, HostMemory.HOST);
      if (!r.isOk()) {
        // A topology that passed validation cannot fail here (banks are distinct pages).
        throw new IllegalStateException("MSI bank " + bank.index() + " MSIIR page: " + r);
      }
    }
    for (DmaCheck c : VERDICTS) {
      checkCounters[c.ordinal()] =
          Kamon.counter("iommulab.memory.dma-checks").withTag("verdict", c.name());
    }
    this.bugCounter = Kamon.counter("iommulab.memory.bugs").withoutTags();
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(AllocateGuestMemory.class, this::onAllocateGuestMemory)
        .onMessage(ReleaseGuestMemory.class, this::onReleaseGuestMemory)
        .onMessage(PinsChanged.class, this::onPinsChanged)
        .onMessage(CheckDma.class, this::onCheckDma)
        .onMessage(GetReport.class, this::onGetReport)
        .build();
  }

  private Behavior<Command> onAllocateGuestMemory(AllocateGuestMemory msg) {
    if (msg.vmId() < 1 || msg.vmId() > HostMemory.MAX_OWNER) {
      return refuse(msg.replyTo(), Errno.EINVAL,
          String.format("vmId %d: not a VM id (1..%d)", msg.vmId(), HostMemory.MAX_OWNER));
    }
    if (msg.backing() == null) {
      return refuse(msg.replyTo(), Errno.EINVAL, "backing: no page size given");
    }
    if (guests.containsKey(msg.vmId())) {
      return refuse(msg.replyTo(), Errno.EEXIST,
          String.format("vmId %d: already has guest memory", msg.vmId()));
    }
    Outcome<GuestMemory> created = GuestMemory.create(msg.vmId(), msg.bytes(), msg.backing(), memory);
    if (created instanceof Outcome.Err<GuestMemory> err) {
      return refuse(msg.replyTo(), err.errno(), err.message());
    }
    GuestMemory gm = created.value();
    guests.put(msg.vmId(), gm);
    getContext().getLog().debug("Backed VM [{}] with [{}]", msg.vmId(), gm);
    msg.replyTo().tell(new GuestMemoryAllocated(gm.layout()));
    return Behaviors.same();
  }

  private Behavior<Command> onReleaseGuestMemory(ReleaseGuestMemory msg) {
    GuestMemory gm = guests.get(msg.vmId());
    if (gm == null) {
      return refuse(msg.replyTo(), Errno.ENOENT,
          String.format("vmId %d: has no guest memory", msg.vmId()));
    }
    long pageBytes = gm.backing().bytes();
    for (int i = 0; i < gm.pageCount(); i++) {
      long hpa = gm.pageHpa(i);
      if (memory.anyPinned(hpa, pageBytes)) {
        return refuse(msg.replyTo(), Errno.EBUSY,
            String.format("vmId %d: backing page %d (hpa 0x%x) is still pinned", msg.vmId(), i, hpa));
      }
    }
    gm.release();
    guests.remove(msg.vmId());
    msg.replyTo().tell(new GuestMemoryReleased(msg.vmId(), gm.bytes()));
    return Behaviors.same();
  }

  private Behavior<Command> refuse(ActorRef<GuestMemoryReply> replyTo, Errno errno, String message) {
    replyTo.tell(new MemoryRefused(errno, message));
    return Behaviors.same();
  }

  private Behavior<Command> onPinsChanged(PinsChanged msg) {
    GuestMemory gm = guests.get(msg.vmId());
    if (gm == null) {
      return bug(String.format(
          "%s of [0x%x, +0x%x) for VM %d: the VM has no guest memory",
          msg.pinned() ? "pin" : "unpin", msg.userVa(), msg.length(), msg.vmId()));
    }
    if (msg.pinned()) {
      Outcome<Void> r = gm.pin(msg.userVa(), msg.length());
      if (!r.isOk()) {
        return bug("pin: " + r);
      }
      return Behaviors.same();
    }
    try {
      gm.unpin(msg.userVa(), msg.length());
    } catch (IllegalArgumentException | IllegalStateException e) {
      // The model validated before changing anything: record the sender's bug and go on.
      return bug("unpin: " + e.getMessage());
    }
    return Behaviors.same();
  }

  private Behavior<Command> onCheckDma(CheckDma msg) {
    int owner = msg.expectedOwner();
    int n = msg.count();
    if (n < 0 || msg.hpas() == null || msg.lengths() == null
        || n > msg.hpas().length || n > msg.lengths().length) {
      return bug(String.format("CheckDma from unit %d rid 0x%x: count %d does not fit its arrays",
          msg.unitId(), msg.rid(), n));
    }
    if (owner != HostMemory.NOBODY && (owner < HostMemory.HOST || owner > HostMemory.MAX_OWNER)) {
      return bug(String.format("CheckDma from unit %d rid 0x%x: expected owner %d owns nothing",
          msg.unitId(), msg.rid(), owner));
    }
    long[] hpas = msg.hpas();
    int[] lengths = msg.lengths();
    for (int i = 0; i < n; i++) {
      if (lengths[i] <= 0) {
        bug(String.format("CheckDma from unit %d rid 0x%x: access %d has length %d",
            msg.unitId(), msg.rid(), i, lengths[i]));
        continue;
      }
      tally[memory.check(hpas[i], lengths[i], owner).ordinal()]++;
    }
    for (int k = 0; k < tally.length; k++) {
      if (tally[k] != 0) {
        checkCounters[k].increment(tally[k]);
        if (k != DmaCheck.OK.ordinal()) {
          getContext().getLog().warn(
              "DMA check [{}] x{} by rid 0x{} (pasid {}) behind unit [{}], expected owner [{}]",
              VERDICTS[k], tally[k], Integer.toHexString(msg.rid()), msg.pasid(), msg.unitId(),
              owner);
        }
        tally[k] = 0;
      }
    }
    return Behaviors.same();
  }

  private Behavior<Command> onGetReport(GetReport msg) {
    // A report of a model whose invariants broke would be a lie: throw (a bug) instead.
    memory.checkInvariants();
    Map<DmaCheck, Long> checks = new EnumMap<>(DmaCheck.class);
    for (DmaCheck c : VERDICTS) {
      checks.put(c, memory.checkCount(c));
    }
    List<Violation> violations = new ArrayList<>(memory.violationLogSize());
    for (int i = 0; i < memory.violationLogSize(); i++) {
      violations.add(memory.violation(i));
    }
    Map<Integer, Long> allocated = new TreeMap<>();
    allocated.put(HostMemory.HOST, memory.allocatedBytes(HostMemory.HOST));
    for (Integer vm : guests.keySet()) {
      allocated.put(vm, memory.allocatedBytes(vm));
    }
    msg.replyTo().tell(
        new MemoryReport(
            memory.ramBytes(),
            memory.freeBytes(),
            memory.pinnedFrames(),
            checks,
            List.copyOf(violations),
            memory.violationsDropped(),
            allocated,
            List.copyOf(bugs)));
    return Behaviors.same();
  }

  private Behavior<Command> bug(String what) {
    bugCount++;
    bugCounter.increment();
    getContext().getLog().error("Bug reported to host memory (#{}): {}", bugCount, what);
    if (bugs.size() < BUG_LOG) {
      bugs.add(what);
    }
    return Behaviors.same();
  }
}
