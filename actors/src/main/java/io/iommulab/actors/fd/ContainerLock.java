package io.iommulab.actors.fd;

import java.util.ArrayDeque;
import java.util.function.Consumer;

/**
 * The VFIO container's {@code iommu->lock} ({@code drivers/vfio/vfio_iommu_type1.c}, {@code
 * vfio_iommu_fsl_pamu.c}) as an actor-side queue: one container operation at a time, in arrival
 * order. Nobody blocks: a waiting operation is a continuation the owning actor runs when the
 * holder releases. Every holder releases exactly once.
 */
final class ContainerLock {
  private boolean held;
  private final ArrayDeque<Consumer<Runnable>> waiting = new ArrayDeque<>();

  /** Runs {@code body} now or after the current holder; {@code body} gets the release to call. */
  void run(Consumer<Runnable> body) {
    if (held) {
      waiting.addLast(body);
      return;
    }
    held = true;
    body.accept(releaser());
  }

  private Runnable releaser() {
    boolean[] done = {false};
    return () -> {
      if (done[0]) {
        throw new IllegalStateException("container lock released twice");
      }
      done[0] = true;
      Consumer<Runnable> next = waiting.pollFirst();
      if (next == null) {
        held = false;
      } else {
        next.accept(releaser());
      }
    };
  }
}
