package io.iommulab.actors.fd.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FailNth;
import io.iommulab.hardware.FaultInjector;
import org.junit.jupiter.api.Test;

class ObjectTableTest {

  private final ObjectTable table = new ObjectTable(FaultInjector.NONE);

  private Ioas reserved() {
    Ioas o = new Ioas(FaultInjector.NONE);
    table.reserve(o).value();
    return o;
  }

  private Ioas live() {
    Ioas o = reserved();
    table.finalizeObject(o);
    return o;
  }

  @Test
  void idsStartAtOneAndTheLowestFreeIdIsTaken() {
    Ioas a = live();
    Ioas b = live();
    Ioas c = live();
    assertEquals(1, a.id());
    assertEquals(3, c.id());
    table.remove(b);
    assertEquals(2, live().id());
    assertEquals(4, live().id());
  }

  @Test
  void aReservedObjectIsInvisibleAndItsAbortFreesTheId() {
    Ioas r = reserved();
    assertNull(table.get(r.id()));
    assertEquals(Errno.ENOENT, table.checkDestroy(r.id()).errnoOrNull());
    table.abort(r);
    assertEquals(FdObject.State.GONE, r.state());
    assertEquals(1, live().id());
  }

  @Test
  void lookupsOfTheWrongTypeAreNull() {
    Ioas a = live();
    assertSame(a, table.get(a.id(), Ioas.class));
    assertNull(table.get(a.id(), Fault.class));
  }

  @Test
  void destroyIsEnoentForMissingAndEbusyForUsedObjects() {
    Ioas a = live();
    a.addUser();
    assertEquals(Errno.EBUSY, table.checkDestroy(a.id()).errnoOrNull());
    a.removeUser();
    assertSame(a, table.checkDestroy(a.id()).value());
    assertEquals(Errno.ENOENT, table.checkDestroy(99).errnoOrNull());
  }

  @Test
  void aDestroyingObjectIsInvisibleButKeepsItsId() {
    Ioas a = live();
    table.markDestroying(a);
    assertNull(table.get(a.id()));
    assertEquals(2, live().id());
    table.remove(a);
    assertEquals(1, live().id());
  }

  @Test
  void aTombstoneHoldsItsIdUntilCleared() {
    Ioas a = live();
    table.tombstone(a);
    assertNull(table.get(a.id()));
    assertEquals(2, live().id());
    assertEquals(1, table.clearTombstones());
    assertEquals(1, live().id());
  }

  @Test
  void anInjectedFailureIsEnomemAndTakesNoId() {
    FailNth nth = new FailNth();
    ObjectTable t = new ObjectTable(nth);
    nth.arm(1);
    assertEquals(Errno.ENOMEM, t.reserve(new Ioas(FaultInjector.NONE)).errnoOrNull());
    assertEquals(0, t.size());
    assertEquals(1, t.reserve(new Ioas(FaultInjector.NONE)).value());
  }

  @Test
  void usersNeverGoBelowZeroAndAbortWithUsersIsABug() {
    Ioas a = reserved();
    assertThrows(IllegalStateException.class, a::removeUser);
    a.addUser();
    assertThrows(IllegalStateException.class, () -> table.abort(a));
  }
}
