#include "hlip/preprocess/intensity.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hlip/core/error.h"

namespace hlip::preprocess {
namespace {

// The values as one dense float32 buffer: the tensor itself when its memory is already dense (any stride
// order, such as a NIfTI volume's Fortran layout), since order does not matter for order statistics.
at::Tensor dense_float(const at::Tensor& values) {
  at::Tensor t = values.scalar_type() == at::kFloat ? values : values.to(at::kFloat);
  return t.is_non_overlapping_and_dense() ? t : t.contiguous();
}

void require_finite_range(float lo, float hi, const char* what) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    throw Error(fmt::format("{}: the scan has NaN or infinite voxels", what));
  }
}

// The values of rank `ranks` (0-based, ascending order) among p[0..n), by a histogram over [lo, hi] that
// finds each rank's bin, then a selection among that bin's values only. Three passes over the data; exact.
std::vector<float> order_statistics(const float* p, int64_t n, float lo, float hi,
                                    const std::vector<int64_t>& ranks) {
  std::vector<float> out(ranks.size(), lo);
  if (lo == hi) return out;
  constexpr int64_t kBins = int64_t{1} << 16;
  // (x − lo) · scale is monotone in x in float arithmetic, so bins never reorder values.
  const float scale = static_cast<float>(static_cast<double>(kBins) / (static_cast<double>(hi) - lo));
  const auto bin_of = [lo, scale](float x) {
    return std::min<int64_t>(static_cast<int64_t>((x - lo) * scale), kBins - 1);
  };
  std::vector<int64_t> counts(kBins, 0);
  for (int64_t i = 0; i < n; ++i)
    ++counts[bin_of(p[i])];

  struct Target {
    int64_t bin = 0;
    int64_t rank_in_bin = 0;
  };
  std::vector<Target> targets(ranks.size());
  {
    int64_t below = 0, bin = 0;
    std::vector<size_t> order(ranks.size());
    for (size_t r = 0; r < ranks.size(); ++r)
      order[r] = r;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranks[a] < ranks[b]; });
    for (size_t r : order) {
      while (below + counts[bin] <= ranks[r])
        below += counts[bin++];
      targets[r] = {bin, ranks[r] - below};
    }
  }
  // Per wanted bin (at most one per rank): its values' minimum and maximum first, since a bin of equal
  // values (common: the background of a scan) needs no selection at all.
  std::vector<int8_t> slot(kBins, -1);
  std::vector<int64_t> wanted;
  for (const Target& t : targets) {
    if (slot[t.bin] < 0) {
      slot[t.bin] = static_cast<int8_t>(wanted.size());
      wanted.push_back(t.bin);
    }
  }
  std::vector<float> bin_min(wanted.size(), hi), bin_max(wanted.size(), lo);
  for (int64_t i = 0; i < n; ++i) {
    const int s = slot[bin_of(p[i])];
    if (s < 0) continue;
    bin_min[s] = std::min(bin_min[s], p[i]);
    bin_max[s] = std::max(bin_max[s], p[i]);
  }
  std::vector<std::vector<float>> members(wanted.size());
  bool any_mixed = false;
  for (size_t s = 0; s < wanted.size(); ++s) {
    if (bin_min[s] != bin_max[s]) {
      members[s].reserve(counts[wanted[s]]);
      any_mixed = true;
    }
  }
  if (any_mixed) {
    for (int64_t i = 0; i < n; ++i) {
      const int s = slot[bin_of(p[i])];
      if (s >= 0 && bin_min[s] != bin_max[s]) members[s].push_back(p[i]);
    }
  }
  for (size_t r = 0; r < ranks.size(); ++r) {
    const int s = slot[targets[r].bin];
    if (bin_min[s] == bin_max[s]) {
      out[r] = bin_min[s];
      continue;
    }
    std::vector<float>& v = members[s];
    std::nth_element(v.begin(), v.begin() + targets[r].rank_in_bin, v.end());
    out[r] = v[targets[r].rank_in_bin];
  }
  return out;
}

// `values` as contiguous float32, refusing NaN and infinities.
at::Tensor finite_float(const at::Tensor& values, const char* what) {
  if (!values.defined() || values.numel() == 0) throw Error(fmt::format("{}: the scan has no voxels", what));
  const at::Tensor t = values.to(at::kFloat).contiguous();
  const auto [min_t, max_t] = at::aminmax(t);
  require_finite_range(min_t.item<float>(), max_t.item<float>(), what);
  return t;
}

}  // namespace

