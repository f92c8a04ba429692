#include <fmt/format.h>

#include <string>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/preprocess/intensity.h"
#include "hlip/preprocess/orient.h"
#include "hlip/preprocess/preset.h"
#include "hlip/preprocess/resample.h"
#include "oriented_gather.h"

namespace hlip::preprocess {
namespace {

std::vector<ProcessedScan> run_chain(const io::Volume& volume, const Preset& preset) {
  const at::Tensor voxels = detail::scaled_float_voxels(volume);
  for (int a = 0; a < 3; ++a) {
    if (voxels.size(a) < 1) throw Error(fmt::format("dimension {} is 0", "ijk"[a]));
  }
  detail::require_finite(voxels, "scan");
  // Canonical orientation and HLIP's axes, composed into one mapping of the source voxels: the data is
  // copied once, and (for "eval") only the slices the depth resize keeps.
  const AxisMapping canonical = closest_canonical_mapping(volume.affine);
  const AxisMapping mapping =
      compose(canonical, hlip_axis_mapping(mapped_spacing(canonical, volume.spacing_mm)));
  const bool eval = preset.geometry == "eval";
  const int64_t depth = preset.output_size[0];

  at::Tensor scan;
  at::Tensor
      statistics_source;  // what the MRI percentiles are taken over: every voxel of the (resampled) scan
  if (preset.target_spacing_mm) {
    scan = resample_to_spacing(detail::gather_oriented(voxels, mapping),
                               mapped_spacing(mapping, volume.spacing_mm), *preset.target_spacing_mm)
               .data;
    statistics_source = scan;
    if (eval) scan = resize_depth_nearest_exact(scan, depth);
  } else {
    statistics_source = voxels;  // the same voxels in any order
    if (eval) {
      const std::vector<int64_t> slices = nearest_exact_indices(voxels.size(mapping[0].axis), depth);
      scan = detail::gather_oriented(voxels, mapping, &slices);
    } else {
      scan = detail::gather_oriented(voxels, mapping);
    }
  }

  // Intensity is pointwise, so scaling only the kept slices equals HLIP's scale-then-resize order.
  std::vector<ProcessedScan> out;
  if (preset.modality == "mri") {
    const IntensityRange range =
        percentile_range(statistics_source, preset.percentile_low, preset.percentile_high);
    out.push_back({clip_and_rescale(scan, range), ""});
  } else {
    for (const CtWindow& window : preset.windows)
      out.push_back({apply_window(scan, window), preset.windows.size() > 1 ? window.name : ""});
  }
  for (ProcessedScan& s : out) {
    if (preset.geometry == "crop") {
      s.data = center_pad_crop(s.data, preset.output_size).contiguous();
    } else {
      s.data = square_resize_crop(s.data, preset.output_size, preset.resize_size,
                                  eval ? SquareResize::kBilinearNearestExact : SquareResize::kTrilinear);
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
