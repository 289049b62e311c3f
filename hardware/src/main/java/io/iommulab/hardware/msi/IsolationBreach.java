package io.iommulab.hardware.msi;

import java.util.List;

/**
 * A bank whose vectors belong to more than one owner: a device of any of them can write the
 * MSIIR and raise the others' interrupts (2013 VFIO-PAMU thread: isolation needs "an MSI group
 * only used by one VFIO group").
 *
 * @param bank bank index
 * @param msiirAddress the shared MSIIR
 * @param groups IOMMU groups with vectors in the bank, ascending
 * @param owners their owners, ascending ({@link MsiBank#HOST} for the host)
 */
public record IsolationBreach(int bank, long msiirAddress, List<Integer> groups, List<Integer> owners) {
  public IsolationBreach {
    groups = List.copyOf(groups);
    owners = List.copyOf(owners);
  }
}
