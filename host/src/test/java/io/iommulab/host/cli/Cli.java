package io.iommulab.host.cli;

import com.typesafe.config.ConfigFactory;
import io.iommulab.host.scenario.ScenarioEngine;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;

/** Runs the command line in-process with captured output, the test scenarios and given engines. */
final class Cli {
  static final Instant NOW = Instant.parse("2026-11-21T12:00:00Z");

  /** What a command printed and returned. */
  record Result(int exit, String out, String err) {}

  private Cli() {}

  static Result run(Path workingDirectory, List<ScenarioEngine> engines, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    IommulabCli.Environment env = new IommulabCli.Environment(
        new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8),
        new ScenarioCatalog(Cli.class.getClassLoader(), "test-scenarios"),
        () -> engines,
        ConfigFactory::load,
        Clock.fixed(NOW, ZoneOffset.UTC),
        workingDirectory,
        false);
    int exit = IommulabCli.execute(env, args);
    return new Result(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }
}
