package io.iommulab.host.uapi;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.InvalidationEntry;
import io.iommulab.actors.fd.model.IovaRange;
import io.iommulab.actors.fd.model.ModeUapi;
import io.iommulab.actors.fd.model.Uapi;
import io.iommulab.actors.fd.model.Vevent;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.Outcome;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * One open {@code /dev/iommu}: a handle on an {@link IoasidFdActor}. Each method is one ioctl
 * (or read/write/poll of a FAULT or vEVENTQ fd), with arguments and results named after the
 * iommufd structs; the errno contract is in {@link io.iommulab.host.uapi}. Thread-safe: the
 * handle holds no state, the actor serializes the calls. Continuations run on the given executor
 * (never on the JDK common pool: see pekko-kamon.md, the 2-CPU pitfall).
 */
public final class IommuFd {

  // ================================================================ argument and result records

  /** struct iommu_ioas_alloc: flags must be 0. */
  public record IoasAlloc(int flags) {}

  /** struct iommu_ioas_map ({@code Uapi.IOAS_MAP_*} flags). */
  public record IoasMap(int flags, int ioasId, long userVa, long length, long iova) {
    /** A readable and writeable map at a fixed IOVA. */
    public static IoasMap fixed(int ioasId, long userVa, long length, long iova) {
      return new IoasMap(
          Uapi.IOAS_MAP_FIXED_IOVA | Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE,
          ioasId, userVa, length, iova);
    }

    /** A readable and writeable map at an IOVA the kernel picks. */
    public static IoasMap auto(int ioasId, long userVa, long length) {
      return new IoasMap(Uapi.IOAS_MAP_READABLE | Uapi.IOAS_MAP_WRITEABLE, ioasId, userVa, length, 0);
    }
  }

  /** struct iommu_ioas_unmap; {@link #all} unmaps everything. */
  public record IoasUnmap(int ioasId, long iova, long length) {
    public static IoasUnmap all(int ioasId) {
      return new IoasUnmap(ioasId, 0, Uapi.ULONG_MAX);
    }
  }

  /** struct iommu_ioas_copy. */
  public record IoasCopy(
      int flags, int dstIoasId, int srcIoasId, long length, long dstIova, long srcIova) {}

  /** struct iommu_ioas_iova_ranges, input half: room for {@code numIovas} ranges. */
  public record IoasIovaRanges(int ioasId, int numIovas) {}

  /**
   * struct iommu_ioas_iova_ranges as written back: {@code errno} EMSGSIZE when the array was too
   * small ({@code numIovas} is then the count needed and {@code allowedIovas} the ranges that
   * fitted), else null.
   */
  public record IovaRanges(
      Errno errno, int numIovas, long outIovaAlignment, List<IovaRange> allowedIovas) {}

  /** struct iommu_ioas_allow_iovas. */
  public record IoasAllowIovas(int ioasId, List<IovaRange> allowedIovas) {}

  /** struct iommu_option ({@code Uapi.OPTION_*}). */
  public record IommuOption(int optionId, int op, int objectId, long val64) {}

  /** struct iommu_hwpt_alloc ({@code Uapi.HWPT_ALLOC_*}, {@code Uapi.HWPT_DATA_*}). */
  public record HwptAlloc(int flags, int devId, int ptId, int dataType, int dataLen, int faultId) {
    /** A plain HWPT_PAGING of IOAS {@code ioasId} with {@code flags}. */
    public static HwptAlloc paging(int devId, int ioasId, int flags) {
      return new HwptAlloc(flags, devId, ioasId, Uapi.HWPT_DATA_NONE, 0, 0);
    }
  }

  /** struct iommu_hwpt_invalidate; entry_num is {@code entries.size()}. */
  public record HwptInvalidate(
      int hwptId, int dataType, int entryLen, List<InvalidationEntry> entries) {}

