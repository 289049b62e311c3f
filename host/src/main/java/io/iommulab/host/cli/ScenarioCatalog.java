package io.iommulab.host.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import io.iommulab.config.SettingsException;
import io.iommulab.config.scenario.ScenarioOverrides;
import io.iommulab.config.scenario.ScenarioSettings;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Where scenarios come from: the bundled ones, on the class path under {@code scenarios/}
 * ({@code scenarios/index} lists their names, one per line, {@code #} starting a comment; each is
 * {@code scenarios/<name>.conf}), or any file by path. The load-tests module ships the bundled
 * scenarios, so its class path is where {@code iommulab run default} finds them.
 */
public final class ScenarioCatalog {
  /** The class-path folder of the bundled scenarios. */
  public static final String FOLDER = "scenarios";

  private final ClassLoader loader;
  private final String folder;

  public ScenarioCatalog(ClassLoader loader, String folder) {
    this.loader = Objects.requireNonNull(loader, "loader");
    this.folder = Objects.requireNonNull(folder, "folder");
  }

  /** The bundled scenarios on the class path of this class. */
  public static ScenarioCatalog bundled() {
    return new ScenarioCatalog(ScenarioCatalog.class.getClassLoader(), FOLDER);
  }

  /**
   * One bundled scenario.
   *
   * @param name its name ({@code iommulab run NAME})
   * @param description its one-line description, or why it could not be read
   */
  public record Entry(String name, String description) {}

  /** The names in the index, in its order (empty without an index). */
  public List<String> names() {
    List<String> names = new ArrayList<>();
    try (InputStream in = loader.getResourceAsStream(folder + "/index")) {
      if (in == null) {
        return names;
      }
      BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
      for (String line = r.readLine(); line != null; line = r.readLine()) {
        String t = line.replaceFirst("#.*", "").trim();
        if (!t.isEmpty()) {
          names.add(t);
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + folder + "/index", e);
    }
    return names;
  }

  /** Every bundled scenario with its description (read, not validated). */
  public List<Entry> list() {
    List<Entry> out = new ArrayList<>();
    for (String name : names()) {
      String description;
      try {
        Config c = parseResource(name);
        description = c.hasPath("scenario.description") ? c.getString("scenario.description") : "(no description)";
      } catch (ConfigException | Source.NotFound e) {
        description = "(unreadable: " + e.getMessage() + ")";
      }
      out.add(new Entry(name, description));
    }
    return out;
  }

  /**
   * A scenario's text, parsed but not validated.
   *
   * @param name the scenario's name (results are named after it)
   * @param file the parsed file
   * @param origin where it came from ({@code bundled scenario default}, a path)
   */
  public record Source(String name, Config file, String origin) {
    /** No bundled scenario of that name and no such file. */
    public static final class NotFound extends RuntimeException {
      private static final long serialVersionUID = 1L;

      NotFound(String message) {
        super(message);
      }
    }
  }

  /**
   * The scenario {@code nameOrPath} names: a file when it names an existing file or ends in
   * {@code .conf} or has a path separator, else a bundled scenario.
   *
   * @throws Source.NotFound when neither exists
   * @throws SettingsException when the file is not HOCON (the problem names the line)
   */
  public Source find(String nameOrPath, Path workingDirectory) {
    Path path = workingDirectory.resolve(nameOrPath);
    boolean looksLikeFile = nameOrPath.endsWith(".conf") || nameOrPath.contains("/")
        || nameOrPath.contains(java.io.File.separator);
    if (Files.isRegularFile(path) || looksLikeFile) {
      if (!Files.isRegularFile(path)) {
        throw new Source.NotFound("no file " + nameOrPath);
      }
      String base = path.getFileName().toString().replaceFirst("\\.conf$", "");
      try {
        return new Source(base, ConfigFactory.parseFile(path.toFile(),
            ConfigParseOptions.defaults().setAllowMissing(false)), path.toString());
      } catch (ConfigException e) {
        throw new SettingsException(List.of(e.getMessage()));
      }
    }
    try {
      return new Source(nameOrPath, parseResource(nameOrPath), "bundled scenario " + nameOrPath);
    } catch (ConfigException e) {
      throw new SettingsException(List.of(e.getMessage()));
    }
  }

  /**
   * Finds, parses, applies {@code overrides} and validates.
   *
   * @throws Source.NotFound when there is no such scenario
   * @throws SettingsException listing every problem
   */
  public ScenarioSettings load(
      String nameOrPath, Map<String, String> overrides, Config base, Path workingDirectory) {
    Source source = find(nameOrPath, workingDirectory);
    Config file = ScenarioOverrides.apply(source.file(), overrides);
    return ScenarioSettings.fromConfig(source.name(), file, base);
  }

  private Config parseResource(String name) {
    String resource = folder + "/" + name + ".conf";
    if (!name.matches("[a-z][a-z0-9-]*") || loader.getResource(resource) == null) {
      List<String> names = names();
      throw new Source.NotFound("no bundled scenario " + name + " ("
          + (names.isEmpty() ? "none are bundled on this class path" : "bundled: " + String.join(", ", names))
          + ") and no file " + name);
    }
    return ConfigFactory.parseResources(loader, resource, ConfigParseOptions.defaults().setAllowMissing(false));
  }
}
