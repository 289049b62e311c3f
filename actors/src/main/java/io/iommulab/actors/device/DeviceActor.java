package io.iommulab.actors.device;

import io.iommulab.actors.CborSerializable;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.config.DeviceSettings;
import io.iommulab.hardware.ModeledClock;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * PROTOCOL (implementation pending). One PCI function: owns its {@code PciDevice} model — the DMA
 * engine, the ATS translation cache (ATC), outstanding page requests (PRI), its MSI vectors — and
 * quiesces on hot-unplug. It issues DMA through its IOMMU unit and never reads another actor's
 * state.
 */
public final class DeviceActor {
  private DeviceActor() {}

  /**
   * The function described by {@code settings}, behind unit {@code unitId} ({@code unit}). The
   * guardian registers it with the unit ({@code RegisterDevice}) after spawning it.
   */
  public static Behavior<Command> create(
      DeviceSettings settings,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      long seed) {
    throw new UnsupportedOperationException("pending");
  }

  /** {@link DmaCompleted#status()} value of a completed access. */
  public static final byte STATUS_OK = 0;

  /** Status of an access abandoned because the device was quiesced (unplug) or not bound. */
  public static final byte STATUS_ABORTED = (byte) 0x7f;

  /** Status of an access whose page request was answered INVALID or FAILURE. */
  public static final byte STATUS_PAGE_REQUEST_FAILED = (byte) 0x7e;

  public sealed interface Command extends CborSerializable
      permits DmaBurst,
          AtcInvalidate,
          PageResponded,
          OwnerChanged,
          RaiseMsi,
          Quiesce,
          Resume,
          GetState {}

  /**
   * The guest driver has programmed the function to perform {@code iovas.length} accesses (with
   * {@code pasid}, or {@link IommuUnitActor#NO_PASID}): {@code lengths[i]} bytes at {@code iovas[i]}
   * with {@code access[i]} (Access bits). An ATS-enabled function looks up its ATC first and sends
   * ATS translation requests for misses; others send untranslated requests. A faulting access on a
   * PRI-enabled function raises a page request and is retried after a SUCCESS response. Replies
   * {@link DmaCompleted} once every access has completed or failed. The arrays belong to the
   * message.
   */
  public record DmaBurst(
      int pasid,
      long[] iovas,
      int[] lengths,
      int[] access,
      long tag,
      ActorRef<DmaCompleted> replyTo)
      implements Command {}

  /**
   * Device-TLB invalidation from the IOMMU (ATC_INV / VT-d dev-IOTLB descriptor): drop ATC entries
   * of {@code pasid} (or, with NO_PASID, every PASID) in the 2^sizeOrder-page span at
   * {@code address}, then acknowledge {@code token} to {@code replyTo}.
   */
  public record AtcInvalidate(
      int pasid,
      long address,
      int sizeOrder,
      long token,
      ActorRef<IommuUnitActor.Command> replyTo)
      implements Command {}

  /** A page-group response for PRG {@code groupId}: retry (SUCCESS) or fail its accesses. */
  public record PageResponded(int pasid, int groupId, IommuUnitActor.PageResponseCode code)
      implements Command {}

  /**
   * The function's DMA owner changed (bind / unbind by an fd): {@code vmId} 0 for none. Translated
   * (ATS) DMA is checked against this owner's frames.
   */
  public record OwnerChanged(int vmId, int ictxId) implements Command {}

  /** The guest raises MSI vector {@code vector}: the function writes its MSI message. */
  public record RaiseMsi(int vector) implements Command {}

  /**
   * Hot-unplug: stop issuing DMA, abort accesses still waiting (STATUS_ABORTED), drop the ATC, and
   * reply {@link Quiesced} when nothing is in flight.
   */
  public record Quiesce(ActorRef<Quiesced> replyTo) implements Command {}

  /** Replug: the function may master DMA again. */
  public record Resume() implements Command {}

  public record GetState(ActorRef<DeviceState> replyTo) implements Command {}

  /**
   * Outcome of a {@link DmaBurst}: {@code status[i]} is {@link #STATUS_OK}, a fault reason
   * ({@code FaultReason.ordinal() + 1}), {@link #STATUS_ABORTED} or {@link
   * #STATUS_PAGE_REQUEST_FAILED}. {@code modeledLatencyNs}: from issue to the last completion.
   */
  public record DmaCompleted(
      long tag, byte[] status, long modeledLatencyNs, int pageRequests, int atcHits)
      implements CborSerializable {}

  public record Quiesced(String device, int rid) implements CborSerializable {}

  public record DeviceState(
      String name,
      int rid,
      int ownerVmId,
      boolean quiesced,
      boolean atsEnabled,
      int atcEntries,
      int outstandingPageRequests,
      long dmaAccesses,
      long dmaFaults,
      long atcHits,
      long atcInvalidations)
      implements CborSerializable {}
}
