package io.iommulab.hardware;

import java.util.Objects;
import java.util.function.Function;

/**
 * The result of a model operation a guest can get wrong: a value, or an errno with a message
 * naming the argument at fault. A refused operation leaves the model unchanged; that is the
 * contract of every method returning an {@code Outcome}. Bugs are not outcomes: they throw.
 *
 * @param <T> the value type; {@code Void} for operations with nothing to return
 */
public sealed interface Outcome<T> permits Outcome.Ok, Outcome.Err {

  /** The shared success of operations that return nothing. */
  Outcome<Void> OK = new Ok<>(null);

  record Ok<T>(T value) implements Outcome<T> {}

  record Err<T>(Errno errno, String message) implements Outcome<T> {
    public Err {
      Objects.requireNonNull(errno, "errno");
      Objects.requireNonNull(message, "message");
    }

    /** The same error, retyped: an error carries no value, so this is safe. */
    @SuppressWarnings("unchecked")
    public <U> Err<U> cast() {
      return (Err<U>) this;
    }

    @Override
    public String toString() {
      return errno + ": " + message;
    }
  }

  static <T> Outcome<T> ok(T value) {
    return new Ok<>(value);
  }

  static Outcome<Void> ok() {
    return OK;
  }

  /** An error whose message is {@code String.format(format, args)}. */
  static <T> Outcome<T> err(Errno errno, String format, Object... args) {
    return new Err<>(errno, args.length == 0 ? format : String.format(format, args));
  }

  default boolean isOk() {
    return this instanceof Ok;
  }

  /** The value; calling it on an error is a bug. */
  default T value() {
    if (this instanceof Ok<T> ok) {
      return ok.value();
    }
    throw new IllegalStateException("no value: " + this);
  }

  /** The errno, or null on success. */
  default Errno errnoOrNull() {
    return this instanceof Err<T> e ? e.errno() : null;
  }

  default <U> Outcome<U> map(Function<? super T, ? extends U> f) {
    if (this instanceof Ok<T> ok) {
      return new Ok<>(f.apply(ok.value()));
    }
    return ((Err<T>) this).cast();
  }

  default <U> Outcome<U> flatMap(Function<? super T, Outcome<U>> f) {
    if (this instanceof Ok<T> ok) {
      return f.apply(ok.value());
    }
    return ((Err<T>) this).cast();
  }
}
