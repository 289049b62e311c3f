package io.iommulab.host.uapi;

import io.iommulab.actors.fd.IoasidFdActor;
import io.iommulab.actors.fd.model.FdSnapshot;
import io.iommulab.actors.fd.model.HwptPageResponse;
import io.iommulab.actors.fd.model.HwptPgfault;
import io.iommulab.actors.fd.model.InvalidationEntry;
import io.iommulab.actors.fd.model.IovaRange;
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

  /** struct iommu_hw_info as written back. */
  public record HwInfo(
      int outDataType,
      int dataLen,
      long outCapabilities,
      int outMaxPasidLog2,
      long pageSizeBitmap,
      int addressWidth,
      List<IovaRange> reservedRegions) {}

  /** struct iommu_fault_alloc. */
  public record FaultAlloc(int flags) {}

  /** struct iommu_viommu_alloc. */
  public record ViommuAlloc(int flags, int type, int devId, int hwptId) {}

  /** struct iommu_vdevice_alloc. */
  public record VdeviceAlloc(int viommuId, int devId, long virtId) {}

  /** struct iommu_veventq_alloc. */
  public record VeventqAlloc(int flags, int viommuId, int type, int veventqDepth) {}

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
            x.pageSizeBitmap(), x.addressWidth(), x.reservedRegions()));
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

  /** close(fd): every object destroyed, every pin released. */
  public CompletionStage<Outcome<IoasidFdActor.Closed>> close() {
    return call(IoasidFdActor.Close::new, IoasidFdActor.Closed.class, c -> c);
  }

  /** The fd's state as values (tests, tooling). */
  public CompletionStage<FdSnapshot> snapshot() {
    return call(IoasidFdActor.GetSnapshot::new, IoasidFdActor.Snapshotted.class,
        IoasidFdActor.Snapshotted::snapshot)
        .thenApplyAsync(Outcome::value, executor);
  }
}
