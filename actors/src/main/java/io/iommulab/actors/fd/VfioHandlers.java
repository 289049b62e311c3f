package io.iommulab.actors.fd;

import io.iommulab.actors.fd.IoasidFdActor.Reply;
import io.iommulab.actors.fd.model.Accounting;
import io.iommulab.actors.fd.model.Device;
import io.iommulab.actors.fd.model.Ioas;
import io.iommulab.actors.fd.model.IommufdCtx;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.VfioType1;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;

/**
 * The legacy VFIO container on the fd ({@link VfioType1}): IOMMU_VFIO_IOAS, group → container,
 * VFIO_SET_IOMMU, CHECK_EXTENSION, GET_INFO, MAP_DMA, UNMAP_DMA. Type1 operations run one at a
 * time under the container's lock ({@code iommu->lock}) and reach the compat IOAS through the fd's
 * own IOAS operations (MAP in MM accounting, UNMAP of whole areas), as {@code vfio_compat.c} calls
 * {@code iopt_map_user_pages} / {@code iopt_unmap_iova}. On a PAMU container the same ioctls go to
 * {@link PamuHandlers}.
 */
final class VfioHandlers {

  private final FdBehavior.Port port;
  private final ContainerLock lock;
  private final PamuHandlers pamu;

  VfioHandlers(FdBehavior.Port port, ContainerLock lock, PamuHandlers pamu) {
    this.port = port;
    this.lock = lock;
    this.pamu = pamu;
  }

  private IommufdCtx model() {
    return port.model();
  }

  private VfioType1 vfio() {
    return port.model().vfio();
  }

  private boolean pamuContainer() {
    return vfio().iommuType() == ModeUapi.VFIO_FSL_PAMU_IOMMU;
  }

  void onVfioIoas(IoasidFdActor.VfioIoas m) {
    port.answer(
        m.replyTo(),
        () -> vfio().vfioIoas(m.op(), m.ioasId(), model()),
        IoasidFdActor.VfioIoasId::new);
  }

  /** VFIO_GROUP_SET_CONTAINER: see {@link IoasidFdActor.VfioGroupSetContainer}. */
  void onGroupSetContainer(IoasidFdActor.VfioGroupSetContainer m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    Device d = model().device(m.devId());
    if (d == null) {
      m.replyTo().tell(new IoasidFdActor.Refused(Errno.ENOENT, "device " + m.devId() + ": no such object"));
      return;
    }
    if (d.info().kind() == UnitKind.PAMU) {
      pamu.addGroup(d, m.replyTo());
      return;
    }
    if (pamuContainer()) {
      m.replyTo().tell(new IoasidFdActor.Refused(Errno.EINVAL,
          "device " + m.devId() + " sits behind a paging IOMMU: it cannot join a PAMU container"));
      return;
    }
    port.opStarted();
    lock.run(release -> {
      boolean first = vfio().compatIoas() == null;
      Outcome<Ioas> ioas = vfio().compatIoasCreate(model());
      if (!ioas.isOk()) {
        release.run();
        port.opDone(m.replyTo(), port.refusal(ioas));
        return;
      }
      int ioasId = ioas.value().id();
      port.askSelf(
          ref -> port.attach(m.devId(), Device.NO_PASID, ioasId, false, ref),
          reply -> {
            boolean attached = reply instanceof IoasidFdActor.DeviceAttached;
            if (!attached && first) {
              vfio().compatIoasAbort(model(), ioas.value());
            }
            release.run();
            port.opDone(m.replyTo(), attached ? IoasidFdActor.Done.INSTANCE : reply);
          });
    });
  }

  void onSetIommu(IoasidFdActor.VfioSetIommu m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    if (m.type() == ModeUapi.VFIO_FSL_PAMU_IOMMU) {
      pamu.setIommu(m.replyTo());
      return;
    }
    port.opStarted();
    lock.run(release -> {
      Outcome<Void> o = vfio().setIommu(m.type());
      release.run();
      port.opDone(m.replyTo(), o.isOk() ? IoasidFdActor.Done.INSTANCE : port.refusal(o));
    });
  }

  void onCheckExtension(IoasidFdActor.VfioCheckExtension m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    boolean pamuBound = model().pamu().pamuBound(model());
    m.replyTo().tell(new IoasidFdActor.VfioExtension(vfio().checkExtension(m.extension(), pamuBound)));
  }

  void onGetInfo(IoasidFdActor.VfioIommuGetInfo m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    if (pamuContainer()) {
      m.replyTo().tell(new IoasidFdActor.Refused(Errno.ENOTTY, "VFIO-PAMU has no VFIO_IOMMU_GET_INFO"));
      return;
    }
    Outcome<VfioType1.Info> o = vfio().info();
    if (!o.isOk()) {
      m.replyTo().tell(port.refusal(o));
      return;
    }
    VfioType1.Info i = o.value();
    m.replyTo().tell(new IoasidFdActor.VfioIommuInfo(i.flags(), i.iovaPgsizes(), i.iovaRanges(), i.dmaAvail()));
  }

  void onMapDma(IoasidFdActor.VfioMapDma m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    if (pamuContainer()) {
      pamu.mapDma(m);
      return;
    }
    port.opStarted();
    lock.run(release -> {
      Outcome<Ioas> checked = vfio().checkMap(m.flags(), m.vaddr(), m.iova(), m.size());
      if (!checked.isOk()) {
        release.run();
        port.opDone(m.replyTo(), port.refusal(checked));
        return;
      }
      int flags = Uapi.IOAS_MAP_FIXED_IOVA;
      if ((m.flags() & ModeUapi.VFIO_DMA_MAP_FLAG_READ) != 0) {
        flags |= Uapi.IOAS_MAP_READABLE;
      }
      if ((m.flags() & ModeUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0) {
        flags |= Uapi.IOAS_MAP_WRITEABLE;
      }
      int mapFlags = flags;
      int ioasId = checked.value().id();
      port.askSelf(
          ref -> port.map(
              new IoasidFdActor.IoasMap(mapFlags, ioasId, m.vaddr(), m.size(), m.iova(), ref), Accounting.Mode.MM),
          reply -> {
            release.run();
            port.opDone(m.replyTo(), reply instanceof IoasidFdActor.IoasMapped ? IoasidFdActor.Done.INSTANCE : reply);
          });
    });
  }

  void onUnmapDma(IoasidFdActor.VfioUnmapDma m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    if (pamuContainer()) {
      pamu.unmapDma(m);
      return;
    }
    port.opStarted();
    lock.run(release -> {
      Outcome<VfioType1.UnmapPlan> planned = vfio().planUnmap(m.flags(), m.iova(), m.size());
      if (!planned.isOk()) {
        release.run();
        port.opDone(m.replyTo(), port.refusal(planned));
        return;
      }
      VfioType1.UnmapPlan plan = planned.value();
      if (plan.bytes() == 0) {
        release.run();
        port.opDone(m.replyTo(), new IoasidFdActor.VfioDmaUnmapped(0));
        return;
      }
      long length = plan.all() ? Uapi.ULONG_MAX : plan.last() - plan.iova() + 1;
      port.askSelf(
          ref -> port.unmap(new IoasidFdActor.IoasUnmap(plan.ioas().id(), plan.iova(), length, ref)),
          reply -> {
            release.run();
            port.opDone(
                m.replyTo(),
                reply instanceof IoasidFdActor.IoasUnmapped u ? new IoasidFdActor.VfioDmaUnmapped(u.length()) : reply);
          });
    });
  }
}
