package io.iommulab.config;

import com.typesafe.config.Config;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;

/**
 * A page-table IOMMU unit (VT-d-like or SMMUv3-like).
 *
 * <p>Invariants (checked on construction; reported with key paths by {@link #fromConfig}): {@code
 * kind} is a paging kind; {@code addressWidth} is 39, 48 or 57; {@code pageSizes} is a subset of
 * 4 KiB, 2 MiB and 1 GiB that contains 4 KiB (VT-d {@code map_pages} accepts only these,
 * {@code drivers/iommu/intel/iommu.c}). From config also: PASID bits 0 to 20, 2 to 65536 domain
 * ids (id 0 reserved: SMMUv3 VMID 0 is the bypass STE), an invalidation queue of a power of two
 * from 16 to 32768 descriptors, a max address mask from 0 to 63, and caching mode only on VT-d
 * (CM is a VT-d capability that a vIOMMU sets).
 *
 * @param name unique unit name
 * @param kind {@link UnitKind#VTD} or {@link UnitKind#SMMUV3}
 * @param addressWidth input address width in bits (39, 48 or 57): 3, 4 or 5 table levels
 * @param pageSizes supported page sizes in bytes, a subset of 4 KiB, 2 MiB, 1 GiB, 4 KiB always;
 *     from config, ascending and without repeats
 * @param snoopControl VT-d ECAP.SC: can enforce cache coherency (force snoop)
 * @param nesting supports nested (stage-1 over NEST_PARENT stage-2) translation
 * @param dirtyTracking supports dirty tracking on paging domains
 * @param msiIsolation MSIs are isolated (interrupt remapping / ITS)
 * @param pasidBits PASID width supported by the unit, 0 to 20
 * @param domainIds number of domain ids (VT-d cap_ndoms, SMMUv3 VMIDs/ASIDs); id 0 reserved
 * @param iotlb IOTLB geometry
 * @param invalidationQueueDepth descriptors in the invalidation queue (VT-d QI: 256)
 * @param maxAddressMask largest page-selective invalidation mask (VT-d cap_max_amask_val):
 *     wider ranges fall back to domain-selective invalidation
 * @param cachingMode VT-d CM=1 (a vIOMMU): non-present to present changes also need invalidation
 */
