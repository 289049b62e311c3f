package io.iommulab.hardware.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.fault.FaultRecord;
import io.iommulab.hardware.memory.DmaCheck;
import org.junit.jupiter.api.Test;

class DmaRequestTest {

  @Test
  void aRequestReachingTheTopOfTheIovaSpaceIsValidButOneWrappingIsNot() {
    DmaRequest top = DmaRequest.read(0x100, -4096L, 4096);
    assertEquals(-1L, top.lastIova());
    assertThrows(IllegalArgumentException.class, () -> DmaRequest.read(0x100, -4096L, 4097));
  }

  @Test
  void malformedRequestsAreBugs() {
    assertThrows(IllegalArgumentException.class, () -> DmaRequest.read(0x10000, 0, 8));
    assertThrows(IllegalArgumentException.class, () -> DmaRequest.read(1, 0, 0));
    assertThrows(IllegalArgumentException.class,
        () -> new DmaRequest(1, FaultRecord.NO_PASID, 0, 8, 0, false));
    assertThrows(IllegalArgumentException.class,
        () -> new DmaRequest(1, FaultRecord.NO_PASID, 0, 8, Access.SNOOP, false));
    assertThrows(IllegalArgumentException.class, () -> DmaRequest.read(1, 0, 8).withPasid(1 << 20));
  }

  @Test
  void pasidTaggingKeepsTheRestOfTheRequest() {
    DmaRequest r = DmaRequest.write(0x0308, 0x1000, 64).withPasid(5);
    assertTrue(r.hasPasid());
    assertTrue(r.isWrite());
    assertEquals(0x1000, r.iova());
    assertFalse(DmaRequest.read(1, 0, 1).hasPasid());
    assertEquals("DmaRequest[03:01.0 pasid 5 -w-- 0x1000+0x40]", r.toString());
  }

  @Test
  void aReusedResultForgetsThePreviousOutcome() {
    DmaResult result = new DmaResult().faulted(FaultReason.NOT_PRESENT, 100);
    assertFalse(result.clean());
    result.completed(0x2000, DmaCheck.OK, true, 250);
    assertTrue(result.clean());
    assertEquals(null, result.fault);
    result.msi(2, 300);
    assertEquals(-1, result.hpa);
    assertEquals(DmaResult.Status.MSI, result.status);
    assertFalse(result.clean());
  }
}
