package io.iommulab.hardware.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.PageSize;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Random allocate/free/pin/unpin sequences for several owners, checked step by step against a
 * per-frame reference: owners, pins, generations, ENOMEM exactly when no aligned free range
 * exists, and the model's own invariants.
 */
class HostMemoryPropertyTest {
  private static final long HOST_BYTES = 64L << 20; // 16384 frames: one 64M block when empty
  private static final int FRAMES = (int) (HOST_BYTES >>> 12);
  private static final PageSize[] SIZES = {
    PageSize.SIZE_4K, PageSize.SIZE_4K, PageSize.SIZE_4K, PageSize.SIZE_4K, PageSize.SIZE_4K,
    PageSize.SIZE_4K, PageSize.SIZE_2M, PageSize.SIZE_2M, PageSize.SIZE_2M, PageSize.SIZE_64M
  };

  /** One step: what to do, for whom, which size, which live block or pinned range, where. */
  record Op(int kind, int owner, int size, int pick, int offset, int length) {}

  record Block(long hpa, PageSize size, int owner) {}

  record PinnedRange(long hpa, long length) {}

  @Provide
  Arbitrary<List<Op>> operations() {
    Arbitrary<Op> op =
        Combinators.combine(
                Arbitraries.integers().between(0, 11),
                Arbitraries.integers().between(0, 3),
                Arbitraries.integers().between(0, SIZES.length - 1),
                Arbitraries.integers().between(0, 10_000),
                Arbitraries.integers().between(0, 600),
                Arbitraries.integers().between(1, 700))
            .as(Op::new);
    return op.list().ofMinSize(1).ofMaxSize(80);
  }

  @Property(tries = 100)
  void randomOperationSequencesMatchTheReferenceAndKeepTheInvariants(
      @ForAll("operations") List<Op> ops) {
    HostMemory m = new HostMemory(HOST_BYTES, FaultInjector.NONE);
    int[] refOwner = new int[FRAMES];
    int[] refGen = new int[FRAMES];
    int[] refPins = new int[FRAMES];
    Arrays.fill(refOwner, HostMemory.FREE);
    List<Block> live = new ArrayList<>();
    List<PinnedRange> pinned = new ArrayList<>();

    for (Op op : ops) {
      switch (op.kind()) {
        case 0, 1, 2, 3, 4 -> {
          PageSize size = SIZES[op.size()];
          int owner = op.owner();
          Outcome<Long> r = m.allocate(owner, size);
          int order = HostMemory.orderOf(size);
          if (r.isOk()) {
            long hpa = r.value();
            assertTrue(size.isAligned(hpa));
            int f0 = (int) (hpa >>> 12);
            for (int f = f0; f < f0 + (1 << order); f++) {
              assertEquals(HostMemory.FREE, refOwner[f], "allocated over a live block");
              refOwner[f] = owner;
              int g = m.generation((long) f << 12);
              assertTrue(Integer.compareUnsigned(g, refGen[f]) >= 0, "generation went back");
              refGen[f] = g;
            }
            live.add(new Block(hpa, size, owner));
          } else {
            assertEquals(Errno.ENOMEM, r.errnoOrNull());
            assertTrue(!anAlignedFreeRangeExists(refOwner, order), "ENOMEM with room for " + size);
          }
        }
        case 5, 6, 7 -> {
          if (live.isEmpty()) {
            continue;
          }
          int i = op.pick() % live.size();
          Block b = live.get(i);
          int f0 = (int) (b.hpa() >>> 12);
          int n = (int) b.size().frames();
          boolean anyPin = false;
          for (int f = f0; f < f0 + n; f++) {
            anyPin |= refPins[f] > 0;
          }
          if (anyPin) {
            long digest = m.stateDigest();
            assertThrows(IllegalStateException.class, () -> m.free(b.hpa(), b.size()));
            assertEquals(digest, m.stateDigest());
            continue;
          }
          m.free(b.hpa(), b.size());
          live.remove(i);
          for (int f = f0; f < f0 + n; f++) {
            refOwner[f] = HostMemory.FREE;
            int g = m.generation((long) f << 12);
            assertTrue(Integer.compareUnsigned(g, refGen[f]) > 0, "free did not bump generation");
            refGen[f] = g;
          }
        }
        case 8, 9 -> {
          if (live.isEmpty()) {
            continue;
          }
          Block b = live.get(op.pick() % live.size());
          long start = b.hpa() + ((long) op.offset() * 4096 + op.offset()) % b.size().bytes();
          long length = Math.min((long) op.length() * 1000, b.hpa() + b.size().bytes() - start);
          m.pin(start, length);
          pinned.add(new PinnedRange(start, length));
          for (long f = start >>> 12; f <= (start + length - 1) >>> 12; f++) {
            refPins[(int) f]++;
          }
        }
        case 10 -> {
          if (pinned.isEmpty()) {
            continue;
          }
          PinnedRange p = pinned.remove(op.pick() % pinned.size());
          m.unpin(p.hpa(), p.length());
          for (long f = p.hpa() >>> 12; f <= (p.hpa() + p.length() - 1) >>> 12; f++) {
            refPins[(int) f]--;
          }
        }
        default -> {
          // Unpinning a frame that holds no pin is refused and changes nothing.
          int f = op.pick() % FRAMES;
          if (refPins[f] == 0 && refOwner[f] != HostMemory.FREE) {
            long digest = m.stateDigest();
            assertThrows(IllegalStateException.class, () -> m.unpin((long) f << 12, 4096));
            assertEquals(digest, m.stateDigest());
          }
        }
      }
      compare(m, refOwner, refGen, refPins);
    }
  }

  private static boolean anAlignedFreeRangeExists(int[] refOwner, int order) {
    int n = 1 << order;
    for (int f0 = 0; f0 + n <= FRAMES; f0 += n) {
      boolean free = true;
      for (int f = f0; f < f0 + n && free; f++) {
        free = refOwner[f] == HostMemory.FREE;
      }
      if (free) {
        return true;
      }
    }
    return false;
  }

  private static void compare(HostMemory m, int[] refOwner, int[] refGen, int[] refPins) {
    m.checkInvariants();
    long free = 0;
    long pinnedFrames = 0;
    long[] perOwner = new long[4];
    for (int f = 0; f < FRAMES; f++) {
      long hpa = (long) f << 12;
      assertEquals(refOwner[f], m.owner(hpa + (f % 4096)), "owner of frame " + f);
      assertEquals(refPins[f], m.pinCount(hpa), "pins of frame " + f);
      int g = m.generation(hpa);
      if (refOwner[f] == HostMemory.FREE) {
        free++;
        assertTrue(Integer.compareUnsigned(g, refGen[f]) >= 0, "generation went back");
      } else {
        perOwner[refOwner[f]] += 4096;
        assertEquals(refGen[f], g, "generation of an allocated frame changed");
      }
      pinnedFrames += refPins[f] > 0 ? 1 : 0;
    }
    assertEquals(free << 12, m.freeBytes());
    assertEquals(pinnedFrames, m.pinnedFrames());
    for (int o = 0; o < perOwner.length; o++) {
      assertEquals(perOwner[o], m.allocatedBytes(o), "bytes of owner " + o);
    }
  }
}
