#include "hlip/model/patch_embed.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hlip/core/error.h"

namespace hlip::model {
namespace {

void check_image(const at::Tensor& image, const std::array<int64_t, 3>& patch) {
  if (image.dim() != 6 || image.size(2) != 1) {
    throw Error(
        fmt::format("patch_embed: image must be [B, N, 1, D, H, W], got {}", fmt::join(image.sizes(), "x")));
  }
  for (int axis = 0; axis < 3; ++axis) {
    if (image.size(3 + axis) < patch[axis]) {
      throw Error(fmt::format("patch_embed: image dimension {} is {}, smaller than the patch size {}",
                              3 + axis, image.size(3 + axis), patch[axis]));
    }
  }
}

}  // namespace

PatchEmbed3dImpl::PatchEmbed3dImpl(int64_t width, std::array<int64_t, 3> patch_size)
    : width_(width), patch_size_(patch_size) {
  for (int64_t p : patch_size) {
    if (p <= 0)
      throw Error(fmt::format("patch_embed: patch_size {} must be positive", fmt::join(patch_size, ",")));
  }
  proj = register_module(
      "proj",
      torch::nn::Conv3d(torch::nn::Conv3dOptions(1, width, {patch_size[0], patch_size[1], patch_size[2]})
                            .stride({patch_size[0], patch_size[1], patch_size[2]})
                            .bias(true)));
}

at::Tensor PatchEmbed3dImpl::forward(const at::Tensor& image) {
  check_image(image, patch_size_);
  const auto [pd, ph, pw] = patch_size_;
  const int64_t batch = image.size(0), scans = image.size(1);
  const int64_t d = image.size(3) / pd, h = image.size(4) / ph, w = image.size(5) / pw;
  at::Tensor x = image;
  if (d * pd != image.size(3) || h * ph != image.size(4) || w * pw != image.size(5)) {
    x = x.narrow(3, 0, d * pd).narrow(4, 0, h * ph).narrow(5, 0, w * pw);
  }
  // [B*N, d, pd, h, ph, w, pw] -> [B*N, d, h, w, pd, ph, pw]: one row per patch, taps in the kernel's order.
  x = x.reshape({batch * scans, d, pd, h, ph, w, pw})
          .permute({0, 1, 3, 5, 2, 4, 6})
          .reshape({-1, pd * ph * pw});
  const at::Tensor weight = proj->weight.reshape({width_, pd * ph * pw});
  const at::Tensor out = at::addmm(proj->bias, x, weight.t());
  return out.view({batch, scans, d, h, w, width_});
}

at::Tensor PatchEmbed3dImpl::forward_conv(const at::Tensor& image) {
  check_image(image, patch_size_);
  const int64_t batch = image.size(0), scans = image.size(1);
  const at::Tensor x = image.reshape({batch * scans, 1, image.size(3), image.size(4), image.size(5)});
  const at::Tensor y =
      at::conv3d(x, proj->weight, proj->bias, {patch_size_[0], patch_size_[1], patch_size_[2]});
  return y.permute({0, 2, 3, 4, 1}).reshape({batch, scans, y.size(2), y.size(3), y.size(4), width_});
}

}  // namespace hlip::model
