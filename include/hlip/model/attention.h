#pragma once
// timm's pre-norm transformer `Block` (spec 3.7) with the HLIP training knobs: drop path, axial RoPE
// (spec 3.11) and per-block gradient checkpointing. Parameter names follow timm: norm1, attn.qkv, attn.proj,
// norm2, mlp.fc1, mlp.fc2.
//
//   hlip::model::Block block(hlip::model::BlockOptions().width(96).num_heads(4));
//   at::Tensor y = block(x);                      // x [windows, tokens, C]

#include <cstdint>

#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

namespace hlip::model {

// kFused: at::scaled_dot_product_attention (LibTorch >= 2.0, flash / memory-efficient kernels on GPU) or
// at::_scaled_dot_product_attention on 1.13. kPlain: softmax(q kᵀ / sqrt(hd)) v written out, the reference.
enum class AttentionKernel { kFused, kPlain };

// q, k, v [..., tokens, head_dim] -> [..., tokens, head_dim]; scale head_dim^-0.5, no mask, no dropout.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        AttentionKernel kernel = AttentionKernel::kFused);

// Channels rotated per axis by the axial RoPE: s = 2 * floor(floor(head_dim / 3) / 2) (ViT-B: 20).
int64_t rope_axis_channels(int64_t head_dim);
// Rotates channels [0, s) of x by positions[..., 0] (depth), [s, 2s) by positions[..., 1] (row) and [2s, 3s)
// by positions[..., 2] (column), adjacent channel pairs (2j, 2j+1) by angle p / 10000^(j / (s/2)). x [W,
// heads, T, hd], positions [W, T, 3] (float); channels from 3s on are left as they are.
at::Tensor apply_axial_rope(const at::Tensor& x, const at::Tensor& positions);

// Zeroes whole rows (windows) with probability `rate` and scales the kept ones by 1 / (1 - rate):
// the multiplier [rows, 1, 1] for a residual branch of x [rows, tokens, C]. Undefined tensor when rate is 0.
at::Tensor sample_drop_path_mask(const at::Tensor& x, double rate);

struct BlockOptions {
  TORCH_ARG(int64_t, width) = 768;
  TORCH_ARG(int64_t, num_heads) = 12;
  TORCH_ARG(double, mlp_ratio) = 4.0;
  TORCH_ARG(double, norm_eps) = 1e-6;
  TORCH_ARG(double, drop_path) = 0.0;
  TORCH_ARG(AttentionKernel, attention_kernel) = AttentionKernel::kFused;
};

// Per-call inputs besides the tokens. Undefined tensors switch the feature off.
struct BlockInputs {
  int64_t num_prefix = 0;     // leading tokens of every window that RoPE leaves alone
  at::Tensor rope_positions;  // [W, T - num_prefix, 3] (depth, row, column) of every patch token
  at::Tensor drop_path_attn;  // [W, 1, 1] multiplier of the attention branch (sample_drop_path_mask)
  at::Tensor drop_path_mlp;   // [W, 1, 1] multiplier of the MLP branch
};

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t width, int64_t num_heads, AttentionKernel kernel);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& rope_positions = {}, int64_t num_prefix = 0);
  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear proj{nullptr};

 private:
  int64_t num_heads_;
  AttentionKernel kernel_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t width, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear fc1{nullptr};
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(BlockOptions options);
  // x [W, T, C]. In training with drop_path > 0 the branch masks are drawn here unless `inputs` carries them.
  at::Tensor forward(const at::Tensor& x, const BlockInputs& inputs = {});
  // The same computation with the branch masks exactly as given (no sampling): what checkpointing recomputes.
  at::Tensor forward_with_masks(const at::Tensor& x, const BlockInputs& inputs);
  // forward() without keeping activations for backward; backward runs forward_with_masks again.
  at::Tensor forward_checkpointed(const at::Tensor& x, const BlockInputs& inputs = {});

  const BlockOptions& options() const { return options_; }

  torch::nn::LayerNorm norm1{nullptr};
  Attention attn{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  Mlp mlp{nullptr};

 private:
  BlockInputs with_sampled_masks(const at::Tensor& x, const BlockInputs& inputs);
  BlockOptions options_;
};
TORCH_MODULE(Block);

}  // namespace hlip::model
