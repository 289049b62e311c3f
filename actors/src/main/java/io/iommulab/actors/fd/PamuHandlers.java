package io.iommulab.actors.fd;

import io.iommulab.actors.fd.IoasidFdActor.Reply;
import io.iommulab.actors.fd.model.Device;
import io.iommulab.actors.fd.model.IommufdCtx;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.actors.fd.model.PamuIommu;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.UnitReply;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The PAMU container mode ({@link PamuIommu}, seed 003): VFIO_SET_IOMMU(FSL_PAMU), the PAMU
 * attributes, the MSI banks and the whole-window DMA maps, mapped onto the unit's PAMU commands
 * (AllocDomain(PAMU), Attach/Detach of the LIODNs, PamuSetGeometry, PamuSetWindowCount,
 * PamuGetGeometry, PamuMapMsiBank, PamuUnmapMsiBank, MapRange, UnmapRange, FreeDomain). Every
 * operation holds the container's lock ({@code iommu->lock} of {@code vfio_iommu_fsl_pamu.c}), so
 * the driver's copy of the geometry and the unit's domain change together.
 *
 * <p>Ioctls of the PAMU container on a container without a driver are EINVAL ({@code container.c}
 * passes unknown ioctls only to a set driver); on a type1 container they are ENOTTY (the type1
 * driver does not know them).
 */
final class PamuHandlers {

  private final FdBehavior.Port port;
  private final ContainerLock lock;

  PamuHandlers(FdBehavior.Port port, ContainerLock lock) {
    this.port = port;
    this.lock = lock;
  }

  private IommufdCtx model() {
    return port.model();
  }

  private PamuIommu pamu() {
    return port.model().pamu();
  }

  /** The refusal of a PAMU ioctl on a container that is not a PAMU one, or null. */
  private Reply notPamu() {
    if (pamu().isSet()) {
      return null;
    }
    if (model().vfio().iommuType() == 0) {
      return new IoasidFdActor.Refused(Errno.EINVAL, "no IOMMU set on the container (VFIO_SET_IOMMU first)");
    }
    return new IoasidFdActor.Refused(Errno.ENOTTY, "not a VFIO-PAMU container");
  }

  private static Reply unitRefusal(UnitReply r) {
    if (r instanceof IommuUnitActor.Refused f) {
      return new IoasidFdActor.Refused(f.errno(), f.message());
    }
    return new IoasidFdActor.Refused(Errno.EIO, "unexpected unit reply " + r);
  }

  private ActorRef<IommuUnitActor.Command> unit() {
    return port.unit(pamu().unitId());
  }

  /**
   * True (and {@code replyTo} refused) when the fd is closed or its container is not a PAMU one
   * ({@link #notPamu}): the caller stops.
   */
  private boolean refuseUnlessPamu(ActorRef<Reply> replyTo) {
    if (port.refuseIfClosed(replyTo)) {
      return true;
    }
    Reply no = notPamu();
    if (no != null) {
      replyTo.tell(no);
      return true;
    }
    return false;
  }

  /**
   * Asks the PAMU unit {@code make}; a refusal is passed on to {@code done} with the driver's copy
   * untouched, otherwise {@code applied} updates that copy and {@code done} gets Done: the unit
   * changes first, so the copy never claims what the hardware refused.
   */
  private void askUnit(
      java.util.function.Function<ActorRef<UnitReply>, IommuUnitActor.Command> make,
      Runnable applied,
      java.util.function.Consumer<Reply> done) {
    port.ask(unit(), make, reply -> {
      if (reply instanceof IommuUnitActor.Refused) {
        done.accept(unitRefusal(reply));
        return;
      }
      applied.run();
      done.accept(IoasidFdActor.Done.INSTANCE);
    });
  }

  /** Runs {@code body} as one container operation: counted in flight, under the lock. */
  private void op(ActorRef<Reply> replyTo, java.util.function.BiConsumer<Runnable, java.util.function.Consumer<Reply>> body) {
    port.opStarted();
    lock.run(release -> body.accept(release, reply -> {
      release.run();
      port.opDone(replyTo, reply);
    }));
  }

  // ---------------------------------------------------------------- container set-up

