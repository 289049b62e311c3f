package io.iommulab.actors.fd;

import io.iommulab.actors.fd.IoasidFdActor.Reply;
import io.iommulab.actors.fd.model.Area;
import io.iommulab.actors.fd.model.Device;
import io.iommulab.actors.fd.model.HwPagetable;
import io.iommulab.actors.fd.model.Ioas;
import io.iommulab.actors.fd.model.IommufdCtx;
import io.iommulab.actors.fd.model.ShadowNesting;
import io.iommulab.actors.fd.model.SnoopControl;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Software nesting ({@link ShadowNesting}, seed 001): IOASID_CREATE_NESTING builds a shadow
 * paging domain on the device's unit; the guest's stage-1 maps and unmaps are composed with the
 * parent IOAS into it; the parent's maps and unmaps update it (hooks called by the behavior inside
 * its own IOAS operations). Guest operations hold the parent's write gate.
 */
final class ShadowHandlers {

  private final FdBehavior.Port port;

  ShadowHandlers(FdBehavior.Port port) {
    this.port = port;
  }

  private IommufdCtx model() {
    return port.model();
  }

  private static Reply unitRefusal(UnitReply r) {
    if (r instanceof IommuUnitActor.Refused f) {
      return new IoasidFdActor.Refused(f.errno(), f.message());
    }
    return new IoasidFdActor.Refused(Errno.EIO, "unexpected unit reply " + r);
  }

