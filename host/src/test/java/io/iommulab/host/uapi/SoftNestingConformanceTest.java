package io.iommulab.host.uapi;

import static io.iommulab.host.uapi.Fixture.MB;
import static io.iommulab.host.uapi.Fixture.err;
import static io.iommulab.host.uapi.Fixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.ObjectType;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.config.UapiSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.memory.DmaCheck;
import io.iommulab.host.uapi.IommuFd.IoasMap;
import io.iommulab.host.uapi.IommuFd.IoasUnmap;
import java.time.Duration;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Software nesting (seed 001, 5.3): the fd composes the guest's stage 1 (GIOVA → GPA) with the
 * parent IOAS (GPA → host pages) into a shadow domain and rebuilds it when the parent changes,
 * with locked accounting only on the parent. The device is {@code legacy0} behind {@code vtd9}, a
 * VT-d without hardware nesting (or interrupt remapping: the fd allows unsafe interrupts).
 */
class SoftNestingConformanceTest extends ConformanceTest<Fixture> {

  private static final long GIOVA = 0x4000_0000L;
  private static final int RW = Access.READ | Access.WRITE;

  VfioDevice dev;
  int parent;

  @Override
  Fixture open() {
    return new Fixture(kit, UapiSettings.defaults().withAllowUnsafeInterrupts(true), IoasidFdActor.Credentials.NONE);
  }

  @BeforeEach
  void bindLegacy0OverAParent() {
    dev = f.bound("legacy0");
    parent = f.ioas();
  }

  /** Maps {@code len} bytes of guest memory at GPA {@code gpa} into the parent (GPA = VA offset). */
  private void parentMap(long gpa, long len) {
    ok(fd.ioasMap(IoasMap.fixed(parent, f.va + gpa, len, gpa)));
  }

  private int nested() {
    int h = ok(fd.ioasidCreateNesting(dev.devId(), parent));
    ok(dev.attach(h));
    return h;
  }

  /** One 64-byte access of {@code access} at {@code iova} by legacy0: its status. */
  private byte dma(long iova, int access) {
    DeviceActor.DmaCompleted done = Fixture.await(AskPattern.<DeviceActor.Command, DeviceActor.DmaCompleted>ask(
        f.handles.get("legacy0").device(),
        r -> new DeviceActor.DmaBurst(-1, new long[] {iova}, new int[] {64}, new int[] {access}, 1, r),
        Duration.ofSeconds(5), kit.scheduler()));
    return done.status()[0];
  }

  private void noViolations() {
    assertTrue(f.memoryReport().violations().isEmpty(), f.memoryReport().violations().toString());
    assertEquals(0L, (long) f.memoryReport().checks().getOrDefault(DmaCheck.FREED_FRAME, 0L));
  }

  private String summary(int id) {
    for (FdSnapshot.ObjectSnapshot o : f.snapshot().objects()) {
      if (o.id() == id) {
        return o.summary();
      }
    }
    throw new AssertionError("no object " + id);
  }

  // ---------------------------------------------------------------- creation

  @Test
  void createNestingGivesASoftNestedHwptOnAUnitWithoutHardwareNesting() {
    int h = ok(fd.ioasidCreateNesting(dev.devId(), parent));
    FdSnapshot.ObjectSnapshot o =
        f.snapshot().objects().stream().filter(x -> x.id() == h).findFirst().orElseThrow();
    assertEquals(ObjectType.HWPT_NESTED, o.type());
    assertTrue(o.summary().contains("soft-nested parent=" + parent), o.summary());
  }

