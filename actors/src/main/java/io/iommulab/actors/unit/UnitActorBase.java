package io.iommulab.actors.unit;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.pipeline.FaultPipeline;
import io.iommulab.actors.pipeline.FaultPolicy;
import io.iommulab.actors.unit.IommuUnitActor.AllocDomain;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.BankLearned;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.ClaimDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.Command;
import io.iommulab.actors.unit.IommuUnitActor.Correlated;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.DmaOwnerClaimed;
import io.iommulab.actors.unit.IommuUnitActor.Done;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.FaultPipelineStats;
import io.iommulab.actors.unit.IommuUnitActor.FaultsAccounted;
import io.iommulab.actors.unit.IommuUnitActor.FreeDomain;
import io.iommulab.actors.unit.IommuUnitActor.GetFaultStats;
import io.iommulab.actors.unit.IommuUnitActor.GetInvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.GetSnapshot;
import io.iommulab.actors.unit.IommuUnitActor.GetStats;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.MsiWrite;
import io.iommulab.actors.unit.IommuUnitActor.PageResponseCode;
import io.iommulab.actors.unit.IommuUnitActor.PublishedFault;
import io.iommulab.actors.unit.IommuUnitActor.Refused;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.ReleaseDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.ReportPageRequest;
import io.iommulab.actors.unit.IommuUnitActor.RespondPageRequest;
import io.iommulab.actors.unit.IommuUnitActor.TranslateBurst;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.UnregisterDevice;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.Rids;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.ContendedResource;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.fault.DmaFault;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.fault.PageRequest;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.memory.HostMemory;
import io.iommulab.hardware.pci.DmaOwner;
import io.iommulab.hardware.pci.IommuGroup;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.LongSupplier;
import kamon.Kamon;
import kamon.metric.Counter;
import kamon.metric.Gauge;
import kamon.tag.TagSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.ReceiveBuilder;
import org.apache.pekko.stream.Materializer;

/**
 * What every IOMMU unit actor owns whatever its kind: the functions registered behind it (RID →
 * {@link DeviceActor}, group, capabilities, the host-memory owner their DMA must touch), the
 * {@link IommuGroup}s and their DMA owners, the attach handles ((rid, pasid) → fault sink), the
 * page-request groups forwarded to a sink and not yet answered, and the log of faults no one
 * handled. The kind's behaviour ({@link PagingUnitActor}, {@link PamuUnitActor}) adds the model
 * and the commands that touch it; translation of a burst is shared here and asks the kind for one
 * entry at a time ({@link #translate}).
 *
 * <p>Rules kept here: a group's owner is the one iommufd context that claimed a member
 * ({@code iommu_device_claim_dma_owner}); the owner's VM is the host-memory owner every completed
 * untranslated DMA of a member is checked against (the host when the group is unowned); the
 * device is told its owner ({@link DeviceActor.OwnerChanged}) on claim and release, and every MSI
 * bank is told when a group changes hands. A page request goes to the sink of its attach handle;
 * with none, its group is answered INVALID when its last page arrives ({@code io-pgfault.c}).
 * Pending groups of a handle are answered INVALID when the handle is detached or replaced, and a
 * late response from software for them is dropped as stale.
 *
 * <p>Fault publishing: a record of a handle with a sink is published into the unit's
 * {@link FaultPipeline} (what happens to a record is {@link FaultPolicy}'s to say), carrying the
 * sink and the handle's token. The unit owns every pipeline counter: records published, those its
 * full ingress lost (the hardware queue's overflow), and what the fds answered for each batch, so
 * {@code published = inFlight + delivered + lost} holds exactly ({@link FaultPipelineStats}). The
 * modeled report time of a record includes queueing at the unit's reporting hardware: faults and
 * page requests each go through one {@link ContendedResource} (fault recording, page request
 * queue) of {@code faultReport} / {@code pageRequest} service.
 *
 * <p>Metrics (Kamon, tagged by unit name): {@code iommulab.unit.translations},
 * {@code iommulab.unit.faults}, {@code iommulab.unit.page-requests}, {@code iommulab.unit.msi-writes},
 * {@code iommulab.fault.published} and {@code iommulab.fault.lost} (unit, cause: ingress-fault,
 * ingress-page-request, queue-full, handle-gone, unacknowledged), {@code
 * iommulab.fault.ingress.depth} (unit, queue).
 */
abstract class UnitActorBase extends AbstractBehavior<Command> {

  /** Faults kept in the unit's log when no attach handle takes them. */
  static final int FAULT_LOG = 64;

  static final int MAX_RID = 0xFFFF;

  /** What every kind gets from the factory. */
  record Wiring(
      int unitId,
      String name,
      UnitKind kind,
      CostModel cost,
      ModeledClock clock,
      ActorRef<HostMemoryActor.Command> memory,
      Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks,
      InvalidationPipelineSettings pipeline,
      FaultPipelineSettings faultPipeline,
      LongSupplier wallNanos) {}

  /** An attach handle's fault sink and the token its owner gave it. */
  private record Handle(ActorRef<FaultEvent> sink, long token) {}

