#include "kernels.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "hlip/core/error.h"

namespace hlip::preprocess::detail {

at::Tensor scaled_float_voxels(const io::Volume& volume) {
  if (!volume.data.defined() || volume.data.dim() != 3) {
    throw Error(fmt::format("{}: expected 3-D voxel data [I, J, K], got {} dims", volume.source_path,
                            volume.data.defined() ? volume.data.dim() : 0));
  }
  const bool scaled = volume.scale_slope != 1.0 || volume.scale_inter != 0.0;
  if (volume.data.scalar_type() == at::kFloat && !scaled) return volume.data;
  if (!scaled) return volume.data.to(at::kFloat);
  // As nibabel: scale in float64, then round once to float32.
  return (volume.data.to(at::kDouble) * volume.scale_slope + volume.scale_inter).to(at::kFloat);
}

at::Tensor flat_dense(const at::Tensor& values) {
  const at::Tensor t = values.is_non_overlapping_and_dense() ? values : values.contiguous();
  return t.as_strided({t.numel()}, {1});
}

at::Tensor flat_float(const at::Tensor& values) {
  return flat_dense(values.scalar_type() == at::kFloat ? values : values.to(at::kFloat));
}

void require_finite(const at::Tensor& src, const std::string& name) {
  if (src.numel() == 0) return;
  // min/max propagate NaN, and an infinity is its own extreme.
  const auto [lo, hi] = at::aminmax(flat_float(src));
  if (std::isfinite(lo.item<float>()) && std::isfinite(hi.item<float>())) return;
  const at::Tensor first = (~at::isfinite(src)).nonzero()[0];
  const float value = src.index({first[0], first[1], first[2]}).item<float>();
  throw Error(fmt::format("{}: voxel ({}, {}, {}) is {}", name, first[0].item<int64_t>(),
                          first[1].item<int64_t>(), first[2].item<int64_t>(),
                          std::isnan(value) ? "NaN" : (value > 0 ? "+inf" : "-inf")));
}

bool is_integer_voxel_type(at::ScalarType type) {
  return type == at::kByte || type == at::kChar || type == at::kShort || type == at::kInt;
}

at::Tensor source_voxels(const io::Volume& volume) {
  const bool scaled = volume.scale_slope != 1.0 || volume.scale_inter != 0.0;
  if (volume.data.defined() && is_integer_voxel_type(volume.data.scalar_type()) && !scaled &&
      volume.data.dim() == 3) {
    return volume.data;
  }
  at::Tensor voxels = scaled_float_voxels(volume);
  require_finite(voxels, "scan");
  return voxels;
}

OrientedSource::OrientedSource(const at::Tensor& src, const AxisMapping& mapping)
    : data_(src.data_ptr()), type_(src.scalar_type()) {
  TORCH_CHECK(src.dim() == 3, "OrientedSource: 3-D input");
  TORCH_CHECK(type_ == at::kFloat || is_integer_voxel_type(type_),
              "OrientedSource: float32 or 8/16/32-bit integer input, got ", type_);
  for (int d = 0; d < 3; ++d) {
    const int a = mapping[d].axis;
    size_[d] = src.size(a);
    step_[d] = mapping[d].flip ? -src.stride(a) : src.stride(a);
    if (mapping[d].flip) origin_ += (size_[d] - 1) * src.stride(a);
  }
}

template <typename T>
void OrientedSource::copy_plane_as(int64_t index, float* dst, int64_t dst_row_stride) const {
  const T* plane = static_cast<const T*>(data_) + origin_ + index * step_[0];
  const int64_t rows = size_[1], cols = size_[2], column_step = step_[2];
  for (int64_t r = 0; r < rows; ++r) {
    const T* line = plane + r * step_[1];
    float* out = dst + r * dst_row_stride;
    if constexpr (std::is_same_v<T, float>) {
      if (column_step == 1) {
        std::memcpy(out, line, sizeof(float) * cols);
        continue;
      }
    }
    if (column_step == 1) {
      for (int64_t c = 0; c < cols; ++c)
        out[c] = static_cast<float>(line[c]);
    } else {
      for (int64_t c = 0; c < cols; ++c)
        out[c] = static_cast<float>(line[c * column_step]);
    }
  }
}

void OrientedSource::copy_plane(int64_t index, float* dst, int64_t dst_row_stride) const {
  switch (type_) {
    case at::kByte:
      return copy_plane_as<uint8_t>(index, dst, dst_row_stride);
    case at::kChar:
      return copy_plane_as<int8_t>(index, dst, dst_row_stride);
    case at::kShort:
      return copy_plane_as<int16_t>(index, dst, dst_row_stride);
    case at::kInt:
      return copy_plane_as<int32_t>(index, dst, dst_row_stride);
    default:
      return copy_plane_as<float>(index, dst, dst_row_stride);
  }
}

at::Tensor gather_oriented(const at::Tensor& src, const AxisMapping& mapping,
                           const std::vector<int64_t>* first_axis_indices) {
  const OrientedSource source(src, mapping);
  const auto& size = source.sizes();
  const int64_t depth = first_axis_indices ? static_cast<int64_t>(first_axis_indices->size()) : size[0];
  at::Tensor out = at::empty({depth, size[1], size[2]}, src.options().dtype(at::kFloat));
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, depth, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d)
      source.copy_plane(first_axis_indices ? (*first_axis_indices)[d] : d, dst + d * size[1] * size[2],
                        size[2]);
  });
  return out;
}

