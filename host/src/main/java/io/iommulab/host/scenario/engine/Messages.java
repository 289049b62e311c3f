package io.iommulab.host.scenario.engine;

import io.iommulab.actors.CborSerializable;
import io.iommulab.host.scenario.TenantSample;
import io.iommulab.host.scenario.Violation;
import java.util.List;
import java.util.Map;

/**
 * What workload actors tell the conductor. Records of plain values (CBOR-serializable), so the
 * engine's actors could run on several nodes.
 */
final class Messages {
  private Messages() {}

  /**
   * A VM's fd that the workload closed at teardown and what its close left behind (empty: nothing,
   * as it must); {@code refused} when the close itself was refused or not answered.
   */
  record FdCloseResult(int vmId, int fd, int objectsDestroyed, long pagesUnpinned, List<String> leftBehind,
      String refused) implements CborSerializable {
    FdCloseResult {
      leftBehind = List.copyOf(leftBehind);
    }

    boolean clean() {
      return refused == null && leftBehind.isEmpty();
    }
  }

  /**
   * What one workload actor says at its end.
   *
   * @param tenant its tenant
   * @param vms VMs it drove
   * @param vmsStarted VMs that started and got their fd (the others failed: see problems)
   * @param closes every fd it closed
   * @param errnos refusals by operation and errno ("map ENOSPC" → count)
   * @param problems what went wrong in setup and teardown, in words (bounded)
   * @param strayCompleted stray accesses to IOVAs the VM never mapped that nevertheless
   *     completed (each must fault)
   * @param aborted DMA accesses aborted by a device that was being unplugged
   * @param kvm what KVM did with the WBINVDs of these VMs
   */
  record WorkloadReport(
      String tenant,
      int vms,
      int vmsStarted,
      List<FdCloseResult> closes,
      Map<String, Long> errnos,
      List<String> problems,
      long strayCompleted,
      long aborted,
      Kvm kvm)
      implements CborSerializable {
    WorkloadReport {
      closes = List.copyOf(closes);
      errnos = Map.copyOf(errnos);
      problems = List.copyOf(problems);
    }
  }

  /**
   * KVM's side of the WBINVDs a workload's VMs issued: how many, how many KVM emulated (the VM had
   * non-coherent DMA registered), when the first and last emulated ones happened (from the run's
   * start, -1 for none), and the non-coherent registrations and unregistrations the VMs reported
   * last (summed).
   */
  record Kvm(long wbinvd, long emulated, long firstEmulatedAt, long lastEmulatedAt, long registrations,
      long unregistrations) implements CborSerializable {}

  /** Setup of a workload's VMs is over: {@code ready} of {@code vms} run their workload. */
  record SetupDone(String tenant, int vms, int ready, long tookNanos) implements Conductor.Command {}

  /** A sample of interval {@code index} (the workload's recorder, drained). */
  record Sampled(int index, TenantSample sample) implements Conductor.Command {}

  /** A violation a VM reported, with its events. */
  record ViolationSeen(Violation violation) implements Conductor.Command {}

  /** The last sample (everything since the last drain) and the report. */
  record Finished(TenantSample sample, WorkloadReport report) implements Conductor.Command {}
}