  void setIommu(ActorRef<Reply> replyTo) {
    op(replyTo, (release, done) -> {
      Outcome<List<Device>> begun = pamu().beginSetIommu(model().vfio(), model());
      if (!begun.isOk()) {
        done.accept(port.refusal(begun));
        return;
      }
      List<Device> devs = begun.value();
      int unitId = devs.get(0).unitId();
      ActorRef<IommuUnitActor.Command> u = port.unit(unitId);
      port.ask(u, r -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAMU, false, false, 0, r), reply -> {
        if (!(reply instanceof IommuUnitActor.DomainAllocated da)) {
          done.accept(unitRefusal(reply));
          return;
        }
        attachAll(u, da.domainId(), devs, 0, new ArrayList<>(), bad -> {
          if (bad != null) {
            port.ask(u, r -> new IommuUnitActor.FreeDomain(da.domainId(), r), freed -> done.accept(unitRefusal(bad)));
            return;
          }
          pamu().finishSetIommu(model().vfio(), unitId, da.domainId(), devs, da.apertureStart(), da.apertureLast());
          done.accept(IoasidFdActor.Done.INSTANCE);
        });
      });
    });
  }

  /** Attaches each device's LIODN in turn; on a refusal detaches those done and reports it. */
  private void attachAll(
      ActorRef<IommuUnitActor.Command> u, int domainId, List<Device> devs, int i, List<Device> done,
      java.util.function.Consumer<UnitReply> then) {
    if (i == devs.size()) {
      then.accept(null);
      return;
    }
    Device d = devs.get(i);
    port.ask(u, r -> new IommuUnitActor.Attach(d.rid(), Device.NO_PASID, domainId, port.faultSink(), 0L, r), reply -> {
      if (reply instanceof IommuUnitActor.Refused) {
        detachAll(u, done, 0, () -> then.accept(reply));
        return;
      }
      done.add(d);
      attachAll(u, domainId, devs, i + 1, done, then);
    });
  }

  private void detachAll(ActorRef<IommuUnitActor.Command> u, List<Device> devs, int i, Runnable then) {
    if (i == devs.size()) {
      then.run();
      return;
    }
    Device d = devs.get(i);
    port.ask(u, r -> new IommuUnitActor.Detach(d.rid(), Device.NO_PASID, r), reply -> {
      if (reply instanceof IommuUnitActor.Refused) {
        port.log("fd [{}]: PAMU detach of [{}] refused: [{}]", port.ictxId(), d.name(), reply);
      }
      detachAll(u, devs, i + 1, then);
    });
  }

  /** A PAMU group joins the container (VFIO_GROUP_SET_CONTAINER). */
  void addGroup(Device d, ActorRef<Reply> replyTo) {
    if (model().vfio().isType1()) {
      replyTo.tell(new IoasidFdActor.Refused(Errno.EINVAL,
          "device " + d.id() + " sits behind a PAMU: it cannot join a type1 container"));
      return;
    }
    op(replyTo, (release, done) -> {
      if (!pamu().isSet()) {
        done.accept(IoasidFdActor.Done.INSTANCE); // attached when VFIO_SET_IOMMU(FSL_PAMU) comes
        return;
      }
      Outcome<Void> ok = pamu().checkAddGroup(d);
      if (!ok.isOk()) {
        done.accept(port.refusal(ok));
        return;
      }
      int domainId = pamu().domainId();
      askUnit(
          r -> new IommuUnitActor.Attach(d.rid(), Device.NO_PASID, domainId, port.faultSink(), 0L, r),
          () -> pamu().groupAdded(d),
          done);
    });
  }

  // ---------------------------------------------------------------- attributes and MSI banks

  void getAttr(IoasidFdActor.PamuGetAttr m) {
    if (refuseUnlessPamu(m.replyTo())) {
      return;
    }
    if (m.attribute() != ModeUapi.VFIO_ATTR_GEOMETRY && m.attribute() != ModeUapi.VFIO_ATTR_WINDOWS) {
      m.replyTo().tell(new IoasidFdActor.Refused(Errno.EINVAL, "attribute " + m.attribute() + ": unknown"));
      return;
    }
    int domainId = pamu().domainId();
    op(m.replyTo(), (release, done) ->
        port.ask(unit(), r -> new IommuUnitActor.PamuGetGeometry(domainId, r), reply -> {
          if (!(reply instanceof IommuUnitActor.PamuGeometry g)) {
            done.accept(unitRefusal(reply));
            return;
          }
          int windows = g.windowCountSet()
              ? g.windowCount()
              : Math.min(g.maxWindows(), ModeUapi.VFIO_PAMU_MAX_WINDOWS);
          done.accept(new IoasidFdActor.PamuAttr(g.apertureStart(), g.apertureStart() + g.apertureSize() - 1, windows));
        }));
  }

  void setAttr(IoasidFdActor.PamuSetAttr m) {
    if (refuseUnlessPamu(m.replyTo())) {
      return;
    }
    op(m.replyTo(), (release, done) -> {
      int domainId = pamu().domainId();
      if (m.attribute() == ModeUapi.VFIO_ATTR_GEOMETRY) {
        Outcome<Long> size = PamuIommu.apertureSize(m.apertureStart(), m.apertureEnd());
        if (!size.isOk()) {
          done.accept(port.refusal(size));
          return;
        }
        askUnit(
            r -> new IommuUnitActor.PamuSetGeometry(domainId, m.apertureStart(), size.value(), r),
            () -> pamu().geometrySet(m.apertureStart(), m.apertureEnd()),
            done);
      } else if (m.attribute() == ModeUapi.VFIO_ATTR_WINDOWS) {
        Outcome<Void> ok = PamuIommu.checkWindowCount(m.windows());
        if (!ok.isOk()) {
          done.accept(port.refusal(ok));
          return;
        }
        askUnit(
            r -> new IommuUnitActor.PamuSetWindowCount(domainId, m.windows(), r),
            () -> pamu().windowCountSet(m.windows()),
            done);
      } else {
        done.accept(new IoasidFdActor.Refused(Errno.EINVAL, "attribute " + m.attribute() + ": unknown"));
      }
    });
  }

  void getMsiBankCount(IoasidFdActor.PamuGetMsiBankCount m) {
    if (refuseUnlessPamu(m.replyTo())) {
      return;
    }
    m.replyTo().tell(new IoasidFdActor.PamuMsiBankCount(pamu().msiBankCount()));
  }

  void mapMsiBank(IoasidFdActor.PamuMapMsiBank m) {
    if (refuseUnlessPamu(m.replyTo())) {
      return;
    }
    op(m.replyTo(), (release, done) -> {
      Outcome<Long> msiir = pamu().checkMapMsiBank(m.flags(), m.bankIndex());
      if (!msiir.isOk()) {
        done.accept(port.refusal(msiir));
        return;
      }
      int domainId = pamu().domainId();
      port.ask(unit(), r -> new IommuUnitActor.PamuMapMsiBank(domainId, m.bankIndex(), msiir.value(), m.iova(), r),
          reply -> {
            if (!(reply instanceof IommuUnitActor.MsiBankMapped mapped)) {
              done.accept(unitRefusal(reply));
              return;
            }
            pamu().msiBankMapped(m.iova(), m.bankIndex());
            done.accept(new IoasidFdActor.PamuMsiBankMapped(mapped.msiIova()));
          });
    });
  }

  void unmapMsiBank(IoasidFdActor.PamuUnmapMsiBank m) {
    if (refuseUnlessPamu(m.replyTo())) {
      return;
    }
    op(m.replyTo(), (release, done) -> {
      Outcome<Void> ok = pamu().checkUnmapMsiBank(m.iova());
      if (!ok.isOk()) {
        done.accept(port.refusal(ok));
        return;
      }
      int domainId = pamu().domainId();
      askUnit(
          r -> new IommuUnitActor.PamuUnmapMsiBank(domainId, m.iova(), r),
          () -> pamu().msiBankUnmapped(m.iova()),
          done);
    });
  }

  // ---------------------------------------------------------------- DMA

  void mapDma(IoasidFdActor.VfioMapDma m) {
    op(m.replyTo(), (release, done) -> {
      Outcome<PamuIommu.MapOp> begun = pamu().beginMap(m.flags(), m.vaddr(), m.iova(), m.size());
      if (!begun.isOk()) {
        done.accept(port.refusal(begun));
        return;
      }
      PamuIommu.MapOp op = begun.value();
      long[][] runs = op.runs(model().layout());
      int domainId = pamu().domainId();
      port.ask(unit(), r -> new IommuUnitActor.MapRange(domainId, op.iova(), runs[0], runs[1], op.prot(), r), reply -> {
        if (!(reply instanceof IommuUnitActor.Mapped)) {
          pamu().abortMap(op);
          done.accept(unitRefusal(reply));
          return;
        }
        pamu().finishMap(op);
        done.accept(IoasidFdActor.Done.INSTANCE);
      });
    });
  }

  void unmapDma(IoasidFdActor.VfioUnmapDma m) {
    op(m.replyTo(), (release, done) -> {
      Outcome<List<PamuIommu.Window>> planned = pamu().planUnmap(m.flags(), m.iova(), m.size());
      if (!planned.isOk()) {
        done.accept(port.refusal(planned));
        return;
      }
      List<PamuIommu.Window> hit = planned.value();
      if (hit.isEmpty()) {
        done.accept(new IoasidFdActor.VfioDmaUnmapped(0));
        return;
      }
      int domainId = pamu().domainId();
      port.ask(unit(), r -> IommuUnitActor.UnmapRange.strict(domainId, m.iova(), m.size(), r), reply -> {
        if (!(reply instanceof IommuUnitActor.Unmapped)) {
          done.accept(unitRefusal(reply));
          return;
        }
        done.accept(new IoasidFdActor.VfioDmaUnmapped(pamu().finishUnmap(hit)));
      });
    });
  }

  // ---------------------------------------------------------------- teardown

  /**
   * Before {@code d} releases DMA ownership (unbind, close): its LIODN leaves the domain; the last
   * group's departure tears the container down ("When removing the last group from a container,
   * the IOMMU will be disabled and all state lost").
   */
  void beforeRelease(Device d, Runnable then) {
    if (!pamu().contains(d)) {
      then.run();
      return;
    }
    lock.run(release -> {
      Runnable finish = () -> {
        release.run();
        then.run();
      };
      if (!pamu().contains(d)) {
        finish.run();
        return;
      }
      port.ask(unit(), r -> new IommuUnitActor.Detach(d.rid(), Device.NO_PASID, r), reply -> {
        if (reply instanceof IommuUnitActor.Refused) {
          port.log("fd [{}]: PAMU detach of [{}] refused: [{}]", port.ictxId(), d.name(), reply);
        }
        pamu().groupRemoved(d);
        if (pamu().groups().isEmpty()) {
          teardown(finish);
        } else {
          finish.run();
        }
      });
    });
  }

  /** Close: the container goes before the devices are unbound. */
  void beforeClose(Runnable then) {
    if (!pamu().isSet()) {
      then.run();
      return;
    }
    lock.run(release -> {
      if (!pamu().isSet()) {
        release.run();
        then.run();
        return;
      }
      ActorRef<IommuUnitActor.Command> u = unit();
      detachAll(u, pamu().groups(), 0, () -> teardown(() -> {
        release.run();
        then.run();
      }));
    });
  }

  /** Disables every window (DMA and MSI), frees the domain, unpins, resets (lock held). */
  private void teardown(Runnable then) {
    ActorRef<IommuUnitActor.Command> u = unit();
    int domainId = pamu().domainId();
    List<java.util.function.Function<ActorRef<UnitReply>, IommuUnitActor.Command>> makes = new ArrayList<>();
    for (PamuIommu.Window w : pamu().windows()) {
      makes.add(r -> IommuUnitActor.UnmapRange.strict(domainId, w.iova(), w.size(), r));
    }
    for (Map.Entry<Long, Integer> e : pamu().msiMaps().entrySet()) {
      long iova = e.getKey();
      makes.add(r -> new IommuUnitActor.PamuUnmapMsiBank(domainId, iova, r));
    }
    List<ActorRef<IommuUnitActor.Command>> targets = new ArrayList<>();
    for (int i = 0; i < makes.size(); i++) {
      targets.add(u);
    }
    port.askAll(targets, makes, replies ->
        port.ask(u, r -> new IommuUnitActor.FreeDomain(domainId, r), freed -> {
          if (freed instanceof IommuUnitActor.Refused) {
            port.log("fd [{}]: freeing PAMU domain [{}] refused: [{}]", port.ictxId(), domainId, freed);
          }
          pamu().reset(model().vfio());
          then.run();
        }));
  }
}
