package io.iommulab.actors.fd;

import java.util.ArrayDeque;

/**
 * The IOAS's {@code domains_rwsem} as an actor-side queue: maps and unmaps of an IOAS (readers)
 * run concurrently with each other, and a change of its domain set (adding or removing a
 * HWPT_PAGING: a writer) runs alone. Nobody blocks: waiters are continuations run by the owning
 * actor when the gate opens, in arrival order (a waiting writer holds back later readers, so
 * writers are not starved).
 */
final class IoasGate {
  private int readers;
  private boolean writer;
  /** Created by the first wait: most gates live for one uncontended map or unmap. */
  private ArrayDeque<Object[]> waiting;

  /** Runs {@code then} now or when no writer holds or waits. */
  void read(Runnable then) {
    if (!writer && noneWaiting()) {
      readers++;
      then.run();
    } else {
      waiting().addLast(new Object[] {Boolean.FALSE, then});
    }
  }

  /** Runs {@code then} now or when nobody holds the gate. */
  void write(Runnable then) {
    if (!writer && readers == 0 && noneWaiting()) {
      writer = true;
      then.run();
    } else {
      waiting().addLast(new Object[] {Boolean.TRUE, then});
    }
  }

  void releaseRead() {
    if (readers <= 0) {
      throw new IllegalStateException("read release without hold");
    }
    readers--;
    drain();
  }

  void releaseWrite() {
    if (!writer) {
      throw new IllegalStateException("write release without hold");
    }
    writer = false;
    drain();
  }

  boolean idle() {
    return readers == 0 && !writer && noneWaiting();
  }

  private boolean noneWaiting() {
    return waiting == null || waiting.isEmpty();
  }

  private ArrayDeque<Object[]> waiting() {
    if (waiting == null) {
      waiting = new ArrayDeque<>(4);
    }
    return waiting;
  }

  private void drain() {
    while (!writer && !noneWaiting()) {
      Object[] next = waiting.peekFirst();
      boolean wantsWrite = (Boolean) next[0];
      if (wantsWrite) {
        if (readers > 0) {
          return;
        }
        waiting.pollFirst();
        writer = true;
        ((Runnable) next[1]).run();
        return;
      }
      waiting.pollFirst();
      readers++;
      ((Runnable) next[1]).run();
    }
  }
}
