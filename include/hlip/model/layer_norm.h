#pragma once
// Layer normalisation that computes in float32 when its input is bf16 or fp16 and returns the input's type,
// as CUDA autocast runs layer_norm: the module (and so its `weight` / `bias` keys) stays
// torch::nn::LayerNorm. Besides the precision, LibTorch 1.13's CPU layer norm is much slower in bf16 than in
// fp32 (the demo's amp_bf16 step: 88 ms of 780 in bf16 layer norms; docs/performance.md).
//
//   x = hlip::model::layer_norm_fp32(norm1, x);   // instead of norm1(x)

#include <ATen/ATen.h>
#include <torch/nn/modules/normalization.h>

namespace hlip::model {

at::Tensor layer_norm_fp32(torch::nn::LayerNorm& norm, const at::Tensor& x);

}  // namespace hlip::model
