package io.iommulab.actors.msi;

import io.iommulab.actors.CborSerializable;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.msi.MsiBank;
import io.iommulab.hardware.msi.MsiBankSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import kamon.Kamon;
import kamon.metric.Counter;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * One MPIC MSI bank: owns its {@link MsiBank} model — vector allocation, which IOMMU groups (and
 * so which owners) use it — plus which group each requester belongs to and which owner each group
 * has, the isolation check (a bank shared by groups of different owners breaks isolation: each
 * owner's device can write the MSIIR and raise the others' vectors; counted and reported), and
 * delivery of MSIIR writes (counted; a write raising another owner's vector is flagged, one raising
 * an unallocated vector is spurious). The rules are those of {@link MsiBankSet} for one bank
 * ({@code arch/powerpc/sysdev/fsl_msi.c}; the 2013 VFIO-PAMU thread: "an MSI group is only used by
 * one VFIO group").
 *
 * <p>Owners: a VM id (positive), or the host (0 or negative: the bank model's {@link
 * MsiBank#HOST}). A group is the host's until {@link SetGroupOwner} says otherwise.
 *
 * <p>Metrics (Kamon, tagged by bank index, a small fixed set): {@code iommulab.msi.delivered},
 * {@code iommulab.msi.cross-owner}, {@code iommulab.msi.isolation-breaches}.
 */
public final class MsiBankActor extends AbstractBehavior<MsiBankActor.Command> {

  public static Behavior<Command> create(MsiBankSettings settings, FaultInjector injector) {
    return Behaviors.setup(context -> new MsiBankActor(context, new MsiBank(settings, injector)));
  }

  public sealed interface Command extends CborSerializable
      permits AllocateVectors, FreeVectors, SetGroupOwner, Deliver, GetBankState {}

  /**
   * Allocates {@code count} vectors for {@code rid} of {@code group}, all or nothing, owned by the
   * group's owner. Replies {@link VectorsAllocated}; {@link BankRefused} with EINVAL (count not
   * positive, rid outside 16 bits, negative group, rid seen in another group), ENOSPC (fewer free
   * vectors), ENOMEM (injected at {@code "msi.vector"}).
   */
  public record AllocateVectors(int rid, int group, int count, ActorRef<BankReply> replyTo)
      implements Command {}

  /** Frees every vector of {@code rid}; ENOENT when it holds none. */
  public record FreeVectors(int rid, ActorRef<BankReply> replyTo) implements Command {}

  /**
   * The group's DMA owner changed (a VM bound or released it): isolation is re-evaluated.
   * {@code owner}: a VM id, or 0 for the host.
   */
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

  /**
   * The bank's state. {@code groups}, {@code owners}: those with a vector here, ascending
   * ({@code owners} uses the model's ids: -1 for the host); {@code isolationBroken}: two or more
   * owners hold vectors; {@code breaches}: times the bank went from one owner to several;
   * {@code misdirected}: writes that were not to this bank's MSIIR or selected no vector.
   */
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
      long spurious,
      long breaches,
      long misdirected)
      implements BankReply {}

  // ================================================================ implementation

  private final MsiBank bank;
  private final Map<Integer, Integer> ridGroup = new TreeMap<>();
  private final Map<Integer, Integer> groupOwner = new TreeMap<>();
  private boolean shared;
  private long breaches;
  private long delivered;
  private long crossOwner;
  private long spurious;
  private long misdirected;

  private final Counter deliveredCounter;
  private final Counter crossOwnerCounter;
  private final Counter breachCounter;

  private MsiBankActor(ActorContext<Command> context, MsiBank bank) {
    super(context);
    this.bank = bank;
    String tag = Integer.toString(bank.index());
    this.deliveredCounter = Kamon.counter("iommulab.msi.delivered").withTag("bank", tag);
    this.crossOwnerCounter = Kamon.counter("iommulab.msi.cross-owner").withTag("bank", tag);
    this.breachCounter = Kamon.counter("iommulab.msi.isolation-breaches").withTag("bank", tag);
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(AllocateVectors.class, this::onAllocateVectors)
        .onMessage(FreeVectors.class, this::onFreeVectors)
        .onMessage(SetGroupOwner.class, this::onSetGroupOwner)
        .onMessage(Deliver.class, this::onDeliver)
        .onMessage(GetBankState.class, this::onGetBankState)
        .build();
  }

  private Behavior<Command> refuse(ActorRef<BankReply> replyTo, Errno errno, String format,
      Object... args) {
    replyTo.tell(new BankRefused(bank.index(), errno, String.format(format, args)));
    return Behaviors.same();
  }

  private int ownerOf(int group) {
    return groupOwner.getOrDefault(group, MsiBank.HOST);
  }

  private Behavior<Command> onAllocateVectors(AllocateVectors msg) {
    if (msg.count() <= 0) {
      return refuse(msg.replyTo(), Errno.EINVAL, "count %d: must be positive", msg.count());
    }
    if (msg.rid() < 0 || msg.rid() > 0xFFFF) {
      return refuse(msg.replyTo(), Errno.EINVAL, "rid 0x%x: not a 16-bit requester id", msg.rid());
    }
    if (msg.group() < 0) {
      return refuse(msg.replyTo(), Errno.EINVAL, "group %d: negative", msg.group());
    }
    Integer known = ridGroup.get(msg.rid());
    if (known != null && known != msg.group()) {
      return refuse(msg.replyTo(), Errno.EINVAL, "rid 0x%x: belongs to group %d, not %d",
          msg.rid(), known, msg.group());
    }
    if (bank.freeVectors() < msg.count()) {
      return refuse(msg.replyTo(), Errno.ENOSPC, "bank %d: %d vectors requested, %d free",
          bank.index(), msg.count(), bank.freeVectors());
    }
    int owner = ownerOf(msg.group());
    int[] vectors = new int[msg.count()];
    int[] data = new int[msg.count()];
    for (int k = 0; k < msg.count(); k++) {
      Outcome<Integer> v = bank.allocate(msg.rid(), msg.group(), owner);
      if (v instanceof Outcome.Err<Integer> e) {
        for (int j = 0; j < k; j++) {
          bank.free(vectors[j]);
        }
        return refuse(msg.replyTo(), e.errno(), "%s", e.message());
      }
      vectors[k] = v.value();
      data[k] = bank.data(v.value());
    }
    ridGroup.put(msg.rid(), msg.group());
    reevaluate();
    msg.replyTo().tell(
        new VectorsAllocated(bank.index(), bank.msiirAddress(), vectors, data, bank.freeVectors()));
    return Behaviors.same();
  }

  private Behavior<Command> onFreeVectors(FreeVectors msg) {
    int freed = bank.freeAllOf(msg.rid());
    if (freed == 0) {
      return refuse(msg.replyTo(), Errno.ENOENT, "rid 0x%x: holds no vector of bank %d",
          msg.rid(), bank.index());
    }
    reevaluate();
    msg.replyTo().tell(new VectorsFreed(bank.index(), freed));
    return Behaviors.same();
  }

  private Behavior<Command> onSetGroupOwner(SetGroupOwner msg) {
    if (msg.group() < 0) {
      getContext().getLog().error("Bank {}: owner change of negative group {}", bank.index(),
          msg.group());
      return Behaviors.same();
    }
    int owner = msg.owner() > 0 ? msg.owner() : MsiBank.HOST;
    if (owner == MsiBank.HOST) {
      groupOwner.remove(msg.group());
    } else {
      groupOwner.put(msg.group(), owner);
    }
    bank.retagOwner(msg.group(), owner);
    reevaluate();
    return Behaviors.same();
  }

  /** A bank whose vectors belong to two owners or more breaks interrupt isolation. */
  private void reevaluate() {
    boolean now = bank.isShared();
    if (now && !shared) {
      breaches++;
      breachCounter.increment();
      getContext().getLog().warn("MSI bank {} shared by owners {} (groups {}): isolation broken",
          bank.index(), bank.owners(), bank.groups());
    }
    shared = now;
  }

  private Behavior<Command> onDeliver(Deliver msg) {
    int v = msg.hpa() == bank.msiirAddress() ? bank.vectorOfData(msg.data()) : -1;
    if (v < 0) {
      misdirected++;
      getContext().getLog().warn("Bank {}: write of 0x{} at 0x{} by rid 0x{} raises nothing",
          bank.index(), Integer.toHexString(msg.data()), Long.toHexString(msg.hpa()),
          Integer.toHexString(msg.rid()));
      return Behaviors.same();
    }
    delivered++;
    deliveredCounter.increment();
    if (!bank.isAllocated(v)) {
      spurious++;
      return Behaviors.same();
    }
    Integer group = ridGroup.get(msg.rid());
    int writer = group == null ? MsiBankSet.UNKNOWN_OWNER : ownerOf(group);
    if (bank.ownerOf(v) != writer) {
      crossOwner++;
      crossOwnerCounter.increment();
      getContext().getLog().warn("Bank {}: rid 0x{} (owner {}) raised vector {} of owner {}",
          bank.index(), Integer.toHexString(msg.rid()), writer, v, bank.ownerOf(v));
    }
    return Behaviors.same();
  }

  private Behavior<Command> onGetBankState(GetBankState msg) {
    msg.replyTo().tell(
        new BankState(
            bank.index(),
            bank.msiirAddress(),
            bank.vectors(),
            bank.freeVectors(),
            new ArrayList<>(bank.groups()),
            new ArrayList<>(bank.owners()),
            bank.isShared(),
            delivered,
            crossOwner,
            spurious,
            breaches,
            misdirected));
    return Behaviors.same();
  }
}
