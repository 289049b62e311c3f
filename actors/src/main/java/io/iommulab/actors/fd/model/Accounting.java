package io.iommulab.actors.fd.model;

import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;

/**
 * Locked-memory accounting of one fd's user ({@code drivers/iommu/iommufd/pages.c}
 * {@code incr_user_locked_vm} / {@code update_mm_locked_vm}): pinned pages are charged against an
 * RLIMIT_MEMLOCK-like limit, in the mode fixed on the pages object at MAP time.
 *
 * <ul>
 *   <li>{@link Mode#NONE}: an opener with CAP_IPC_LOCK; nothing is charged.
 *   <li>{@link Mode#USER}: {@code user->locked_vm}, the "modern" mode (io_uring's).
 *   <li>{@link Mode#MM}: {@code mm->locked_vm}, VFIO-compatible (VmLck).
 * </ul>
 *
 * <p>Invariants: {@code 0 <= userLocked}, {@code 0 <= mmLocked}; a charge that would take either
 * past {@code limitPages} fails with ENOMEM and charges nothing (all or nothing, as "charge after
 * pin; over the limit, everything just pinned is unpinned"); every charge is returned by exactly
 * one uncharge, so both counters are 0 once every pages object is gone. Each VMM runs as its own
 * user, so the user counter belongs to the fd (inference: the emulator gives every VMM process a
 * user of its own; a host with several fds per user would share it).
 */
public final class Accounting {

  /** {@code enum iopt_pages_account_mode}. */
  public enum Mode {
    NONE,
    USER,
    MM;

    public static Mode of(UapiSettings.AccountMode m) {
      return m == UapiSettings.AccountMode.MM ? MM : USER;
    }
  }

  private final long limitPages;
  private long userLocked;
  private long mmLocked;

  /** @param limitBytes RLIMIT_MEMLOCK in bytes (rounded down to pages) */
  public Accounting(long limitBytes) {
    if (limitBytes < 0) {
      throw new IllegalArgumentException("memlock limit " + limitBytes);
    }
    this.limitPages = limitBytes / Uapi.PAGE_SIZE;
  }

  /** Charges {@code npages} in {@code mode}: ENOMEM past the limit, nothing charged then. */
  public Outcome<Void> charge(Mode mode, long npages) {
    if (npages < 0) {
      throw new IllegalArgumentException("npages " + npages);
    }
    switch (mode) {
      case NONE:
        return Outcome.OK;
      case USER:
        if (npages > limitPages - userLocked) {
          return Outcome.err(
              Errno.ENOMEM,
              "RLIMIT_MEMLOCK: %d pages locked by the user + %d would exceed %d",
              userLocked,
              npages,
              limitPages);
        }
        userLocked += npages;
        return Outcome.OK;
      case MM:
        if (npages > limitPages - mmLocked) {
          return Outcome.err(
              Errno.ENOMEM,
              "RLIMIT_MEMLOCK: %d pages locked by the process + %d would exceed %d",
              mmLocked,
              npages,
              limitPages);
        }
        mmLocked += npages;
        return Outcome.OK;
      default:
        throw new IllegalStateException("mode " + mode);
    }
  }

  /** Returns a charge made by {@link #charge}; going below zero is a bug. */
  public void uncharge(Mode mode, long npages) {
    switch (mode) {
      case NONE -> {}
      case USER -> {
        if (npages > userLocked) {
          throw new IllegalStateException("uncharge " + npages + " of " + userLocked + " user pages");
        }
        userLocked -= npages;
      }
      case MM -> {
        if (npages > mmLocked) {
          throw new IllegalStateException("uncharge " + npages + " of " + mmLocked + " mm pages");
        }
        mmLocked -= npages;
      }
      default -> throw new IllegalStateException("mode " + mode);
    }
  }

  public long limitPages() {
    return limitPages;
  }

  public long userLockedPages() {
    return userLocked;
  }

  public long mmLockedPages() {
    return mmLocked;
  }
}
