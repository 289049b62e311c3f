package io.iommulab.hardware.pamu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.config.MsiBankSettings;
import io.iommulab.config.PamuUnitSettings;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.iommu.Translation;
import io.iommulab.hardware.msi.MsiBank;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;

/**
 * Random geometry, window, attach, map and DMA sequences on a small unit (16 LIODNs, 96 SPAACEs,
 * 16 windows, occasional injected allocation failures): every invariant holds after every step,
 * and every refused call leaves the unit exactly as it was.
 */
class PamuInvariantPropertiesTest {
  private static final long[] SIZES = {0x1000, 0x10000, 1L << 20, 16L << 20, 64L << 20, 256L << 20, 1L << 30, 4L << 30, 3L << 20, 0x800};
  private static final long[] STARTS = {0, 1L << 30, 512L << 20, 4L << 30, 0x1000};

  @Property(tries = 150)
  void randomOperationsKeepEveryInvariantAndRefusalsChangeNothing(@ForAll long seed) {
    SplittableRandom rnd = new SplittableRandom(seed);
    FailNth fail = new FailNth();
    PamuUnit u =
        new PamuUnit(0, new PamuUnitSettings("p", 16, 96, 16, 0, 1L << 36), CostModel.defaults(), fail);
    MsiBank bank = new MsiBank(new MsiBankSettings(0, 0xf_fe04_4000L, 256), fail);
    List<PamuDomain> domains = new ArrayList<>();
    Translation t = new Translation();
    for (int step = 0; step < 250; step++) {
      if (rnd.nextInt(20) == 0) {
        fail.arm(1 + rnd.nextInt(2));
      } else {
        fail.disarm();
      }
      if (domains.isEmpty() || rnd.nextInt(25) == 0) {
        Outcome<PamuDomain> d = u.allocDomain();
        if (d.isOk()) {
          domains.add(d.value());
          if (rnd.nextBoolean()) { // half start configured, half exercise the unconfigured rules
            long apSize = 64L << 20 << rnd.nextInt(5);
            d.value().setGeometry(0, apSize);
            d.value().setWindowCount(1 << rnd.nextInt(4));
          }
        }
        continue;
      }
      PamuDomain d = domains.get(rnd.nextInt(domains.size()));
      int op = rnd.nextInt(15);
      if (op == 14 || op == 7) {
        long iova = rnd.nextLong(0, 2L << 30);
        u.translate(rnd.nextInt(18), iova, 1 + rnd.nextInt(3), step, t.reset());
        if (rnd.nextInt(10) == 0) {
          u.unmaskAccessViolations();
        }
        u.checkInvariants();
        continue;
      }
      PamuSnapshot before = u.snapshot();
      Outcome<?> o = apply(op, d, rnd, bank);
      if (!o.isOk()) {
        assertTrue(before.equals(u.snapshot()), () -> "op " + op + " refused with " + o + " but changed the unit");
      }
      if (op == 11 && d.isFreed()) {
        domains.remove(d);
      }
      u.checkInvariants();
    }
  }

  private static Outcome<?> apply(int op, PamuDomain d, SplittableRandom rnd, MsiBank bank) {
    long ws = d.windowSize();
    int w = rnd.nextInt(18) - 1;
    switch (op) {
      case 0:
        if (rnd.nextInt(4) == 0) {
          return d.setGeometry(STARTS[rnd.nextInt(STARTS.length)], SIZES[rnd.nextInt(SIZES.length)]);
        }
        long apSize = 16L << 20 << rnd.nextInt(9); // 16 MiB .. 4 GiB
        return d.setGeometry(rnd.nextInt(4) * apSize, apSize);
      case 1:
        return d.setWindowCount(
            rnd.nextInt(5) == 0 ? new int[] {32, 3, 0}[rnd.nextInt(3)] : 1 << rnd.nextInt(5));
      case 2: {
        // mostly valid: a power of two up to the window, naturally aligned
        long size = rnd.nextInt(4) == 0 ? SIZES[rnd.nextInt(SIZES.length)] : Math.max(0x1000, ws >> rnd.nextInt(3));
        long pa = rnd.nextInt(5) == 0 ? rnd.nextLong(1L << 40) & ~0xfffL : rnd.nextLong(1, 1024) * size;
        return d.windowEnable(w, pa, size, rnd.nextInt(4));
      }
      case 3:
        return d.windowDisable(w);
      case 4:
        return d.enable();
      case 5:
        return d.disable();
      case 6:
        return d.attach(rnd.nextInt(18) - 1);
      case 8:
        return d.detach(rnd.nextInt(18) - 1);
      case 9: {
        long iova = d.apertureStart() + rnd.nextInt(18) * ws + (rnd.nextInt(8) == 0 ? 0x1000 : 0);
        long size = (1 + rnd.nextInt(3)) * ws;
        long pa = rnd.nextInt(6) == 0 ? rnd.nextLong(1, 64) << 32 : rnd.nextLong(1, 1024) * ws;
        return d.map(iova, pa, size, 1 + rnd.nextInt(3));
      }
      case 10:
        return d.unmap(d.apertureStart() + rnd.nextInt(16) * ws, (1 + rnd.nextInt(4)) * ws);
      case 11:
        return rnd.nextInt(4) == 0 ? d.free() : d.enable();
      case 12:
        return rnd.nextBoolean()
            ? d.mapMsiBank(bank, d.apertureStart() + rnd.nextInt(17) * ws)
            : d.unmapMsiBank(d.apertureStart() + rnd.nextInt(16) * ws);
      default:
        return rnd.nextBoolean()
            ? d.setStash(w, rnd.nextInt(300))
            : d.setOperationMapping(w, rnd.nextInt(20));
    }
  }
}
