package io.iommulab.actors;

/**
 * Marker of every message that crosses an actor boundary: commands, replies and events. It is
 * bound to Pekko's {@code jackson-cbor} serializer in this module's {@code reference.conf}, so when
 * hosts are sharded across a cluster their messages travel unchanged. Messages are immutable
 * records of primitives, strings, enums, records, arrays (never mutated after send), lists and
 * typed {@code ActorRef}s.
 */
public interface CborSerializable {}
