#include "hlip/preprocess/grid.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/preprocess/orient.h"
#include "hlip/preprocess/resample.h"

namespace hlip::preprocess {
namespace {

// Oriented source index = scale · model index + offset, along one axis.
struct AxisTransform {
  double scale = 1.0;
  double offset = 0.0;

  // Appends a step whose input index is a · (its output index) + b.
  void then(double a, double b) {
    offset += scale * b;
    scale *= a;
  }
};

// Resizing n voxels to m on the half-pixel grid: input = (output + 0.5)·n/m − 0.5.
void resize(AxisTransform& axis, int64_t& n, int64_t m) {
  const double ratio = static_cast<double>(n) / static_cast<double>(m);
  axis.then(ratio, 0.5 * ratio - 0.5);
  n = m;
}

// center_pad_crop of n voxels to m: a crop starts at (n − m) / 2, a pad puts (m − n) / 2 before.
void pad_or_crop(AxisTransform& axis, int64_t& n, int64_t m) {
  axis.then(1.0, n >= m ? static_cast<double>((n - m) / 2) : -static_cast<double>((m - n) / 2));
  n = m;
}

}  // namespace

io::Affine model_voxel_to_source_voxel(const io::Volume& volume, const Preset& preset) {
  validate(preset);
  const AxisMapping canonical = closest_canonical_mapping(volume.affine);
  const AxisMapping mapping =
      compose(canonical, hlip_axis_mapping(mapped_spacing(canonical, volume.spacing_mm)));
  const std::array<double, 3> spacing = mapped_spacing(mapping, volume.spacing_mm);
  std::array<int64_t, 3> n{};
  for (int a = 0; a < 3; ++a)
    n[a] = volume.data.size(mapping[a].axis);

  std::array<AxisTransform, 3> axes{};
  if (preset.target_spacing_mm) {
    for (int a = 0; a < 3; ++a)
      resize(axes[a], n[a], resampled_size(n[a], spacing[a], (*preset.target_spacing_mm)[a]));
  }
  if (preset.geometry == "crop") {
    for (int a = 0; a < 3; ++a)
      pad_or_crop(axes[a], n[a], preset.output_size[a]);
  } else {  // "eval" and "resize": pad in-plane to square, resize to [D, R, R], centre crop
    resize(axes[0], n[0], preset.output_size[0]);
    const int64_t side = std::max(n[1], n[2]);
    for (int a = 1; a < 3; ++a) {
      pad_or_crop(axes[a], n[a], side);
      resize(axes[a], n[a], preset.resize_size);
      pad_or_crop(axes[a], n[a], preset.output_size[a]);
    }
  }

  io::Affine out{};
  out[3][3] = 1.0;
  for (int a = 0; a < 3; ++a) {
    const int source_axis = mapping[a].axis;
    if (mapping[a].flip) {
      out[source_axis][a] = -axes[a].scale;
      out[source_axis][3] = static_cast<double>(volume.data.size(source_axis) - 1) - axes[a].offset;
    } else {
      out[source_axis][a] = axes[a].scale;
      out[source_axis][3] = axes[a].offset;
    }
  }
  return out;
}

io::Affine model_voxel_to_world(const io::Volume& volume, const Preset& preset) {
  const io::Affine to_source = model_voxel_to_source_voxel(volume, preset);
  io::Affine out{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      for (int k = 0; k < 4; ++k)
        out[r][c] += volume.affine[r][k] * to_source[k][c];
    }
  }
  return out;
}

at::Tensor resample_to_source(const at::Tensor& map, const io::Volume& volume, const Preset& preset) {
  if (map.dim() != 3 || map.sizes() != at::IntArrayRef(preset.output_size.data(), 3)) {
    throw Error(fmt::format("resample to source: the map has shape [{}]; preset {} gives [{}]",
                            fmt::join(map.sizes(), ", "), preset.name, fmt::join(preset.output_size, ", ")));
  }
  const io::Affine to_source = model_voxel_to_source_voxel(volume, preset);
  // Each source axis reads one model axis, so trilinear sampling splits into one linear axis each: per
  // source index, the two model indices and their weights (weight 0 beyond the model grid's outer edge).
  struct Tap {
    int64_t low = 0, high = 0;
    float w_low = 0.0f, w_high = 0.0f;
  };
  std::array<std::vector<Tap>, 3> taps;  // by source axis
  std::array<int64_t, 3> stride{};       // of the model axis each source axis reads, in `model`
  const at::Tensor model = map.to(at::kFloat).contiguous();
  for (int s = 0; s < 3; ++s) {
    int a = 0;
    while (a < 3 && to_source[s][a] == 0.0)
      ++a;
    const double scale = to_source[s][a], offset = to_source[s][3];
    const int64_t m = model.size(a);
    stride[s] = model.stride(a);
    taps[s].resize(static_cast<size_t>(volume.data.size(s)));
    for (int64_t i = 0; i < volume.data.size(s); ++i) {
      const double x = (static_cast<double>(i) - offset) / scale;
      Tap& tap = taps[s][static_cast<size_t>(i)];
      if (x < -0.5 || x > static_cast<double>(m) - 0.5) continue;
      const double clamped = std::clamp(x, 0.0, static_cast<double>(m - 1));
      tap.low = static_cast<int64_t>(std::floor(clamped));
      tap.high = std::min(tap.low + 1, m - 1);
      tap.w_high = static_cast<float>(clamped - static_cast<double>(tap.low));
      tap.w_low = 1.0f - tap.w_high;
    }
  }
  const auto [ni, nj, nk] =
      std::array<int64_t, 3>{volume.data.size(0), volume.data.size(1), volume.data.size(2)};
  at::Tensor out = at::empty({ni, nj, nk}, at::kFloat);
  const float* src = model.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, ni, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Tap& ti = taps[0][static_cast<size_t>(i)];
      for (int64_t j = 0; j < nj; ++j) {
        const Tap& tj = taps[1][static_cast<size_t>(j)];
        for (int64_t k = 0; k < nk; ++k) {
          const Tap& tk = taps[2][static_cast<size_t>(k)];
          float value = 0.0f;
          for (const auto& [ii, wi] : {std::pair{ti.low, ti.w_low}, std::pair{ti.high, ti.w_high}}) {
            for (const auto& [jj, wj] : {std::pair{tj.low, tj.w_low}, std::pair{tj.high, tj.w_high}}) {
              const float wij = wi * wj;
              if (wij == 0.0f) continue;
              const float* row = src + ii * stride[0] + jj * stride[1];
              value += wij * (tk.w_low * row[tk.low * stride[2]] + tk.w_high * row[tk.high * stride[2]]);
            }
          }
          dst[(i * nj + j) * nk + k] = value;
        }
      }
    }
  });
  return out;
}

}  // namespace hlip::preprocess
