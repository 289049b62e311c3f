package io.iommulab.config.scenario;

import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * What every VM of a tenant does, as rates <em>per VM</em> (operations per second; 0 turns a kind
 * off). The engine spreads operations over the run with seeded randomness (the same seed replays
 * the same mix), over the VM's devices where an operation needs one.
 *
 * @param map mapping churn: map a buffer, hold it, unmap it
 * @param dma DMA bursts from the VM's devices into what the VM has mapped
 * @param pageRequests lazily mapped buffers whose first touch faults (PRI page requests)
 * @param invalidations guest stage-1 invalidations of nested domains
 * @param hotplug unplugging (and replugging) the VM's devices while it runs
 * @param wbinvd guest WBINVD instructions (emulated by KVM only with non-coherent DMA)
 */
public record WorkloadSettings(
    Mapping map,
    Dma dma,
    PageRequests pageRequests,
    Invalidations invalidations,
    Hotplug hotplug,
    Wbinvd wbinvd) {

  /** The largest rate of any operation, per VM and second. */
  public static final double MAX_RATE = 10_000_000;

  public WorkloadSettings {
    Objects.requireNonNull(map, "map");
    Objects.requireNonNull(dma, "dma");
    Objects.requireNonNull(pageRequests, "pageRequests");
    Objects.requireNonNull(invalidations, "invalidations");
    Objects.requireNonNull(hotplug, "hotplug");
    Objects.requireNonNull(wbinvd, "wbinvd");
  }

  /**
   * Mapping churn. Each map is of one of {@code sizes} (chosen uniformly, seeded), is held for
   * {@code hold} and then unmapped, so in a steady state about {@code rate x hold} buffers are
   * mapped at once.
   *
   * @param rate maps per second per VM
   * @param sizes buffer sizes in bytes, multiples of 4 KiB
   * @param hold how long a buffer stays mapped before its unmap
   */
  public record Mapping(double rate, List<Long> sizes, Duration hold) {
    public Mapping {
      checkRate(rate);
      sizes = List.copyOf(sizes);
      Objects.requireNonNull(hold, "hold");
    }

    public long largestSize() {
      long max = 0;
      for (long s : sizes) {
        max = Math.max(max, s);
      }
      return max;
    }
  }

  /**
   * DMA. Each burst is {@code burst} accesses of {@code accessSize} bytes by one of the VM's
   * devices, at IOVAs the VM has mapped (its working set and its churn buffers); a fraction {@code
   * strayFraction} of accesses deliberately targets unmapped IOVAs and must fault. The access mix
   * is the share of reads, writes and read-writes (fractions summing to 1).
   *
   * @param rate bursts per second per VM
   * @param burst accesses per burst, 1 to 4096
   * @param accessSize bytes per access, 1 to 4096
   * @param workingSet guest memory mapped when the VM starts and kept mapped, the target of most
   *     accesses
   * @param read share of read accesses
   * @param write share of write accesses
   * @param readWrite share of read-write (atomic) accesses
   * @param strayFraction share of accesses aimed at unmapped IOVAs, 0 to 1
   */
  public record Dma(
      double rate,
      int burst,
      int accessSize,
      long workingSet,
      double read,
      double write,
      double readWrite,
      double strayFraction) {
    public Dma {
      checkRate(rate);
      if (burst < 1 || burst > 4096 || accessSize < 1 || accessSize > 4096 || workingSet < 0) {
        throw new IllegalArgumentException("burst, access-size or working-set out of range");
      }
      if (Math.abs(read + write + readWrite - 1) > 1e-9 || read < 0 || write < 0 || readWrite < 0) {
        throw new IllegalArgumentException("the access mix must be fractions summing to 1");
      }
      if (!(strayFraction >= 0 && strayFraction <= 1)) {
        throw new IllegalArgumentException("stray-fraction = " + strayFraction + ": must be from 0 to 1");
      }
    }
  }

  /**
   * Page requests: buffers mapped lazily (no pages installed), whose pages fault on first DMA
   * touch; the fault reaches the VM through its fd's FAULT queue, the VM resolves and answers it.
   *
   * @param rate lazy buffers per second per VM
   * @param bufferSize bytes per buffer, a multiple of 4 KiB: every page faults once
   */
  public record PageRequests(double rate, long bufferSize) {
    public PageRequests {
      checkRate(rate);
    }
  }

  /**
   * Guest invalidations of nested domains: the guest changes its stage-1 tables and invalidates
   * {@code size} bytes through the vIOMMU.
   *
   * @param rate invalidations per second per VM
   * @param size bytes each invalidation covers, a multiple of 4 KiB
   */
  public record Invalidations(double rate, long size) {
    public Invalidations {
      checkRate(rate);
    }
  }

  /**
   * Hot-unplug of the VM's devices (one of {@code devices}, seeded), at random at {@code rate} and
   * at the fixed times {@code at}; each unplugged device is plugged back after {@code replugAfter},
   * or never when it is empty.
   *
   * @param rate random unplugs per second per VM
   * @param at fixed times (from the start of the run) at which every VM unplugs one device
   * @param replugAfter delay before the device is plugged back; empty: never
   * @param devices which devices may be unplugged
   */
  public record Hotplug(
      double rate, List<Duration> at, Optional<Duration> replugAfter, HotplugTargets devices) {
    public Hotplug {
      checkRate(rate);
      at = List.copyOf(at);
      Objects.requireNonNull(replugAfter, "replugAfter");
      Objects.requireNonNull(devices, "devices");
    }

    public boolean enabled() {
      return rate > 0 || !at.isEmpty();
    }
  }

  /**
   * Guest WBINVD instructions. KVM emulates them (IPIs to every pCPU the vCPU ran on) while the
   * VM has a non-coherent DMA device, and ignores them otherwise.
   *
   * @param rate WBINVDs per second per VM
   */
  public record Wbinvd(double rate) {
    public Wbinvd {
      checkRate(rate);
    }
  }

  /**
   * The operations this workload performs: attach always (every VM attaches its devices), the
   * others when their rate is above 0 (or unplugs are scheduled).
   */
  public Set<Operation> operations() {
    Set<Operation> ops = EnumSet.of(Operation.ATTACH);
    if (map.rate() > 0) {
      ops.add(Operation.MAP);
      ops.add(Operation.UNMAP);
    }
    if (dma.rate() > 0) {
      ops.add(Operation.DMA);
    }
    if (pageRequests.rate() > 0) {
      ops.add(Operation.PAGE_REQUEST);
    }
    if (invalidations.rate() > 0) {
      ops.add(Operation.INVALIDATION);
    }
    if (hotplug.enabled()) {
      ops.add(Operation.UNPLUG);
      if (hotplug.replugAfter().isPresent()) {
        ops.add(Operation.HOTPLUG);
      }
    }
    if (wbinvd.rate() > 0) {
      ops.add(Operation.WBINVD);
    }
    return ops;
  }

  private static void checkRate(double rate) {
    if (!(rate >= 0 && rate <= MAX_RATE)) {
      throw new IllegalArgumentException("rate = " + rate + ": must be from 0 to " + MAX_RATE);
    }
  }
}
