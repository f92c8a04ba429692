#pragma once
// The scan cache that `hlip prepare` fills and the loaders read: each preprocessed scan is a NumPy `.npy`
// array `[D, H, W]` (uint8, as HLIP stores its tensors, or float16), with a JSON sidecar holding every
// preprocessing parameter and the source's shape, spacing, affine and checksum.
//
//   CACHE/cache.json                  format, version, voxel type, the preset used
//   CACHE/studies.jsonl               a manifest (docs/manifest.md) whose scan paths point into scans/
//   CACHE/scans/<study>/<scan>.npy    the voxels; numpy.load(path, mmap_mode="r") opens it
//   CACHE/scans/<study>/<scan>.json   the sidecar
//   CACHE/failures.jsonl              the studies `prepare` could not read, each with its reason
//
//   hlip::data::write_cached_scan("CACHE/scans/s1/T1.npy", scan01, hlip::data::CacheDtype::kUint8);
//   at::Tensor stored = hlip::data::read_cached_scan("CACHE/scans/s1/T1.npy");   // uint8 [D, H, W]
//   at::Tensor image = hlip::data::cached_to_unit_float(stored);                  // float32 in [0, 1]
//
// Loading is one read of the array bytes into the tensor (a page-cache copy when the file is cached), so a
// 48×224×224 uint8 scan costs about as much as copying 2.4 MB (docs/cache.md has the measured rate).

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hlip::data {

enum class CacheDtype {
  kUint8,    // value = round(255·x) for x in [0, 1]; read back as value / 255 (HLIP's convention)
  kFloat16,  // x as float16 (for windows or ranges where 1/255 steps are too coarse)
};

CacheDtype parse_cache_dtype(const std::string& name);  // "uint8" | "float16"
std::string to_string(CacheDtype dtype);

// Writes `scan` (float [D, H, W] with values in [0, 1]; values outside are clamped) as a .npy file,
// atomically.
void write_cached_scan(const std::string& path, const at::Tensor& scan, CacheDtype dtype);

// Reads a cached scan in its stored dtype (uint8 or float16), C-contiguous [D, H, W]. Errors name the file
// and the field: a missing file, a non-3D array, another dtype, a truncated file.
at::Tensor read_cached_scan(const std::string& path);

// Reads a cached scan into `out`, an existing contiguous tensor with the file's dtype and shape (a slot of
// a batch buffer), without allocating.
void read_cached_scan_into(const std::string& path, at::Tensor& out);

// The shape and stored dtype of a cached scan, from its header alone.
std::vector<int64_t> cached_scan_shape(const std::string& path);
at::ScalarType cached_scan_dtype(const std::string& path);

// A stored scan as float32 in [0, 1]: uint8 / 255, float16 widened.
at::Tensor cached_to_unit_float(const at::Tensor& stored);

// The sidecar path of a cached scan: the same path with `.json` in place of `.npy`.
std::string sidecar_path(const std::string& scan_path);

}  // namespace hlip::data
