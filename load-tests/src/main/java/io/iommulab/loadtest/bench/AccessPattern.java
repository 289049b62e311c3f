package io.iommulab.loadtest.bench;

/**
 * Order in which a benchmark visits mapped pages. Public because JMH's generated code reads
 * {@code @Param} values of this type from another package.
 */
public enum AccessPattern {
  /** Ascending pages: 512 consecutive IOVAs share a leaf table; the CPU prefetches. */
  SEQUENTIAL,
  /** A fixed (seeded) random permutation of the pages: each walk touches a cold leaf table. */
  RANDOM
}