  /**
   * struct iommu_hwpt_invalidate as written back: {@code entryNum} entries were handled; {@code
   * errno} is the error of the entry that stopped the array, or null.
   */
  public record HwptInvalidated(int entryNum, Errno errno, String message) {}

  /** struct iommu_hwpt_set_dirty_tracking. */
  public record HwptSetDirtyTracking(int flags, int hwptId) {}

  /** struct iommu_hwpt_get_dirty_bitmap. */
  public record HwptGetDirtyBitmap(int hwptId, int flags, long iova, long length, long pageSize) {}

  /** struct iommu_hw_info, input half. */
  public record GetHwInfo(int flags, int devId, int dataLen) {}

  /**
   * struct iommu_hw_info as written back; {@code enforceCacheCoherency}: the device's IOMMU can
   * enforce cache coherency (the snoop-control mode's device info, seed 002).
   */
  public record HwInfo(
      int outDataType,
      int dataLen,
      long outCapabilities,
      int outMaxPasidLog2,
      long pageSizeBitmap,
      int addressWidth,
      List<IovaRange> reservedRegions,
      boolean enforceCacheCoherency) {}

  /** struct iommu_fault_alloc. */
  public record FaultAlloc(int flags) {}

  /** struct iommu_viommu_alloc. */
  public record ViommuAlloc(int flags, int type, int devId, int hwptId) {}

  /** struct iommu_vdevice_alloc. */
  public record VdeviceAlloc(int viommuId, int devId, long virtId) {}

  /** struct iommu_veventq_alloc. */
  public record VeventqAlloc(int flags, int viommuId, int type, int veventqDepth) {}

  // ================================================================ the modes' records

  /** struct vfio_iommu_type1_dma_map ({@code ModeUapi.VFIO_DMA_MAP_FLAG_*}). */
  public record VfioDmaMap(int flags, long vaddr, long iova, long size) {
    /** A readable and writeable mapping. */
    public static VfioDmaMap rw(long vaddr, long iova, long size) {
      return new VfioDmaMap(ModeUapi.VFIO_DMA_MAP_FLAG_READ | ModeUapi.VFIO_DMA_MAP_FLAG_WRITE, vaddr, iova, size);
    }
  }

  /** struct vfio_iommu_type1_dma_unmap ({@code ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL}). */
  public record VfioDmaUnmap(int flags, long iova, long size) {
    /** Everything (VFIO_DMA_UNMAP_FLAG_ALL with iova and size 0). */
    public static VfioDmaUnmap all() {
      return new VfioDmaUnmap(ModeUapi.VFIO_DMA_UNMAP_FLAG_ALL, 0, 0);
    }
  }

  /** struct vfio_iommu_type1_info with its IOVA_RANGE and DMA_AVAIL capabilities. */
  public record VfioIommuInfo(int flags, long iovaPgsizes, List<IovaRange> iovaRanges, int dmaAvail) {}

  /** struct vfio_pamu_attr as read back: the aperture and the window count. */
  public record PamuAttr(long apertureStart, long apertureEnd, int windows) {}

  /** A bound guest page table: its nested HWPT and where the hardware holds it. */
  public record SvaBinding(int hwptId, int unitId, int domainId) {}

  // ================================================================ handle

  private final ActorRef<IoasidFdActor.Command> fd;
  private final Scheduler scheduler;
  private final Executor executor;
  private final Duration timeout;

  /**
   * @param fd the fd actor
   * @param scheduler the actor system's scheduler (ask timeouts)
   * @param executor where continuations run (the system's dispatcher, or a direct executor)
   * @param timeout how long one call may take before the stage fails (an emulator fault)
   */
  public IommuFd(
      ActorRef<IoasidFdActor.Command> fd, Scheduler scheduler, Executor executor, Duration timeout) {
    this.fd = Objects.requireNonNull(fd, "fd");
    this.scheduler = Objects.requireNonNull(scheduler, "scheduler");
    this.executor = Objects.requireNonNull(executor, "executor");
    this.timeout = Objects.requireNonNull(timeout, "timeout");
  }

