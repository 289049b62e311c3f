package io.iommulab.actors.unit;

import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor.AllocDomain;
import io.iommulab.actors.unit.IommuUnitActor.Attach;
import io.iommulab.actors.unit.IommuUnitActor.BankLearned;
import io.iommulab.actors.unit.IommuUnitActor.Command;
import io.iommulab.actors.unit.IommuUnitActor.Detach;
import io.iommulab.actors.unit.IommuUnitActor.DomainAllocated;
import io.iommulab.actors.unit.IommuUnitActor.DomainType;
import io.iommulab.actors.unit.IommuUnitActor.EnforceCacheCoherency;
import io.iommulab.actors.unit.IommuUnitActor.FreeDomain;
import io.iommulab.actors.unit.IommuUnitActor.GetInvalidationStats;
import io.iommulab.actors.unit.IommuUnitActor.GetSnapshot;
import io.iommulab.actors.unit.IommuUnitActor.InvalidateUser;
import io.iommulab.actors.unit.IommuUnitActor.MapRange;
import io.iommulab.actors.unit.IommuUnitActor.Mapped;
import io.iommulab.actors.unit.IommuUnitActor.MsiBankMapped;
import io.iommulab.actors.unit.IommuUnitActor.MsiWrite;
import io.iommulab.actors.unit.IommuUnitActor.PamuGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuGetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuMapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetGeometry;
import io.iommulab.actors.unit.IommuUnitActor.PamuSetWindowCount;
import io.iommulab.actors.unit.IommuUnitActor.PamuUnmapMsiBank;
import io.iommulab.actors.unit.IommuUnitActor.ReadAndClearDirty;
import io.iommulab.actors.unit.IommuUnitActor.RegisterDevice;
import io.iommulab.actors.unit.IommuUnitActor.Replace;
import io.iommulab.actors.unit.IommuUnitActor.SetDirtyTracking;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Map;
import io.iommulab.actors.unit.IommuUnitActor.Stage1Unmap;
import io.iommulab.actors.unit.IommuUnitActor.UnitInfo;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.actors.unit.IommuUnitActor.UnitSnapshotted;
import io.iommulab.actors.unit.IommuUnitActor.UnitStats;
import io.iommulab.actors.unit.IommuUnitActor.UnmapRange;
import io.iommulab.actors.unit.IommuUnitActor.Unmapped;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.fault.DmaFault;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.pamu.PamuDomain;
import io.iommulab.hardware.pamu.PamuUnit;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * A Freescale PAMU: owns one {@link PamuUnit} (PPAACT, the shared SPAACT pool, the domains and
 * their windows, the access-violation state) plus what every unit owns ({@link UnitActorBase}),
 * the LIODN attachments of its functions, and where each MSI bank's MSIIR page is (asked of every
 * bank at start, and learnt from {@link PamuMapMsiBank}). Paging-only commands (nesting, dirty
 * tracking, cache coherency, replace, user invalidation) are refused EOPNOTSUPP.
 *
 * <p>Commands follow the VFIO-PAMU contract of {@link PamuDomain}: a map covers whole windows and
 * enables the domain, an unmap disables it once nothing is mapped, an MSI bank takes a whole
 * window. A function is attached by its LIODN; functions of one group may share a LIODN, which
 * stays attached until the last of them detaches. PAACE updates need no invalidation queue, so
 * unmap and detach complete at once. DMA is translated through the LIODN's windows; a faulting
 * access is an access violation, which disables the LIODN (the model's ISR) until a map or
 * enable re-validates it. An MSI write that lands on an MSIIR page is delivered to that bank's
 * actor; one that lands elsewhere is a 4-byte DMA write, checked like any other.
 */
final class PamuUnitActor extends UnitActorBase {

  /** Window sizes: any power of two from 4 KiB ({@code fsl_pamu} domains take whole windows). */
  private static final long PAGE_SIZE_BITMAP = ~0xFFFL;
  /** PAMU translations output 36-bit physical addresses (64 GiB, the default window). */
  private static final int ADDRESS_WIDTH = 36;

  static Behavior<Command> create(Wiring wiring, PamuUnitSettings settings, FaultInjector injector) {
    return Behaviors.setup(
        context -> {
          ActorRef<MsiBankActor.BankReply> learn =
              context.messageAdapter(MsiBankActor.BankReply.class, PamuUnitActor::learnt);
          for (ActorRef<MsiBankActor.Command> bank : wiring.msiBanks().values()) {
            bank.tell(new MsiBankActor.GetBankState(learn));
          }
          return new PamuUnitActor(
              context, wiring, settings,
              new PamuUnit(wiring.unitId(), settings, wiring.cost(), injector));
        });
  }

  private static Command learnt(MsiBankActor.BankReply reply) {
    return reply instanceof MsiBankActor.BankState s
        ? new BankLearned(s.bankIndex(), s.msiirAddress())
        : new BankLearned(-1, 0);
  }

  private final PamuUnitSettings settings;
  private final io.iommulab.config.InvalidationPipelineSettings.Mode mode;
  private final PamuUnit pamu;
  /** MSIIR page → bank index. */
  private final Map<Long, Integer> msiPages = new HashMap<>();
  /** RID → the PAMU domain it is attached to. */
  private final Map<Integer, Integer> attachedTo = new HashMap<>();
  /** Attached functions per LIODN (functions of a group may share one). */
  private final int[] liodnUsers;
  /** Reused by MSI writes. */
  private final Translation msiScratch = new Translation();

  private PamuUnitActor(
      ActorContext<Command> context, Wiring wiring, PamuUnitSettings settings, PamuUnit pamu) {
    super(context, wiring);
    this.settings = settings;
    this.mode = wiring.pipeline().mode();
    this.pamu = pamu;
    this.liodnUsers = new int[pamu.liodnCount()];
  }

  @Override
  public Receive<Command> createReceive() {
    return commonReceive()
        .onMessage(PamuSetGeometry.class, this::onPamuSetGeometry)
        .onMessage(PamuSetWindowCount.class, this::onPamuSetWindowCount)
        .onMessage(PamuGetGeometry.class, this::onPamuGetGeometry)
        .onMessage(PamuMapMsiBank.class, this::onPamuMapMsiBank)
        .onMessage(PamuUnmapMsiBank.class, this::onPamuUnmapMsiBank)
        .onMessage(Replace.class, m -> unsupported(m.replyTo(), "Replace"))
        .onMessage(EnforceCacheCoherency.class, m -> unsupported(m.replyTo(), "EnforceCacheCoherency"))
        .onMessage(SetDirtyTracking.class, m -> unsupported(m.replyTo(), "SetDirtyTracking"))
        .onMessage(ReadAndClearDirty.class, m -> unsupported(m.replyTo(), "ReadAndClearDirty"))
        .onMessage(Stage1Map.class, m -> unsupported(m.replyTo(), "Stage1Map"))
        .onMessage(Stage1Unmap.class, m -> unsupported(m.replyTo(), "Stage1Unmap"))
        .onMessage(InvalidateUser.class, m -> unsupported(m.replyTo(), "InvalidateUser"))
        .build();
  }

  // ---------------------------------------------------------------- the kind's part of the base

  @Override
  protected Outcome<Void> probe(RegisterDevice msg) {
    if (msg.liodn() < 0 || msg.liodn() >= pamu.liodnCount()) {
      return Outcome.err(Errno.EINVAL, "liodn %d: beyond the PPAACT (%d entries)", msg.liodn(),
          pamu.liodnCount());
    }
    if (msg.pasidBits() != 0 || msg.ats() || msg.pri()) {
      return Outcome.err(Errno.EINVAL, "rid %s: a PAMU has no PASID, ATS or PRI", rid(msg.rid()));
    }
    return Outcome.OK;
  }

  @Override
  protected Outcome<Void> unprobe(DeviceEntry device) {
    if (attachedTo.containsKey(device.rid)) {
      return Outcome.err(Errno.EBUSY, "rid %s: attached to domain %d", rid(device.rid),
          attachedTo.get(device.rid));
    }
    return Outcome.OK;
  }

  @Override
  protected boolean attached(DeviceEntry device) {
    return attachedTo.containsKey(device.rid);
  }

  @Override
  protected void translate(
      DeviceEntry device, int rid, int pasid, long iova, int access, boolean ats, long now,
      Translation out) {
    if (ats) {
      throw new IllegalStateException(rid(rid) + " issued an ATS request to a PAMU");
    }
    // PAMU knows no RID or PASID: it indexes the PPAACT by the LIODN the bus carries.
    out.reset();
    pamu.translate(device == null ? -1 : device.liodn, iova, access, now, out);
  }

  @Override
  protected UnitInfo info(DeviceEntry e) {
    return new UnitInfo(
        unitId, name, kind, PAGE_SIZE_BITMAP, ADDRESS_WIDTH,
        settings.defaultApertureStart(),
        settings.defaultApertureStart() + settings.defaultApertureSize() - 1,
        0, false, false, false, settings.msiIsolation(), false, false, List.of());
  }

  @Override
  protected UnitStats stats(Common c) {
    return new UnitStats(
        unitId, name, c.translations(), 0, 0, c.faults(), c.pageRequests(), 0, 0, 0, 0,
        pamu.domains().size(), c.unhandledFaults(), c.faultLog(), c.pageResponses(),
        c.staleResponses(), c.msiWrites(), c.msiUnisolated(), 0, 0, 0);
  }

  @Override
  protected void atcAcknowledged(int rid, long token) {
    getContext().getLog().warn("ATC ack [{}] from {} on PAMU [{}], which sends none", token,
        rid(rid), name);
  }

  @Override
  protected void bankLearned(int bankIndex, long msiirAddress) {
    if (bankIndex >= 0) {
      msiPages.put(msiirAddress & ~0xFFFL, bankIndex);
    }
  }

  // ---------------------------------------------------------------- domains and windows

  private PamuDomain domain(int id, ActorRef<UnitReply> replyTo) {
    return domain(id, (Replier) replyTo::tell);
  }

  private PamuDomain domain(int id, Replier replyTo) {
    PamuDomain d = pamu.domain(id).orElse(null);
    if (d == null) {
      refuse(replyTo, Errno.ENOENT, "domainId %d: no such domain on unit %s", id, name);
    }
    return d;
  }

  @Override
  protected Behavior<Command> onAllocDomain(AllocDomain msg) {
    if (msg.type() != DomainType.PAMU) {
      return unsupported(msg.replyTo(), "AllocDomain(" + msg.type() + ")");
    }
    Outcome<PamuDomain> d = pamu.allocDomain();
    if (!d.isOk()) {
      return refuse(msg.replyTo(), d);
    }
    PamuDomain dom = d.value();
    msg.replyTo().tell(new DomainAllocated(dom.id(), PAGE_SIZE_BITMAP, ADDRESS_WIDTH,
        dom.apertureStart(), dom.apertureLast()));
    return Behaviors.same();
  }

  @Override
  protected Behavior<Command> onFreeDomain(FreeDomain msg) {
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<Void> r = d.free();
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  /**
   * VFIO-PAMU maps: runs that are physically back to back are merged (a window needs contiguous
   * memory), each merged run is one {@link PamuDomain#map}. All or nothing: a refused run unmaps
   * the runs before it (whole DMA windows the call enabled).
   */
  @Override
  protected Behavior<Command> mapRange(MapRange msg, Replier reply) {
    PamuDomain d = domain(msg.domainId(), reply);
    if (d == null) {
      return Behaviors.same();
    }
    long[] hpas = msg.hpas();
    long[] lengths = msg.lengths();
    if (hpas == null || lengths == null || hpas.length == 0 || hpas.length != lengths.length) {
      return refuse(reply, Errno.EINVAL,
          "hpas, lengths: one or more runs of equal count needed");
    }
    long cur = msg.iova();
    long total = 0;
    int i = 0;
    while (i < hpas.length) {
      long start = hpas[i];
      long len = lengths[i];
      int j = i + 1;
      while (j < hpas.length && start + len == hpas[j]) {
        len += lengths[j];
        j++;
      }
      Outcome<Void> r = d.map(cur, start, len, msg.prot());
      if (!r.isOk()) {
        if (total > 0) {
          Outcome<Long> undo = d.unmap(msg.iova(), total);
          if (!undo.isOk() || undo.value() != total) {
            throw new IllegalStateException("rollback of a partial PAMU map failed: " + undo);
          }
        }
        Outcome.Err<Void> e = (Outcome.Err<Void>) r;
        return refuse(reply, e.errno(), "run %d: %s", i, e.message());
      }
      cur += len;
      total += len;
      i = j;
    }
    // A PAACE write per window enabled; no invalidation queue to wait on.
    reply.tell(new Mapped(total, cost.pteWrites(d.windowSize() == 0 ? 0 : total / d.windowSize())));
    return Behaviors.same();
  }

  @Override
  protected Behavior<Command> unmapRange(UnmapRange msg, Replier reply) {
    PamuDomain d = domain(msg.domainId(), reply);
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<Long> r = d.unmap(msg.iova(), msg.length());
    if (!r.isOk()) {
      return refuse(reply, r);
    }
    long windows = r.value() / d.windowSize();
    // A PAACE write takes effect for the next lookup: no invalidation queue, one entry per window.
    reply.tell(Unmapped.strict(r.value(), cost.pteWrites(windows)));
    return Behaviors.same();
  }

  private Behavior<Command> onPamuSetGeometry(PamuSetGeometry msg) {
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<Void> r = d.setGeometry(msg.apertureStart(), msg.apertureSize());
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  private Behavior<Command> onPamuSetWindowCount(PamuSetWindowCount msg) {
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<Void> r = d.setWindowCount(msg.windows());
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  private Behavior<Command> onPamuGetGeometry(PamuGetGeometry msg) {
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    msg.replyTo().tell(new PamuGeometry(d.apertureStart(), d.apertureSize(), d.windowCount(),
        pamu.maxWindows(), d.isWindowCountSet(), d.isEnabled()));
    return Behaviors.same();
  }

  private Behavior<Command> onPamuMapMsiBank(PamuMapMsiBank msg) {
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    if (!msiBanks.containsKey(msg.bankIndex())) {
      return refuse(msg.replyTo(), Errno.EINVAL, "bankIndex %d: no such MSI bank", msg.bankIndex());
    }
    Integer known = msiPages.get(msg.msiirAddress() & ~0xFFFL);
    if (known != null && known != msg.bankIndex()) {
      return refuse(msg.replyTo(), Errno.EINVAL, "msiirAddress 0x%x: the MSIIR of bank %d, not %d",
          msg.msiirAddress(), known, msg.bankIndex());
    }
    Outcome<Void> r = d.mapMsiBank(msg.bankIndex(), msg.msiirAddress(), msg.iova());
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    msiPages.put(msg.msiirAddress() & ~0xFFFL, msg.bankIndex());
    long msiIova = d.windowIova(d.windowOf(msg.iova())) + (msg.msiirAddress() & 0xFFFL);
    msg.replyTo().tell(new MsiBankMapped(msiIova));
    return Behaviors.same();
  }

  private Behavior<Command> onPamuUnmapMsiBank(PamuUnmapMsiBank msg) {
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    Outcome<Void> r = d.unmapMsiBank(msg.iova());
    return r.isOk() ? done(msg.replyTo()) : refuse(msg.replyTo(), r);
  }

  // ---------------------------------------------------------------- attach

  @Override
  protected Behavior<Command> onAttach(Attach msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    if (msg.pasid() != FaultRecord.NO_PASID) {
      return refuse(msg.replyTo(), Errno.EINVAL, "pasid %d: a PAMU has no PASIDs", msg.pasid());
    }
    PamuDomain d = domain(msg.domainId(), msg.replyTo());
    if (d == null) {
      return Behaviors.same();
    }
    if (!userOwned(e)) {
      return refuse(msg.replyTo(), Errno.EPERM, "rid %s: no DMA owner claimed it (bind first)",
          rid(e.rid));
    }
    Integer current = attachedTo.get(e.rid);
    if (current != null) {
      return refuse(msg.replyTo(), Errno.EBUSY, "rid %s: already attached to domain %d",
          rid(e.rid), current);
    }
    Outcome<Void> r = d.attach(e.liodn);
    if (!r.isOk()) {
      return refuse(msg.replyTo(), r);
    }
    attachedTo.put(e.rid, d.id());
    liodnUsers[e.liodn]++;
    setHandle(e.rid, FaultRecord.NO_PASID, msg.faultSink(), msg.handleToken());
    return done(msg.replyTo());
  }

  @Override
  protected Behavior<Command> onDetach(Detach msg) {
    DeviceEntry e = device(msg.rid());
    if (e == null) {
      return notRegistered(msg.replyTo(), msg.rid());
    }
    Integer current = attachedTo.get(e.rid);
    if (msg.pasid() != FaultRecord.NO_PASID || current == null) {
      return refuse(msg.replyTo(), Errno.EINVAL, "rid %s pasid %d: not attached", rid(e.rid),
          msg.pasid());
    }
    if (liodnUsers[e.liodn] == 1) {
      Outcome<Void> r = pamu.domain(current).orElseThrow().detach(e.liodn);
      if (!r.isOk()) {
        throw new IllegalStateException("attached LIODN " + e.liodn + " would not detach: " + r);
      }
    }
    liodnUsers[e.liodn]--;
    attachedTo.remove(e.rid);
    setHandle(e.rid, FaultRecord.NO_PASID, null);
    abortPendingPageGroups(e.rid, FaultRecord.NO_PASID);
    return done(msg.replyTo());
  }

  // ---------------------------------------------------------------- MSI, inspection

  @Override
  protected Behavior<Command> onMsiWrite(MsiWrite msg) {
    msiWrites++;
    msiCounter.increment();
    DeviceEntry e = device(msg.rid());
    long now = clock.nanos();
    Translation t = msiScratch;
    translate(e, msg.rid(), FaultRecord.NO_PASID, msg.address(), Access.WRITE, false, now, t);
    if (!t.ok()) {
      fault(new DmaFault(unitId, msg.rid(), FaultRecord.NO_PASID, msg.address(), Access.WRITE,
          t.fault, now + t.latencyNs + cost.faultReport()));
      return Behaviors.same();
    }
    Integer bank = msiPages.get(t.hpa & ~0xFFFL);
    ActorRef<MsiBankActor.Command> ref = bank == null ? null : msiBanks.get(bank);
    if (ref == null) {
      checkWrite(e, msg.rid(), t.hpa, Integer.BYTES, now + t.latencyNs);
      return Behaviors.same();
    }
    if (!settings.msiIsolation()) {
      msiUnisolated++;
    }
    ref.tell(new MsiBankActor.Deliver(msg.rid(), t.hpa, msg.data()));
    return Behaviors.same();
  }

  /** A PAMU has no invalidation queue, so no stream: every counter is 0. */
  @Override
  protected Behavior<Command> onGetInvalidationStats(GetInvalidationStats msg) {
    msg.replyTo().tell(new IommuUnitActor.InvalidationStats(unitId, name, mode, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    return Behaviors.same();
  }

  @Override
  protected Behavior<Command> onGetSnapshot(GetSnapshot msg) {
    // A snapshot of a model whose invariants broke would be a lie: throw (a bug) instead.
    pamu.checkInvariants();
    msg.replyTo().tell(new UnitSnapshotted(null, pamu.snapshot(), groupSummaries(),
        handleSummaries(), registeredRids()));
    return Behaviors.same();
  }
}
