package io.iommulab.config;

/**
 * One MPIC-style MSI bank: a 4 KiB MSIIR page carrying many vectors.
 *
 * @param index bank index, from 0
 * @param msiirAddress host physical address of the bank's MSIIR page, 4 KiB aligned
 * @param vectors vectors the bank carries (MPIC: 8 MSIR registers of 32 bits = 256)
 */
public record MsiBankSettings(int index, long msiirAddress, int vectors) {}
