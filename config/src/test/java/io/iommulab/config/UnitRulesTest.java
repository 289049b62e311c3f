package io.iommulab.config;

import static io.iommulab.config.Hocon.problems;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import io.iommulab.config.IotlbSettings.Eviction;
import java.util.List;
import org.junit.jupiter.api.Test;

class UnitRulesTest {

  /** The default units with {@code extra} written into vtd0's entry. */
  private static String vtd0With(String extra) {
    return "iommulab.topology.units = [ { name = vtd0, kind = vtd, "
        + extra
        + " }, { name = vtd1, kind = vtd }, { name = smmu0, kind = smmuv3 },"
        + " { name = pamu0, kind = pamu } ]";
  }

  /** The default units with {@code extra} written into smmu0's entry (units[2]). */
  private static String smmu0With(String extra) {
    return "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd1, kind = vtd },"
        + " { name = smmu0, kind = smmuv3, "
        + extra
        + " }, { name = pamu0, kind = pamu } ]";
  }

  /** The default units with {@code extra} written into pamu0's entry (units[3]). */
  private static String pamu0With(String extra) {
    return "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd1, kind = vtd },"
        + " { name = smmu0, kind = smmuv3 }, { name = pamu0, kind = pamu, "
        + extra
        + " } ]";
  }

  private static void assertOnly(String problem, String hocon) {
    assertEquals(List.of(problem), problems(hocon));
  }

  // ------------------------------------------------------------------------ names and kinds

  @Test
  void aSecondUnitWithTheSameNameIsADuplicate() {
    assertOnly(
        "iommulab.topology.units[1].name = vtd0: duplicate unit name, first used by units[0]",
        "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd0, kind = vtd },"
            + " { name = smmu0, kind = smmuv3 }, { name = pamu0, kind = pamu } ]\n"
            + "iommulab.topology.devices = [ { name = nic0, unit = vtd0, rid = \"00:02.0\", group = 1 } ]");
  }

  @Test
  void aUnitNameWithCapitalsDoesNotMatchThePattern() {
    List<String> p = problems(vtd0With("name = Vtd0"));
    assertEquals(
        "iommulab.topology.units[0].name = Vtd0: must be a name matching [a-z][a-z0-9-]*", p.get(0));
  }

  @Test
  void aUnitWithoutANameNamesWhatIsMissing() {
    assertOnly(
        "iommulab.topology.units[4].name: missing (required, a name matching [a-z][a-z0-9-]*)",
        "iommulab.topology.units += { kind = vtd }");
  }

  @Test
  void anUnknownKindListsTheKnownKinds() {
    assertOnly(
        "iommulab.topology.units[4].kind = amd-vi: must be one of vtd, smmuv3, pamu",
        "iommulab.topology.units += { name = amd0, kind = amd-vi }");
  }

  @Test
  void aUnitWithoutAKindNamesTheKnownKinds() {
    assertOnly(
        "iommulab.topology.units[4].kind: missing (required, one of vtd, smmuv3, pamu)",
        "iommulab.topology.units += { name = x0 }");
  }

  @Test
  void anUnknownKindUnderUnitDefaultsIsAnUnknownKey() {
    assertOnly(
        "iommulab.topology.unit-defaults.amd-vi = {}: unknown key (unit-defaults takes vtd, smmuv3,"
            + " pamu)",
        "iommulab.topology.unit-defaults.amd-vi {}");
  }

  // ---------------------------------------------------------------------------- paging keys

  @Test
  void anAddressWidthThatIsNoTableDepthIsRefused() {
    assertOnly(
        "iommulab.topology.units[0].address-width = 40: must be 39, 48 or 57 (3, 4 or 5 table"
            + " levels)",
        vtd0With("address-width = 40"));
  }

  @Test
  void addressWidthsGiveThreeFourOrFiveLevels() {
    TopologySettings t =
        Hocon.topology(vtd0With("address-width = 39") + "\n" + "iommulab.topology.unit-defaults.vtd.address-width = 57");
    assertEquals(3, ((PagingUnitSettings) t.unit("vtd0").get()).levels());
    assertEquals(5, ((PagingUnitSettings) t.unit("vtd1").get()).levels());
  }

