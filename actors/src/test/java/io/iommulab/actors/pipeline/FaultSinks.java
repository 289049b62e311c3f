package io.iommulab.actors.pipeline;

import io.iommulab.actors.unit.IommuUnitActor.DmaFaulted;
import io.iommulab.actors.unit.IommuUnitActor.FaultEvent;
import io.iommulab.actors.unit.IommuUnitActor.FaultsPublished;
import io.iommulab.actors.unit.IommuUnitActor.FaultsSettled;
import io.iommulab.actors.unit.IommuUnitActor.PageRequested;
import io.iommulab.actors.unit.IommuUnitActor.PublishedFault;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/** Fault sinks for tests of units and devices that look at one record at a time. */
public final class FaultSinks {
  private FaultSinks() {}

  /**
   * A sink that acknowledges every pipeline batch as delivered and hands its records, one by one
   * and in order, to {@code target} as {@link DmaFaulted} / {@link PageRequested}.
   */
  public static ActorRef<FaultEvent> unbatching(ActorTestKit kit, ActorRef<FaultEvent> target) {
    return kit.spawn(unbatching(target));
  }

  public static Behavior<FaultEvent> unbatching(ActorRef<FaultEvent> target) {
    return Behaviors.receive(FaultEvent.class)
        .onMessage(FaultsPublished.class, b -> {
          int n = 0;
          for (PublishedFault p : b.records()) {
            if (p.fault() != null) {
              target.tell(new DmaFaulted(p.fault()));
              n++;
            } else if (p.request() != null) {
              target.tell(new PageRequested(p.request()));
              n++;
            }
          }
          b.replyTo().tell(new FaultsSettled(n, 0, 0, 0));
          return Behaviors.same();
        })
        .onAnyMessage(m -> {
          target.tell(m);
          return Behaviors.same();
        })
        .build();
  }
}
