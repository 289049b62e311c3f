package io.iommulab.hardware.iommu;

import java.util.Objects;

/**
 * One present entry of a scalable-mode PASID table (VT-d spec 9.6; {@code drivers/iommu/intel/pasid.c}):
 * the domain it translates through, that domain's id (DID), the PASID-granular translation type
 * (PGTT) and the snoop bits. On SMMUv3 it stands for the context descriptor of an SSID (or the
 * STE itself for SSID 0).
 *
 * <p>Invariant (kept by {@link IommuUnit}): {@code domain} is a live domain of the unit whose
 * table holds this entry, and {@code domainId == domain.id()}.
 *
 * @param pasid the PASID this entry is installed at (0 = RID_PASID)
 * @param pgtt translation type, derived from the domain
 * @param pageSnoop PGSNP (bit 88): every access through this entry is snooped. Set for nested
 *     entries over a force-snoop parent ({@code intel_pasid_setup_nested})
 * @param pageWalkSnoop page-walk snoop (bit 87): table reads are snooped
 *     ({@code ecap_smpwc}; the modeled units walk coherently, so always true)
 */
public record PasidEntry(
    int pasid, Domain domain, int domainId, Pgtt pgtt, boolean pageSnoop, boolean pageWalkSnoop) {

  /** PASID-granular translation type, with the VT-d encodings of {@code pasid.h}. */
  public enum Pgtt {
    /** First-stage only (PASID_ENTRY_PGTT_FL_ONLY). Not produced: paging domains are stage 2. */
    FIRST_STAGE(1),
    /** Second-stage only (PASID_ENTRY_PGTT_SL_ONLY): a {@link PagingDomain}. */
    SECOND_STAGE(2),
    /** Nested (PASID_ENTRY_PGTT_NESTED): a {@link NestedDomain} over its parent. */
    NESTED(3),
    /** Pass-through (PASID_ENTRY_PGTT_PT). Not produced: identity domains are not modeled. */
    PASS_THROUGH(4);

    private final int encoding;

    Pgtt(int encoding) {
      this.encoding = encoding;
    }

    public int encoding() {
      return encoding;
    }
  }

  public PasidEntry {
    Objects.requireNonNull(domain, "domain");
    Objects.requireNonNull(pgtt, "pgtt");
    if (domainId != domain.id()) {
      throw new IllegalArgumentException("DID " + domainId + " is not domain " + domain.id());
    }
  }

  /** The entry the unit installs for {@code domain} at {@code pasid}. */
  static PasidEntry of(int pasid, Domain domain) {
    boolean pgsnp =
        domain instanceof NestedDomain n && n.parent().isCacheCoherencyEnforced();
    return new PasidEntry(pasid, domain, domain.id(), domain.pgtt(), pgsnp, true);
  }
}