  @Test
  void pageSizesWithout4KAreRefused() {
    assertOnly(
        "iommulab.topology.units[0].page-sizes = [2M, 1G]: must include 4K (the smallest page every"
            + " table level maps)",
        vtd0With("page-sizes = [2M, 1G]"));
  }

  @Test
  void aPageSizeOutside4K2M1GIsRefusedAtItsListIndex() {
    assertOnly(
        "iommulab.topology.units[0].page-sizes[1] = 64K: must be 4K, 2M or 1G",
        vtd0With("page-sizes = [4K, 64K]"));
  }

  @Test
  void aRepeatedPageSizeIsRefused() {
    assertOnly(
        "iommulab.topology.units[0].page-sizes = [4K, 4096]: must not repeat a page size",
        vtd0With("page-sizes = [4K, 4096]"));
  }

  @Test
  void pageSizesAreKeptAscending() {
    assertEquals(
        List.of(4096L, 1L << 30),
        ((PagingUnitSettings) Hocon.topology(vtd0With("page-sizes = [1G, 4K]")).unit("vtd0").get())
            .pageSizes());
  }

  @Test
  void moreThan20PasidBitsAreRefused() {
    assertOnly(
        "iommulab.topology.units[0].pasid-bits = 21: must be from 0 to 20",
        vtd0With("pasid-bits = 21"));
  }

  @Test
  void aSingleDomainIdIsRefusedBecauseIdZeroIsReserved() {
    assertOnly(
        "iommulab.topology.units[0].domain-ids = 1: must be from 2 to 65536",
        vtd0With("domain-ids = 1"));
  }

  @Test
  void anIotlbSetCountThatIsNotAPowerOfTwoNamesItsNestedPath() {
    assertOnly(
        "iommulab.topology.units[0].iotlb.sets = 3: must be a power of two from 1 to 65536",
        vtd0With("iotlb { sets = 3 }"));
  }

  @Test
  void moreThan64WaysAreRefused() {
    assertOnly(
        "iommulab.topology.units[0].iotlb.ways = 65: must be from 1 to 64",
        vtd0With("iotlb { ways = 65 }"));
  }

  @Test
  void anUnknownEvictionPolicyListsTheKnownOnes() {
    assertOnly(
        "iommulab.topology.units[0].iotlb.eviction = clock: must be one of lru, fifo, random",
        vtd0With("iotlb { eviction = clock }"));
  }

  @Test
  void anIotlbEntryOverridesOnlyTheKeysItGivesAndKeepsTheKindsDefaultsForTheRest() {
    PagingUnitSettings vtd0 =
        (PagingUnitSettings)
            Hocon.topology(vtd0With("iotlb { ways = 4, eviction = random }")).unit("vtd0").get();
    assertEquals(new IotlbSettings(512, 4, Eviction.RANDOM), vtd0.iotlb());
    assertEquals(2048, vtd0.iotlb().capacity());
  }

  @Test
  void anInvalidationQueueDepthThatIsNotAPowerOfTwoIsRefused() {
    assertOnly(
        "iommulab.topology.units[0].invalidation-queue-depth = 100: must be a power of two from 16"
            + " to 32768",
        vtd0With("invalidation-queue-depth = 100"));
  }

  @Test
  void anAddressMaskAbove63IsRefused() {
    assertOnly(
        "iommulab.topology.units[0].max-address-mask = 64: must be from 0 to 63",
        vtd0With("max-address-mask = 64"));
  }

  @Test
  void cachingModeOnAnSmmuv3IsRefusedBecauseItIsAVtdCapability() {
    assertOnly(
        "iommulab.topology.units[2].caching-mode = on: must be off for an smmuv3 unit: caching mode"
            + " (CM) is a VT-d capability",
        smmu0With("caching-mode = on"));
  }

  @Test
  void cachingModeOnAVtdIsAccepted() {
    assertEquals(
        true,
        ((PagingUnitSettings) Hocon.topology(vtd0With("caching-mode = on")).unit("vtd0").get())
            .cachingMode());
  }

