package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.PageSize;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import kamon.Kamon;
import kamon.status.Status;
import kamon.tag.Lookups;
import kamon.tag.TagSet;
import org.junit.jupiter.api.Test;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The metrics of issue 4's pipelines exist after a short run and carry the tags they are read by:
 * the unit, and the tenant where a VM is known. Read from Kamon's own registry ({@code
 * Kamon.status().metricRegistry()}), so a metric renamed, untagged or never created fails here.
 * The run: two VMs on two units (one ATS function, one plain), deferred invalidation, maps, DMA,
 * unmaps (invalidation latencies, batches, queue depths) and DMA at unmapped IOVAs (fault records
 * through the fault pipeline into each fd).
 */
class PipelineMetricsTest {

  static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  /** The tag sets of every instrument of metric {@code name} (empty when it does not exist). */
  static List<TagSet> instruments(String name) {
    List<TagSet> out = new ArrayList<>();
    for (Status.Metric m : CollectionConverters.asJava(Kamon.status().metricRegistry().metrics())) {
      if (m.name().equals(name)) {
        for (Status.Instrument i : CollectionConverters.asJava(m.instruments())) {
          out.add(i.tags());
        }
      }
    }
    return out;
  }

  /** Metric {@code name} has an instrument whose tags include every pair of {@code tags}. */
  static void assertTagged(String name, Map<String, String> tags) {
    List<TagSet> all = instruments(name);
    boolean found = all.stream().anyMatch(t -> tags.entrySet().stream()
        .allMatch(e -> e.getValue().equals(t.get(Lookups.plain(e.getKey())))));
    assertTrue(found, name + " has no instrument tagged " + tags + "; it has " + all);
  }

  @Test
  void thePipelinesMetricsExistTaggedByUnitAndTenant() throws Exception {
    long seed = 0x4A11_0020L;
    System.out.println("PipelineMetricsTest: seed " + seed);
    try (Host host = Host.start("PipelineMetrics",
        // Tenants by VM id, and VM ids no other test uses: the series found are this run's.
        ConfigFactory.parseString("iommulab.host.seed = " + seed
                + "\n iommulab.pipeline.invalidation.mode = deferred"
                + "\n iommulab.fault-pipeline.tenant-classes = 0")
            .withFallback(ConfigFactory.load()).resolve(),
        new ManualClock(), FaultInjector.NONE, HostParts.REAL)) {
      FaultPipelineSettings fp = host.settings().faultPipeline();
      String[][] vms = {{"4711", "nvme0"}, {"4712", "nic1"}}; // vtd0 (ATS), vtd1 (plain)
      for (String[] v : vms) {
        int vmId = Integer.parseInt(v[0]);
        String device = v[1];
        Host.Vm vm = await(host.createVm(vmId, 32L << 20, PageSize.SIZE_2M, List.of(device))).value();
        int fd = await(vm.openFd()).value();
        int ioas = await(vm.allocIoas(fd)).value();
        assertTrue(await(vm.bind(fd, device)).isOk());
        assertTrue(await(vm.attach(fd, device, ioas)).isOk());
        for (int round = 0; round < 4; round++) {
          long iova = await(vm.map(fd, ioas, 0, 1L << 16, VmActor.AUTO_IOVA, Access.READ_WRITE)).value();
          await(vm.dma(device, IommuUnitActor.NO_PASID, new long[] {iova, iova + 4096},
              new int[] {64, 64}, new int[] {Access.WRITE, Access.READ})).value();
          assertTrue(await(vm.unmap(fd, ioas, iova, 1L << 16)).isOk());
        }
        // Never mapped: faults, published through the unit's fault pipeline to the fd.
        await(vm.dma(device, IommuUnitActor.NO_PASID, new long[] {1L << 32, (1L << 32) + 4096},
            new int[] {8, 8}, new int[] {Access.WRITE, Access.WRITE})).value();
        // A detach flushes the deferred queue: every invalidation completes, latencies recorded.
        assertTrue(await(vm.detach(fd, device)).isOk());
      }
      await(host.shutdown());
      String tenant7 = fp.tenantOf(4711);
      String tenant8 = fp.tenantOf(4712);
      assertTrue(tenant7.equals("vm-4711"), tenant7);
      for (String unit : List.of("vtd0", "vtd1")) {
        Map<String, String> byUnit = Map.of("unit", unit);
        assertTagged("iommulab.invalidation.queue-depth", byUnit);
        assertTagged("iommulab.invalidation.flush-queue-occupancy", byUnit);
        assertTagged("iommulab.invalidation.deferred-occupancy", byUnit);
        assertTagged("iommulab.invalidation.batch-size", byUnit);
        assertTagged("iommulab.invalidation.flushes", Map.of("unit", unit, "reason", "urgent"));
        assertTagged("iommulab.invalidation.stale-hits", Map.of("unit", unit, "verdict", "violation"));
        assertTagged("iommulab.fault.ingress.depth", Map.of("unit", unit, "queue", "fault"));
        assertTagged("iommulab.fault.ingress.depth", Map.of("unit", unit, "queue", "page-request"));
        assertTagged("iommulab.fault.batch.size", byUnit);
        assertTagged("iommulab.fault.lost", Map.of("unit", unit, "cause", "queue-full"));
        assertTagged("iommulab.fault.lost", Map.of("unit", unit, "cause", "ingress-fault"));
      }
      for (String[] ut : new String[][] {{"vtd0", tenant7}, {"vtd1", tenant8}}) {
        Map<String, String> tagged = Map.of("unit", ut[0], "tenant", ut[1], "mode", "deferred");
        assertTagged("iommulab.invalidation.latency.modeled", tagged);
        assertTagged("iommulab.invalidation.latency.wall", tagged);
      }
      // Fault records of the plain function (the ATS one faults at its ATS request, no record).
      assertTagged("iommulab.fault.latency.modeled-ns", Map.of("unit", "vtd1", "tenant", tenant8));
      assertTagged("iommulab.fault.latency.wall-ns", Map.of("unit", "vtd1", "tenant", tenant8));
      for (String tenant : List.of(tenant7, tenant8)) {
        assertTagged("iommulab.fd.fault.records", Map.of("tenant", tenant, "outcome", "delivered"));
        assertTagged("iommulab.fd.fault.records", Map.of("tenant", tenant, "outcome", "queue-full"));
        assertTagged("iommulab.fd.fault-queue.depth", Map.of("tenant", tenant, "queue", "fault"));
        assertTagged("iommulab.fd.unmap.deferred", Map.of("tenant", tenant));
      }
    }
  }
}
