package io.iommulab.actors.unit;

import java.util.function.IntFunction;
import java.util.function.IntSupplier;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The replies of a healthy unit, for the fake units that stand in for one in fd and VM tests (each
 * fake adds its own script of refusals on top): a test that wants one odd answer should not have
 * to restate every ordinary one.
 */
public final class HealthyUnit {

  private HealthyUnit() {}

  /**
   * What a healthy unit answers {@code cmd}: a claim with {@code info} of the claimed RID, a domain
   * numbered by {@code nextDomain}, a map in full, an unmap in full at {@code unmapLatencyNs}, and
   * anything else {@link IommuUnitActor.Done}.
   */
  public static IommuUnitActor.UnitReply reply(
      IommuUnitActor.Command cmd, IntFunction<IommuUnitActor.UnitInfo> info, IntSupplier nextDomain,
      long unmapLatencyNs) {
    if (cmd instanceof IommuUnitActor.ClaimDmaOwner c) {
      return new IommuUnitActor.DmaOwnerClaimed(info.apply(c.rid()));
    } else if (cmd instanceof IommuUnitActor.AllocDomain) {
      return new IommuUnitActor.DomainAllocated(nextDomain.getAsInt(), 0x40201000L, 48, 0, (1L << 48) - 1);
    } else if (cmd instanceof IommuUnitActor.MapRange m) {
      long bytes = 0;
      for (long l : m.lengths()) {
        bytes += l;
      }
      return new IommuUnitActor.Mapped(bytes, 0);
    } else if (cmd instanceof IommuUnitActor.UnmapRange u) {
      return IommuUnitActor.Unmapped.strict(u.length(), unmapLatencyNs);
    }
    return IommuUnitActor.Done.INSTANCE;
  }

  /** Where the reply to {@code cmd} goes, or null for a command that has none. */
  public static ActorRef<IommuUnitActor.UnitReply> replyTo(IommuUnitActor.Command cmd) {
    if (cmd instanceof IommuUnitActor.ClaimDmaOwner c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.ReleaseDmaOwner c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.AllocDomain c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.FreeDomain c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.EnforceCacheCoherency c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.MapRange c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.UnmapRange c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.Attach c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.Detach c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.Stage1Map c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.Stage1Unmap c) {
      return c.replyTo();
    } else if (cmd instanceof IommuUnitActor.Replace c) {
      return c.replyTo();
    }
    return null;
  }
}
