package io.iommulab.actors.vm;

import io.iommulab.actors.unit.HealthyUnit;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.iommu.ReservedRegion;
import java.util.List;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * A unit that says yes: every command is told to {@code recorder} and answered with success
 * (domains numbered from 1), except those {@code refuse} matches, answered {@code errno}. What
 * the VM asks of a unit is then visible in order.
 */
final class FakeUnit {
  private FakeUnit() {}

  static Behavior<IommuUnitActor.Command> create(
      ActorRef<IommuUnitActor.Command> recorder, Predicate<IommuUnitActor.Command> refuse, Errno errno) {
    int[] nextDomain = {1};
    return Behaviors.<IommuUnitActor.Command>setup(ctx -> Behaviors.receive(IommuUnitActor.Command.class)
        .onAnyMessage(
            received -> {
              IommuUnitActor.Command cmd = uncorrelated(ctx, received);
              recorder.tell(cmd);
              ActorRef<IommuUnitActor.UnitReply> replyTo = HealthyUnit.replyTo(cmd);
              if (replyTo == null) {
                return Behaviors.same();
              }
              if (refuse.test(cmd)) {
                replyTo.tell(new IommuUnitActor.Refused(errno, "refused by the test: " + cmd.getClass().getSimpleName()));
                return Behaviors.same();
              }
              replyTo.tell(HealthyUnit.reply(cmd, FakeUnit::info, () -> nextDomain[0]++, 170));
              return Behaviors.same();
            })
        .build());
  }

  /**
   * The command inside a {@link IommuUnitActor.Correlated}, its reply rerouted through a one-shot
   * child that answers {@link IommuUnitActor.Answer} with the correlation; other commands as they are.
   */
  static IommuUnitActor.Command uncorrelated(ActorContext<IommuUnitActor.Command> ctx, IommuUnitActor.Command cmd) {
    if (!(cmd instanceof IommuUnitActor.Correlated c)) {
      return cmd;
    }
    ActorRef<IommuUnitActor.UnitReply> once = ctx.spawnAnonymous(Behaviors.receive(IommuUnitActor.UnitReply.class)
        .onAnyMessage(reply -> {
          c.replyTo().tell(IommuUnitActor.Answer.of(c.corr(), reply));
          return Behaviors.stopped();
        })
        .build());
    if (c.map() != null) {
      IommuUnitActor.MapRange m = c.map();
      return new IommuUnitActor.MapRange(m.domainId(), m.iova(), m.hpas(), m.lengths(), m.prot(), once);
    }
    IommuUnitActor.UnmapRange u = c.unmap();
    return new IommuUnitActor.UnmapRange(u.domainId(), u.iova(), u.length(), u.flushTo(), once);
  }

  static Behavior<IommuUnitActor.Command> create(ActorRef<IommuUnitActor.Command> recorder) {
    return create(recorder, c -> false, Errno.EINVAL);
  }

  static final IommuUnitActor.UnitInfo INFO =
      new IommuUnitActor.UnitInfo(
          0, "vtd0", UnitKind.VTD, 0x40201000L, 48, 0, (1L << 48) - 1, 20, true, true, true, true,
          true, true, List.of(ReservedRegion.VTD_MSI));

  /** RID of the function behind a unit that cannot force snoop: its claim says so. */
  static final int NON_COHERENT_RID = 0x100;

  static IommuUnitActor.UnitInfo info(int rid) {
    if (rid != NON_COHERENT_RID) {
      return INFO;
    }
    return new IommuUnitActor.UnitInfo(
        0, "vtd0", UnitKind.VTD, 0x40201000L, 48, 0, (1L << 48) - 1, 20, false, true, true, true,
        true, true, List.of(ReservedRegion.VTD_MSI));
  }
}
