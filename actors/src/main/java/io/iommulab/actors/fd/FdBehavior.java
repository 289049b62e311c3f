package io.iommulab.actors.fd;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor.Command;
import io.iommulab.actors.fd.IoasidFdActor.FaultEventReceived;
import io.iommulab.actors.fd.IoasidFdActor.UnitAnswered;
import io.iommulab.actors.fd.IoasidFdActor.Reply;
import io.iommulab.actors.fd.model.Accounting;
import io.iommulab.actors.fd.model.Area;
import io.iommulab.actors.fd.model.Device;
import io.iommulab.actors.fd.model.Fault;
import io.iommulab.actors.fd.model.FdObject;
import io.iommulab.actors.fd.model.HwPagetable;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.IommufdCtx;
import io.iommulab.actors.fd.model.Invalidation;
import io.iommulab.actors.fd.model.Ioas;
import io.iommulab.actors.fd.model.PinListener;
import io.iommulab.actors.fd.model.SnoopControl;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.actors.fd.model.Veventq;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.pipeline.FaultPolicy;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.FaultsPublished;
import io.iommulab.actors.unit.IommuUnitActor.PublishedFault;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.fault.DmaFault;
import io.iommulab.hardware.fault.PageRequest;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;
import kamon.Kamon;
import kamon.metric.Counter;
import kamon.metric.Histogram;
import kamon.tag.TagSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The behavior of {@link IoasidFdActor}: owns one {@link IommufdCtx} and drives the unit actors
 * through each operation's effects. Rules live in the model; this class translates commands into
 * model calls, model plans into unit messages, and unit replies into finalize / abort.
 *
 * <p>Unit replies carry no correlation id, so each effect is a {@code context.ask} whose reply
 * comes back as a private {@link UnitAnswered} holding the continuation to run. Maps and unmaps
 * of an IOAS hold its {@link IoasGate} for reading, domain changes for writing. Nothing blocks;
 * there is no wall clock and no randomness here.
 *
 * <p>Fault records arrive from the units' fault pipelines in batches ({@link FaultsPublished}),
 * each record carrying the token the fd gave its attach handle when it sent the Attach / Replace:
 * a token names exactly one (device, pasid, HWPT) attachment, registered from the moment the
 * unit may use it until that attachment is detached, replaced or aborted. A record whose token
 * is no longer registered belongs to a handle that is gone (detached, replaced, fd closed): it is
 * lost and counted, and a last page is answered INVALID; it never reaches the attachment that
 * replaced it. What each record becomes is {@link FaultPolicy}'s rule; every record of a batch is
 * accounted in the {@link IommuUnitActor.FaultsSettled} answer (delivered, queue full, handle
 * gone) and in {@link IoasidFdActor.FaultStats}.
 *
 * <p><b>Unmaps and flushes.</b> Every IOAS unmap (and the shadow unmaps of a software-nested
 * HWPT built from the unmapped areas) names the fd's flush adapter: a unit in deferred mode
 * answers {@code Unmapped(deferred, token)} as soon as its page-table entries are gone, and the
 * fd answers the ioctl then, but the area keeps its IOVA, its pins and its charge until every
 * such unit reported the flush ({@link IommuUnitActor.FlushCompleted}) — until then an IOTLB or
 * device-TLB entry may still reach its frames. Released areas are told to the VM ({@link
 * IoasidFdActor.IovaReleased}). A unit that stopped counts as flushed. Close (and the destroy of
 * an IOAS) waits for the flushes before it unpins; the detaches close issues are synchronous and
 * flush the units' queues at once. Undo unmaps of an aborted map stay strict.
 *
 * <p><b>Saturated units.</b> A unit refuses UnmapRange, Detach, Replace and InvalidateUser with
 * EBUSY while its invalidation stream is saturated, having changed nothing: the fd retries after
 * a backoff on its timers (doubling from {@link #BUSY_BACKOFF_MIN} to {@link #BUSY_BACKOFF_MAX},
 * at most {@link #BUSY_RETRIES} times). Any other refusal of an unmap — or a unit still saturated
 * after every retry — is a bug of that unit: logged as an error, counted ({@code
 * FdSnapshot.unmaps().refused()}, Kamon {@code iommulab.fd.unmap.refused}), and the area keeps its
 * pins, since the unit may still map its frames.
 *
 * <p>Metrics (tagged by tenant, the VM's class): {@code iommulab.fd.fault.records} (tenant,
 * outcome), {@code iommulab.fd.fault-queue.depth} (tenant, queue: fault / veventq) sampled after
 * each batch, {@code iommulab.fd.unmap.deferred}, {@code iommulab.fd.unmap.busy-retries}, {@code
 * iommulab.fd.unmap.refused} (counters).
 */
final class FdBehavior extends AbstractBehavior<Command> {

  /** How long a unit may take to answer before the effect counts as failed (EIO); a unit bug. */
  static final Duration UNIT_TIMEOUT = Duration.ofSeconds(30);

  /** How often an ask refused EBUSY by a saturated unit is retried before it counts as a bug. */
  static final int BUSY_RETRIES = 64;

  /** First backoff of an EBUSY retry; it doubles up to {@link #BUSY_BACKOFF_MAX}. */
  static final Duration BUSY_BACKOFF_MIN = Duration.ofMillis(1);

  static final Duration BUSY_BACKOFF_MAX = Duration.ofMillis(100);


  /** An ask to one unit. */
  private record UnitAsk(
      ActorRef<IommuUnitActor.Command> unit,
      Function<ActorRef<UnitReply>, IommuUnitActor.Command> make) {}

  /** An attach handle of the fd: (device, pasid). */
  private record HandleKey(Device device, int pasid) {}

  /** Where the records of one handle token go. */
  private record HandleRoute(Device device, int pasid, HwPagetable hwpt) {}

  private final TimerScheduler<Command> timers;
  private final ActorRef<IommuUnitActor.FlushCompleted> flushTo;
  private long nextRetryKey;
  private long busyRetries;
  /** Close is done but for areas awaiting a flush. */
  private boolean closeAwaitsFlush;
  private final Counter deferredCounter;
  private final Counter busyRetryCounter;
  private final Counter refusedUnmapCounter;
  private final int ictxId;
  private final int vmId;
  private final ActorRef<HostMemoryActor.Command> memory;
  private final ActorRef<IoasidFdActor.FdEvent> events;
  @SuppressWarnings("unused")
  private final ModeledClock clock;
  private final IommufdCtx model;
  private final ActorRef<IommuUnitActor.FaultEvent> faultSink;
  private final ActorRef<IommuUnitActor.Answer> answers;
  private final CorrelationTable<Pending> pending = new CorrelationTable<>();
  private final java.util.Set<ActorRef<IommuUnitActor.Command>> watched = new java.util.HashSet<>();
  private long nextCorr = 1;
  private final Map<Integer, ActorRef<IommuUnitActor.Command>> units = new HashMap<>();
  private final Map<Device, ActorRef<DeviceActor.Command>> deviceRefs = new IdentityHashMap<>();
  private final Map<Ioas, IoasGate> gates = new IdentityHashMap<>();
  private int pendingOps;
  /** Devices whose non-coherent DMA the VM was told of (snoop-control mode). */
  private final java.util.Set<Device> kvmNonCoherent =
      java.util.Collections.newSetFromMap(new IdentityHashMap<>());
  private boolean closing;
  private boolean closeStarted;
  private boolean closed;
  private final List<ActorRef<Reply>> closeWaiters = new ArrayList<>();
  private int objectsDestroyedAtClose;
  private long pagesUnpinned;
  /** The modes of the seed threads: their handlers reach this behavior through a {@link Port}. */
  private final ModeHandlers modes;

  // Fault routing: handle tokens, and what became of every record received.
  private long nextHandleToken = 1;
  private final Map<Long, HandleRoute> handleRoutes = new HashMap<>();
  private final Map<HandleKey, Long> currentTokens = new HashMap<>();
  private long pageRequestsQueued;
  private long pageRequestsLostQueueFull;
  private long pageRequestsHandleGone;
  private long pageRequestsFailed;
  private long dmaFaultsToVeventq;
  private long dmaFaultsLostVeventqFull;
  private long dmaFaultsRecorded;
  private long dmaFaultsOwnerTold;
  private long dmaFaultsHandleGone;
  private long partialsDiscarded;
  private long faultBatches;
  private final Counter deliveredCounter;
  private final Counter lostQueueFullCounter;
  private final Counter handleGoneCounter;
  private final Histogram faultQueueDepth;
  private final Histogram veventqDepth;

  FdBehavior(
      ActorContext<Command> context,
      TimerScheduler<Command> timers,
      int ictxId,
      int vmId,
      GuestMemoryLayout layout,
      UapiSettings settings,
      IoasidFdActor.Credentials credentials,
      ActorRef<HostMemoryActor.Command> memory,
      ActorRef<IoasidFdActor.FdEvent> events,
      FaultInjector injector,
      ModeledClock clock,
      List<Long> msiBanks,
      FaultPipelineSettings pipeline) {
    super(context);
    this.timers = timers;
    this.ictxId = ictxId;
    this.vmId = vmId;
    this.memory = memory;
    this.events = events;
    this.clock = clock;
    PinListener pins =
        new PinListener() {
          @Override
          public void pinned(long userVa, long length) {
            memory.tell(new HostMemoryActor.PinsChanged(vmId, userVa, length, true));
          }

          @Override
          public void unpinned(long userVa, long length) {
            pagesUnpinned += length / 4096;
            memory.tell(new HostMemoryActor.PinsChanged(vmId, userVa, length, false));
          }
        };
    this.model =
        new IommufdCtx(
            ictxId, vmId, layout, settings, credentials.capIpcLock(), credentials.capSysResource(),
            injector, pins);
    this.faultSink =
        context.messageAdapter(IommuUnitActor.FaultEvent.class, FaultEventReceived::new);
    this.flushTo =
        context.messageAdapter(IommuUnitActor.FlushCompleted.class, IoasidFdActor.FlushReported::new);
    // The adapter's function runs in this actor: it may look the continuation up.
    this.answers = context.messageAdapter(IommuUnitActor.Answer.class, this::answered);
    model.pamu().configureMsiBanks(msiBanks);
    this.modes = new ModeHandlers(new Port());
    String tenant = pipeline.tenantOf(vmId);
    this.deliveredCounter = recordCounter(tenant, "delivered");
    this.lostQueueFullCounter = recordCounter(tenant, "queue-full");
    this.handleGoneCounter = recordCounter(tenant, "handle-gone");
    this.faultQueueDepth =
        Kamon.histogram("iommulab.fd.fault-queue.depth")
            .withTags(TagSet.of("tenant", tenant).withTag("queue", "fault"));
    this.veventqDepth =
        Kamon.histogram("iommulab.fd.fault-queue.depth")
            .withTags(TagSet.of("tenant", tenant).withTag("queue", "veventq"));
    this.deferredCounter = Kamon.counter("iommulab.fd.unmap.deferred").withTag("tenant", tenant);
    this.busyRetryCounter = Kamon.counter("iommulab.fd.unmap.busy-retries").withTag("tenant", tenant);
    this.refusedUnmapCounter = Kamon.counter("iommulab.fd.unmap.refused").withTag("tenant", tenant);
  }

  private static Counter recordCounter(String tenant, String outcome) {
    return Kamon.counter("iommulab.fd.fault.records")
        .withTags(TagSet.of("tenant", tenant).withTag("outcome", outcome));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(UnitAnswered.class, this::onUnitAnswered)
        .onMessage(IoasidFdActor.IoasMap.class, this::onIoasMap)
        .onMessage(IoasidFdActor.IoasUnmap.class, this::onIoasUnmap)
        .onMessage(IoasidFdActor.IoasCopy.class, this::onIoasCopy)
        .onMessage(IoasidFdActor.IoasAlloc.class, this::onIoasAlloc)
        .onMessage(IoasidFdActor.IoasIovaRanges.class, this::onIoasIovaRanges)
        .onMessage(IoasidFdActor.IoasAllowIovas.class, this::onIoasAllowIovas)
        .onMessage(IoasidFdActor.Option.class, this::onOption)
        .onMessage(IoasidFdActor.Destroy.class, this::onDestroy)
        .onMessage(IoasidFdActor.HwptAlloc.class, this::onHwptAlloc)
        .onMessage(IoasidFdActor.HwptInvalidate.class, this::onHwptInvalidate)
        .onMessage(IoasidFdActor.HwptSetDirtyTracking.class, this::onHwptSetDirtyTracking)
        .onMessage(IoasidFdActor.HwptGetDirtyBitmap.class, this::onHwptGetDirtyBitmap)
        .onMessage(IoasidFdActor.GetHwInfo.class, this::onGetHwInfo)
        .onMessage(IoasidFdActor.FaultQueueAlloc.class, this::onFaultQueueAlloc)
        .onMessage(IoasidFdActor.FaultRead.class, this::onFaultRead)
        .onMessage(IoasidFdActor.FaultWrite.class, this::onFaultWrite)
        .onMessage(IoasidFdActor.FaultPoll.class, this::onFaultPoll)
        .onMessage(IoasidFdActor.ViommuAlloc.class, this::onViommuAlloc)
        .onMessage(IoasidFdActor.VdeviceAlloc.class, this::onVdeviceAlloc)
        .onMessage(IoasidFdActor.VeventqAlloc.class, this::onVeventqAlloc)
        .onMessage(IoasidFdActor.VeventqRead.class, this::onVeventqRead)
        .onMessage(IoasidFdActor.DeviceBind.class, this::onDeviceBind)
        .onMessage(IoasidFdActor.DeviceAttach.class, m -> onAttach(m.devId(), Device.NO_PASID, m.ptId(), false, m.replyTo()))
        .onMessage(IoasidFdActor.DeviceReplace.class, m -> onAttach(m.devId(), Device.NO_PASID, m.ptId(), true, m.replyTo()))
        .onMessage(IoasidFdActor.DevicePasidAttach.class, m -> onAttach(m.devId(), m.pasid(), m.ptId(), false, m.replyTo()))
        .onMessage(IoasidFdActor.DevicePasidReplace.class, m -> onAttach(m.devId(), m.pasid(), m.ptId(), true, m.replyTo()))
        .onMessage(IoasidFdActor.DeviceDetach.class, m -> onDetach(m.devId(), Device.NO_PASID, m.replyTo()))
        .onMessage(IoasidFdActor.DevicePasidDetach.class, m -> onDetach(m.devId(), m.pasid(), m.replyTo()))
        .onMessage(IoasidFdActor.DeviceUnbind.class, this::onDeviceUnbind)
        .onMessage(IoasidFdActor.Close.class, this::onClose)
        .onMessage(IoasidFdActor.GetSnapshot.class, this::onGetSnapshot)
        .onMessage(IoasidFdActor.GetFaultStats.class, this::onGetFaultStats)
        .onMessage(FaultEventReceived.class, this::onFaultEvent)
        .onMessage(IoasidFdActor.FlushReported.class, this::onFlushReported)
        .onMessage(IoasidFdActor.RetryAsk.class, m -> {
          m.ask().run();
          return this;
        })
        .onMessage(IoasidFdActor.ModeCommand.class, m -> {
          modes.onCommand(m);
          return this;
        })
        .onMessage(IoasidFdActor.SelfCall.class, m -> {
          bypassClosed(() -> m.action().accept(m.replyTo()));
          return this;
        })
        .onMessage(IoasidFdActor.SelfAnswered.class, m -> {
          m.then().accept(m.reply());
          return this;
        })
        .onSignal(Terminated.class, this::onUnitTerminated)
        .build();
  }

  // ================================================================ plumbing

  private Behavior<Command> onUnitAnswered(UnitAnswered a) {
    a.then().accept(a.reply());
    return this;
  }

  /** A correlated request in flight: the unit it went to and what continues the operation. */
  private record Pending(ActorRef<IommuUnitActor.Command> unit, Consumer<UnitReply> then) {}

  private UnitAnswered answered(IommuUnitActor.Answer a) {
    Pending p = pending.remove(a.corr());
    if (p == null) {
      // Already failed (its unit stopped): the late answer has nothing left to continue.
      return new UnitAnswered(reply -> getContext().getLog().warn(
          "fd [{}]: answer [{}] to no request: [{}]", ictxId, a.corr(), reply), a.reply());
    }
    return new UnitAnswered(p.then(), a.reply());
  }

  /** A unit that stopped (a bug it was stopped for) answers nothing more: its requests fail EIO. */
  private Behavior<Command> onUnitTerminated(Terminated t) {
    List<Pending> lost = pending.removeIf(p -> p.unit().equals(t.getRef()));
    for (Pending p : lost) {
      p.then().accept(new IommuUnitActor.Refused(Errno.EIO, "unit stopped: " + t.getRef()));
    }
    // Nothing of it serves a translation any more: its pending flushes count as done.
    for (Map.Entry<Integer, ActorRef<IommuUnitActor.Command>> e : units.entrySet()) {
      if (e.getValue().equals(t.getRef())) {
        getContext().getLog().warn("fd [{}]: unit [{}] stopped; its pending flushes count as done",
            ictxId, e.getKey());
        released(model.unitGone(e.getKey()));
      }
    }
    return this;
  }

  /**
   * One unit effect. MapRange and UnmapRange, the effects of every map and unmap, go as {@link
   * IommuUnitActor.Correlated} tells answered through one adapter; the rarer commands are asks.
   */
  private void ask(
      ActorRef<IommuUnitActor.Command> unit,
      Function<ActorRef<UnitReply>, IommuUnitActor.Command> make,
      Consumer<UnitReply> then) {
    ask(unit, make, then, 0);
  }

  /**
   * One unit effect. MapRange and UnmapRange, the effects of every map and unmap, go as {@link
   * IommuUnitActor.Correlated} tells answered through one adapter; the rarer commands are asks.
   * An EBUSY refusal of a command a saturated stream refuses (nothing changed) is retried after a
   * backoff on the fd's timers, {@code attempt} counting the retries so far.
   */
  private void ask(
      ActorRef<IommuUnitActor.Command> unit,
      Function<ActorRef<UnitReply>, IommuUnitActor.Command> make,
      Consumer<UnitReply> then,
      int attempt) {
    IommuUnitActor.Command command = make.apply(null);
    Consumer<UnitReply> k = !refusedWhenSaturated(command) ? then : r -> {
      if (r instanceof IommuUnitActor.Refused f && f.errno() == Errno.EBUSY) {
        if (attempt < BUSY_RETRIES) {
          busyRetries++;
          busyRetryCounter.increment();
          timers.startSingleTimer(
              nextRetryKey++,
              new IoasidFdActor.RetryAsk(() -> ask(unit, make, then, attempt + 1)),
              backoff(attempt));
          return;
        }
        getContext().getLog().error("fd [{}]: unit [{}] still saturated after [{}] retries: [{}]",
            ictxId, unit.path().name(), attempt, f);
      }
      then.accept(r);
    };
    if (command instanceof IommuUnitActor.MapRange || command instanceof IommuUnitActor.UnmapRange) {
      if (watched.add(unit)) {
        getContext().watch(unit);
      }
      long corr = nextCorr++;
      pending.put(corr, new Pending(unit, k));
      unit.tell(IommuUnitActor.Correlated.of(corr, command, answers));
      return;
    }
    io.iommulab.actors.Asks.<Command, IommuUnitActor.Command, UnitReply>ask(
        getContext(),
        unit,
        UNIT_TIMEOUT,
        make,
        (reply, failure) ->
            new UnitAnswered(
                k,
                reply != null
                    ? reply
                    : new IommuUnitActor.Refused(Errno.EIO, "unit did not answer: " + failure)));
  }

  /** Commands a unit refuses EBUSY, changing nothing, while its invalidation stream is saturated. */
  private static boolean refusedWhenSaturated(IommuUnitActor.Command c) {
    return c instanceof IommuUnitActor.UnmapRange
        || c instanceof IommuUnitActor.Detach
        || c instanceof IommuUnitActor.Replace
        || c instanceof IommuUnitActor.InvalidateUser;
  }

  static Duration backoff(int attempt) {
    long ms = BUSY_BACKOFF_MIN.toMillis() << Math.min(attempt, 20);
    return ms >= BUSY_BACKOFF_MAX.toMillis() ? BUSY_BACKOFF_MAX : Duration.ofMillis(ms);
  }

  /**
   * A unit refused to unmap (or to tear down) what the fd must let go of: a bug of that unit.
   * Loud: an error log and a counter; the caller keeps the pages pinned.
   */
  private void unmapRefused(String what, UnitReply reply) {
    refusedUnmapCounter.increment();
    getContext().getLog().error("fd [{}]: a unit refused to {} (a bug; its pages stay pinned): [{}]",
        ictxId, what, reply);
  }

  /** Sends every ask; {@code done} gets the replies in order once all arrived. */
  private void askAll(List<UnitAsk> asks, Consumer<UnitReply[]> done) {
    int n = asks.size();
    UnitReply[] replies = new UnitReply[n];
    if (n == 0) {
      done.accept(replies);
      return;
    }
    if (n == 1) {
      // One domain, one area: the common map and unmap, without the countdown.
      UnitAsk a = asks.get(0);
      ask(a.unit(), a.make(), r -> {
        replies[0] = r;
        done.accept(replies);
      });
      return;
    }
    int[] left = {n};
    for (int i = 0; i < n; i++) {
      int at = i;
      UnitAsk a = asks.get(i);
      ask(
          a.unit(),
          a.make(),
          r -> {
            replies[at] = r;
            if (--left[0] == 0) {
              done.accept(replies);
            }
          });
    }
  }

  private static boolean refused(UnitReply r) {
    return r instanceof IommuUnitActor.Refused;
  }

  private static IommuUnitActor.Refused firstRefusal(UnitReply[] replies) {
    for (UnitReply r : replies) {
      if (r instanceof IommuUnitActor.Refused f) {
        return f;
      }
    }
    return null;
  }

  private ActorRef<IommuUnitActor.Command> unit(int unitId) {
    ActorRef<IommuUnitActor.Command> u = units.get(unitId);
    if (u == null) {
      throw new IllegalStateException("fd " + ictxId + " knows no actor of unit " + unitId);
    }
    return u;
  }

  private IoasGate gate(Ioas ioas) {
    return gates.computeIfAbsent(ioas, k -> new IoasGate());
  }

  private void releaseRead(Ioas ioas) {
    IoasGate g = gates.get(ioas);
    g.releaseRead();
    if (g.idle()) {
      gates.remove(ioas);
    }
  }

  private void releaseWrite(Ioas ioas) {
    IoasGate g = gates.get(ioas);
    g.releaseWrite();
    if (g.idle()) {
      gates.remove(ioas);
    }
  }

  private static Reply refusal(Outcome<?> o) {
    Outcome.Err<?> e = (Outcome.Err<?>) o;
    return new IoasidFdActor.Refused(e.errno(), e.message());
  }

  private static Reply refusal(IommuUnitActor.Refused r) {
    return new IoasidFdActor.Refused(r.errno(), r.message());
  }

  /**
   * The shape of every command the model answers at once: EBADF on a closed fd, else the model's
   * outcome (run only then), as {@code ok} of its value or as the refusal carrying its errno.
   */
  private <T> Behavior<Command> answer(
      ActorRef<Reply> replyTo, Supplier<Outcome<T>> call, Function<? super T, ? extends Reply> ok) {
    if (refuseIfClosed(replyTo)) {
      return this;
    }
    Outcome<T> o = call.get();
    replyTo.tell(o.isOk() ? ok.apply(o.value()) : refusal(o));
    return this;
  }

  /**
   * {@code object}, or null after refusing EBADF when the fd named {@code what} {@code id} is not
   * open (a FAULT or vEVENTQ fd the guest closed or never had).
   */
  private static <T> T openOrRefuse(T object, String what, int id, ActorRef<Reply> replyTo) {
    if (object == null) {
      replyTo.tell(new IoasidFdActor.Refused(Errno.EBADF, what + " fd " + id + " is not open"));
    }
    return object;
  }

  private boolean refuseIfClosed(ActorRef<Reply> replyTo) {
    if (closing || closed) {
      replyTo.tell(new IoasidFdActor.Refused(Errno.EBADF, "fd " + ictxId + " is closed"));
      return true;
    }
    return false;
  }

  private void opStarted() {
    pendingOps++;
  }

  private void opDone(ActorRef<Reply> replyTo, Reply reply) {
    pendingOps--;
    replyTo.tell(reply);
    maybeStartClose();
  }

  /**
   * The snoop-control mode's KVM notification (seed 002): tells the VM when {@code d}'s
   * non-coherent DMA appears or disappears ({@link SnoopControl#nonCoherent}) — on its
   * transitions only, after bind, attach, replace, detach and unbind.
   */
  private void kvmCoherency(Device d) {
    boolean now = d.isLive() && SnoopControl.nonCoherent(d);
    if (now == kvmNonCoherent.contains(d)) {
      return;
    }
    if (now) {
      kvmNonCoherent.add(d);
      events.tell(new IoasidFdActor.NonCoherentDmaAppeared(ictxId, d.id(), d.name()));
    } else {
      kvmNonCoherent.remove(d);
      events.tell(new IoasidFdActor.NonCoherentDmaDisappeared(ictxId, d.id(), d.name()));
    }
  }

  private void respond(List<Fault.Response> responses) {
    for (Fault.Response r : responses) {
      Fault.Group g = r.group();
      IommuUnitActor.PageResponseCode code =
          switch (r.code()) {
            case 0 -> IommuUnitActor.PageResponseCode.SUCCESS;
            case 1 -> IommuUnitActor.PageResponseCode.INVALID;
            default -> IommuUnitActor.PageResponseCode.FAILURE;
          };
      unit(g.device().unitId())
          .tell(new IommuUnitActor.RespondPageRequest(g.device().rid(), g.pasid(), g.grpid(), code,
              g.token()));
    }
  }

  // ================================================================ IOAS

  private Behavior<Command> onIoasAlloc(IoasidFdActor.IoasAlloc m) {
    return answer(m.replyTo(), () -> model.ioasAlloc(m.flags()), IoasidFdActor.IoasAllocated::new);
  }

  private Behavior<Command> onIoasIovaRanges(IoasidFdActor.IoasIovaRanges m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<IommufdCtx.IovaRanges> o = model.iovaRanges(m.ioasId(), m.numIovas());
    if (!o.isOk()) {
      m.replyTo().tell(refusal(o));
      return this;
    }
    IommufdCtx.IovaRanges r = o.value();
    m.replyTo()
        .tell(
            new IoasidFdActor.IovaRangesReported(
                r.tooSmall() ? Errno.EMSGSIZE : null, r.numIovas(), r.alignment(), r.ranges()));
    return this;
  }

  private Behavior<Command> onIoasAllowIovas(IoasidFdActor.IoasAllowIovas m) {
    return answer(
        m.replyTo(),
        () -> model.allowIovas(m.ioasId(), m.allowedIovas()),
        v -> IoasidFdActor.Done.INSTANCE);
  }

  private Behavior<Command> onOption(IoasidFdActor.Option m) {
    return answer(
        m.replyTo(),
        () -> model.option(m.optionId(), m.op(), m.objectId(), m.val64()),
        IoasidFdActor.OptionValue::new);
  }

  private Behavior<Command> onIoasMap(IoasidFdActor.IoasMap m) {
    return mapWith(m, null);
  }

  /** IOAS_MAP charging in {@code mode} when not null (the VFIO container's MAP_DMA: MM). */
  private Behavior<Command> mapWith(IoasidFdActor.IoasMap m, Accounting.Mode mode) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Ioas ioas = model.ioas(m.ioasId());
    if (ioas == null) {
      m.replyTo().tell(refusal(model.beginMap(m.flags(), m.ioasId(), m.userVa(), m.length(), m.iova(), mode)));
      return this;
    }
    opStarted();
    gate(ioas)
        .read(
            () -> fill(ioas, model.beginMap(m.flags(), m.ioasId(), m.userVa(), m.length(), m.iova(), mode),
                m.replyTo(), false));
    return this;
  }

  private Behavior<Command> onIoasCopy(IoasidFdActor.IoasCopy m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Ioas dst = model.ioas(m.dstIoasId());
    if (dst == null) {
      m.replyTo()
          .tell(refusal(model.beginCopy(m.flags(), m.dstIoasId(), m.srcIoasId(), m.length(), m.dstIova(), m.srcIova())));
      return this;
    }
    opStarted();
    gate(dst)
        .read(
            () ->
                fill(dst,
                    model.beginCopy(m.flags(), m.dstIoasId(), m.srcIoasId(), m.length(), m.dstIova(), m.srcIova()),
                    m.replyTo(), true));
    return this;
  }

  /** Second phase of MAP / COPY: every domain of the IOAS takes every area, or none does. */
  private void fill(Ioas ioas, Outcome<IommufdCtx.MapOp> begun, ActorRef<Reply> replyTo, boolean copy) {
    if (!begun.isOk()) {
      releaseRead(ioas);
      opDone(replyTo, refusal(begun));
      return;
    }
    IommufdCtx.MapOp op = begun.value();
    if (op.targets().isEmpty()) {
      Reply ok = copy ? new IoasidFdActor.IoasCopied(op.iova()) : new IoasidFdActor.IoasMapped(op.iova(), 0);
      model.finishMap(op);
      modes.shadow.afterParentMap(ioas, op.areas(), () -> {
        releaseRead(ioas);
        opDone(replyTo, ok);
      });
      return;
    }
    List<UnitAsk> asks = new ArrayList<>(op.targets().size() * op.areas().size());
    List<HwPagetable> askTarget = new ArrayList<>(asks.size());
    List<Area> askArea = new ArrayList<>(asks.size());
    for (Area a : op.areas()) {
      long[][] runs = model.runsOf(a);
      for (HwPagetable h : op.targets()) {
        int domainId = h.domainId();
        asks.add(
            new UnitAsk(
                unit(h.unitId()),
                r -> new IommuUnitActor.MapRange(domainId, a.iova(), runs[0], runs[1], op.prot(), r)));
        askTarget.add(h);
        askArea.add(a);
      }
    }
    askAll(
        asks,
        replies -> {
          IommuUnitActor.Refused bad = firstRefusal(replies);
          if (bad == null) {
            long modeled = 0;
            for (UnitReply r : replies) {
              if (r instanceof IommuUnitActor.Mapped mapped) {
                modeled += mapped.modeledLatencyNs();
              }
            }
            Reply ok = copy
                ? new IoasidFdActor.IoasCopied(op.iova())
                : new IoasidFdActor.IoasMapped(op.iova(), modeled);
            model.finishMap(op);
            modes.shadow.afterParentMap(ioas, op.areas(), () -> {
              releaseRead(ioas);
              opDone(replyTo, ok);
            });
            return;
          }
          List<UnitAsk> undo = new ArrayList<>();
          List<Area> undoArea = new ArrayList<>();
          for (int i = 0; i < replies.length; i++) {
            if (!refused(replies[i])) {
              HwPagetable h = askTarget.get(i);
              Area a = askArea.get(i);
              int domainId = h.domainId();
              undo.add(
                  new UnitAsk(unit(h.unitId()), r -> IommuUnitActor.UnmapRange.strict(domainId, a.iova(), a.length(), r)));
              undoArea.add(a);
            }
          }
          askAll(
              undo,
              undone -> {
                java.util.Set<Area> stuck = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
                for (int i = 0; i < undone.length; i++) {
                  if (refused(undone[i])) {
                    unmapRefused("undo the map of " + undoArea.get(i), undone[i]);
                    stuck.add(undoArea.get(i));
                  }
                }
                model.abortMap(op, stuck);
                releaseRead(ioas);
                opDone(replyTo, refusal(bad));
              });
        });
  }

  private Behavior<Command> onIoasUnmap(IoasidFdActor.IoasUnmap m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Ioas ioas = model.ioas(m.ioasId());
    if (ioas == null) {
      m.replyTo().tell(refusal(model.beginUnmap(m.ioasId(), m.iova(), m.length())));
      return this;
    }
    opStarted();
    gate(ioas).read(() -> unmap(ioas, m));
    return this;
  }

  private void unmap(Ioas ioas, IoasidFdActor.IoasUnmap m) {
    Outcome<IommufdCtx.UnmapOp> begun = model.beginUnmap(m.ioasId(), m.iova(), m.length());
    if (!begun.isOk()) {
      releaseRead(ioas);
      opDone(m.replyTo(), refusal(begun));
      return;
    }
    IommufdCtx.UnmapOp op = begun.value();
    List<UnitAsk> asks = new ArrayList<>(op.targets().size() * op.areas().size());
    List<Area> askArea = new ArrayList<>(op.targets().size() * op.areas().size());
    List<Integer> askUnit = new ArrayList<>(op.targets().size() * op.areas().size());
    for (Area a : op.areas()) {
      for (HwPagetable h : op.targets()) {
        int domainId = h.domainId();
        asks.add(new UnitAsk(unit(h.unitId()),
            r -> new IommuUnitActor.UnmapRange(domainId, a.iova(), a.length(), flushTo, r)));
        askArea.add(a);
        askUnit.add(h.unitId());
      }
    }
    shadowUnmapAsks(ioas, op.areas(), asks, askArea, askUnit);
    askAll(
        asks,
        replies -> {
          // Both stay empty for a strict unmap every unit took: no maps built for nothing.
          Map<Area, List<IommufdCtx.FlushKey>> flushes = Map.of();
          java.util.Set<Area> failed = java.util.Set.of();
          for (int i = 0; i < replies.length; i++) {
            Area a = askArea.get(i);
            if (replies[i] instanceof IommuUnitActor.Unmapped u) {
              if (u.deferred()) {
                if (flushes.isEmpty()) {
                  flushes = new IdentityHashMap<>();
                }
                flushes.computeIfAbsent(a, k -> new ArrayList<>(1))
                    .add(new IommufdCtx.FlushKey(askUnit.get(i), u.flushToken()));
              }
            } else {
              unmapRefused("unmap the whole area " + a, replies[i]);
              if (failed.isEmpty()) {
                failed = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
              }
              failed.add(a);
            }
          }
          long bytes = model.finishUnmap(op, flushes, failed);
          long awaiting = 0; // a flush reported before its unmap's answer released the area already
          for (Area a : flushes.keySet()) {
            if (a.pendingFlushes() > 0 && !failed.contains(a)) {
              awaiting += a.length();
            }
          }
          if (!flushes.isEmpty()) {
            deferredCounter.increment(flushes.size());
          }
          long modeled = 0;
          for (UnitReply r : replies) {
            if (r instanceof IommuUnitActor.Unmapped unmapped) {
              modeled += unmapped.modeledLatencyNs();
            }
          }
          releaseRead(ioas);
          Reply reply;
          if (!failed.isEmpty()) {
            reply = new IoasidFdActor.Refused(Errno.EIO, String.format(
                "a unit refused to unmap %d of the areas in [0x%x, +0x%x) (a bug): they stay pinned",
                failed.size(), m.iova(), m.length()));
          } else if (op.errno() == null) {
            reply = new IoasidFdActor.IoasUnmapped(bytes, Math.min(awaiting, bytes), modeled);
          } else {
            reply = new IoasidFdActor.Refused(op.errno(), op.message());
          }
          opDone(m.replyTo(), reply);
        });
  }

  // ================================================================ deferred flushes

  private Behavior<Command> onFlushReported(IoasidFdActor.FlushReported m) {
    released(model.flushCompleted(m.flush().unitId(), m.flush().tokens()));
    return this;
  }

  /** Areas whose last flush came: the VM may reuse their IOVA; close may finish. */
  private void released(List<IommufdCtx.Released> areas) {
    for (IommufdCtx.Released r : areas) {
      events.tell(new IoasidFdActor.IovaReleased(ictxId, r.ioasId(), r.iova(), r.length()));
    }
    if (closeAwaitsFlush && model.areasAwaitingFlush() == 0) {
      closeAwaitsFlush = false;
      destroyRound();
    }
  }

  // ================================================================ bind / unbind

  private Behavior<Command> onDeviceBind(IoasidFdActor.DeviceBind m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    IoasidFdActor.DeviceHandle h = m.handle();
    Outcome<Device> begun = model.beginBind(h.name(), h.rid(), h.liodn(), h.group(), h.unitId());
    if (!begun.isOk()) {
      m.replyTo().tell(refusal(begun));
      return this;
    }
    Device pending = begun.value();
    units.putIfAbsent(h.unitId(), h.unit());
    opStarted();
    ask(
        h.unit(),
        r -> new IommuUnitActor.ClaimDmaOwner(h.rid(), ictxId, vmId, r),
        reply -> {
          if (!(reply instanceof IommuUnitActor.DmaOwnerClaimed claimed)) {
            model.abortBind(pending, h.unitId());
            opDone(m.replyTo(), reply instanceof IommuUnitActor.Refused r ? refusal(r)
                : new IoasidFdActor.Refused(Errno.EIO, "unexpected " + reply));
            return;
          }
          Outcome<Device> done = model.completeBind(pending, claimed.info());
          if (!done.isOk()) {
            ask(
                h.unit(),
                r -> new IommuUnitActor.ReleaseDmaOwner(h.rid(), ictxId, r),
                released -> {
                  model.abortBind(pending, h.unitId());
                  opDone(m.replyTo(), refusal(done));
                });
            return;
          }
          Device d = done.value();
          deviceRefs.put(d, h.device());
          kvmCoherency(d);
          opDone(m.replyTo(), new IoasidFdActor.DeviceBound(d.id(), claimed.info()));
        });
    return this;
  }

  private Behavior<Command> onDeviceUnbind(IoasidFdActor.DeviceUnbind m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<Device> begun = model.beginUnbind(m.devId());
    if (!begun.isOk()) {
      m.replyTo().tell(refusal(begun));
      return this;
    }
    opStarted();
    unbind(begun.value(), () -> opDone(m.replyTo(), IoasidFdActor.Done.INSTANCE));
    return this;
  }

  /** Detaches every PASID, then the RID, releases ownership, drops the DEVICE. */
  private void unbind(Device d, Runnable then) {
    List<Integer> pasids = new ArrayList<>(d.attachments().keySet());
    java.util.Collections.reverse(pasids); // PASIDs first, the RID (-1) last
    detachAll(d, pasids, 0, () -> modes.beforeRelease(d, () ->
        ask(
            unit(d.unitId()),
            r -> new IommuUnitActor.ReleaseDmaOwner(d.rid(), ictxId, r),
            released -> {
              if (refused(released)) {
                getContext().getLog().error("fd [{}]: releasing DMA ownership of [{}] refused: [{}]", ictxId, d.name(), released);
              }
              model.finishUnbind(d);
              // The unit tells the device its owner changed (it owns the claim).
              deviceRefs.remove(d);
              kvmCoherency(d);
              then.run();
            })));
  }

  private void detachAll(Device d, List<Integer> pasids, int i, Runnable then) {
    if (i == pasids.size()) {
      then.run();
      return;
    }
    Outcome<IommufdCtx.DetachPlan> plan = model.beginDetach(d, pasids.get(i));
    if (!plan.isOk()) {
      throw new IllegalStateException("unbind cannot detach: " + plan);
    }
    detach(plan.value(), true, reply -> detachAll(d, pasids, i + 1, then));
  }

  // ================================================================ attach / replace / detach

  private Behavior<Command> onAttach(int devId, int pasid, int ptId, boolean replace, ActorRef<Reply> replyTo) {
    if (refuseIfClosed(replyTo)) {
      return this;
    }
    Outcome<IommufdCtx.AttachPlan> begun = model.beginAttach(devId, pasid, ptId, replace);
    if (!begun.isOk()) {
      replyTo.tell(refusal(begun));
      return this;
    }
    IommufdCtx.AttachPlan plan = begun.value();
    opStarted();
    if (plan.noop()) {
      model.commitAttach(plan, new ArrayList<>());
      opDone(replyTo, new IoasidFdActor.DeviceAttached(plan.hwpt().id()));
      return this;
    }
    if (plan.kind() == IommufdCtx.AttachKind.NEW_AUTO) {
      Outcome<HwPagetable> reserved = model.reserveAuto(plan);
      if (!reserved.isOk()) {
        model.abortAttach(plan);
        opDone(replyTo, refusal(reserved));
        return this;
      }
      HwPagetable h = reserved.value();
      buildPaging(h, plan.device(), false, false, () -> model.takeConcurrentAuto(plan), built -> {
        if (!built.isOk()) {
          model.abortAttach(plan);
          opDone(replyTo, refusal(built));
          return;
        }
        if (built.value() == h) {
          model.autoBuilt(plan, h);
        }
        switchDomain(plan, replyTo);
      });
      return this;
    }
    switchDomain(plan, replyTo);
    return this;
  }

  /** Attach or Replace every device of the plan in the unit; commit, or undo and abort. */
  private void switchDomain(IommufdCtx.AttachPlan plan, ActorRef<Reply> replyTo) {
    HwPagetable h = plan.hwpt();
    int domainId = h.domainId();
    int pasid = plan.pasid();
    List<UnitAsk> asks = new ArrayList<>(plan.devices().size());
    long[] tokens = new long[plan.devices().size()];
    for (int i = 0; i < tokens.length; i++) {
      Device d = plan.devices().get(i);
      int rid = d.rid();
      long token = nextHandleToken++;
      tokens[i] = token;
      // Registered before the unit can use it: the unit may publish with it before it answers.
      handleRoutes.put(token, new HandleRoute(d, pasid, h));
      asks.add(
          new UnitAsk(
              unit(d.unitId()),
              plan.replace()
                  ? r -> new IommuUnitActor.Replace(rid, pasid, domainId, faultSink, token, r)
                  : r -> new IommuUnitActor.Attach(rid, pasid, domainId, faultSink, token, r)));
    }
    askAll(
        asks,
        replies -> {
          IommuUnitActor.Refused bad = firstRefusal(replies);
          if (bad == null) {
            for (int i = 0; i < tokens.length; i++) {
              Long old = currentTokens.put(new HandleKey(plan.devices().get(i), pasid), tokens[i]);
              if (old != null) {
                handleRoutes.remove(old);
              }
            }
            List<Fault.Response> responses = new ArrayList<>();
            HwPagetable orphan = model.commitAttach(plan, responses);
            for (Device moved : plan.devices()) {
              kvmCoherency(moved);
            }
            respond(responses);
            Reply ok = new IoasidFdActor.DeviceAttached(h.id());
            if (orphan != null) {
              destroyHwpt(orphan, () -> opDone(replyTo, ok));
            } else {
              opDone(replyTo, ok);
            }
            return;
          }
          List<UnitAsk> undo = new ArrayList<>();
          List<Fault.Response> aborted = new ArrayList<>();
          for (int i = 0; i < tokens.length; i++) {
            handleRoutes.remove(tokens[i]);
            Device d = plan.devices().get(i);
            Long current = currentTokens.get(new HandleKey(d, pasid));
            HandleRoute cur = current == null ? null : handleRoutes.get(current);
            if (h.fault() != null && (cur == null || cur.hwpt() != h)) {
              // Records the new handle delivered before the abort: their groups die with it.
              aborted.addAll(h.fault().autoRespond(d, pasid, h));
            }
          }
          respond(aborted);
          if (plan.replace()) {
            int oldDomain = plan.old().domainId();
            for (int i = 0; i < replies.length; i++) {
              if (!refused(replies[i])) {
                Device d = plan.devices().get(i);
                int rid = d.rid();
                Long current = currentTokens.get(new HandleKey(d, pasid));
                long oldToken = current == null ? 0L : current;
                undo.add(new UnitAsk(unit(d.unitId()), r -> new IommuUnitActor.Replace(rid, pasid, oldDomain, faultSink, oldToken, r)));
              }
            }
          }
          askAll(
              undo,
              undone -> {
                model.abortAttach(plan);
                if (h.auto() && h.users() == 0 && h.isLive()) {
                  destroyHwpt(h, () -> opDone(replyTo, refusal(bad)));
                } else {
                  opDone(replyTo, refusal(bad));
                }
              });
        });
  }

  private Behavior<Command> onDetach(int devId, int pasid, ActorRef<Reply> replyTo) {
    if (refuseIfClosed(replyTo)) {
      return this;
    }
    Outcome<IommufdCtx.DetachPlan> begun = model.beginDetach(devId, pasid);
    if (!begun.isOk()) {
      replyTo.tell(refusal(begun));
      return this;
    }
    opStarted();
    detach(
        begun.value(),
        false,
        reply -> opDone(replyTo, refused(reply) ? refusal((IommuUnitActor.Refused) reply) : IoasidFdActor.Done.INSTANCE));
    return this;
  }

  /**
   * Detach in the unit, then commit: fault groups of the handle answered INVALID, an orphaned auto
   * HWPT destroyed. With {@code force} (unbind, close) a unit refusal is logged and committed
   * anyway, since the fd must let go of the device.
   */
  private void detach(IommufdCtx.DetachPlan plan, boolean force, Consumer<UnitReply> done) {
    Device d = plan.device();
    int rid = d.rid();
    int pasid = plan.pasid();
    ask(
        unit(d.unitId()),
        r -> new IommuUnitActor.Detach(rid, pasid, r),
        reply -> {
          if (refused(reply) && !force) {
            model.abortDetach(plan);
            done.accept(reply);
            return;
          }
          if (refused(reply)) {
            model.unitRefusedTeardown();
            unmapRefused("detach " + d.name(), reply);
          }
          Long token = currentTokens.remove(new HandleKey(d, pasid));
          if (token != null) {
            handleRoutes.remove(token);
          }
          List<Fault.Response> responses = new ArrayList<>();
          HwPagetable orphan = model.commitDetach(plan, responses);
          kvmCoherency(d);
          respond(responses);
          if (orphan != null) {
            destroyHwpt(orphan, () -> done.accept(IommuUnitActor.Done.INSTANCE));
          } else {
            done.accept(IommuUnitActor.Done.INSTANCE);
          }
        });
  }

  // ================================================================ HWPT lifecycle

  /**
   * Builds a HWPT_PAGING under its IOAS's write gate: domain, coherency, add to the IOAS (pins for
   * a first domain), replay of every area, finalize. On any refusal everything is undone and
   * {@code done} gets the error. {@code reuse}, asked once the gate is held, may return an
   * existing HWPT to use instead (the reserved one is then dropped).
   */
  private void buildPaging(
      HwPagetable h,
      Device dev,
      boolean nestParent,
      boolean dirty,
      java.util.function.Supplier<HwPagetable> reuse,
      Consumer<Outcome<HwPagetable>> done) {
    Ioas ioas = h.ioas();
    ActorRef<IommuUnitActor.Command> u = unit(h.unitId());
    gate(ioas)
        .write(
            () -> {
              // Another attach may have published a compatible auto domain while this one waited.
              HwPagetable existing = reuse.get();
              if (existing != null) {
                model.abortHwpt(h);
                releaseWrite(ioas);
                done.accept(Outcome.ok(existing));
                return;
              }
              ask(
                  u,
                  r -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAGING, nestParent, dirty, 0, r),
                  reply -> {
                    if (!(reply instanceof IommuUnitActor.DomainAllocated da)) {
                      model.abortHwpt(h);
                      releaseWrite(ioas);
                      done.accept(unitError(reply));
                      return;
                    }
                    model.domainAllocated(h, da.domainId(), da.pageSizeBitmap(), da.apertureStart(), da.apertureLast());
                    Runnable fillIn = () -> addAndReplay(h, ioas, done);
                    if (SnoopControl.shouldEnforce(h, dev)) {
                      ask(
                          u,
                          r -> new IommuUnitActor.EnforceCacheCoherency(da.domainId(), r),
                          cc -> {
                            if (!refused(cc)) {
                              model.coherencyEnforced(h);
                            } else if (SnoopControl.required(h)) {
                              freeDomain(h, () -> {
                                model.abortHwpt(h);
                                releaseWrite(ioas);
                                done.accept(unitError(cc));
                              });
                              return;
                            }
                            fillIn.run();
                          });
                    } else {
                      fillIn.run();
                    }
                  });
            });
  }

  private static Outcome<HwPagetable> unitError(UnitReply reply) {
    if (reply instanceof IommuUnitActor.Refused r) {
      return Outcome.err(r.errno(), r.message());
    }
    return Outcome.err(Errno.EIO, "unexpected unit reply %s", reply);
  }

  private void addAndReplay(HwPagetable h, Ioas ioas, Consumer<Outcome<HwPagetable>> done) {
    Outcome<List<Area>> added = model.addToIoas(h);
    if (!added.isOk()) {
      freeDomain(h, () -> {
        model.abortHwpt(h);
        releaseWrite(ioas);
        done.accept(((Outcome.Err<List<Area>>) added).cast());
      });
      return;
    }
    List<UnitAsk> asks = new ArrayList<>(added.value().size());
    int domainId = h.domainId();
    ActorRef<IommuUnitActor.Command> u = unit(h.unitId());
    for (Area a : added.value()) {
      long[][] runs = model.runsOf(a);
      asks.add(new UnitAsk(u, r -> new IommuUnitActor.MapRange(domainId, a.iova(), runs[0], runs[1], a.prot(), r)));
    }
    askAll(
        asks,
        replies -> {
          IommuUnitActor.Refused bad = firstRefusal(replies);
          if (bad != null) {
            model.removeFromIoas(h);
            freeDomain(h, () -> {
              model.abortHwpt(h);
              releaseWrite(ioas);
              done.accept(Outcome.err(bad.errno(), bad.message()));
            });
            return;
          }
          model.finalizeHwpt(h);
          releaseWrite(ioas);
          done.accept(Outcome.ok(h));
        });
  }

  private void freeDomain(HwPagetable h, Runnable then) {
    if (h.domainId() < 0) {
      then.run();
      return;
    }
    int domainId = h.domainId();
    ask(
        unit(h.unitId()),
        r -> new IommuUnitActor.FreeDomain(domainId, r),
        reply -> {
          if (refused(reply)) {
            getContext().getLog().error("fd [{}]: unit refused to free domain [{}]: [{}]", ictxId, domainId, reply);
          }
          then.run();
        });
  }

  /** Destroys a HWPT with no users: out of its IOAS (write gate), domain freed, object gone. */
  private void destroyHwpt(HwPagetable h, Runnable then) {
    if (h.ioas() != null) { // paging, or software-nested (a domain owner of its parent's table)
      Ioas ioas = h.ioas();
      gate(ioas)
          .write(
              () -> {
                model.detachHwptFromIoas(h);
                freeDomain(h, () -> {
                  model.finishDestroyHwpt(h);
                  releaseWrite(ioas);
                  then.run();
                });
              });
    } else {
      model.detachHwptFromIoas(h);
      freeDomain(h, () -> {
        model.finishDestroyHwpt(h);
        then.run();
      });
    }
  }

  private Behavior<Command> onHwptAlloc(IoasidFdActor.HwptAlloc m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<IommufdCtx.HwptAllocPlan> begun =
        model.beginHwptAlloc(m.flags(), m.devId(), m.ptId(), m.dataType(), m.dataLen(), m.faultId());
    if (!begun.isOk()) {
      m.replyTo().tell(refusal(begun));
      return this;
    }
    IommufdCtx.HwptAllocPlan plan = begun.value();
    HwPagetable h = plan.hwpt();
    opStarted();
    if (h.isPaging()) {
      buildPaging(h, plan.device(), h.nestParent(), h.dirtyTracking(), () -> null, built ->
          opDone(m.replyTo(), built.isOk()
              ? new IoasidFdActor.HwptAllocated(h.id(), h.unitId(), h.domainId())
              : refusal(built)));
      return this;
    }
    int parentDomain = plan.parentDomainId();
    ask(
        unit(h.unitId()),
        r -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.NESTED, false, false, parentDomain, r),
        reply -> {
          if (reply instanceof IommuUnitActor.DomainAllocated da) {
            model.domainAllocated(h, da.domainId(), da.pageSizeBitmap(), da.apertureStart(), da.apertureLast());
            model.finalizeHwpt(h);
            opDone(m.replyTo(), new IoasidFdActor.HwptAllocated(h.id(), h.unitId(), h.domainId()));
          } else {
            model.abortHwpt(h);
            opDone(m.replyTo(), refusal(unitError(reply)));
          }
        });
    return this;
  }

  private Behavior<Command> onDestroy(IoasidFdActor.Destroy m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<IommufdCtx.DestroyPlan> begun = model.beginDestroy(m.id());
    if (!begun.isOk()) {
      m.replyTo().tell(refusal(begun));
      return this;
    }
    IommufdCtx.DestroyPlan plan = begun.value();
    if (plan.hwpt() == null) {
      respond(plan.responses());
      m.replyTo().tell(IoasidFdActor.Done.INSTANCE);
      return this;
    }
    opStarted();
    destroyHwpt(plan.hwpt(), () -> opDone(m.replyTo(), IoasidFdActor.Done.INSTANCE));
    return this;
  }

  // ================================================================ invalidation and dirty tracking

  private Behavior<Command> onHwptInvalidate(IoasidFdActor.HwptInvalidate m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<Invalidation.Plan> begun =
        model.beginInvalidate(m.hwptId(), m.dataType(), m.entryLen(), m.entries());
    if (!begun.isOk()) {
      m.replyTo().tell(refusal(begun));
      return this;
    }
    opStarted();
    runSteps(begun.value(), 0, m.replyTo());
    return this;
  }

  private static IommuUnitActor.UserInvalidation toUnit(Invalidation.Entry e) {
    IommuUnitActor.UserInvalidationKind kind =
        switch (e.kind()) {
          case IOTLB_RANGE -> IommuUnitActor.UserInvalidationKind.IOTLB_RANGE;
          case IOTLB_ALL -> IommuUnitActor.UserInvalidationKind.IOTLB_ALL;
          case ATC -> IommuUnitActor.UserInvalidationKind.ATC;
        };
    return new IommuUnitActor.UserInvalidation(kind, e.pasid(), e.address(), e.npages(), e.rid(), e.leaf());
  }

  private void runSteps(Invalidation.Plan plan, int i, ActorRef<Reply> replyTo) {
    if (i == plan.steps().size()) {
      opDone(replyTo, new IoasidFdActor.HwptInvalidated(plan.valid(), plan.errno(), plan.message()));
      return;
    }
    Invalidation.Step step = plan.steps().get(i);
    List<UnitAsk> asks = new ArrayList<>(step.batches().size());
    for (Invalidation.Batch b : step.batches()) {
      List<IommuUnitActor.UserInvalidation> entries = new ArrayList<>(b.entries().size());
      for (Invalidation.Entry e : b.entries()) {
        entries.add(toUnit(e));
      }
      int domainId = b.domainId();
      asks.add(new UnitAsk(unit(b.unitId()), r -> new IommuUnitActor.InvalidateUser(domainId, entries, r)));
    }
    askAll(
        asks,
        replies -> {
          int handledOk = step.to() - step.from();
          Errno errno = null;
          String message = null;
          for (UnitReply r : replies) {
            if (r instanceof IommuUnitActor.UserInvalidated ui) {
              int ok = ui.errno() == null ? ui.handled() : ui.handled() - 1;
              if (ui.errno() != null && ok < handledOk) {
                handledOk = ok;
                errno = ui.errno();
                message = ui.message();
              }
            } else if (r instanceof IommuUnitActor.Refused f) {
              handledOk = 0;
              errno = f.errno();
              message = f.message();
            }
          }
          if (errno != null) {
            opDone(replyTo, new IoasidFdActor.HwptInvalidated(step.from() + handledOk, errno, message));
          } else {
            runSteps(plan, i + 1, replyTo);
          }
        });
  }

  private Behavior<Command> onHwptSetDirtyTracking(IoasidFdActor.HwptSetDirtyTracking m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<HwPagetable> c = model.checkSetDirtyTracking(m.flags(), m.hwptId());
    if (!c.isOk()) {
      m.replyTo().tell(refusal(c));
      return this;
    }
    HwPagetable h = c.value();
    boolean enable = (m.flags() & io.iommulab.actors.fd.model.Uapi.HWPT_DIRTY_TRACKING_ENABLE) != 0;
    opStarted();
    ask(
        unit(h.unitId()),
        r -> new IommuUnitActor.SetDirtyTracking(h.domainId(), enable, r),
        reply -> {
          if (refused(reply)) {
            opDone(m.replyTo(), refusal((IommuUnitActor.Refused) reply));
          } else {
            model.dirtyTrackingSet(h, enable);
            opDone(m.replyTo(), IoasidFdActor.Done.INSTANCE);
          }
        });
    return this;
  }

  private Behavior<Command> onHwptGetDirtyBitmap(IoasidFdActor.HwptGetDirtyBitmap m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<HwPagetable> c =
        model.checkGetDirtyBitmap(m.hwptId(), m.flags(), m.iova(), m.length(), m.pageSize());
    if (!c.isOk()) {
      m.replyTo().tell(refusal(c));
      return this;
    }
    HwPagetable h = c.value();
    boolean clear = (m.flags() & io.iommulab.actors.fd.model.Uapi.HWPT_GET_DIRTY_BITMAP_NO_CLEAR) == 0;
    opStarted();
    ask(
        unit(h.unitId()),
        r -> new IommuUnitActor.ReadAndClearDirty(h.domainId(), m.iova(), m.length(), clear, r),
        reply -> {
          if (!(reply instanceof IommuUnitActor.DirtyRead dr)) {
            opDone(m.replyTo(), refusal(unitError(reply)));
            return;
          }
          long pages = Long.divideUnsigned(m.length(), m.pageSize());
          long[] bitmap = new long[(int) ((pages + 63) / 64)];
          long unitPage = Math.max(dr.pageSize(), 1);
          for (long d : dr.dirtyIovas()) {
            long from = Long.compareUnsigned(d, m.iova()) < 0 ? m.iova() : d;
            long to = d + unitPage - 1;
            long lastReq = m.iova() + m.length() - 1;
            if (Long.compareUnsigned(to, lastReq) > 0) {
              to = lastReq;
            }
            for (long a = from; Long.compareUnsigned(a, to) <= 0; a += m.pageSize()) {
              long bit = Long.divideUnsigned(a - m.iova(), m.pageSize());
              bitmap[(int) (bit >>> 6)] |= 1L << (bit & 63);
              if (a + m.pageSize() < a) {
                break;
              }
            }
          }
          opDone(m.replyTo(), new IoasidFdActor.DirtyBitmap(bitmap));
        });
    return this;
  }

  private Behavior<Command> onGetHwInfo(IoasidFdActor.GetHwInfo m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Outcome<IommufdCtx.HwInfo> o = model.hwInfo(m.flags(), m.devId(), m.dataLen());
    if (!o.isOk()) {
      m.replyTo().tell(refusal(o));
      return this;
    }
    IommufdCtx.HwInfo i = o.value();
    m.replyTo()
        .tell(
            new IoasidFdActor.HwInfo(
                i.outDataType(), i.dataLen(), i.outCapabilities(), i.outMaxPasidLog2(), i.pageSizeBitmap(),
                i.addressWidth(), i.reservedRegions(), i.enforceCacheCoherency()));
    return this;
  }

  // ================================================================ FAULT, vIOMMU, vEVENTQ

  private Behavior<Command> onFaultQueueAlloc(IoasidFdActor.FaultQueueAlloc m) {
    return answer(
        m.replyTo(),
        () -> model.faultQueueAlloc(m.flags()),
        IoasidFdActor.FaultQueueAllocated::new);
  }

  private Behavior<Command> onFaultRead(IoasidFdActor.FaultRead m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Fault f = openOrRefuse(model.fault(m.faultId()), "fault", m.faultId(), m.replyTo());
    if (f == null) {
      return this;
    }
    Outcome<Fault.ReadResult> o = f.readWithHeaders(m.count());
    if (!o.isOk()) {
      m.replyTo().tell(refusal(o));
      return this;
    }
    List<HwptPgfault> records = o.value().records();
    m.replyTo()
        .tell(
            new IoasidFdActor.FaultRecords(
                records, records.size() * io.iommulab.actors.fd.model.Uapi.HWPT_PGFAULT_LEN,
                o.value().headers()));
    return this;
  }

  private Behavior<Command> onFaultWrite(IoasidFdActor.FaultWrite m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Fault f = openOrRefuse(model.fault(m.faultId()), "fault", m.faultId(), m.replyTo());
    if (f == null) {
      return this;
    }
    Outcome<List<Fault.Response>> o = f.write(m.responses());
    if (!o.isOk()) {
      m.replyTo().tell(refusal(o));
      return this;
    }
    respond(o.value());
    m.replyTo().tell(new IoasidFdActor.FaultWritten(o.value().size() * io.iommulab.actors.fd.model.Uapi.HWPT_PAGE_RESPONSE_LEN));
    return this;
  }

  private Behavior<Command> onFaultPoll(IoasidFdActor.FaultPoll m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Fault f = openOrRefuse(model.fault(m.faultId()), "fault", m.faultId(), m.replyTo());
    if (f == null) {
      return this;
    }
    m.replyTo().tell(new IoasidFdActor.Polled(f.readable(), true));
    return this;
  }

  private Behavior<Command> onViommuAlloc(IoasidFdActor.ViommuAlloc m) {
    return answer(
        m.replyTo(),
        () -> model.viommuAlloc(m.flags(), m.type(), m.devId(), m.hwptId()),
        IoasidFdActor.ViommuAllocated::new);
  }

  private Behavior<Command> onVdeviceAlloc(IoasidFdActor.VdeviceAlloc m) {
    return answer(
        m.replyTo(),
        () -> model.vdeviceAlloc(m.viommuId(), m.devId(), m.virtId()),
        IoasidFdActor.VdeviceAllocated::new);
  }

  private Behavior<Command> onVeventqAlloc(IoasidFdActor.VeventqAlloc m) {
    return answer(
        m.replyTo(),
        () -> model.veventqAlloc(m.flags(), m.viommuId(), m.type(), m.veventqDepth()),
        IoasidFdActor.VeventqAllocated::new);
  }

  private Behavior<Command> onVeventqRead(IoasidFdActor.VeventqRead m) {
    if (refuseIfClosed(m.replyTo())) {
      return this;
    }
    Veventq q = openOrRefuse(model.veventq(m.veventqId()), "veventq", m.veventqId(), m.replyTo());
    if (q == null) {
      return this;
    }
    List<Vevent> read = q.read(m.count());
    int bytes = 0;
    for (Vevent v : read) {
      bytes += v.bytes();
    }
    m.replyTo().tell(new IoasidFdActor.VeventsRead(read, bytes));
    return this;
  }

  /**
   * A fault event of one of the fd's attach handles: a pipeline batch, or a single record (the
   * pipeline-less form test doubles send, handled as a batch of one without an answer).
   */
  private Behavior<Command> onFaultEvent(FaultEventReceived m) {
    if (m.event() instanceof FaultsPublished batch) {
      return onFaultsPublished(batch);
    }
    if (m.event() instanceof IommuUnitActor.PageRequested pr) {
      PageRequest r = pr.request();
      process(r.unitId(), List.of(new PublishedFault(faultSink, 0L, null, r, 0L, 0L)));
    } else if (m.event() instanceof IommuUnitActor.DmaFaulted df) {
      DmaFault f = df.fault();
      process(f.unitId(), List.of(new PublishedFault(faultSink, 0L, f, null, 0L, 0L)));
    }
    return this;
  }

  // ================================================================ fault pipeline batches

  /** Where a record goes: its token's attachment, or (no token) the model's current route. */
  private HandleRoute routeOf(int unitId, PublishedFault p) {
    if (p.handleToken() != 0) {
      HandleRoute r = handleRoutes.get(p.handleToken());
      return r != null && r.hwpt().isLive() ? r : null;
    }
    if (p.request() != null) {
      PageRequest req = p.request();
      IommufdCtx.PageRequestRoute route = model.routePageRequest(unitId, req.rid(), req.pasid());
      return route == null ? null : new HandleRoute(route.device(), route.pasid(), route.hwpt());
    }
    DmaFault f = p.fault();
    Device d = model.deviceAt(unitId, f.rid());
    if (d == null) {
      return null;
    }
    int pasid = f.pasid() < 0 ? Device.NO_PASID : f.pasid();
    HwPagetable h = d.attachments().get(pasid);
    if (h == null) {
      h = d.attachments().get(Device.NO_PASID);
    }
    // A bound device's fault without a token: its binding fd is the owner, attached or not
    // (a PAMU LIODN is attached through VFIO-PAMU, not through an fd HWPT).
    return new HandleRoute(d, pasid, h);
  }

  /**
   * One batch of a unit's pipeline: every record, in order, into its queue or counted lost; the
   * answer accounts for each. Records are taken even after close (as lost, handle gone), so the
   * pipeline's count stays exact.
   */
  private Behavior<Command> onFaultsPublished(FaultsPublished batch) {
    faultBatches++;
    int[] outcome = process(batch.unitId(), batch.records());
    batch.replyTo().tell(
        new IommuUnitActor.FaultsSettled(outcome[0], outcome[1], outcome[2], vmId));
    return this;
  }

  /** Every record in order; returns {delivered, lost queue full, lost handle gone}. */
  private int[] process(int unitId, List<PublishedFault> records) {
    int delivered = 0;
    int lostFull = 0;
    int gone = 0;
    Fault lastFault = null;
    Veventq lastVeventq = null;
    for (PublishedFault p : records) {
      if (p.discardsPartials()) {
        if (!closed) {
          discardPartials(unitId);
        }
        continue;
      }
      HandleRoute route = closed ? null : routeOf(unitId, p);
      if (p.request() != null) {
        PageRequest req = p.request();
        Fault fault = route == null ? null : route.hwpt().fault();
        if (fault == null) {
          pageRequestsHandleGone++;
          gone++;
          // A tokened handle is gone only after the unit detached or replaced it, which answered
          // its pending groups INVALID then: answering again could hit a newer group of the same
          // PRG index. Without a token the owner is the only one to answer.
          if (p.handleToken() == 0 && req.lastPage() && units.containsKey(unitId)) {
            unit(unitId).tell(new IommuUnitActor.RespondPageRequest(
                req.rid(), req.pasid(), req.groupId(), FaultPolicy.lastPageLostAtOwner(), 0L));
          }
          continue;
        }
        lastFault = fault;
        Fault.Reported r = fault.report(route.device(), route.hwpt(), route.pasid(), req.groupId(),
            req.addr(), req.perm(), req.lastPage(), p.handleToken());
        switch (r) {
          case QUEUED_AND_READABLE, LOST_AND_READABLE ->
              events.tell(new IoasidFdActor.FaultQueueReadable(ictxId, fault.id()));
          default -> {}
        }
        switch (r) {
          case PARTIAL, QUEUED, QUEUED_AND_READABLE -> {
            pageRequestsQueued++;
            delivered++;
          }
          case LOST, LOST_AND_READABLE -> {
            pageRequestsLostQueueFull++;
            lostFull++;
            Fault.Group g = fault.takeFailedGroup();
            if (g != null) {
              partialsDiscarded += g.size() - 1;
              respond(List.of(new Fault.Response(g, Uapi.PAGE_RESP_INVALID)));
            }
          }
          case FAILED -> {
            // Group allocation failed (injected ENOMEM): lost, the group answered FAILURE.
            pageRequestsFailed++;
            lostFull++;
            Fault.Group g = fault.takeFailedGroup();
            if (req.lastPage()) {
              respond(List.of(new Fault.Response(g, Fault.RESP_FAILURE)));
            }
          }
        }
        continue;
      }
      DmaFault f = p.fault();
      if (route == null) {
        dmaFaultsHandleGone++;
        gone++;
        continue;
      }
      Device d = route.device();
      Veventq q = model.veventqFor(d, route.hwpt());
      switch (FaultPolicy.atOwner(d.info().kind(), f.reason(), q != null)) {
        case DISABLED_OWNER_TOLD -> {
          dmaFaultsOwnerTold++;
          delivered++;
          events.tell(new IoasidFdActor.DeviceDmaDisabled(ictxId, d.id(), d.name(),
              f.reason().name(), f.iova()));
        }
        case TO_VEVENTQ -> {
          lastVeventq = q;
          long lostBefore = q.lostEvents();
          boolean woke = q.report(model.virtIdOf(d), f.reason().name(), f.iova(), f.access());
          if (q.lostEvents() != lostBefore) {
            dmaFaultsLostVeventqFull++;
            lostFull++;
          } else {
            dmaFaultsToVeventq++;
            delivered++;
          }
          if (woke) {
            events.tell(new IoasidFdActor.VeventqReadable(ictxId, q.id()));
          }
        }
        case RECORD -> {
          dmaFaultsRecorded++;
          delivered++;
        }
      }
    }
    if (lastFault != null) {
      faultQueueDepth.record(lastFault.held());
    }
    if (lastVeventq != null) {
      veventqDepth.record(lastVeventq.numEvents());
    }
    if (delivered > 0) {
      deliveredCounter.increment(delivered);
    }
    if (lostFull > 0) {
      lostQueueFullCounter.increment(lostFull);
    }
    if (gone > 0) {
      handleGoneCounter.increment(gone);
    }
    return new int[] {delivered, lostFull, gone};
  }

  /** The unit's page request queue overflowed and drained: drop its devices' partial groups. */
  private void discardPartials(int unitId) {
    for (Fault f : model.objects().live(Fault.class)) {
      partialsDiscarded += f.discardPartials(unitId);
    }
  }

  private Behavior<Command> onGetFaultStats(IoasidFdActor.GetFaultStats m) {
    long held = 0;
    for (Fault f : model.objects().live(Fault.class)) {
      held += f.held();
    }
    m.replyTo().tell(new IoasidFdActor.FaultStats(ictxId, vmId, held, pageRequestsQueued,
        pageRequestsLostQueueFull, pageRequestsHandleGone, pageRequestsFailed, dmaFaultsToVeventq,
        dmaFaultsLostVeventqFull, dmaFaultsRecorded, dmaFaultsOwnerTold, dmaFaultsHandleGone,
        partialsDiscarded, faultBatches));
    return this;
  }

  // ================================================================ close and snapshot

  private Behavior<Command> onGetSnapshot(IoasidFdActor.GetSnapshot m) {
    // A snapshot of a model whose invariants broke would be a lie: throw (a bug) instead.
    model.checkInvariants();
    m.replyTo().tell(new IoasidFdActor.Snapshotted(model.snapshot(pendingOps)));
    return this;
  }

  private Behavior<Command> onClose(IoasidFdActor.Close m) {
    if (closed) {
      m.replyTo().tell(new IoasidFdActor.Refused(Errno.EBADF, "fd " + ictxId + " is closed"));
      return this;
    }
    closing = true;
    closeWaiters.add(m.replyTo());
    maybeStartClose();
    return this;
  }

  private void maybeStartClose() {
    if (closing && !closeStarted && pendingOps == 0) {
      closeStarted = true;
      objectsDestroyedAtClose = model.objects().size();
      modes.beforeClose(() -> unbindAll(model.boundDevices(), 0));
    }
  }

  private void unbindAll(List<Device> devices, int i) {
    if (i == devices.size()) {
      destroyRound();
      return;
    }
    Outcome<Device> begun = model.beginUnbind(devices.get(i).id());
    if (!begun.isOk()) {
      throw new IllegalStateException("close cannot unbind: " + begun);
    }
    unbind(begun.value(), () -> unbindAll(devices, i + 1));
  }

  /** One round of {@code iommufd_fops_release}: destroy every leaf, then look again. */
  private void destroyRound() {
    List<FdObject> leaves = model.leaves();
    if (leaves.isEmpty() && model.areasAwaitingFlush() > 0) {
      closeAwaitsFlush = true; // released() comes back here once the units flushed
      return;
    }
    if (leaves.isEmpty()) {
      model.finishClose();
      closed = true;
      for (ActorRef<Reply> w : closeWaiters) {
        w.tell(new IoasidFdActor.Closed(objectsDestroyedAtClose, pagesUnpinned));
      }
      closeWaiters.clear();
      return;
    }
    int[] left = {leaves.size()};
    Runnable one = () -> {
      if (--left[0] == 0) {
        destroyRound();
      }
    };
    for (FdObject o : leaves) {
      Outcome<IommufdCtx.DestroyPlan> plan = model.beginDestroy(o.id());
      if (!plan.isOk()) {
        throw new IllegalStateException("close cannot destroy a leaf: " + plan);
      }
      if (plan.value().hwpt() != null) {
        destroyHwpt(plan.value().hwpt(), one);
      } else {
        respond(plan.value().responses());
        one.run();
      }
    }
  }

  // ================================================================ the modes' port

  /** Software nesting: the shadow segments built from unmapped parent areas leave with them. */
  private void shadowUnmapAsks(
      Ioas ioas, List<Area> areas, List<UnitAsk> asks, List<Area> askArea, List<Integer> askUnit) {
    List<ActorRef<IommuUnitActor.Command>> targets = new ArrayList<>();
    List<Function<ActorRef<UnitReply>, IommuUnitActor.Command>> makes = new ArrayList<>();
    modes.shadow.parentUnmapAsks(ioas, areas, flushTo, targets, makes, askArea, askUnit);
    for (int i = 0; i < targets.size(); i++) {
      asks.add(new UnitAsk(targets.get(i), makes.get(i)));
    }
  }

  /**
   * Runs {@code r} as a step of an operation already in flight: the closed check of a command's
   * entry is skipped (close waits for the operation; its inner steps must not be refused EBADF).
   */
  private void bypassClosed(Runnable r) {
    boolean was = closing;
    closing = false;
    try {
      r.run();
    } finally {
      closing = was;
    }
  }

  /**
   * What the mode handlers ({@link ModeHandlers}) may use of this behavior: its model, the asks
   * of units, and its own operations run as steps of a mode's operation (through {@link
   * IoasidFdActor.SelfCall}, or directly when the reply is not needed).
   */
  final class Port {
    ActorContext<Command> context() {
      return getContext();
    }

    IommufdCtx model() {
      return model;
    }

    int ictxId() {
      return ictxId;
    }

    int vmId() {
      return vmId;
    }

    boolean refuseIfClosed(ActorRef<Reply> replyTo) {
      return FdBehavior.this.refuseIfClosed(replyTo);
    }

    /** See {@link FdBehavior#answer}. */
    <T> void answer(
        ActorRef<Reply> replyTo,
        Supplier<Outcome<T>> call,
        Function<? super T, ? extends Reply> ok) {
      FdBehavior.this.answer(replyTo, call, ok);
    }

    void opStarted() {
      FdBehavior.this.opStarted();
    }

    void opDone(ActorRef<Reply> replyTo, Reply reply) {
      FdBehavior.this.opDone(replyTo, reply);
    }

    ActorRef<IommuUnitActor.Command> unit(int unitId) {
      return FdBehavior.this.unit(unitId);
    }

    ActorRef<IommuUnitActor.FaultEvent> faultSink() {
      return faultSink;
    }

    void ask(
        ActorRef<IommuUnitActor.Command> unit,
        Function<ActorRef<UnitReply>, IommuUnitActor.Command> make,
        Consumer<UnitReply> then) {
      FdBehavior.this.ask(unit, make, then);
    }

    /** Every ask; {@code done} gets the replies in order. */
    void askAll(
        List<ActorRef<IommuUnitActor.Command>> targets,
        List<Function<ActorRef<UnitReply>, IommuUnitActor.Command>> makes,
        Consumer<UnitReply[]> done) {
      List<UnitAsk> asks = new ArrayList<>(targets.size());
      for (int i = 0; i < targets.size(); i++) {
        asks.add(new UnitAsk(targets.get(i), makes.get(i)));
      }
      FdBehavior.this.askAll(asks, done);
    }

    /** Runs {@code action} with a reply ref whose reply comes back to {@code then}. */
    void askSelf(Consumer<ActorRef<Reply>> action, Consumer<Reply> then) {
      io.iommulab.actors.Asks.<Command, Command, Reply>ask(
          getContext(),
          getContext().getSelf(),
          UNIT_TIMEOUT,
          ref -> new IoasidFdActor.SelfCall(action, ref),
          (reply, failure) ->
              new IoasidFdActor.SelfAnswered(
                  then,
                  reply != null
                      ? reply
                      : new IoasidFdActor.Refused(Errno.EIO, "fd did not answer itself: " + failure)));
    }

    void map(IoasidFdActor.IoasMap m, Accounting.Mode mode) {
      mapWith(m, mode);
    }

    void unmap(IoasidFdActor.IoasUnmap m) {
      onIoasUnmap(m);
    }

    void attach(int devId, int pasid, int ptId, boolean replace, ActorRef<Reply> replyTo) {
      onAttach(devId, pasid, ptId, replace, replyTo);
    }

    void detach(int devId, int pasid, ActorRef<Reply> replyTo) {
      onDetach(devId, pasid, replyTo);
    }

    void hwptAlloc(IoasidFdActor.HwptAlloc m) {
      onHwptAlloc(m);
    }

    void destroy(IoasidFdActor.Destroy m) {
      onDestroy(m);
    }

    void invalidate(IoasidFdActor.HwptInvalidate m) {
      onHwptInvalidate(m);
    }

    void gateRead(Ioas ioas, Runnable then) {
      gate(ioas).read(then);
    }

    void releaseRead(Ioas ioas) {
      FdBehavior.this.releaseRead(ioas);
    }

    void gateWrite(Ioas ioas, Runnable then) {
      gate(ioas).write(then);
    }

    void releaseWrite(Ioas ioas) {
      FdBehavior.this.releaseWrite(ioas);
    }

    void freeDomain(HwPagetable h, Runnable then) {
      FdBehavior.this.freeDomain(h, then);
    }

    void destroyHwpt(HwPagetable h, Runnable then) {
      FdBehavior.this.destroyHwpt(h, then);
    }

    void kvmCoherency(Device cause) {
      FdBehavior.this.kvmCoherency(cause);
    }

    Reply refusal(Outcome<?> o) {
      return FdBehavior.refusal(o);
    }

    Reply refusal(IommuUnitActor.Refused r) {
      return FdBehavior.refusal(r);
    }

    void log(String format, Object... args) {
      getContext().getLog().warn(format, args);
    }

    /** A unit refused an unmap the fd needed (a bug): logged as an error and counted. */
    void unmapRefused(String what, UnitReply reply) {
      model.unitRefusedTeardown();
      FdBehavior.this.unmapRefused(what, reply);
    }
  }
}
