package io.iommulab.actors.vm;

import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.memory.GuestMemory;
import io.iommulab.hardware.memory.HostMemory;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Host memory on the real {@link HostMemory} and {@link GuestMemory} models: allocation, pins
 * (a bad pin or unpin throws, as a bug of the sender should), release refused while pinned. Pin
 * changes are also told to {@code pins}.
 */
final class FakeMemory {
  private FakeMemory() {}

  static Behavior<HostMemoryActor.Command> create(ActorRef<HostMemoryActor.PinsChanged> pins) {
    return Behaviors.setup(
        ctx -> {
          HostMemory host = new HostMemory(1L << 32, FaultInjector.NONE);
          Map<Integer, GuestMemory> guests = new TreeMap<>();
          return Behaviors.receive(HostMemoryActor.Command.class)
              .onMessage(
                  HostMemoryActor.AllocateGuestMemory.class,
                  m -> {
                    Outcome<GuestMemory> g = GuestMemory.create(m.vmId(), m.bytes(), m.backing(), host);
                    guests.put(m.vmId(), g.value());
                    m.replyTo().tell(new HostMemoryActor.GuestMemoryAllocated(g.value().layout()));
                    return Behaviors.same();
                  })
              .onMessage(
                  HostMemoryActor.PinsChanged.class,
                  m -> {
                    GuestMemory g = guests.get(m.vmId());
                    if (m.pinned()) {
                      g.pin(m.userVa(), m.length()).value();
                    } else {
                      g.unpin(m.userVa(), m.length());
                    }
                    pins.tell(m);
                    return Behaviors.same();
                  })
              .onMessage(
                  HostMemoryActor.ReleaseGuestMemory.class,
                  m -> {
                    GuestMemory g = guests.get(m.vmId());
                    if (host.pinnedFrames() > 0) {
                      m.replyTo().tell(new HostMemoryActor.MemoryRefused(Errno.EBUSY, host.pinnedFrames() + " frames pinned"));
                    } else {
                      guests.remove(m.vmId());
                      g.release();
                      m.replyTo().tell(new HostMemoryActor.GuestMemoryReleased(m.vmId(), g.bytes()));
                    }
                    return Behaviors.same();
                  })
              .onMessage(
                  HostMemoryActor.GetReport.class,
                  m -> {
                    m.replyTo()
                        .tell(
                            new HostMemoryActor.MemoryReport(
                                host.ramBytes(), host.freeBytes(), host.pinnedFrames(), Map.of(), List.of(), 0,
                                Map.of(), List.of()));
                    return Behaviors.same();
                  })
              .build();
        });
  }
}