  /** One function behind the unit. Mutable, confined to the unit actor. */
  static final class DeviceEntry {
    final int rid;
    final int liodn;
    final int group;
    final int pasidBits;
    final boolean ats;
    final boolean pri;
    final ActorRef<DeviceActor.Command> ref;
    /** {@code HostMemory} owner its DMA must touch: the group owner's VM, or the host. */
    int expectedOwner = HostMemory.HOST;
    /** The attach handle of the RID itself (no PASID), mirrored from the handle map. */
    Handle ridHandle;
    /**
     * Groups of the RID itself (no PASID) awaiting software's response, by PRG index: the token of
     * the handle each was raised under, or {@link #NOT_PENDING}. Allocated at the first one.
     */
    long[] ridPending;

    DeviceEntry(RegisterDevice msg) {
      this.rid = msg.rid();
      this.liodn = msg.liodn();
      this.group = msg.group();
      this.pasidBits = msg.pasidBits();
      this.ats = msg.ats();
      this.pri = msg.pri();
      this.ref = msg.device();
    }
  }

  protected final int unitId;
  protected final String name;
  protected final UnitKind kind;
  protected final CostModel cost;
  protected final ModeledClock clock;
  protected final ActorRef<HostMemoryActor.Command> memory;
  protected final Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks;

  protected final DeviceEntry[] devices = new DeviceEntry[MAX_RID + 1];
  private int deviceCount;
  private final Map<Integer, IommuGroup> groups = new TreeMap<>();
  private final Map<Long, Handle> handles = new HashMap<>();
  /**
   * Page-request groups of PASIDs awaiting software's response: group key → handle token. Groups
   * of a RID itself are in its {@link DeviceEntry#ridPending} (no boxing on the hot path).
   */
  private final Map<Long, Long> pendingPageGroups = new HashMap<>();
  static final long NOT_PENDING = Long.MIN_VALUE;
  private final List<DmaFault> faultLog = new ArrayList<>();

  /** Reused by every translation: the burst loop allocates nothing but the reply arrays. */
  private final Translation scratch = new Translation();

  private long translations;
  private long faults;
  private long unhandledFaults;
  private long pageRequests;
  private long pageResponses;
  private long staleResponses;
  protected long msiWrites;
  protected long msiUnisolated;

  private final Counter translationCounter;
  private final Counter faultCounter;
  private final Counter pageRequestCounter;
  protected final Counter msiCounter;

  // Fault publishing: the pipeline, the modeled reporting hardware, and every pipeline counter.
  private final FaultPipeline faultPipeline;
  private final LongSupplier wallNanos;
  private final ContendedResource faultReporting = new ContendedResource("fault-recording");
  private final ContendedResource pageRequestReporting = new ContendedResource("page-request-queue");
  /** The last handle looked up (a burst faults at one handle): no boxing, no hashing. */
  private static final long NO_HANDLE_KEY = Long.MIN_VALUE;
  private long lastHandleKey = NO_HANDLE_KEY;
  private Handle lastHandle;
  /** Sinks still owed a partials-discarded marker after the page-request ingress overflowed. */
  private final Set<ActorRef<FaultEvent>> owedDiscardMarkers = new LinkedHashSet<>();
  private long publishedFaults;
  private long publishedPageRequests;
  private long lostIngressFaults;
  private long lostIngressPageRequests;
  private long ingressLastPagesAnswered;
  private long deliveredFaults;
  private long lostQueueFull;
  private long lostHandleGone;
  private long lostUnacknowledged;
  private long settledRecords;
  private long batches;
  private final Counter publishedCounter;
  private final Counter lostIngressFaultCounter;
  private final Counter lostIngressPageRequestCounter;
  private final Counter lostQueueFullCounter;
  private final Counter lostHandleGoneCounter;
  private final Counter lostUnacknowledgedCounter;
  private final Gauge faultIngressGauge;
  private final Gauge pageRequestIngressGauge;

  protected UnitActorBase(ActorContext<Command> context, Wiring w) {
    super(context);
    this.unitId = w.unitId();
    this.name = w.name();
    this.kind = w.kind();
    this.cost = w.cost();
    this.clock = w.clock();
    this.memory = w.memory();
    this.msiBanks = w.msiBanks();
    this.translationCounter = Kamon.counter("iommulab.unit.translations").withTag("unit", name);
    this.faultCounter = Kamon.counter("iommulab.unit.faults").withTag("unit", name);
    this.pageRequestCounter = Kamon.counter("iommulab.unit.page-requests").withTag("unit", name);
    this.msiCounter = Kamon.counter("iommulab.unit.msi-writes").withTag("unit", name);
    this.wallNanos = w.wallNanos() == null ? FaultPipeline.NO_WALL_CLOCK : w.wallNanos();
    ActorRef<Command> self = context.getSelf();
    this.faultPipeline =
        FaultPipeline.start(
            unitId,
            name,
            w.faultPipeline(),
            Materializer.createMaterializer(context),
            context.getSystem().scheduler(),
            this.wallNanos,
            s -> self.tell(new FaultsAccounted(s.records(), s.delivered(), s.lostQueueFull(),
                s.lostHandleGone(), s.lostUnacknowledged())));
    this.publishedCounter = Kamon.counter("iommulab.fault.published").withTag("unit", name);
    this.lostIngressFaultCounter = lostCounter("ingress-fault");
    this.lostIngressPageRequestCounter = lostCounter("ingress-page-request");
    this.lostQueueFullCounter = lostCounter("queue-full");
    this.lostHandleGoneCounter = lostCounter("handle-gone");
    this.lostUnacknowledgedCounter = lostCounter("unacknowledged");
    this.faultIngressGauge =
        Kamon.gauge("iommulab.fault.ingress.depth")
            .withTags(TagSet.of("unit", name).withTag("queue", "fault"));
    this.pageRequestIngressGauge =
        Kamon.gauge("iommulab.fault.ingress.depth")
            .withTags(TagSet.of("unit", name).withTag("queue", "page-request"));
  }

