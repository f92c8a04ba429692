// Building blocks of the vision tower: patch embedding, sin-cos embeddings and resampling, window
// re-partitions, attention kernels, axial RoPE, drop path.

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "hlip/core/error.h"
#include "hlip/model/attention.h"
#include "hlip/model/patch_embed.h"
#include "hlip/model/pos_embed.h"
#include "hlip/model/windows.h"
#include "test_vision_support.h"

namespace hlip::model {
namespace {

using testing::all_close;
using testing::max_abs_diff;

TEST(PatchEmbed3d, MatmulEqualsConv3d) {
  at::manual_seed(0);
  PatchEmbed3d embed(16, std::array<int64_t, 3>{4, 8, 8});
  const at::Tensor image = at::randn({2, 3, 1, 8, 24, 40});
  const at::Tensor fast = embed(image);
  EXPECT_EQ(fast.sizes(), (std::vector<int64_t>{2, 3, 2, 3, 5, 16}));
  EXPECT_TRUE(all_close(fast, embed->forward_conv(image), 1e-5, 1e-5));
}

TEST(PatchEmbed3d, PublishedPatchSizesGiveTheirTokenCounts) {
  struct Case {
    std::array<int64_t, 3> patch, image;
    int64_t tokens;
  };
  // The patch-size ablation arms at their scan sizes (spec section 1, recipe ablations 2 and F2).
  const std::vector<Case> cases{{{8, 16, 16}, {48, 224, 224}, 1176},
                                {{6, 16, 16}, {48, 224, 224}, 1568},
                                {{8, 14, 14}, {48, 224, 224}, 1536},
                                {{16, 16, 16}, {48, 224, 224}, 588},
                                {{8, 24, 24}, {112, 336, 336}, 2744}};
  at::manual_seed(8);
  for (const Case& c : cases) {
    PatchEmbed3d embed(4, c.patch);
    const at::Tensor image = at::randn({1, 1, 1, c.image[0], c.image[1], c.image[2]});
    const at::Tensor tokens = embed(image);
    EXPECT_EQ(tokens.numel() / 4, c.tokens) << c.patch[0] << "x" << c.patch[1] << "x" << c.patch[2];
    EXPECT_TRUE(all_close(tokens, embed->forward_conv(image), 1e-5, 1e-5));
  }
}

TEST(PatchEmbed3d, RemainderIsDroppedLikeTheConvolution) {
  at::manual_seed(1);
  PatchEmbed3d embed(8, std::array<int64_t, 3>{3, 4, 5});
  const at::Tensor image = at::randn({1, 2, 1, 7, 9, 11});  // 2 x 2 x 2 whole patches, remainders 1, 1, 1
  const at::Tensor fast = embed(image);
  EXPECT_EQ(fast.sizes(), (std::vector<int64_t>{1, 2, 2, 2, 2, 8}));
  EXPECT_TRUE(all_close(fast, embed->forward_conv(image), 1e-5, 1e-5));
}

TEST(PatchEmbed3d, TokenOrderIsDepthRowColumn) {
  PatchEmbed3d embed(1, std::array<int64_t, 3>{1, 1, 1});
  {
    at::NoGradGuard no_grad;
    embed->proj->weight.fill_(1.0);
    embed->proj->bias.zero_();
  }
  const at::Tensor image = at::arange(24, at::kFloat).view({1, 1, 1, 2, 3, 4});
  EXPECT_TRUE(at::equal(embed(image).reshape({-1}), at::arange(24, at::kFloat)));
}

TEST(PatchEmbed3d, Bfloat16MatchesFloat) {
  at::manual_seed(2);
  PatchEmbed3d embed(32, std::array<int64_t, 3>{2, 8, 8});
  const at::Tensor image = at::randn({1, 2, 1, 4, 16, 16});
  const at::Tensor reference = embed(image);
  embed->to(at::kBFloat16);
  const at::Tensor low = embed(image.to(at::kBFloat16)).to(at::kFloat);
  EXPECT_LT(max_abs_diff(low, reference), 0.05 * reference.abs().max().item<double>());
}

TEST(PatchEmbed3d, RejectsBadImages) {
  PatchEmbed3d embed(8, std::array<int64_t, 3>{2, 4, 4});
  EXPECT_THROW(embed(at::zeros({1, 1, 2, 4, 4, 4})), Error);  // two channels
  EXPECT_THROW(embed(at::zeros({1, 1, 4, 4, 4})), Error);     // no scan axis
  EXPECT_THROW(embed(at::zeros({1, 1, 1, 1, 4, 4})), Error);  // thinner than one patch
}

TEST(SinCos, MatchesTheFormulaInDoublePrecision) {
  const at::Tensor e = sincos_1d(8, at::arange(5, at::kFloat));
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{5, 8}));
  for (int p = 0; p < 5; ++p) {
    for (int i = 0; i < 4; ++i) {
      const double omega = 1.0 / std::pow(10000.0, i / 4.0);
      EXPECT_NEAR(e[p][i].item<double>(), std::sin(p * omega), 2e-6);
      EXPECT_NEAR(e[p][4 + i].item<double>(), std::cos(p * omega), 2e-6);
    }
  }
  EXPECT_THROW(sincos_1d(7, at::arange(3, at::kFloat)), Error);
}

