package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.OptionalInt;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class RidsTest {
  /** The original, regex-based definition the hand-written parser must match exactly. */
  private static final Pattern RID =
      Pattern.compile("^([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\\.([0-7])$");

  private static OptionalInt byRegex(String text) {
    Matcher m = RID.matcher(text.trim());
    if (!m.matches()) {
      return OptionalInt.empty();
    }
    int bus = Integer.parseInt(m.group(1), 16);
    int dev = Integer.parseInt(m.group(2), 16);
    int fn = Integer.parseInt(m.group(3));
    return dev > 0x1f ? OptionalInt.empty() : OptionalInt.of(bus << 8 | dev << 3 | fn);
  }

  @Test
  void formatMatchesStringFormatAndParsesBackForEveryRid() {
    for (int rid = 0; rid <= 0xffff; rid++) {
      String text = Rids.format(rid);
      assertEquals(
          String.format("%02x:%02x.%d", (rid >> 8) & 0xff, (rid >> 3) & 0x1f, rid & 7), text);
      assertEquals(OptionalInt.of(rid), Rids.parse(text));
    }
  }

  @Test
  void theHandWrittenParserAgreesWithTheRegexOnEdgeCases() {
    String[] cases = {
      "", " ", ":", ".", "0:0.0", "00:00.0", " 0a:1F.7 ", "00:20.0", "00:1f.8", "000:00.0",
      "00:000.0", "0:0.", ":0.0", "0:.0", "0:0.00", "g0:00.0", "00:0g.0", "0x:00.0", "00:00:0.0",
      "00.00.0", "00:00.0.0", "+1:00.0", "-1:00.0", "00:-1.0", "\u0661:00.0", "ff:1f.7", "FF:1F.7",
      "0:1.2\t", "0 :1.2", "0: 1.2", "0:1 .2", "0:1. 2"
    };
    for (String c : cases) {
      assertEquals(byRegex(c), Rids.parse(c), "\"" + c + "\"");
    }
  }

  @Test
  void theHandWrittenParserAgreesWithTheRegexOnSeededRandomStrings() {
    char[] alphabet = "0123456789abcdefABCDEFgx:. -+\t".toCharArray();
    SplittableRandom random = new SplittableRandom(42);
    for (int i = 0; i < 200_000; i++) {
      int length = random.nextInt(10);
      char[] c = new char[length];
      for (int j = 0; j < length; j++) {
        c[j] = alphabet[random.nextInt(alphabet.length)];
      }
      String s = new String(c);
      assertEquals(byRegex(s), Rids.parse(s), "\"" + s + "\"");
    }
  }

  @Test
  void nullIsNotARid() {
    assertEquals(OptionalInt.empty(), Rids.parse(null));
  }
}