  /** A handle using {@code system}'s scheduler and dispatcher, with a 10 s timeout. */
  public static IommuFd of(ActorRef<IoasidFdActor.Command> fd, ActorSystem<?> system) {
    return new IommuFd(fd, system.scheduler(), system.executionContext(), Duration.ofSeconds(10));
  }

  public ActorRef<IoasidFdActor.Command> ref() {
    return fd;
  }

  Scheduler scheduler() {
    return scheduler;
  }

  Executor executor() {
    return executor;
  }

  Duration timeout() {
    return timeout;
  }

  /** Asks the fd and converts its reply: Refused → Err, an {@code ok} reply → Ok. */
  <R extends IoasidFdActor.Reply, T> CompletionStage<Outcome<T>> call(
      Function<ActorRef<IoasidFdActor.Reply>, IoasidFdActor.Command> make,
      Class<R> ok,
      Function<R, T> value) {
    return AskPattern.<IoasidFdActor.Command, IoasidFdActor.Reply>ask(
            fd, make::apply, timeout, scheduler)
        .thenApplyAsync(reply -> convert(reply, ok, value), executor);
  }

  static <R extends IoasidFdActor.Reply, T> Outcome<T> convert(
      IoasidFdActor.Reply reply, Class<R> ok, Function<R, T> value) {
    if (reply instanceof IoasidFdActor.Refused r) {
      return new Outcome.Err<>(r.errno(), r.message());
    }
    if (ok.isInstance(reply)) {
      return Outcome.ok(value.apply(ok.cast(reply)));
    }
    throw new IllegalStateException("unexpected reply " + reply + " (expected " + ok.getSimpleName() + ")");
  }

  private static <T> T none(IoasidFdActor.Done d) {
    return null;
  }

  // ================================================================ ioctls

  /** IOMMU_IOAS_ALLOC with flags 0: the new IOAS's ID. */
  public CompletionStage<Outcome<Integer>> ioasAlloc() {
    return ioasAlloc(new IoasAlloc(0));
  }

  public CompletionStage<Outcome<Integer>> ioasAlloc(IoasAlloc a) {
    return call(r -> new IoasidFdActor.IoasAlloc(a.flags(), r), IoasidFdActor.IoasAllocated.class,
        IoasidFdActor.IoasAllocated::outIoasId);
  }

  /** IOMMU_IOAS_MAP: the IOVA the mapping was placed at. */
  public CompletionStage<Outcome<Long>> ioasMap(IoasMap m) {
    return call(
        r -> new IoasidFdActor.IoasMap(m.flags(), m.ioasId(), m.userVa(), m.length(), m.iova(), r),
        IoasidFdActor.IoasMapped.class,
        IoasidFdActor.IoasMapped::iova);
  }

  /** IOMMU_IOAS_UNMAP: the bytes unmapped. */
  public CompletionStage<Outcome<Long>> ioasUnmap(IoasUnmap u) {
    return call(
        r -> new IoasidFdActor.IoasUnmap(u.ioasId(), u.iova(), u.length(), r),
        IoasidFdActor.IoasUnmapped.class,
        IoasidFdActor.IoasUnmapped::length);
  }

  /** IOMMU_IOAS_COPY: the destination IOVA. */
  public CompletionStage<Outcome<Long>> ioasCopy(IoasCopy c) {
    return call(
        r -> new IoasidFdActor.IoasCopy(
            c.flags(), c.dstIoasId(), c.srcIoasId(), c.length(), c.dstIova(), c.srcIova(), r),
        IoasidFdActor.IoasCopied.class,
        IoasidFdActor.IoasCopied::dstIova);
  }

  /** IOMMU_IOAS_IOVA_RANGES; EMSGSIZE is reported inside the result (see {@link IovaRanges}). */
  public CompletionStage<Outcome<IovaRanges>> ioasIovaRanges(IoasIovaRanges q) {
    return call(
        r -> new IoasidFdActor.IoasIovaRanges(q.ioasId(), q.numIovas(), r),
        IoasidFdActor.IovaRangesReported.class,
        x -> new IovaRanges(x.errno(), x.numIovas(), x.outIovaAlignment(), x.allowedIovas()));
  }

