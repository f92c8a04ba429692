// The C++ vision tower reproduces the independent Python reference (tests/ref/hlip_vision_ref.py) on every
// reference case: each attention layout and re-partition, every pooling, seq-pos-emb, resampling, RoPE.

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hlip/io/safetensors.h"
#include "hlip/model/state_dict.h"
#include "hlip/model/vision.h"
#include "test_vision_support.h"

namespace hlip::model {
namespace {

using testing::all_close;
using testing::read_vision_data;
using testing::vision_data_path;

constexpr double kAtol = 2e-5;
constexpr double kRtol = 1e-4;

// The reference stores its configuration in the metadata of expected.safetensors.
VisionOptions options_from_reference(const nlohmann::json& cfg) {
  VisionOptions o;
  o.width = cfg.at("C");
  o.depth = cfg.at("depth");
  o.num_heads = cfg.at("heads");
  o.img_size = cfg.at("img").get<std::array<int64_t, 3>>();
  o.patch_size = cfg.at("patch").get<std::array<int64_t, 3>>();
  o.attention_levels.clear();
  for (const auto& level : cfg.at("levels"))
    o.attention_levels.push_back(parse_attention_level(level));
  o.reg_tokens = cfg.at("reg");
  o.pooling = parse_pooling(cfg.at("pool"));
  o.max_num_scans = cfg.at("M");
  o.spatial_posemb_init = parse_spatial_posemb_init(cfg.at("spatial"));
  o.embed_dim = cfg.at("E");
  o.rope = cfg.value("rope", false);
  return o;
}

struct LoadedCase {
  VisionTower visual{nullptr};
  std::map<std::string, at::Tensor> input;
  std::map<std::string, at::Tensor> expected;
};

LoadedCase load_case(const std::string& name, AttentionKernel kernel = AttentionKernel::kFused) {
  const io::SafetensorsFile expected = io::read_safetensors(vision_data_path(name + "/expected.safetensors"));
  VisionOptions options = options_from_reference(nlohmann::json::parse(expected.metadata.at("config")));
  options.attention_kernel = kernel;
  LoadedCase c;
  c.visual = VisionTower(options);
  LoadOptions load;
  load.source_prefix = "visual.";
  const LoadReport report = load_state_dict(*c.visual, read_vision_data(name + "/model.safetensors"), load);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.summary();
  c.visual->eval();
  c.input = read_vision_data(name + "/input.safetensors");
  c.expected = expected.tensors;
  return c;
}

class VisionReference : public ::testing::TestWithParam<std::string> {};

TEST_P(VisionReference, ForwardMatchesReference) {
  LoadedCase c = load_case(GetParam());
  at::NoGradGuard no_grad;
  VisionTrace trace;
  const at::Tensor features = c.visual->forward(c.input.at("image").to(at::kFloat), &trace);
  const auto& e = c.expected;
  EXPECT_TRUE(all_close(trace.patch_tokens, e.at("vision.patch_tokens"), kAtol, kRtol));
  EXPECT_TRUE(
      all_close(trace.pos_embed.expand_as(e.at("vision.pos_embed")), e.at("vision.pos_embed"), 1e-6, 1e-6));
  int compared_blocks = 0;
  for (size_t i = 0; i < trace.blocks.size(); ++i) {
    const std::string key = "vision.blocks." + std::to_string(i) + ".out";
    if (e.count(key) == 0) continue;
    EXPECT_TRUE(all_close(trace.blocks[i], e.at(key), kAtol, kRtol)) << key;
    ++compared_blocks;
  }
  EXPECT_GE(compared_blocks, 2);
  EXPECT_TRUE(all_close(trace.features, e.at("vision.features"), kAtol, kRtol));
  EXPECT_TRUE(all_close(trace.pooled, e.at("vision.pooled"), kAtol, kRtol));
  EXPECT_TRUE(all_close(features, e.at("image_features"), kAtol, kRtol));
  // Every expected vision tensor has its namesake in the named trace.
  const auto named = named_tensors(trace);
  EXPECT_EQ(named.size(), 4 + trace.blocks.size());
  for (const auto& [key, value] : e) {
    if (key.rfind("vision.", 0) == 0) {
      EXPECT_EQ(named.count(key), 1u) << key;
    }
  }

  if (c.input.count("image_alt") != 0) {
    VisionTrace alt;
    const at::Tensor alt_features = c.visual->forward(c.input.at("image_alt").to(at::kFloat), &alt);
    EXPECT_TRUE(all_close(alt.pos_embed, e.at("alt.vision.pos_embed"), 1e-6, 1e-6));
    EXPECT_TRUE(all_close(alt.pooled, e.at("alt.vision.pooled"), kAtol, kRtol));
    EXPECT_TRUE(all_close(alt_features, e.at("alt.image_features"), kAtol, kRtol));
  }
}

TEST_P(VisionReference, PlainAttentionMatchesFused) {
  LoadedCase fused = load_case(GetParam(), AttentionKernel::kFused);
  LoadedCase plain = load_case(GetParam(), AttentionKernel::kPlain);
  at::NoGradGuard no_grad;
  const at::Tensor image = fused.input.at("image").to(at::kFloat);
  EXPECT_TRUE(all_close(plain.visual(image), fused.visual(image), 1e-5, 1e-5));
}

TEST_P(VisionReference, Bfloat16StaysClose) {
  LoadedCase c = load_case(GetParam());
  at::NoGradGuard no_grad;
  const at::Tensor image = c.input.at("image").to(at::kFloat);
  const at::Tensor reference = c.visual(image);
  c.visual->to(at::kBFloat16);
  const at::Tensor low = c.visual(image.to(at::kBFloat16)).to(at::kFloat);
  const double scale = reference.abs().max().item<double>();
  EXPECT_LT(testing::max_abs_diff(low, reference), 0.1 * scale);
}

INSTANTIATE_TEST_SUITE_P(Cases, VisionReference,
                         ::testing::Values("tiny-cls-scanstudy", "tiny-dinotxt-slicescanstudy-seqpos",
                                           "micro-slicescan-cls-b2", "micro-study-dinotxt-resample",
                                           "micro-rope-scanstudy"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

TEST(VisionReferenceCases, StudyBatchOfTwoEqualsTwoSingles) {
  LoadedCase c = load_case("micro-slicescan-cls-b2");
  at::NoGradGuard no_grad;
  const at::Tensor image = c.input.at("image").to(at::kFloat);
  ASSERT_EQ(image.size(0), 2);
  const at::Tensor both = c.visual(image);
  EXPECT_TRUE(all_close(c.visual(image.narrow(0, 1, 1)), both.narrow(0, 1, 1), 1e-5, 1e-5));
}

TEST(VisionReferenceCases, ScanOrderMattersOnlyWithSequentialEmbedding) {
  at::NoGradGuard no_grad;
  LoadedCase without = load_case("tiny-cls-scanstudy");
  const at::Tensor image = without.input.at("image").to(at::kFloat);
  const at::Tensor reversed = image.flip({1});
  EXPECT_TRUE(all_close(without.visual(reversed), without.visual(image), 1e-5, 1e-5));
  LoadedCase with = load_case("tiny-dinotxt-slicescanstudy-seqpos");
  const at::Tensor image2 = with.input.at("image").to(at::kFloat);
  EXPECT_GT(testing::max_abs_diff(with.visual(image2.flip({1})), with.visual(image2)), 1e-3);
}

}  // namespace
}  // namespace hlip::model
