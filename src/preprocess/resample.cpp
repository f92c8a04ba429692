#include "hlip/preprocess/resample.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "hlip/core/error.h"
#include "kernels.h"

namespace hlip::preprocess {
namespace {

void require_3d(const at::Tensor& scan, const char* what) {
  if (!scan.defined() || scan.dim() != 3) {
    throw Error(
        fmt::format("{}: expected a [D, H, W] tensor, got {} dims", what, scan.defined() ? scan.dim() : 0));
  }
  for (int d = 0; d < 3; ++d) {
    if (scan.size(d) < 1) throw Error(fmt::format("{}: dimension {} of the scan is 0", what, "DHW"[d]));
  }
}

void require_sizes(const std::array<int64_t, 3>& size, const char* what) {
  for (int d = 0; d < 3; ++d) {
    if (size[d] < 1)
      throw Error(fmt::format("{}: output size {} is {}, must be at least 1", what, "DHW"[d], size[d]));
  }
}

// scipy.ndimage.zoom's order-0 source index (NI_ZoomShift with mode "nearest"), in double as scipy.
std::vector<int64_t> scipy_nearest_indices(int64_t input_size, int64_t output_size, GridMode grid) {
  std::vector<int64_t> index(output_size);
  double zoom = 1.0;
  if (grid == GridMode::kHalfPixel) {
    zoom = static_cast<double>(input_size) / static_cast<double>(output_size);
  } else if (output_size > 1) {
    zoom = static_cast<double>(input_size - 1) / static_cast<double>(output_size - 1);
  }
  for (int64_t o = 0; o < output_size; ++o) {
    double cc = static_cast<double>(o);
    if (grid == GridMode::kHalfPixel) {
      cc += 0.5;
      cc *= zoom;
      cc -= 0.5;
    } else {
      cc *= zoom;
    }
    cc = std::clamp(cc, 0.0, static_cast<double>(input_size - 1));
    index[o] = std::min(static_cast<int64_t>(std::floor(cc + 0.5)), input_size - 1);
  }
  return index;
}

at::Tensor index_tensor(const std::vector<int64_t>& index) {
  return at::tensor(at::ArrayRef<int64_t>(index), at::kLong);
}

// Every slice resized bilinearly to height × width, keeping the centred crop_h × crop_w window (padded with
// 0 where the crop is larger): the resize and the crop in one pass, without the full-size intermediate.
at::Tensor bilinear_crop(const at::Tensor& scan, int64_t height, int64_t width, int64_t crop_h,
                         int64_t crop_w) {
  const at::Tensor in = scan.to(at::kFloat).contiguous();
  const int64_t depth = in.size(0), rows_in = in.size(1), cols_in = in.size(2);
  const int64_t kept_h = std::min(height, crop_h), kept_w = std::min(width, crop_w);
  const detail::LinearAxis rows = detail::linear_axis(rows_in, height, (height - kept_h) / 2, kept_h);
  const detail::LinearAxis cols = detail::linear_axis(cols_in, width, (width - kept_w) / 2, kept_w);
  at::Tensor out = at::empty({depth, kept_h, kept_w}, in.options());
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, depth, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d)
      detail::bilinear_plane(src + d * rows_in * cols_in, cols_in, rows, cols, dst + d * kept_h * kept_w);
  });
  return center_pad_crop(out, {depth, crop_h, crop_w});
}

}  // namespace

at::Tensor resize_scan(const at::Tensor& scan, const std::array<int64_t, 3>& size,
                       Interpolation interpolation, GridMode grid) {
  require_3d(scan, "resize");
  require_sizes(size, "resize");
  if (interpolation == Interpolation::kNearest) {
    at::Tensor out = scan;
    for (int d = 0; d < 3; ++d) {
      if (size[d] != scan.size(d)) {  // an unchanged axis maps every index to itself
        out = out.index_select(d, index_tensor(scipy_nearest_indices(scan.size(d), size[d], grid)));
      }
    }
    return out.contiguous();
  }
  if (!at::isFloatingType(scan.scalar_type()) || scan.scalar_type() == at::kHalf ||
      scan.scalar_type() == at::kBFloat16) {
    throw Error(fmt::format("resize: linear interpolation needs float32 or float64 voxels, got {}",
                            c10::toString(scan.scalar_type())));
  }
  return at::upsample_trilinear3d(scan.contiguous().unsqueeze(0).unsqueeze(0), {size[0], size[1], size[2]},
                                  grid == GridMode::kAlignCorners)
      .squeeze(0)
      .squeeze(0);
}