  /** IOMMU_IOAS_ALLOW_IOVAS. */
  public CompletionStage<Outcome<Void>> ioasAllowIovas(IoasAllowIovas a) {
    return call(
        r -> new IoasidFdActor.IoasAllowIovas(a.ioasId(), a.allowedIovas(), r),
        IoasidFdActor.Done.class,
        IommuFd::none);
  }

  /** IOMMU_OPTION: val64 (the value read, or the value set). */
  public CompletionStage<Outcome<Long>> option(IommuOption o) {
    return call(
        r -> new IoasidFdActor.Option(o.optionId(), o.op(), o.objectId(), o.val64(), r),
        IoasidFdActor.OptionValue.class,
        IoasidFdActor.OptionValue::val64);
  }

  /** IOMMU_DESTROY. */
  public CompletionStage<Outcome<Void>> destroy(int id) {
    return call(r -> new IoasidFdActor.Destroy(id, r), IoasidFdActor.Done.class, IommuFd::none);
  }

  /** IOMMU_HWPT_ALLOC: out_hwpt_id. */
  public CompletionStage<Outcome<Integer>> hwptAlloc(HwptAlloc a) {
    return call(
        r -> new IoasidFdActor.HwptAlloc(
            a.flags(), a.devId(), a.ptId(), a.dataType(), a.dataLen(), a.faultId(), r),
        IoasidFdActor.HwptAllocated.class,
        IoasidFdActor.HwptAllocated::outHwptId);
  }

  /** IOMMU_HWPT_INVALIDATE; an entry's error is reported inside the result. */
  public CompletionStage<Outcome<HwptInvalidated>> hwptInvalidate(HwptInvalidate i) {
    return call(
        r -> new IoasidFdActor.HwptInvalidate(i.hwptId(), i.dataType(), i.entryLen(), i.entries(), r),
        IoasidFdActor.HwptInvalidated.class,
        x -> new HwptInvalidated(x.entryNum(), x.errno(), x.message()));
  }

  /** IOMMU_HWPT_SET_DIRTY_TRACKING. */
  public CompletionStage<Outcome<Void>> hwptSetDirtyTracking(HwptSetDirtyTracking s) {
    return call(
        r -> new IoasidFdActor.HwptSetDirtyTracking(s.flags(), s.hwptId(), r),
        IoasidFdActor.Done.class,
        IommuFd::none);
  }

  /** IOMMU_HWPT_GET_DIRTY_BITMAP: one bit per page_size page, as u64 words. */
  public CompletionStage<Outcome<long[]>> hwptGetDirtyBitmap(HwptGetDirtyBitmap g) {
    return call(
        r -> new IoasidFdActor.HwptGetDirtyBitmap(
            g.hwptId(), g.flags(), g.iova(), g.length(), g.pageSize(), r),
        IoasidFdActor.DirtyBitmap.class,
        IoasidFdActor.DirtyBitmap::data);
  }

  /** IOMMU_GET_HW_INFO. */
  public CompletionStage<Outcome<HwInfo>> getHwInfo(GetHwInfo g) {
    return call(
        r -> new IoasidFdActor.GetHwInfo(g.flags(), g.devId(), g.dataLen(), r),
        IoasidFdActor.HwInfo.class,
        x -> new HwInfo(
            x.outDataType(), x.dataLen(), x.outCapabilities(), x.outMaxPasidLog2(),
            x.pageSizeBitmap(), x.addressWidth(), x.reservedRegions(), x.enforceCacheCoherency()));
  }

