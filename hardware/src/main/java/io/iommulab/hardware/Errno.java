package io.iommulab.hardware;

/**
 * The Linux errno values the emulated kernel returns, with their x86-64 numbers. The meaning of
 * each in the iommufd contract is in {@code include/uapi/linux/iommufd.h} ("EOPNOTSUPP: known
 * field with an unsupported value; EINVAL: understood but wrong; ENOENT: an ID or IOVA does not
 * exist").
 */
public enum Errno {
  EPERM(1),
  ENOENT(2),
  EIO(5),
  ENXIO(6),
  E2BIG(7),
  EBADF(9),
  ENOMEM(12),
  EFAULT(14),
  EBUSY(16),
  EEXIST(17),
  ENODEV(19),
  EINVAL(22),
  ENOTTY(25),
  ENOSPC(28),
  ESPIPE(29),
  ERANGE(34),
  EDEADLOCK(35),
  EOVERFLOW(75),
  EMSGSIZE(90),
  EOPNOTSUPP(95),
  EADDRINUSE(98);

  private final int code;

  Errno(int code) {
    this.code = code;
  }

  /** The positive errno number; the kernel returns its negation. */
  public int code() {
    return code;
  }
}
