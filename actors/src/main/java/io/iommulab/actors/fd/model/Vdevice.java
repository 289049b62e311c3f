package io.iommulab.actors.fd.model;

/**
 * {@code struct iommufd_vdevice}: a device as the guest sees it through a vIOMMU, at {@code
 * virtId} (vSID / vDeviceID / vRID). Holds a user on its vIOMMU. When its device is unbound first,
 * it is force-destroyed and its ID tombstoned until close ("permanently leaked (unremovable &
 * unreusable) until iommu fd closed").
 */
public final class Vdevice extends FdObject {

  final Viommu viommu;
  final Device device;
  final long virtId;

  Vdevice(Viommu viommu, Device device, long virtId) {
    super(ObjectType.VDEVICE);
    this.viommu = viommu;
    this.device = device;
    this.virtId = virtId;
  }

  public Viommu viommu() {
    return viommu;
  }

  public Device device() {
    return device;
  }

  public long virtId() {
    return virtId;
  }

  @Override
  public String summary() {
    return String.format("viommu=%d dev=%d virt_id=0x%x", viommu.id(), device.id(), virtId);
  }
}
