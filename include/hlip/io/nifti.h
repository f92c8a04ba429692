#pragma once
// NIfTI-1 and NIfTI-2 files (.nii, .nii.gz) in and out, agreeing with nibabel.
//
//   auto header = hlip::io::read_nifti_header("bold.nii.gz");      // no voxels read
//   hlip::io::NiftiReadOptions options;
//   options.volume = 3;                                               // the 4th volume of a 4D file
//   auto vol = hlip::io::read_nifti("bold.nii.gz", options);
//   hlip::io::write_nifti("heat.nii.gz", heat_map_f32, vol.affine);
//
// The affine follows nibabel's `get_best_affine`: the sform when sform_code is 1..5, else the qform when
// qform_code is 1..5, else the Analyze base affine (pixdim scaling, x flipped, origin at the grid centre).
// docs/volumes.md has the full rules for scaling, affines and axis order.

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hlip/io/volume.h"

namespace hlip::io {

struct NiftiHeader {
  std::string path;
  int version = 1;                    // 1 or 2
  bool byte_swapped = false;          // the file is big-endian (on this little-endian machine)
  std::vector<int64_t> dims;          // dim[1..dim[0]], as nibabel's `img.shape`
  std::vector<double> pixdim;         // pixdim[1..dim[0]], as nibabel's `header.get_zooms()`
  int datatype = 0;                   // NIfTI DT_* code
  std::string datatype_name;          // "int16", "float32", ...
  at::ScalarType dtype = at::kFloat;  // the voxel type as a tensor dtype
  double scl_slope = 0.0;             // as stored; slope 0 or non-finite means no scaling
  double scl_inter = 0.0;
  int qform_code = 0;
  int sform_code = 0;
  Affine qform = identity_affine();   // from the quaternion fields (nibabel's get_qform())
  Affine sform = identity_affine();   // srow_x/y/z (nibabel's get_sform())
  Affine affine = identity_affine();  // the best of the two, nibabel's get_best_affine()
  int xyz_units = 0;                  // NIFTI_UNITS_* code of the spatial dims (2 = mm)
  int64_t vox_offset = 0;             // byte offset of the voxels in the (uncompressed) file
  std::string description;

  // Volumes along dim 4 (1 for a 3D file).
  int64_t num_volumes() const;
};

struct NiftiReadOptions {
  int64_t volume = 0;  // which volume of a 4D file (`--volume K`); must be 0 for a 3D file
  VoxelValues values = VoxelValues::kScaledFloat32;
  // Refuse NaN / ±Inf voxels (after scaling), naming the first one. Off by default: the reader reports
  // what the file holds, as nibabel does; preprocessing turns it on.
  bool require_finite = false;
};

// Reads the header only (the first 348 or 540 bytes, decompressed as needed).
NiftiHeader read_nifti_header(const std::string& path);

// Decodes a NIfTI-1 or NIfTI-2 header from the first `size` bytes of a file; `path` only names it in
// errors. Validates what the reader relies on: magic, sizeof_hdr, dims (positive, product without
// overflow), datatype, spacing, scaling and quaternion fields.
NiftiHeader decode_nifti_header(const void* bytes, size_t size, const std::string& path);

// Reads one 3D volume. Files with fewer than 3 dims get extent 1 for the missing ones; dims 5..7 must be 1.
Volume read_nifti(const std::string& path, const NiftiReadOptions& options = {});

struct NiftiWriteOptions {
  std::string description;  // NIfTI descrip, at most 79 characters kept
  int version = 1;          // 1 or 2
};

// Writes `data` ([I, J, K] or [I, J, K, T]; float32, uint8 or int16, stored as is, no scaling) with
// `affine` as both qform and sform (codes 1, scanner), pixdim from the affine's column norms. `.nii.gz`
// paths are gzip-compressed. The file appears atomically: written to a temporary file in the same
// folder, then renamed.
void write_nifti(const std::string& path, const at::Tensor& data, const Affine& affine,
                 const NiftiWriteOptions& options = {});

// Writes `volume.data` with `volume.affine` (and `volume.description` unless `options` gives one).
void write_nifti(const std::string& path, const Volume& volume, const NiftiWriteOptions& options = {});

}  // namespace hlip::io
