package io.iommulab.actors.fd;

import io.iommulab.actors.fd.model.Device;

/**
 * The fd's modes — the five seed threads' designs on the one fd — behind one dispatch: the legacy
 * VFIO container ({@link VfioHandlers}: type1 over the compat IOAS; {@link PamuHandlers}: the
 * VFIO-PAMU container), per-VM PASIDs and guest page-table binding ({@link SvaHandlers}), and
 * software nesting ({@link ShadowHandlers}). The snoop-control mode lives in the model ({@code
 * SnoopControl}) and in the attach path; the vIOMMU mode (seed 004) is the merged uAPI's.
 *
 * <p>Each handler reaches the behavior through its {@link FdBehavior.Port}; the behavior calls the
 * hooks here at the points where a mode must act inside one of its own operations (before a
 * device releases DMA ownership, before close unbinds the devices, when a parent IOAS of a
 * software-nested space maps or unmaps).
 */
final class ModeHandlers {

  private final VfioHandlers vfio;
  private final PamuHandlers pamu;
  private final SvaHandlers sva;
  final ShadowHandlers shadow;

  ModeHandlers(FdBehavior.Port port) {
    ContainerLock lock = new ContainerLock();
    this.pamu = new PamuHandlers(port, lock);
    this.vfio = new VfioHandlers(port, lock, pamu);
    this.sva = new SvaHandlers(port);
    this.shadow = new ShadowHandlers(port);
  }

  void onCommand(IoasidFdActor.ModeCommand c) {
    if (c instanceof IoasidFdActor.VfioIoas m) {
      vfio.onVfioIoas(m);
    } else if (c instanceof IoasidFdActor.VfioGroupSetContainer m) {
      vfio.onGroupSetContainer(m);
    } else if (c instanceof IoasidFdActor.VfioSetIommu m) {
      vfio.onSetIommu(m);
    } else if (c instanceof IoasidFdActor.VfioCheckExtension m) {
      vfio.onCheckExtension(m);
    } else if (c instanceof IoasidFdActor.VfioIommuGetInfo m) {
      vfio.onGetInfo(m);
    } else if (c instanceof IoasidFdActor.VfioMapDma m) {
      vfio.onMapDma(m);
    } else if (c instanceof IoasidFdActor.VfioUnmapDma m) {
      vfio.onUnmapDma(m);
    } else if (c instanceof IoasidFdActor.PamuGetAttr m) {
      pamu.getAttr(m);
    } else if (c instanceof IoasidFdActor.PamuSetAttr m) {
      pamu.setAttr(m);
    } else if (c instanceof IoasidFdActor.PamuGetMsiBankCount m) {
      pamu.getMsiBankCount(m);
    } else if (c instanceof IoasidFdActor.PamuMapMsiBank m) {
      pamu.mapMsiBank(m);
    } else if (c instanceof IoasidFdActor.PamuUnmapMsiBank m) {
      pamu.unmapMsiBank(m);
    } else if (c instanceof IoasidFdActor.SvaPasidAlloc m) {
      sva.alloc(m);
    } else if (c instanceof IoasidFdActor.SvaPasidFree m) {
      sva.free(m);
    } else if (c instanceof IoasidFdActor.SvaBindPgtbl m) {
      sva.bind(m);
    } else if (c instanceof IoasidFdActor.SvaUnbindPgtbl m) {
      sva.unbind(m);
    } else if (c instanceof IoasidFdActor.SvaFlush m) {
      sva.flush(m);
    } else if (c instanceof IoasidFdActor.IoasidCreateNesting m) {
      shadow.create(m);
    } else if (c instanceof IoasidFdActor.SoftNestMap m) {
      shadow.map(m);
    } else if (c instanceof IoasidFdActor.SoftNestUnmap m) {
      shadow.unmap(m);
    } else {
      throw new IllegalStateException("mode command without a handler: " + c);
    }
  }

  /**
   * Before {@code d} releases DMA ownership (its attachments detached): its SVA tables' nested
   * HWPTs are destroyed, and the PAMU container lets its group go.
   */
  void beforeRelease(Device d, Runnable then) {
    sva.beforeRelease(d, () -> pamu.beforeRelease(d, then));
  }

  /** Before close unbinds the devices: the PAMU container is torn down. */
  void beforeClose(Runnable then) {
    pamu.beforeClose(then);
  }
}
