package io.iommulab.host.scenario;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** Finds the {@link ScenarioEngine} registered on the class path ({@link ServiceLoader}). */
public final class ScenarioEngines {
  private ScenarioEngines() {}

  /** Every registered engine, in class-path order. */
  public static List<ScenarioEngine> registered(ClassLoader loader) {
    List<ScenarioEngine> engines = new ArrayList<>();
    for (ScenarioEngine e : ServiceLoader.load(ScenarioEngine.class, loader)) {
      engines.add(e);
    }
    return engines;
  }

  /** The engines of the class path of this class. */
  public static List<ScenarioEngine> registered() {
    return registered(ScenarioEngines.class.getClassLoader());
  }
}