  /** IOMMU_FAULT_QUEUE_ALLOC: the FAULT's ID (its fd is addressed by it). */
  public CompletionStage<Outcome<Integer>> faultQueueAlloc(FaultAlloc a) {
    return call(
        r -> new IoasidFdActor.FaultQueueAlloc(a.flags(), r),
        IoasidFdActor.FaultQueueAllocated.class,
        IoasidFdActor.FaultQueueAllocated::outFaultId);
  }

  /** read(fault_fd, count): whole page-request groups. */
  public CompletionStage<Outcome<List<HwptPgfault>>> faultRead(int faultId, int count) {
    return call(
        r -> new IoasidFdActor.FaultRead(faultId, count, r),
        IoasidFdActor.FaultRecords.class,
        IoasidFdActor.FaultRecords::records);
  }

  /**
   * read(fault_fd, count) with the node headers the emulator adds beside the records: each group's
   * sequence and cookie, and the lost-events node when the full queue lost requests (sequence gaps
   * and that node give the exact number lost).
   */
  public CompletionStage<Outcome<IoasidFdActor.FaultRecords>> faultReadWithHeaders(
      int faultId, int count) {
    return call(
        r -> new IoasidFdActor.FaultRead(faultId, count, r),
        IoasidFdActor.FaultRecords.class,
        records -> records);
  }

  /** write(fault_fd, responses): bytes consumed. */
  public CompletionStage<Outcome<Integer>> faultWrite(int faultId, List<HwptPageResponse> responses) {
    return call(
        r -> new IoasidFdActor.FaultWrite(faultId, responses, r),
        IoasidFdActor.FaultWritten.class,
        IoasidFdActor.FaultWritten::bytes);
  }

  /** poll(fault_fd): whether a group waits to be read (EPOLLIN). */
  public CompletionStage<Outcome<Boolean>> faultPoll(int faultId) {
    return call(
        r -> new IoasidFdActor.FaultPoll(faultId, r),
        IoasidFdActor.Polled.class,
        IoasidFdActor.Polled::readable);
  }

  /** IOMMU_VIOMMU_ALLOC: out_viommu_id. */
  public CompletionStage<Outcome<Integer>> viommuAlloc(ViommuAlloc a) {
    return call(
        r -> new IoasidFdActor.ViommuAlloc(a.flags(), a.type(), a.devId(), a.hwptId(), r),
        IoasidFdActor.ViommuAllocated.class,
        IoasidFdActor.ViommuAllocated::outViommuId);
  }

  /** IOMMU_VDEVICE_ALLOC: out_vdevice_id. */
  public CompletionStage<Outcome<Integer>> vdeviceAlloc(VdeviceAlloc a) {
    return call(
        r -> new IoasidFdActor.VdeviceAlloc(a.viommuId(), a.devId(), a.virtId(), r),
        IoasidFdActor.VdeviceAllocated.class,
        IoasidFdActor.VdeviceAllocated::outVdeviceId);
  }

  /** IOMMU_VEVENTQ_ALLOC: out_veventq_id. */
  public CompletionStage<Outcome<Integer>> veventqAlloc(VeventqAlloc a) {
    return call(
        r -> new IoasidFdActor.VeventqAlloc(a.flags(), a.viommuId(), a.type(), a.veventqDepth(), r),
        IoasidFdActor.VeventqAllocated.class,
        IoasidFdActor.VeventqAllocated::outVeventqId);
  }

  /** read(veventq_fd, count): the events that fit whole. */
  public CompletionStage<Outcome<List<Vevent>>> veventqRead(int veventqId, int count) {
    return call(
        r -> new IoasidFdActor.VeventqRead(veventqId, count, r),
        IoasidFdActor.VeventsRead.class,
        IoasidFdActor.VeventsRead::events);
  }

  // ================================================================ the modes' ioctls

  /** IOMMU_VFIO_IOAS ({@code ModeUapi.VFIO_IOAS_GET/SET/CLEAR}): the compat IOAS's ID. */
  public CompletionStage<Outcome<Integer>> vfioIoas(int op, int ioasId) {
    return call(r -> new IoasidFdActor.VfioIoas(op, ioasId, r), IoasidFdActor.VfioIoasId.class,
        IoasidFdActor.VfioIoasId::ioasId);
  }

