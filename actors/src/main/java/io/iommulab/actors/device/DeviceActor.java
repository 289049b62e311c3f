package io.iommulab.actors.device;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.BurstTranslated;
import io.iommulab.config.DeviceSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cache.DeviceAtc;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.pci.DmaOwner;
import io.iommulab.hardware.pci.PciDevice;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import kamon.Kamon;
import kamon.metric.Counter;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One PCI function: owns its {@link PciDevice} model — DMA ownership as the unit reports it, bus
 * mastering, ATS with its ATC, PASID, PRI (outstanding page requests and PRG indexes), the MSI
 * vector table (plus the message address of each vector) — and the DMA bursts in flight. It
 * issues DMA through its IOMMU unit, has completed translated accesses checked by the host-memory
 * actor, and never reads another actor's state.
 *
 * <p>At start the function's capabilities are enabled as the VT-d driver does at probe: ATS when
 * capable (the ATC exists from then on), PASID when {@code pasidBits > 0}, PRI when capable with
 * the capability's whole request allocation.
 *
 * <p>A {@link DmaBurst} is one set of TLPs (each access within one 4 KiB page, PCIe's rule for a
 * request). Without ATS it is one untranslated {@link IommuUnitActor.TranslateBurst}: the unit
 * translates, checks and faults. With ATS the ATC is looked up first; hits are performed at once
 * (one {@link HostMemoryActor.CheckDma}), misses go in one ATS translation request burst whose
 * results are cached and performed (one more CheckDma). A miss the unit answers not-present or
 * permission-denied on a PRI-enabled function raises page requests: the faulting pages are
 * grouped in PRGs of at most the outstanding-request allocation, issued when credits and a PRG
 * index are free (queued otherwise), and retried once after a SUCCESS response; INVALID or
 * FAILURE fail those accesses ({@link #STATUS_PAGE_REQUEST_FAILED}). {@link DmaCompleted} goes out
 * when every access of the burst has completed or failed.
 *
 * <p>Quiesce (hot-unplug) stops DMA: accesses still waiting complete {@link #STATUS_ABORTED}, the
 * ATC is dropped, and every later burst completes ABORTED until {@link Resume}. Device-TLB
 * invalidations are applied and acknowledged in any state. A function without a DMA owner (not
 * bound) cannot master DMA: its bursts complete ABORTED.
 *
 * <p>Metrics (Kamon, tagged by unit name): {@code iommulab.device.dma-accesses},
 * {@code iommulab.device.atc-hits}, {@code iommulab.device.page-requests}.
 */
public final class DeviceActor extends AbstractBehavior<DeviceActor.Command> {

  /**
   * The function described by {@code settings}, behind unit {@code unitId} ({@code unit}). The
   * guardian registers it with the unit ({@code RegisterDevice}) after spawning it. Modeled ATC
   * hit costs are those of {@link CostModel#defaults()}.
   */
  public static Behavior<Command> create(
      DeviceSettings settings,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      long seed) {
    return create(settings, unitId, unit, memory, clock, seed, CostModel.defaults());
  }

  /** As {@link #create(DeviceSettings, int, ActorRef, ActorRef, ModeledClock, long)}, with costs. */
  public static Behavior<Command> create(
      DeviceSettings settings,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      long seed,
      CostModel cost) {
    return Behaviors.setup(
        context -> new DeviceActor(context, settings, unitId, unit, memory, clock, seed, cost));
  }

  /** {@link DmaCompleted#status()} value of a completed access. */
  public static final byte STATUS_OK = 0;

  /** Status of an access abandoned because the device was quiesced (unplug) or not bound. */
  public static final byte STATUS_ABORTED = (byte) 0x7f;

  /** Status of an access whose page request was answered INVALID or FAILURE. */
  public static final byte STATUS_PAGE_REQUEST_FAILED = (byte) 0x7e;

  public sealed interface Command extends CborSerializable
      permits DmaBurst,
          AtcInvalidate,
          PageResponded,
          OwnerChanged,
          RaiseMsi,
          ProgramMsiVector,
          Quiesce,
          Resume,
          GetState,
          UnitTranslated {}

  /**
   * The guest driver has programmed the function to perform {@code iovas.length} accesses (with
   * {@code pasid}, or {@link IommuUnitActor#NO_PASID}): {@code lengths[i]} bytes at {@code iovas[i]}
   * with {@code access[i]} (Access bits). An ATS-enabled function looks up its ATC first and sends
   * ATS translation requests for misses; others send untranslated requests. A faulting access on a
   * PRI-enabled function raises a page request and is retried after a SUCCESS response. Replies
   * {@link DmaCompleted} once every access has completed or failed. The arrays belong to the
   * message. Each access is one TLP: 1 to 4096 bytes that do not cross a 4 KiB boundary, with a
   * non-empty subset of READ|WRITE|EXEC|PRIV (a malformed burst is a bug of its builder and is
   * refused at construction).
   */
  public record DmaBurst(
      int pasid,
      long[] iovas,
      int[] lengths,
      int[] access,
      long tag,
      ActorRef<DmaCompleted> replyTo)
      implements Command {
    public DmaBurst {
      if (iovas == null || lengths == null || access == null
          || lengths.length != iovas.length || access.length != iovas.length) {
        throw new IllegalArgumentException("DmaBurst: iovas, lengths, access of one length");
      }
      int bits = Access.READ | Access.WRITE | Access.EXEC | Access.PRIV;
      for (int i = 0; i < iovas.length; i++) {
        long offset = iovas[i] & 0xFFF;
        if (lengths[i] < 1 || offset + lengths[i] > 4096) {
          throw new IllegalArgumentException(String.format(
              "DmaBurst access %d: %d bytes at 0x%x cross a 4 KiB boundary or are empty", i,
              lengths[i], iovas[i]));
        }
        if (access[i] == 0 || (access[i] & ~bits) != 0) {
          throw new IllegalArgumentException("DmaBurst access " + i + ": access bits " + access[i]);
        }
      }
    }
  }

  /**
   * Device-TLB invalidation from the IOMMU (ATC_INV / VT-d dev-IOTLB descriptor): drop ATC entries
   * of {@code pasid} (or, with NO_PASID, every PASID) in the 2^sizeOrder-page span at
   * {@code address}, then acknowledge {@code token} to {@code replyTo}.
   */
  public record AtcInvalidate(
      int pasid,
      long address,
      int sizeOrder,
      long token,
      ActorRef<IommuUnitActor.Command> replyTo)
      implements Command {}

  /** A page-group response for PRG {@code groupId}: retry (SUCCESS) or fail its accesses. */
  public record PageResponded(int pasid, int groupId, IommuUnitActor.PageResponseCode code)
      implements Command {}

  /**
   * The function's DMA owner changed (bind / unbind by an fd): {@code vmId} 0 for none. Translated
   * (ATS) DMA is checked against this owner's frames. Gaining an owner sets bus mastering (the
   * owner's driver enables it); losing it clears it.
   */
  public record OwnerChanged(int vmId, int ictxId) implements Command {}

  /**
   * The guest raises MSI vector {@code vector}: the function writes its MSI message (the address
   * and data programmed with {@link ProgramMsiVector}) to its unit. An unprogrammed vector, or a
   * function that cannot master DMA, writes nothing (counted as dropped).
   */
  public record RaiseMsi(int vector) implements Command {}

  /**
   * The owner's driver programs MSI vector {@code vector}: message {@code address} and
   * {@code data}, aimed at MSI bank {@code bank} ({@code PciDevice.MSI_REMAPPED} (-1) for an
   * interrupt-remapping unit). Replies {@link MsiVectorProgrammed} or {@link MsiRefused} (EINVAL
   * for a vector outside the table or a bad bank).
   */
  public record ProgramMsiVector(
      int vector, int bank, long address, int data, ActorRef<MsiReply> replyTo)
      implements Command {}

  /**
   * Hot-unplug: stop issuing DMA, abort accesses still waiting (STATUS_ABORTED), drop the ATC, and
   * reply {@link Quiesced} when nothing is in flight.
   */
  public record Quiesce(ActorRef<Quiesced> replyTo) implements Command {}

  /** Replug: the function may master DMA again. */
  public record Resume() implements Command {}

  public record GetState(ActorRef<DeviceState> replyTo) implements Command {}

  /** The unit answered a translation burst (adapted from {@link BurstTranslated}). */
  private record UnitTranslated(BurstTranslated result) implements Command {}

  /**
   * Outcome of a {@link DmaBurst}: {@code status[i]} is {@link #STATUS_OK}, a fault reason
   * ({@code FaultReason.ordinal() + 1}), {@link #STATUS_ABORTED} or {@link
   * #STATUS_PAGE_REQUEST_FAILED}. {@code modeledLatencyNs}: the model's charge from issue to the
   * last completion — the slowest translation of the first attempt (IOTLB or walk, ATS round trip,
   * the unit's queueing) and, when accesses went through page requests, the PRI delivery and the
   * slowest retry. The guest's own time to resolve a page request and the emulator's scheduling
   * are not modeled time: the caller measures those on its own clock.
   */
  public record DmaCompleted(
      long tag, byte[] status, long modeledLatencyNs, int pageRequests, int atcHits)
      implements CborSerializable {}

  public record Quiesced(String device, int rid) implements CborSerializable {}

  public sealed interface MsiReply extends CborSerializable
      permits MsiVectorProgrammed, MsiRefused {}

  public record MsiVectorProgrammed(int vector) implements MsiReply {}

  public record MsiRefused(Errno errno, String message) implements MsiReply {}

  /**
   * The function's state. {@code atcEntries}: entries cached now; {@code pageRequests}: page
   * requests issued so far; {@code msiDropped}: MSIs raised that wrote nothing.
   */
  public record DeviceState(
      String name,
      int rid,
      int ownerVmId,
      boolean quiesced,
      boolean atsEnabled,
      int atcEntries,
      int outstandingPageRequests,
      long dmaAccesses,
      long dmaFaults,
      long atcHits,
      long atcInvalidations,
      boolean priEnabled,
      long pageRequests,
      long msiRaised,
      long msiDropped,
      int burstsInFlight)
      implements CborSerializable {}

  // ================================================================ implementation

  /** Status of an access not yet resolved (never leaves the actor). */
  private static final byte PENDING = (byte) 0x7d;

  private static final FaultReason[] REASONS = FaultReason.values();

  /** One DmaBurst in flight. */
  private static final class Burst {
    final DmaBurst msg;
    final byte[] status;
    int unresolved;
    int pageRequests;
    int atcHits;
    /** Modeled: the slowest answer of the first attempt. */
    long latency;
    /** Modeled: the slowest answer of a retry after page requests. */
    long retryLatency;
    boolean done;

    Burst(DmaBurst msg) {
      this.msg = msg;
      this.status = new byte[msg.iovas().length];
      this.unresolved = status.length;
      java.util.Arrays.fill(status, PENDING);
    }
  }

  /**
   * A translation burst sent to the unit: which accesses of which burst ({@code accesses[j]} is
   * the burst index of request j; null when request j is access j), and which attempt.
   */
  private record Sent(Burst burst, int[] accesses, boolean ats, boolean retry) {}

  /** One page-request group to issue: its pages, their permissions, the accesses waiting on it. */
  private static final class PriJob {
    final Burst burst;
    final long[] pages;
    final int[] perms;
    final int[] accesses;

    PriJob(Burst burst, long[] pages, int[] perms, int[] accesses) {
      this.burst = burst;
      this.pages = pages;
      this.perms = perms;
      this.accesses = accesses;
    }
  }

  private final PciDevice device;
  private final int unitId;
  private final ActorRef<IommuUnitActor.Command> unit;
  private final ActorRef<HostMemoryActor.Command> memory;
  private final ModeledClock clock;
  private final CostModel cost;
  private final ActorRef<BurstTranslated> translated;
  private final long[] msiAddress;

  private final Map<Long, Sent> sent = new HashMap<>();
  private final Map<Integer, PriJob> prgJobs = new HashMap<>();
  private final ArrayDeque<PriJob> priQueue = new ArrayDeque<>();
  /** Bursts not yet completed (identity: a burst is its own key). */
  private final Set<Burst> inFlight = new LinkedHashSet<>();
  private final Translation scratch = new Translation();
  private long nextBurstId = 1;
  private boolean quiesced;

  private long dmaAccesses;
  private long dmaFaults;
  private long atcHits;
  private long atcInvalidations;
  private long pageRequests;
  private long msiRaised;
  private long msiDropped;

  private final Counter accessCounter;
  private final Counter atcHitCounter;
  private final Counter pageRequestCounter;

  private DeviceActor(
      ActorContext<Command> context,
      DeviceSettings settings,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      long seed,
      CostModel cost) {
    super(context);
    this.device = new PciDevice(settings, unitId, seed);
    this.unitId = unitId;
    this.unit = unit;
    this.memory = memory;
    this.clock = clock;
    this.cost = cost;
    this.translated = context.messageAdapter(BurstTranslated.class, UnitTranslated::new);
    this.msiAddress = new long[device.msiVectors()];
    if (device.atsCapable()) {
      expectOk(device.enableAts());
    }
    if (device.pasidBits() > 0) {
      expectOk(device.enablePasid());
    }
    if (device.priCapable()) {
      expectOk(device.enablePri(device.priCapacity()));
    }
    this.accessCounter = Kamon.counter("iommulab.device.dma-accesses").withTag("unit", settings.unit());
    this.atcHitCounter = Kamon.counter("iommulab.device.atc-hits").withTag("unit", settings.unit());
    this.pageRequestCounter =
        Kamon.counter("iommulab.device.page-requests").withTag("unit", settings.unit());
  }

  private static void expectOk(Outcome<Void> o) {
    if (!o.isOk()) {
      throw new IllegalStateException("capability enable at probe failed: " + o);
    }
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(DmaBurst.class, this::onDmaBurst)
        .onMessage(UnitTranslated.class, this::onUnitTranslated)
        .onMessage(AtcInvalidate.class, this::onAtcInvalidate)
        .onMessage(PageResponded.class, this::onPageResponded)
        .onMessage(OwnerChanged.class, this::onOwnerChanged)
        .onMessage(RaiseMsi.class, this::onRaiseMsi)
        .onMessage(ProgramMsiVector.class, this::onProgramMsiVector)
        .onMessage(Quiesce.class, this::onQuiesce)
        .onMessage(Resume.class, this::onResume)
        .onMessage(GetState.class, this::onGetState)
        .build();
  }

  // ---------------------------------------------------------------- DMA

  private Behavior<Command> onDmaBurst(DmaBurst b) {
    int n = b.iovas().length;
    dmaAccesses += n;
    accessCounter.increment(n);
    if (quiesced || !device.canMasterDma() || !device.checkPasid(b.pasid()).isOk()) {
      byte[] status = new byte[n];
      java.util.Arrays.fill(status, STATUS_ABORTED);
      b.replyTo().tell(new DmaCompleted(b.tag(), status, 0, 0, 0));
      return Behaviors.same();
    }
    Burst burst = new Burst(b);
    if (n == 0) {
      complete(burst);
      return Behaviors.same();
    }
    inFlight.add(burst);
    if (!device.atsEnabled()) {
      // The unit translates, checks and faults the untranslated requests; the arrays are shared.
      send(burst, null, b.iovas(), b.lengths(), b.access(), false, false);
      return Behaviors.same();
    }
    DeviceAtc atc = device.atc();
    Translation t = scratch;
    int hits = 0;
    long[] hitHpa = null;
    int[] hitLen = null;
    int[] misses = null;
    int missCount = 0;
    for (int i = 0; i < n; i++) {
      if (atc.lookup(b.pasid(), b.iovas()[i], t.reset()) && Access.permits(t.prot, b.access()[i])) {
        if (hitHpa == null) {
          hitHpa = new long[n];
          hitLen = new int[n];
        }
        hitHpa[hits] = t.hpa;
        hitLen[hits] = b.lengths()[i];
        hits++;
        burst.status[i] = STATUS_OK;
      } else {
        if (misses == null) {
          misses = new int[n];
        }
        misses[missCount++] = i;
      }
    }
    if (hits > 0) {
      burst.atcHits = hits;
      burst.unresolved -= hits;
      burst.latency = cost.atcHit();
      atcHits += hits;
      atcHitCounter.increment(hits);
      // Performed now: a later invalidation must not turn these into stale accesses.
      perform(b.pasid(), hitHpa, hitLen, hits);
    }
    if (missCount == 0) {
      complete(burst);
    } else if (missCount == n) {
      // A cold ATC: the request carries the burst's own arrays.
      send(burst, null, b.iovas(), b.lengths(), b.access(), true, false);
    } else {
      requestTranslations(burst, java.util.Arrays.copyOf(misses, missCount), false);
    }
    return Behaviors.same();
  }

  /** One ATS translation request burst for {@code accesses} of {@code burst}. */
  private void requestTranslations(Burst burst, int[] accesses, boolean retry) {
    DmaBurst b = burst.msg;
    int k = accesses.length;
    long[] iovas = new long[k];
    int[] lengths = new int[k];
    int[] access = new int[k];
    for (int j = 0; j < k; j++) {
      iovas[j] = b.iovas()[accesses[j]];
      lengths[j] = b.lengths()[accesses[j]];
      access[j] = b.access()[accesses[j]];
    }
    send(burst, accesses, iovas, lengths, access, true, retry);
  }

  private void send(
      Burst burst, int[] accesses, long[] iovas, int[] lengths, int[] access, boolean ats,
      boolean retry) {
    long requestId = nextBurstId++;
    sent.put(requestId, new Sent(burst, accesses, ats, retry));
    unit.tell(new IommuUnitActor.TranslateBurst(device.rid(), burst.msg.pasid(), iovas, lengths,
        access, ats, requestId, translated));
  }

  private Behavior<Command> onUnitTranslated(UnitTranslated msg) {
    BurstTranslated r = msg.result();
    Sent s = sent.remove(r.burstId());
    if (s == null || s.burst().done) {
      // Answered after a quiesce aborted the burst.
      return Behaviors.same();
    }
    Burst burst = s.burst();
    if (s.retry()) {
      burst.retryLatency = Math.max(burst.retryLatency, r.modeledLatencyNs());
    } else {
      burst.latency = Math.max(burst.latency, r.modeledLatencyNs());
    }
    byte[] status = r.status();
    if (!s.ats()) {
      for (int j = 0; j < status.length; j++) {
        burst.status[j] = status[j];
        if (status[j] != STATUS_OK) {
          dmaFaults++;
        }
      }
      burst.unresolved = 0;
      complete(burst);
      return Behaviors.same();
    }
    int[] accesses = s.accesses();
    DeviceAtc atc = device.atc();
    int pasid = burst.msg.pasid();
    int okCount = 0;
    for (byte st : status) {
      if (st == STATUS_OK) {
        okCount++;
      }
    }
    long[] hpa = okCount == 0 ? null : new long[okCount];
    int[] len = okCount == 0 ? null : new int[okCount];
    int[] faulted = null;
    int faultCount = 0;
    for (int j = 0, k = 0; j < status.length; j++) {
      int i = accesses == null ? j : accesses[j];
      if (status[j] == STATUS_OK) {
        long iova = burst.msg.iovas()[i];
        atc.insert(pasid, iova, r.hpas()[j], pageSize(r.pageShift()[j]), r.prot()[j]);
        hpa[k] = r.hpas()[j];
        len[k] = burst.msg.lengths()[i];
        k++;
        burst.status[i] = STATUS_OK;
        burst.unresolved--;
      } else if (!s.retry() && device.priEnabled() && pageRequestable(status[j])) {
        if (faulted == null) {
          faulted = new int[status.length];
        }
        faulted[faultCount++] = i;
      } else {
        burst.status[i] = status[j];
        burst.unresolved--;
        dmaFaults++;
      }
    }
    if (okCount > 0) {
      perform(pasid, hpa, len, okCount);
    }
    if (faultCount > 0) {
      queuePageRequests(burst, java.util.Arrays.copyOf(faulted, faultCount));
      pumpPageRequests();
    }
    if (burst.unresolved == 0) {
      complete(burst);
    }
    return Behaviors.same();
  }

  private static PageSize pageSize(byte shift) {
    for (PageSize p : PageSize.values()) {
      if (p.shift() == shift) {
        return p;
      }
    }
    throw new IllegalStateException("no page size of shift " + shift);
  }

  /** What a page request can fix: a missing or too weak mapping (PCIe PRI, io-pgfault). */
  private static boolean pageRequestable(byte status) {
    FaultReason r = REASONS[status - 1];
    return r == FaultReason.NOT_PRESENT
        || r == FaultReason.STAGE2_NOT_PRESENT
        || r == FaultReason.READ_DENIED
        || r == FaultReason.WRITE_DENIED;
  }

  /** The accesses reached memory: one check against the function's owner. */
  private void perform(int pasid, long[] hpas, int[] lengths, int count) {
    memory.tell(new HostMemoryActor.CheckDma(device.expectedMemoryOwner(), unitId, device.rid(),
        pasid, hpas, lengths, count, clock.nanos()));
  }

  private void complete(Burst burst) {
    if (burst.done) {
      return;
    }
    burst.done = true;
    inFlight.remove(burst);
    long latency = burst.latency
        + (burst.pageRequests > 0 ? cost.pageRequest() + burst.retryLatency : 0);
    burst.msg.replyTo().tell(
        new DmaCompleted(burst.msg.tag(), burst.status, latency, burst.pageRequests, burst.atcHits));
  }

  // ---------------------------------------------------------------- page requests (PRI)

  /**
   * Groups the faulting accesses' pages (one request per distinct page, permissions merged) into
   * jobs of at most the outstanding-request allocation, each to become one PRG.
   */
  private void queuePageRequests(Burst burst, int[] accesses) {
    DmaBurst b = burst.msg;
    long[] pages = new long[accesses.length];
    int[] perms = new int[accesses.length];
    int[] pageOf = new int[accesses.length];
    int distinct = 0;
    for (int a = 0; a < accesses.length; a++) {
      int i = accesses[a];
      long page = b.iovas()[i] & ~0xFFFL;
      int p = 0;
      while (p < distinct && pages[p] != page) {
        p++;
      }
      if (p == distinct) {
        pages[distinct++] = page;
      }
      perms[p] |= b.access()[i];
      pageOf[a] = p;
    }
    int chunk = Math.max(1, device.priAllocation());
    for (int from = 0; from < distinct; from += chunk) {
      int to = Math.min(distinct, from + chunk);
      int waiting = 0;
      for (int a = 0; a < accesses.length; a++) {
        if (pageOf[a] >= from && pageOf[a] < to) {
          waiting++;
        }
      }
      int[] mine = new int[waiting];
      for (int a = 0, k = 0; a < accesses.length; a++) {
        if (pageOf[a] >= from && pageOf[a] < to) {
          mine[k++] = accesses[a];
        }
      }
      priQueue.add(new PriJob(burst,
          java.util.Arrays.copyOfRange(pages, from, to),
          java.util.Arrays.copyOfRange(perms, from, to), mine));
    }
  }

  /** Issues queued groups while credits and PRG indexes last (PRG_WAIT: the rest waits). */
  private void pumpPageRequests() {
    while (!priQueue.isEmpty()) {
      PriJob job = priQueue.peek();
      if (job.burst.done) {
        priQueue.poll();
        continue;
      }
      if (device.priAllocation() - device.priOutstanding() < job.pages.length) {
        return;
      }
      int prg = device.openPageRequestGroup();
      if (prg == PciDevice.PRG_WAIT) {
        return;
      }
      priQueue.poll();
      if (prg == PciDevice.PRG_STOPPED) {
        fail(job, STATUS_PAGE_REQUEST_FAILED);
        continue;
      }
      int pasid = job.burst.msg.pasid();
      for (int k = 0; k < job.pages.length; k++) {
        PciDevice.PriIssue issued = device.issuePageRequest(prg);
        if (issued != PciDevice.PriIssue.ISSUED) {
          throw new IllegalStateException("page request refused with credits counted: " + issued);
        }
        unit.tell(new IommuUnitActor.ReportPageRequest(device.rid(), pasid, prg, job.pages[k],
            job.perms[k], k == job.pages.length - 1));
      }
      job.burst.pageRequests += job.pages.length;
      pageRequests += job.pages.length;
      pageRequestCounter.increment(job.pages.length);
      prgJobs.put(prg, job);
    }
  }

  private void fail(PriJob job, byte status) {
    for (int i : job.accesses) {
      job.burst.status[i] = status;
      job.burst.unresolved--;
      dmaFaults++;
    }
    if (job.burst.unresolved == 0) {
      complete(job.burst);
    }
  }

  private Behavior<Command> onPageResponded(PageResponded msg) {
    PciDevice.PriResponse response = switch (msg.code()) {
      case SUCCESS -> PciDevice.PriResponse.SUCCESS;
      case INVALID -> PciDevice.PriResponse.INVALID_REQUEST;
      case FAILURE -> PciDevice.PriResponse.RESPONSE_FAILURE;
    };
    if (device.completePageRequestGroup(msg.groupId(), response) < 0) {
      getContext().getLog().warn("{}: response for PRG {} not outstanding (UPRGI)", device.name(),
          msg.groupId());
      return Behaviors.same();
    }
    PriJob job = prgJobs.remove(msg.groupId());
    if (job != null && !job.burst.done) {
      if (msg.code() == IommuUnitActor.PageResponseCode.SUCCESS) {
        requestTranslations(job.burst, job.accesses, true);
      } else {
        fail(job, STATUS_PAGE_REQUEST_FAILED);
      }
    }
    pumpPageRequests();
    return Behaviors.same();
  }

  // ---------------------------------------------------------------- ATC, owner, MSI

  private Behavior<Command> onAtcInvalidate(AtcInvalidate msg) {
    if (device.hasAtc()) {
      device.atc().invalidate(msg.pasid(), msg.address(),
          Math.min(msg.sizeOrder(), DeviceAtc.WHOLE_SPACE_ORDER));
    }
    atcInvalidations++;
    msg.replyTo().tell(new IommuUnitActor.AtcInvalidationAcked(device.rid(), msg.token()));
    return Behaviors.same();
  }

  private Behavior<Command> onOwnerChanged(OwnerChanged msg) {
    if (msg.vmId() > 0) {
      device.setOwner(new DmaOwner.User(msg.ictxId(), msg.vmId()));
      device.setBusMaster(true);
    } else {
      device.setOwner(DmaOwner.NONE);
    }
    return Behaviors.same();
  }

  private Behavior<Command> onProgramMsiVector(ProgramMsiVector msg) {
    Outcome<Void> r = device.programMsiVector(msg.vector(), msg.bank(), msg.data());
    if (r instanceof Outcome.Err<Void> e) {
      msg.replyTo().tell(new MsiRefused(e.errno(), e.message()));
      return Behaviors.same();
    }
    msiAddress[msg.vector()] = msg.address();
    msg.replyTo().tell(new MsiVectorProgrammed(msg.vector()));
    return Behaviors.same();
  }

  private Behavior<Command> onRaiseMsi(RaiseMsi msg) {
    msiRaised++;
    if (quiesced || !device.canMasterDma() || msg.vector() < 0
        || msg.vector() >= device.msiVectors() || !device.msiProgrammed(msg.vector())) {
      msiDropped++;
      return Behaviors.same();
    }
    unit.tell(new IommuUnitActor.MsiWrite(device.rid(), msiAddress[msg.vector()],
        device.msiData(msg.vector())));
    return Behaviors.same();
  }

  // ---------------------------------------------------------------- hotplug, state

  private Behavior<Command> onQuiesce(Quiesce msg) {
    quiesced = true;
    device.setBusMaster(false);
    priQueue.clear();
    prgJobs.clear();
    sent.clear();
    Iterator<Burst> it = new java.util.ArrayList<>(inFlight).iterator();
    while (it.hasNext()) {
      Burst b = it.next();
      for (int i = 0; i < b.status.length; i++) {
        if (b.status[i] == PENDING) {
          b.status[i] = STATUS_ABORTED;
        }
      }
      b.unresolved = 0;
      complete(b);
    }
    if (device.hasAtc()) {
      device.atc().invalidateAll();
    }
    msg.replyTo().tell(new Quiesced(device.name(), device.rid()));
    return Behaviors.same();
  }

  private Behavior<Command> onResume(Resume msg) {
    quiesced = false;
    device.setBusMaster(device.dmaOwner() != DmaOwner.NONE);
    return Behaviors.same();
  }

  private Behavior<Command> onGetState(GetState msg) {
    int owner = device.dmaOwner() instanceof DmaOwner.User u ? u.vmId() : 0;
    msg.replyTo().tell(
        new DeviceState(
            device.name(),
            device.rid(),
            owner,
            quiesced,
            device.atsEnabled(),
            device.hasAtc() ? device.atc().size() : 0,
            device.priOutstanding(),
            dmaAccesses,
            dmaFaults,
            atcHits,
            atcInvalidations,
            device.priEnabled(),
            pageRequests,
            msiRaised,
            msiDropped,
            inFlight.size()));
    return Behaviors.same();
  }
}
