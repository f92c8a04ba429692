#include "hlip/preprocess/intensity.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>

#include "hlip/core/error.h"
#include "kernels.h"

namespace hlip::preprocess {
namespace {

void require_finite_range(float lo, float hi, const char* what) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    throw Error(fmt::format("{}: the scan has NaN or infinite voxels", what));
  }
}

// Float32 values as unsigned keys in the same order (the sign bit flipped for positives, all bits for
// negatives), so order statistics can be found by counting key digits.
inline uint32_t order_key(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits ^ (static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u);
}

inline float from_order_key(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? key ^ 0x80000000u : ~key;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// The values of rank `ranks` (0-based, ascending) among p[0..n): an exact radix select in two passes. Pass 1
// counts the high 16 bits of every key, which places each rank in one bucket; pass 2 counts the low 16 bits
// of the keys in those (at most four) buckets, which gives each rank's key exactly. NaN and ±inf have keys
// of their own (high digits ≥ 0xFF80 or ≤ 0x007F), so pass 1 also finds them.
template <typename Count>
std::vector<float> order_statistics(const float* p, int64_t n, const std::vector<int64_t>& ranks,
                                    const char* what) {
  constexpr size_t kDigits = size_t{1} << 16;
  std::vector<Count> high(kDigits, 0);
  for (int64_t i = 0; i < n; ++i)
    ++high[order_key(p[i]) >> 16];
  for (size_t d = 0; d < kDigits; ++d) {
    if (high[d] != 0 && (d <= 0x007F || d >= 0xFF80)) {
      throw Error(fmt::format("{}: the scan has NaN or infinite voxels", what));
    }
  }
  // Each rank's high digit and its rank among the keys with that digit.
  const auto locate = [](const std::vector<Count>& counts, int64_t rank) {
    int64_t below = 0;
    size_t digit = 0;
    while (below + static_cast<int64_t>(counts[digit]) <= rank)
      below += static_cast<int64_t>(counts[digit++]);
    return std::pair<size_t, int64_t>{digit, rank - below};
  };
  std::vector<int> slot_of(kDigits, -1);
  std::vector<size_t> wanted;
  std::vector<std::pair<size_t, int64_t>> first(ranks.size());
  for (size_t r = 0; r < ranks.size(); ++r) {
    first[r] = locate(high, ranks[r]);
    if (slot_of[first[r].first] < 0) {
      slot_of[first[r].first] = static_cast<int>(wanted.size());
      wanted.push_back(first[r].first);
    }
  }
  std::vector<std::vector<Count>> low(wanted.size(), std::vector<Count>(kDigits, 0));
  if (wanted.size() == 1) {
    const uint32_t digit = static_cast<uint32_t>(wanted[0]);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = order_key(p[i]);
      if ((key >> 16) == digit) ++low[0][key & 0xFFFF];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = order_key(p[i]);
      const int slot = slot_of[key >> 16];
      if (slot >= 0) ++low[slot][key & 0xFFFF];
    }
  }
  std::vector<float> out(ranks.size());
  for (size_t r = 0; r < ranks.size(); ++r) {
    const size_t low_digit = locate(low[slot_of[first[r].first]], first[r].second).first;
    out[r] = from_order_key(static_cast<uint32_t>(first[r].first << 16 | low_digit));
  }
  return out;
}

