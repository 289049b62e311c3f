package io.iommulab.config;

import static io.iommulab.config.Hocon.problems;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

class MsiBankRulesTest {

  private static String banks(String entries) {
    return "iommulab.topology.msi-banks = [ " + entries + " ]";
  }

  @Test
  void fourBanksAreAcceptedAndEachMayOverrideItsVectors() {
    List<MsiBankSettings> banks =
        Hocon.topology(
                banks(
                    "{ msiir-address = \"0xffe044000\" }, { msiir-address = \"0xffe045000\" },"
                        + " { msiir-address = \"0xffe046000\" },"
                        + " { msiir-address = \"0xffe047000\", vectors = 32 }"))
            .msiBanks();
    assertEquals(new MsiBankSettings(3, 0xffe047000L, 32), banks.get(3));
    assertEquals(4, banks.size());
  }

  @Test
  void twoBanksAreTooFew() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks = 2 banks: must have 3 or 4 banks (an MPIC has 3, later"
                + " parts 4)"),
        problems(banks("{ msiir-address = \"0xffe044000\" }, { msiir-address = \"0xffe045000\" }")));
  }

  @Test
  void fiveBanksAreTooMany() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks = 5 banks: must have 3 or 4 banks (an MPIC has 3, later"
                + " parts 4)"),
        problems(
            banks(
                "{ msiir-address = 0x1000 }, { msiir-address = 0x2000 }, { msiir-address = 0x3000 },"
                    + " { msiir-address = 0x4000 }, { msiir-address = 0x5000 }")));
  }

  @Test
  void anMsiirAddressNotOnAPageBoundaryIsRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks[1].msiir-address = 0xffe045010: must be 4 KiB aligned (an"
                + " MSIIR page)"),
        problems(
            banks(
                "{ msiir-address = \"0xffe044000\" }, { msiir-address = \"0xffe045010\" },"
                    + " { msiir-address = \"0xffe046000\" }")));
  }

  @Test
  void twoBanksOnOneMsiirPageAreRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks[2].msiir-address = 68686200832: same MSIIR page as"
                + " msi-banks[0]; banks must be distinct"),
        problems(
            banks(
                "{ msiir-address = \"0xffe044000\" }, { msiir-address = \"0xffe045000\" },"
                    + " { msiir-address = 68686200832 }")));
  }

  @Test
  void aBankWithoutAnAddressNamesWhatIsExpected() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks[0].msiir-address: missing (required, an address (a number or"
                + " a hex string such as \"0xffe044000\"))"),
        problems(banks("{ vectors = 8 }, { msiir-address = 0x2000 }, { msiir-address = 0x3000 }")));
  }

  @Test
  void anAddressThatIsNotANumberIsRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks[0].msiir-address = 0xzz: must be an address (a number or a"
                + " hex string such as \"0xffe044000\")",
            "iommulab.topology.msi-banks[1].msiir-address = -4096: must be an address (a number or a"
                + " hex string such as \"0xffe044000\")"),
        problems(
            banks(
                "{ msiir-address = 0xzz }, { msiir-address = -4096 }, { msiir-address = 0x3000 }")));
  }

  @Test
  void zeroOrMoreThan256VectorsAreRefused() {
    assertEquals(
        List.of(
            "iommulab.topology.msi-banks[0].vectors = 0: must be from 1 to 512",
            "iommulab.topology.msi-banks[1].vectors = 513: must be from 1 to 512"),
        problems(
            banks(
                "{ msiir-address = 0x1000, vectors = 0 }, { msiir-address = 0x2000, vectors = 513 },"
                    + " { msiir-address = 0x3000 }")));
  }

  @Test
  void msiBankDefaultsSetTheVectorsOfEveryBankThatOmitsThem() {
    List<MsiBankSettings> banks =
        Hocon.topology("iommulab.topology.msi-bank-defaults.vectors = 64").msiBanks();
    assertEquals(List.of(64, 64, 64), banks.stream().map(MsiBankSettings::vectors).toList());
  }

  @Test
  void aStandaloneBankTakesTheIndexItIsGiven() {
    assertEquals(
        new MsiBankSettings(2, 0x3000, 256),
        MsiBankSettings.fromConfig(ConfigFactory.parseString("msiir-address = 0x3000"), 2));
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () -> MsiBankSettings.fromConfig(ConfigFactory.parseString("msiir-address = 0x3001"), 0));
    assertEquals(
        List.of("msiir-address = 0x3001: must be 4 KiB aligned (an MSIIR page)"), e.problems());
  }
}
