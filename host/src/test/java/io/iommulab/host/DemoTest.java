package io.iommulab.host;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.iommulab.hardware.FaultInjector;
import io.iommulab.hardware.ManualClock;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class DemoTest {

  @Test
  void theDemoTourOfTheDefaultTopologyEndsWithACleanVerdict() {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    boolean clean;
    try (Host host = Host.start("DemoTest", Host.config(Demo.OVERRIDES), new ManualClock(), FaultInjector.NONE, HostParts.REAL);
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
      clean = new Demo(host, out).run();
    }
    String text = bytes.toString(StandardCharsets.UTF_8);

    assertTrue(clean, text);
    assertTrue(text.contains("isolation violations: 0"), text);
    assertTrue(text.contains("stale-translation violations: 0"), text);
    assertTrue(text.contains("vm 1 guest WBINVD: emulated"), text);
    assertTrue(text.contains("isolation BROKEN"), "the shared-bank case is shown: " + text);
    assertTrue(text.contains("1 ABORTED"), text);
    assertTrue(text.contains("verdict: CLEAN"), text);
  }
}
