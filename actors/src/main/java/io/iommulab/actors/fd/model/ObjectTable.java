package io.iommulab.actors.fd.model;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * The object table of one fd: {@code ictx->objects}, an xarray allocating IDs from 1 with a
 * 31-bit limit, lowest free ID first ({@code XA_FLAGS_ALLOC1}, {@code xa_limit_31b};
 * {@code drivers/iommu/iommufd/main.c}).
 *
 * <p>Invariants:
 *
 * <ul>
 *   <li>An ID is held by at most one object; IDs of RESERVED, LIVE, DESTROYING and TOMBSTONE
 *       objects are all held (a reserved ID is never handed to another object before it is
 *       finalized or aborted; a tombstone's ID is never reused until close).
 *   <li>{@link #get} sees only LIVE objects of the requested type: a missing, reserved,
 *       tombstoned, being-destroyed or other-typed object is ENOENT, as {@code
 *       iommufd_get_object}.
 *   <li>{@link #checkDestroy} then {@link #remove} is one atomic check-and-remove within the
 *       owning actor's message (the fix of CVE-2023-53795: DESTROY never waits and never raises a
 *       refcount; a concurrent user makes it EBUSY).
 * </ul>
 *
 * <p>Single-threaded: the fd actor is its lock.
 */
public final class ObjectTable {

  /** Injector site consulted before an object's ID is reserved ({@code iommufd_object_alloc}). */
  public static final String SITE = "fd.object";

  private static final int MAX_ID = Integer.MAX_VALUE;

  private final FaultInjector injector;
  private final BitSet used = new BitSet();
  private FdObject[] slots = new FdObject[16];
  private int count;

  public ObjectTable(FaultInjector injector) {
    this.injector = injector;
  }

  /**
   * Reserves the lowest free ID for {@code obj} (state RESERVED). ENOMEM when the injector fails
   * the allocation; ENOSPC when all 2^31 - 1 IDs are held.
   */
  public Outcome<Integer> reserve(FdObject obj) {
    if (obj.state != FdObject.State.RESERVED || obj.id != 0) {
      throw new IllegalArgumentException("object already in a table: " + obj.type() + " " + obj.id);
    }
    if (injector.shouldFail(SITE)) {
      return Outcome.err(Errno.ENOMEM, "%s: object allocation failed (injected)", obj.type());
    }
    int id = used.nextClearBit(1);
    if (id > MAX_ID || id < 0) {
      return Outcome.err(Errno.ENOSPC, "%s: every 31-bit object ID is in use", obj.type());
    }
    if (id >= slots.length) {
      FdObject[] grown = new FdObject[Math.max(slots.length * 2, id + 1)];
      System.arraycopy(slots, 0, grown, 0, slots.length);
      slots = grown;
    }
    used.set(id);
    slots[id] = obj;
    obj.id = id;
    count++;
    return Outcome.ok(id);
  }

  /** Publishes a reserved object: from now on lookups find it ({@code iommufd_object_finalize}). */
  public void finalizeObject(FdObject obj) {
    requireHeld(obj, FdObject.State.RESERVED);
    obj.state = FdObject.State.LIVE;
  }

  /** Undoes {@link #reserve}: the ID is free again, never having been visible. */
  public void abort(FdObject obj) {
    requireHeld(obj, FdObject.State.RESERVED);
    if (obj.users != 0) {
      throw new IllegalStateException(
          obj.type() + " " + obj.id + " aborted with " + obj.users + " users");
    }
    release(obj);
  }

  /** The LIVE object {@code id} of {@code type}, or null (ENOENT for the caller). */
  public <T extends FdObject> T get(int id, Class<T> type) {
    FdObject o = id > 0 && id < slots.length ? slots[id] : null;
    if (o == null || o.state != FdObject.State.LIVE || !type.isInstance(o)) {
      return null;
    }
    return type.cast(o);
  }

  /** The LIVE object {@code id} of any type, or null. */
  public FdObject get(int id) {
    return get(id, FdObject.class);
  }

  /**
   * Whether DESTROY of {@code id} may proceed: ENOENT when no LIVE object has it, EBUSY while
   * another object or attachment uses it.
   */
  public Outcome<FdObject> checkDestroy(int id) {
    FdObject o = get(id);
    if (o == null) {
      return Outcome.err(Errno.ENOENT, "id %d: no such object", id);
    }
    if (o.users != 0) {
      return Outcome.err(
          Errno.EBUSY, "%s %d: still used by %d object(s) or attachment(s)", o.type(), id, o.users);
    }
    return Outcome.ok(o);
  }

  /** Marks a LIVE object as being torn down asynchronously: lookups no longer find it. */
  public void markDestroying(FdObject obj) {
    requireHeld(obj, FdObject.State.LIVE);
    obj.state = FdObject.State.DESTROYING;
  }

  /** Removes a LIVE or DESTROYING object with no users; its ID is free again. */
  public void remove(FdObject obj) {
    if (obj.state != FdObject.State.LIVE && obj.state != FdObject.State.DESTROYING) {
      throw new IllegalStateException(obj.type() + " " + obj.id + " removed in state " + obj.state);
    }
    requireSlot(obj);
    if (obj.users != 0) {
      throw new IllegalStateException(obj.type() + " " + obj.id + " removed with users " + obj.users);
    }
    release(obj);
  }

  /**
   * Force-destroys {@code obj} but keeps its ID held until close: the vDEVICE tombstone of
   * {@code iommufd_device_pre_destroy} ("permanently leaked ... until iommu fd closed").
   */
  public void tombstone(FdObject obj) {
    requireSlot(obj);
    obj.state = FdObject.State.TOMBSTONE;
  }

  /** Drops every tombstone (close). */
  public int clearTombstones() {
    int n = 0;
    for (int id = used.nextSetBit(1); id >= 0; id = used.nextSetBit(id + 1)) {
      if (slots[id].state == FdObject.State.TOMBSTONE) {
        release(slots[id]);
        n++;
      }
    }
    return n;
  }

  /** Objects in ID order whose state is {@code state}. */
  public List<FdObject> inState(FdObject.State state) {
    List<FdObject> out = new ArrayList<>();
    for (int id = used.nextSetBit(1); id >= 0; id = used.nextSetBit(id + 1)) {
      if (slots[id].state == state) {
        out.add(slots[id]);
      }
    }
    return out;
  }

  /** LIVE objects of {@code type} in ID order. */
  public <T extends FdObject> List<T> live(Class<T> type) {
    List<T> out = new ArrayList<>();
    for (int id = used.nextSetBit(1); id >= 0; id = used.nextSetBit(id + 1)) {
      FdObject o = slots[id];
      if (o.state == FdObject.State.LIVE && type.isInstance(o)) {
        out.add(type.cast(o));
      }
    }
    return out;
  }

  /** Number of IDs held, in any state. */
  public int size() {
    return count;
  }

  public boolean isEmpty() {
    return count == 0;
  }

  private void release(FdObject obj) {
    slots[obj.id] = null;
    used.clear(obj.id);
    count--;
    obj.state = FdObject.State.GONE;
  }

  private void requireHeld(FdObject obj, FdObject.State state) {
    requireSlot(obj);
    if (obj.state != state) {
      throw new IllegalStateException(
          obj.type() + " " + obj.id + " is " + obj.state + ", expected " + state);
    }
  }

  private void requireSlot(FdObject obj) {
    if (obj.id <= 0 || obj.id >= slots.length || slots[obj.id] != obj) {
      throw new IllegalStateException(obj.type() + " " + obj.id + " is not in this table");
    }
  }
}
