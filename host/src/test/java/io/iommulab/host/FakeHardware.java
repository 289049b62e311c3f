package io.iommulab.host;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.GuestMemory;
import io.iommulab.hardware.memory.HostMemory;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Minimal stand-ins for the hardware actors, enough for the guardian's own rules: memory backed by
 * the real {@link HostMemory} model (so accounting is real), units that register and unregister
 * functions, devices that complete every access unless quiesced. Each test overrides what it
 * needs to observe or break.
 */
class FakeHardware implements HostParts {

  @Override
  public Behavior<HostMemoryActor.Command> memory(TopologySettings topology, FaultInjector injector) {
    return Behaviors.setup(
        ctx -> {
          HostMemory host = new HostMemory(topology.hostMemoryBytes(), injector);
          Map<Integer, GuestMemory> guests = new TreeMap<>();
          return Behaviors.receive(HostMemoryActor.Command.class)
              .onMessage(
                  HostMemoryActor.AllocateGuestMemory.class,
                  m -> {
                    Outcome<GuestMemory> g = GuestMemory.create(m.vmId(), m.bytes(), m.backing(), host);
                    if (g instanceof Outcome.Err<GuestMemory> e) {
                      m.replyTo().tell(new HostMemoryActor.MemoryRefused(e.errno(), e.message()));
                    } else {
                      guests.put(m.vmId(), g.value());
                      m.replyTo().tell(new HostMemoryActor.GuestMemoryAllocated(g.value().layout()));
                    }
                    return Behaviors.same();
                  })
              .onMessage(
                  HostMemoryActor.ReleaseGuestMemory.class,
                  m -> {
                    GuestMemory g = guests.remove(m.vmId());
                    if (g == null) {
                      m.replyTo().tell(new HostMemoryActor.MemoryRefused(Errno.ENOENT, "no vm " + m.vmId()));
                    } else {
                      g.release();
                      m.replyTo().tell(new HostMemoryActor.GuestMemoryReleased(m.vmId(), g.bytes()));
                    }
                    return Behaviors.same();
                  })
              .onMessage(
                  HostMemoryActor.GetReport.class,
                  m -> {
                    Map<Integer, Long> byOwner = new TreeMap<>();
                    for (int owner : guests.keySet()) {
                      byOwner.put(owner, host.allocatedBytes(owner));
                    }
                    m.replyTo()
                        .tell(
                            new HostMemoryActor.MemoryReport(
                                host.ramBytes(), host.freeBytes(), host.pinnedFrames(), Map.of(),
                                List.of(), 0, byOwner, List.of()));
                    return Behaviors.same();
                  })
              .onAnyMessage(m -> Behaviors.same())
              .build();
        });
  }

  @Override
  public Behavior<MsiBankActor.Command> msiBank(MsiBankSettings settings, FaultInjector injector) {
    return Behaviors.receive(MsiBankActor.Command.class)
        .onMessage(
            MsiBankActor.GetBankState.class,
            m -> {
              m.replyTo()
                  .tell(
                      new MsiBankActor.BankState(
                          settings.index(), settings.msiirAddress(), settings.vectors(), settings.vectors(),
                          List.of(), List.of(), false, 0, 0, 0));
              return Behaviors.same();
            })
        .onAnyMessage(m -> Behaviors.same())
        .build();
  }

  @Override
  public Behavior<IommuUnitActor.Command> unit(
      int unitId,
      IommuUnitSettings settings,
      CostModel cost,
      ModeledClock clock,
      long seed,
      FaultInjector injector,
      ActorRef<HostMemoryActor.Command> memory,
      Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks) {
    return Behaviors.setup(
        ctx -> {
          Set<Integer> rids = new HashSet<>();
          return Behaviors.receive(IommuUnitActor.Command.class)
              .onMessage(
                  IommuUnitActor.RegisterDevice.class,
                  m -> {
                    m.replyTo()
                        .tell(
                            rids.add(m.rid())
                                ? IommuUnitActor.Done.INSTANCE
                                : new IommuUnitActor.Refused(Errno.EEXIST, "rid " + m.rid() + " present"));
                    return Behaviors.same();
                  })
              .onMessage(
                  IommuUnitActor.UnregisterDevice.class,
                  m -> {
                    m.replyTo()
                        .tell(
                            rids.remove(m.rid())
                                ? IommuUnitActor.Done.INSTANCE
                                : new IommuUnitActor.Refused(Errno.ENOENT, "rid " + m.rid() + " absent"));
                    return Behaviors.same();
                  })
              .onMessage(
                  IommuUnitActor.GetStats.class,
                  m -> {
                    m.replyTo()
                        .tell(new IommuUnitActor.UnitStats(unitId, settings.name(), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
                    return Behaviors.same();
                  })
              .onAnyMessage(m -> Behaviors.same())
              .build();
        });
  }

  @Override
  public Behavior<DeviceActor.Command> device(
      DeviceSettings settings,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      long seed) {
    return fakeDevice(settings.name(), settings.ridValue());
  }

  /** Completes every access OK (no IOMMU in the way) unless quiesced, then ABORTED. */
  static Behavior<DeviceActor.Command> fakeDevice(String name, int rid) {
    return Behaviors.setup(
        ctx -> {
          Map<String, Boolean> state = new HashMap<>();
          state.put("quiesced", false);
          return Behaviors.receive(DeviceActor.Command.class)
              .onMessage(
                  DeviceActor.DmaBurst.class,
                  m -> {
                    byte[] status = new byte[m.iovas().length];
                    if (state.get("quiesced")) {
                      java.util.Arrays.fill(status, DeviceActor.STATUS_ABORTED);
                    }
                    m.replyTo().tell(new DeviceActor.DmaCompleted(m.tag(), status, 0, 0, 0));
                    return Behaviors.same();
                  })
              .onMessage(
                  DeviceActor.Quiesce.class,
                  m -> {
                    state.put("quiesced", true);
                    m.replyTo().tell(new DeviceActor.Quiesced(name, rid));
                    return Behaviors.same();
                  })
              .onMessage(
                  DeviceActor.Resume.class,
                  m -> {
                    state.put("quiesced", false);
                    return Behaviors.same();
                  })
              .onAnyMessage(m -> Behaviors.same())
              .build();
        });
  }
}
