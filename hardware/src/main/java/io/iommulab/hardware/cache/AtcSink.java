package io.iommulab.hardware.cache;

/**
 * Where the invalidation queue sends device-TLB invalidations. In a plain model test it is the
 * device's {@link DeviceAtc}; under actors it forwards to the device's actor, and the sync waits
 * for its acknowledgement.
 */
@FunctionalInterface
public interface AtcSink {
  void invalidate(InvDescriptor.DevTlb command);
}
