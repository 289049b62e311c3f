package io.iommulab.actors.fd.model;

/** {@code enum iommufd_object_type} of the objects an fd holds ({@code iommufd_private.h}). */
public enum ObjectType {
  IOAS,
  DEVICE,
  HWPT_PAGING,
  HWPT_NESTED,
  FAULT,
  VIOMMU,
  VDEVICE,
  VEVENTQ
}
