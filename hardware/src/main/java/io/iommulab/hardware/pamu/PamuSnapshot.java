package io.iommulab.hardware.pamu;

import java.util.List;

/**
 * Immutable copy of a whole {@link PamuUnit}: every PPAACE and SPAACE, the SPAACT allocations, the
 * live domains and the violation state. Two snapshots are equal exactly when the unit's observable
 * state is; tests compare them around a refused call.
 *
 * @param lastViolation the last violation the ISR handled, or null
 */
public record PamuSnapshot(
    List<Paace.State> ppaact,
    List<Paace.State> spaact,
    List<SpaactPool.Range> spaactRanges,
    List<PamuDomain.State> domains,
    boolean avInterruptsMasked,
    long violations,
    long reportedViolations,
    long suppressedViolationReports,
    PamuViolation lastViolation) {}
