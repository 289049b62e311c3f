package io.iommulab.host.cli;

import com.typesafe.config.ConfigFactory;
import io.iommulab.host.scenario.SyntheticEngine;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;

/**
 * TEST ONLY: the command line with the synthetic test engine (in real time) and the test
 * scenarios, as a main, for tests that need a process of their own (killed mid-run, or Kamon's
 * instrumentation kept out of the test JVM).
 */
public final class SyntheticCliMain {
  private SyntheticCliMain() {}

  public static void main(String[] args) {
    IommulabCli.Environment env = new IommulabCli.Environment(
        System.out, System.err,
        new ScenarioCatalog(SyntheticCliMain.class.getClassLoader(), "test-scenarios"),
        () -> List.of(new SyntheticEngine(new SyntheticEngine.Options().realTime())),
        ConfigFactory::load, Clock.systemUTC(), Path.of("").toAbsolutePath(), false);
    System.exit(IommulabCli.execute(env, args));
  }

  /** A process running this main with {@code args}, its output going to {@code log}. */
  static Process start(Path log, String... args) throws java.io.IOException {
    List<String> command = new java.util.ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx512m", "-Djava.util.concurrent.ForkJoinPool.common.parallelism=4",
        "-cp", System.getProperty("java.class.path"), SyntheticCliMain.class.getName()));
    command.addAll(List.of(args));
    return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
  }
}
