package io.iommulab.actors.msi;

import io.iommulab.actors.CborSerializable;
import io.iommulab.hardware.Errno;
import java.util.List;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.FaultInjector;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * PROTOCOL (implementation pending). One MPIC MSI bank: owns its {@code MsiBank} model — vector
 * allocation, which IOMMU groups (and so which owners) use it, the isolation check (a bank shared
 * by groups of different owners breaks isolation and is reported), and delivery of MSIIR writes.
 */
public final class MsiBankActor {
  private MsiBankActor() {}

  public static Behavior<Command> create(MsiBankSettings settings, FaultInjector injector) {
    throw new UnsupportedOperationException("pending");
  }

  public sealed interface Command extends CborSerializable
      permits AllocateVectors, FreeVectors, SetGroupOwner, Deliver, GetBankState {}

  /** Allocates {@code count} vectors for {@code rid} of {@code group}, all or nothing. */
  public record AllocateVectors(int rid, int group, int count, ActorRef<BankReply> replyTo)
      implements Command {}

  public record FreeVectors(int rid, ActorRef<BankReply> replyTo) implements Command {}

  /** The group's DMA owner changed (a VM bound or released it): isolation is re-evaluated. */
  public record SetGroupOwner(int group, int owner) implements Command {}

  /** A write of {@code data} to this bank's MSIIR by {@code rid}; counted, cross-owner flagged. */
  public record Deliver(int rid, long hpa, int data) implements Command {}

  public record GetBankState(ActorRef<BankReply> replyTo) implements Command {}

  public sealed interface BankReply extends CborSerializable
      permits VectorsAllocated, VectorsFreed, BankRefused, BankState {}

  /** {@code data[i]}: the MSI data word a device writes to raise vector {@code vectors[i]}. */
  public record VectorsAllocated(
      int bankIndex, long msiirAddress, int[] vectors, int[] data, int freeVectors)
      implements BankReply {}

  public record VectorsFreed(int bankIndex, int freed) implements BankReply {}

  public record BankRefused(int bankIndex, Errno errno, String message) implements BankReply {}

  public record BankState(
      int bankIndex,
      long msiirAddress,
      int vectors,
      int freeVectors,
      List<Integer> groups,
      List<Integer> owners,
      boolean isolationBroken,
      long delivered,
      long crossOwnerInterrupts,
      long spurious)
      implements BankReply {}
}
