package io.iommulab.actors.vm;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.util.Map;
import java.util.TreeMap;

/**
 * The KVM side of device assignment for one VM (the 2021 snoop-control thread): the KVM VFIO
 * pseudo-device that the VMM tells about every assigned device file ({@code virt/kvm/vfio.c}), and
 * the VM's {@code kvm->arch.noncoherent_dma_count} with the WBINVD emulation it switches ({@code
 * arch/x86/kvm/x86.c}).
 *
 * <p>Rules, as in the kernel:
 *
 * <ul>
 *   <li>A file is <em>enforced coherent</em> when the IOMMU behind its device can block no-snoop
 *       ({@code vfio_file_enforced_coherent} asks {@code IOMMU_CAP_ENFORCE_CACHE_COHERENCY}): the
 *       device's own no-snoop habit does not matter, the kernel cannot know it.
 *   <li>After each add or delete, {@code kvm_vfio_update_coherency} rescans the files; when the
 *       answer "some file is non-coherent" changes, it registers ({@code
 *       kvm_arch_register_noncoherent_dma}) or unregisters once: one registration per KVM VFIO
 *       device, however many non-coherent files it holds.
 *   <li>WBINVD emulation is on while {@code noncoherent_dma_count > 0}. A guest WBINVD then exits
 *       and KVM flushes the caches of every CPU the vCPU ran on ({@code kvm_emulate_wbinvd}); with
 *       the count at zero the instruction is skipped.
 *   <li>Adding a file twice is EEXIST, deleting an unknown one ENOENT (KVM_DEV_VFIO_FILE_ADD/DEL);
 *       a refused call changes nothing. Destroying the device drops every file and unregisters.
 * </ul>
 *
 * <p>Invariants: {@code noncoherent} iff some file is not enforced coherent; {@code
 * noncoherentDmaCount} is 1 iff {@code noncoherent} (this VM has one KVM VFIO device); {@code
 * registrations - unregistrations == noncoherentDmaCount}. Single-threaded: the VM actor owns it.
 */
public final class KvmVfio {
  private final Map<String, Boolean> files = new TreeMap<>();
  private boolean noncoherent;
  private int noncoherentDmaCount;
  private long registrations;
  private long unregistrations;
  private long wbinvdExits;
  private long wbinvdEmulated;

  /** KVM_DEV_VFIO_FILE_ADD for the device file of {@code device}. */
  public Outcome<Void> addFile(String device, boolean enforcedCoherent) {
    if (files.containsKey(device)) {
      return Outcome.err(Errno.EEXIST, "device %s: file already added to the KVM VFIO device", device);
    }
    files.put(device, enforcedCoherent);
    updateCoherency();
    return Outcome.OK;
  }

  /** KVM_DEV_VFIO_FILE_DEL for the device file of {@code device}. */
  public Outcome<Void> deleteFile(String device) {
    if (files.remove(device) == null) {
      return Outcome.err(Errno.ENOENT, "device %s: no such file on the KVM VFIO device", device);
    }
    updateCoherency();
    return Outcome.OK;
  }

  public boolean hasFile(String device) {
    return files.containsKey(device);
  }

  /** {@code kvm_vfio_destroy}: the VM goes away; every file is dropped. */
  public void destroy() {
    files.clear();
    updateCoherency();
  }

  /**
   * A guest WBINVD (or INVD) exit. Returns true when it was emulated (a cache flush on the CPUs
   * the vCPU ran on), false when it was skipped because no non-coherent DMA is registered.
   */
  public boolean guestWbinvd() {
    wbinvdExits++;
    if (wbinvdEmulation()) {
      wbinvdEmulated++;
      return true;
    }
    return false;
  }

  /** {@code kvm_arch_has_noncoherent_dma}. */
  public boolean wbinvdEmulation() {
    return noncoherentDmaCount > 0;
  }

  private void updateCoherency() {
    boolean now = false;
    for (boolean coherent : files.values()) {
      if (!coherent) {
        now = true;
        break;
      }
    }
    if (now != noncoherent) {
      noncoherent = now;
      if (now) {
        noncoherentDmaCount++;
        registrations++;
      } else {
        noncoherentDmaCount--;
        unregistrations++;
      }
    }
  }

  public Snapshot snapshot() {
    return new Snapshot(
        files.size(),
        noncoherent,
        noncoherentDmaCount,
        registrations,
        unregistrations,
        wbinvdExits,
        wbinvdEmulated);
  }

  /** Throws when an invariant of the class Javadoc is broken: a bug. */
  public void checkInvariants() {
    boolean expected = files.containsValue(Boolean.FALSE);
    if (expected != noncoherent
        || noncoherentDmaCount != (noncoherent ? 1 : 0)
        || registrations - unregistrations != noncoherentDmaCount) {
      throw new IllegalStateException("KVM VFIO coherency state broken: " + snapshot());
    }
  }

  /**
   * Counters of the KVM side: {@code registrations} / {@code unregistrations} count the switches
   * of WBINVD emulation on and off; {@code wbinvdExits} every guest WBINVD, {@code wbinvdEmulated}
   * those that flushed.
   */
  public record Snapshot(
      int files,
      boolean noncoherent,
      int noncoherentDmaCount,
      long registrations,
      long unregistrations,
      long wbinvdExits,
      long wbinvdEmulated)
      implements io.iommulab.actors.CborSerializable {}
}
