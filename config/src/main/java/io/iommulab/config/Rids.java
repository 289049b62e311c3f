package io.iommulab.config;

import java.util.OptionalInt;

/**
 * PCI requester ids: {@code bus:dev.fn} in hex, packed as {@code bus << 8 | dev << 3 | fn}.
 *
 * <p>Parsing and formatting are hand-written rather than regex and {@code String.format}: pool
 * expansion handles up to a million RIDs, and {@link DeviceSettings#ridValue()} may be called per
 * device on setup paths.
 */
public final class Rids {
  private static final char[] HEX = "0123456789abcdef".toCharArray();

  private Rids() {}

  /**
   * Parses {@code bus:dev.fn} (1 or 2 hex digits for bus and dev, one digit 0-7 for fn, surrounding
   * whitespace ignored); empty when malformed or out of range (dev is 0..0x1f).
   */
  public static OptionalInt parse(String text) {
    if (text == null) {
      return OptionalInt.empty();
    }
    String s = text.trim();
    int colon = s.indexOf(':');
    int dot = s.indexOf('.', colon + 1);
    if (colon < 1 || colon > 2 || dot - colon < 2 || dot - colon > 3 || dot != s.length() - 2) {
      return OptionalInt.empty();
    }
    int bus = hex(s, 0, colon);
    int dev = hex(s, colon + 1, dot);
    char f = s.charAt(dot + 1);
    if (bus < 0 || dev < 0 || dev > 0x1f || f < '0' || f > '7') {
      return OptionalInt.empty();
    }
    return OptionalInt.of(bus << 8 | dev << 3 | (f - '0'));
  }

  /** The hex number in {@code s[from, end)}, or -1 if a character is not a hex digit. */
  private static int hex(String s, int from, int end) {
    int v = 0;
    for (int i = from; i < end; i++) {
      int d = Character.digit(s.charAt(i), 16);
      // Character.digit also accepts non-ASCII digits; the format is ASCII only.
      if (d < 0 || s.charAt(i) > 'f') {
        return -1;
      }
      v = v << 4 | d;
    }
    return v;
  }

  /** Formats a packed RID as {@code bb:dd.f}. */
  public static String format(int rid) {
    int bus = (rid >> 8) & 0xff;
    int dev = (rid >> 3) & 0x1f;
    char[] c = {
      HEX[bus >> 4], HEX[bus & 0xf], ':', HEX[dev >> 4], HEX[dev & 0xf], '.', (char) ('0' + (rid & 7))
    };
    return new String(c);
  }
}
