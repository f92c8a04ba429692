#include "hlip/model/pos_embed.h"

#include <cmath>

#include <fmt/format.h>

#include "hlip/core/error.h"

namespace hlip::model {
namespace {

at::Tensor positions(int64_t n) {
  return at::arange(n, at::dtype(at::kFloat));
}

}  // namespace

at::Tensor sincos_1d(int64_t channels, const at::Tensor& pos) {
  if (channels <= 0 || channels % 2 != 0) {
    throw Error(fmt::format("sin-cos embedding: channels is {}, must be even and positive", channels));
  }
  const int64_t half = channels / 2;
  // Same float32 steps as the official numpy code: i / k, 10000^x, reciprocal, outer product, sin and cos.
  const at::Tensor exponent = at::arange(half, at::dtype(at::kFloat)) / static_cast<float>(half);
  const at::Tensor omega = at::reciprocal(at::pow(10000.0f, exponent));
  const at::Tensor angles = at::outer(pos.to(at::kFloat).reshape({-1}), omega);
  return at::cat({at::sin(angles), at::cos(angles)}, 1);
}

at::Tensor spatial_sincos_3d(int64_t width, int64_t d, int64_t h, int64_t w) {
  if (width % 6 != 0) {
    throw Error(fmt::format("sincos3d spatial embedding: width is {}, must be a multiple of 6", width));
  }
  const int64_t t = width / 3;
  const at::Tensor ex = sincos_1d(t, positions(w)).view({1, 1, w, t}).expand({d, h, w, t});
  const at::Tensor ey = sincos_1d(t, positions(h)).view({1, h, 1, t}).expand({d, h, w, t});
  const at::Tensor ez = sincos_1d(t, positions(d)).view({d, 1, 1, t}).expand({d, h, w, t});
  return at::cat({ex, ey, ez}, 3).unsqueeze(0).contiguous();
}

at::Tensor spatial_sincos_1d_2d(int64_t width, int64_t d, int64_t h, int64_t w) {
  if (width % 4 != 0) {
    throw Error(fmt::format("sincos1d+2d spatial embedding: width is {}, must be a multiple of 4", width));
  }
  const int64_t half = width / 2;
  const at::Tensor ex = sincos_1d(half, positions(w)).view({1, w, half}).expand({h, w, half});
  const at::Tensor ey = sincos_1d(half, positions(h)).view({h, 1, half}).expand({h, w, half});
  const at::Tensor plane = at::cat({ex, ey}, 2);
  const at::Tensor depth = sincos_1d(width, positions(d)).view({d, 1, 1, width});
  return (depth + plane.unsqueeze(0)).unsqueeze(0).contiguous();
}

at::Tensor resample_2d_pos_embed(const at::Tensor& pos_embed_2d, int64_t h, int64_t w) {
  const int64_t channels = pos_embed_2d.size(-1);
  const int64_t count = pos_embed_2d.numel() / channels;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(count))));
  if (side * side != count) {
    throw Error(fmt::format("pos_embed: {} positions are not a square grid", count));
  }
  at::Tensor grid = pos_embed_2d.to(at::kFloat).reshape({1, side, side, channels});
  if (side == h && side == w) return grid.reshape({1, h * w, channels});
  grid = grid.permute({0, 3, 1, 2});
  grid = at::_upsample_bicubic2d_aa(grid, {h, w}, /*align_corners=*/false);
  return grid.permute({0, 2, 3, 1}).reshape({1, h * w, channels}).to(pos_embed_2d.scalar_type());
}

at::Tensor spatial_from_2d(const at::Tensor& pos_embed_2d, int64_t d, int64_t h, int64_t w) {
  const int64_t width = pos_embed_2d.size(-1);
  const at::Tensor plane = resample_2d_pos_embed(pos_embed_2d, h, w).to(at::kFloat).view({1, h, w, width});
  const at::Tensor depth = sincos_1d(width, positions(d)).view({d, 1, 1, width});
  return (depth + plane).unsqueeze(0).contiguous();
}

at::Tensor sequential_sincos(int64_t width, int64_t max_num_scans) {
  return sincos_1d(width, positions(max_num_scans)).unsqueeze(0);
}

at::Tensor resample_spatial(const at::Tensor& spatial, int64_t d, int64_t h, int64_t w) {
  if (spatial.size(1) == d && spatial.size(2) == h && spatial.size(3) == w) return spatial;
  const at::Tensor grid = spatial.to(at::kFloat).permute({0, 4, 1, 2, 3});
  const at::Tensor out = at::upsample_trilinear3d(grid, {d, h, w}, /*align_corners=*/false);
  return out.permute({0, 2, 3, 4, 1}).contiguous().to(spatial.scalar_type());
}

at::Tensor resample_sequential(const at::Tensor& sequential, int64_t num_scans) {
  if (sequential.size(1) == num_scans) return sequential;
  const at::Tensor rows = sequential.to(at::kFloat).permute({0, 2, 1});
  const at::Tensor out = at::upsample_linear1d(rows, {num_scans}, /*align_corners=*/false);
  return out.permute({0, 2, 1}).contiguous().to(sequential.scalar_type());
}

}  // namespace hlip::model