  /** VFIO_SET_IOMMU ({@code ModeUapi.VFIO_TYPE1_IOMMU}, {@code TYPE1v2}, {@code FSL_PAMU}). */
  public CompletionStage<Outcome<Void>> vfioSetIommu(int type) {
    return call(r -> new IoasidFdActor.VfioSetIommu(type, r), IoasidFdActor.Done.class, IommuFd::none);
  }

  /** VFIO_CHECK_EXTENSION: its return value. */
  public CompletionStage<Outcome<Integer>> vfioCheckExtension(int extension) {
    return call(r -> new IoasidFdActor.VfioCheckExtension(extension, r), IoasidFdActor.VfioExtension.class,
        IoasidFdActor.VfioExtension::value);
  }

  /** VFIO_IOMMU_GET_INFO. */
  public CompletionStage<Outcome<VfioIommuInfo>> vfioGetInfo() {
    return call(IoasidFdActor.VfioIommuGetInfo::new, IoasidFdActor.VfioIommuInfo.class,
        x -> new VfioIommuInfo(x.flags(), x.iovaPgsizes(), x.iovaRanges(), x.dmaAvail()));
  }

  /** VFIO_IOMMU_MAP_DMA (type1, or whole windows on a PAMU container). */
  public CompletionStage<Outcome<Void>> vfioMapDma(VfioDmaMap m) {
    return call(r -> new IoasidFdActor.VfioMapDma(m.flags(), m.vaddr(), m.iova(), m.size(), r),
        IoasidFdActor.Done.class, IommuFd::none);
  }

  /** VFIO_IOMMU_UNMAP_DMA: the size unmapped. */
  public CompletionStage<Outcome<Long>> vfioUnmapDma(VfioDmaUnmap u) {
    return call(r -> new IoasidFdActor.VfioUnmapDma(u.flags(), u.iova(), u.size(), r),
        IoasidFdActor.VfioDmaUnmapped.class, IoasidFdActor.VfioDmaUnmapped::size);
  }

  /** VFIO_IOMMU_PAMU_GET_ATTR ({@code ModeUapi.VFIO_ATTR_GEOMETRY} or {@code WINDOWS}). */
  public CompletionStage<Outcome<PamuAttr>> pamuGetAttr(int attribute) {
    return call(r -> new IoasidFdActor.PamuGetAttr(attribute, r), IoasidFdActor.PamuAttr.class,
        x -> new PamuAttr(x.apertureStart(), x.apertureEnd(), x.windows()));
  }

  /** VFIO_IOMMU_PAMU_SET_ATTR(GEOMETRY): the aperture {@code [start, end]}. */
  public CompletionStage<Outcome<Void>> pamuSetGeometry(long apertureStart, long apertureEnd) {
    return call(r -> new IoasidFdActor.PamuSetAttr(ModeUapi.VFIO_ATTR_GEOMETRY, apertureStart, apertureEnd, 0, r),
        IoasidFdActor.Done.class, IommuFd::none);
  }

  /** VFIO_IOMMU_PAMU_SET_ATTR(WINDOWS). */
  public CompletionStage<Outcome<Void>> pamuSetWindows(int windows) {
    return call(r -> new IoasidFdActor.PamuSetAttr(ModeUapi.VFIO_ATTR_WINDOWS, 0, 0, windows, r),
        IoasidFdActor.Done.class, IommuFd::none);
  }

  /** VFIO_IOMMU_PAMU_SET_ATTR with any attribute (tests of the unknown one). */
  public CompletionStage<Outcome<Void>> pamuSetAttr(int attribute, long apertureStart, long apertureEnd, int windows) {
    return call(r -> new IoasidFdActor.PamuSetAttr(attribute, apertureStart, apertureEnd, windows, r),
        IoasidFdActor.Done.class, IommuFd::none);
  }

