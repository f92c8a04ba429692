#pragma once
// Frozen sine-cosine positional embeddings of HLIP (spec 3.2, 3.3) and their resampling to other grids.
//
//   at::Tensor spatial = hlip::model::spatial_sincos_1d_2d(768, 8, 14, 14);     // [1, 8, 14, 14, 768]
//   at::Tensor seq = hlip::model::sequential_sincos(768, 40);                   // [1, 40, 768]
//   at::Tensor at_eval = hlip::model::resample_spatial(spatial, 10, 14, 14);  // more slices than in training

#include <cstdint>

#include <ATen/ATen.h>

namespace hlip::model {

// E1(c, p): [n, c] with sin(p * w_i) in the first c/2 channels and cos(p * w_i) in the rest,
// w_i = 1 / 10000^(i / (c/2)), computed in float32 in the official order. `positions` is 1-D.
at::Tensor sincos_1d(int64_t channels, const at::Tensor& positions);

// v1.0 from scratch: channels [0, C/3) encode the column, [C/3, 2C/3) the row, [2C/3, C) the depth.
at::Tensor spatial_sincos_3d(int64_t width, int64_t d, int64_t h, int64_t w);
// ablation / 2026 from scratch: E1(C, z) + [E1(C/2, x) | E1(C/2, y)].
at::Tensor spatial_sincos_1d_2d(int64_t width, int64_t d, int64_t h, int64_t w);
// From a 2D ViT's `pos_embed` without class row ([1, s*s, C] or [s*s, C]): resampled in-plane to (h, w) when
// needed (bicubic, antialiased), then E1(C, z) added for every depth row z.
at::Tensor spatial_from_2d(const at::Tensor& pos_embed_2d, int64_t d, int64_t h, int64_t w);
// [1, M, C], row m = E1(C, m).
at::Tensor sequential_sincos(int64_t width, int64_t max_num_scans);

// [1, d, h, w, C] -> [1, d2, h2, w2, C], trilinear, align_corners = false, computed in float32.
at::Tensor resample_spatial(const at::Tensor& spatial, int64_t d, int64_t h, int64_t w);
// [1, M, C] -> [1, N, C], linear along the scan axis, align_corners = false, computed in float32.
at::Tensor resample_sequential(const at::Tensor& sequential, int64_t num_scans);
// timm resample_abs_pos_embed without prefix: [1, s*s, C] -> [1, h*w, C], bicubic, antialias, float32.
at::Tensor resample_2d_pos_embed(const at::Tensor& pos_embed_2d, int64_t h, int64_t w);

}  // namespace hlip::model
