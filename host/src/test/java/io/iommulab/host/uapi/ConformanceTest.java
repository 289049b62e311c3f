package io.iommulab.host.uapi;

import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInstance;

/**
 * A conformance test class: one actor system for the class (starting one per test would dominate
 * the run), a fresh host {@code f} and its fd {@code fd} for every test, and the host-memory
 * oracle checked after every test, so that no test can leave a bad pin behind unnoticed.
 *
 * <p>One instance per class, so the actor system can belong to the class without a static field
 * that subclasses would share; the per-test state is only {@code f} and {@code fd}, set anew before
 * each test.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ConformanceTest<F extends ConformanceTest.Host> {

  /** What every conformance host offers the base: its fd, and the oracle over its pins. */
  interface Host {
    IommuFd fd();

    void assertNoHostBugs();
  }

  final ActorTestKit kit = ActorTestKit.create();

  F f;
  IommuFd fd;

  /** The host a test starts on. */
  abstract F open();

  /** Replaces the test's host, for a test that needs another than {@link #open()} gives. */
  final void use(F host) {
    f = host;
    fd = host.fd();
  }

  @BeforeEach
  final void openHost() {
    use(open());
  }

  @AfterEach
  final void hostSawNoPinBugs() {
    f.assertNoHostBugs();
  }

  @AfterAll
  final void shutdown() {
    kit.shutdownTestKit();
  }
}
