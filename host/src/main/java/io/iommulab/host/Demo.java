package io.iommulab.host;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.DeviceHandle;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.fault.FaultReason;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.hardware.memory.HostMemory;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.slf4j.LoggerFactory;

/**
 * The main job until a scenario runner exists: one emulated host of the configured topology, two
 * VMs, and a tour of what the emulator models — binding and attaching devices, mapping guest
 * memory, DMA checked against frame ownership, a DMA fault, an unmap that waits for IOTLB and
 * device-TLB invalidation, page requests resolved by the guest, a PAMU window and an MSI bank
 * mapped into it, the MSI bank isolation report, KVM's WBINVD emulation switching with a
 * non-coherent device, a hot-unplug, and the oracle's verdict at shutdown. It prints a readable
 * summary and fails (a thrown exception, a non-zero exit) when the verdict is not clean.
 *
 * <p>Run it with {@code mvn -q -pl host exec:java}. Configuration: {@code application.conf} over
 * the shipped {@code reference.conf}s ({@code iommulab.topology}, {@code iommulab.host.seed}).
 */
public final class Demo {
  static final long MIB = 1L << 20;
  static final long GIB = 1L << 30;
  static final int NO_PASID = IommuUnitActor.NO_PASID;

  private final Host host;
  private final PrintStream out;
  private final List<String> notes = new ArrayList<>();

  Demo(Host host, PrintStream out) {
    this.host = host;
    this.out = out;
  }

  /**
   * What the demo host runs with over the configuration: warnings only from Pekko, and VFIO's
   * {@code allow_unsafe_interrupts} on — a PAMU has no interrupt remapping, so without it VFIO
   * refuses its devices (EPERM); on such parts interrupts are isolated by giving each VM its own
   * MSI bank, which section 9 examines.
   */
  static final Map<String, Object> OVERRIDES =
      Map.of(
          "pekko.loglevel", "WARNING",
          "pekko.loggers", List.of("org.apache.pekko.event.slf4j.Slf4jLogger"),
          "pekko.logging-filter", "org.apache.pekko.event.slf4j.Slf4jLoggingFilter",
          "iommulab.uapi.allow-unsafe-interrupts", true);

  public static void main(String[] args) throws Exception {
    quietLogs();
    EdgeClock clock = new EdgeClock();
    boolean clean;
    try (Host host = Host.start("iommulab-demo", OVERRIDES, clock, FaultInjector.NONE)) {
      clean = new Demo(host, System.out).run();
    }
    System.out.printf("%nDone in %.2f s of wall time.%n", clock.nanos() / 1e9);
    
    if (!clean) {
      throw new IllegalStateException("the run is not clean: see the report above");
    }
  }

