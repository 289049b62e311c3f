package io.iommulab.actors.unit;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor.AtcInvalidationAcked;
import io.iommulab.actors.unit.IommuUnitActor.BankLearned;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.actors.unit.IommuUnitActor.ClaimDmaOwner;
import io.iommulab.actors.unit.IommuUnitActor.Command;
import io.iommulab.actors.unit.IommuUnitActor.Correlated;
import io.iommulab.actors.unit.IommuUnitActor.DmaFaulted;
import io.iommulab.actors.unit.IommuUnitActor.DmaOwnerClaimed;
import io.iommulab.actors.unit.IommuUnitActor.Done;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.GetStats;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.PageRequested;
import io.iommulab.actors.unit.IommuUnitActor.PageResponseCode;
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
import io.iommulab.config.Rids;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
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
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import kamon.Kamon;
import kamon.metric.Counter;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.ReceiveBuilder;

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
 * <p>Metrics (Kamon, tagged by unit name): {@code iommulab.unit.translations},
 * {@code iommulab.unit.faults}, {@code iommulab.unit.page-requests}, {@code iommulab.unit.msi-writes}.
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
      Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks) {}

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
  private final Map<Long, ActorRef<FaultEvent>> handles = new HashMap<>();
  private final Set<Long> pendingPageGroups = new HashSet<>();
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

  /** Handlers every kind shares; the kind adds its own and builds. */
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
        .onSignal(Terminated.class, this::onTerminated);
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

  // ---------------------------------------------------------------- replies

  protected Behavior<Command> refuse(
      ActorRef<UnitReply> replyTo, Errno errno, String format, Object... args) {
    replyTo.tell(new Refused(errno, args.length == 0 ? format : String.format(format, args)));
    return Behaviors.same();
  }

  protected Behavior<Command> refuse(ActorRef<UnitReply> replyTo, Outcome<?> err) {
    Outcome.Err<?> e = (Outcome.Err<?>) err;
    replyTo.tell(new Refused(e.errno(), e.message()));
    return Behaviors.same();
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
      return refuse(msg.replyTo(), Errno.ENODEV, "rid %s: not registered on unit %s",
          rid(msg.rid()), name);
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
      return refuse(msg.replyTo(), Errno.ENODEV, "rid %s: not registered on unit %s",
          rid(msg.rid()), name);
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
      return refuse(msg.replyTo(), Errno.ENODEV, "rid %s: not registered on unit %s",
          rid(msg.rid()), name);
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
    if (sink == null) {
      handles.remove(handleKey(rid, pasid));
    } else {
      handles.put(handleKey(rid, pasid), sink);
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
    Iterator<Long> it = pendingPageGroups.iterator();
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

  /** Routes an unrecoverable fault to the attach handle's sink, or keeps it in the unit's log. */
  protected void fault(DmaFault f) {
    faults++;
    faultCounter.increment();
    ActorRef<FaultEvent> sink = handles.get(handleKey(f.rid(), f.pasid()));
    if (sink != null) {
      sink.tell(new DmaFaulted(f));
      return;
    }
    unhandledFaults++;
    if (faultLog.size() < FAULT_LOG) {
      faultLog.add(f);
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
    ActorRef<FaultEvent> sink = handles.get(handleKey(r.rid(), r.pasid()));
    if (sink == null) {
      // No handler: io-pgfault answers the group when its last page arrives; the others are
      // partial and need no answer.
      if (r.lastPage()) {
        e.ref.tell(new DeviceActor.PageResponded(r.pasid(), r.groupId(), PageResponseCode.INVALID));
      }
      return Behaviors.same();
    }
    pendingPageGroups.add(pageGroupKey(r.rid(), r.pasid(), r.groupId()));
    sink.tell(new PageRequested(new PageRequest(unitId, r.rid(), r.pasid(), r.groupId(),
        r.address(), r.perm(), r.lastPage(), clock.nanos() + cost.pageRequest())));
    return Behaviors.same();
  }

  private Behavior<Command> onRespondPageRequest(RespondPageRequest r) {
    DeviceEntry e = device(r.rid());
    if (e == null || !pendingPageGroups.remove(pageGroupKey(r.rid(), r.pasid(), r.groupId()))) {
      staleResponses++;
      getContext().getLog().debug("Stale page response rid {} pasid {} group {} dropped",
          rid(r.rid()), r.pasid(), r.groupId());
      return Behaviors.same();
    }
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
