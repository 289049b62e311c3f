/**
 * Load runs of a whole emulated host, measured beside the raw Pekko rates of the same JVM.
 *
 * <p>{@link io.iommulab.loadtest.UapiThroughput} starts a host whose device pools give each of
 * {@code vms} VMs (default 1,000) one PCI function without ATS — half behind {@code vtd0}, half
 * behind {@code smmu0} — so every DMA access is translated by its IOMMU unit, not by a device
 * TLB. Each VM opens a uAPI fd ({@code IommuFd}), binds its device, allocates an IOAS and attaches
 * the device to it (one paging domain per IOAS, on the real unit actor) and maps a resident 2 MiB
 * buffer. Four figures are then measured, interleaved round by round so that on a shared machine
 * the figures of one round see the same load:
 *
 * <ul>
 *   <li><b>raw tell fan-out</b>: windows of 1,000 tells to each of {@code vms} counting actors from
 *       one thread, each window awaited — messages per second;
 *   <li><b>raw ask</b>: one {@code AskPattern.ask} in flight to each of {@code vms} echo actors,
 *       the next sent from the completion (a direct executor) — asks per second;
 *   <li><b>DMA translations</b>: one DMA engine actor per VM keeps one {@code DmaBurst} of {@code
 *       burst} accesses (default 32, 64 bytes each, on distinct 4 KiB pages of the resident buffer,
 *       reads and writes) in flight to its device actor; the device sends one {@code
 *       TranslateBurst} to its unit, the unit translates (IOTLB or walk) and has the host-memory
 *       oracle check every access — completed accesses per second;
 *   <li><b>map+unmap round trips</b>: one {@code IOMMU_IOAS_MAP} of 2 MiB followed by its {@code
 *       IOMMU_IOAS_UNMAP} in flight per fd, through the {@code IommuFd} facade (one ask per call, as
 *       the raw ask) — pairs per second; each map pins, charges and maps into the domain, each
 *       unmap unmaps, invalidates the IOTLB to the sync, unpins and uncharges.
 * </ul>
 *
 * <p>Each figure is warmed up (round-robin, {@code warmup} seconds, default 5), then measured in
 * {@code iterations} rounds (default 5) of {@code seconds} each (default 2); the mean, standard
 * deviation and range are printed, and the ratios against the goals (DMA translations ≥ 50% of
 * the raw tell rate, map+unmap pairs ≥ 25% of the raw ask rate) both of the means and per round.
 * The host's shutdown report must be clean, or the run fails.
 *
 * <p>Run it (2 CPUs: expect a minute and a half, most of it the 1,000 VMs' set-up and the warm-up):
 *
 * <pre>
 * mvn -q -pl load-tests -am package -DskipTests
 * java -cp load-tests/target/benchmarks.jar io.iommulab.loadtest.UapiThroughput
 * java -cp load-tests/target/benchmarks.jar io.iommulab.loadtest.UapiThroughput vms=1000 burst=8 \
 *     warmup=5 iterations=5 seconds=2 only=tell,ask,dma,mapunmap
 * </pre>
 *
 * <p>How to read it: per burst, a DMA costs five message deliveries (engine → device → unit →
 * host memory, unit → device → engine), so the translation rate against the tell rate grows with
 * the burst: below about 8 accesses per burst it cannot reach half the tell rate whatever the
 * translation costs. A map+unmap pair is two asks (the raw ask's unit) plus six deliveries inside
 * the host (fd → unit → fd twice, two pin reports to host memory) plus the model's work, so it
 * is bounded well below half the ask rate by construction. On a machine shared with other jobs
 * the rounds spread widely: compare the per-round ratios, and rerun when the load is low.
 */
package io.iommulab.loadtest;
