package io.iommulab.actors.fd.model;

import io.iommulab.hardware.FaultInjector;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code struct iommufd_ioas} ({@code drivers/iommu/iommufd/ioas.c}): an IO address space — its
 * {@link IoPagetable} and the list of HWPT_PAGING objects built from it ({@code hwpt_list}), auto
 * and manual, each of which holds a user reference on the IOAS.
 *
 * <p>Invariants: {@code users} equals the number of HWPTs in {@code hwpts} (so DESTROY of an IOAS
 * with a HWPT is EBUSY); every HWPT in {@code hwpts} is a domain of the page table.
 */
public final class Ioas extends FdObject {

  private final IoPagetable iopt;
  final List<HwPagetable> hwpts = new ArrayList<>();
  /** Software-nested HWPTs built on this IOAS (each is also a domain owner of its page table). */
  final List<HwPagetable> shadows = new ArrayList<>();
  /** Snoop requirement chosen at IOAS_ALLOC (the snoop-control mode, {@link SnoopControl}). */
  SnoopControl.Policy snoop = SnoopControl.Policy.DEVICE;

  Ioas(FaultInjector injector) {
    super(ObjectType.IOAS);
    this.iopt = new IoPagetable(injector);
  }

  public IoPagetable iopt() {
    return iopt;
  }

  /** The HWPT_PAGING objects of this IOAS in creation order (a view). */
  public List<HwPagetable> hwpts() {
    return java.util.Collections.unmodifiableList(hwpts);
  }

  /** The software-nested HWPTs over this IOAS (a view). */
  public List<HwPagetable> shadows() {
    return java.util.Collections.unmodifiableList(shadows);
  }

  public SnoopControl.Policy snoop() {
    return snoop;
  }

  @Override
  public String summary() {
    return String.format(
        "areas=%d domains=%d align=0x%x%s", iopt.areaCount(), iopt.domainCount(), iopt.iovaAlignment(),
        snoop == SnoopControl.Policy.DEVICE ? "" : " snoop=" + snoop);
  }
}
