#pragma once
// A scan as the readers see it: voxels, grid spacing and the voxel → world affine.
//
//   hlip::io::Volume vol = hlip::io::read_nifti("t1.nii.gz");
//   vol.data.sizes();                            // [I, J, K], indexed like nibabel's get_fdata()
//   auto xyz = hlip::io::voxel_to_world(vol.affine, 10, 20, 5);   // RAS+ millimetres
//
// Axis order: `data[i][j][k]` is the voxel with NIfTI indices (i, j, k), exactly nibabel's
// `img.get_fdata()[i, j, k]`, and `affine` maps (i, j, k, 1) to scanner RAS+ coordinates in millimetres,
// exactly nibabel's `img.affine`. The tensor is a view with Fortran strides (1, I, I·J), the file's own
// layout, so reading costs no transpose; `.contiguous()` gives a C-ordered copy when one is needed.
// Reorientation to canonical RAS+ and HLIP's [D, H, W] order are preprocessing's job, not the readers'.

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>

namespace hlip::io {

// Row-major 4×4 matrix: affine[row][col]; the last row is (0, 0, 0, 1) for every affine hlip builds.
using Affine = std::array<std::array<double, 4>, 4>;

Affine identity_affine();

// Applies `affine` to the voxel index (i, j, k); fractional indices are allowed.
std::array<double, 3> voxel_to_world(const Affine& affine, double i, double j, double k);

// What a reader returns in `Volume::data`.
enum class VoxelValues {
  // float32 with the file's scaling (NIfTI scl_slope / scl_inter) applied: what every consumer of a scan
  // wants (models, resampling, intensity windows) and what `hlip convert` writes. Values equal nibabel's
  // `get_fdata(dtype=np.float32)` bit for bit.
  kScaledFloat32,
  // The voxels in the dtype stored in the file, unscaled; `Volume::scale_slope` / `scale_inter` say what
  // still has to be applied. For caches and tools that copy data through without touching it.
  kStored,
  // The values of kScaledFloat32, in less memory where that is exact: 8- and 16-bit integer voxels with no
  // scaling to apply stay in their stored type (uint16 as int32, as kStored), since each such value is its
  // own float32; everything else is kScaledFloat32. What `hlip prepare` reads: preprocessing takes integer
  // voxels directly, so a 16-bit scan never becomes a float32 copy of itself.
  kCompact,
};

struct Volume {
  at::Tensor data;                            // [I, J, K], see the axis order above
  std::array<int64_t, 3> dims{1, 1, 1};       // I, J, K (== data.sizes())
  std::array<double, 3> spacing_mm{1, 1, 1};  // grid spacing along i, j, k (NIfTI pixdim[1..3])
  Affine affine = identity_affine();          // voxel (i, j, k) → world RAS+ mm
  at::ScalarType stored_dtype = at::kFloat;   // the voxel type in the file (uint16 shows as int32)
  double scale_slope = 1.0;                   // still to apply to `data`: value = data·slope + inter;
  double scale_inter = 0.0;                   // (1, 0) unless read with VoxelValues::kStored
  std::string source_path;
  std::string description;  // NIfTI descrip, or empty
};

// numpy's name of a voxel type ("uint8", "int16", "float32", ...), as `hlip info` and cache sidecars write
// it.
std::string dtype_name(at::ScalarType type);

// A volume around `data` ([I, J, K], any dtype) with spacing `spacing_mm` and the axis-aligned affine
// diag(spacing_mm): for arrays that carry no geometry of their own (.npy, synthetic scans).
Volume volume_from_tensor(at::Tensor data, std::array<double, 3> spacing_mm = {1, 1, 1},
                          std::string source_path = {});

// Reads a scan by file type: `.npy` through read_npy_volume; a folder, a `.dcm` file or a file with the DICOM
// magic through read_dicom_series (the only or largest series; `volume` must be 0); anything else as NIfTI
// (plain or gzip, decided by content). `volume` picks the volume of a 4D file.
Volume read_volume(const std::string& path, int64_t volume = 0,
                   VoxelValues values = VoxelValues::kScaledFloat32);

}  // namespace hlip::io
