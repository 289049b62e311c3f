package io.iommulab.host.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --metrics-port}: while the run lasts, Prometheus metrics on http://127.0.0.1:PORT/metrics
 * and on no other interface; Kamon stopped at the end. In a process of its own: Kamon.init
 * attaches its instrumentation to the JVM it runs in, which must not be the test JVM.
 */
class PrometheusEndpointTest {
  @TempDir Path dir;

  @Test
  void aRunWithAMetricsPortServesIommulabMetricsOnLoopbackOnlyAndStopsKamonAtTheEnd() throws Exception {
    int port;
    try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = free.getLocalPort();
    }
    Path childLog = dir.resolve("child.log");
    Process p = SyntheticCliMain.start(childLog, "run", "tiny", "-o", dir.resolve("out").toString(),
        "-Dduration=6s", "--metrics-port", Integer.toString(port), "--progress", "lines");
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    HttpRequest scrape = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
        .timeout(Duration.ofSeconds(5)).build();
    String metrics = "";
    boolean elsewhere = false;
    try {
      while (!metrics.contains("iommulab_scenario_operations_total")) {
        assertTrue(!p.waitFor(200, TimeUnit.MILLISECONDS),
            "the run ended before its metrics were scraped:\n" + metrics + "\n" + Files.readString(childLog));
        try {
          metrics = http.send(scrape, HttpResponse.BodyHandlers.ofString()).body();
        } catch (IOException notYet) {
          // Kamon is still starting.
        }
      }
      Optional<InetAddress> other = nonLoopbackAddress();
      if (other.isPresent()) {
        try (Socket s = new Socket()) {
          assertThrows(IOException.class, () -> s.connect(new InetSocketAddress(other.get(), port), 1000),
              "the endpoint must not listen on " + other.get());
        }
        elsewhere = true;
      }
      assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the run did not end");
    } finally {
      p.destroyForcibly();
    }
    assertTrue(metrics.contains("operation=\"map\""), metrics);
    assertTrue(metrics.contains("tenant=\"web\""), metrics);
    assertEquals(0, p.exitValue(), Files.readString(childLog));
    try (Socket s = new Socket()) {
      assertThrows(IOException.class, () -> s.connect(new InetSocketAddress("127.0.0.1", port), 1000),
          "Kamon stopped: the endpoint is closed");
    }
    assertTrue(Files.readString(childLog).contains("metrics on http://127.0.0.1:" + port + "/metrics"));
    System.out.println("checked that no other interface serves the metrics: " + elsewhere);
  }

  private static Optional<InetAddress> nonLoopbackAddress() throws IOException {
    for (NetworkInterface n : Collections.list(NetworkInterface.getNetworkInterfaces())) {
      if (n.isUp() && !n.isLoopback()) {
        for (InetAddress a : Collections.list(n.getInetAddresses())) {
          if (a instanceof Inet4Address) {
            return Optional.of(a);
          }
        }
      }
    }
    return Optional.empty();
  }
}
