package io.iommulab.host;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.actors.vm.VmSpec;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.cost.CostModel;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;

/**
 * The behaviors the guardian spawns, one factory method per actor kind, with the arguments of
 * each actor's {@code create}. {@link #REAL} builds the real actors; a test overrides one method
 * to plant a fake (a device that completes DMA it should not, a unit that throws) and keeps the
 * rest real.
 */
public interface HostParts {

  default Behavior<HostMemoryActor.Command> memory(TopologySettings topology, FaultInjector injector) {
    return HostMemoryActor.create(topology, injector);
  }

  default Behavior<MsiBankActor.Command> msiBank(MsiBankSettings settings, FaultInjector injector) {
    return MsiBankActor.create(settings, injector);
  }

  /**
   * A unit with both of its streams configured: the invalidation stream ({@code invalidation}:
   * strict or deferred, bounds), the fault pipeline ({@code faultPipeline}), and the edge's wall
   * clock ({@code wallNanos}, {@code System::nanoTime} on a real host) for wall-clock latencies.
   * The guardian calls this one; the default builds the real unit.
   */
  default Behavior<IommuUnitActor.Command> unit(
      int unitId,
      IommuUnitSettings settings,
      CostModel cost,
      ModeledClock clock,
      long seed,
      FaultInjector injector,
      ActorRef<HostMemoryActor.Command> memory,
      Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks,
      InvalidationPipelineSettings invalidation,
      FaultPipelineSettings faultPipeline,
      LongSupplier wallNanos) {
    return IommuUnitActor.create(unitId, settings, cost, clock, seed, injector, memory, msiBanks,
        invalidation, faultPipeline, wallNanos);
  }

  default Behavior<DeviceActor.Command> device(
      DeviceSettings settings,
      int unitId,
      ActorRef<IommuUnitActor.Command> unit,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      long seed) {
    return DeviceActor.create(settings, unitId, unit, memory, clock, seed);
  }

  /**
   * A VM whose fds take the shipped fault-pipeline settings. The guardian does not call this one:
   * it calls the overload with the run's fault-pipeline settings, which a fake overrides.
   */
  default Behavior<VmActor.Command> vm(
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<VmActor.StartReply> creator,
      UapiSettings uapi,
      FaultInjector injector) {
    return VmActor.create(spec, devices, memory, clock, creator, uapi, injector);
  }

  /**
   * A VM whose fds take the host's uAPI and fault-pipeline settings. The guardian calls this one;
   * the default builds the real VM.
   */
  default Behavior<VmActor.Command> vm(
      VmSpec spec,
      List<DeviceHandle> devices,
      ActorRef<HostMemoryActor.Command> memory,
      ModeledClock clock,
      ActorRef<VmActor.StartReply> creator,
      UapiSettings uapi,
      FaultPipelineSettings faultPipeline,
      FaultInjector injector) {
    return VmActor.create(spec, devices, memory, clock, creator, uapi, faultPipeline, injector);
  }

  /** The real actors. */
  HostParts REAL = new HostParts() {};
}
