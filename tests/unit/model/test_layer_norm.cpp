#include <gtest/gtest.h>

#include "hlip/model/layer_norm.h"

namespace {

using hlip::model::layer_norm_fp32;

torch::nn::LayerNorm make_norm(at::ScalarType dtype) {
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({16}).eps(1e-6));
  torch::NoGradGuard no_grad;
  norm->weight.copy_(at::linspace(0.5, 1.5, 16));
  norm->bias.copy_(at::linspace(-0.2, 0.2, 16));
  norm->to(dtype);
  return norm;
}

TEST(LayerNormFp32, Fp32InputIsTheModulesOwnResult) {
  auto norm = make_norm(at::kFloat);
  const at::Tensor x = at::randn({3, 5, 16});
  EXPECT_TRUE(at::equal(layer_norm_fp32(norm, x), norm(x)));
}

TEST(LayerNormFp32, Bf16InputIsNormalisedInFloatAndReturnedInBf16) {
  auto norm = make_norm(at::kBFloat16);
  // A large common offset: normalising in bf16 loses the small deviations that fp32 keeps.
  const at::Tensor x = (at::randn({4, 7, 16}) * 0.05 + 30).to(at::kBFloat16);
  const at::Tensor y = layer_norm_fp32(norm, x);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  const at::Tensor expected =
      at::layer_norm(x.to(at::kFloat), {16}, norm->weight.to(at::kFloat), norm->bias.to(at::kFloat), 1e-6)
          .to(at::kBFloat16);
  EXPECT_TRUE(at::equal(y, expected));
}

TEST(LayerNormFp32, GradientsReachTheBf16ParametersAndInput) {
  auto norm = make_norm(at::kBFloat16);
  const at::Tensor x = at::randn({2, 3, 16}).to(at::kBFloat16).requires_grad_();
  (layer_norm_fp32(norm, x).to(at::kFloat) * at::linspace(-1, 1, 16)).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  ASSERT_TRUE(norm->weight.grad().defined());
  EXPECT_EQ(norm->weight.grad().scalar_type(), at::kBFloat16);
  EXPECT_GT(norm->bias.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(x.grad().to(at::kFloat).abs().sum().item<double>(), 0);
}

}  // namespace
