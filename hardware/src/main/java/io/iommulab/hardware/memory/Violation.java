package io.iommulab.hardware.memory;

/**
 * One logged non-OK DMA check: the first offending byte address, the owner the access should
 * have hit and the owner it did hit ({@link HostMemory#FREE}, {@link HostMemory#UNBACKED}, the
 * host or another VM).
 */
public record Violation(long hpa, int expectedOwner, int actualOwner, DmaCheck kind) {
  @Override
  public String toString() {
    return String.format(
        "%s at hpa 0x%x: expected owner %d, found %d", kind, hpa, expectedOwner, actualOwner);
  }
}
