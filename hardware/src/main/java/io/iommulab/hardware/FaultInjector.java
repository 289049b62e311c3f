package io.iommulab.hardware;

/**
 * A test hook in the manner of the kernel's {@code iommufd_should_fail()} and
 * {@code /proc/self/task/<tid>/fail-nth} ({@code tools/testing/selftests/iommu/iommufd_fail_nth.c}):
 * every internal allocation a model makes first asks {@link #shouldFail(String)}; a {@code true}
 * answer makes the model refuse the operation with {@link Errno#ENOMEM} and leave its state as it
 * was before the call.
 */
@FunctionalInterface
public interface FaultInjector {

  /** Never fails: the production injector. */
  FaultInjector NONE = site -> false;

  /**
   * Called at each injectable allocation site.
   *
   * @param site a stable name of the allocation ("pagetable.node", "host.frames", ...)
   */
  boolean shouldFail(String site);
}