TEST(SinCos, SpatialLayouts) {
  const int64_t c = 12, d = 2, h = 3, w = 4;
  const at::Tensor s3 = spatial_sincos_3d(c, d, h, w);
  ASSERT_EQ(s3.sizes(), (std::vector<int64_t>{1, d, h, w, c}));
  // Channels [0, 4) follow the column, [4, 8) the row, [8, 12) the depth.
  EXPECT_TRUE(at::equal(s3[0][1][2][3].narrow(0, 0, 4), sincos_1d(4, at::full({1}, 3.0f))[0]));
  EXPECT_TRUE(at::equal(s3[0][1][2][3].narrow(0, 4, 4), sincos_1d(4, at::full({1}, 2.0f))[0]));
  EXPECT_TRUE(at::equal(s3[0][1][2][3].narrow(0, 8, 4), sincos_1d(4, at::full({1}, 1.0f))[0]));
  EXPECT_THROW(spatial_sincos_3d(8, d, h, w), Error);

  const at::Tensor s12 = spatial_sincos_1d_2d(c, d, h, w);
  const at::Tensor expected =
      sincos_1d(c, at::full({1}, 1.0f))[0] +
      at::cat({sincos_1d(6, at::full({1}, 3.0f))[0], sincos_1d(6, at::full({1}, 2.0f))[0]});
  EXPECT_TRUE(all_close(s12[0][1][2][3], expected, 1e-7, 0));
}

TEST(SinCos, ResamplingIsIdentityOnTheSameGridAndHalfPixelLinearOtherwise) {
  const at::Tensor s = spatial_sincos_1d_2d(8, 2, 3, 4);
  EXPECT_TRUE(at::equal(resample_spatial(s, 2, 3, 4), s));
  const at::Tensor up = resample_spatial(s, 4, 3, 4);
  // Depth 2 -> 4, align_corners = false: output 1 samples source 0.25, output 3 clamps to row 1.
  EXPECT_TRUE(all_close(up[0][1], 0.75 * s[0][0] + 0.25 * s[0][1], 1e-6, 0));
  EXPECT_TRUE(all_close(up[0][3], s[0][1], 1e-6, 0));
  const at::Tensor seq = sequential_sincos(8, 3);
  EXPECT_TRUE(at::equal(resample_sequential(seq, 3), seq));
  const at::Tensor seq5 = resample_sequential(seq, 5);  // output i samples (i + 0.5) * 3/5 - 0.5
  EXPECT_TRUE(all_close(seq5[0][2], seq[0][1], 1e-6, 0));
  EXPECT_TRUE(all_close(seq5[0][1], 0.6 * seq[0][0] + 0.4 * seq[0][1], 1e-6, 0));
}

TEST(Windows, MergeAveragesPrefixAndConcatenatesPatches) {
  const at::Tensor x = at::randn({6, 2 + 3, 4});  // 6 windows, P = 2, 3 patch tokens
  const at::Tensor merged = merge_windows(x, 2, 3);
  ASSERT_EQ(merged.sizes(), (std::vector<int64_t>{2, 2 + 9, 4}));
  EXPECT_TRUE(all_close(merged[1].narrow(0, 0, 2), x.narrow(0, 3, 3).narrow(1, 0, 2).mean(0), 1e-6, 0));
  EXPECT_TRUE(at::equal(merged[1].narrow(0, 2 + 3, 3), x[4].narrow(0, 2, 3)));
}

TEST(Windows, SplitCopiesPrefixAndRoundTrips) {
  const at::Tensor x = at::randn({2, 1 + 6, 4});
  const at::Tensor split = split_windows(x, 1, 3);
  ASSERT_EQ(split.sizes(), (std::vector<int64_t>{6, 1 + 2, 4}));
  EXPECT_TRUE(at::equal(split[5][0], x[1][0]));
  EXPECT_TRUE(at::equal(split[4].narrow(0, 1, 2), x[1].narrow(0, 3, 2)));
  EXPECT_TRUE(all_close(merge_windows(split, 1, 3), x, 1e-6, 0));  // merge(split(x)) = x
  EXPECT_THROW(split_windows(x, 1, 4), Error);
  EXPECT_THROW(merge_windows(x, 1, 3), Error);
}

