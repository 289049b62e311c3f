package io.iommulab.host.scenario;

import io.iommulab.actors.CborSerializable;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.zip.DataFormatException;
import org.HdrHistogram.Histogram;

/**
 * An immutable HdrHistogram in its compressed wire form ({@link
 * Histogram#encodeIntoCompressedByteBuffer}): how a latency histogram an actor owns travels, as
 * part of a message, to the collector. Values are nanoseconds.
 *
 * <p>Encoding copies the histogram, so the owner may reset and reuse its own afterwards.
 */
public record EncodedHistogram(byte[] compressed) implements CborSerializable {

  public EncodedHistogram {
    if (compressed == null || compressed.length == 0) {
      throw new IllegalArgumentException("an encoded histogram needs its bytes");
    }
    compressed = compressed.clone();
  }

  /** The encoded form of {@code histogram} (which is left unchanged). */
  public static EncodedHistogram of(Histogram histogram) {
    ByteBuffer buffer = ByteBuffer.allocate(histogram.getNeededByteBufferCapacity());
    int length = histogram.encodeIntoCompressedByteBuffer(buffer);
    return new EncodedHistogram(Arrays.copyOf(buffer.array(), length));
  }

  /** A copy of the bytes. */
  @Override
  public byte[] compressed() {
    return compressed.clone();
  }

  /** A new histogram with the recorded values. */
  public Histogram decode() {
    try {
      return Histogram.decodeFromCompressedByteBuffer(ByteBuffer.wrap(compressed), 2);
    } catch (DataFormatException e) {
      throw new IllegalStateException("corrupt encoded histogram", e);
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof EncodedHistogram h && Arrays.equals(compressed, h.compressed);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(compressed);
  }

  @Override
  public String toString() {
    return "EncodedHistogram[" + compressed.length + " bytes]";
  }
}
