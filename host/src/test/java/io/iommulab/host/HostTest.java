package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.host.uapi.IommuFd;
import io.iommulab.host.uapi.VfioDevice;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class HostTest {
  static final long GIB = 1L << 30;

  private static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  /** A PAMU does not isolate MSIs: its containers need allow_unsafe_interrupts. */
  private static Host pamuHost(String name) {
    return Host.start(name, Host.config(Map.of("iommulab.uapi.allow-unsafe-interrupts", "on")), new ManualClock(),
        FaultInjector.NONE, HostParts.REAL);
  }

  /** A uAPI fd of {@code vm} with its one device, dpaa0, bound and in a PAMU container. */
  private static IommuFd pamuContainer(Host.Vm vm) throws Exception {
    IommuFd fd = await(vm.openUapiFd()).value();
    VfioDevice dpaa0 = new VfioDevice(fd, vm.devices().get(0).bindHandle());
    assertTrue(await(dpaa0.bind()).isOk());
    assertTrue(await(dpaa0.setContainer()).isOk());
    assertTrue(await(fd.vfioSetIommu(ModeUapi.VFIO_FSL_PAMU_IOMMU)).isOk());
    return fd;
  }

  @Test
  void theFacadeCreatesVmsRunsTheirDmaHotplugsAndShutsDownCleanly() throws Exception {
    try (Host host =
        Host.start("HostTest", Host.config(Map.of("iommulab.host.seed", 7)), new ManualClock(), FaultInjector.NONE, HostParts.REAL)) {
      assertEquals(7, host.hostSettings().seed());
      Host.Vm vm = await(host.createVm(1, GIB, PageSize.SIZE_2M, List.of("nic0", "nvme0"))).value();
      assertEquals(GIB, vm.layout().bytes());

      int fd = await(vm.openFd()).value();
      int ioas = await(vm.allocIoas(fd)).value();
      assertTrue(await(vm.bind(fd, "nvme0")).isOk());
      assertTrue(await(vm.attach(fd, "nvme0", ioas)).isOk());
      long iova = await(vm.map(fd, ioas, 0, 2L << 20, VmActor.AUTO_IOVA, Access.READ_WRITE)).value();
      VmActor.DmaDone done =
          await(vm.dma("nvme0", -1, new long[] {iova}, new int[] {512}, new int[] {Access.WRITE})).value();
      assertEquals(DeviceActor.STATUS_OK, done.status()[0]);
      assertEquals(2L << 20, await(vm.unmap(fd, ioas, iova, 2L << 20)).value().bytes());
      VmActor.DmaDone afterUnmap =
          await(vm.dma("nvme0", -1, new long[] {iova}, new int[] {512}, new int[] {Access.WRITE})).value();
      assertTrue(afterUnmap.status()[0] != DeviceActor.STATUS_OK, "the unmapped IOVA faults");
      assertEquals(0, afterUnmap.staleViolations());
      assertEquals(Errno.EBUSY, await(host.createVm(2, GIB, PageSize.SIZE_2M, List.of("nic0"))).errnoOrNull());
      assertEquals(1, await(vm.allocPasid()).value());

      assertEquals(1, await(host.unplug("nic0")).value());
      Outcome<VmActor.DmaDone> afterUnplug =
          await(vm.dma("nic0", -1, new long[] {0x10_0000}, new int[] {512}, new int[] {Access.WRITE}));
      assertEquals(Errno.ENODEV, afterUnplug.errnoOrNull());
      assertTrue(await(host.plug("nic0")).isOk());
      assertTrue(await(host.createVm(2, GIB, PageSize.SIZE_2M, List.of("nic0"))).isOk());
      assertFalse(await(vm.wbinvd()).value().emulated());

      io.iommulab.host.uapi.IommuFd raw = await(vm.openUapiFd()).value();
      int rawIoas = await(raw.ioasAlloc()).value();
      assertTrue(rawIoas > 0, "the uAPI handle speaks to the VM's new fd");

      HostGuardian.HostReport report = await(host.shutdown());
      assertTrue(report.clean(), report.leaks() + " " + report.failures());
      assertEquals(2, report.vms().size());
    }
  }

  @Test
  void aPamuContainerOpenedByAVmReportsAndMapsTheHostsMsiBanks() throws Exception {
    try (Host host = pamuHost("HostPamu")) {
      Host.Vm vm = await(host.createVm(1, GIB, PageSize.SIZE_2M, List.of("dpaa0"))).value();
      IommuFd fd = pamuContainer(vm);
      assertEquals(3, await(fd.pamuGetMsiBankCount()).value(), "the default host has three banks");
      assertTrue(await(fd.pamuSetGeometry(0, (16L << 20) - 1)).isOk());
      assertTrue(await(fd.pamuSetWindows(16)).isOk());
      long msiIova = await(fd.pamuMapMsiBank(ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, 2, 15L << 20)).value();
      assertEquals((15L << 20) + (0xffe046000L & 0xfff), msiIova, "bank 2's MSIIR page in window 15");
    }
  }

  @Test
  void aPamuViolationMakesTheVmStopIssuingDmaOnTheDevice() throws Exception {
    try (Host host = pamuHost("HostPamuViolation")) {
      Host.Vm vm = await(host.createVm(1, GIB, PageSize.SIZE_2M, List.of("dpaa0"))).value();
      IommuFd fd = pamuContainer(vm);
      assertTrue(await(fd.pamuSetGeometry(0, (16L << 20) - 1)).isOk());
      assertTrue(await(fd.pamuSetWindows(16)).isOk());
      assertTrue(await(fd.vfioMapDma(IommuFd.VfioDmaMap.rw(vm.layout().userVaBase(), 0, 1L << 20))).isOk());
      VmActor.DmaDone ok =
          await(vm.dma("dpaa0", -1, new long[] {0x40}, new int[] {64}, new int[] {Access.READ})).value();
      assertEquals(DeviceActor.STATUS_OK, ok.status()[0]);
      // Window 3 is not mapped: an access violation, and the PAMU disables the LIODN.
      VmActor.DmaDone violation =
          await(vm.dma("dpaa0", -1, new long[] {3L << 20}, new int[] {64}, new int[] {Access.READ})).value();
      assertTrue(violation.status()[0] != DeviceActor.STATUS_OK);
      VmActor.VmState state = null;
      for (int i = 0; i < 100_000; i++) { // until the fault record reached the VM (no sleeping)
        state = await(vm.state()).value();
        if (!state.devicesDmaDisabled().isEmpty()) {
          break;
        }
      }
      assertEquals(1, state.dmaDisabledEvents());
      assertTrue(state.devicesDmaDisabled().get("dpaa0").startsWith("WINDOW_DISABLED"),
          state.devicesDmaDisabled().toString());
      Outcome<VmActor.DmaDone> refused =
          await(vm.dma("dpaa0", -1, new long[] {0x40}, new int[] {64}, new int[] {Access.READ}));
      assertEquals(Errno.EIO, refused.errnoOrNull(), "the guest issues no DMA on a disabled device");
      HostGuardian.HostReport report = await(host.shutdown());
      assertEquals(0, report.unpinnedFrameViolations());
      assertEquals(0, report.isolationViolations());
    }
  }

  @Test
  void closingTheFacadeTerminatesItsActorSystem() {
    Host host = Host.start("HostClose", Host.config(Map.of()), new ManualClock(), FaultInjector.NONE, HostParts.REAL);
    host.close();
    assertTrue(host.system().whenTerminated().isCompleted());
  }
}
