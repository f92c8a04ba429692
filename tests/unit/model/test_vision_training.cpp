// Training-time knobs of the vision tower: patch dropout (spec 3.8), sequential embedding subsets (3.3.4),
// stochastic depth (3.7) and gradient checkpointing.

#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "hlip/core/error.h"
#include "hlip/model/pos_embed.h"
#include "hlip/model/vision.h"
#include "test_vision_support.h"

namespace hlip::model {
namespace {

using testing::all_close;

VisionOptions small_options() {
  VisionOptions o;
  o.width = 24;
  o.depth = 3;
  o.num_heads = 2;
  o.img_size = {4, 16, 24};
  o.patch_size = {2, 8, 8};  // grid (2, 2, 3): 12 tokens per scan
  o.attention_levels = attention_levels_from_indexes(3, {}, {0, 2}, {1});
  o.reg_tokens = 1;
  o.pooling = Pooling::kDual;
  o.drop_path = 0.0;
  o.embed_dim = 8;
  return o;
}

// For every row of `kept` [T, C], the index of the equal row of `full` [F, C], or -1.
std::vector<int64_t> match_rows(const at::Tensor& kept, const at::Tensor& full) {
  const at::Tensor distance = (kept.unsqueeze(1) - full.unsqueeze(0)).abs().sum(-1);  // [T, F]
  std::vector<int64_t> match;
  for (int64_t t = 0; t < kept.size(0); ++t) {
    const at::Tensor zero = distance[t].eq(0).nonzero();
    match.push_back(zero.size(0) == 1 ? zero[0][0].item<int64_t>() : -1);
  }
  return match;
}

void check_patch_dropout(VisionOptions options, int64_t expected_windows, int64_t expected_keep) {
  options.rope = true;
  HierarchicalVit trunk(options);
  const int64_t prefix = options.num_prefix_tokens();
  const at::Tensor image = at::randn({2, 3, 1, 4, 16, 24});
  at::NoGradGuard no_grad;
  trunk->eval();
  const EmbeddedStudy full = trunk->embed(image);
  trunk->train();
  const EmbeddedStudy dropped = trunk->embed(image);
  ASSERT_EQ(dropped.tokens.sizes(), (std::vector<int64_t>{expected_windows, prefix + expected_keep, 24}));
  ASSERT_EQ(full.tokens.size(0), expected_windows);
  bool some_window_reordered = false;
  for (int64_t w = 0; w < expected_windows; ++w) {
    EXPECT_TRUE(at::equal(dropped.tokens[w].narrow(0, 0, prefix), full.tokens[w].narrow(0, 0, prefix)));
    const int64_t tokens = full.tokens.size(1) - prefix;
    const auto match = match_rows(dropped.tokens[w].narrow(0, prefix, expected_keep),
                                  full.tokens[w].narrow(0, prefix, tokens));
    const std::set<int64_t> distinct(match.begin(), match.end());
    EXPECT_EQ(distinct.size(), match.size()) << "window " << w;
    EXPECT_EQ(distinct.count(-1), 0u) << "window " << w;
    for (size_t t = 0; t < match.size(); ++t) {
      if (match[t] < 0) continue;
      if (t > 0 && match[t] < match[t - 1]) some_window_reordered = true;
      // RoPE positions travel with their tokens.
      EXPECT_TRUE(
          at::equal(dropped.rope_positions[w][static_cast<int64_t>(t)], full.rope_positions[w][match[t]]));
    }
  }
  if (expected_keep > 1) {
    EXPECT_TRUE(some_window_reordered) << "kept tokens are in random order, not sorted";
  }
}

TEST(PatchDropout, ScanFirstKeepsPrefixAndHalfOfEachScan) {
  at::manual_seed(0);
  VisionOptions o = small_options();
  o.patch_dropout = 0.5;
  check_patch_dropout(o, /*windows=*/2 * 3, /*keep=*/6);
}

TEST(PatchDropout, SliceFirstDropsPerSlice) {
  at::manual_seed(1);
  VisionOptions o = small_options();
  o.attention_levels = attention_levels_from_indexes(3, {0}, {1}, {2});
  o.patch_dropout = 0.5;
  check_patch_dropout(o, /*windows=*/2 * 3 * 2, /*keep=*/3);  // 6 tokens per slice -> int(6 * 0.5)
}

TEST(PatchDropout, KeepsAtLeastOneToken) {
  at::manual_seed(2);
  VisionOptions o = small_options();
  o.patch_dropout = 0.99;
  check_patch_dropout(o, 2 * 3, 1);  // max(1, int(12 * 0.01))
}

TEST(PatchDropout, TrainingForwardRunsAndEvalIgnoresIt) {
  at::manual_seed(3);
  VisionOptions o = small_options();
  o.patch_dropout = 0.25;
  HierarchicalVit trunk(o);
  const at::Tensor image = at::randn({2, 3, 1, 4, 16, 24});
  trunk->train();
  VisionTrace trace;
  const at::Tensor pooled = trunk->forward(image, &trace);
  EXPECT_EQ(pooled.sizes(), (std::vector<int64_t>{2, 2, 48}));
  EXPECT_EQ(trace.features.sizes(), (std::vector<int64_t>{2, 2 + 3 * 9, 24}));  // int(12 * 0.75) per scan
  trunk->eval();
  EXPECT_EQ(trunk->forward_features(image).sizes(), (std::vector<int64_t>{2, 2 + 3 * 12, 24}));
}

TEST(SequentialEmbedding, TrainingDrawsDistinctRowsEvaluationUsesArange) {
  at::manual_seed(4);
  VisionOptions o = small_options();
  o.max_num_scans = 6;
  HierarchicalVit trunk(o);
  const at::Tensor rows = trunk->sequential_posemb[0];  // [6, C]
  const at::Tensor spatial = trunk->spatial_posemb;     // [1, 2, 2, 3, C]
  const auto sequential_part = [&](const at::Tensor& pos) {
    return (pos - spatial.unsqueeze(1))[0].select(1, 0).select(1, 0).select(1, 0);  // [N, C]
  };
  const auto pick = [&](const at::Tensor& pos) {
    std::vector<int64_t> picked;
    const at::Tensor part = sequential_part(pos);
    const at::Tensor distance = (part.unsqueeze(1) - rows.unsqueeze(0)).abs().amax(-1);  // [N, 6]
    for (int64_t n = 0; n < part.size(0); ++n) {
      EXPECT_LT(distance[n].min().item<double>(), 1e-6);
      picked.push_back(distance[n].argmin().item<int64_t>());
    }
    return picked;
  };
  trunk->train();
  bool ever_not_arange = false;
  for (int trial = 0; trial < 10; ++trial) {
    const auto picked = pick(trunk->position_embedding(4, 2, 2, 3));
    EXPECT_EQ(std::set<int64_t>(picked.begin(), picked.end()).size(), 4u);
    if (picked != std::vector<int64_t>{0, 1, 2, 3}) ever_not_arange = true;
  }
  EXPECT_TRUE(ever_not_arange);
  EXPECT_THROW(trunk->position_embedding(7, 2, 2, 3), Error);  // more scans than rows in training

  trunk->eval();
  EXPECT_EQ(pick(trunk->position_embedding(4, 2, 2, 3)), (std::vector<int64_t>{0, 1, 2, 3}));
  // More scans than rows at evaluation: the rows are interpolated.
  const at::Tensor eight = sequential_part(trunk->position_embedding(8, 2, 2, 3));
  EXPECT_TRUE(all_close(eight, resample_sequential(trunk->sequential_posemb, 8)[0], 1e-6, 1e-6));
}

TEST(DropPath, RateGrowsLinearlyOverBlocks) {
  VisionOptions o = small_options();
  o.depth = 5;
  o.attention_levels = scan_study_levels(5);
  o.drop_path = 0.2;
  HierarchicalVit trunk(o);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_NEAR(trunk->blocks->ptr<BlockImpl>(i)->options().drop_path(), 0.05 * static_cast<double>(i),
                1e-12);
  }
}

TEST(GradientCheckpointing, ModelGradientsEqualThePlainPath) {
  VisionOptions o = small_options();
  o.attention_levels = attention_levels_from_indexes(3, {0}, {2}, {1});
  o.max_num_scans = 4;
  o.patch_dropout = 0.25;
  o.drop_path = 0.3;
  o.rope = true;
  VisionOptions checkpointed_options = o;
  checkpointed_options.grad_checkpointing = true;
  VisionTower plain(o), checkpointed(checkpointed_options);
  {
    at::NoGradGuard no_grad;
    auto target = checkpointed->named_parameters();
    for (const auto& item : plain->named_parameters())
      target[item.key()].copy_(item.value());
  }
  at::manual_seed(5);
  const at::Tensor image = at::randn({2, 3, 1, 4, 16, 24});
  const at::Tensor upstream = at::randn({2, 2, 8});
  const auto run = [&](VisionTower& model) {
    model->train();
    model->zero_grad();
    at::manual_seed(6);  // the same patch dropout, sequential rows and drop-path masks in both runs
    const at::Tensor out = model(image);
    (out * upstream).sum().backward();
    return out.detach();
  };
  const at::Tensor out_plain = run(plain);
  const at::Tensor out_checkpointed = run(checkpointed);
  EXPECT_TRUE(at::equal(out_plain, out_checkpointed));
  auto grads = checkpointed->named_parameters();
  int compared = 0;
  for (const auto& item : plain->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    ASSERT_TRUE(grads[item.key()].grad().defined()) << item.key();
    EXPECT_TRUE(all_close(grads[item.key()].grad(), item.value().grad(), 1e-6, 1e-5)) << item.key();
    ++compared;
  }
  EXPECT_EQ(compared, 2 + 2 + 3 * 12 + 2 + 1);  // cls, reg, patch_embed, blocks, norm, head
}

}  // namespace
}  // namespace hlip::model
