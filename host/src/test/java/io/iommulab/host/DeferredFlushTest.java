package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.actors.device.DeviceActor;
import io.iommulab.actors.memory.HostMemoryActor;
import io.iommulab.actors.msi.MsiBankActor;
import io.iommulab.actors.unit.IommuUnitActor;
import io.iommulab.actors.vm.VmActor;
import io.iommulab.config.FaultPipelineSettings;
import io.iommulab.config.InvalidationPipelineSettings;
import io.iommulab.config.IommuUnitSettings;
import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import io.iommulab.hardware.ModeledClock;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.cost.CostModel;
import io.iommulab.hardware.memory.DmaCheck;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.BehaviorInterceptor;
import org.apache.pekko.actor.typed.TypedActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

/**
 * One deferred unmap, step by step, on a host whose flush queue never flushes by itself (a 10 s
 * timeout, room for 4096 entries): only a synchronous request (the detach) flushes it. The unmap
 * returns at once; until the flush the IOVA stays taken (a map there is EEXIST) and the frames
 * stay pinned, so DMA through the still-cached translation is a legal hit in the flush window,
 * never a hit on an unpinned frame. A planted unit that reports its flush before running it (what
 * an fd unpinning at Unmapped instead of at FlushCompleted amounts to) makes the oracle fail the
 * run: UNPINNED_FRAME, so the deferred oracle can fail.
 */
class DeferredFlushTest {

  static final long MIB = 1L << 20;
  static final long BUFFER = 64 * 1024;
  static final String DEVICE = "nic1"; // vtd1, no ATS: every DMA is translated by the unit
  static final long SEED = 0x4A11_0010L;

  static Config config() {
    return ConfigFactory.parseString(
            "iommulab.host.seed = " + SEED + "\n"
                + "iommulab.pipeline.invalidation { mode = deferred, flush-timeout = 10s,"
                + " flush-entries = 4096 }")
        .withFallback(ConfigFactory.load())
        .resolve();
  }

  static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  /** Asks the VM's state until {@code done} holds (each round is an answer; no sleeping). */
  static VmActor.VmState stateUntil(Host.Vm vm, Predicate<VmActor.VmState> done) throws Exception {
    for (int i = 0; i < 100_000; i++) {
      VmActor.VmState s = await(vm.state()).value();
      if (done.test(s)) {
        return s;
      }
    }
    return fail("the VM's state never reached the expected condition");
  }

  static VmActor.DmaDone dma(Host.Vm vm, long iova) throws Exception {
    long[] iovas = {iova, iova + 4096, iova + 2 * 4096};
    return await(vm.dma(DEVICE, IommuUnitActor.NO_PASID, iovas, new int[] {64, 64, 64},
        new int[] {Access.WRITE, Access.READ, Access.WRITE})).value();
  }

  static IommuUnitActor.InvalidationStats vtd1Stats(Host host) throws Exception {
    for (HostGuardian.UnitEntry u : await(host.topology()).units()) {
      if (u.name().equals("vtd1")) {
        return await(AskPattern.<IommuUnitActor.Command, IommuUnitActor.InvalidationStats>ask(
            u.unit(), IommuUnitActor.GetInvalidationStats::new, Duration.ofSeconds(10),
            host.system().scheduler()));
      }
    }
    return fail("no vtd1");
  }

  @Test
  void aDeferredUnmapKeepsTheIovaAndThePinsUntilTheFlushWhileDmaHitsTheWindow() throws Exception {
    System.out.println("DeferredFlushTest: seed " + SEED);
    try (Host host = Host.start("DeferredFlush", config(), new ManualClock(), FaultInjector.NONE,
        HostParts.REAL)) {
      Host.Vm vm = await(host.createVm(1, 32 * MIB, PageSize.SIZE_2M, List.of(DEVICE))).value();
      int fd = await(vm.openFd()).value();
      int ioas = await(vm.allocIoas(fd)).value();
      assertTrue(await(vm.bind(fd, DEVICE)).isOk());
      assertTrue(await(vm.attach(fd, DEVICE, ioas)).isOk());
      long iova = await(vm.map(fd, ioas, 0, BUFFER, VmActor.AUTO_IOVA, Access.READ_WRITE)).value();
      assertEquals(3, dma(vm, iova).completed(), "the first DMA fills the IOTLB");

      VmActor.BufferUnmapped unmapped = await(vm.unmap(fd, ioas, iova, BUFFER)).value();
      assertEquals(BUFFER, unmapped.bytes());
      assertEquals(1, await(vm.state()).value().buffersAwaitingFlush(), "returned before the flush");
      assertEquals(1, vtd1Stats(host).deferredUnflushed());

      // DMA through the IOTLB entry the flush has not dropped yet: a legal hit in the window, on
      // frames still pinned.
      VmActor.DmaDone inWindow = dma(vm, iova);
      assertEquals(3, inWindow.completed(), "served from the IOTLB the flush has not reached");
      assertEquals(0, inWindow.staleViolations());
      IommuUnitActor.InvalidationStats stats = vtd1Stats(host);
      assertEquals(3, stats.staleHitsInWindow());
      assertEquals(0, stats.staleHitViolations());
      assertEquals(3, await(vm.state()).value().oracle().toleratedStaleHits());

      // The IOVA is not free before the flush: a fixed map there is refused (after the DMA above:
      // the VM's oracle stops judging a range once a map of it is issued).
      assertEquals(Errno.EEXIST,
          await(vm.map(fd, ioas, 0, BUFFER, iova, Access.READ_WRITE)).errnoOrNull());
      assertEquals(1, await(vm.state()).value().buffersAwaitingFlush());

      // A detach is synchronous: it flushes the queue at once, and the area is released.
      assertTrue(await(vm.detach(fd, DEVICE)).isOk());
      VmActor.VmState flushed = stateUntil(vm, s -> s.buffersAwaitingFlush() == 0);
      assertEquals(1, flushed.flushesObserved());
      assertEquals(0, vtd1Stats(host).deferredUnflushed());
      assertEquals(iova, await(vm.map(fd, ioas, 0, BUFFER, iova, Access.READ_WRITE)).value(),
          "after the flush the IOVA is free again");

      HostGuardian.HostReport report = await(host.shutdown());
      assertEquals(0, report.unpinnedFrameViolations());
      assertEquals(0, report.staleViolations());
      assertTrue(report.clean(), report.leaks() + " " + report.failures());
    }
  }

