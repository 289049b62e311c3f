package io.iommulab.actors.fd.model;

/**
 * Told of every pin and unpin a model makes, in order, so the owner can keep the host's frame pin
 * counts (the fd actor tells its host-memory actor {@code PinsChanged}).
 */
public interface PinListener {
  PinListener NONE =
      new PinListener() {
        @Override
        public void pinned(long userVa, long length) {}

        @Override
        public void unpinned(long userVa, long length) {}
      };

  /** {@code [userVa, +length)} was pinned once more. */
  void pinned(long userVa, long length);

  /** {@code [userVa, +length)} was unpinned once. */
  void unpinned(long userVa, long length);
}