public record PagingUnitSettings(
    String name,
    UnitKind kind,
    int addressWidth,
    List<Long> pageSizes,
    boolean snoopControl,
    boolean nesting,
    boolean dirtyTracking,
    boolean msiIsolation,
    int pasidBits,
    int domainIds,
    IotlbSettings iotlb,
    int invalidationQueueDepth,
    int maxAddressMask,
    boolean cachingMode)
    implements IommuUnitSettings {

  /** Keys of a paging unit besides {@code name} and {@code kind}: what unit-defaults may set. */
  static final List<String> FIELD_KEYS =
      List.of(
          "address-width",
          "page-sizes",
          "snoop-control",
          "nesting",
          "dirty-tracking",
          "msi-isolation",
          "pasid-bits",
          "domain-ids",
          "iotlb",
          "invalidation-queue-depth",
          "max-address-mask",
          "caching-mode");

  static final long SIZE_4K = 4096L;
  static final long SIZE_2M = 2L << 20;
  static final long SIZE_1G = 1L << 30;

  static final ConfigReader.Rule ADDRESS_WIDTH =
      new ConfigReader.Rule(
          v -> v == 39 || v == 48 || v == 57, "must be 39, 48 or 57 (3, 4 or 5 table levels)");
  static final ConfigReader.Rule PAGE_SIZE =
      new ConfigReader.Rule(
          v -> v == SIZE_4K || v == SIZE_2M || v == SIZE_1G, "must be 4K, 2M or 1G");

  public PagingUnitSettings {
    pageSizes = List.copyOf(pageSizes);
    if (name == null || kind == null || iotlb == null) {
      throw new IllegalArgumentException("name, kind and iotlb must not be null");
    }
    if (!kind.isPaging()) {
      throw new IllegalArgumentException(name + ": kind = " + kind.configName() + " is not paging");
    }
    if (!ADDRESS_WIDTH.test().test(addressWidth)) {
      throw new IllegalArgumentException(
          name + ": address-width = " + addressWidth + ": " + ADDRESS_WIDTH.text());
    }
    if (!pageSizes.contains(SIZE_4K)) {
      throw new IllegalArgumentException(name + ": page-sizes = " + pageSizes + ": must include 4K");
    }
    for (long size : pageSizes) {
      if (!PAGE_SIZE.test().test(size)) {
        throw new IllegalArgumentException(name + ": page size " + size + ": " + PAGE_SIZE.text());
      }
    }
  }

  /**
   * Builds one entry of {@code units} whose {@code kind} is {@code vtd} or {@code smmuv3}. Keys the
   * entry omits come from {@code iommulab.topology.unit-defaults.<kind>} of the shipped {@code
   * reference.conf}. Problems are named relative to the entry.
   *
   * @throws SettingsException listing every problem, including a kind that is not paging
   */
  public static PagingUnitSettings fromConfig(Config unit) {
    if (IommuUnitSettings.fromConfig(unit) instanceof PagingUnitSettings paging) {
      return paging;
    }
    throw new SettingsException(
        List.of("kind = pamu: must be vtd or smmuv3 (a pamu unit is a PamuUnitSettings)"));
  }

  /**
   * Reads the fields of a paging unit of {@code kind} from {@code r}. With {@code name == null}
   * only validates (a defaults section) and returns empty.
   */
  static Optional<PagingUnitSettings> read(ConfigReader r, String name, UnitKind kind) {
    int mark = r.mark();
    int addressWidth = r.getInt("address-width", ADDRESS_WIDTH).orElse(48);
    List<Long> pageSizes = readPageSizes(r);
    boolean snoopControl = r.getBoolean("snoop-control").orElse(false);
    boolean nesting = r.getBoolean("nesting").orElse(false);
    boolean dirtyTracking = r.getBoolean("dirty-tracking").orElse(false);
    boolean msiIsolation = r.getBoolean("msi-isolation").orElse(false);
    int pasidBits = r.getInt("pasid-bits", ConfigReader.Rule.between(0, 20)).orElse(0);
    int domainIds = r.getInt("domain-ids", ConfigReader.Rule.between(2, 65536)).orElse(2);
    Optional<IotlbSettings> iotlb =
        r.requireObject("iotlb", "an object { sets, ways, eviction }").flatMap(IotlbSettings::read);
    int queueDepth =
        r.getInt("invalidation-queue-depth", ConfigReader.Rule.powerOfTwoBetween(16, 32768))
            .orElse(16);
    int maxAddressMask = r.getInt("max-address-mask", ConfigReader.Rule.between(0, 63)).orElse(0);
    boolean cachingMode = r.getBoolean("caching-mode").orElse(false);
    if (cachingMode && kind == UnitKind.SMMUV3) {
      r.problem(
          "caching-mode", "must be off for an smmuv3 unit: caching mode (CM) is a VT-d capability");
    }
    if (name == null || r.failedSince(mark)) {
      return Optional.empty();
    }
    return Optional.of(
        new PagingUnitSettings(
            name,
            kind,
            addressWidth,
            pageSizes,
            snoopControl,
            nesting,
            dirtyTracking,
            msiIsolation,
            pasidBits,
            domainIds,
            iotlb.orElseThrow(),
            queueDepth,
            maxAddressMask,
            cachingMode));
  }

  /** Ascending, 4K included, no repeats; a problem (and a dummy result) otherwise. */
  private static List<Long> readPageSizes(ConfigReader r) {
    Optional<List<Long>> sizes = r.getBytesList("page-sizes", PAGE_SIZE);
    if (sizes.isEmpty()) {
      return List.of(SIZE_4K);
    }
    TreeSet<Long> distinct = new TreeSet<>(sizes.get());
    if (distinct.size() != sizes.get().size()) {
      r.problem("page-sizes", "must not repeat a page size");
    }
    if (!distinct.contains(SIZE_4K)) {
      r.problem("page-sizes", "must include 4K (the smallest page every table level maps)");
    }
    return new ArrayList<>(distinct);
  }

  /** Table levels implied by the address width with 4 KiB pages and 9 bits per level. */
  public int levels() {
    return (addressWidth - 12 + 8) / 9;
  }
}
