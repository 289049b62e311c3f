package io.iommulab.actors.fd.model;

import io.iommulab.actors.CborSerializable;

/**
 * {@code struct iommu_hwpt_page_response}: written to a FAULT queue to answer the group of
 * {@code cookie} with {@code code} ({@link Uapi#PAGE_RESP_SUCCESS} or {@link
 * Uapi#PAGE_RESP_INVALID}). 8 bytes.
 */
public record HwptPageResponse(int cookie, int code) implements CborSerializable {}
