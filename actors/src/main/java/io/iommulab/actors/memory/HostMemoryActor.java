package io.iommulab.actors.memory;

import io.iommulab.actors.CborSerializable;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import io.iommulab.hardware.memory.Violation;
import java.util.List;
import java.util.Map;
import io.iommulab.config.TopologySettings;
import io.iommulab.hardware.FaultInjector;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * PROTOCOL (implementation pending). Owns the host's physical memory ({@code HostMemory}) and every
 * VM's {@code GuestMemory}: frame allocation and release, pin bookkeeping, and the isolation oracle
 * that checks every completed DMA against frame ownership.
 */
public final class HostMemoryActor {
  private HostMemoryActor() {}

  /**
   * The host's memory: RAM of {@code topology.hostMemoryBytes()}, the MSI banks' MSIIR pages
   * registered as host MMIO. {@code injector} fails internal allocations in fault sweeps.
   */
  public static Behavior<Command> create(TopologySettings topology, FaultInjector injector) {
    throw new UnsupportedOperationException("pending");
  }

  public sealed interface Command extends CborSerializable
      permits AllocateGuestMemory, ReleaseGuestMemory, PinsChanged, CheckDma, GetReport {}

  /** Backs a new VM's memory; replies {@link GuestMemoryAllocated} or {@link MemoryRefused}. */
  public record AllocateGuestMemory(
      int vmId, long bytes, PageSize backing, ActorRef<GuestMemoryReply> replyTo)
      implements Command {}

  /**
   * Returns a VM's memory to the host; replies {@link GuestMemoryReleased}, or {@link
   * MemoryRefused} with EBUSY while frames are still pinned (an fd of the VM is still open) and
   * ENOENT for an unknown VM.
   */
  public record ReleaseGuestMemory(int vmId, ActorRef<GuestMemoryReply> replyTo)
      implements Command {}

  /**
   * Pin bookkeeping from an fd (fire and forget, in order per sender): {@code [userVa, +length)} of
   * VM {@code vmId} was pinned ({@code pinned}) or unpinned once more. The fd's own accounting is
   * authoritative for its limits; this keeps the host's frame pin counts for the oracle (a pinned
   * frame is never freed; every pin is gone when all fds are closed).
   */
  public record PinsChanged(int vmId, long userVa, long length, boolean pinned)
      implements Command {}

  /**
   * Completed DMA accesses to check (fire and forget): {@code count} accesses at {@code hpas[i]} of
   * {@code lengths[i]} bytes by requester {@code rid} (PASID {@code pasid}) behind unit
   * {@code unitId}, expected to touch only frames of {@code expectedOwner} (a VM id, or
   * {@code HostMemory.HOST} for a device no VM owns). The arrays belong to the message.
   */
  public record CheckDma(
      int expectedOwner,
      int unitId,
      int rid,
      int pasid,
      long[] hpas,
      int[] lengths,
      int count,
      long timeNs)
      implements Command {}

  public record GetReport(ActorRef<MemoryReport> replyTo) implements Command {}

  public sealed interface GuestMemoryReply extends CborSerializable
      permits GuestMemoryAllocated, GuestMemoryReleased, MemoryRefused {}

  public record GuestMemoryAllocated(GuestMemoryLayout layout) implements GuestMemoryReply {}

  public record GuestMemoryReleased(int vmId, long bytes) implements GuestMemoryReply {}

  public record MemoryRefused(Errno errno, String message) implements GuestMemoryReply {}

  /**
   * The oracle's view: DMA checks by verdict, the first violations (bounded log) and how many more
   * were dropped, pinned frames, and per-owner allocation.
   */
  public record MemoryReport(
      long ramBytes,
      long freeBytes,
      long pinnedFrames,
      Map<DmaCheck, Long> checks,
      List<Violation> violations,
      long violationsDropped,
      Map<Integer, Long> allocatedBytesByOwner,
      List<String> bugs)
      implements CborSerializable {}
}
