package io.iommulab.config;

import java.util.List;

/**
 * Thrown by every {@code fromConfig} builder when the configuration is invalid. It carries every
 * problem found, never only the first: a builder reads and checks the whole section before it
 * fails, and no settings object (no half-built topology) is returned.
 *
 * <p>Each problem names the full key path, the value and the rule it breaks, for example
 * {@code iommulab.topology.units[2].max-windows = 300: must be a power of two from 1 to 256}, or
 * for a missing key {@code iommulab.topology.devices[3].rid: missing (required, a PCI requester id
 * "bus:dev.fn")}. The message lists the problems one per line.
 */
public final class SettingsException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** Immutable; {@code List.copyOf} lists are serializable. */
  private final List<String> problems;

  /** @param problems the problems, at least one, in the order they were found */
  public SettingsException(List<String> problems) {
    super(message(problems));
    this.problems = List.copyOf(problems);
  }

  /** Every problem, in the order found, each a single line. */
  public List<String> problems() {
    return problems;
  }

  private static String message(List<String> problems) {
    if (problems.isEmpty()) {
      throw new IllegalArgumentException("a SettingsException needs at least one problem");
    }
    StringBuilder b =
        new StringBuilder("Invalid iommulab settings (")
            .append(problems.size())
            .append(problems.size() == 1 ? " problem):" : " problems):");
    for (String p : problems) {
      b.append('\n').append(p);
    }
    return b.toString();
  }
}