  // ------------------------------------------------------------------------------- PAMU keys

  @Test
  void aWindowCountThatIsNotAPowerOfTwoNamesItsKeyPath() {
    assertOnly(
        "iommulab.topology.units[2].max-windows = 300: must be a power of two from 1 to 256",
        "iommulab.topology.units = [ { name = vtd0, kind = vtd }, { name = vtd1, kind = vtd },"
            + " { name = pamu0, kind = pamu, max-windows = 300 }, { name = smmu0, kind = smmuv3 } ]");
  }

  @Test
  void aPamuWithoutPrimaryEntriesIsRefused() {
    assertOnly(
        "iommulab.topology.units[3].ppaact-entries = 0: must be from 1 to 4096",
        pamu0With("ppaact-entries = 0"));
  }

  @Test
  void aSecondaryPoolAbove65536EntriesIsRefused() {
    assertOnly(
        "iommulab.topology.units[3].spaact-entries = 70000: must be from 0 to 65536",
        pamu0With("spaact-entries = 70000"));
  }

  @Test
  void anApertureSizeThatIsNotAPowerOfTwoIsRefused() {
    assertOnly(
        "iommulab.topology.units[3].aperture-size = 48GiB: must be a power of two of at least 4K",
        pamu0With("aperture-size = 48GiB"));
  }

  @Test
  void anApertureStartNotAlignedToTheSizeIsRefused() {
    assertOnly(
        "iommulab.topology.units[3].aperture-start = 0x40000000: must be aligned to aperture-size"
            + " (64GiB)",
        pamu0With("aperture-start = \"0x40000000\""));
  }

  @Test
  void anApertureTooSmallForEveryWindowToHoldAPageIsRefused() {
    assertOnly(
        "iommulab.topology.units[3].aperture-size = 512K: must be at least max-windows (256) × 4K ="
            + " 1MiB, so that every window is at least 4K",
        pamu0With("aperture-size = 512K"));
  }

  @Test
  void anApertureNamesTheDefaultItInheritsWhenTheEntryGivesOnlyTheOtherHalf() {
    assertOnly(
        "iommulab.topology.units[3].aperture-start = 4096: must be aligned to aperture-size (64GiB)"
            + " (inherited from iommulab.topology.unit-defaults.pamu.aperture-start)",
        "iommulab.topology.unit-defaults.pamu.aperture-start = 4096\n"
            + "iommulab.topology.unit-defaults.pamu.aperture-size = 4K\n"
            + "iommulab.topology.unit-defaults.pamu.max-windows = 1\n"
            + pamu0With("aperture-size = 64GiB"));
  }

  @Test
  void anAlignedApertureAboveTwoToThe63IsAccepted() {
    PamuUnitSettings pamu =
        (PamuUnitSettings)
            Hocon.topology(pamu0With("aperture-start = \"0x8000000000000000\", aperture-size = 1GiB"))
                .unit("pamu0")
                .get();
    assertEquals(Long.MIN_VALUE, pamu.defaultApertureStart());
  }

  // ----------------------------------------------------------------------- per-kind defaults

  @Test
  void aUnitEntryWithOnlyNameAndKindTakesEveryKeyFromItsKindsDefaults() {
    TopologySettings t =
        Hocon.topology(
            "iommulab.topology.unit-defaults.vtd { pasid-bits = 8, domain-ids = 256 }\n"
                + "iommulab.topology.unit-defaults.pamu.max-windows = 16\n"
                + "iommulab.topology.units += { name = vtd2, kind = vtd }\n"
                + "iommulab.topology.units += { name = pamu1, kind = pamu }");
    PagingUnitSettings vtd2 = (PagingUnitSettings) t.unit("vtd2").get();
    assertEquals(8, vtd2.pasidBits());
    assertEquals(256, vtd2.domainIds());
    assertEquals(true, vtd2.snoopControl());
    assertEquals(16, ((PamuUnitSettings) t.unit("pamu1").get()).maxWindows());
    // The smmuv3 defaults are untouched by the vtd ones.
    assertEquals(20, ((PagingUnitSettings) t.unit("smmu0").get()).pasidBits());
  }

