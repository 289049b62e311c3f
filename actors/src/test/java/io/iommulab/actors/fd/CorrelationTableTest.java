package io.iommulab.actors.fd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;

class CorrelationTableTest {

  /** Random puts, removes (present and absent) and bulk removals agree with a HashMap. */
  @Property(tries = 200)
  void theTableAnswersAsAHashMapDoes(@ForAll long seed) {
    SplittableRandom rnd = new SplittableRandom(seed);
    CorrelationTable<String> table = new CorrelationTable<>();
    Map<Long, String> model = new HashMap<>();
    long next = 1;
    List<Long> live = new ArrayList<>();
    for (int step = 0; step < 2000; step++) {
      int op = rnd.nextInt(10);
      if (op < 5 || live.isEmpty()) {
        long id = next++;
        table.put(id, "v" + id);
        model.put(id, "v" + id);
        live.add(id);
      } else if (op < 9) {
        long id = rnd.nextInt(8) == 0 ? next + 5 : live.remove(rnd.nextInt(live.size()));
        assertEquals(model.remove(id), table.remove(id));
      } else {
        int parity = rnd.nextInt(2);
        List<String> removed = table.removeIf(v -> Long.parseLong(v.substring(1)) % 2 == parity);
        List<String> expected = new ArrayList<>();
        model.entrySet().removeIf(e -> {
          boolean gone = e.getKey() % 2 == parity;
          if (gone) {
            expected.add(e.getValue());
          }
          return gone;
        });
        live.removeIf(id -> id % 2 == parity);
        assertEquals(new HashSet<>(expected), new HashSet<>(removed));
      }
      assertEquals(model.size(), table.size());
    }
    for (Map.Entry<Long, String> e : model.entrySet()) {
      assertEquals(e.getValue(), table.remove(e.getKey()));
    }
    assertEquals(0, table.size());
  }

  @Test
  void anIdInFlightTwiceIsABug() {
    CorrelationTable<String> table = new CorrelationTable<>();
    table.put(7, "a");
    assertThrows(IllegalStateException.class, () -> table.put(7, "b"));
    assertEquals("a", table.remove(7));
    assertNull(table.remove(7));
  }
}