  private Counter lostCounter(String cause) {
    return Kamon.counter("iommulab.fault.lost")
        .withTags(TagSet.of("unit", name).withTag("cause", cause));
  }

  // ---------------------------------------------------------------- what a kind provides

  /** Adds the function to the model (context entry and PASID table, or the LIODN check). */
  protected abstract Outcome<Void> probe(RegisterDevice msg);

  /** Removes the function from the model; EBUSY while it is attached anywhere. */
  protected abstract Outcome<Void> unprobe(DeviceEntry device);

  /** Whether the function is attached at any PASID (a claim cannot be released then). */
  protected abstract boolean attached(DeviceEntry device);

  /**
   * Translates one request of a burst into {@code out}; allocates nothing. {@code device} is
   * null for a RID not registered here.
   */
  protected abstract void translate(
      DeviceEntry device, int rid, int pasid, long iova, int access, boolean ats, long now,
      Translation out);

  /** GET_HW_INFO for a function behind this unit. */
  protected abstract UnitInfo info(DeviceEntry device);

  /** The stats of the model: the kind fills in what it has. */
  protected abstract UnitStats stats(Common common);

  /** The shared counters, for {@link #stats}. */
  record Common(
      long translations,
      long faults,
      long unhandledFaults,
      List<DmaFault> faultLog,
      long pageRequests,
      long pageResponses,
      long staleResponses,
      long msiWrites,
      long msiUnisolated) {}

  /**
   * Handlers of the commands every kind takes (the kind's part through the hooks below); the kind
   * adds its own and the ones it refuses, and builds.
   */
  protected ReceiveBuilder<Command> commonReceive() {
    return newReceiveBuilder()
        .onMessage(RegisterDevice.class, this::onRegisterDevice)
        .onMessage(UnregisterDevice.class, this::onUnregisterDevice)
        .onMessage(ClaimDmaOwner.class, this::onClaimDmaOwner)
        .onMessage(ReleaseDmaOwner.class, this::onReleaseDmaOwner)
        .onMessage(TranslateBurst.class, this::onTranslateBurst)
        .onMessage(ReportPageRequest.class, this::onReportPageRequest)
        .onMessage(RespondPageRequest.class, this::onRespondPageRequest)
        .onMessage(AtcInvalidationAcked.class, this::onAtcInvalidationAcked)
        .onMessage(BankLearned.class, this::onBankLearned)
        .onMessage(GetStats.class, this::onGetStats)
        .onMessage(Correlated.class, this::onCorrelated)
        .onMessage(GetFaultStats.class, this::onGetFaultStats)
        .onMessage(FaultsAccounted.class, this::onFaultsAccounted)
        .onMessage(AllocDomain.class, this::onAllocDomain)
        .onMessage(FreeDomain.class, this::onFreeDomain)
        .onMessage(MapRange.class, m -> mapRange(m, m.replyTo()::tell))
        .onMessage(UnmapRange.class, m -> unmapRange(m, m.replyTo()::tell))
        .onMessage(Attach.class, this::onAttach)
        .onMessage(Detach.class, this::onDetach)
        .onMessage(MsiWrite.class, this::onMsiWrite)
        .onMessage(GetSnapshot.class, this::onGetSnapshot)
        .onMessage(GetInvalidationStats.class, this::onGetInvalidationStats)
        .onSignal(Terminated.class, this::onTerminated);
  }

  // Commands every kind answers, each in its own way (the kind's model decides).

  protected abstract Behavior<Command> onAllocDomain(AllocDomain msg);

  protected abstract Behavior<Command> onFreeDomain(FreeDomain msg);

  protected abstract Behavior<Command> onAttach(Attach msg);

  protected abstract Behavior<Command> onDetach(Detach msg);

  protected abstract Behavior<Command> onMsiWrite(MsiWrite msg);

  protected abstract Behavior<Command> onGetSnapshot(GetSnapshot msg);

  protected abstract Behavior<Command> onGetInvalidationStats(GetInvalidationStats msg);

  // ---------------------------------------------------------------- replies

  protected Behavior<Command> refuse(
      ActorRef<UnitReply> replyTo, Errno errno, String format, Object... args) {
    replyTo.tell(new Refused(errno, args.length == 0 ? format : String.format(format, args)));
    return Behaviors.same();
  }

  // ---------------------------------------------------------------- replies to a command or a Correlated

  /** Where a command's reply goes: its {@code replyTo}, or the Answer of a {@link Correlated}. */
  @FunctionalInterface
  protected interface Replier {
    void tell(UnitReply reply);
  }

  /** MapRange, its reply to {@code r}. */
  protected abstract Behavior<Command> mapRange(MapRange msg, Replier r);

  /** UnmapRange, its reply to {@code r}. */
  protected abstract Behavior<Command> unmapRange(UnmapRange msg, Replier r);

