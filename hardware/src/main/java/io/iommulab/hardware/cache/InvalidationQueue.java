package io.iommulab.hardware.cache;

import io.iommulab.hardware.Outcome;
import io.iommulab.hardware.cost.CostModel;
import java.util.List;

/** API STUB: to be implemented (see the cache package task). */
public final class InvalidationQueue {
  public InvalidationQueue(int depth, CostModel cost) {
    throw new UnsupportedOperationException("stub");
  }

  /** Appends a batch; ENOSPC (nothing queued) when it does not fit in the free slots. */
  public Outcome<Void> submit(List<InvDescriptor> batch) {
    throw new UnsupportedOperationException("stub");
  }

  public int pending() {
    throw new UnsupportedOperationException("stub");
  }

  /** Executes every pending descriptor in order, applying IOTLB ones and handing ATC ones on. */
  public List<SyncCompletion> process(long now, Iotlb iotlb, AtcSink atc) {
    throw new UnsupportedOperationException("stub");
  }
}
