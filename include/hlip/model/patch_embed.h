#pragma once
// 3D patch embedding (HLIP `PatchEmbed3D`, spec 3.1): Conv3d(1, C, kernel = stride = patch size) over every
// scan. The weight lives in a Conv3d named `proj` (key `patch_embed.proj.weight [C, 1, pd, ph, pw]`), but
// forward() computes it as a reshape plus one matrix product, which is the same sum and, unlike conv3d, fast
// in bf16.
//
//   hlip::model::PatchEmbed3d embed(96, std::array<int64_t, 3>{4, 8, 8});
//   at::Tensor tokens = embed(image);     // [B, N, 1, D, H, W] -> [B, N, d, h, w, C]

#include <array>
#include <cstdint>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace hlip::model {

class PatchEmbed3dImpl : public torch::nn::Module {
 public:
  PatchEmbed3dImpl(int64_t width, std::array<int64_t, 3> patch_size);
  // image [B, N, 1, D, H, W] -> [B, N, d, h, w, C]; a remainder of D, H or W beyond whole patches is dropped,
  // as the strided convolution does.
  at::Tensor forward(const at::Tensor& image);
  // The same result through at::conv3d, for tests and comparisons.
  at::Tensor forward_conv(const at::Tensor& image);

  const std::array<int64_t, 3>& patch_size() const { return patch_size_; }
  torch::nn::Conv3d proj{nullptr};

 private:
  int64_t width_;
  std::array<int64_t, 3> patch_size_;
};
TORCH_MODULE(PatchEmbed3d);

}  // namespace hlip::model
