package io.iommulab.config;

import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** PCI requester ids: {@code bus:dev.fn} in hex, packed as {@code bus << 8 | dev << 3 | fn}. */
public final class Rids {
  private static final Pattern RID =
      Pattern.compile("^([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\\.([0-7])$");
  private static final char[] HEX = "0123456789abcdef".toCharArray();

  private Rids() {}

  /** Parses {@code bus:dev.fn}; empty when malformed or out of range (dev is 0..0x1f). */
  public static OptionalInt parse(String text) {
    if (text == null) {
      return OptionalInt.empty();
    }
    Matcher m = RID.matcher(text.trim());
    if (!m.matches()) {
      return OptionalInt.empty();
    }
    int bus = Integer.parseInt(m.group(1), 16);
    int dev = Integer.parseInt(m.group(2), 16);
    int fn = Integer.parseInt(m.group(3));
    if (dev > 0x1f) {
      return OptionalInt.empty();
    }
    return OptionalInt.of(bus << 8 | dev << 3 | fn);
  }

  /**
   * Formats a packed RID as {@code bb:dd.f}. Written without {@code String.format} because pool
   * expansion formats up to a million RIDs.
   */
  public static String format(int rid) {
    int bus = (rid >> 8) & 0xff;
    int dev = (rid >> 3) & 0x1f;
    char[] c = {
      HEX[bus >> 4], HEX[bus & 0xf], ':', HEX[dev >> 4], HEX[dev & 0xf], '.', (char) ('0' + (rid & 7))
    };
    return new String(c);
  }
}