  @Test
  void aUnitEntryOverridesItsKindsDefault() {
    TopologySettings t =
        Hocon.topology(
            "iommulab.topology.unit-defaults.vtd.nesting = off\n"
                + vtd0With("nesting = on"));
    assertEquals(true, ((PagingUnitSettings) t.unit("vtd0").get()).nesting());
    assertEquals(false, ((PagingUnitSettings) t.unit("vtd1").get()).nesting());
  }

  // ---------------------------------------------------------------------- standalone builders

  @Test
  void aStandaloneUnitEntryTakesItsDefaultsFromReferenceConf() {
    IommuUnitSettings unit =
        IommuUnitSettings.fromConfig(ConfigFactory.parseString("name = p, kind = pamu"));
    assertEquals(new PamuUnitSettings("p", 1280, 2048, 256, 0, 1L << 36), unit);
    PagingUnitSettings smmu =
        PagingUnitSettings.fromConfig(ConfigFactory.parseString("name = s, kind = smmuv3, pasid-bits = 0"));
    assertEquals(0, smmu.pasidBits());
    assertInstanceOf(
        PamuUnitSettings.class, PamuUnitSettings.fromConfig(ConfigFactory.parseString("name = p, kind = pamu")));
  }

  @Test
  void aStandaloneUnitNamesProblemsRelativeToTheEntry() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () -> IommuUnitSettings.fromConfig(ConfigFactory.parseString("name = p, kind = pamu, max-windows = 3")));
    assertEquals(List.of("max-windows = 3: must be a power of two from 1 to 256"), e.problems());
  }

  @Test
  void askingForAPagingUnitFromAPamuEntryIsRefused() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () -> PagingUnitSettings.fromConfig(ConfigFactory.parseString("name = p, kind = pamu")));
    assertEquals(
        List.of("kind = pamu: must be vtd or smmuv3 (a pamu unit is a PamuUnitSettings)"),
        e.problems());
    SettingsException e2 =
        assertThrows(
            SettingsException.class,
            () -> PamuUnitSettings.fromConfig(ConfigFactory.parseString("name = v, kind = vtd")));
    assertEquals(
        List.of("kind = vtd: must be pamu (a vtd or smmuv3 unit is a PagingUnitSettings)"),
        e2.problems());
  }

  @Test
  void aStandaloneIotlbReportsEveryProblem() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () -> IotlbSettings.fromConfig(ConfigFactory.parseString("sets = 3, ways = 0")));
    assertEquals(
        List.of(
            "sets = 3: must be a power of two from 1 to 65536",
            "ways = 0: must be from 1 to 64",
            "eviction: missing (required, one of lru, fifo, random)"),
        e.problems());
  }

  // ------------------------------------------------------------------- compact constructors

  @Test
  void constructorsRefuseStatesThatValidationRefuses() {
    assertThrows(IllegalArgumentException.class, () -> new IotlbSettings(3, 8, Eviction.LRU));
    assertThrows(IllegalArgumentException.class, () -> new IotlbSettings(4, 0, Eviction.LRU));
    assertThrows(
        IllegalArgumentException.class, () -> new PamuUnitSettings("p", 1280, 2048, 300, 0, 1L << 36));
    assertThrows(
        IllegalArgumentException.class, () -> new PamuUnitSettings("p", 1280, 2048, 256, 4096, 1L << 36));
    assertThrows(
        IllegalArgumentException.class,
        () ->
            new PagingUnitSettings(
                "v", UnitKind.VTD, 48, List.of(1L << 21), true, true, true, true, 20, 16,
                new IotlbSettings(1, 1, Eviction.LRU), 256, 18, false));
    assertThrows(
        IllegalArgumentException.class,
        () ->
            new PagingUnitSettings(
                "v", UnitKind.PAMU, 48, List.of(4096L), true, true, true, true, 20, 16,
                new IotlbSettings(1, 1, Eviction.LRU), 256, 18, false));
  }
}