// The same order statistics for integer voxels, by counting every value in a table over [min, max] (one
// pass for the range, one to count; no float copy). Integers of up to 24 bits are exact in float32, so the
// result equals order_statistics on the float32 values. Nothing when the range is wider than 2^20 (int32
// values other than uint16 voxels): the caller then selects on float32.
template <typename T>
std::optional<std::vector<float>> integer_order_statistics(const T* p, int64_t n,
                                                           const std::vector<int64_t>& ranks) {
  // A plain loop: LibTorch 1.13's aminmax on int16 is scalar and took 30 % of `hlip prepare`.
  T lo_value = p[0], hi_value = p[0];
  for (int64_t i = 1; i < n; ++i) {
    lo_value = std::min(lo_value, p[i]);
    hi_value = std::max(hi_value, p[i]);
  }
  const int64_t lo = lo_value, span = int64_t{hi_value} - lo + 1;
  if (span > (int64_t{1} << 20)) return std::nullopt;
  // Four tables filled in turn: a scan's many equal voxels (the background) would otherwise make each
  // increment wait for the previous one to the same counter.
  constexpr int64_t kTables = 4;
  std::vector<uint32_t> tables(static_cast<size_t>(kTables * span), 0);
  std::vector<int64_t> counts(static_cast<size_t>(span), 0);
  for (int64_t start = 0; start < n;) {
    const int64_t end = std::min(n, start + (int64_t{1} << 30));  // no uint32 table can overflow
    int64_t i = start;
    for (; i + kTables <= end; i += kTables) {
      for (int64_t t = 0; t < kTables; ++t)
        ++tables[static_cast<size_t>(t * span + (int64_t{p[i + t]} - lo))];
    }
    for (; i < end; ++i)
      ++tables[static_cast<size_t>(int64_t{p[i]} - lo)];
    for (int64_t t = 0; t < kTables; ++t) {
      for (int64_t v = 0; v < span; ++v) {
        counts[static_cast<size_t>(v)] += tables[static_cast<size_t>(t * span + v)];
        tables[static_cast<size_t>(t * span + v)] = 0;
      }
    }
    start = end;
  }
  std::vector<float> out;
  for (int64_t rank : ranks) {
    int64_t below = 0, value = 0;
    while (below + counts[static_cast<size_t>(value)] <= rank)
      below += counts[static_cast<size_t>(value++)];
    out.push_back(static_cast<float>(lo + value));
  }
  return out;
}

// `values` as contiguous float32, refusing NaN and infinities.
at::Tensor finite_float(const at::Tensor& values, const char* what) {
  if (!values.defined() || values.numel() == 0) throw Error(fmt::format("{}: the scan has no voxels", what));
  const at::Tensor t = values.to(at::kFloat).contiguous();
  const auto [min_t, max_t] = at::aminmax(t.view({-1}));
  require_finite_range(min_t.item<float>(), max_t.item<float>(), what);
  return t;
}

}  // namespace

std::vector<double> percentiles(const at::Tensor& values, const std::vector<double>& percents) {
  if (!values.defined() || values.numel() == 0) throw Error("percentile: the scan has no voxels");
  for (double q : percents) {
    if (!(q >= 0.0 && q <= 100.0)) throw Error(fmt::format("percentile: {} is outside [0, 100]", q));
  }
  // numpy's "linear" method: virtual index (n − 1)·q, then a lerp between its two neighbours.
  const int64_t n = values.numel();
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
  // Integer voxels are counted as they are; anything else is read as float32.
  std::optional<std::vector<float>> stats;
  if (detail::is_integer_voxel_type(values.scalar_type())) {
    const at::Tensor dense = detail::flat_dense(values);
    AT_DISPATCH_INTEGRAL_TYPES(dense.scalar_type(), "percentiles", [&] {
      stats = integer_order_statistics(dense.data_ptr<scalar_t>(), n, ranks);
    });
  }
  if (!stats) {
    const at::Tensor dense = detail::flat_float(values);
    const float* p = dense.data_ptr<float>();
    stats = n < (int64_t{1} << 32) ? order_statistics<uint32_t>(p, n, ranks, "percentile")
                                   : order_statistics<uint64_t>(p, n, ranks, "percentile");
  }
  std::vector<double> out;
  for (size_t i = 0; i < percents.size(); ++i) {
    const double a = (*stats)[2 * i], b = (*stats)[2 * i + 1], t = gammas[i];
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
  at::parallel_for(0, in.numel(), int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    detail::clip_and_rescale(src + begin, dst + begin, end - begin, range);
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
  at::parallel_for(0, in.numel(), int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    detail::apply_window(src + begin, dst + begin, end - begin, window);
  });
  return out;
}

}  // namespace hlip::preprocess
