package io.iommulab.hardware.msi;

/**
 * One allocated vector: what the device's MSI capability is programmed with. Without an IOMMU
 * the address is {@code msiirAddress}; behind a PAMU it is the iova of the window mapping the
 * bank (PamuDomain.msiIova; {@code fsl_iommu_get_iova()} in {@code fsl_msi.c}).
 *
 * @param bank bank index
 * @param vector dense vector index in the bank ({@code msir * 32 + bit})
 * @param data the MSI data word ({@link MsiBank#data(int)})
 * @param msiirAddress host physical address of the bank's MSIIR
 */
public record MsiVector(int bank, int vector, int data, long msiirAddress) {}