  private Behavior<Command> onCorrelated(Correlated c) {
    long corr = c.corr();
    ActorRef<IommuUnitActor.Answer> to = c.replyTo();
    Replier r = reply -> to.tell(IommuUnitActor.Answer.of(corr, reply));
    if (c.map() != null && c.unmap() == null) {
      return mapRange(c.map(), r);
    }
    if (c.unmap() != null && c.map() == null) {
      return unmapRange(c.unmap(), r);
    }
    return refuse(r, Errno.EINVAL, "Correlated: exactly one of map, unmap");
  }

  protected Behavior<Command> refuse(Replier r, Errno errno, String format, Object... args) {
    r.tell(new Refused(errno, args.length == 0 ? format : String.format(format, args)));
    return Behaviors.same();
  }

  protected Behavior<Command> refuse(Replier r, Outcome<?> err) {
    Outcome.Err<?> e = (Outcome.Err<?>) err;
    r.tell(new Refused(e.errno(), e.message()));
    return Behaviors.same();
  }

  protected Behavior<Command> refuse(ActorRef<UnitReply> replyTo, Outcome<?> err) {
    Outcome.Err<?> e = (Outcome.Err<?>) err;
    replyTo.tell(new Refused(e.errno(), e.message()));
    return Behaviors.same();
  }

  /** ENODEV: {@code rid} is not behind this unit (never registered, or unregistered since). */
  protected Behavior<Command> notRegistered(ActorRef<UnitReply> replyTo, int rid) {
    return refuse(replyTo, Errno.ENODEV, "rid %s: not registered on unit %s", rid(rid), name);
  }

  protected Behavior<Command> unsupported(ActorRef<UnitReply> replyTo, String operation) {
    return refuse(replyTo, Errno.EOPNOTSUPP, "%s: unit %s (%s) has no such operation",
        operation, name, kind.configName());
  }

  protected Behavior<Command> done(ActorRef<UnitReply> replyTo) {
    replyTo.tell(Done.INSTANCE);
    return Behaviors.same();
  }

  // ---------------------------------------------------------------- devices

  protected DeviceEntry device(int rid) {
    return rid < 0 || rid > MAX_RID ? null : devices[rid];
  }

  /** The actor of a registered RID, or null: where device-TLB invalidations go. */
  protected ActorRef<DeviceActor.Command> deviceRef(int rid) {
    DeviceEntry e = device(rid);
    return e == null ? null : e.ref;
  }

  protected static String rid(int rid) {
    return rid >= 0 && rid <= MAX_RID ? Rids.format(rid) : Integer.toString(rid);
  }

  private Behavior<Command> onRegisterDevice(RegisterDevice msg) {
    if (msg.rid() < 0 || msg.rid() > MAX_RID) {
      return refuse(msg.replyTo(), Errno.EINVAL, "rid %d: outside 16 bits", msg.rid());
    }
    if (msg.group() < 0) {
      return refuse(msg.replyTo(), Errno.EINVAL, "group %d: negative", msg.group());
    }
    if (msg.device() == null) {
      return refuse(msg.replyTo(), Errno.EINVAL, "device: no actor for rid %s", rid(msg.rid()));
    }
    if (devices[msg.rid()] != null) {
      return refuse(msg.replyTo(), Errno.EEXIST, "rid %s: already registered on unit %s",
          rid(msg.rid()), name);
    }
    IommuGroup group = groups.get(msg.group());
    if (group != null && group.claimedAsGroup()) {
      // Not produced by this protocol (no group claims), kept honest for later commands.
      return refuse(msg.replyTo(), Errno.EBUSY, "group %d: claimed as a whole", msg.group());
    }
    Outcome<Void> probed = probe(msg);
    if (!probed.isOk()) {
      return refuse(msg.replyTo(), probed);
    }
    if (group == null) {
      group = new IommuGroup(msg.group());
      groups.put(msg.group(), group);
    }
    Outcome<Void> joined = group.addDevice(msg.rid());
    if (!joined.isOk()) {
      throw new IllegalStateException("rid unique on the unit but not in its group: " + joined);
    }
    DeviceEntry e = new DeviceEntry(msg);
    e.expectedOwner = memoryOwnerOf(group);
    devices[msg.rid()] = e;
    deviceCount++;
    // Watching twice is harmless: one actor may stand for several functions (tests, a multi-
    // function card).
    getContext().watch(msg.device());
    return done(msg.replyTo());
  }

  private Behavior<Command> onUnregisterDevice(UnregisterDevice msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    IommuGroup group = groups.get(e.group);
    DmaOwner owner = group.memberOwner(e.rid);
    if (owner != DmaOwner.NONE) {
      return refuse(msg.replyTo(), Errno.EBUSY, "rid %s: still owned by %s (release it first)",
          rid(e.rid), owner);
    }
    Outcome<Void> removed = unprobe(e);
    if (!removed.isOk()) {
      return refuse(msg.replyTo(), removed);
    }
    Outcome<Void> left = group.removeDevice(e.rid);
    if (!left.isOk()) {
      throw new IllegalStateException("unowned member could not leave: " + left);
    }
    if (group.size() == 0) {
      groups.remove(e.group);
    }
    devices[e.rid] = null;
    deviceCount--;
    if (ridsOf(e.ref).isEmpty()) {
      getContext().unwatch(e.ref);
    }
    return done(msg.replyTo());
  }

