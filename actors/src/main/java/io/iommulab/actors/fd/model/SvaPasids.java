package io.iommulab.actors.fd.model;

import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The SVA mode (seed 000, "[PATCH V4 05/18] iommu/ioasid: Redefine IOASID set and allocation
 * APIs", Yi Liu / Jason Gunthorpe / Kevin Tian, March 2021): PASIDs are allocated per VM on its
 * fd ("/dev/ioasid FD is per-VM since the ioasid allocated to the VM should be able to be shared
 * by all assigned device for the VM"), and guest page tables are bound, unbound and flushed per
 * device ("the SVA operations (bind/unbind page table, cache_invalidate) should be per-device"),
 * squashed onto the one fd with a device tag per call, as Jason asked ("I can't see why you'd
 * need two fds to manipulate a PASID").
 *
 * <p>A bind is hardware nesting through the merged uAPI: a HWPT_NESTED (VT-d stage 1, the guest's
 * table) over the NEST_PARENT HWPT the device's RID is attached to — the VM's GPA space — attached
 * at the PASID on that device (the PASID table is per RID: "access to a PASID must be limited by
 * RID", seed 001). The nested HWPT is the binding's: the user sees its ID (for writes to the guest
 * table through the unit) but DESTROY of it is EBUSY while bound; unbind detaches and destroys it.
 * A flush is the guest's invalidation of that table (HWPT_INVALIDATE of the nested HWPT).
 *
 * <p>Rules:
 *
 * <ul>
 *   <li>IOASID_ALLOC: the lowest free PASID from 1 (PASID 0 is the RID's own space) up to 2^20 - 1;
 *       at most {@code pasids-per-vm} at once, ENOSPC past it; ENOMEM from the injector. FREE of a
 *       PASID the VM does not hold: EPERM (see below); of a bound one: EBUSY. Close frees all.
 *   <li>BIND / UNBIND / FLUSH name (device, PASID). The device must be bound here (ENOENT). The
 *       PASID must be one this VM allocated: EPERM otherwise — the thread makes the PASID a VM
 *       resource that devices are merely <em>authorized</em> to use ("Drivers consuming a PASID
 *       ... should consume the PASID and do nothing more than authorize the HW to use it"), so a
 *       well-formed PASID the caller does not own is a permission failure, not a malformed
 *       argument; EINVAL stays for arguments that are wrong whoever asks (a PASID beyond the
 *       device's width, a device without PASID support, a wrong table format).
 *   <li>BIND: the device's PASID width must cover the PASID (EINVAL); its IOMMU must take per-PASID
 *       page tables — SMMUv3 binds the guest's whole PASID (CD) table instead ("ARM and AMD's vSVA
 *       support ... binds guest PASID table to host instead of binding guest page tables to
 *       specific PASIDs"): EOPNOTSUPP; the RID must be attached to a NEST_PARENT, PASID-capable
 *       HWPT_PAGING (the GPA space; EINVAL otherwise); (device, PASID) bound already: EBUSY. The
 *       HWPT_ALLOC and PASID attach rules then apply (their errnos), all or nothing.
 *   <li>UNBIND / FLUSH of a (device, PASID) not bound: EINVAL. Unbinding the device (closing its
 *       VFIO fd) unbinds its tables: PASIDs detached, nested HWPTs destroyed.
 * </ul>
 *
 * <p>Invariants: every binding's PASID is allocated; every binding's nested HWPT is attached at
 * exactly (device, PASID); a PASID is freed only without bindings.
 */
public final class SvaPasids {

  /** Injector site of a PASID allocation ({@code ioasid_alloc}). */
  public static final String SITE_PASID = "fd.pasid";

  /** A bound guest page table: the nested HWPT at (device, PASID). */
  public record Binding(Device device, int pasid, HwPagetable hwpt) {}

  private final int quota;
  private final FaultInjector injector;
  private final BitSet allocated = new BitSet();
  private final Map<Long, Binding> bindings = new TreeMap<>();
  /** (device, PASID) with a bind or unbind in flight. */
  private final java.util.Set<Long> busy = new java.util.HashSet<>();
  /** Nested HWPTs of bindings whose device is being unbound: destroyed once detached. */
  private final List<Binding> orphans = new ArrayList<>();

  SvaPasids(int quota, FaultInjector injector) {
    this.quota = quota;
    this.injector = injector;
  }

  private static long key(Device d, int pasid) {
    return ((long) d.id() << 32) | (pasid & 0xffffffffL);
  }

  public int allocatedCount() {
    return allocated.cardinality();
  }

  public boolean owns(int pasid) {
    return pasid > 0 && allocated.get(pasid);
  }

  /** IOASID_ALLOC: the lowest free PASID; ENOSPC past the VM's quota; ENOMEM injected. */
  public Outcome<Integer> alloc() {
    if (allocated.cardinality() >= quota) {
      return Outcome.err(Errno.ENOSPC, "the VM holds %d PASIDs, its quota", quota);
    }
    if (injector.shouldFail(SITE_PASID)) {
      return Outcome.err(Errno.ENOMEM, "PASID allocation failed (injected)");
    }
    int p = allocated.nextClearBit(1);
    if (p > io.iommulab.config.UapiSettings.MAX_PASIDS) {
      return Outcome.err(Errno.ENOSPC, "the 20-bit PASID space is used up");
    }
    allocated.set(p);
    return Outcome.ok(p);
  }

  /** IOASID_FREE: EPERM for a PASID the VM does not hold, EBUSY while bound. */
  public Outcome<Void> free(int pasid) {
    if (!owns(pasid)) {
      return Outcome.err(Errno.EPERM, "pasid %d: not allocated to this VM", pasid);
    }
    for (Long k : busy) {
      if ((int) (long) k == pasid) {
        return Outcome.err(Errno.EBUSY, "pasid %d: a bind or unbind is in flight", pasid);
      }
    }
    for (Binding b : bindings.values()) {
      if (b.pasid == pasid) {
        return Outcome.err(Errno.EBUSY, "pasid %d: bound on device %d", pasid, b.device.id());
      }
    }
    allocated.clear(pasid);
    return Outcome.OK;
  }

  /** What BIND needs: the device, its GPA parent, the PASID. */
  public record BindPlan(Device device, int pasid, HwPagetable parent) {}

  /** BIND, first phase: the checks of the class comment; marks (device, PASID) busy. */
  public Outcome<BindPlan> beginBind(IommufdCtx ctx, int devId, int pasid) {
    Device d = ctx.device(devId);
    if (d == null) {
      return Outcome.err(Errno.ENOENT, "device %d: no such object", devId);
    }
    if (!owns(pasid)) {
      return Outcome.err(Errno.EPERM, "pasid %d: not allocated to this VM", pasid);
    }
    int bits = d.info.pasidBits();
    if (bits == 0 || (bits < 31 && pasid >= 1 << bits)) {
      return Outcome.err(Errno.EINVAL, "pasid %d: device %s supports %d PASID bits", pasid, d.name, bits);
    }
    if (d.info.kind() != UnitKind.VTD) {
      return Outcome.err(
          Errno.EOPNOTSUPP, "%s binds the guest's PASID table, not a page table per PASID", d.info.unitName());
    }
    long k = key(d, pasid);
    if (bindings.containsKey(k) || busy.contains(k)) {
      return Outcome.err(Errno.EBUSY, "device %d pasid %d: a guest page table is bound already", devId, pasid);
    }
    HwPagetable rid = d.attachments.get(Device.NO_PASID);
    if (rid == null || !rid.isPaging() || !rid.nestParent || !rid.pasidCapable) {
      return Outcome.err(
          Errno.EINVAL,
          "device %d: its RID must be attached to a NEST_PARENT|PASID HWPT_PAGING (the VM's GPA space)",
          devId);
    }
    busy.add(k);
    return Outcome.ok(new BindPlan(d, pasid, rid));
  }

  public void finishBind(BindPlan plan, HwPagetable nested) {
    long k = key(plan.device, plan.pasid);
    busy.remove(k);
    nested.addUser(); // the binding's: DESTROY of the nested HWPT is EBUSY while bound
    bindings.put(k, new Binding(plan.device, plan.pasid, nested));
  }

  public void abortBind(BindPlan plan) {
    busy.remove(key(plan.device, plan.pasid));
  }

  /** UNBIND / FLUSH: the binding of (device, PASID); ENOENT, EPERM, EINVAL as above. */
  public Outcome<Binding> binding(IommufdCtx ctx, int devId, int pasid) {
    Device d = ctx.device(devId);
    if (d == null) {
      return Outcome.err(Errno.ENOENT, "device %d: no such object", devId);
    }
    if (!owns(pasid)) {
      return Outcome.err(Errno.EPERM, "pasid %d: not allocated to this VM", pasid);
    }
    long k = key(d, pasid);
    Binding b = bindings.get(k);
    if (b == null || busy.contains(k)) {
      return Outcome.err(Errno.EINVAL, "device %d pasid %d: no guest page table bound", devId, pasid);
    }
    return Outcome.ok(b);
  }

  /** UNBIND, first phase: the binding leaves; the owner detaches and destroys its HWPT. */
  public Outcome<Binding> beginUnbind(IommufdCtx ctx, int devId, int pasid) {
    Outcome<Binding> b = binding(ctx, devId, pasid);
    if (!b.isOk()) {
      return b;
    }
    Binding binding = b.value();
    bindings.remove(key(binding.device, pasid));
    binding.hwpt.removeUser();
    return b;
  }

  /** An unbind whose detach was refused: the binding stays. */
  public void restore(Binding b) {
    b.hwpt.addUser();
    bindings.put(key(b.device, b.pasid), b);
  }

  /**
   * The device is being unbound from the fd: its bindings go with its attachments; their nested
   * HWPTs are kept for {@link #takeOrphans} (the owner destroys them once detached).
   */
  void dropDevice(Device d) {
    bindings.values().removeIf(b -> {
      if (b.device == d) {
        orphans.add(b);
        b.hwpt.removeUser();
        return true;
      }
      return false;
    });
  }

  /** The nested HWPTs of {@code d}'s dropped bindings (detached by now), to destroy. */
  public List<HwPagetable> takeOrphans(Device d) {
    List<HwPagetable> out = new ArrayList<>();
    orphans.removeIf(b -> {
      if (b.device == d) {
        out.add(b.hwpt);
        return true;
      }
      return false;
    });
    return out;
  }

  /** Close: every PASID of the VM is freed. */
  void clear() {
    orphans.clear();
    bindings.clear();
    busy.clear();
    allocated.clear();
  }

  public List<Binding> bindings() {
    return List.copyOf(bindings.values());
  }

  String summary() {
    StringBuilder sb = new StringBuilder("sva pasids=").append(allocated);
    for (Binding b : bindings.values()) {
      sb.append(" dev").append(b.device.id()).append(":pasid").append(b.pasid).append("->hwpt").append(b.hwpt.id());
    }
    return sb.toString();
  }
}
