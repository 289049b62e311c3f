package io.iommulab.hardware.pamu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.CostModel;
import java.util.function.Supplier;

/** Test fixtures: units shaped like the driver's (0x500 PPAACEs, 0x800 SPAACEs, 256 windows). */
final class Pamus {
  static final long MIB = 1L << 20;
  static final long GIB = 1L << 30;

  private Pamus() {}

  static PamuUnit unit() {
    return unit(0x800, FaultInjector.NONE);
  }

  static PamuUnit unit(int spaactEntries, FaultInjector injector) {
    return new PamuUnit(
        0,
        new PamuUnitSettings("pamu0", 0x500, spaactEntries, 256, 0, 1L << 36),
        CostModel.defaults(),
        injector);
  }

  static PamuDomain domain(PamuUnit u) {
    return u.allocDomain().value();
  }

  /** A domain with the 2013 thread's example geometry: 512 MiB aperture at 0, 8 windows of 64 MiB. */
  static PamuDomain seedDomain(PamuUnit u, int... liodns) {
    PamuDomain d = domain(u);
    ok(d.setGeometry(0, 512 * MIB));
    ok(d.setWindowCount(8));
    for (int l : liodns) {
      ok(d.attach(l));
    }
    return d;
  }

  static <T> T ok(Outcome<T> o) {
    if (!o.isOk()) {
      throw new AssertionError("expected success, got " + o);
    }
    return o.value();
  }

  /** Asserts that {@code call} is refused with {@code errno} and leaves the unit unchanged. */
  static void assertRefused(PamuUnit u, Errno errno, Supplier<Outcome<?>> call) {
    PamuSnapshot before = u.snapshot();
    Outcome<?> o = call.get();
    assertEquals(errno, o.errnoOrNull(), () -> "outcome " + o);
    assertTrue(before.equals(u.snapshot()), () -> "refused with " + o + " but changed the unit");
    u.checkInvariants();
  }
}