std::vector<double> percentiles(const at::Tensor& values, const std::vector<double>& percents) {
  if (!values.defined() || values.numel() == 0) throw Error("percentile: the scan has no voxels");
  for (double q : percents) {
    if (!(q >= 0.0 && q <= 100.0)) throw Error(fmt::format("percentile: {} is outside [0, 100]", q));
  }
  const at::Tensor dense = dense_float(values);
  const auto [min_t, max_t] = at::aminmax(dense);  // propagates NaN
  const float lo = min_t.item<float>(), hi = max_t.item<float>();
  require_finite_range(lo, hi, "percentile");

  // numpy's "linear" method: virtual index (n − 1)·q, then a lerp between its two neighbours.
  const int64_t n = dense.numel();
  std::vector<int64_t> ranks;
  std::vector<double> gammas;
  for (double q : percents) {
    const double virtual_index = static_cast<double>(n - 1) * (q / 100.0);
    int64_t previous = static_cast<int64_t>(std::floor(virtual_index));
    int64_t next = previous + 1;
    if (virtual_index >= static_cast<double>(n - 1)) previous = next = n - 1;
    if (virtual_index < 0) previous = next = 0;
    ranks.push_back(previous);
    ranks.push_back(next);
    gammas.push_back(virtual_index - static_cast<double>(previous));
  }
  const std::vector<float> stats = order_statistics(dense.data_ptr<float>(), n, lo, hi, ranks);
  std::vector<double> out;
  for (size_t i = 0; i < percents.size(); ++i) {
    const double a = stats[2 * i], b = stats[2 * i + 1], t = gammas[i];
    const double diff = b - a;
    out.push_back(t >= 0.5 ? b - diff * (1 - t) : a + diff * t);  // numpy's _lerp
  }
  return out;
}

double percentile(const at::Tensor& values, double percent) {
  return percentiles(values, {percent})[0];
}

IntensityRange percentile_range(const at::Tensor& values, double low_percent, double high_percent) {
  if (!(low_percent < high_percent)) {
    throw Error(fmt::format("percentile clip: low {} must be below high {}", low_percent, high_percent));
  }
  const auto v = percentiles(values, {low_percent, high_percent});
  return {v[0], v[1]};
}

at::Tensor clip_and_rescale(const at::Tensor& scan, const IntensityRange& range) {
  const at::Tensor in = finite_float(scan, "percentile clip");
  at::Tensor out = at::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const double low = range.low, high = range.high;
  const double denominator = (high - low) + 1e-8;  // HLIP's epsilon: a constant scan maps to 0
  at::parallel_for(0, in.numel(), int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double x = std::clamp(static_cast<double>(src[i]), low, high);
      dst[i] = static_cast<float>((x - low) / denominator);
    }
  });
  return out;
}

at::Tensor percentile_normalize(const at::Tensor& scan, double low_percent, double high_percent) {
  return clip_and_rescale(scan, percentile_range(scan, low_percent, high_percent));
}

CtWindow CtWindow::from_level_width(std::string name, double level_hu, double width_hu) {
  return CtWindow{std::move(name), level_hu - width_hu / 2, level_hu + width_hu / 2};
}

namespace {

// Level / width in HU. Sources in docs/preprocess.md.
const std::vector<CtWindow>& known_windows() {
  static const std::vector<CtWindow> windows = {
      CtWindow::from_level_width("brain", 40, 80),
      CtWindow::from_level_width("subdural", 80, 200),
      CtWindow::from_level_width("blood", 80, 200),
      CtWindow::from_level_width("bone", 600, 2800),
      CtWindow{"ct-rate", -1150, 350},
  };
  return windows;
}

}  // namespace

std::vector<std::string> window_names() {
  std::vector<std::string> names;
  for (const CtWindow& w : known_windows())
    names.push_back(w.name);
  return names;
}

CtWindow named_window(const std::string& name) {
  for (const CtWindow& w : known_windows()) {
    if (w.name == name) return w;
  }
  throw Error(fmt::format("unknown CT window \"{}\" (known: {})", name, fmt::join(window_names(), ", ")));
}

at::Tensor apply_window(const at::Tensor& hu, const CtWindow& window) {
  if (!(window.max_hu > window.min_hu) || !std::isfinite(window.min_hu) || !std::isfinite(window.max_hu)) {
    throw Error(fmt::format("CT window \"{}\": min {} HU must be below max {} HU", window.name, window.min_hu,
                            window.max_hu));
  }
  const at::Tensor in = finite_float(hu, "CT window");
  at::Tensor out = at::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  // As torch evaluates (img.float() - min) / (max - min) with Python-float operands: the width is formed in
  // double, then both operands are rounded to float32.
  const float min_hu = static_cast<float>(window.min_hu);
  const float width = static_cast<float>(window.max_hu - window.min_hu);
  at::parallel_for(0, in.numel(), int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      dst[i] = std::clamp((src[i] - min_hu) / width, 0.0f, 1.0f);
  });
  return out;
}

}  // namespace hlip::preprocess
