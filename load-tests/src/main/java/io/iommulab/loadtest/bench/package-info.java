/**
 * JMH benchmarks of the hardware models' hot paths, against the targets of the design notes:
 * IOTLB-hit translate below 50 ns, IOTLB miss with a 4-level walk below 150 ns, map/unmap cost at
 * most logarithmic in the number of mappings with 1 Mi mapped pages.
 *
 * <h2>Running</h2>
 *
 * <pre>
 *   mvn -q -pl load-tests -am package -DskipTests
 *   java -jar load-tests/target/benchmarks.jar Translate          # hit, miss, walk, nested
 *   java -jar load-tests/target/benchmarks.jar TranslateHit
 *   java -jar load-tests/target/benchmarks.jar MapUnmap
 *   java -jar load-tests/target/benchmarks.jar MapUnmap -p mapped=1048576
 *   java -jar load-tests/target/benchmarks.jar MapUnmap -prof gc  # allocation per op
 *   java -jar load-tests/target/benchmarks.jar -rf json -rff load-tests/target/jmh.json  # all
 *   java -jar load-tests/target/benchmarks.jar -l                 # list
 * </pre>
 *
 * The argument is a regular expression over {@code Class.method}. Every class fixes
 * {@code @Fork(1)} with {@code -Xms2g -Xmx2g -XX:+AlwaysPreTouch}, 5 warm-up iterations and 5
 * (IOTLB hit) or 10 (memory-bound) measured iterations of 1 s, average time in ns/op. Do not
 * shorten them with {@code -wi}/{@code -w} or run in-process with {@code -f 0} for numbers you
 * report: on the 2-core machines short warm-ups underestimate by up to 4×, and in-process runs
 * share a profile across benchmarks. The whole suite takes about 7 minutes; a 1 Mi-page setup
 * takes about a second per fork.
 *
 * <h2>Reading the numbers</h2>
 *
 * <ul>
 *   <li>Each class Javadoc has a diagram of what one op is, its target and what would invalidate
 *       the number. Translate benchmarks print the IOTLB hit ratio of every iteration and fail
 *       the run when it is not what the benchmark claims (1 for hits, 0 for misses).
 *   <li>Modeled time ({@code now}) advances 1 µs per request, more than any modeled walk, so the
 *       page walker never queues and queueing bookkeeping stays constant.
 *   <li>{@code -XX:+AlwaysPreTouch} is not optional here: on these VMs the first touch of a heap
 *       page costs a host-side fault; without pre-touching, benchmarks that allocate (unmap boxes
 *       its result, invalidation builds lists) spent 25-30% of the time in the kernel while eden
 *       regions were first used, and single iterations doubled (±170 ns error on a 90 ns op;
 *       ±4 ns with pre-touch).
 *   <li>Benchmarks whose working set exceeds the 2 MiB L2 (RANDOM patterns, 256 Ki and 1 Mi
 *       mapped pages) depend on an L3 shared with other VMs of the host: iterations vary up to
 *       2×. They run 10 measured iterations; read the median of the iterations next to the mean.
 *   <li>Run nothing else on the machine meanwhile: with 2 cores, the JIT and GC threads already
 *       compete with the benchmark thread.
 * </ul>
 */
package io.iommulab.loadtest.bench;