  void create(IoasidFdActor.IoasidCreateNesting m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    Outcome<HwPagetable> begun = model().beginSoftNesting(m.devId(), m.parentIoasId());
    if (!begun.isOk()) {
      m.replyTo().tell(port.refusal(begun));
      return;
    }
    HwPagetable h = begun.value();
    Device dev = model().device(m.devId());
    Ioas parent = h.ioas();
    ActorRef<IommuUnitActor.Command> u = port.unit(h.unitId());
    port.opStarted();
    port.gateWrite(parent, () -> {
      java.util.function.Consumer<Reply> fail = reply -> port.freeDomain(h, () -> {
        model().abortHwpt(h);
        port.releaseWrite(parent);
        port.opDone(m.replyTo(), reply);
      });
      port.ask(u, r -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAGING, false, false, 0, r), reply -> {
        if (!(reply instanceof IommuUnitActor.DomainAllocated da)) {
          model().abortHwpt(h);
          port.releaseWrite(parent);
          port.opDone(m.replyTo(), unitRefusal(reply));
          return;
        }
        model().domainAllocated(h, da.domainId(), da.pageSizeBitmap(), da.apertureStart(), da.apertureLast());
        Runnable finish = () -> {
          Outcome<Void> added = model().addShadowToParent(h);
          if (!added.isOk()) {
            fail.accept(port.refusal(added));
            return;
          }
          model().finalizeHwpt(h);
          port.releaseWrite(parent);
          port.opDone(m.replyTo(), new IoasidFdActor.HwptAllocated(h.id(), h.unitId(), h.domainId()));
        };
        if (!SnoopControl.shouldEnforce(h, dev)) {
          finish.run();
          return;
        }
        port.ask(u, r -> new IommuUnitActor.EnforceCacheCoherency(da.domainId(), r), cc -> {
          if (cc instanceof IommuUnitActor.Refused) {
            if (SnoopControl.required(h)) {
              fail.accept(unitRefusal(cc));
              return;
            }
          } else {
            model().coherencyEnforced(h);
          }
          finish.run();
        });
      });
    });
  }

  /** The installs (MapRange) of {@code segments} into {@code h}'s shadow domain. */
  private void install(HwPagetable h, List<ShadowNesting.Segment> segments, java.util.function.Consumer<UnitReply[]> done) {
    askEach(h, segments, s -> mapOf(h, s), done);
  }

  private void remove(HwPagetable h, List<ShadowNesting.Segment> segments, java.util.function.Consumer<UnitReply[]> done) {
    askEach(h, segments, s -> unmapOf(h, s), done);
  }

  /** One command per segment to {@code h}'s unit, all in one round; {@code done} gets the replies in order. */
  private void askEach(
      HwPagetable h,
      List<ShadowNesting.Segment> segments,
      Function<ShadowNesting.Segment, Function<ActorRef<UnitReply>, IommuUnitActor.Command>> make,
      java.util.function.Consumer<UnitReply[]> done) {
    List<ActorRef<IommuUnitActor.Command>> targets = new ArrayList<>();
    List<Function<ActorRef<UnitReply>, IommuUnitActor.Command>> makes = new ArrayList<>();
    for (ShadowNesting.Segment s : segments) {
      targets.add(port.unit(h.unitId()));
      makes.add(make.apply(s));
    }
    port.askAll(targets, makes, done);
  }

  /** The install of {@code s} into {@code h}'s shadow domain (its runs of host frames now). */
  private Function<ActorRef<UnitReply>, IommuUnitActor.Command> mapOf(HwPagetable h, ShadowNesting.Segment s) {
    int domainId = h.domainId();
    long[][] runs = s.runs(model().layout());
    return r -> new IommuUnitActor.MapRange(domainId, s.giova(), runs[0], runs[1], s.prot(), r);
  }

  private static Function<ActorRef<UnitReply>, IommuUnitActor.Command> unmapOf(HwPagetable h, ShadowNesting.Segment s) {
    return unmapOf(h, s, null);
  }

  /** An unmap of {@code s} from the shadow domain; deferred when {@code flushTo} is not null. */
  private static Function<ActorRef<UnitReply>, IommuUnitActor.Command> unmapOf(
      HwPagetable h, ShadowNesting.Segment s, ActorRef<IommuUnitActor.FlushCompleted> flushTo) {
    int domainId = h.domainId();
    return r -> new IommuUnitActor.UnmapRange(domainId, s.giova(), s.length(), flushTo, r);
  }

  /** The rest of a guest-table operation, once planned under the parent's write gate. */
  @FunctionalInterface
  private interface Planned<P> {
    void run(HwPagetable h, Ioas parent, P plan);
  }

  /**
   * The shape of a guest-table map or unmap: EBADF on a closed fd, the soft-nested HWPT {@code
   * hwptId} or its refusal; then, counted in flight and under the parent IOAS's write gate (the
   * shadow is built from the parent's areas, which must not move meanwhile), {@code plan} on its
   * shadow (ENOENT once the HWPT is being destroyed). A refused plan releases the gate and replies;
   * otherwise {@code rest} runs and must release the gate and finish the op itself.
   */
  private <P> void underParentGate(
      int hwptId,
      ActorRef<Reply> replyTo,
      Function<ShadowNesting, Outcome<P>> plan,
      Planned<P> rest) {
    if (port.refuseIfClosed(replyTo)) {
      return;
    }
    Outcome<HwPagetable> found = model().softNested(hwptId);
    if (!found.isOk()) {
      replyTo.tell(port.refusal(found));
      return;
    }
    HwPagetable h = found.value();
    Ioas parent = h.ioas();
    port.opStarted();
    port.gateWrite(parent, () -> {
      Outcome<P> planned =
          h.isLive() ? plan.apply(h.shadow())
              : Outcome.err(Errno.ENOENT, "hwpt %d is being destroyed", h.id());
      if (!planned.isOk()) {
        port.releaseWrite(parent);
        port.opDone(replyTo, port.refusal(planned));
        return;
      }
      rest.run(h, parent, planned.value());
    });
  }

  void map(IoasidFdActor.SoftNestMap m) {
    underParentGate(m.hwptId(), m.replyTo(),
        shadow -> shadow.planMap(m.giova(), m.gpa(), m.length(), m.prot()),
        (h, parent, plan) -> {
          install(h, plan.segments(), replies -> {
            UnitReply bad = null;
            List<ShadowNesting.Segment> done = new ArrayList<>();
            for (int i = 0; i < replies.length; i++) {
              if (replies[i] instanceof IommuUnitActor.Refused) {
                bad = bad == null ? replies[i] : bad;
              } else {
                done.add(plan.segments().get(i));
              }
            }
            if (bad == null) {
              h.shadow().commitMap(plan);
              port.releaseWrite(parent);
              port.opDone(m.replyTo(), IoasidFdActor.Done.INSTANCE);
              return;
            }
            UnitReply refusal = bad;
            remove(h, done, undone -> {
              port.releaseWrite(parent);
              port.opDone(m.replyTo(), unitRefusal(refusal));
            });
          });
        });
  }

  void unmap(IoasidFdActor.SoftNestUnmap m) {
    underParentGate(m.hwptId(), m.replyTo(),
        shadow -> shadow.planUnmap(m.giova(), m.length()),
        (h, parent, entries) -> {
          List<ShadowNesting.Segment> segments = new ArrayList<>();
          for (ShadowNesting.Entry e : entries) {
            segments.addAll(e.segments());
          }
          // Strict: the guest's entries hold no pins of their own (the parent's areas do), but the
          // guest may map the same GIOVA again at once, so its unmap returns after the flush.
          remove(h, segments, replies -> {
            UnitReply bad = null;
            for (UnitReply r : replies) {
              if (r instanceof IommuUnitActor.Refused) {
                port.unmapRefused("unmap a whole shadow segment", r);
                bad = bad == null ? r : bad;
              }
            }
            if (bad != null) {
              // The entries stay: a later unmap of them, or of the parent's areas, removes what is
              // left, and the parent keeps the frames pinned meanwhile.
              port.releaseWrite(parent);
              port.opDone(m.replyTo(), new IoasidFdActor.Refused(Errno.EIO,
                  "a unit refused to unmap the shadow of [0x" + Long.toHexString(m.giova()) + ", +0x"
                      + Long.toHexString(m.length()) + ") (a bug): " + bad));
              return;
            }
            long bytes = h.shadow().commitUnmap(entries);
            port.releaseWrite(parent);
            port.opDone(m.replyTo(), new IoasidFdActor.SoftNestUnmapped(bytes));
          });
        });
  }

  // ---------------------------------------------------------------- hooks of the parent's operations

  /**
   * The parent IOAS is unmapping {@code areas} (its read gate held, pages still pinned): the
   * shadow segments built from them, as unmaps to send in the same round as the parent's domains.
   */
  void parentUnmapAsks(
      Ioas ioas, List<Area> areas,
      ActorRef<IommuUnitActor.FlushCompleted> flushTo,
      List<ActorRef<IommuUnitActor.Command>> targets,
      List<Function<ActorRef<UnitReply>, IommuUnitActor.Command>> makes,
      List<Area> owners,
      List<Integer> unitIds) {
    for (HwPagetable h : ioas.shadows()) {
      for (ShadowNesting.Segment s : h.shadow().takeSegmentsOf(areas)) {
        targets.add(port.unit(h.unitId()));
        // Deferred like the parent's own domains: the area's pins wait for this flush too.
        makes.add(unmapOf(h, s, flushTo));
        owners.add(s.area());
        unitIds.add(h.unitId());
      }
    }
  }

  /**
   * The parent IOAS published {@code areas} (its read gate held): pending guest entries over them
   * become valid. A refused install leaves that part pending (logged; DMA there faults).
   */
  void afterParentMap(Ioas ioas, List<Area> areas, Runnable then) {
    if (ioas.shadows().isEmpty()) {
      then.run();
      return;
    }
    List<ActorRef<IommuUnitActor.Command>> targets = new ArrayList<>();
    List<Function<ActorRef<UnitReply>, IommuUnitActor.Command>> makes = new ArrayList<>();
    List<HwPagetable> owners = new ArrayList<>();
    List<ShadowNesting.Segment> segs = new ArrayList<>();
    for (HwPagetable h : ioas.shadows()) {
      for (ShadowNesting.Segment s : h.shadow().segmentsFor(areas)) {
        targets.add(port.unit(h.unitId()));
        makes.add(mapOf(h, s));
        owners.add(h);
        segs.add(s);
      }
    }
    port.askAll(targets, makes, replies -> {
      for (int i = 0; i < replies.length; i++) {
        if (replies[i] instanceof IommuUnitActor.Refused) {
          port.log("fd [{}]: shadow segment at giova [{}] not installed: [{}]", port.ictxId(), segs.get(i).giova(), replies[i]);
        } else {
          owners.get(i).shadow().installed(List.of(segs.get(i)));
        }
      }
      then.run();
    });
  }
}