  @Test
  void createNestingOnAMissingIoasIsEnoentAndChangesNothing() {
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.ioasidCreateNesting(dev.devId(), 99));
    assertEquals(before, f.state());
  }

  @Test
  void createNestingForAnUnknownDeviceIsEnoentAndChangesNothing() {
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.ioasidCreateNesting(77, parent));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfTheParentWhileANestedSpaceLivesIsEbusyAndChangesNothing() {
    ok(fd.ioasidCreateNesting(dev.devId(), parent));
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(parent));
    assertEquals(before, f.state());
  }

  @Test
  void destroyOfANestedSpaceWithADeviceAttachedIsEbusyAndAfterDetachFreesItsDomain() {
    int domainsBefore = f.domains("vtd9");
    int h = nested();
    Fixture.State before = f.state();
    err(Errno.EBUSY, fd.destroy(h));
    assertEquals(before, f.state());
    ok(dev.detach());
    ok(fd.destroy(h));
    assertEquals(domainsBefore, f.domains("vtd9"));
  }

  // ---------------------------------------------------------------- the shadow

  @Test
  void aGuestMapOverMappedGpaTranslatesGiovaToTheParentsHostPages() {
    parentMap(0, 2 * MB);
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 0x10_0000, MB, RW));
    assertEquals(DeviceActor.STATUS_OK, dma(GIOVA + 0x40, Access.WRITE));
    assertNotEquals(DeviceActor.STATUS_OK, dma(GIOVA + MB, Access.WRITE)); // past the entry
    assertEquals(MB, f.mappedBytes("vtd9"));
    noViolations();
  }

  @Test
  void aGuestEntryOverUnmappedGpaStaysPendingUntilTheParentMapsIt() {
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 4 * MB, 2 * MB, RW));
    assertNotEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    parentMap(4 * MB, MB); // half of the entry becomes valid
    assertEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    assertNotEquals(DeviceActor.STATUS_OK, dma(GIOVA + MB, Access.READ));
    noViolations();
  }

  @Test
  void aParentUnmapRemovesTheShadowEntriesBuiltFromItBeforeThePagesAreUnpinned() {
    parentMap(0, 2 * MB);
    parentMap(2 * MB, 2 * MB);
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, MB, 2 * MB, RW)); // over both areas
    assertEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    ok(fd.ioasUnmap(new IoasUnmap(parent, 0, 2 * MB)));
    assertNotEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    assertEquals(DeviceActor.STATUS_OK, dma(GIOVA + MB, Access.READ)); // built from the other area
    assertEquals(MB, f.mappedBytes("vtd9"));
    parentMap(0, 2 * MB); // and a new map of that GPA makes it valid again
    assertEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    noViolations();
  }

  @Test
  void theComposedPermissionIsTheGuestsAndTheParentsTogether() {
    ok(fd.ioasMap(new IoasMap(Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE, parent, f.va, 2 * MB, 0)));
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 0, 2 * MB, RW));
    assertEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    assertNotEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.WRITE));
  }

  // ---------------------------------------------------------------- accounting

  @Test
  void lockedMemoryIsChargedOnlyToTheParent() {
    parentMap(0, 2 * MB);
    int h = nested();
    long charged = f.snapshot().accounting().userLockedPages();
    assertEquals(512, charged);
    ok(fd.softNestMap(h, GIOVA, 0, 2 * MB, RW));
    ok(fd.softNestMap(h, 2 * GIOVA, 0, 2 * MB, RW)); // the same GPA twice
    assertEquals(charged, f.snapshot().accounting().userLockedPages());
    assertEquals(2 * MB, f.pinnedBytes());
  }

  @Test
  void aParentWithOnlyANestedSpaceIsPinnedWhileTheSpaceLives() {
    parentMap(0, 2 * MB);
    assertEquals(0, f.pinnedBytes()); // no domain yet: pinning is lazy
    int h = ok(fd.ioasidCreateNesting(dev.devId(), parent));
    assertEquals(2 * MB, f.pinnedBytes());
    ok(fd.destroy(h));
    assertEquals(0, f.pinnedBytes());
    assertEquals(0, f.snapshot().accounting().userLockedPages());
  }

  // ---------------------------------------------------------------- guest map / unmap rules

  @Test
  void aGuestMapOffFourKibibytesIsEinvalAndChangesNothing() {
    int h = nested();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.softNestMap(h, GIOVA + 0x800, 0, MB, RW));
    err(Errno.EINVAL, fd.softNestMap(h, GIOVA, 0x800, MB, RW));
    err(Errno.EINVAL, fd.softNestMap(h, GIOVA, 0, 0x800, RW));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestMapWithoutReadOrWriteIsEinvalAndChangesNothing() {
    int h = nested();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.softNestMap(h, GIOVA, 0, MB, 0));
    err(Errno.EINVAL, fd.softNestMap(h, GIOVA, 0, MB, Access.EXEC));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestMapOverlappingAnEntryIsEexistAndChangesNothing() {
    parentMap(0, 2 * MB);
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 0, MB, RW));
    Fixture.State before = f.state();
    err(Errno.EEXIST, fd.softNestMap(h, GIOVA + MB / 2, MB, MB, RW));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestMapOverTheIommusMsiWindowIsEinvalAndChangesNothing() {
    int h = nested();
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.softNestMap(h, 0xfee0_0000L, 0, MB, RW));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestMapWrappingIsEoverflowAndChangesNothing() {
    int h = nested();
    Fixture.State before = f.state();
    err(Errno.EOVERFLOW, fd.softNestMap(h, -MB, 0, 2 * MB, RW));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestMapOnAHwptThatIsNotSoftNestedIsEinvalAndChangesNothing() {
    int paging = ok(fd.hwptAlloc(IommuFd.HwptAlloc.paging(dev.devId(), parent, 0)));
    Fixture.State before = f.state();
    err(Errno.EINVAL, fd.softNestMap(paging, GIOVA, 0, MB, RW));
    err(Errno.ENOENT, fd.softNestMap(99, GIOVA, 0, MB, RW));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestUnmapCuttingAnEntryIsEnoentAndChangesNothing() {
    parentMap(0, 2 * MB);
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 0, 2 * MB, RW));
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.softNestUnmap(h, GIOVA, MB));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestUnmapOfNothingIsEnoentAndChangesNothing() {
    int h = nested();
    Fixture.State before = f.state();
    err(Errno.ENOENT, fd.softNestUnmap(h, GIOVA, MB));
    assertEquals(before, f.state());
  }

  @Test
  void aGuestUnmapRemovesWholeEntriesAndTheirShadow() {
    parentMap(0, 4 * MB);
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 0, MB, RW));
    ok(fd.softNestMap(h, GIOVA + 2 * MB, MB, MB, RW));
    assertEquals(2 * MB, (long) ok(fd.softNestUnmap(h, GIOVA - MB, 8 * MB)));
    assertEquals(0, f.mappedBytes("vtd9"));
    assertNotEquals(DeviceActor.STATUS_OK, dma(GIOVA, Access.READ));
    assertTrue(!summary(h).contains("[0x"), summary(h));
  }

  // ---------------------------------------------------------------- lifecycle

  @Test
  void closeWithANestedSpaceReleasesEverything() {
    parentMap(0, 2 * MB);
    int h = nested();
    ok(fd.softNestMap(h, GIOVA, 0, 2 * MB, RW));
    ok(fd.close());
    assertEquals(0, f.pinnedBytes());
    assertTrue(f.snapshot().isEmpty());
  }
}