  /** The registered RIDs whose function is {@code ref}. Scans the table: unplug is rare. */
  private List<Integer> ridsOf(ActorRef<?> ref) {
    List<Integer> out = new ArrayList<>(1);
    for (int r = 0, seen = 0; r <= MAX_RID && seen < deviceCount; r++) {
      if (devices[r] != null) {
        seen++;
        if (devices[r].ref.equals(ref)) {
          out.add(r);
        }
      }
    }
    return out;
  }

  private Behavior<Command> onTerminated(Terminated signal) {
    for (int rid : ridsOf(signal.getRef())) {
      getContext().getLog().info("Device actor of rid {} on unit [{}] stopped", rid(rid), name);
      deviceStopped(rid);
    }
    return Behaviors.same();
  }

  /** A registered device's actor stopped; the kind releases what waits on it. */
  protected void deviceStopped(int rid) {}

  private Behavior<Command> onBankLearned(BankLearned msg) {
    bankLearned(msg.bankIndex(), msg.msiirAddress());
    return Behaviors.same();
  }

  /** An MSI bank's address is known; PAMU routes MSI writes by it. */
  protected void bankLearned(int bankIndex, long msiirAddress) {}

  // ---------------------------------------------------------------- DMA ownership

  private static int memoryOwnerOf(IommuGroup group) {
    return group.owner() instanceof DmaOwner.User u ? u.vmId() : HostMemory.HOST;
  }

  private Behavior<Command> onClaimDmaOwner(ClaimDmaOwner msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    if (msg.ictxId() < 0) {
      return refuse(msg.replyTo(), Errno.EINVAL, "ictxId %d: negative", msg.ictxId());
    }
    if (msg.vmId() < 1 || msg.vmId() > HostMemory.MAX_OWNER) {
      return refuse(msg.replyTo(), Errno.EINVAL, "vmId %d: not a VM id", msg.vmId());
    }
    IommuGroup group = groups.get(e.group);
    if (group.owner() instanceof DmaOwner.User u
        && u.ictxId() == msg.ictxId()
        && u.vmId() != msg.vmId()) {
      return refuse(msg.replyTo(), Errno.EINVAL,
          "vmId %d: context %d already claims group %d for VM %d", msg.vmId(), msg.ictxId(),
          e.group, u.vmId());
    }
    boolean wasOwned = group.ownerCount() > 0;
    Outcome<Void> claimed = group.claimDmaOwner(e.rid, new DmaOwner.User(msg.ictxId(), msg.vmId()));
    if (!claimed.isOk()) {
      return refuse(msg.replyTo(), claimed);
    }
    ownerChanged(group, wasOwned, e);
    msg.replyTo().tell(new DmaOwnerClaimed(info(e)));
    return Behaviors.same();
  }

  private Behavior<Command> onReleaseDmaOwner(ReleaseDmaOwner msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    IommuGroup group = groups.get(e.group);
    if (!(group.memberOwner(e.rid) instanceof DmaOwner.User u) || u.ictxId() != msg.ictxId()) {
      return refuse(msg.replyTo(), Errno.EINVAL, "rid %s: no claim by context %d (owner %s)",
          rid(e.rid), msg.ictxId(), group.memberOwner(e.rid));
    }
    if (attached(e)) {
      return refuse(msg.replyTo(), Errno.EBUSY, "rid %s: still attached (detach first)",
          rid(e.rid));
    }
    group.releaseDmaOwner(e.rid);
    ownerChanged(group, true, e);
    return done(msg.replyTo());
  }

  /**
   * After {@code changed} was claimed or released: it learns its owner, DMA checks of every
   * member use the group owner's VM, and the MSI banks learn when the group changed hands.
   */
  private void ownerChanged(IommuGroup group, boolean wasOwned, DeviceEntry changed) {
    int owner = memoryOwnerOf(group);
    for (int rid : group.members()) {
      devices[rid].expectedOwner = owner;
    }
    if (group.memberOwner(changed.rid) instanceof DmaOwner.User u) {
      changed.ref.tell(new DeviceActor.OwnerChanged(u.vmId(), u.ictxId()));
    } else {
      changed.ref.tell(new DeviceActor.OwnerChanged(0, 0));
    }
    boolean isOwned = group.ownerCount() > 0;
    if (wasOwned != isOwned) {
      for (ActorRef<MsiBankActor.Command> bank : msiBanks.values()) {
        bank.tell(new MsiBankActor.SetGroupOwner(group.id(), owner));
      }
    }
  }

  /** Whether {@code rid} is claimed by a user (an iommufd context): attaching needs a bind. */
  protected boolean userOwned(DeviceEntry e) {
    return groups.get(e.group).memberOwner(e.rid) instanceof DmaOwner.User;
  }

  protected IommuGroup group(DeviceEntry e) {
    return groups.get(e.group);
  }

  protected List<String> groupSummaries() {
    List<String> out = new ArrayList<>(groups.size());
    for (IommuGroup g : groups.values()) {
      out.add(g.stateSummary());
    }
    return out;
  }

