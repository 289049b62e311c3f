package io.iommulab.actors.vm;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UnitKind;
import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What a VM knows of one PCI function assigned to it: the identity the host gave it (name, RID,
 * LIODN, IOMMU group), the unit it sits behind and the two actors a guest driver talks to. Handed
 * out by the host guardian; immutable.
 *
 * @param name the device name from the topology
 * @param rid packed requester id ({@code bus << 8 | dev << 3 | fn})
 * @param liodn PAMU logical I/O device number, or -1 behind a paging unit
 * @param group IOMMU group number
 * @param unitId index of the unit in the topology
 * @param unitKind the unit's kind
 * @param enforcedCoherent KVM may treat the device's DMA as coherent: its unit can enforce cache
 *     coherency ({@code IOMMU_CAP_ENFORCE_CACHE_COHERENCY}: VT-d ECAP.SC and the like), or it sits
 *     behind a PAMU, a PowerPC part whose KVM has no WBINVD to emulate. When false, KVM must
 *     emulate WBINVD for the VM that has the device (virt/kvm/vfio.c, {@code
 *     vfio_file_enforced_coherent})
 * @param pasidBits PASID width of the function (0: none)
 * @param ats the function has ATS (and a device ATC)
 * @param pri the function can issue page requests
 * @param noSnoop the function issues no-snoop requests
 * @param msiVectors MSI vectors the function uses
 * @param unit the unit actor
 * @param device the device actor
 */
public record DeviceHandle(
    String name,
    int rid,
    int liodn,
    int group,
    int unitId,
    UnitKind unitKind,
    boolean enforcedCoherent,
    int pasidBits,
    boolean ats,
    boolean pri,
    boolean noSnoop,
    int msiVectors,
    ActorRef<IommuUnitActor.Command> unit,
    ActorRef<DeviceActor.Command> device)
    implements CborSerializable {

  public DeviceHandle {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(unitKind, "unitKind");
    Objects.requireNonNull(unit, "unit");
    Objects.requireNonNull(device, "device");
  }

  /** What VFIO_DEVICE_BIND_IOMMUFD hands the fd: the identity and actors, not the VM's extras. */
  public IoasidFdActor.DeviceHandle bindHandle() {
    return new IoasidFdActor.DeviceHandle(name, rid, liodn, group, unitId, unit, device);
  }

  /** The RID as {@code bb:dd.f}. */
  public String ridText() {
    return String.format("%02x:%02x.%x", rid >>> 8, (rid >>> 3) & 0x1f, rid & 7);
  }
}
