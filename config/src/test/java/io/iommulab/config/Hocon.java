package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.util.List;

/** Builds settings from a HOCON snippet layered over the shipped reference.conf, as a user would. */
final class Hocon {
  private Hocon() {}

  static IommulabSettings load(String hocon) {
    return IommulabSettings.fromConfig(
        ConfigFactory.parseString(hocon).withFallback(ConfigFactory.defaultReference()));
  }

  static TopologySettings topology(String hocon) {
    return load(hocon).topology();
  }

  /** The problems of a config that must be refused. */
  static List<String> problems(String hocon) {
    return assertThrows(SettingsException.class, () -> load(hocon)).problems();
  }

  /** Appends one device to the ten default devices; it becomes devices[10]. */
  static String plusDevice(String fields) {
    return "iommulab.topology.devices += { " + fields + " }";
  }

  /** A single device pool. */
  static String pool(String fields) {
    return "iommulab.topology.device-pools = [ { " + fields + " } ]";
  }
}
