package io.iommulab.actors.fd;

import io.iommulab.actors.fd.IoasidFdActor.Reply;
import io.iommulab.actors.fd.model.HwPagetable;
import io.iommulab.actors.fd.model.SvaPasids;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.hardware.Outcome;

/**
 * The SVA mode ({@link SvaPasids}, seed 000): per-VM PASIDs and per-device bind / unbind / flush
 * of guest page tables. A bind runs the fd's own HWPT_ALLOC (a PASID-capable HWPT_NESTED over the
 * device's NEST_PARENT GPA space) and the PASID attach, all or nothing; an unbind detaches the
 * PASID and destroys the nested HWPT; a flush is HWPT_INVALIDATE of it (the unit's
 * InvalidateUser).
 */
final class SvaHandlers {

  private final FdBehavior.Port port;

  SvaHandlers(FdBehavior.Port port) {
    this.port = port;
  }

  private SvaPasids sva() {
    return port.model().sva();
  }

  void alloc(IoasidFdActor.SvaPasidAlloc m) {
    port.answer(m.replyTo(), () -> sva().alloc(), IoasidFdActor.SvaPasid::new);
  }

  void free(IoasidFdActor.SvaPasidFree m) {
    port.answer(m.replyTo(), () -> sva().free(m.pasid()), v -> IoasidFdActor.Done.INSTANCE);
  }

  void bind(IoasidFdActor.SvaBindPgtbl m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    Outcome<SvaPasids.BindPlan> begun = sva().beginBind(port.model(), m.devId(), m.pasid());
    if (!begun.isOk()) {
      m.replyTo().tell(port.refusal(begun));
      return;
    }
    SvaPasids.BindPlan plan = begun.value();
    int parentId = plan.parent().id();
    port.opStarted();
    port.askSelf(
        ref -> port.hwptAlloc(new IoasidFdActor.HwptAlloc(
            Uapi.HWPT_ALLOC_PASID, m.devId(), parentId, m.dataType(), m.dataLen(), 0, ref)),
        allocated -> {
          if (!(allocated instanceof IoasidFdActor.HwptAllocated ha)) {
            sva().abortBind(plan);
            port.opDone(m.replyTo(), allocated);
            return;
          }
          port.askSelf(
              ref -> port.attach(m.devId(), m.pasid(), ha.outHwptId(), false, ref),
              attached -> {
                if (!(attached instanceof IoasidFdActor.DeviceAttached)) {
                  port.askSelf(
                      ref -> port.destroy(new IoasidFdActor.Destroy(ha.outHwptId(), ref)),
                      destroyed -> {
                        sva().abortBind(plan);
                        port.opDone(m.replyTo(), attached);
                      });
                  return;
                }
                HwPagetable nested = port.model().objects().get(ha.outHwptId(), HwPagetable.class);
                sva().finishBind(plan, nested);
                port.opDone(m.replyTo(), new IoasidFdActor.SvaBound(ha.outHwptId(), ha.unitId(), ha.domainId()));
              });
        });
  }

  void unbind(IoasidFdActor.SvaUnbindPgtbl m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    Outcome<SvaPasids.Binding> begun = sva().beginUnbind(port.model(), m.devId(), m.pasid());
    if (!begun.isOk()) {
      m.replyTo().tell(port.refusal(begun));
      return;
    }
    SvaPasids.Binding b = begun.value();
    int hwptId = b.hwpt().id();
    port.opStarted();
    port.askSelf(
        ref -> port.detach(m.devId(), m.pasid(), ref),
        detached -> {
          if (detached instanceof IoasidFdActor.Refused) {
            sva().restore(b);
            port.opDone(m.replyTo(), detached);
            return;
          }
          port.askSelf(
              ref -> port.destroy(new IoasidFdActor.Destroy(hwptId, ref)),
              destroyed -> port.opDone(m.replyTo(), destroyed));
        });
  }

  /**
   * A device being unbound has had its PASIDs detached: the nested HWPTs of its bindings go too
   * (they would otherwise stay as leaves until close).
   */
  void beforeRelease(io.iommulab.actors.fd.model.Device d, Runnable then) {
    destroyAll(sva().takeOrphans(d), 0, then);
  }

  private void destroyAll(java.util.List<HwPagetable> hwpts, int i, Runnable then) {
    if (i == hwpts.size()) {
      then.run();
      return;
    }
    HwPagetable h = hwpts.get(i);
    Outcome<io.iommulab.actors.fd.model.IommufdCtx.DestroyPlan> plan = port.model().beginDestroy(h.id());
    if (!plan.isOk() || plan.value().hwpt() == null) {
      destroyAll(hwpts, i + 1, then); // destroyed by the user meanwhile, or still used: close takes it
      return;
    }
    port.destroyHwpt(plan.value().hwpt(), () -> destroyAll(hwpts, i + 1, then));
  }

  void flush(IoasidFdActor.SvaFlush m) {
    if (port.refuseIfClosed(m.replyTo())) {
      return;
    }
    Outcome<SvaPasids.Binding> b = sva().binding(port.model(), m.devId(), m.pasid());
    if (!b.isOk()) {
      m.replyTo().tell(port.refusal(b));
      return;
    }
    int hwptId = b.value().hwpt().id();
    port.opStarted();
    port.askSelf(
        ref -> port.invalidate(
            new IoasidFdActor.HwptInvalidate(hwptId, m.dataType(), m.entryLen(), m.entries(), ref)),
        reply -> port.opDone(m.replyTo(), reply));
  }
}
