package io.iommulab.config.scenario;

import java.util.List;
import java.util.Objects;

/**
 * One entry of a tenant's {@code devices}: where {@code perVm} of each VM's devices come from.
 * Devices are handed out in topology order, each to one VM, always with every member of its IOMMU
 * group (a group is the smallest unit of isolation, so it is assigned whole).
 *
 * @param source a device pool, a unit, or named devices
 * @param perVm devices each VM takes from the source, 1 to 64
 */
public record DeviceSlot(Source source, int perVm) {

  /** Where a slot's devices come from. */
  public sealed interface Source permits Pool, Unit, Named {
    /** As written in a scenario: {@code pool = web-nic}, {@code unit = vtd0}, {@code names = [..]}. */
    String describe();
  }

  /** The members of the device pool whose {@code name-prefix} is {@code prefix}. */
  public record Pool(String prefix) implements Source {
    public Pool {
      Objects.requireNonNull(prefix, "prefix");
    }

    @Override
    public String describe() {
      return "pool " + prefix;
    }
  }

  /** Every device behind the unit {@code name}. */
  public record Unit(String name) implements Source {
    public Unit {
      Objects.requireNonNull(name, "name");
    }

    @Override
    public String describe() {
      return "unit " + name;
    }
  }

  /** These devices, taken in the order given. */
  public record Named(List<String> devices) implements Source {
    public Named {
      devices = List.copyOf(devices);
    }

    @Override
    public String describe() {
      return "names [" + String.join(", ", devices) + "]";
    }
  }

  public DeviceSlot {
    Objects.requireNonNull(source, "source");
    if (perVm < 1 || perVm > 64) {
      throw new IllegalArgumentException("per-vm = " + perVm + ": must be from 1 to 64");
    }
  }
}
