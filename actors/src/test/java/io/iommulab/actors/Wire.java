package io.iommulab.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;

/**
 * The wire of a sharded cluster of hosts, for the serialization tests: a test kit that
 * serializes every message before delivery (so a message that would not survive the wire fails
 * the send), and a round trip of one message through its serializer.
 */
public final class Wire {

  private Wire() {}

  /**
   * A test kit whose every message goes through its serializer, with no class exempt by prefix
   * (the default exempts none of ours either, but an exemption must be a decision of the message's
   * own, not of the test's config). Creators are not serialized: behaviors are not messages.
   */
  public static ActorTestKit serializingKit() {
    return ActorTestKit.create(
        ConfigFactory.parseString(
                "pekko.actor.serialize-messages = on\n"
                    + "pekko.actor.serialize-creators = off\n"
                    + "pekko.actor.no-serialization-verification-needed-class-prefix = []\n")
            .withFallback(ConfigFactory.load("application-test")));
  }

  /**
   * {@code message} is bound to jackson-cbor and comes back equal: nothing is lost on the wire
   * (only for value messages — arrays compare by identity).
   */
  public static void assertRoundTrips(ActorTestKit kit, Object message) {
    Serialization serialization = SerializationExtension.get(kit.system().classicSystem());
    Serializer serializer = serialization.findSerializerFor(message);
    assertTrue(serializer.getClass().getSimpleName().contains("Cbor"), serializer.getClass().getName());
    byte[] bytes = serializer.toBinary(message);
    String manifest = Serializers.manifestFor(serializer, message);
    Object back = serialization.deserialize(bytes, serializer.identifier(), manifest).get();
    assertEquals(message, back);
  }
}
