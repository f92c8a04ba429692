#include <cmath>
#include <tuple>

#include <fmt/format.h>

#include "hlip/core/error.h"
#include "hlip/core/torch_compat.h"
#include "hlip/model/attention.h"

namespace hlip::model {

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        AttentionKernel kernel) {
  if (kernel == AttentionKernel::kPlain) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    return at::matmul(at::softmax(at::matmul(q * scale, k.transpose(-2, -1)), -1), v);
  }
#if HLIP_TORCH_HAS_FUSED_SDPA
  return at::scaled_dot_product_attention(q, k, v);
#else
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v));
#endif
}

int64_t rope_axis_channels(int64_t head_dim) {
  return 2 * ((head_dim / 3) / 2);
}

at::Tensor apply_axial_rope(const at::Tensor& x, const at::Tensor& positions) {
  const int64_t head_dim = x.size(-1);
  const int64_t s = rope_axis_channels(head_dim);
  if (s == 0) throw Error(fmt::format("rope: head dimension {} leaves no channels to rotate", head_dim));
  const int64_t half = s / 2;
  const int64_t windows = x.size(0), heads = x.size(1), tokens = x.size(2);
  const at::Tensor omega =
      at::reciprocal(at::pow(10000.0, at::arange(half, at::dtype(at::kDouble)) / static_cast<double>(half)))
          .to(at::kFloat);
  // [W, T, 3, half] -> [W, 1, T, 3*half]: the angle of every rotated channel pair, axes in depth, row, column
  // order.
  const at::Tensor angles = (positions.to(at::kFloat).unsqueeze(-1) * omega.to(positions.device()))
                                .reshape({windows, 1, tokens, 3 * half});
  const at::Tensor cos = at::cos(angles).to(x.scalar_type());
  const at::Tensor sin = at::sin(angles).to(x.scalar_type());
  const at::Tensor pairs = x.narrow(-1, 0, 3 * s).reshape({windows, heads, tokens, 3 * half, 2});
  const at::Tensor even = pairs.select(-1, 0), odd = pairs.select(-1, 1);
  const at::Tensor rotated = at::stack({even * cos - odd * sin, odd * cos + even * sin}, -1)
                                 .reshape({windows, heads, tokens, 3 * s});
  if (3 * s == head_dim) return rotated;
  return at::cat({rotated, x.narrow(-1, 3 * s, head_dim - 3 * s)}, -1);
}

AttentionImpl::AttentionImpl(int64_t width, int64_t num_heads, AttentionKernel kernel)
    : num_heads_(num_heads), kernel_(kernel) {
  if (num_heads <= 0 || width % num_heads != 0) {
    throw Error(fmt::format("attention: width {} is not divisible by num_heads {}", width, num_heads));
  }
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(width, 3 * width).bias(true)));
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(width, width).bias(true)));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& rope_positions, int64_t num_prefix) {
  const int64_t windows = x.size(0), tokens = x.size(1), width = x.size(2);
  const int64_t head_dim = width / num_heads_;
  // qkv channels are [q | k | v], each split into heads of head_dim consecutive channels.
  const at::Tensor qkv_heads =
      qkv(x).view({windows, tokens, 3, num_heads_, head_dim}).permute({2, 0, 3, 1, 4});
  at::Tensor q = qkv_heads[0], k = qkv_heads[1], v = qkv_heads[2];
  if (rope_positions.defined()) {
    const int64_t patches = tokens - num_prefix;
    q = at::cat(
        {q.narrow(2, 0, num_prefix), apply_axial_rope(q.narrow(2, num_prefix, patches), rope_positions)}, 2);
    k = at::cat(
        {k.narrow(2, 0, num_prefix), apply_axial_rope(k.narrow(2, num_prefix, patches), rope_positions)}, 2);
  }
  const at::Tensor out = scaled_dot_product_attention(q, k, v, kernel_);
  return proj(out.transpose(1, 2).reshape({windows, tokens, width}));
}

}  // namespace hlip::model