TEST(Windows, AllSixRepartitionsPreserveTokenOrder) {
  const int64_t batch = 2, scans = 3, depth_rows = 2, per_slice = 4, prefix = 1;
  // Tokens numbered in global study order; slice layout [B*N*d, P + h*w, 1].
  const at::Tensor numbers = at::arange(batch * scans * depth_rows * per_slice, at::kFloat);
  const at::Tensor slice = at::cat(
      {at::full({batch * scans * depth_rows, prefix, 1}, -1.0f), numbers.view({-1, per_slice, 1})}, 1);
  const std::vector<AttentionLevel> all{AttentionLevel::kSlice, AttentionLevel::kScan,
                                        AttentionLevel::kStudy};
  const std::vector<int64_t> windows{batch * scans * depth_rows, batch * scans, batch};
  for (size_t from = 0; from < 3; ++from) {
    const at::Tensor src = repartition(slice, AttentionLevel::kSlice, all[from], prefix, scans, depth_rows);
    for (size_t to = 0; to < 3; ++to) {
      const at::Tensor dst = repartition(src, all[from], all[to], prefix, scans, depth_rows);
      EXPECT_EQ(dst.size(0), windows[to]);
      EXPECT_TRUE(at::equal(dst.narrow(1, prefix, dst.size(1) - prefix).reshape({-1}), numbers))
          << from << "->" << to;
      EXPECT_TRUE(at::equal(dst.narrow(1, 0, prefix), at::full({windows[to], prefix, 1}, -1.0f)));
    }
  }
  EXPECT_EQ(windows_per_window(AttentionLevel::kSlice, AttentionLevel::kStudy, scans, depth_rows), 6);
}

TEST(Attention, FusedKernelMatchesPlainIncludingGradients) {
  at::manual_seed(3);
  const at::Tensor q = at::randn({3, 2, 7, 8}).requires_grad_(true);
  const at::Tensor k = at::randn({3, 2, 7, 8}).requires_grad_(true);
  const at::Tensor v = at::randn({3, 2, 7, 8}).requires_grad_(true);
  const at::Tensor fused = scaled_dot_product_attention(q, k, v, AttentionKernel::kFused);
  const at::Tensor plain = scaled_dot_product_attention(q, k, v, AttentionKernel::kPlain);
  EXPECT_TRUE(all_close(fused, plain, 1e-6, 1e-5));
  const at::Tensor g = at::randn_like(fused);
  const auto gf = torch::autograd::grad({fused}, {q, k, v}, {g});
  const auto gp = torch::autograd::grad({plain}, {q, k, v}, {g});
  for (size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(all_close(gf[i], gp[i], 1e-6, 1e-5)) << i;
  // The plain path is softmax(q kᵀ / sqrt(hd)) v.
  const at::Tensor manual = at::softmax(at::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0), -1).matmul(v);
  EXPECT_TRUE(all_close(plain, manual, 1e-6, 1e-5));
}

TEST(Rope, RotatesPairsByTheAxisPositions) {
  EXPECT_EQ(rope_axis_channels(64), 20);  // ViT-B
  EXPECT_EQ(rope_axis_channels(16), 4);
  EXPECT_EQ(rope_axis_channels(5), 0);
  const int64_t hd = 16;  // s = 4: depth on [0, 4), row on [4, 8), column on [8, 12), [12, 16) untouched
  const at::Tensor x = at::randn({1, 1, 2, hd});
  const at::Tensor pos = at::tensor({0.0f, 0.0f, 0.0f, 2.0f, 3.0f, 5.0f}).view({1, 2, 3});
  const at::Tensor y = apply_axial_rope(x, pos);
  EXPECT_TRUE(all_close(y[0][0][0], x[0][0][0], 1e-7, 0));  // position 0: no rotation
  EXPECT_TRUE(at::equal(y[0][0][1].narrow(0, 12, 4), x[0][0][1].narrow(0, 12, 4)));
  // Pair (8 + 2, 8 + 3) is the column axis, j = 1: angle 5 / 10000^(1/2).
  const double theta = 5.0 / 100.0;
  const double u0 = x[0][0][1][10].item<double>(), u1 = x[0][0][1][11].item<double>();
  EXPECT_NEAR(y[0][0][1][10].item<double>(), u0 * std::cos(theta) - u1 * std::sin(theta), 1e-6);
  EXPECT_NEAR(y[0][0][1][11].item<double>(), u1 * std::cos(theta) + u0 * std::sin(theta), 1e-6);
  EXPECT_TRUE(all_close(y.norm(2, -1), x.norm(2, -1), 1e-6, 1e-6));  // rotations keep the norm
}

