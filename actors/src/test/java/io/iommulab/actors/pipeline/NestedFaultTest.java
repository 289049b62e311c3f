package io.iommulab.actors.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.Fixtures;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.actors.pipeline.PipelineHarness.Fd;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.unit.IommuUnitActor.FaultPipelineStats;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.UapiSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.fault.FaultReason;
import java.util.Arrays;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * SMMUv3 nested faults through the pipeline: a stage-1 fault of a device with a vDEVICE reaches
 * its vIOMMU's vEVENTQ carrying the vSID; a full vEVENTQ loses the rest, exactly, and the reader
 * sees how many from the sequences.
 */
class NestedFaultTest {

  static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void cleanup() {
    testKit.shutdownTestKit();
  }

  private static final int RID = 0x100;
  private static final long VSID = 0x42;

  @Test
  void stageOneFaultsReachTheVeventqWithTheVsidAndItsOverflowIsCountedExactly() {
    PipelineHarness h = new PipelineHarness(testKit,
        Fixtures.paging("smmu0", UnitKind.SMMUV3, true, false, 64),
        FaultPipelineSettings.defaults(), UapiSettings.defaults());
    h.device(RID, false);
    Fd fd = h.boundFd(1, List.of(RID));
    var replies = fd.replies.getRef();
    int devId = fd.devIds.get(0);
    int ioas = fd.ask(new IoasidFdActor.IoasAlloc(0, replies),
        IoasidFdActor.IoasAllocated.class).outIoasId();
    int parent = fd.ask(new IoasidFdActor.HwptAlloc(Uapi.HWPT_ALLOC_NEST_PARENT, devId, ioas,
        Uapi.HWPT_DATA_NONE, 0, 0, replies), IoasidFdActor.HwptAllocated.class).outHwptId();
    int viommu = fd.ask(new IoasidFdActor.ViommuAlloc(0, Uapi.VIOMMU_TYPE_ARM_SMMUV3, devId,
        parent, replies), IoasidFdActor.ViommuAllocated.class).outViommuId();
    fd.ask(new IoasidFdActor.VdeviceAlloc(viommu, devId, VSID, replies),
        IoasidFdActor.VdeviceAllocated.class);
    int depth = 8;
    int q = fd.ask(new IoasidFdActor.VeventqAlloc(0, viommu, Uapi.VEVENTQ_TYPE_ARM_SMMUV3, depth,
        replies), IoasidFdActor.VeventqAllocated.class).outVeventqId();
    int nested = fd.ask(new IoasidFdActor.HwptAlloc(0, devId, viommu, Uapi.HWPT_DATA_ARM_SMMUV3,
        Uapi.HWPT_ARM_SMMUV3_LEN, 0, replies), IoasidFdActor.HwptAllocated.class).outHwptId();
    fd.ask(new IoasidFdActor.DeviceAttach(devId, nested, replies),
        IoasidFdActor.DeviceAttached.class);

    // The guest wrote no stage-1 entry: every access is a stage-1 translation fault.
    int n = 20;
    long[] iovas = new long[n];
    int[] lengths = new int[n];
    int[] access = new int[n];
    for (int i = 0; i < n; i++) {
      iovas[i] = 0x10_0000L + ((long) i << 12);
    }
    Arrays.fill(lengths, 64);
    Arrays.fill(access, Access.WRITE);
    TestProbe<IommuUnitActor.BurstTranslated> bursts = testKit.createTestProbe();
    h.unit.tell(new IommuUnitActor.TranslateBurst(RID, IommuUnitActor.NO_PASID, iovas, lengths,
        access, false, 1, bursts.getRef()));
    assertEquals((byte) (FaultReason.NOT_PRESENT.ordinal() + 1),
        bursts.receiveMessage(PipelineHarness.WAIT).status()[0]);

    FaultPipelineStats s = h.settled(n);
    assertEquals(depth, s.delivered());
    assertEquals(n - depth, s.lostQueueFull());
    IoasidFdActor.FaultStats fs = fd.faultStats();
    assertEquals(depth, fs.dmaFaultsToVeventq());
    assertEquals(n - depth, fs.dmaFaultsLostVeventqFull());
    fd.events.expectMessageClass(IoasidFdActor.VeventqReadable.class, PipelineHarness.WAIT);

    List<Vevent> read = fd.ask(new IoasidFdActor.VeventqRead(q, 1 << 16, replies),
        IoasidFdActor.VeventsRead.class).events();
    assertEquals(depth + 1, read.size());
    for (int i = 0; i < depth; i++) {
      Vevent v = read.get(i);
      assertEquals(VSID, v.virtId(), "the guest sees its vSID");
      assertEquals(iovas[i], v.address(), "in the order the device faulted");
      assertEquals(FaultReason.NOT_PRESENT.name(), v.reason());
    }
    Vevent lost = read.get(depth);
    assertTrue(lost.lostEvents());
    assertEquals(n - depth, lost.sequence() - read.get(depth - 1).sequence(),
        "the lost-events header's sequence counts the loss exactly");
  }
}
