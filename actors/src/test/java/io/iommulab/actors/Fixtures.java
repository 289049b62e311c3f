package io.iommulab.actors;

import io.iommulab.config.DeviceSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.config.IotlbSettings;
import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.config.TopologySettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.memory.GuestMemoryLayout;
import java.util.List;
import java.util.OptionalInt;

/** Small topologies for actor tests: 256 MiB of RAM, three MSI banks above it. */
public final class Fixtures {
  public static final long KIB4 = 4096;
  public static final long MIB = 1L << 20;
  public static final long RAM = 256 * MIB;
  public static final long MSIIR0 = 0xf_fe04_4000L;

  private Fixtures() {}

  public static List<MsiBankSettings> banks() {
    return List.of(
        new MsiBankSettings(0, MSIIR0, 256),
        new MsiBankSettings(1, MSIIR0 + 0x1000, 256),
        new MsiBankSettings(2, MSIIR0 + 0x2000, 256));
  }

  public static TopologySettings topology(List<IommuUnitSettings> units) {
    return new TopologySettings(RAM, units, List.of(), banks());
  }

  /** A VT-d unit with every capability and MSI isolation; 4 KiB, 2 MiB and 1 GiB pages. */
  public static PagingUnitSettings vtd(String name) {
    return paging(name, UnitKind.VTD, true, false, 64);
  }

  public static PagingUnitSettings paging(
      String name, UnitKind kind, boolean msiIsolation, boolean cachingMode, int domainIds) {
    return new PagingUnitSettings(
        name, kind, 48, List.of(KIB4, 2 * MIB, 1L << 30), true, true, true, msiIsolation, 20,
        domainIds, new IotlbSettings(16, 4, IotlbSettings.Eviction.LRU), 64, 18, cachingMode);
  }

  /** A PAMU with the driver's table sizes and a 64 GiB default aperture. */
  public static PamuUnitSettings pamu(String name) {
    return new PamuUnitSettings(name, 0x500, 0x800, 256, 0, 1L << 36);
  }

  /** A plain function: no PASID, ATS or PRI; four MSI vectors. */
  public static DeviceSettings plain(String name, String unit, String rid, int group) {
    return new DeviceSettings(
        name, unit, rid, OptionalInt.empty(), group, 0, false, 0, false, 4, false, false);
  }

  /** ATS with a 64-entry ATC, 8 PASID bits, PRI when {@code pri}. */
  public static DeviceSettings ats(String name, String unit, String rid, int group, boolean pri) {
    return new DeviceSettings(
        name, unit, rid, OptionalInt.empty(), group, 8, true, 64, pri, 4, false, false);
  }

  /** A function behind a PAMU with {@code liodn}. */
  public static DeviceSettings pamuDevice(String name, String unit, String rid, int group, int liodn) {
    return new DeviceSettings(
        name, unit, rid, OptionalInt.of(liodn), group, 0, false, 0, false, 4, true, false);
  }

  /**
   * VM 1's guest memory of {@code hugePages} 2 MiB pages at user VA {@code userVa}, one physically
   * contiguous run from 1 GiB: for tests that need a layout but no host-memory actor to allocate it.
   */
  public static GuestMemoryLayout contiguousGuest(int hugePages, long userVa) {
    int[] frames = new int[hugePages];
    int[] runEnd = new int[hugePages];
    for (int i = 0; i < hugePages; i++) {
      frames[i] = (int) (((1L << 30) + i * (2L << 20)) >>> 12);
      runEnd[i] = hugePages;
    }
    return new GuestMemoryLayout(1, hugePages * (2L << 20), PageSize.SIZE_2M, userVa, frames, runEnd);
  }
}
