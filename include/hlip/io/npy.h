#pragma once
// NumPy .npy files (format versions 1.0, 2.0 and 3.0) in and out.
//
//   at::Tensor t = hlip::io::read_npy("scan.npy");       // dtype and shape as numpy.load gives them
//   hlip::io::write_npy("out.npy", t);
//   hlip::io::Volume vol = hlip::io::read_npy_volume("scan.npy");   // 3D array as a scan, float32
//
// Voxel types: bool, uint8, int8, int16, uint16, int32, int64, float16, float32, float64, little-endian
// ('<' or '|'). Big-endian arrays, object arrays, structured dtypes and Python pickles are refused.
// `fortran_order: True` is supported: the tensor is then a view with Fortran strides, indexed exactly as
// numpy indexes the array (a[i, j, k] == t[i][j][k]).

#include <ATen/ATen.h>

#include <cstddef>
#include <string>
#include <vector>

#include "hlip/io/volume.h"

namespace hlip::io {

struct NpyHeader {
  int major_version = 1;  // 1, 2 or 3
  std::string descr;      // numpy dtype string, e.g. "<f4"
  at::ScalarType dtype = at::kFloat;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // bytes from the start of the file to the array data
};

// Decodes the magic, version and header dict from the first `size` bytes of a .npy file; `path` only names
// the file in errors, which say the field and the value (`x.npy: header: descr '>f4' is big-endian`).
NpyHeader decode_npy_header(const void* bytes, size_t size, const std::string& path);

NpyHeader read_npy_header(const std::string& path);

// Reads the whole array in its stored dtype.
at::Tensor read_npy(const std::string& path);

// Writes `tensor` (any layout; written in C order) with format version 1.0 (2.0 when the header needs it).
// The file appears atomically (temporary file, then rename).
void write_npy(const std::string& path, const at::Tensor& tensor);

// A 3D array (or volume `volume` of a 4D one, indexed a[i, j, k, t]) as a Volume with spacing 1 mm and
// an identity affine: a .npy carries no geometry. `values` as for NIfTI (no scaling exists here, so
// kScaledFloat32 just converts to float32).
Volume read_npy_volume(const std::string& path, int64_t volume = 0,
                       VoxelValues values = VoxelValues::kScaledFloat32);

}  // namespace hlip::io
