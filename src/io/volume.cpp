#include "hlip/io/volume.h"

#include <fmt/format.h>

#include <utility>

#include "hlip/core/error.h"
#include "hlip/io/dicom.h"
#include "hlip/io/nifti.h"
#include "hlip/io/npy.h"

namespace hlip::io {

Affine identity_affine() {
  Affine a{};
  for (int i = 0; i < 4; ++i)
    a[i][i] = 1.0;
  return a;
}

std::array<double, 3> voxel_to_world(const Affine& affine, double i, double j, double k) {
  std::array<double, 3> xyz{};
  for (int r = 0; r < 3; ++r)
    xyz[r] = affine[r][0] * i + affine[r][1] * j + affine[r][2] * k + affine[r][3];
  return xyz;
}

Volume volume_from_tensor(at::Tensor data, std::array<double, 3> spacing_mm, std::string source_path) {
  if (data.dim() != 3) {
    throw Error(fmt::format("{}: expected a 3D array [I, J, K], got {} dims", source_path, data.dim()));
  }
  Volume volume;
  for (int a = 0; a < 3; ++a) {
    volume.dims[a] = data.size(a);
    volume.spacing_mm[a] = spacing_mm[a];
    volume.affine[a][a] = spacing_mm[a];
  }
  volume.stored_dtype = data.scalar_type();
  volume.data = std::move(data);
  volume.source_path = std::move(source_path);
  return volume;
}

Volume read_volume(const std::string& path, int64_t volume, VoxelValues values) {
  const auto has_suffix = [&path](const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (has_suffix(".npy")) return read_npy_volume(path, volume, values);
  if (!has_suffix(".nii") && !has_suffix(".nii.gz") && looks_like_dicom(path)) {
    if (volume != 0) {
      throw Error(
          fmt::format("{}: volume {} requested, but a DICOM series is a single 3D volume", path, volume));
    }
    DicomReadOptions options;
    options.values = values;
    return read_dicom_series(path, options);
  }
  NiftiReadOptions options;
  options.volume = volume;
  options.values = values;
  return read_nifti(path, options);
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kByte:
      return "uint8";
    case at::kChar:
      return "int8";
    case at::kShort:
      return "int16";
    case at::kInt:
      return "int32";
    case at::kLong:
      return "int64";
    case at::kHalf:
      return "float16";
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    default:
      return c10::toString(type);
  }
}

}  // namespace hlip::io
