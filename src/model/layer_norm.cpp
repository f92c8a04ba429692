#include "hlip/model/layer_norm.h"

namespace hlip::model {

at::Tensor layer_norm_fp32(torch::nn::LayerNorm& norm, const at::Tensor& x) {
  if (x.scalar_type() != at::kBFloat16 && x.scalar_type() != at::kHalf) return norm->forward(x);
  const auto& options = norm->options;
  const auto as_float = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat) : t; };
  return at::layer_norm(x.to(at::kFloat), options.normalized_shape(), as_float(norm->weight),
                        as_float(norm->bias), options.eps())
      .to(x.scalar_type());
}

}  // namespace hlip::model
