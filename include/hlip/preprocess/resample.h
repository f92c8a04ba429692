#pragma once
// Geometry of a [D, H, W] scan: resampling to a spacing, HLIP's loader resizes, centre pad / crop.
//
//   using namespace hlip::preprocess;
//   auto chest = resample_to_spacing(scan.data, scan.spacing_mm, {3, 1, 1});   // CT-RATE's 3×1×1 mm
//   at::Tensor fixed = center_pad_crop(chest.data, {112, 336, 336});           // CT-RATE's "crop"
//   at::Tensor brain = square_resize_crop(scan.data, {48, 224, 224}, 256,       // Pub-Brain-5's eval loader
//                                         SquareResize::kBilinearNearestExact);
//
// Grid conventions (docs/preprocess.md): output voxel o of an axis resized from n_in to n_out voxels samples
// the input at
//   GridMode::kHalfPixel     src = (o + 0.5) · n_in / n_out − 0.5, clamped to [0, n_in − 1]
//                            = torch interpolate(align_corners=False) = scipy.ndimage.zoom(grid_mode=True,
//                              mode="nearest"); the grids' outer edges coincide. HLIP's convention.
//   GridMode::kAlignCorners  src = o · (n_in − 1) / (n_out − 1)
//                            = torch interpolate(align_corners=True) = scipy.ndimage.zoom(grid_mode=False);
//                              the first and last voxel centres coincide.
// Linear interpolation weights the two neighbours of src; nearest takes floor(src + 0.5) (scipy's order 0,
// computed in double as scipy does). HLIP's depth resize, torch's mode="nearest-exact", is its own function
// because torch computes it in float32: min(floor(float((o + 0.5) · float(n_in / n_out))), n_in − 1).

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <vector>

namespace hlip::preprocess {

enum class Interpolation {
  kLinear,   // trilinear; images (float32 or float64)
  kNearest,  // nearest neighbour; label maps (any dtype)
};

enum class GridMode { kHalfPixel, kAlignCorners };

// Resizes a [D, H, W] tensor to `size` (each ≥ 1).
at::Tensor resize_scan(const at::Tensor& scan, const std::array<int64_t, 3>& size,
                       Interpolation interpolation = Interpolation::kLinear,
                       GridMode grid = GridMode::kHalfPixel);

// Voxels along an axis of `size` voxels at `spacing_mm` after resampling to `target_spacing_mm`:
// int(size · spacing / target), as CT-RATE's process.py computes it (truncation; at least 1).
int64_t resampled_size(int64_t size, double spacing_mm, double target_spacing_mm);

struct Resampled {
  at::Tensor data;                     // [D', H', W'], D' = resampled_size(D, ...) and so on
  std::array<double, 3> spacing_mm{};  // the actual grid spacing: n_in·s/n_out (half-pixel) or
                                       // (n_in − 1)·s/(n_out − 1) (align corners); ≈ the target
};

// Resamples [D, H, W] with spacing `spacing_mm` to `target_spacing_mm` (all along D, H, W): resize_scan() to
// the resampled_size of each axis. With the defaults this is exactly CT-RATE's process.py
// (F.interpolate(size=..., mode="trilinear")).
Resampled resample_to_spacing(const at::Tensor& scan, const std::array<double, 3>& spacing_mm,
                              const std::array<double, 3>& target_spacing_mm,
                              Interpolation interpolation = Interpolation::kLinear,
                              GridMode grid = GridMode::kHalfPixel);

// torch's mode="nearest-exact" source index for each of `output_size` outputs of an axis of `input_size`.
std::vector<int64_t> nearest_exact_indices(int64_t input_size, int64_t output_size);

// Depth (dim 0) resized to `depth` slices with torch's nearest-exact: slices are picked, never blended.
at::Tensor resize_depth_nearest_exact(const at::Tensor& scan, int64_t depth);

// Every slice resized to `height` × `width` as torch's F.interpolate(mode="bilinear") (align_corners=False,
// no antialiasing).
at::Tensor resize_in_plane_bilinear(const at::Tensor& scan, int64_t height, int64_t width);

// Pads H or W with `value` so H == W, the smaller side centred: before = pad / 2, after = the rest, as HLIP.
at::Tensor pad_to_square(const at::Tensor& scan, double value = 0.0);

// Each axis padded or cropped to `size` about the centre: a pad puts (size − n) / 2 before, the rest after;
// a crop starts at (n − size) / 2 (integer division, as HLIP's CT-RATE loader).
at::Tensor center_pad_crop(const at::Tensor& scan, const std::array<int64_t, 3>& size, double value = 0.0);

// How square_resize_crop resizes the padded square scan to [D, R, R].
enum class SquareResize {
  kBilinearNearestExact,  // in-plane bilinear, depth nearest-exact: HLIP's evaluation loaders
  kTrilinear,             // one trilinear resize (align_corners=False)
};

// pad_to_square, resize to [output_size[0], resize_size, resize_size], centre crop to `output_size`:
// HLIP's Pub-Brain-5 evaluation loader with ({48, 224, 224}, 256, kBilinearNearestExact), CT-RATE's 2026
// "resize" with ({112, 336, 336}, 384, ...). Padding uses 0 (after intensity scaling, the minimum).
at::Tensor square_resize_crop(const at::Tensor& scan, const std::array<int64_t, 3>& output_size,
                              int64_t resize_size, SquareResize mode);

}  // namespace hlip::preprocess
