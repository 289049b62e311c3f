package io.iommulab.actors.fd.model;

/**
 * {@code struct iommufd_object}: what every object of an fd has — an ID, a type, a users count
 * and a lifecycle state ({@code drivers/iommu/iommufd/main.c}).
 *
 * <p>{@code users} counts the references other objects and attachments hold on this object (a
 * HWPT on its IOAS, a device attachment on its HWPT, a vDEVICE on its vIOMMU, a bound device on
 * itself for its VFIO driver). The kernel's count also includes the table's own reference; here it
 * does not, so DESTROY needs {@code users == 0} (the kernel's {@code refcount_dec_if_one}).
 *
 * <p>Lifecycle: {@link State#RESERVED} (ID taken, invisible to the uAPI: {@code XA_ZERO_ENTRY})
 * → {@link State#LIVE} at finalize → removed at destroy. An abort removes a RESERVED object and
 * frees its ID. {@link State#DESTROYING} marks an object whose asynchronous teardown is under way
 * (lookups treat it as gone); {@link State#TOMBSTONE} keeps a force-destroyed vDEVICE's ID until
 * close. {@link State#GONE}: no longer in the table.
 */
public abstract class FdObject {

  /** See the class comment. */
  public enum State {
    RESERVED,
    LIVE,
    DESTROYING,
    TOMBSTONE,
    /** Removed from the table (destroyed or aborted); a stale reference sees this. */
    GONE
  }

  private final ObjectType type;
  int id;
  int users;
  State state = State.RESERVED;

  protected FdObject(ObjectType type) {
    this.type = type;
  }

  public final int id() {
    return id;
  }

  public final ObjectType type() {
    return type;
  }

  public final int users() {
    return users;
  }

  public final State state() {
    return state;
  }

  public final boolean isLive() {
    return state == State.LIVE;
  }

  /** Another object or attachment now references this one. */
  public final void addUser() {
    users++;
  }

  /** A reference taken with {@link #addUser()} is dropped; below zero is a bug. */
  public final void removeUser() {
    if (users <= 0) {
      throw new IllegalStateException(type + " " + id + ": users would go below 0");
    }
    users--;
  }

  /** One line for snapshots: flags, attachments, depth. Equal state gives an equal line. */
  public abstract String summary();
}