int64_t resampled_size(int64_t size, double spacing_mm, double target_spacing_mm) {
  if (!(spacing_mm > 0) || !std::isfinite(spacing_mm) || !(target_spacing_mm > 0) ||
      !std::isfinite(target_spacing_mm)) {
    throw Error(fmt::format("resample: spacing {} mm to {} mm: spacings must be positive and finite",
                            spacing_mm, target_spacing_mm));
  }
  // int(n * s / t) in Python evaluates (n * s) / t; the same order keeps the same rounding.
  const double exact = static_cast<double>(size) * spacing_mm / target_spacing_mm;
  return std::max<int64_t>(1, static_cast<int64_t>(exact));
}

Resampled resample_to_spacing(const at::Tensor& scan, const std::array<double, 3>& spacing_mm,
                              const std::array<double, 3>& target_spacing_mm, Interpolation interpolation,
                              GridMode grid) {
  require_3d(scan, "resample");
  Resampled out;
  std::array<int64_t, 3> size{};
  for (int d = 0; d < 3; ++d) {
    const int64_t n = scan.size(d);
    size[d] = resampled_size(n, spacing_mm[d], target_spacing_mm[d]);
    if (grid == GridMode::kHalfPixel) {
      out.spacing_mm[d] = static_cast<double>(n) * spacing_mm[d] / static_cast<double>(size[d]);
    } else {
      out.spacing_mm[d] = size[d] > 1
                              ? static_cast<double>(n - 1) * spacing_mm[d] / static_cast<double>(size[d] - 1)
                              : spacing_mm[d];
    }
  }
  out.data = resize_scan(scan, size, interpolation, grid);
  return out;
}

std::vector<int64_t> nearest_exact_indices(int64_t input_size, int64_t output_size) {
  if (input_size < 1 || output_size < 1) {
    throw Error(
        fmt::format("nearest-exact resize from {} to {}: sizes must be at least 1", input_size, output_size));
  }
  // ATen's nearest_neighbor_exact_compute_source_index: a float scale, a double product, a float floor.
  const float scale = static_cast<float>(input_size) / static_cast<float>(output_size);
  std::vector<int64_t> index(output_size);
  for (int64_t o = 0; o < output_size; ++o) {
    const float position = static_cast<float>((static_cast<double>(o) + 0.5) * static_cast<double>(scale));
    index[o] = std::min(static_cast<int64_t>(std::floor(position)), input_size - 1);
  }
  return index;
}

at::Tensor resize_depth_nearest_exact(const at::Tensor& scan, int64_t depth) {
  require_3d(scan, "depth resize");
  if (depth == scan.size(0)) return scan;
  return scan.index_select(0, index_tensor(nearest_exact_indices(scan.size(0), depth)));
}

at::Tensor resize_in_plane_bilinear(const at::Tensor& scan, int64_t height, int64_t width) {
  require_3d(scan, "in-plane resize");
  require_sizes({1, height, width}, "in-plane resize");
  return bilinear_crop(scan, height, width, height, width);
}

at::Tensor pad_to_square(const at::Tensor& scan, double value) {
  require_3d(scan, "pad to square");
  const int64_t side = std::max(scan.size(1), scan.size(2));
  return center_pad_crop(scan, {scan.size(0), side, side}, value);
}

at::Tensor center_pad_crop(const at::Tensor& scan, const std::array<int64_t, 3>& size, double value) {
  require_3d(scan, "centre pad/crop");
  require_sizes(size, "centre pad/crop");
  if (scan.sizes() == at::IntArrayRef(size.data(), 3)) return scan;
  at::Tensor out = at::full({size[0], size[1], size[2]}, value, scan.options());
  at::Tensor from = scan;
  at::Tensor to = out;
  for (int d = 0; d < 3; ++d) {
    const int64_t n = scan.size(d);
    if (n >= size[d]) {
      from = from.narrow(d, (n - size[d]) / 2, size[d]);
    } else {
      to = to.narrow(d, (size[d] - n) / 2, n);
    }
  }
  to.copy_(from);
  return out;
}

at::Tensor square_resize_crop(const at::Tensor& scan, const std::array<int64_t, 3>& output_size,
                              int64_t resize_size, SquareResize mode) {
  require_3d(scan, "square resize");
  require_sizes(output_size, "square resize");
  if (resize_size < 1)
    throw Error(fmt::format("square resize: resize size is {}, must be at least 1", resize_size));
  const at::Tensor square = pad_to_square(scan);
  if (mode == SquareResize::kBilinearNearestExact) {
    // Bilinear works slice by slice, so picking the slices first gives the same values as HLIP's order
    // (resize every slice, then pick) for a fraction of the work.
    return bilinear_crop(resize_depth_nearest_exact(square, output_size[0]), resize_size, resize_size,
                         output_size[1], output_size[2])
        .contiguous();
  }
  const at::Tensor resized =
      resize_scan(square, {output_size[0], resize_size, resize_size}, Interpolation::kLinear);
  return center_pad_crop(resized, output_size).contiguous();
}

}  // namespace hlip::preprocess