  protected List<Integer> registeredRids() {
    List<Integer> out = new ArrayList<>(deviceCount);
    for (int r = 0; r <= MAX_RID && out.size() < deviceCount; r++) {
      if (devices[r] != null) {
        out.add(r);
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- attach handles

  static long handleKey(int rid, int pasid) {
    return ((long) rid << 32) | (pasid & 0xFFFF_FFFFL);
  }

  /** Key of a page-request group: rid (16 bits), pasid + 1 (21 bits), PRG index (9 bits). */
  static long pageGroupKey(int rid, int pasid, int group) {
    return ((long) rid << 40) | (((long) pasid + 1) & 0x1F_FFFFL) << 9 | (group & 0x1FF);
  }

  protected void setHandle(int rid, int pasid, ActorRef<FaultEvent> sink) {
    setHandle(rid, pasid, sink, 0L);
  }

  /**
   * Installs (or, with a null sink, removes) the fault sink of (rid, pasid) and the token its
   * owner gave this attachment: records raised from now on carry both.
   */
  protected void setHandle(int rid, int pasid, ActorRef<FaultEvent> sink, long token) {
    lastHandleKey = NO_HANDLE_KEY;
    lastHandle = null;
    Handle h = sink == null ? null : new Handle(sink, token);
    if (h == null) {
      handles.remove(handleKey(rid, pasid));
    } else {
      handles.put(handleKey(rid, pasid), h);
    }
    DeviceEntry e = device(rid);
    if (e != null && pasid == FaultRecord.NO_PASID) {
      e.ridHandle = h;
    }
  }

  protected List<String> handleSummaries() {
    List<String> out = new ArrayList<>(handles.size());
    for (long k : new java.util.TreeSet<>(handles.keySet())) {
      out.add(rid((int) (k >>> 32)) + "/" + (int) k);
    }
    return out;
  }

  /**
   * The handle (rid, pasid) goes away or changes domain: its page-request groups still waiting
   * for software are answered INVALID now, as iommufd does when a fault-capable hwpt is detached
   * or replaced, and a later response for them is dropped.
   */
  protected void abortPendingPageGroups(int rid, int pasid) {
    DeviceEntry e = device(rid);
    if (pasid == FaultRecord.NO_PASID) {
      if (e != null && e.ridPending != null) {
        for (int g = 0; g < e.ridPending.length; g++) {
          if (e.ridPending[g] != NOT_PENDING) {
            e.ridPending[g] = NOT_PENDING;
            e.ref.tell(new DeviceActor.PageResponded(pasid, g, PageResponseCode.INVALID));
          }
        }
      }
      return;
    }
    Iterator<Long> it = pendingPageGroups.keySet().iterator();
    while (it.hasNext()) {
      long k = it.next();
      int r = (int) (k >>> 40);
      int p = (int) ((k >>> 9) & 0x1F_FFFFL) - 1;
      if (r == rid && p == pasid) {
        it.remove();
        if (e != null) {
          e.ref.tell(new DeviceActor.PageResponded(p, (int) (k & 0x1FF), PageResponseCode.INVALID));
        }
      }
    }
  }

  private void pendingPut(DeviceEntry e, int pasid, int group, long key, long token) {
    if (pasid == FaultRecord.NO_PASID) {
      if (e.ridPending == null) {
        e.ridPending = new long[PageRequest.MAX_GROUP_ID + 1];
        java.util.Arrays.fill(e.ridPending, NOT_PENDING);
      }
      e.ridPending[group & PageRequest.MAX_GROUP_ID] = token;
    } else {
      pendingPageGroups.put(key, token);
    }
  }

  private long pendingGet(DeviceEntry e, int pasid, int group, long key) {
    if (pasid == FaultRecord.NO_PASID) {
      return e.ridPending == null ? NOT_PENDING : e.ridPending[group & PageRequest.MAX_GROUP_ID];
    }
    Long t = pendingPageGroups.get(key);
    return t == null ? NOT_PENDING : t;
  }

  private void pendingRemove(DeviceEntry e, int pasid, int group, long key) {
    if (pasid == FaultRecord.NO_PASID) {
      e.ridPending[group & PageRequest.MAX_GROUP_ID] = NOT_PENDING;
    } else {
      pendingPageGroups.remove(key);
    }
  }

  // ---------------------------------------------------------------- DMA

  private Behavior<Command> onTranslateBurst(TranslateBurst b) {
    int n = b.iovas().length;
    long[] iovas = b.iovas();
    int[] access = b.access();
    boolean ats = b.atsRequest();
    int rid = b.rid();
    int pasid = b.pasid();
    DeviceEntry dev = device(rid);
    byte[] status = new byte[n];
    long[] hpas = new long[n];
    int[] prot = new int[n];
    byte[] pageShift = new byte[n];
    long now = clock.nanos();
    long latency = 0;
    int completed = 0;
    Translation t = scratch;
    for (int i = 0; i < n; i++) {
      translate(dev, rid, pasid, iovas[i], access[i], ats, now, t);
      if (t.ok()) {
        hpas[i] = t.hpa;
        prot[i] = t.prot;
        pageShift[i] = (byte) t.pageSize.shift();
        completed++;
      } else {
        status[i] = (byte) (t.fault.ordinal() + 1);
        hpas[i] = -1;
        if (!ats) {
          // A failed ATS request is a completion with R=W=0, not a fault record: the device
          // decides (page request or error). Untranslated requests fault at the IOMMU.
          fault(new DmaFault(unitId, rid, pasid, iovas[i], access[i], t.fault,
              now + t.latencyNs + cost.faultReport()));
        }
      }
      if (t.latencyNs > latency) {
        latency = t.latencyNs;
      }
    }
    translations += n;
    translationCounter.increment(n);
    if (!ats && completed > 0) {
      checkDma(dev, rid, pasid, status, hpas, b.lengths(), completed, now + latency);
    }
    b.replyTo().tell(new BurstTranslated(b.burstId(), status, hpas, prot, pageShift, latency));
    return Behaviors.same();
  }

  /** One CheckDma for the completed untranslated accesses of a burst. */
  private void checkDma(
      DeviceEntry dev, int rid, int pasid, byte[] status, long[] hpas, int[] lengths,
      int completed, long timeNs) {
    int owner = dev == null ? HostMemory.HOST : dev.expectedOwner;
    long[] h = hpas;
    int[] l = lengths;
    if (completed < status.length) {
      h = new long[completed];
      l = new int[completed];
      for (int i = 0, k = 0; i < status.length; i++) {
        if (status[i] == 0) {
          h[k] = hpas[i];
          l[k] = lengths[i];
          k++;
        }
      }
    }
    // Arrays are never written after this point, so reply and check may share them.
    memory.tell(new HostMemoryActor.CheckDma(owner, unitId, rid, pasid, h, l, completed, timeNs));
  }

  /** A single completed write (a PAMU MSI write that landed in memory). */
  protected void checkWrite(DeviceEntry dev, int rid, long hpa, int length, long timeNs) {
    int owner = dev == null ? HostMemory.HOST : dev.expectedOwner;
    memory.tell(new HostMemoryActor.CheckDma(owner, unitId, rid, FaultRecord.NO_PASID,
        new long[] {hpa}, new int[] {length}, 1, timeNs));
  }

  /** The handle of (rid, pasid), or null; the last one found is kept until a handle changes. */
  private Handle handle(int rid, int pasid) {
    if (pasid == FaultRecord.NO_PASID) {
      DeviceEntry e = device(rid);
      return e == null ? null : e.ridHandle;
    }
    long key = handleKey(rid, pasid);
    if (key != lastHandleKey) {
      lastHandle = handles.get(key);
      lastHandleKey = key;
    }
    return lastHandle;
  }

  /**
   * An unrecoverable fault, {@code f.timeNs()} being its arrival plus {@code faultReport}:
   * recorded through the unit's fault-recording hardware (queueing included) and published to
   * the attach handle's sink, or kept in the unit's log ({@link FaultPolicy#atUnit}).
   */
  protected void fault(DmaFault f) {
    faults++;
    faultCounter.increment();
    Handle h = handle(f.rid(), f.pasid());
    if (FaultPolicy.atUnit(false, h != null) == FaultPolicy.AtUnit.LOG_UNHANDLED) {
      unhandledFaults++;
      if (faultLog.size() < FAULT_LOG) {
        faultLog.add(f);
      }
      return;
    }
    long service = cost.faultReport();
    long reported = faultReporting.acquire(f.timeNs() - service, service);
    DmaFault record = reported == f.timeNs() ? f
        : new DmaFault(f.unitId(), f.rid(), f.pasid(), f.iova(), f.access(), f.reason(), reported);
    publishedFaults++;
    publishedCounter.increment();
    PublishedFault p = new PublishedFault(h.sink(), h.token(), record, null,
        reported - f.timeNs(), wallNanos.getAsLong());
    if (!faultPipeline.offerFault(p)) {
      // VT-d PFO / SMMUv3 EVTQ overflow: the record is dropped by the hardware, counted here.
      lostIngressFaults++;
      lostIngressFaultCounter.increment();
      warnIfPipelineStopped();
    }
  }

  // ---------------------------------------------------------------- page requests (PRI)

  private Behavior<Command> onReportPageRequest(ReportPageRequest r) {
    pageRequests++;
    pageRequestCounter.increment();
    DeviceEntry e = device(r.rid());
    if (e == null) {
      getContext().getLog().warn("Page request from unregistered rid {} on unit [{}] dropped",
          rid(r.rid()), name);
      return Behaviors.same();
    }
    Handle h = handle(r.rid(), r.pasid());
    if (FaultPolicy.atUnit(true, h != null) == FaultPolicy.AtUnit.ANSWER_INVALID) {
      // No handler: io-pgfault answers the group when its last page arrives; the others are
      // partial and need no answer.
      if (r.lastPage()) {
        e.ref.tell(new DeviceActor.PageResponded(r.pasid(), r.groupId(), PageResponseCode.INVALID));
      }
      return Behaviors.same();
    }
    long now = clock.nanos();
    long reported = pageRequestReporting.acquire(now, cost.pageRequest());
    long groupKey = pageGroupKey(r.rid(), r.pasid(), r.groupId());
    publishedPageRequests++;
    publishedCounter.increment();
    long wall = wallNanos.getAsLong();
    if (!owedDiscardMarkers.isEmpty()) {
      offerDiscardMarkers(wall);
    }
    PublishedFault p = new PublishedFault(h.sink(), h.token(), null,
        new PageRequest(unitId, r.rid(), r.pasid(), r.groupId(), r.address(), r.perm(),
            r.lastPage(), reported),
        reported - now, wall);
    if (!faultPipeline.offerPageRequest(p)) {
      pageRequestIngressOverflowed(e, r);
    } else if (r.lastPage()) {
      // A group awaits software's response once complete; partials of a handle that goes away
      // are dropped unanswered (iopf_queue_remove_device), and the device's later last page is
      // answered then.
      pendingPut(e, r.pasid(), r.groupId(), groupKey, h.token());
    }
    return Behaviors.same();
  }

  /**
   * The page request queue was full (VT-d PRS.PRO, SMMUv3 PRIQ overflow): the request is lost and
   * counted. A lost last page is answered by the unit itself ({@link
   * FaultPolicy#lastPageLostAtIngress}); every sink is owed a marker telling it to drop the unit's
   * partial groups once the queue has room again, as the kernel discards partials when it clears
   * PRO.
   */
  private void pageRequestIngressOverflowed(DeviceEntry e, ReportPageRequest r) {
    lostIngressPageRequests++;
    lostIngressPageRequestCounter.increment();
    warnIfPipelineStopped();
    if (r.lastPage()) {
      ingressLastPagesAnswered++;
      e.ref.tell(new DeviceActor.PageResponded(r.pasid(), r.groupId(),
          FaultPolicy.lastPageLostAtIngress()));
    }
    for (Handle h : handles.values()) {
      owedDiscardMarkers.add(h.sink());
    }
  }

  private boolean stoppedReported;

  /** A stopped pipeline loses everything at the ingress: say so once, loudly. */
  private void warnIfPipelineStopped() {
    if (!stoppedReported && faultPipeline.stopped()) {
      stoppedReported = true;
      getContext().getLog().error("Unit [{}]: fault pipeline stopped; fault records are counted"
          + " lost at the ingress from now on", name);
    }
  }

  /** Offers the owed partials-discarded markers in order, as far as the ingress has room. */
  private void offerDiscardMarkers(long wall) {
    Iterator<ActorRef<FaultEvent>> it = owedDiscardMarkers.iterator();
    while (it.hasNext()) {
      if (!faultPipeline.offerPageRequest(PublishedFault.partialsDiscarded(it.next(), wall))) {
        return;
      }
      it.remove();
    }
  }

  private Behavior<Command> onFaultsAccounted(FaultsAccounted a) {
    batches++;
    settledRecords += a.records();
    deliveredFaults += a.delivered();
    lostQueueFull += a.lostQueueFull();
    lostHandleGone += a.lostHandleGone();
    lostUnacknowledged += a.lostUnacknowledged();
    if (a.lostQueueFull() > 0) {
      lostQueueFullCounter.increment(a.lostQueueFull());
    }
    if (a.lostHandleGone() > 0) {
      lostHandleGoneCounter.increment(a.lostHandleGone());
    }
    if (a.lostUnacknowledged() > 0) {
      lostUnacknowledgedCounter.increment(a.lostUnacknowledged());
      getContext().getLog().warn("Unit [{}]: {} fault records never acknowledged by their fd",
          name, a.lostUnacknowledged());
    }
    faultIngressGauge.update(faultPipeline.faultIngressDepth());
    pageRequestIngressGauge.update(faultPipeline.pageRequestIngressDepth());
    return Behaviors.same();
  }

  private Behavior<Command> onGetFaultStats(GetFaultStats msg) {
    long published = publishedFaults + publishedPageRequests;
    long inFlight = published - lostIngressFaults - lostIngressPageRequests - settledRecords;
    msg.replyTo().tell(new FaultPipelineStats(unitId, name, publishedFaults, publishedPageRequests,
        lostIngressFaults, lostIngressPageRequests, deliveredFaults, lostQueueFull, lostHandleGone,
        lostUnacknowledged, inFlight, batches, ingressLastPagesAnswered,
        faultPipeline.faultIngressDepth(), faultPipeline.pageRequestIngressDepth()));
    return Behaviors.same();
  }

  private Behavior<Command> onRespondPageRequest(RespondPageRequest r) {
    DeviceEntry e = device(r.rid());
    long key = pageGroupKey(r.rid(), r.pasid(), r.groupId());
    long token = e == null ? NOT_PENDING : pendingGet(e, r.pasid(), r.groupId(), key);
    if (token == NOT_PENDING || (r.handleToken() != 0 && r.handleToken() != token)) {
      // Answered already (detach, replace, an overflowed ingress) or an older group of the index:
      // counted, not logged (a storm of them would flood the log).
      staleResponses++;
      return Behaviors.same();
    }
    pendingRemove(e, r.pasid(), r.groupId(), key);
    // The page-group response is one descriptor on the queue; the model keeps no ring slot for it.
    pageResponses++;
    e.ref.tell(new DeviceActor.PageResponded(r.pasid(), r.groupId(), r.code()));
    return Behaviors.same();
  }

  // ---------------------------------------------------------------- invalidation acks, stats

  private Behavior<Command> onAtcInvalidationAcked(AtcInvalidationAcked msg) {
    atcAcknowledged(msg.rid(), msg.token());
    return Behaviors.same();
  }

  /** A device acknowledged an ATC invalidation. */
  protected abstract void atcAcknowledged(int rid, long token);

  private Behavior<Command> onGetStats(GetStats msg) {
    msg.replyTo().tell(stats(new Common(translations, faults, unhandledFaults,
        List.copyOf(faultLog), pageRequests, pageResponses, staleResponses, msiWrites,
        msiUnisolated)));
    return Behaviors.same();
  }
}
