package io.iommulab.loadtest.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.management.GarbageCollectionNotificationInfo;
import io.iommulab.host.cli.IommulabCli;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.management.MemoryUsage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.management.NotificationEmitter;
import javax.management.openmbean.CompositeData;

/**
 * A scenario run as a benchmark: runs {@code iommulab run ARGS} in this JVM (the real command
 * line, the class path's engine) and measures at the edge what the run itself cannot see — the
 * heap: its peak use (sampled every 50 ms, garbage included) and the largest heap left after a
 * garbage collection (the live set the run needs; what decides whether it fits in {@code -Xmx}).
 * Then prints the run's throughput and modeled and wall latency percentiles from its {@code
 * summary.json}.
 *
 * <pre>
 *   mvn -q install -DskipTests
 *   java -Xmx4g -cp load-tests/target/benchmarks.jar io.iommulab.loadtest.bench.ScenarioBenchmark \
 *       run multi-tenant-10k -o target/bench-10k --progress lines
 * </pre>
 *
 * The arguments are those of {@code iommulab run}; {@code -o DIR} is required (the summary is read
 * from it). Exits with the run's exit code.
 */
public final class ScenarioBenchmark {
  private ScenarioBenchmark() {}

  public static void main(String[] args) throws Exception {
    if (System.getProperty("java.util.concurrent.ForkJoinPool.common.parallelism") == null) {
      System.setProperty("java.util.concurrent.ForkJoinPool.common.parallelism", "4");
    }
    List<String> a = Arrays.asList(args);
    int o = Math.max(a.indexOf("-o"), a.indexOf("--output"));
    if (a.isEmpty() || !a.get(0).equals("run") || o < 0 || o + 1 >= a.size()) {
      System.err.println("usage: ScenarioBenchmark run SCENARIO -o DIR [iommulab run options]");
      System.exit(IommulabCli.INVALID);
    }
    Path out = Path.of(a.get(o + 1)).toAbsolutePath();

    MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
    AtomicLong peakUsed = new AtomicLong();
    AtomicLong peakAfterGc = new AtomicLong();
    ScheduledExecutorService sampler = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "heap-sampler");
      t.setDaemon(true);
      return t;
    });
    sampler.scheduleAtFixedRate(
        () -> peakUsed.accumulateAndGet(memory.getHeapMemoryUsage().getUsed(), Math::max), 0, 50, TimeUnit.MILLISECONDS);
    for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
      ((NotificationEmitter) gc).addNotificationListener((n, h) -> {
        if (!n.getType().equals(GarbageCollectionNotificationInfo.GARBAGE_COLLECTION_NOTIFICATION)) {
          return;
        }
        GarbageCollectionNotificationInfo info = GarbageCollectionNotificationInfo.from((CompositeData) n.getUserData());
        long after = 0;
        for (Map.Entry<String, MemoryUsage> e : info.getGcInfo().getMemoryUsageAfterGc().entrySet()) {
          if (!e.getKey().contains("Metaspace") && !e.getKey().contains("Code") && !e.getKey().contains("Compressed")) {
            after += e.getValue().getUsed();
          }
        }
        peakAfterGc.accumulateAndGet(after, Math::max);
      }, null, null);
    }

    long t0 = System.nanoTime();
    int exit = IommulabCli.execute(IommulabCli.Environment.system(), args);
    long took = System.nanoTime() - t0;
    sampler.shutdownNow();
    peakUsed.accumulateAndGet(memory.getHeapMemoryUsage().getUsed(), Math::max);

    JsonNode s = new ObjectMapper().readTree(Files.readString(out.resolve("summary.json")));
    System.out.println();
    System.out.printf("benchmark %s: exit %d, %s, %.1f s in all (%.1f s measured)%n",
        s.get("scenario").asText(), exit, s.get("status").asText(), took / 1e9, s.get("measuredSeconds").asDouble());
    System.out.printf("heap: max %s, peak used %s (garbage included), largest live set after a GC %s%n",
        mib(memory.getHeapMemoryUsage().getMax()), mib(peakUsed.get()), mib(peakAfterGc.get()));
    JsonNode global = s.get("metrics").get("global");
    double ops = 0;
    List<String> lines = new ArrayList<>();
    for (Map.Entry<String, JsonNode> e : global.properties()) {
      JsonNode m = e.getValue();
      if (e.getKey().endsWith(".count") && m.get("count").asLong() > 0) {
        ops += m.get("rate").asDouble();
        lines.add(String.format("  %-14s %10.1f/s", e.getKey().replace(".count", ""), m.get("rate").asDouble()));
      }
    }
    System.out.printf("operations: %.1f/s over the run%n", ops);
    lines.forEach(System.out::println);
    for (Map.Entry<String, JsonNode> e : global.properties()) {
      JsonNode m = e.getValue();
      if (e.getKey().contains(".latency.") && m.get("count").asLong() > 0) {
        JsonNode p = m.get("percentiles");
        System.out.printf("  %-24s p50 %10s  p99 %10s  p99.9 %10s  max %10s%n", e.getKey(),
            ns(p.get("p50").asDouble()), ns(p.get("p99").asDouble()), ns(p.get("p99.9").asDouble()),
            ns(m.get("max").asDouble()));
      }
    }
    System.exit(exit);
  }

  private static String mib(long bytes) {
    return String.format("%.0f MiB", bytes / 1048576.0);
  }

  private static String ns(double v) {
    return io.iommulab.config.scenario.Units.nanos(v);
  }
}
