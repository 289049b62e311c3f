package io.iommulab.hardware.msi;

/**
 * The outcome of one write to an MSIIR: which vector fired and whose it is.
 *
 * @param bank bank index
 * @param vector the vector the data word selected
 * @param targetRid rid that owns the vector, or {@link MsiBank#FREE} when it is not allocated
 * @param targetGroup group of that rid, or {@link MsiBank#FREE}
 * @param targetOwner owner of that group, or {@link MsiBank#FREE}
 * @param writerRid the rid that wrote the MSIIR
 * @param writerOwner owner of the writer's group, or {@link MsiBankSet#UNKNOWN_OWNER}
 * @param spurious the vector is not allocated: the MSIR bit is set but nothing handles it
 * @param crossOwner the writer raised a vector of another owner: an isolation breach in action
 */
public record MsiDelivery(
    int bank,
    int vector,
    int targetRid,
    int targetGroup,
    int targetOwner,
    int writerRid,
    int writerOwner,
    boolean spurious,
    boolean crossOwner) {}