  @Test
  void aUnitThatReportsItsFlushBeforeRunningItMakesTheOracleSeeDmaOnUnpinnedFrames() throws Exception {
    System.out.println("DeferredFlushTest planted: seed " + SEED);
    try (Host host = Host.start("DeferredFlushPlanted", config(), new ManualClock(),
        FaultInjector.NONE, new EarlyFlushParts())) {
      Host.Vm vm = await(host.createVm(1, 32 * MIB, PageSize.SIZE_2M, List.of(DEVICE))).value();
      int fd = await(vm.openFd()).value();
      int ioas = await(vm.allocIoas(fd)).value();
      assertTrue(await(vm.bind(fd, DEVICE)).isOk());
      assertTrue(await(vm.attach(fd, DEVICE, ioas)).isOk());
      long iova = await(vm.map(fd, ioas, 0, BUFFER, VmActor.AUTO_IOVA, Access.READ_WRITE)).value();
      assertEquals(3, dma(vm, iova).completed());
      await(vm.unmap(fd, ioas, iova, BUFFER)).value();
      // The lie reached the fd: it released the area and unpinned its frames (then told the VM).
      stateUntil(vm, s -> s.buffersAwaitingFlush() == 0);
      assertEquals(1, vtd1Stats(host).deferredUnflushed(), "the real invalidation is still queued");
      VmActor.DmaDone stale = dma(vm, iova);
      assertEquals(3, stale.completed(), "the IOTLB still translates the unmapped IOVA");

      HostGuardian.HostReport report = await(host.shutdown());
      assertEquals(3, report.unpinnedFrameViolations(), "every access reached a frame no one pins");
      assertEquals(DmaCheck.UNPINNED_FRAME, report.memory().violations().get(0).kind());
      assertFalse(report.clean(), "an UNPINNED_FRAME fails the run");
    }
  }

  /**
   * Real units, each behind an interceptor that answers a deferred unmap's flush at once — before
   * the unit has invalidated anything — and swallows the real report later: the planted bug.
   */
  static final class EarlyFlushParts implements HostParts {
    @Override
    public Behavior<IommuUnitActor.Command> unit(
        int unitId,
        IommuUnitSettings settings,
        CostModel cost,
        ModeledClock clock,
        long seed,
        FaultInjector injector,
        ActorRef<HostMemoryActor.Command> memory,
        Map<Integer, ActorRef<MsiBankActor.Command>> msiBanks,
        InvalidationPipelineSettings invalidation,
        FaultPipelineSettings faultPipeline,
        LongSupplier wallNanos) {
      Behavior<IommuUnitActor.Command> real = HostParts.super.unit(unitId, settings, cost, clock,
          seed, injector, memory, msiBanks, invalidation, faultPipeline, wallNanos);
      return Behaviors.intercept(() -> new EarlyFlush(unitId), real);
    }
  }

  static final class EarlyFlush
      extends BehaviorInterceptor<IommuUnitActor.Command, IommuUnitActor.Command> {
    private final int unitId;

    EarlyFlush(int unitId) {
      super(IommuUnitActor.Command.class);
      this.unitId = unitId;
    }

    @Override
    public Behavior<IommuUnitActor.Command> aroundReceive(
        TypedActorContext<IommuUnitActor.Command> ctx,
        IommuUnitActor.Command msg,
        ReceiveTarget<IommuUnitActor.Command> target) {
      if (msg instanceof IommuUnitActor.Correlated c && c.unmap() != null
          && c.unmap().flushTo() != null) {
        IommuUnitActor.UnmapRange u = c.unmap();
        ActorRef<Object> liar = ctx.asJava().spawnAnonymous(liar(unitId, c.replyTo(), u.flushTo()));
        return target.apply(ctx, new IommuUnitActor.Correlated(c.corr(), null,
            new IommuUnitActor.UnmapRange(u.domainId(), u.iova(), u.length(),
                liar.<IommuUnitActor.FlushCompleted>narrow(), null),
            liar.<IommuUnitActor.Answer>narrow()));
      }
      return target.apply(ctx, msg);
    }
  }

  /** Forwards the unit's answer; when it is a deferred unmap, reports its flush at once (the lie). */
  static Behavior<Object> liar(
      int unitId, ActorRef<IommuUnitActor.Answer> answerTo,
      ActorRef<IommuUnitActor.FlushCompleted> flushTo) {
    return Behaviors.receive(Object.class)
        .onMessage(IommuUnitActor.Answer.class, a -> {
          answerTo.tell(a);
          if (a.unmapped() == null || !a.unmapped().deferred()) {
            return Behaviors.stopped();
          }
          flushTo.tell(new IommuUnitActor.FlushCompleted(unitId, new long[] {a.unmapped().flushToken()}, 0));
          return Behaviors.same(); // the real report comes later: swallowed
        })
        .onMessage(IommuUnitActor.FlushCompleted.class, f -> Behaviors.stopped())
        .build();
  }
}
