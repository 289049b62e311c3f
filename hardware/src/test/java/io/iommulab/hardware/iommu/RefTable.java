package io.iommulab.hardware.iommu;

import io.iommulab.hardware.Access;
import io.iommulab.hardware.Errno;
import io.iommulab.hardware.PageSize;
import io.iommulab.hardware.pagetable.IoPageTable;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The reference model for the property tests: leaves in a sorted map, every rule checked by the
 * plainest possible scan. It only models ranges inside the address width (the generators stay
 * there), so it knows no EOVERFLOW or width rule.
 */
final class RefTable {
  static final long K4 = 4096;

  record RefLeaf(long iova, long pa, long size, int prot) {
    boolean contains(long a) {
      return a >= iova && a < iova + size;
    }
  }

  /** A reference lookup result: null leaf when not mapped. */
  record Hit(long pa, int prot, long size) {}

  private final TreeMap<Long, RefLeaf> leaves = new TreeMap<>();
  private final long[] sizesDescending;

  RefTable(List<Long> sizes) {
    sizesDescending = sizes.stream().sorted((a, b) -> Long.compare(b, a)).mapToLong(x -> x).toArray();
  }

  /** Null on success, else the errno. */
  Errno map(long iova, long pa, long length, int prot) {
    if ((prot & (Access.READ | Access.WRITE)) == 0) {
      return Errno.EINVAL;
    }
    if (length <= 0 || length % K4 != 0 || iova % K4 != 0 || pa % K4 != 0) {
      return Errno.EINVAL;
    }
    for (RefLeaf l : leaves.values()) {
      if (l.iova() < iova + length && l.iova() + l.size() > iova) {
        return Errno.EEXIST;
      }
    }
    long cur = iova;
    long curPa = pa;
    long remaining = length;
    while (remaining > 0) {
      long pick = 0;
      for (long s : sizesDescending) {
        if (s <= remaining && cur % s == 0 && curPa % s == 0) {
          pick = s;
          break;
        }
      }
      leaves.put(cur, new RefLeaf(cur, curPa, pick, prot & (Access.READ | Access.WRITE | Access.EXEC)));
      cur += pick;
      curPa += pick;
      remaining -= pick;
    }
    return null;
  }

  /** Bytes unmapped, or the errno (as a negative code) when refused. */
  long unmap(long iova, long length) {
    if (length <= 0 || length % K4 != 0 || iova % K4 != 0) {
      return -Errno.EINVAL.code();
    }
    List<Long> inside = new ArrayList<>();
    for (RefLeaf l : leaves.values()) {
      boolean intersects = l.iova() < iova + length && l.iova() + l.size() > iova;
      if (!intersects) {
        continue;
      }
      if (l.iova() < iova || l.iova() + l.size() > iova + length) {
        return -Errno.EINVAL.code();
      }
      inside.add(l.iova());
    }
    long bytes = 0;
    for (long a : inside) {
      bytes += leaves.remove(a).size();
    }
    return bytes;
  }

  /** The leaf mapping {@code iova}, or null. */
  Hit lookup(long iova) {
    Map.Entry<Long, RefLeaf> e = leaves.floorEntry(iova);
    if (e == null || !e.getValue().contains(iova)) {
      return null;
    }
    RefLeaf l = e.getValue();
    return new Hit(l.pa() + (iova - l.iova()), l.prot(), l.size());
  }

  List<RefLeaf> leaves() {
    return new ArrayList<>(leaves.values());
  }

  /** The implementation's leaves in the reference's shape (SNOOP and dirty dropped). */
  static List<RefLeaf> of(List<IoPageTable.Leaf> leaves) {
    List<RefLeaf> out = new ArrayList<>();
    for (IoPageTable.Leaf l : leaves) {
      out.add(new RefLeaf(l.iova(), l.pa(), l.size().bytes(), l.prot() & ~Access.SNOOP));
    }
    return out;
  }

  static PageSize sizeOf(long bytes) {
    return PageSize.ofBytes(bytes);
  }
}
