package io.iommulab.hardware.iommu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.iommulab.config.IotlbSettings;
import io.iommulab.config.PagingUnitSettings;
import io.iommulab.config.UnitKind;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.cost.CostModel;
import java.util.List;
import java.util.function.Supplier;

/** Test fixtures: unit settings with every capability, and variations of them. */
final class Units {
  static final long K4 = 4096;
  static final long M2 = 2L << 20;
  static final long G1 = 1L << 30;
  static final List<Long> ALL_SIZES = List.of(K4, M2, G1);
  static final CostModel COST = CostModel.defaults();

  private Units() {}

  /** A settings value with everything on; {@code with*} methods change one field. */
  record Spec(
      UnitKind kind,
      int addressWidth,
      List<Long> pageSizes,
      boolean snoopControl,
      boolean nesting,
      boolean dirtyTracking,
      int pasidBits,
      int domainIds,
      int queueDepth,
      int maxAddressMask,
      boolean cachingMode) {

    Spec kind(UnitKind k) {
      return new Spec(k, addressWidth, pageSizes, snoopControl, nesting, dirtyTracking, pasidBits,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec width(int w) {
      return new Spec(kind, w, pageSizes, snoopControl, nesting, dirtyTracking, pasidBits,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec sizes(List<Long> s) {
      return new Spec(kind, addressWidth, s, snoopControl, nesting, dirtyTracking, pasidBits,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec noSnoopControl() {
      return new Spec(kind, addressWidth, pageSizes, false, nesting, dirtyTracking, pasidBits,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec noNesting() {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, false, dirtyTracking, pasidBits,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec noDirtyTracking() {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, nesting, false, pasidBits,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec pasidBits(int b) {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, nesting, dirtyTracking, b,
          domainIds, queueDepth, maxAddressMask, cachingMode);
    }

    Spec domainIds(int n) {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, nesting, dirtyTracking,
          pasidBits, n, queueDepth, maxAddressMask, cachingMode);
    }

    Spec queueDepth(int n) {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, nesting, dirtyTracking,
          pasidBits, domainIds, n, maxAddressMask, cachingMode);
    }

    Spec maxAddressMask(int m) {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, nesting, dirtyTracking,
          pasidBits, domainIds, queueDepth, m, cachingMode);
    }

    Spec cachingMode(boolean cm) {
      return new Spec(kind, addressWidth, pageSizes, snoopControl, nesting, dirtyTracking,
          pasidBits, domainIds, queueDepth, maxAddressMask, cm);
    }

    PagingUnitSettings settings() {
      return new PagingUnitSettings(
          kind.configName() + "0", kind, addressWidth, pageSizes, snoopControl, nesting,
          dirtyTracking, true, pasidBits, domainIds,
          new IotlbSettings(64, 8, IotlbSettings.Eviction.LRU), queueDepth, maxAddressMask,
          cachingMode);
    }

    IommuUnit unit() {
      return unit(FaultInjector.NONE);
    }

    IommuUnit unit(FaultInjector injector) {
      return new IommuUnit(0, settings(), COST, 42, injector);
    }
  }

  static Spec vtd() {
    return new Spec(UnitKind.VTD, 48, ALL_SIZES, true, true, true, 20, 256, 256, 18, false);
  }

  static Spec smmu() {
    return vtd().kind(UnitKind.SMMUV3);
  }

  /** Asserts the errno and that the unit is exactly as before the call. */
  static <T> void assertRefused(IommuUnit unit, Errno expected, Supplier<Outcome<T>> call) {
    IommuUnit.Snapshot before = unit.snapshot();
    Outcome<T> result = call.get();
    assertEquals(expected, result.errnoOrNull(), () -> "outcome " + result);
    assertEquals(before, unit.snapshot());
    unit.checkInvariants();
  }

  static <T> T ok(Outcome<T> o) {
    if (!o.isOk()) {
      throw new AssertionError("expected success, got " + o);
    }
    return o.value();
  }
}
