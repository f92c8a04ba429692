#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include <string>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/preprocess/intensity.h"
#include "hlip/preprocess/orient.h"
#include "hlip/preprocess/preset.h"
#include "hlip/preprocess/resample.h"
#include "kernels.h"

namespace hlip::preprocess {
namespace {

// One pointwise intensity map of the preset: MRI percentile clip (one) or a CT window (one per window).
struct IntensityMap {
  std::optional<IntensityRange> range;
  std::optional<CtWindow> window;
  std::string suffix;

  void apply(const float* src, float* dst, int64_t n) const {
    if (range) {
      detail::clip_and_rescale(src, dst, n, *range);
    } else {
      detail::apply_window(src, dst, n, *window);
    }
  }
  at::Tensor apply(const at::Tensor& scan) const {
    return range ? clip_and_rescale(scan, *range) : apply_window(scan, *window);
  }
};

std::vector<IntensityMap> intensity_maps(const Preset& preset, const at::Tensor& statistics_source) {
  std::vector<IntensityMap> maps;
  if (preset.modality == "mri") {
    maps.push_back(
        {percentile_range(statistics_source, preset.percentile_low, preset.percentile_high), {}, ""});
  } else {
    for (const CtWindow& window : preset.windows)
      maps.push_back({{}, window, preset.windows.size() > 1 ? window.name : ""});
  }
  return maps;
}

// The "eval" geometry on the source grid, fused: for each kept slice, read it in HLIP's orientation into a
// zero-bordered square buffer, apply each intensity map to the scan's part of it, and resize bilinearly
// straight into the centre crop. The only large allocations are the outputs; the values are those of the
// step-by-step chain (same loops, same order of operations).
std::vector<ProcessedScan> fused_eval(const at::Tensor& voxels, const AxisMapping& mapping,
                                      const std::vector<IntensityMap>& maps, const Preset& preset) {
  const detail::OrientedSource source(voxels, mapping);
  const auto [depth_in, height, width] = source.sizes();
  const int64_t side = std::max(height, width), top = (side - height) / 2, left = (side - width) / 2;
  const auto [depth, crop_h, crop_w] = preset.output_size;
  const int64_t resize = preset.resize_size;  // validate(): at least crop_h and crop_w
  const std::vector<int64_t> slices = nearest_exact_indices(depth_in, depth);
  const detail::LinearAxis rows = detail::linear_axis(side, resize, (resize - crop_h) / 2, crop_h);
  const detail::LinearAxis cols = detail::linear_axis(side, resize, (resize - crop_w) / 2, crop_w);

  std::vector<ProcessedScan> out;
  for (const IntensityMap& map : maps)
    out.push_back({at::empty({depth, crop_h, crop_w}, voxels.options().dtype(at::kFloat)), map.suffix});
  at::parallel_for(0, depth, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> raw(height * width), square(side * side, 0.0f);
    for (int64_t d = begin; d < end; ++d) {
      source.copy_plane(slices[d], raw.data(), width);
      for (size_t m = 0; m < maps.size(); ++m) {
        for (int64_t r = 0; r < height; ++r)
          maps[m].apply(raw.data() + r * width, square.data() + (top + r) * side + left, width);
        detail::bilinear_plane(square.data(), side, rows, cols,
                               out[m].data.data_ptr<float>() + d * crop_h * crop_w);
      }
    }
  });
  return out;
}

std::vector<ProcessedScan> run_chain(const io::Volume& volume, const Preset& preset) {
  const at::Tensor voxels = detail::source_voxels(volume);
  for (int a = 0; a < 3; ++a) {
    if (voxels.size(a) < 1) throw Error(fmt::format("dimension {} is 0", "ijk"[a]));
  }
  // Canonical orientation and HLIP's axes, composed into one mapping of the source voxels.
  const AxisMapping canonical = closest_canonical_mapping(volume.affine);
  const AxisMapping mapping =
      compose(canonical, hlip_axis_mapping(mapped_spacing(canonical, volume.spacing_mm)));

  if (!preset.target_spacing_mm && preset.geometry == "eval") {
    // Percentiles over every voxel, in any order: the source's own memory.
    return fused_eval(voxels, mapping, intensity_maps(preset, voxels), preset);
  }
  at::Tensor scan = detail::gather_oriented(voxels, mapping);
  if (preset.target_spacing_mm) {
    scan =
        resample_to_spacing(scan, mapped_spacing(mapping, volume.spacing_mm), *preset.target_spacing_mm).data;
  }
  std::vector<ProcessedScan> out;
  for (const IntensityMap& map : intensity_maps(preset, scan)) {
    const at::Tensor scaled = map.apply(scan);
    if (preset.geometry == "crop") {
      out.push_back({center_pad_crop(scaled, preset.output_size).contiguous(), map.suffix});
    } else {
      out.push_back({square_resize_crop(scaled, preset.output_size, preset.resize_size,
                                        preset.geometry == "eval" ? SquareResize::kBilinearNearestExact
                                                                  : SquareResize::kTrilinear),
                     map.suffix});
    }
  }
  return out;
}

}  // namespace

std::vector<ProcessedScan> preprocess_volume(const io::Volume& volume, const Preset& preset) {
  validate(preset);
  try {
    return run_chain(volume, preset);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", volume.source_path.empty() ? "volume" : volume.source_path, e.what()));
  }
}

}  // namespace hlip::preprocess
