package io.iommulab.loadtest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The message pattern of one uAPI map+unmap pair with the model taken out: what a pair costs in
 * Pekko alone, the ceiling of {@code map+unmap pairs / raw ask} by construction. Per pair, as the
 * real path: two asks to an fd actor; the map goes fd → unit (a correlated tell, answered through a
 * message adapter) and the fd tells the memory actor of the pin; the unmap goes fd → unit, the
 * unit offers a request to its stream ({@code Source.queue → batch → map → mapAsync(1)}), the
 * stream hands the batch back to the unit (a tell carrying a future), the unit answers every
 * request of the batch to its fd and completes the future, the fd tells the memory actor of the
 * unpin and replies. Every actor does nothing else: no model, no metrics, no bookkeeping beyond
 * the correlation the real actors keep.
 */
final class PairSkeleton {
  private PairSkeleton() {}

  // ---------------------------------------------------------------- messages

  interface FdMsg {}

  record Map1(ActorRef<Object> replyTo) implements FdMsg {}

  record Unmap1(ActorRef<Object> replyTo) implements FdMsg {}

  record Answered(long corr) implements FdMsg {}

  interface UnitMsg {}

  record MapCmd(long corr, ActorRef<Long> replyTo) implements UnitMsg {}

  record UnmapCmd(long corr, ActorRef<Long> replyTo) implements UnitMsg {}

  record Execute(List<Request> batch, CompletableFuture<Done> done) implements UnitMsg {}

  record Request(long corr, ActorRef<Long> replyTo) {}

  record Pins(int vm, boolean pin) {}

  // ---------------------------------------------------------------- actors

  static final class Fd extends AbstractBehavior<FdMsg> {
    private final ActorRef<UnitMsg> unit;
    private final ActorRef<Pins> memory;
    private final ActorRef<Long> answers;
    private final Map<Long, ActorRef<Object>> pending = new HashMap<>();
    private final Map<Long, Boolean> kind = new HashMap<>();
    private final int vm;
    private long corr;

    Fd(ActorContext<FdMsg> ctx, int vm, ActorRef<UnitMsg> unit, ActorRef<Pins> memory) {
      super(ctx);
      this.vm = vm;
      this.unit = unit;
      this.memory = memory;
      this.answers = ctx.messageAdapter(Long.class, Answered::new);
    }

    @Override
    public Receive<FdMsg> createReceive() {
      return newReceiveBuilder()
          .onMessage(Map1.class, m -> {
            memory.tell(new Pins(vm, true));
            long c = ++corr;
            pending.put(c, m.replyTo());
            kind.put(c, Boolean.TRUE);
            unit.tell(new MapCmd(c, answers));
            return this;
          })
          .onMessage(Unmap1.class, m -> {
            long c = ++corr;
            pending.put(c, m.replyTo());
            kind.put(c, Boolean.FALSE);
            unit.tell(new UnmapCmd(c, answers));
            return this;
          })
          .onMessage(Answered.class, a -> {
            ActorRef<Object> to = pending.remove(a.corr());
            if (!kind.remove(a.corr())) {
              memory.tell(new Pins(vm, false));
            }
            to.tell(a.corr());
            return this;
          })
          .build();
    }
  }

  static final class Unit extends AbstractBehavior<UnitMsg> {
    private final BoundedSourceQueue<Request> queue;

    Unit(ActorContext<UnitMsg> ctx) {
      super(ctx);
      ActorRef<UnitMsg> self = ctx.getSelf();
      this.queue = Source.<Request>queue(1024)
          .<List<Request>>batch(256, r -> {
            List<Request> l = new ArrayList<>();
            l.add(r);
            return l;
          }, (l, r) -> {
            l.add(r);
            return l;
          })
          .map(l -> l)
          .mapAsync(1, l -> {
            CompletableFuture<Done> done = new CompletableFuture<>();
            self.tell(new Execute(l, done));
            return done;
          })
          .to(Sink.ignore())
          .run(Materializer.createMaterializer(ctx));
    }

    @Override
    public Receive<UnitMsg> createReceive() {
      return newReceiveBuilder()
          .onMessage(MapCmd.class, m -> {
            m.replyTo().tell(m.corr());
            return this;
          })
          .onMessage(UnmapCmd.class, m -> {
            if (!queue.offer(new Request(m.corr(), m.replyTo())).isEnqueued()) {
              throw new IllegalStateException("skeleton queue full");
            }
            return this;
          })
          .onMessage(Execute.class, e -> {
            for (Request r : e.batch()) {
              r.replyTo().tell(r.corr());
            }
            e.done().complete(Done.getInstance());
            return this;
          })
          .build();
    }
  }

  static Behavior<Pins> memory() {
    long[] pins = new long[1];
    return Behaviors.receive(Pins.class).onMessage(Pins.class, p -> {
      pins[0] += p.pin() ? 1 : -1;
      return Behaviors.same();
    }).build();
  }

  // ---------------------------------------------------------------- the host

  /** {@code fds} fd actors over {@code units} unit actors and one memory actor. */
  static List<ActorRef<FdMsg>> start(ActorSystem<?> system, int fds, int units) {
    ActorRef<Pins> memory = system.systemActorOf(memory(), "skeleton-memory", Props.empty());
    List<ActorRef<UnitMsg>> us = new ArrayList<>();
    for (int u = 0; u < units; u++) {
      us.add(system.systemActorOf(Behaviors.setup(Unit::new), "skeleton-unit-" + u, Props.empty()));
    }
    List<ActorRef<FdMsg>> out = new ArrayList<>();
    for (int i = 0; i < fds; i++) {
      int vm = i;
      ActorRef<UnitMsg> unit = us.get(i * units / fds);
      out.add(system.systemActorOf(Behaviors.setup(ctx -> new Fd(ctx, vm, unit, memory)),
          "skeleton-fd-" + i, Props.empty()));
    }
    return out;
  }

  /** One pair: the map's ask, then from its reply the unmap's ask. */
  static CompletionStage<Object> pair(ActorSystem<?> system, ActorRef<FdMsg> fd,
      java.util.concurrent.Executor direct) {
    Duration t = Duration.ofSeconds(30);
    return AskPattern.<FdMsg, Object>ask(fd, Map1::new, t, system.scheduler())
        .thenComposeAsync(m -> AskPattern.<FdMsg, Object>ask(fd, Unmap1::new, t, system.scheduler()), direct);
  }
}
