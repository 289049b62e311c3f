package io.iommulab.actors;

import java.time.Duration;
import java.util.concurrent.Executor;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * {@code context.ask} without the 2-CPU pitfall (pekko-kamon.md §2). The Java DSL's {@code
 * ActorContext.ask} pipes the answer to the actor through a {@code CompletionStage} continuation
 * that runs on the JDK's default async executor; on a machine with two CPUs the common pool has
 * parallelism 1, so the JDK starts a new thread for every answer (measured: a map+unmap through
 * an fd with a domain spent most of its time creating threads). Here the continuation runs on the
 * thread that completes the ask — the answering actor's, inside its tell — and only builds the
 * message and tells it to the asking actor, which is thread-safe.
 */
public final class Asks {
  private Asks() {}

  /** Runs the continuation where the ask completes: it only builds a message and tells it. */
  private static final Executor DIRECT = Runnable::run;

  /**
   * Asks {@code target} with the request {@code createRequest} builds; the answer (or the
   * failure, e.g. the timeout) is turned into a message by {@code applyToResponse} and sent to
   * {@code context}'s actor, as {@code ActorContext.ask} does. {@code applyToResponse} runs
   * outside the actor: it must only build the message.
   */
  public static <T, Req, Res> void ask(
      ActorContext<T> context,
      RecipientRef<Req> target,
      Duration timeout,
      Function<ActorRef<Res>, Req> createRequest,
      BiFunction<Res, Throwable, T> applyToResponse) {
    ActorRef<T> self = context.getSelf();
    AskPattern.<Req, Res>ask(target, createRequest::apply, timeout, context.getSystem().scheduler())
        .whenCompleteAsync((reply, failure) -> self.tell(applyToResponse.apply(reply, failure)), DIRECT);
  }
}
