package io.iommulab.host.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.iommulab.config.scenario.Operation;
import io.iommulab.config.scenario.Oracle;
import io.iommulab.host.scenario.EncodedHistogram;
import io.iommulab.host.scenario.IntervalSnapshot;
import io.iommulab.host.scenario.TenantSample;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramIterationValue;

/**
 * Kamon for a run that asked for metrics ({@code --metrics-port PORT}): {@code Kamon.init} with
 * the Prometheus endpoint bound to {@code 127.0.0.1:PORT} only (never every interface) and the
 * status page disabled (were it enabled, it too is bound to 127.0.0.1). {@code Kamon.init} with
 * kamon-bundle on the class path also attaches the Pekko instrumentation (actor and dispatcher
 * metrics). The run's own measurements are published as they arrive:
 *
 * <ul>
 *   <li>{@code iommulab.scenario.operations{operation, tenant}} (counter),
 *   <li>{@code iommulab.scenario.errors{operation, tenant}} (counter),
 *   <li>{@code iommulab.scenario.latency{operation, tenant, clock=modeled|wall}} (ns histogram),
 *   <li>{@code iommulab.scenario.violations{oracle, tenant}} (counter),
 *   <li>{@code iommulab.scenario.elapsed-seconds} (gauge).
 * </ul>
 *
 * Tags are the tenant and operation classes, never a VM: cardinality stays bounded. Metrics reach
 * the endpoint every {@code tick} (the runner gives the scenario's interval, at least a second).
 * Attaching the instrumentation takes a few seconds at start. {@link #stop()} waits for Kamon to
 * stop, which closes the endpoint.
 */
public final class KamonMetrics {
  private final int port;

  private KamonMetrics(int port) {
    this.port = port;
  }

  /** The configuration Kamon is started with. */
  static Config config(int port, Duration tick) {
    return ConfigFactory.parseString(
            "kamon.prometheus.start-embedded-http-server = yes\n"
                + "kamon.prometheus.embedded-server.hostname = \"127.0.0.1\"\n"
                + "kamon.prometheus.embedded-server.port = " + port + "\n"
                + "kamon.modules.status-page.enabled = no\n"
                + "kamon.status-page.listen.hostname = \"127.0.0.1\"\n"
                + "kamon.metric.tick-interval = " + tick.toMillis() + "ms\n"
                + "kamon.init.hide-banner = yes\n"
                + "kanela.show-banner = false\n")
        .withFallback(ConfigFactory.load());
  }

  /** Starts Kamon with the Prometheus endpoint on {@code 127.0.0.1:port}. */
  public static KamonMetrics start(int port, Duration tick) {
    if (System.getProperty("kanela.show-banner") == null) {
      System.setProperty("kanela.show-banner", "false");
    }
    Kamon.init(config(port, tick));
    return new KamonMetrics(port);
  }

  public int port() {
    return port;
  }

  /** Publishes one interval. */
  public void record(IntervalSnapshot s) {
    for (TenantSample t : s.tenants()) {
      for (Operation op : Operation.values()) {
        String n = op.configName();
        long count = t.counter(n + ".count");
        if (count > 0) {
          Kamon.counter("iommulab.scenario.operations").withTag("operation", n).withTag("tenant", t.tenant())
              .increment(count);
        }
        long errors = t.counter(n + ".errors");
        if (errors > 0) {
          Kamon.counter("iommulab.scenario.errors").withTag("operation", n).withTag("tenant", t.tenant())
              .increment(errors);
        }
      }
      for (Oracle o : Oracle.values()) {
        long v = t.counter(o.metric());
        if (v > 0) {
          Kamon.counter("iommulab.scenario.violations").withTag("oracle", o.configName())
              .withTag("tenant", t.tenant()).increment(v);
        }
      }
      for (Map.Entry<String, EncodedHistogram> e : t.latencies().entrySet()) {
        String[] parts = e.getKey().split("\\.");
        kamon.metric.Histogram k = Kamon.histogram("iommulab.scenario.latency", MeasurementUnit.time().nanoseconds())
            .withTag("operation", parts[0]).withTag("tenant", t.tenant()).withTag("clock", parts[2]);
        Histogram h = e.getValue().decode();
        for (HistogramIterationValue v : h.recordedValues()) {
          k.record(v.getValueIteratedTo(), v.getCountAtValueIteratedTo());
        }
      }
    }
    Kamon.gauge("iommulab.scenario.elapsed-seconds").withoutTags().update(s.endNanos() / 1e9);
  }

  /** Stops Kamon (the endpoint closes), waiting at most 10 seconds. */
  public void stop() {
    try {
      scala.concurrent.Await.result(Kamon.stop(), scala.concurrent.duration.Duration.create(10, TimeUnit.SECONDS));
    } catch (Exception e) {
      throw new IllegalStateException("Kamon did not stop within 10s", e);
    }
  }
}
