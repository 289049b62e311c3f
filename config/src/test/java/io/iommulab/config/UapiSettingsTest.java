package io.iommulab.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

class UapiSettingsTest {

  private static final int PASIDS = UapiSettings.DEFAULT_PASIDS_PER_VM;
  private static final int DEPTH = UapiSettings.DEFAULT_FAULT_QUEUE_DEPTH;

  private static com.typesafe.config.Config withDefaults(String hocon) {
    return ConfigFactory.parseString(hocon)
        .withFallback(ConfigFactory.defaultReference().getConfig(UapiSettings.PATH));
  }

  @Test
  void theShippedDefaultsAreUserAccountingSafeInterruptsAndTheType1Limit() {
    UapiSettings s = UapiSettings.defaults();
    assertEquals(64L << 30, s.memlockLimit());
    assertFalse(s.allowUnsafeInterrupts());
    assertEquals(UapiSettings.AccountMode.USER, s.defaultAccountMode());
    assertEquals(65535, s.vfioDmaEntryLimit());
    assertEquals(1024, s.pasidsPerVm());
  }

  @Test
  void eachKeyLandsInItsOwnField() {
    UapiSettings s =
        UapiSettings.fromConfig(
            ConfigFactory.parseString(
                "memlock-limit = 16M, allow-unsafe-interrupts = on, default-account-mode = mm,"
                    + " vfio-dma-entry-limit = 7, pasids-per-vm = 9, fault-queue-depth = 11"));
    assertEquals(new UapiSettings(16L << 20, true, UapiSettings.AccountMode.MM, 7, 9, 11), s);
  }

  @Test
  void everyProblemIsReportedWithItsFullPath() {
    SettingsException e =
        assertThrows(
            SettingsException.class,
            () ->
                UapiSettings.fromConfig(
                    withDefaults(
                        "memlock-limit = 1000, default-account-mode = none,"
                            + " vfio-dma-entry-limit = 65536, memlock = 1")));
    assertEquals(
        List.of(
            "iommulab.uapi.memlock = 1: unknown key (the uapi section takes memlock-limit,"
                + " allow-unsafe-interrupts, default-account-mode, vfio-dma-entry-limit, pasids-per-vm,"
                + " fault-queue-depth)",
            "iommulab.uapi.memlock-limit = 1000: must be at least 0 and a multiple of 4K",
            "iommulab.uapi.default-account-mode = none: must be one of user, mm",
            "iommulab.uapi.vfio-dma-entry-limit = 65536: must be from 1 to 65535"),
        e.problems());
  }

  @Test
  void anEmptySectionReportsEveryKeyAsMissing() {
    SettingsException e =
        assertThrows(SettingsException.class, () -> UapiSettings.fromConfig(ConfigFactory.empty()));
    assertEquals(6, e.problems().size());
  }

  @Test
  void theConstructorRefusesAnUnalignedLimitAndAZeroEntryLimit() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new UapiSettings(4095, false, UapiSettings.AccountMode.USER, 1, PASIDS, DEPTH));
    assertThrows(
        IllegalArgumentException.class,
        () -> new UapiSettings(4096, false, UapiSettings.AccountMode.USER, 0, PASIDS, DEPTH));
  }

  @Test
  void theWithersChangeOnlyTheirField() {
    UapiSettings d = UapiSettings.defaults();
    assertEquals(
        new UapiSettings(8192, false, UapiSettings.AccountMode.USER, 65535, PASIDS, DEPTH), d.withMemlockLimit(8192));
    assertEquals(
        new UapiSettings(64L << 30, true, UapiSettings.AccountMode.USER, 65535, PASIDS, DEPTH),
        d.withAllowUnsafeInterrupts(true));
    assertEquals(
        new UapiSettings(64L << 30, false, UapiSettings.AccountMode.USER, 12, PASIDS, DEPTH), d.withVfioDmaEntryLimit(12));
    assertEquals(
        new UapiSettings(64L << 30, false, UapiSettings.AccountMode.USER, 65535, 3, DEPTH), d.withPasidsPerVm(3));
  }

  @Test
  void aPasidQuotaOutsideTheTwentyBitSpaceIsRefused() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new UapiSettings(4096, false, UapiSettings.AccountMode.USER, 1, 0, DEPTH));
    assertThrows(
        IllegalArgumentException.class,
        () -> new UapiSettings(4096, false, UapiSettings.AccountMode.USER, 1, 1 << 20, DEPTH));
  }
}