void clip_and_rescale(const float* src, float* dst, int64_t n, const IntensityRange& range) {
  const double low = range.low, high = range.high;
  const double denominator = (high - low) + 1e-8;  // HLIP's epsilon: a constant scan maps to 0
  for (int64_t i = 0; i < n; ++i) {
    const double x = std::clamp(static_cast<double>(src[i]), low, high);
    dst[i] = static_cast<float>((x - low) / denominator);
  }
}

void apply_window(const float* src, float* dst, int64_t n, const CtWindow& window) {
  // As torch evaluates (img.float() - min) / (max - min) with Python-float operands: the width is formed in
  // double, then both operands are rounded to float32.
  const float min_hu = static_cast<float>(window.min_hu);
  const float width = static_cast<float>(window.max_hu - window.min_hu);
  for (int64_t i = 0; i < n; ++i)
    dst[i] = std::clamp((src[i] - min_hu) / width, 0.0f, 1.0f);
}

LinearAxis linear_axis(int64_t input, int64_t output, int64_t first, int64_t count) {
  LinearAxis axis;
  axis.index0.resize(count);
  axis.index1.resize(count);
  axis.weight0.resize(count);
  axis.weight1.resize(count);
  // ATen's compute_source_index_and_lambda: a float scale, the source position in double (acc_type of
  // float on the CPU), negative positions clamped to 0, and an exact copy when the size is unchanged.
  const float scale = static_cast<float>(input) / static_cast<float>(output);
  for (int64_t n = 0; n < count; ++n) {
    const int64_t o = first + n;
    if (input == output) {
      axis.index0[n] = axis.index1[n] = o;
      axis.weight0[n] = 1.0f;
      axis.weight1[n] = 0.0f;
      continue;
    }
    double position = static_cast<double>(scale) * (static_cast<double>(o) + 0.5) - 0.5;
    if (position < 0) position = 0;
    const auto i0 = static_cast<int64_t>(position);
    axis.index0[n] = i0;
    axis.index1[n] = i0 + (i0 < input - 1 ? 1 : 0);
    axis.weight1[n] = static_cast<float>(position - static_cast<double>(i0));
    axis.weight0[n] = 1.0f - axis.weight1[n];
  }
  return axis;
}

namespace {

// ATen's bilinear kernel computes (x00·w0 + x01·w1)·h0 + (x10·w0 + x11·w1)·h1. Its AVX2 build (chosen on
// CPUs with AVX2 and FMA) is compiled with fused multiply-adds, its default build without; the two loops
// below reproduce each bit for bit, and bilinear_plane picks the one ATen would run.
void bilinear_rows_plain(const float* src, int64_t stride, const LinearAxis& rows, const LinearAxis& cols,
                         float* dst) {
  const int64_t height = static_cast<int64_t>(rows.index0.size()),
                width = static_cast<int64_t>(cols.index0.size());
  const int64_t *x0 = cols.index0.data(), *x1 = cols.index1.data();
  const float *w0 = cols.weight0.data(), *w1 = cols.weight1.data();
  for (int64_t r = 0; r < height; ++r) {
    const float* a = src + rows.index0[r] * stride;
    const float* b = src + rows.index1[r] * stride;
    const float h0 = rows.weight0[r], h1 = rows.weight1[r];
    float* out = dst + r * width;
    for (int64_t c = 0; c < width; ++c)
      out[c] = (a[x0[c]] * w0[c] + a[x1[c]] * w1[c]) * h0 + (b[x0[c]] * w0[c] + b[x1[c]] * w1[c]) * h1;
  }
}

__attribute__((target("avx2,fma"))) void bilinear_rows_fma(const float* src, int64_t stride,
                                                           const LinearAxis& rows, const LinearAxis& cols,
                                                           float* dst) {
  const int64_t height = static_cast<int64_t>(rows.index0.size()),
                width = static_cast<int64_t>(cols.index0.size());
  const int64_t *x0 = cols.index0.data(), *x1 = cols.index1.data();
  const float *w0 = cols.weight0.data(), *w1 = cols.weight1.data();
  for (int64_t r = 0; r < height; ++r) {
    const float* a = src + rows.index0[r] * stride;
    const float* b = src + rows.index1[r] * stride;
    const float h0 = rows.weight0[r], h1 = rows.weight1[r];
    float* out = dst + r * width;
    for (int64_t c = 0; c < width; ++c) {
      const float top = __builtin_fmaf(a[x0[c]], w0[c], a[x1[c]] * w1[c]);
      const float bottom = __builtin_fmaf(b[x0[c]], w0[c], b[x1[c]] * w1[c]);
      out[c] = __builtin_fmaf(top, h0, bottom * h1);
    }
  }
}

bool aten_uses_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

}  // namespace

void bilinear_plane(const float* src, int64_t src_row_stride, const LinearAxis& rows, const LinearAxis& cols,
                    float* dst) {
  if (aten_uses_fma()) {
    bilinear_rows_fma(src, src_row_stride, rows, cols, dst);
  } else {
    bilinear_rows_plain(src, src_row_stride, rows, cols, dst);
  }
}

}  // namespace hlip::preprocess::detail
