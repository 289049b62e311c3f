package io.iommulab.hardware.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.PageSize;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The metadata budget, measured by the model's own accounting of the arrays it holds (not by the
 * garbage collector): scenarios reach 10,000 VMs on a 1 TiB host.
 */
class HostMemoryFootprintTest {
  private static final long MIB = 1L << 20;
  private static final long GIB = 1L << 30;

  @Test
  void aTebibyteHostWithTenThousandVmsIn2MPagesStaysUnderSixtyFourMebibytesOfMetadata() {
    HostMemory host = new HostMemory(1024 * GIB, FaultInjector.NONE);
    long empty = host.metadataBytes();
    List<GuestMemory> guests = new ArrayList<>(10_000);
    for (int vm = 1; vm <= 10_000; vm++) {
      guests.add(GuestMemory.create(vm, 64 * MIB, PageSize.SIZE_2M, host).value());
    }
    // The host kernel's page tables: some carved sections too.
    for (int i = 0; i < 20_000; i++) {
      host.allocate(HostMemory.HOST, PageSize.SIZE_4K).value();
    }
    long guestMeta = 0;
    for (GuestMemory g : guests) {
      guestMeta += g.metadataBytes();
    }
    long total = host.metadataBytes() + guestMeta;
    assertTrue(total < 64 * MIB, "metadata " + total + " bytes");
    assertTrue(host.metadataBytes() - empty < 1 * MIB, "allocation in 2M blocks is nearly free");
    assertEquals(10_000 * 64 * MIB, allocatedToVms(host));
    assertEquals(40, host.carvedSections());
    host.checkInvariants();
    guests.get(4242).checkInvariants();
  }

  @Test
  void fourKiBGranularityCostsAFewBytesPerFrame() {
    long bytes = 4 * GIB;
    long frames = bytes >>> 12;
    HostMemory host = new HostMemory(bytes, FaultInjector.NONE);
    long[] pages = host.allocateBlocks(1, PageSize.SIZE_4K, (int) frames).value();
    double perFrame = (double) host.metadataBytes() / frames;
    assertTrue(perFrame < 5, "all carved, never freed: " + perFrame + " bytes/frame");
    // Free every other frame: per-frame generations appear.
    for (int i = 0; i < pages.length; i += 2) {
      host.free(pages[i], PageSize.SIZE_4K);
    }
    perFrame = (double) host.metadataBytes() / frames;
    assertTrue(perFrame < 9, "carved with generations: " + perFrame + " bytes/frame");
    for (int i = 1; i < pages.length; i += 2) {
      host.free(pages[i], PageSize.SIZE_4K);
    }
    assertEquals(0, host.carvedSections());
    assertTrue(host.metadataBytes() < 64 * 1024, "folded back: " + host.metadataBytes());
    host.checkInvariants();
  }

  private static long allocatedToVms(HostMemory host) {
    long sum = 0;
    for (int vm = 1; vm <= 10_000; vm++) {
      sum += host.allocatedBytes(vm);
    }
    return sum;
  }
}