TEST(Rope, ChangesBlockOutputsButNotWithZeroPositions) {
  at::manual_seed(4);
  Block block(BlockOptions().width(32).num_heads(2));
  block->eval();
  const at::Tensor x = at::randn({2, 1 + 6, 32});
  BlockInputs plain;
  plain.num_prefix = 1;
  BlockInputs zero = plain, moved = plain;
  zero.rope_positions = at::zeros({2, 6, 3});
  moved.rope_positions = at::randint(0, 5, {2, 6, 3}).to(at::kFloat);
  EXPECT_TRUE(all_close(block->forward(x, zero), block->forward(x, plain), 1e-6, 1e-5));
  EXPECT_GT(max_abs_diff(block->forward(x, moved), block->forward(x, plain)), 1e-3);
}

TEST(DropPath, ZeroesWholeWindowsAndRescales) {
  at::manual_seed(5);
  const at::Tensor x = at::ones({4000, 3, 2});
  const at::Tensor mask = sample_drop_path_mask(x, 0.25);
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{4000, 1, 1}));
  const at::Tensor kept = mask.ne(0);
  EXPECT_TRUE(at::equal(mask.masked_select(kept), at::full({kept.sum().item<int64_t>()}, 1.0f / 0.75f)));
  EXPECT_NEAR(kept.to(at::kFloat).mean().item<double>(), 0.75, 0.03);
  EXPECT_FALSE(sample_drop_path_mask(x, 0.0).defined());
}

TEST(DropPath, ActiveOnlyInTraining) {
  at::manual_seed(6);
  Block block(BlockOptions().width(16).num_heads(2).drop_path(0.5));
  const at::Tensor x = at::randn({64, 5, 16});
  block->eval();
  const at::Tensor a = block->forward(x), b = block->forward(x);
  EXPECT_TRUE(at::equal(a, b));
  block->train();
  const at::Tensor c = block->forward(x);
  // Some windows lost both branches and pass through unchanged.
  const at::Tensor unchanged = (c - x).abs().amax({1, 2}).eq(0);
  EXPECT_GT(unchanged.sum().item<int64_t>(), 0);
  EXPECT_LT(unchanged.sum().item<int64_t>(), 64);
}

TEST(GradientCheckpointing, BlockGradientsEqualThePlainPath) {
  at::manual_seed(7);
  Block block(BlockOptions().width(24).num_heads(2).drop_path(0.3));
  block->train();
  const at::Tensor x0 = at::randn({5, 2 + 8, 24});
  BlockInputs inputs;
  inputs.num_prefix = 2;
  inputs.rope_positions = at::randint(0, 4, {5, 8, 3}).to(at::kFloat);
  inputs.drop_path_attn = sample_drop_path_mask(x0, 0.3);
  inputs.drop_path_mlp = sample_drop_path_mask(x0, 0.3);
  const at::Tensor upstream = at::randn_like(x0);

  const auto run = [&](bool checkpointed) {
    block->zero_grad();
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y = checkpointed ? block->forward_checkpointed(x, inputs) : block->forward(x, inputs);
    (y * upstream).sum().backward();
    std::vector<at::Tensor> grads{y.detach(), x.grad().clone()};
    for (const auto& p : block->parameters())
      grads.push_back(p.grad().clone());
    return grads;
  };
  const auto plain = run(false);
  const auto checkpointed = run(true);
  // The checkpointed output hangs off one recompute node, not the block's own graph.
  const at::Tensor x = x0.clone().requires_grad_(true);
  const at::Tensor y = block->forward_checkpointed(x, inputs);
  EXPECT_NE(y.grad_fn()->name().find("BlockRecompute"), std::string::npos) << y.grad_fn()->name();
  int64_t differentiable_inputs = 0;
  for (const auto& edge : y.grad_fn()->next_edges())
    differentiable_inputs += edge.is_valid() ? 1 : 0;
  EXPECT_EQ(differentiable_inputs, 1 + 12);  // x and the 12 parameters
  {
    at::NoGradGuard no_grad;
    EXPECT_FALSE(block->forward_checkpointed(x, inputs).requires_grad());
  }
  ASSERT_EQ(plain.size(), checkpointed.size());
  EXPECT_EQ(plain.size(), 2u + 12u);
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_TRUE(all_close(checkpointed[i], plain[i], 1e-6, 1e-5)) << i;
}

}  // namespace
}  // namespace hlip::model
