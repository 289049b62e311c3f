package io.iommulab.config;

/**
 * Everything under {@code iommulab}: the host topology and the cost model.
 */
public record IommulabSettings(TopologySettings topology, CostModelSettings costModel) {}
