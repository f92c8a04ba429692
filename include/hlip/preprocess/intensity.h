#pragma once
// Intensity scaling to [0, 1]: MRI percentile clipping and CT Hounsfield windows, as HLIP prepares scans.
//
//   using namespace hlip::preprocess;
//   at::Tensor mri = percentile_normalize(t1);                      // clip to the 0.5 / 99.5 % values,
//   min-max at::Tensor brain = apply_window(head_ct_hu, named_window("brain"));      // HU 0..80 → 0..1
//   at::Tensor chest = apply_window(chest_hu, CtWindow{"ct-rate", -1150, 350});
//
// MRI (HLIP's clip_by_percentile, Pub-Brain-5 process.py): low/high = numpy.percentile of all voxels
// (method "linear", in float64), then value = (clip(x, low, high) − low) / (high − low + 1e-8), in float64,
// stored as float32. A constant scan therefore becomes all zeros.
// CT (HLIP's CT-RATE loaders): value = clamp((HU − min) / (max − min), 0, 1), computed in float32 as torch
// does; a window given as level/width has min = level − width/2, max = level + width/2.
// NaN or infinite voxels are refused (hlip::Error) rather than spread through the scan.

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace hlip::preprocess {

// numpy.percentile(values.astype(float64), q) for each q in `percents` (0 ≤ q ≤ 100, method "linear").
// `values` may have any shape; integer tensors (8/16-bit, and int32 within a 2^20-wide range) are counted
// value by value, anything else is read as float32. Exact either way (an O(n) selection, no sort).
std::vector<double> percentiles(const at::Tensor& values, const std::vector<double>& percents);
double percentile(const at::Tensor& values, double percent);

struct IntensityRange {
  double low = 0.0;
  double high = 1.0;
};

// The values at `low_percent` and `high_percent` (one selection pass for both).
IntensityRange percentile_range(const at::Tensor& values, double low_percent = 0.5,
                                double high_percent = 99.5);

// (clip(x, low, high) − low) / (high − low + 1e-8) in float64, returned as float32 (the scan's shape).
at::Tensor clip_and_rescale(const at::Tensor& scan, const IntensityRange& range);

// percentile_range of `scan` itself, then clip_and_rescale.
at::Tensor percentile_normalize(const at::Tensor& scan, double low_percent = 0.5, double high_percent = 99.5);

struct CtWindow {
  std::string name;  // names the scan made with it (a file suffix): lower-case letters, digits, '-', '_'
  double min_hu = 0.0;
  double max_hu = 0.0;

  static CtWindow from_level_width(std::string name, double level_hu, double width_hu);
  double level_hu() const { return (min_hu + max_hu) / 2; }
  double width_hu() const { return max_hu - min_hu; }
  bool operator==(const CtWindow& other) const {
    return name == other.name && min_hu == other.min_hu && max_hu == other.max_hu;
  }
};

// The named windows (docs/preprocess.md gives the sources): "brain" (level 40, width 80), "subdural" and its
// alias "blood" (80 / 200), "bone" (600 / 2800), "ct-rate" (−1150..350 HU). hlip::Error lists the names
// for any other.
CtWindow named_window(const std::string& name);
std::vector<std::string> window_names();

// clamp((HU − min) / (max − min), 0, 1) in float32.
at::Tensor apply_window(const at::Tensor& hu, const CtWindow& window);

}  // namespace hlip::preprocess