  /** VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT. */
  public CompletionStage<Outcome<Integer>> pamuGetMsiBankCount() {
    return call(IoasidFdActor.PamuGetMsiBankCount::new, IoasidFdActor.PamuMsiBankCount.class,
        IoasidFdActor.PamuMsiBankCount::count);
  }

  /** VFIO_IOMMU_PAMU_MAP_MSI_BANK: the MSI address (iova) devices must use for the bank. */
  public CompletionStage<Outcome<Long>> pamuMapMsiBank(int flags, int bankIndex, long iova) {
    return call(r -> new IoasidFdActor.PamuMapMsiBank(flags, bankIndex, iova, r),
        IoasidFdActor.PamuMsiBankMapped.class, IoasidFdActor.PamuMsiBankMapped::msiIova);
  }

  /** VFIO_IOMMU_PAMU_UNMAP_MSI_BANK. */
  public CompletionStage<Outcome<Void>> pamuUnmapMsiBank(long iova) {
    return call(r -> new IoasidFdActor.PamuUnmapMsiBank(iova, r), IoasidFdActor.Done.class, IommuFd::none);
  }

  /** IOASID_ALLOC: a PASID of this VM. */
  public CompletionStage<Outcome<Integer>> ioasidAlloc() {
    return call(IoasidFdActor.SvaPasidAlloc::new, IoasidFdActor.SvaPasid.class, IoasidFdActor.SvaPasid::pasid);
  }

  /** IOASID_FREE. */
  public CompletionStage<Outcome<Void>> ioasidFree(int pasid) {
    return call(r -> new IoasidFdActor.SvaPasidFree(pasid, r), IoasidFdActor.Done.class, IommuFd::none);
  }

  /** IOASID_CREATE_NESTING with software nesting: the software-nested HWPT's ID. */
  public CompletionStage<Outcome<Integer>> ioasidCreateNesting(int devId, int parentIoasId) {
    return call(r -> new IoasidFdActor.IoasidCreateNesting(devId, parentIoasId, r),
        IoasidFdActor.HwptAllocated.class, IoasidFdActor.HwptAllocated::outHwptId);
  }

  /** The guest maps {@code [giova, +length)} → {@code gpa} in a software-nested space. */
  public CompletionStage<Outcome<Void>> softNestMap(int hwptId, long giova, long gpa, long length, int prot) {
    return call(r -> new IoasidFdActor.SoftNestMap(hwptId, giova, gpa, length, prot, r),
        IoasidFdActor.Done.class, IommuFd::none);
  }

  /** The guest unmaps whole entries of a software-nested space: the bytes unmapped. */
  public CompletionStage<Outcome<Long>> softNestUnmap(int hwptId, long giova, long length) {
    return call(r -> new IoasidFdActor.SoftNestUnmap(hwptId, giova, length, r),
        IoasidFdActor.SoftNestUnmapped.class, IoasidFdActor.SoftNestUnmapped::length);
  }

  /** close(fd): every object destroyed, every pin released. */
  public CompletionStage<Outcome<IoasidFdActor.Closed>> close() {
    return call(IoasidFdActor.Close::new, IoasidFdActor.Closed.class, c -> c);
  }

  /** What became of every fault record the units' pipelines delivered to this fd (tooling). */
  public CompletionStage<IoasidFdActor.FaultStats> faultStats() {
    return call(IoasidFdActor.GetFaultStats::new, IoasidFdActor.FaultStats.class, s -> s)
        .thenApplyAsync(Outcome::value, executor);
  }

  /** The fd's state as values (tests, tooling). */
  public CompletionStage<FdSnapshot> snapshot() {
    return call(IoasidFdActor.GetSnapshot::new, IoasidFdActor.Snapshotted.class,
        IoasidFdActor.Snapshotted::snapshot)
        .thenApplyAsync(Outcome::value, executor);
  }
}