  /** Only warnings and errors from the actors, unless logback is configured by the user. */
  private static void quietLogs() {
    if (System.getProperty("logback.configurationFile") == null
        && LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME)
            instanceof ch.qos.logback.classic.Logger root) {
      root.setLevel(ch.qos.logback.classic.Level.WARN);
    }
  }

  // ================================================================ the tour

  /** Runs the tour; true when the shutdown report is clean. */
  boolean run() {
    HostGuardian.Topology topology = await(host.topology());
    section("iommulab demo: one emulated host, seed " + host.hostSettings().seed());
    printTopology(topology);

    // ---------------------------------------------------------------- VMs
    section("1. Two VMs");
    Host.Vm vm1 = ok(host.createVm(1, GIB, PageSize.SIZE_2M, List.of("nic0", "nvme0", "nic1"), "web"), "create vm 1");
    Host.Vm vm2 = ok(host.createVm(2, GIB, PageSize.SIZE_64M, List.of("nic2", "dpaa0"), "storage"), "create vm 2");
    for (Host.Vm vm : List.of(vm1, vm2)) {
      line("vm %d: %s of guest memory in %s pages at user VA 0x%x, devices %s",
          vm.id(), bytes(vm.layout().bytes()), bytes(vm.layout().backing().bytes()),
          vm.layout().userVaBase(), vm.devices().stream().map(DeviceHandle::name).toList());
    }
    HostGuardian.Refused busy = refused(host.createVm(3, GIB, PageSize.SIZE_2M, List.of("gpu0-audio", "nic0"), "web"));
    line("vm 3 asking for nic0 (held by vm 1): %s %s", busy.errno(), busy.message());

    // ---------------------------------------------------------------- bind and attach
    section("2. VM 1 binds nic0, nvme0 and nic1 to an IOMMU fd and attaches them to one IOAS");
    int fd1 = ok(vm1.openFd(), "open fd");
    int ioas1 = ok(vm1.allocIoas(fd1), "alloc ioas");
    for (String d : List.of("nic0", "nvme0", "nic1")) {
      VmActor.DeviceBound bound = ok(vm1.bind(fd1, d), "bind " + d);
      VmActor.DeviceAttached attached = ok(vm1.attach(fd1, d, ioas1), "attach " + d);
      line("%-6s bound as device %d (DMA owner: fd %d of vm 1), attached to IOAS %d through HWPT %d on %s (%s)",
          d, bound.devId(), fd1, ioas1, attached.hwptId(), bound.info().unitName(),
          handle(vm1, d).pri() ? "PRI: a HWPT with the fd's FAULT queue"
              : "force-snoop " + yesNo(bound.info().enforceCacheCoherency()));
    }

    // ---------------------------------------------------------------- KVM
    section("3. KVM: WBINVD emulation follows non-coherent DMA (the 2021 snoop-control thread)");
    VmActor.WbinvdHandled w1 = ok(vm1.wbinvd(), "wbinvd vm 1");
    line("vm 1 guest WBINVD: %s (nic1 sits behind vtd1, which cannot force snoop; registrations %d)",
        w1.emulated() ? "emulated, caches flushed" : "skipped", w1.kvm().registrations());
    VmActor.WbinvdHandled w2 = ok(vm2.wbinvd(), "wbinvd vm 2");
    line("vm 2 guest WBINVD: %s (no non-coherent device)", w2.emulated() ? "emulated" : "skipped");

    // ---------------------------------------------------------------- map and DMA
    section("4. Map guest memory and DMA through the IOMMU");
    long iova = ok(vm1.map(fd1, ioas1, 16 * MIB, 2 * MIB, VmActor.AUTO_IOVA, Access.READ_WRITE), "map");
    line("mapped GPA [0x%x, +2 MiB) at IOVA 0x%x in every domain of IOAS %d (pinned first)", 16 * MIB, iova, ioas1);
    long[] iovas = new long[8];
    int[] lengths = new int[8];
    int[] writes = new int[8];
    for (int i = 0; i < 8; i++) {
      iovas[i] = iova + i * 4096L;
      lengths[i] = 512;
      writes[i] = Access.WRITE;
    }
    VmActor.DmaDone first = ok(vm1.dma("nvme0", NO_PASID, iovas, lengths, writes), "dma");
    VmActor.DmaDone second = ok(vm1.dma("nvme0", NO_PASID, iovas, lengths, writes), "dma");
    line("nvme0 wrote 8 x 512 B: %s; again: %s, %d ATC hits (ATS caches the translations)",
        statuses(first.status()), statuses(second.status()), second.atcHits());
    VmActor.DmaDone read = ok(vm1.dma("nic0", NO_PASID, new long[] {iova + 0x10_0000}, new int[] {1500}, new int[] {Access.READ}), "dma");
    line("nic0 read a 1500 B frame: %s", statuses(read.status()));

    // ---------------------------------------------------------------- a fault
    section("5. A DMA fault");
    VmActor.DmaDone fault = ok(vm1.dma("nic1", NO_PASID, new long[] {0x7000_0000L}, new int[] {64}, new int[] {Access.WRITE}), "dma");
    line("nic1 wrote to IOVA 0x70000000, which vm 1 never mapped: %s", statuses(fault.status()));
    line("vtd1 recorded the fault (iommufd passes only page requests up to the VMM): vm 1 has seen %d faulted access(es)", ok(vm1.state(), "state").dmaFaults());
    VmActor.DmaDone prq = ok(vm1.dma("nic0", NO_PASID, new long[] {0x7000_0000L}, new int[] {64}, new int[] {Access.WRITE}), "dma");
    line("nic0 has PRI: the same write became a page request, which vm 1 answered INVALID (no buffer there): %s",
        statuses(prq.status()));

    // ---------------------------------------------------------------- unmap
    section("6. Unmap: returns only after IOTLB and device-TLB invalidation (strict)");
    IommuUnitActor.UnitStats before = unitStats(topology, "vtd0");
    VmActor.BufferUnmapped unmapped = ok(vm1.unmap(fd1, ioas1, iova, 2 * MIB), "unmap");
    IommuUnitActor.UnitStats after = unitStats(topology, "vtd0");
    line("unmapped %s at IOVA 0x%x; before it returned, vtd0 processed %d invalidation descriptors, %d syncs, %d device-TLB invalidations",
        bytes(unmapped.bytes()), iova,
        after.invalidationDescriptors() - before.invalidationDescriptors(),
        after.syncs() - before.syncs(), after.atcInvalidations() - before.atcInvalidations());
    VmActor.DmaDone late = ok(vm1.dma("nvme0", NO_PASID, iovas, lengths, writes), "dma");
    line("nvme0 writes the same IOVAs again: %s; stale-translation violations %d",
        statuses(late.status()), late.staleViolations());

    // ---------------------------------------------------------------- page requests
    section("7. Page requests (PRI): vm 2 resolves faults on a lazily mapped buffer of nic2 (SMMUv3)");
    int fd2 = ok(vm2.openFd(), "open fd");
    int ioas2 = ok(vm2.allocIoas(fd2), "alloc ioas");
    ok(vm2.bind(fd2, "nic2"), "bind nic2");
    ok(vm2.attach(fd2, "nic2", ioas2), "attach nic2");
    long lazy = ok(vm2.mapLazy(fd2, ioas2, 0, MIB, Access.READ_WRITE), "map lazy");
    VmActor.DmaDone pri =
        ok(vm2.dma("nic2", NO_PASID, new long[] {lazy, lazy + 0x3000, lazy + 0x8000}, new int[] {256, 256, 256},
            new int[] {Access.WRITE, Access.WRITE, Access.READ}), "dma");
    VmActor.VmState s2 = ok(vm2.state(), "state");
    line("nic2 touched 3 pages of a 1 MiB buffer with no page present: %d page requests, %d resolved by vm 2 (page pinned and mapped), result %s",
        pri.pageRequests(), s2.pageRequestsResolved(), statuses(pri.status()));

    // ---------------------------------------------------------------- PAMU
    section("8. PAMU (the 2013 VFIO-PAMU thread): windows, not page tables");
    DeviceHandle dpaa0 = handle(vm2, "dpaa0");
    ok(vm2.bind(fd2, "dpaa0"), "bind dpaa0");
    line("dpaa0 bound to vm 2's fd (pamu0 cannot remap MSIs: this host runs with allow_unsafe_interrupts on)");
    Pamu pamu = new Pamu(vm2, dpaa0, topology);
    pamu.setUp();
    VmActor.DmaDone inWindow = ok(vm2.dma("dpaa0", NO_PASID, new long[] {0x10_0000}, new int[] {256}, new int[] {Access.WRITE}), "dma");
    line("dpaa0 writes IOVA 0x100000 (window 0): %s", statuses(inWindow.status()));

    // ---------------------------------------------------------------- MSI banks
    section("9. MSI bank isolation: a bank shared by two owners lets each raise the other's interrupts");
    pamu.msi();
    printBanks(topology);
    DeviceHandle pcie1 = topology.device("pcie1").handle();
    MsiBankActor.BankReply shared = bankAsk(topology.msiBanks().get(1), r -> new MsiBankActor.AllocateVectors(pcie1.rid(), pcie1.group(), 1, r));
    line("the host driver of pcie1 (unassigned) takes a vector of bank 1 too: %s", shared instanceof MsiBankActor.VectorsAllocated ? "allocated" : shared);
    printBanks(topology);
    bankAsk(topology.msiBanks().get(1), r -> new MsiBankActor.FreeVectors(pcie1.rid(), r));
    line("pcie1 gives the vector back: bank 1 belongs to vm 2 alone again");
    VmActor.DmaDone outside = ok(vm2.dma("dpaa0", NO_PASID, new long[] {pamu.windowSize * 3 + 0x1000}, new int[] {256}, new int[] {Access.WRITE}), "dma");
    VmActor.DmaDone afterViolation = ok(vm2.dma("dpaa0", NO_PASID, new long[] {0x10_0000}, new int[] {256}, new int[] {Access.WRITE}), "dma");
    line("dpaa0 writes IOVA 0x%x (window 3, never enabled): %s; PAMU's violation handler disables the LIODN, so window 0 now gives: %s",
        pamu.windowSize * 3 + 0x1000, statuses(outside.status()), statuses(afterViolation.status()));

    // ---------------------------------------------------------------- hot-unplug
    section("10. Hot-unplug of nic1 from running vm 1");
    int former = ok(host.unplug("nic1"), "unplug nic1");
    VmActor.WbinvdHandled w3 = ok(vm1.wbinvd(), "wbinvd vm 1");
    line("nic1 unplugged from vm %d (guest driver released it, fd detached and unbound it, device quiesced, unit forgot it)", former);
    line("vm 1 guest WBINVD now: %s (unregistrations %d)", w3.emulated() ? "emulated" : "skipped", w3.kvm().unregistrations());
    DeviceActor.DmaCompleted aborted = deviceDma(topology.device("nic1").handle());
    line("DMA the unplugged function still issues: %s", statuses(aborted.status()));
    ok(host.plug("nic1"), "plug nic1");
    line("nic1 plugged back: present and assignable again");

    // ---------------------------------------------------------------- shutdown
    section("11. Shutdown and the oracle's verdict");
    pamu.tearDown();
    HostGuardian.HostReport report = await(host.shutdown());
    return printReport(report);
  }

  // ================================================================ PAMU by hand (the VMM's part)

  /** vm 2's PAMU domain for dpaa0, set up through the unit as VFIO-PAMU's ioctls would. */
  private final class Pamu {
    final Host.Vm vm;
    final DeviceHandle device;
    final HostGuardian.Topology topology;
    final long aperture = GIB;
    final int windows = 16;
    final long windowSize = GIB / 16;
    final int bankIndex = 1;
    int domainId;
    long msiIova;
    int[] vectors = new int[0];

    Pamu(Host.Vm vm, DeviceHandle device, HostGuardian.Topology topology) {
      this.vm = vm;
      this.device = device;
      this.topology = topology;
    }

    void setUp() {
      IommuUnitActor.DomainAllocated d =
          (IommuUnitActor.DomainAllocated)
              unitOk(device.unit(), r -> new IommuUnitActor.AllocDomain(IommuUnitActor.DomainType.PAMU, false, false, 0, r));
      domainId = d.domainId();
      unitOk(device.unit(), r -> new IommuUnitActor.PamuSetGeometry(domainId, 0, aperture, r));
      unitOk(device.unit(), r -> new IommuUnitActor.PamuSetWindowCount(domainId, windows, r));
      unitOk(device.unit(), r -> new IommuUnitActor.Attach(device.rid(), NO_PASID, domainId, null, 0L, r));
      // Window 0 → the guest's first 64 MiB: one backing page, so physically contiguous.
      long hpa = vm.layout().gpaToHpa(0);
      pins(true);
      unitOk(device.unit(), r -> new IommuUnitActor.MapRange(domainId, 0, new long[] {hpa}, new long[] {windowSize}, Access.READ_WRITE, r));
      MsiBankSettings bank = host.settings().topology().msiBanks().get(bankIndex);
      long msiWindow = (windows - 1) * windowSize;
      msiIova = ((IommuUnitActor.MsiBankMapped) unitOk(device.unit(),
          r -> new IommuUnitActor.PamuMapMsiBank(domainId, bankIndex, bank.msiirAddress(), msiWindow, r))).msiIova();
      IommuUnitActor.PamuGeometry g =
          (IommuUnitActor.PamuGeometry) unitOk(device.unit(), r -> new IommuUnitActor.PamuGetGeometry(domainId, r));
      line("domain %d: aperture [0x0, +%s), %d windows of %s, enabled %s (LIODN %d attached)",
          domainId, bytes(g.apertureSize()), g.windowCount(),
          bytes(windowSize), yesNo(g.enabled()), device.liodn());
      line("window 0 -> guest [0x0, +64 MiB) at hpa 0x%x; window %d -> MSI bank %d's MSIIR page (MSI address 0x%x)",
          hpa, windows - 1, bankIndex, msiIova);
    }

    void msi() {
      ActorRef<MsiBankActor.Command> bank = topology.msiBanks().get(bankIndex);
      MsiBankActor.VectorsAllocated v =
          (MsiBankActor.VectorsAllocated) bankAsk(bank, r -> new MsiBankActor.AllocateVectors(device.rid(), device.group(), 2, r));
      vectors = v.vectors();
      for (int i = 0; i < v.vectors().length; i++) {
        int vector = i;
        int data = v.data()[i];
        DeviceActor.MsiReply programmed =
            await(AskPattern.<DeviceActor.Command, DeviceActor.MsiReply>ask(device.device(),
                r -> new DeviceActor.ProgramMsiVector(vector, bankIndex, msiIova, data, r),
                host.hostSettings().askTimeout(), host.system().scheduler()));
        if (!(programmed instanceof DeviceActor.MsiVectorProgrammed)) {
          throw new IllegalStateException("program MSI vector " + i + ": " + programmed);
        }
      }
      device.device().tell(new DeviceActor.RaiseMsi(0));
      device.device().tell(new DeviceActor.RaiseMsi(1));
      // Fire and forget through device and unit: ask the bank until both writes have landed.
      long delivered = 0;
      for (int i = 0; i < 1000 && delivered < 2; i++) {
        delivered = ((MsiBankActor.BankState) bankAsk(bank, MsiBankActor.GetBankState::new)).delivered();
      }
      line("dpaa0 (vm 2) got vectors %s of bank %d, programmed them with MSI address 0x%x and raised both: %d delivered",
          Arrays.toString(v.vectors()), bankIndex, msiIova, delivered);
    }

    void tearDown() {
      bankAsk(topology.msiBanks().get(bankIndex), r -> new MsiBankActor.FreeVectors(device.rid(), r));
      unitOk(device.unit(), r -> new IommuUnitActor.Detach(device.rid(), NO_PASID, r));
      unitOk(device.unit(), r -> new IommuUnitActor.PamuUnmapMsiBank(domainId, (windows - 1) * windowSize, r));
      unitOk(device.unit(), r -> IommuUnitActor.UnmapRange.strict(domainId, 0, windowSize, r));
      pins(false);
      unitOk(device.unit(), r -> new IommuUnitActor.FreeDomain(domainId, r));
      line("vm 2's PAMU domain torn down: MSI vectors freed, LIODN detached, windows disabled, domain freed, pages unpinned");
    }

    private void pins(boolean pinned) {
      topology.memory().tell(new HostMemoryActor.PinsChanged(vm.id(), vm.layout().userVaBase(), windowSize, pinned));
    }
  }

  // ================================================================ printing

  private void printTopology(HostGuardian.Topology topology) {
    var t = host.settings().topology();
    line("%d IOMMU units, %d PCI functions, %d MSI banks, %s of host memory",
        t.units().size(), t.devices().size(), t.msiBanks().size(), bytes(t.hostMemoryBytes()));
    for (int u = 0; u < t.units().size(); u++) {
      IommuUnitSettings unit = t.units().get(u);
      String caps = unit instanceof PagingUnitSettings p
          ? String.format("%d-bit, snoop control %s, nesting %s", p.addressWidth(), yesNo(p.snoopControl()), yesNo(p.nesting()))
          : "windowed";
      List<String> devs = new ArrayList<>();
      for (DeviceSettings d : t.devices()) {
        if (d.unit().equals(unit.name())) {
          devs.add(d.name() + " " + d.rid() + " g" + d.group());
        }
      }
      line("  unit %d %-6s %-6s %-40s %s", u, unit.name(), unit.kind().configName(), caps, String.join(", ", devs));
    }
    line("every function registered with its unit: %s",
        yesNo(topology.devices().values().stream().allMatch(d -> d.presence() == HostGuardian.Presence.PRESENT)));
  }

  private void printBanks(HostGuardian.Topology topology) {
    for (ActorRef<MsiBankActor.Command> ref : topology.msiBanks()) {
      MsiBankActor.BankState s = (MsiBankActor.BankState) bankAsk(ref, MsiBankActor.GetBankState::new);
      line("  bank %d (MSIIR 0x%x): %d/%d vectors used, groups %s, owners %s, delivered %d, isolation %s",
          s.bankIndex(), s.msiirAddress(), s.vectors() - s.freeVectors(), s.vectors(), s.groups(),
          s.owners().stream().map(o -> o > 0 ? "vm " + o : "host").toList(), s.delivered(),
          s.isolationBroken() ? "BROKEN" : "ok");
    }
  }

  private boolean printReport(HostGuardian.HostReport report) {
    for (VmActor.VmShutDown vm : report.vms()) {
      line("vm %d: returned %s; WBINVD exits %d (emulated %d), non-coherent registrations %d/%d; stale-DMA violations %d (%d accesses judged)",
          vm.vmId(), bytes(vm.memoryReleasedBytes()), vm.kvm().wbinvdExits(), vm.kvm().wbinvdEmulated(),
          vm.kvm().registrations(), vm.kvm().unregistrations(), vm.oracle().violations(), vm.oracle().judgedAccesses());
    }
    HostMemoryActor.MemoryReport mem = report.memory();
    if (mem != null) {
      line("memory oracle: DMA checks %s", mem.checks());
      long vmBytes = mem.allocatedBytesByOwner().entrySet().stream()
          .filter(e -> e.getKey() > HostMemory.HOST).mapToLong(Map.Entry::getValue).sum();
      line("memory oracle: pinned frames %d, bytes still owned by VMs %d, free %s of %s",
          mem.pinnedFrames(), vmBytes, bytes(mem.freeBytes()), bytes(mem.ramBytes()));
    }
    for (IommuUnitActor.UnitStats u : report.units()) {
      line("unit %-6s translations %d (IOTLB hits %d, misses %d), faults %d, page requests %d, invalidation descriptors %d, domains left %d",
          u.unitName(), u.translations(), u.iotlbHits(), u.iotlbMisses(), u.faults(), u.pageRequests(),
          u.invalidationDescriptors(), u.domains());
    }
    long breaches = report.msiBanks().stream().mapToLong(MsiBankActor.BankState::breaches).sum();
    line("MSI banks: %d isolation breaches observed during the run (bank 1 while pcie1 shared it), %d MSIs delivered",
        breaches, report.msiBanks().stream().mapToLong(MsiBankActor.BankState::delivered).sum());
    line("");
    line("isolation violations: %d", report.isolationViolations());
    line("stale-translation violations: %d", report.staleViolations());
    line("leaks: %s", report.leaks().isEmpty() ? "none (pins, objects and accounting balanced)" : report.leaks());
    line("failures: %s", report.failures().isEmpty() ? "none" : report.failures());
    for (String note : notes) {
      line("note: %s", note);
    }
    line("verdict: %s", report.clean() ? "CLEAN" : "NOT CLEAN");
    return report.clean();
  }

  private static String statuses(byte[] status) {
    Map<String, Integer> counts = new java.util.LinkedHashMap<>();
    for (byte s : status) {
      counts.merge(statusName(s), 1, Integer::sum);
    }
    List<String> parts = new ArrayList<>();
    counts.forEach((name, n) -> parts.add(n + " " + name));
    return String.join(", ", parts);
  }

  static String statusName(byte s) {
    if (s == DeviceActor.STATUS_OK) {
      return "completed";
    } else if (s == DeviceActor.STATUS_ABORTED) {
      return "ABORTED";
    } else if (s == DeviceActor.STATUS_PAGE_REQUEST_FAILED) {
      return "page request failed";
    } else if (s > 0 && s <= FaultReason.values().length) {
      return "fault " + FaultReason.values()[s - 1];
    }
    return "status " + s;
  }

  /** 1 GiB, 64 MiB, 4 KiB, or bytes. */
  static String bytes(long n) {
    String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    long v = n;
    while (u < units.length - 1 && v >= 1024 && v % 1024 == 0) {
      v /= 1024;
      u++;
    }
    return v + " " + units[u];
  }

  private static String yesNo(boolean b) {
    return b ? "on" : "off";
  }

  private void section(String title) {
    out.println();
    out.println(title);
  }

  private void line(String format, Object... args) {
    out.println(args.length == 0 ? format : String.format(format, args));
  }

  // ================================================================ asking

  private static <T> T await(CompletionStage<T> stage) {
    try {
      return stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static <T> T ok(CompletionStage<Outcome<T>> stage, String what) {
    Outcome<T> o = await(stage);
    if (o instanceof Outcome.Err<T> e) {
      throw new IllegalStateException(what + ": " + e);
    }
    return o.value();
  }

  private static HostGuardian.Refused refused(CompletionStage<Outcome<Host.Vm>> stage) {
    Outcome<Host.Vm> o = await(stage);
    if (o instanceof Outcome.Err<Host.Vm> e) {
      return new HostGuardian.Refused(e.errno(), e.message());
    }
    throw new IllegalStateException("expected a refusal, got " + o);
  }

  private static DeviceHandle handle(Host.Vm vm, String name) {
    return vm.devices().stream().filter(d -> d.name().equals(name)).findFirst().orElseThrow();
  }

  private IommuUnitActor.UnitReply unitOk(
      RecipientRef<IommuUnitActor.Command> unit,
      Function<ActorRef<IommuUnitActor.UnitReply>, IommuUnitActor.Command> request) {
    IommuUnitActor.UnitReply reply =
        await(AskPattern.ask(unit, request::apply, host.hostSettings().askTimeout(), host.system().scheduler()));
    if (reply instanceof IommuUnitActor.Refused r) {
      throw new IllegalStateException("unit refused: " + r);
    }
    return reply;
  }

  private MsiBankActor.BankReply bankAsk(
      ActorRef<MsiBankActor.Command> bank, Function<ActorRef<MsiBankActor.BankReply>, MsiBankActor.Command> request) {
    return await(AskPattern.ask(bank, request::apply, host.hostSettings().askTimeout(), host.system().scheduler()));
  }

  private IommuUnitActor.UnitStats unitStats(HostGuardian.Topology topology, String name) {
    HostGuardian.UnitEntry unit = topology.units().stream().filter(u -> u.name().equals(name)).findFirst().orElseThrow();
    return await(AskPattern.ask(unit.unit(), IommuUnitActor.GetStats::new, host.hostSettings().askTimeout(), host.system().scheduler()));
  }

  private DeviceActor.DmaCompleted deviceDma(DeviceHandle device) {
    return await(AskPattern.ask(device.device(),
        r -> new DeviceActor.DmaBurst(NO_PASID, new long[] {0x10_0000}, new int[] {64}, new int[] {Access.READ}, 1, r),
        host.hostSettings().askTimeout(), host.system().scheduler()));
  }

  /** The verdict counts of the memory oracle, for tests. */
  static long checks(HostGuardian.HostReport report, DmaCheck kind) {
    return report.memory() == null ? 0 : report.memory().checks().getOrDefault(kind, 0L);
  }
}
