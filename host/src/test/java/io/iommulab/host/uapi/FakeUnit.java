package io.iommulab.host.uapi;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.Command;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.iommu.Domain;
import io.iommulab.hardware.iommu.IommuUnit;
import io.iommulab.hardware.iommu.NestedDomain;
import io.iommulab.hardware.iommu.PagingDomain;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * A stand-in for the paging IOMMU unit actor (its implementation is another helper's), answering
 * the committed {@link IommuUnitActor} protocol the way the real unit does, on the real hardware
 * model ({@link IommuUnit}): domains, maps and unmaps into real page tables, attaches into real
 * PASID tables, DMA-ownership claims per group (EPERM for another owner), and {@link
 * IommuUnitActor.UnitSnapshotted} from {@link IommuUnit#snapshot()}. Invalidation queues and device
 * TLBs are not exercised. A {@link Control} lets a test fail or hold chosen commands and watch what
 * the fd sent.
 */
final class FakeUnit {
  private FakeUnit() {}

  /** Test-side handle: thread-safe, read by the actor, set by the test. */
  static final class Control {
    final AtomicReference<Errno> failNextMap = new AtomicReference<>();
    /** Fail the map whose ordinal (from 1) equals this, counting from when it was set. */
    final AtomicInteger failMapAfter = new AtomicInteger();
    final AtomicReference<Errno> failNextAttach = new AtomicReference<>();
    final AtomicReference<Errno> failNextAlloc = new AtomicReference<>();
    /** When set, MapRange is applied but its reply is held until {@link #releaseHeld()}. */
    volatile boolean holdMaps;
    /** When ≥ 0, InvalidateUser fails at this entry index with EINVAL. */
    final AtomicInteger failInvalidateAt = new AtomicInteger(-1);
    final BlockingQueue<Runnable> held = new LinkedBlockingQueue<>();
    final ConcurrentLinkedQueue<Command> received = new ConcurrentLinkedQueue<>();
    final Map<Long, ActorRef<IommuUnitActor.FaultEvent>> sinks = new ConcurrentHashMap<>();
    final ConcurrentLinkedQueue<IommuUnitActor.RespondPageRequest> responses = new ConcurrentLinkedQueue<>();
    final ConcurrentLinkedQueue<List<IommuUnitActor.UserInvalidation>> invalidations =
        new ConcurrentLinkedQueue<>();

    static long key(int rid, int pasid) {
      return ((long) rid << 32) | (pasid & 0xffffffffL);
    }

    /** Waits (test thread) until {@code n} map replies are held. */
    void awaitHeld(int n) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (held.size() < n) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("no held map reply after 5 s");
        }
        Thread.onSpinWait();
      }
    }

    /** Sends every held reply and stops holding. */
    void releaseHeld() {
      holdMaps = false;
      Runnable r;
      while ((r = held.poll()) != null) {
        r.run();
      }
    }

    long count(Class<? extends Command> type) {
      return received.stream().filter(type::isInstance).count();
    }

    ActorRef<IommuUnitActor.FaultEvent> sink(int rid, int pasid) {
      return sinks.get(key(rid, pasid));
    }
  }

  private record Dev(int rid, int group, int pasidBits, boolean ats, boolean pri) {}

  static Behavior<Command> create(int unitId, PagingUnitSettings settings, Control control) {
    return Behaviors.setup(ctx -> new FakeUnitBehavior(unitId, settings, control).behavior());
  }

  private static final class FakeUnitBehavior {
    private final int unitId;
    private final PagingUnitSettings settings;
    private final Control control;
    private final IommuUnit unit;
    private final long pageSizeBitmap;
    private final Map<Integer, Dev> devices = new HashMap<>();
    private final Map<Integer, Integer> groupOwner = new HashMap<>();
    private final Map<Integer, Integer> claimedBy = new HashMap<>();

    FakeUnitBehavior(int unitId, PagingUnitSettings settings, Control control) {
      this.unitId = unitId;
      this.settings = settings;
      this.control = control;
      this.unit = new IommuUnit(unitId, settings, CostModel.defaults(), 1, FaultInjector.NONE);
      long bitmap = 0;
      for (long size : settings.pageSizes()) {
        bitmap |= size;
      }
      this.pageSizeBitmap = bitmap;
    }

    private static int pasidOf(int pasid) {
      return pasid == IommuUnitActor.NO_PASID ? IommuUnit.RID_PASID : pasid;
    }

    private static Behavior<Command> refuse(ActorRef<UnitReply> to, Errno e, String m) {
      to.tell(new IommuUnitActor.Refused(e, m));
      return Behaviors.same();
    }

    private static Behavior<Command> refuse(ActorRef<UnitReply> to, Outcome<?> o) {
      Outcome.Err<?> e = (Outcome.Err<?>) o;
      to.tell(new IommuUnitActor.Refused(e.errno(), e.message()));
      return Behaviors.same();
    }

    private IommuUnitActor.UnitInfo info(Dev d) {
      return new IommuUnitActor.UnitInfo(
          unitId, settings.name(), settings.kind(), pageSizeBitmap, unit.addressWidth(), 0,
          (1L << unit.addressWidth()) - 1, Math.min(d.pasidBits(), unit.pasidBits()), unit.snoopControl(),
          unit.dirtyTracking(), unit.nesting(), unit.msiIsolation(), d.ats(), d.pri(), unit.reservedRegions());
    }

    Behavior<Command> behavior() {
      return Behaviors.setup(ctx -> Behaviors.receive(Command.class)
          .onMessage(Command.class, c -> on(uncorrelated(ctx, c)))
          .build());
    }

    /**
     * The command inside a {@link IommuUnitActor.Correlated}, its reply rerouted through a
     * one-shot child that answers {@link IommuUnitActor.Answer} with the correlation.
     */
    private static Command uncorrelated(org.apache.pekko.actor.typed.javadsl.ActorContext<Command> ctx, Command cmd) {
      if (!(cmd instanceof IommuUnitActor.Correlated c)) {
        return cmd;
      }
      ActorRef<IommuUnitActor.UnitReply> once = ctx.spawnAnonymous(
          Behaviors.receive(IommuUnitActor.UnitReply.class)
              .onAnyMessage(reply -> {
                c.replyTo().tell(IommuUnitActor.Answer.of(c.corr(), reply));
                return Behaviors.stopped();
              })
              .build());
      if (c.map() != null) {
        IommuUnitActor.MapRange m = c.map();
        return new IommuUnitActor.MapRange(m.domainId(), m.iova(), m.hpas(), m.lengths(), m.prot(), once);
      }
      IommuUnitActor.UnmapRange u = c.unmap();
      return new IommuUnitActor.UnmapRange(u.domainId(), u.iova(), u.length(), u.flushTo(), once);
    }

    private Behavior<Command> on(Command c) {
      control.received.add(c);
      if (c instanceof IommuUnitActor.RegisterDevice r) {
        Outcome<Void> o = unit.addDevice(r.rid(), r.pasidBits(), r.ats());
        if (!o.isOk()) {
          return refuse(r.replyTo(), o);
        }
        devices.put(r.rid(), new Dev(r.rid(), r.group(), r.pasidBits(), r.ats(), false));
        r.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.ClaimDmaOwner m) {
        Dev d = devices.get(m.rid());
        if (d == null) {
          return refuse(m.replyTo(), Errno.ENODEV, "rid not registered");
        }
        Integer owner = groupOwner.get(d.group());
        if (owner != null && owner != m.ictxId()) {
          return refuse(m.replyTo(), Errno.EPERM, "group " + d.group() + " is owned by context " + owner);
        }
        if (claimedBy.containsKey(m.rid())) {
          return refuse(m.replyTo(), Errno.EBUSY, "rid already bound");
        }
        groupOwner.put(d.group(), m.ictxId());
        claimedBy.put(m.rid(), m.ictxId());
        m.replyTo().tell(new IommuUnitActor.DmaOwnerClaimed(info(d)));
      } else if (c instanceof IommuUnitActor.ReleaseDmaOwner m) {
        Dev d = devices.get(m.rid());
        if (d == null || !Integer.valueOf(m.ictxId()).equals(claimedBy.get(m.rid()))) {
          return refuse(m.replyTo(), Errno.EINVAL, "no claim");
        }
        claimedBy.remove(m.rid());
        if (claimedBy.entrySet().stream().noneMatch(e -> devices.get(e.getKey()).group() == d.group())) {
          groupOwner.remove(d.group());
        }
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.AllocDomain m) {
        Errno fail = control.failNextAlloc.getAndSet(null);
        if (fail != null) {
          return refuse(m.replyTo(), fail, "injected by the test");
        }
        if (m.type() == IommuUnitActor.DomainType.NESTED) {
          Domain parent = unit.domain(m.parentDomainId());
          if (!(parent instanceof PagingDomain p)) {
            return refuse(m.replyTo(), Errno.EINVAL, "no parent");
          }
          Outcome<NestedDomain> n = unit.allocNestedDomain(p);
          if (!n.isOk()) {
            return refuse(m.replyTo(), n);
          }
          m.replyTo().tell(new IommuUnitActor.DomainAllocated(n.value().id(), pageSizeBitmap, unit.addressWidth(), 0,
              (1L << unit.addressWidth()) - 1));
        } else {
          Outcome<PagingDomain> p = unit.allocPagingDomain(m.nestParent(), m.dirtyTracking());
          if (!p.isOk()) {
            return refuse(m.replyTo(), p);
          }
          m.replyTo().tell(new IommuUnitActor.DomainAllocated(p.value().id(), pageSizeBitmap, unit.addressWidth(), 0,
              (1L << unit.addressWidth()) - 1));
        }
      } else if (c instanceof IommuUnitActor.FreeDomain m) {
        Domain d = unit.domain(m.domainId());
        if (d == null) {
          return refuse(m.replyTo(), Errno.ENOENT, "no domain");
        }
        Outcome<Void> o = unit.freeDomain(d);
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.EnforceCacheCoherency m) {
        if (!(unit.domain(m.domainId()) instanceof PagingDomain p)) {
          return refuse(m.replyTo(), Errno.EINVAL, "no paging domain");
        }
        Outcome<Void> o = p.enforceCacheCoherency();
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.SetDirtyTracking m) {
        if (!(unit.domain(m.domainId()) instanceof PagingDomain p)) {
          return refuse(m.replyTo(), Errno.EINVAL, "no paging domain");
        }
        Outcome<Void> o = p.setDirtyTracking(m.enabled());
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.ReadAndClearDirty m) {
        if (!(unit.domain(m.domainId()) instanceof PagingDomain p)) {
          return refuse(m.replyTo(), Errno.EINVAL, "no paging domain");
        }
        List<Long> dirty = new ArrayList<>();
        Outcome<Long> o = p.readAndClearDirty(m.iova(), m.length(), m.clear(), dirty::add);
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        m.replyTo().tell(new IommuUnitActor.DirtyRead(dirty.stream().mapToLong(Long::longValue).toArray(), 4096));
      } else if (c instanceof IommuUnitActor.MapRange m) {
        return onMap(m);
      } else if (c instanceof IommuUnitActor.UnmapRange m) {
        if (!(unit.domain(m.domainId()) instanceof PagingDomain p)) {
          return refuse(m.replyTo(), Errno.EINVAL, "no paging domain " + m.domainId());
        }
        Outcome<Long> o = p.unmap(m.iova(), m.length());
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        m.replyTo().tell(IommuUnitActor.Unmapped.strict(o.value(), 0));
      } else if (c instanceof IommuUnitActor.Attach m) {
        Errno fail = control.failNextAttach.getAndSet(null);
        if (fail != null) {
          return refuse(m.replyTo(), fail, "injected by the test");
        }
        Domain d = unit.domain(m.domainId());
        if (d == null) {
          return refuse(m.replyTo(), Errno.EINVAL, "no domain " + m.domainId());
        }
        Outcome<?> o = unit.attach(m.rid(), pasidOf(m.pasid()), d);
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        if (m.faultSink() != null) {
          control.sinks.put(Control.key(m.rid(), m.pasid()), m.faultSink());
        }
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.Replace m) {
        Domain d = unit.domain(m.domainId());
        if (d == null) {
          return refuse(m.replyTo(), Errno.EINVAL, "no domain " + m.domainId());
        }
        Outcome<?> o = unit.replace(m.rid(), pasidOf(m.pasid()), d);
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.Detach m) {
        Outcome<?> o = unit.detach(m.rid(), pasidOf(m.pasid()));
        if (!o.isOk()) {
          return refuse(m.replyTo(), o);
        }
        control.sinks.remove(Control.key(m.rid(), m.pasid()));
        m.replyTo().tell(IommuUnitActor.Done.INSTANCE);
      } else if (c instanceof IommuUnitActor.InvalidateUser m) {
        control.invalidations.add(List.copyOf(m.entries()));
        int at = control.failInvalidateAt.get();
        if (at >= 0 && at < m.entries().size()) {
          m.replyTo().tell(new IommuUnitActor.UserInvalidated(at + 1, Errno.EINVAL, "injected at entry " + at, 0));
        } else {
          m.replyTo().tell(new IommuUnitActor.UserInvalidated(m.entries().size(), null, null, 0));
        }
      } else if (c instanceof IommuUnitActor.RespondPageRequest m) {
        control.responses.add(m);
      } else if (c instanceof IommuUnitActor.GetSnapshot m) {
        m.replyTo().tell(new IommuUnitActor.UnitSnapshotted(unit.snapshot(), null, List.of(), List.of(), List.of()));
      }
      return Behaviors.same();
    }

    private Behavior<Command> onMap(IommuUnitActor.MapRange m) {
      if (!(unit.domain(m.domainId()) instanceof PagingDomain d)) {
        return refuse(m.replyTo(), Errno.EINVAL, "no paging domain " + m.domainId());
      }
      Errno fail = control.failNextMap.getAndSet(null);
      int after = control.failMapAfter.get();
      if (after > 0 && control.failMapAfter.decrementAndGet() == 0) {
        fail = Errno.ENOMEM;
      }
      if (fail != null) {
        return refuse(m.replyTo(), fail, "injected by the test");
      }
      long cur = m.iova();
      long total = 0;
      for (int i = 0; i < m.hpas().length; i++) {
        Outcome<Void> r = d.map(cur, m.hpas()[i], m.lengths()[i], m.prot());
        if (!r.isOk()) {
          if (total > 0) {
            d.unmap(m.iova(), total);
          }
          return refuse(m.replyTo(), r);
        }
        cur += m.lengths()[i];
        total += m.lengths()[i];
      }
      long bytes = total;
      if (control.holdMaps) {
        control.held.add(() -> m.replyTo().tell(new IommuUnitActor.Mapped(bytes, 0)));
      } else {
        m.replyTo().tell(new IommuUnitActor.Mapped(bytes, 0));
      }
      return Behaviors.same();
    }
  }

  /** A device actor stand-in: ignores everything (DMA is not exercised by the uAPI suite). */
  static Behavior<DeviceActor.Command> device() {
    return Behaviors.ignore();
  }

  static final Duration ASK = Duration.ofSeconds(5);
}
