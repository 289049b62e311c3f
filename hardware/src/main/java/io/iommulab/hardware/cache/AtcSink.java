package io.iommulab.hardware.cache;

/**
 * Where the invalidation queue sends device-TLB invalidations. In a plain model test it is the
 * device's {@link DeviceAtc}; under actors it forwards to the device's actor, and the sync waits
 * for its acknowledgement.
 */
@FunctionalInterface
public interface AtcSink {
  void invalidate(InvDescriptor.DevTlb command);

  /**
   * A sink applying every command to one device's ATC, whatever its rid (a single-function
   * topology, or a test).
   */
  static AtcSink forDevice(DeviceAtc atc) {
    return command -> atc.invalidate(command.pasid(), command.address(), command.sizeOrder());
  }
}
