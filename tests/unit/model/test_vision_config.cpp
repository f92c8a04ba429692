// VisionOptions <-> open_clip model config JSON with the `vision_cfg.hlip` block (spec section 9).

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hlip/core/error.h"
#include "hlip/model/vision_config.h"

namespace hlip::model {
namespace {

void expect_same(const VisionOptions& a, const VisionOptions& b, const std::string& what) {
  EXPECT_EQ(a.width, b.width) << what;
  EXPECT_EQ(a.depth, b.depth) << what;
  EXPECT_EQ(a.num_heads, b.num_heads) << what;
  EXPECT_EQ(a.mlp_ratio, b.mlp_ratio) << what;
  EXPECT_EQ(a.patch_size, b.patch_size) << what;
  EXPECT_EQ(a.img_size, b.img_size) << what;
  EXPECT_EQ(a.norm_eps, b.norm_eps) << what;
  EXPECT_EQ(a.attention_levels, b.attention_levels) << what;
  EXPECT_EQ(a.reg_tokens, b.reg_tokens) << what;
  EXPECT_EQ(a.pooling, b.pooling) << what;
  EXPECT_EQ(a.max_num_scans, b.max_num_scans) << what;
  EXPECT_EQ(a.patch_dropout, b.patch_dropout) << what;
  EXPECT_EQ(a.drop_path, b.drop_path) << what;
  EXPECT_EQ(a.rope, b.rope) << what;
  EXPECT_EQ(a.grad_checkpointing, b.grad_checkpointing) << what;
  EXPECT_EQ(a.attention_kernel, b.attention_kernel) << what;
  EXPECT_EQ(a.spatial_posemb_init, b.spatial_posemb_init) << what;
  EXPECT_EQ(a.embed_dim, b.embed_dim) << what;
}

TEST(VisionConfig, RoundTripsEveryPublishedModel) {
  for (const std::string& name : published_vision_models()) {
    VisionOptions o = vision_options_for(name);
    o.patch_dropout = 0.5;
    o.rope = name.find("large") != std::string::npos;
    expect_same(vision_options_from_json(vision_options_to_json(o)), o, name);
  }
}

TEST(VisionConfig, ReadsTheReferenceCaseShape) {
  const auto cfg = nlohmann::json::parse(R"({
    "embed_dim": 32,
    "vision_cfg": {"timm_model_name": "tiny", "timm_pool": "token", "timm_proj": "linear", "timm_proj_bias": false,
                   "timm_drop_path": 0.1, "patch_dropout": 0.25,
                   "hlip": {"img_size": [8, 24, 40], "patch_size": [2, 8, 8], "in_chans": 1, "width": 72, "depth": 7,
                            "num_heads": 3, "mlp_ratio": 4.0, "norm_eps": 1e-6, "reg_tokens": 1,
                            "global_pool_dinotxt": true, "slice_attn_indexes": [0, 2, 6],
                            "scan_attn_indexes": [1, 4], "study_attn_indexes": [3, 5], "max_num_scans": 5,
                            "spatial_posemb_init": "sincos3d"}}})");
  const VisionOptions o = vision_options_from_json(cfg);
  EXPECT_EQ(o.width, 72);
  EXPECT_EQ(o.pooling, Pooling::kDual);
  EXPECT_EQ(o.num_features(), 144);
  EXPECT_EQ(o.attention_levels[3], AttentionLevel::kStudy);
  EXPECT_EQ(o.attention_levels[6], AttentionLevel::kSlice);
  EXPECT_EQ(o.max_num_scans, 5);
  EXPECT_EQ(o.spatial_posemb_init, SpatialPosEmbInit::kSinCos3d);
  EXPECT_DOUBLE_EQ(o.drop_path, 0.1);
  EXPECT_DOUBLE_EQ(o.patch_dropout, 0.25);
  EXPECT_EQ(o.embed_dim, 32);
}

TEST(VisionConfig, PublishedNameWithoutHlipBlock) {
  const auto cfg = nlohmann::json::parse(
      R"({"embed_dim": 768, "vision_cfg": {"timm_model_name": "vit_base_scan_study_dualdinotxt1568"}})");
  const VisionOptions o = vision_options_from_json(cfg);
  EXPECT_EQ(o.pooling, Pooling::kDual);
  EXPECT_EQ(o.embed_dim, 768);
}

TEST(VisionConfig, ErrorsNameTheKey) {
  EXPECT_THROW(vision_options_from_json(nlohmann::json::object()), Error);
  const auto wrong = nlohmann::json::parse(R"({"vision_cfg": {"hlip": {"width": "wide"}}})");
  try {
    vision_options_from_json(wrong);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vision_cfg.hlip.width"), std::string::npos) << e.what();
  }
  const auto rgb = nlohmann::json::parse(R"({"vision_cfg": {"hlip": {"in_chans": 3}}})");
  EXPECT_THROW(vision_options_from_json(rgb), Error);
}

}  // namespace
}  // namespace hlip::model
