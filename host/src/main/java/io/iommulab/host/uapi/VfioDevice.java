package io.iommulab.host.uapi;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.Objects;
import java.util.concurrent.CompletionStage;

/**
 * One VFIO device cdev ({@code /dev/vfio/devices/vfioN}) used with an {@link IommuFd}:
 * VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT (with or without
 * VFIO_DEVICE_ATTACH_PASID), VFIO_DEVICE_DETACH_IOMMUFD_PT and close. The device ID learned at
 * bind is kept; calls before a successful bind are EINVAL, as VFIO refuses them.
 */
public final class VfioDevice {

  private final IommuFd fd;
  private final IoasidFdActor.DeviceHandle handle;
  private volatile int devId;

  public VfioDevice(IommuFd fd, IoasidFdActor.DeviceHandle handle) {
    this.fd = Objects.requireNonNull(fd, "fd");
    this.handle = Objects.requireNonNull(handle, "handle");
  }

  public IoasidFdActor.DeviceHandle handle() {
    return handle;
  }

  /** The DEVICE object ID, 0 before bind. */
  public int devId() {
    return devId;
  }

  /** VFIO_DEVICE_BIND_IOMMUFD: out_devid. */
  public CompletionStage<Outcome<Integer>> bind() {
    return fd.<IoasidFdActor.DeviceBound, Integer>call(
            r -> new IoasidFdActor.DeviceBind(handle, r),
            IoasidFdActor.DeviceBound.class,
            IoasidFdActor.DeviceBound::devId)
        .thenApplyAsync(
            o -> {
              if (o.isOk()) {
                devId = o.value();
              }
              return o;
            },
            fd.executor());
  }

  private <T> CompletionStage<Outcome<T>> unbound() {
    return java.util.concurrent.CompletableFuture.completedFuture(
        Outcome.err(Errno.EINVAL, "device %s is not bound", handle.name()));
  }

  /** Attach the RID to an IOAS or HWPT: the HWPT ID (pt_id out). */
  public CompletionStage<Outcome<Integer>> attach(int ptId) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.DeviceAttach(id, ptId, r),
        IoasidFdActor.DeviceAttached.class, IoasidFdActor.DeviceAttached::ptId);
  }

  /** Replace the RID's attachment: the HWPT ID. */
  public CompletionStage<Outcome<Integer>> replace(int ptId) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.DeviceReplace(id, ptId, r),
        IoasidFdActor.DeviceAttached.class, IoasidFdActor.DeviceAttached::ptId);
  }

  /** Detach the RID. */
  public CompletionStage<Outcome<Void>> detach() {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.DeviceDetach(id, r),
        IoasidFdActor.Done.class, d -> null);
  }

  /** Attach {@code pasid} to an IOAS or HWPT: the HWPT ID. */
  public CompletionStage<Outcome<Integer>> pasidAttach(int pasid, int ptId) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.DevicePasidAttach(id, pasid, ptId, r),
        IoasidFdActor.DeviceAttached.class, IoasidFdActor.DeviceAttached::ptId);
  }

  /** Replace the attachment of {@code pasid}: the HWPT ID. */
  public CompletionStage<Outcome<Integer>> pasidReplace(int pasid, int ptId) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.DevicePasidReplace(id, pasid, ptId, r),
        IoasidFdActor.DeviceAttached.class, IoasidFdActor.DeviceAttached::ptId);
  }

  /** Detach {@code pasid}. */
  public CompletionStage<Outcome<Void>> pasidDetach(int pasid) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.DevicePasidDetach(id, pasid, r),
        IoasidFdActor.Done.class, d -> null);
  }

  /**
   * VFIO_GROUP_SET_CONTAINER of this device's group on the fd's legacy container (binding the
   * device first when it is not bound): behind a paging IOMMU it is attached to the compat IOAS;
   * behind a PAMU its group joins the PAMU container.
   */
  public CompletionStage<Outcome<Void>> setContainer() {
    if (devId == 0) {
      return bind().thenComposeAsync(
          b -> b.isOk() ? setContainer() : java.util.concurrent.CompletableFuture.completedFuture(
              ((Outcome.Err<Integer>) b).<Void>cast()),
          fd.executor());
    }
    int id = devId;
    return fd.call(r -> new IoasidFdActor.VfioGroupSetContainer(id, r), IoasidFdActor.Done.class, d -> null);
  }

  /**
   * USVA_BIND_PGTBL: the guest's stage-1 table ({@code dataType}, {@code dataLen} bytes) at
   * {@code pasid} of this device, nested on the GPA space its RID is attached to.
   */
  public CompletionStage<Outcome<IommuFd.SvaBinding>> svaBindPgtbl(int pasid, int dataType, int dataLen) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.SvaBindPgtbl(id, pasid, dataType, dataLen, r),
        IoasidFdActor.SvaBound.class, x -> new IommuFd.SvaBinding(x.hwptId(), x.unitId(), x.domainId()));
  }

  /** USVA_UNBIND_PGTBL. */
  public CompletionStage<Outcome<Void>> svaUnbindPgtbl(int pasid) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.SvaUnbindPgtbl(id, pasid, r),
        IoasidFdActor.Done.class, d -> null);
  }

  /** USVA_FLUSH_CACHE: the guest's invalidation of the table bound at {@code pasid}. */
  public CompletionStage<Outcome<IommuFd.HwptInvalidated>> svaFlush(
      int pasid, int dataType, int entryLen, java.util.List<io.iommulab.actors.fd.model.InvalidationEntry> entries) {
    int id = devId;
    return id == 0 ? unbound() : fd.call(r -> new IoasidFdActor.SvaFlush(id, pasid, dataType, entryLen, entries, r),
        IoasidFdActor.HwptInvalidated.class, x -> new IommuFd.HwptInvalidated(x.entryNum(), x.errno(), x.message()));
  }

  /** close(device fd): detach everything, release ownership, destroy the DEVICE. */
  public CompletionStage<Outcome<Void>> unbind() {
    int id = devId;
    return id == 0 ? unbound() : fd.<IoasidFdActor.Done, Void>call(r -> new IoasidFdActor.DeviceUnbind(id, r),
            IoasidFdActor.Done.class, d -> null)
        .thenApplyAsync(o -> {
          if (o.isOk()) {
            devId = 0;
          }
          return o;
        }, fd.executor());
  }
}
