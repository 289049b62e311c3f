package io.iommulab.hardware.cache;

/**
 * A completed {@link InvDescriptor.Wait}: everything queued before it has been applied.
 *
 * @param token the wait descriptor's token
 * @param completedAtNs modeled completion time
 * @param descriptors descriptors processed up to and including this wait
 */
public record SyncCompletion(long token, long completedAtNs, int descriptors) {}
