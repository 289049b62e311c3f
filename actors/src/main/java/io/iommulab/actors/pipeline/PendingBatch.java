package io.iommulab.actors.pipeline;

import java.util.List;

/** Requests the batching stage closed into one batch, before they are merged. */
record PendingBatch(List<InvalidationRequest> requests, FlushReason reason) {
  PendingBatch {
    requests = List.copyOf(requests);
  }
}
