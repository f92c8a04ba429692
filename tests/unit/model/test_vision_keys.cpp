// Key names and shapes of the vision tower equal the open_clip / timm state dict (spec section 7, appendix
// A).

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hlip/core/error.h"
#include "hlip/model/vision.h"

namespace hlip::model {
namespace {

// The `visual.` lines of the spec's appendix A lists, copied verbatim.
const char* const kTinyClsScanStudyKeys = R"(
visual.trunk.cls_token                                              [1, 1, 96]
visual.trunk.spatial_posemb                                         [1, 2, 3, 5, 96]
visual.trunk.patch_embed.proj.weight                                [96, 1, 4, 8, 8]
visual.trunk.patch_embed.proj.bias                                  [96]
visual.trunk.blocks.0.norm1.weight                                  [96]
visual.trunk.blocks.0.norm1.bias                                    [96]
visual.trunk.blocks.0.attn.qkv.weight                               [288, 96]
visual.trunk.blocks.0.attn.qkv.bias                                 [288]
visual.trunk.blocks.0.attn.proj.weight                              [96, 96]
visual.trunk.blocks.0.attn.proj.bias                                [96]
visual.trunk.blocks.0.norm2.weight                                  [96]
visual.trunk.blocks.0.norm2.bias                                    [96]
visual.trunk.blocks.0.mlp.fc1.weight                                [384, 96]
visual.trunk.blocks.0.mlp.fc1.bias                                  [384]
visual.trunk.blocks.0.mlp.fc2.weight                                [96, 384]
visual.trunk.blocks.0.mlp.fc2.bias                                  [96]
visual.trunk.blocks.1.norm1.weight                                  [96]
visual.trunk.blocks.1.norm1.bias                                    [96]
visual.trunk.blocks.1.attn.qkv.weight                               [288, 96]
visual.trunk.blocks.1.attn.qkv.bias                                 [288]
visual.trunk.blocks.1.attn.proj.weight                              [96, 96]
visual.trunk.blocks.1.attn.proj.bias                                [96]
visual.trunk.blocks.1.norm2.weight                                  [96]
visual.trunk.blocks.1.norm2.bias                                    [96]
visual.trunk.blocks.1.mlp.fc1.weight                                [384, 96]
visual.trunk.blocks.1.mlp.fc1.bias                                  [384]
visual.trunk.blocks.1.mlp.fc2.weight                                [96, 384]
visual.trunk.blocks.1.mlp.fc2.bias                                  [96]
visual.trunk.blocks.2.norm1.weight                                  [96]
visual.trunk.blocks.2.norm1.bias                                    [96]
visual.trunk.blocks.2.attn.qkv.weight                               [288, 96]
visual.trunk.blocks.2.attn.qkv.bias                                 [288]
visual.trunk.blocks.2.attn.proj.weight                              [96, 96]
visual.trunk.blocks.2.attn.proj.bias                                [96]
visual.trunk.blocks.2.norm2.weight                                  [96]
visual.trunk.blocks.2.norm2.bias                                    [96]
visual.trunk.blocks.2.mlp.fc1.weight                                [384, 96]
visual.trunk.blocks.2.mlp.fc1.bias                                  [384]
visual.trunk.blocks.2.mlp.fc2.weight                                [96, 384]
visual.trunk.blocks.2.mlp.fc2.bias                                  [96]
visual.trunk.blocks.3.norm1.weight                                  [96]
visual.trunk.blocks.3.norm1.bias                                    [96]
visual.trunk.blocks.3.attn.qkv.weight                               [288, 96]
visual.trunk.blocks.3.attn.qkv.bias                                 [288]
visual.trunk.blocks.3.attn.proj.weight                              [96, 96]
visual.trunk.blocks.3.attn.proj.bias                                [96]
visual.trunk.blocks.3.norm2.weight                                  [96]
visual.trunk.blocks.3.norm2.bias                                    [96]
visual.trunk.blocks.3.mlp.fc1.weight                                [384, 96]
visual.trunk.blocks.3.mlp.fc1.bias                                  [384]
visual.trunk.blocks.3.mlp.fc2.weight                                [96, 384]
visual.trunk.blocks.3.mlp.fc2.bias                                  [96]
visual.trunk.norm.weight                                            [96]
visual.trunk.norm.bias                                              [96]
visual.head.proj.weight                                             [24, 96]
)";

const char* const kTinyDinotxtSliceScanStudyKeys = R"(
visual.trunk.cls_token                                              [1, 1, 72]
visual.trunk.reg_token                                              [1, 1, 72]
visual.trunk.spatial_posemb                                         [1, 4, 3, 5, 72]
visual.trunk.sequential_posemb                                      [1, 5, 72]
visual.trunk.patch_embed.proj.weight                                [72, 1, 2, 8, 8]
visual.trunk.patch_embed.proj.bias                                  [72]
visual.trunk.blocks.0.norm1.weight                                  [72]
visual.trunk.blocks.0.norm1.bias                                    [72]
visual.trunk.blocks.0.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.0.attn.qkv.bias                                 [216]
visual.trunk.blocks.0.attn.proj.weight                              [72, 72]
visual.trunk.blocks.0.attn.proj.bias                                [72]
visual.trunk.blocks.0.norm2.weight                                  [72]
visual.trunk.blocks.0.norm2.bias                                    [72]
visual.trunk.blocks.0.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.0.mlp.fc1.bias                                  [288]
visual.trunk.blocks.0.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.0.mlp.fc2.bias                                  [72]
visual.trunk.blocks.1.norm1.weight                                  [72]
visual.trunk.blocks.1.norm1.bias                                    [72]
visual.trunk.blocks.1.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.1.attn.qkv.bias                                 [216]
visual.trunk.blocks.1.attn.proj.weight                              [72, 72]
visual.trunk.blocks.1.attn.proj.bias                                [72]
visual.trunk.blocks.1.norm2.weight                                  [72]
visual.trunk.blocks.1.norm2.bias                                    [72]
visual.trunk.blocks.1.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.1.mlp.fc1.bias                                  [288]
visual.trunk.blocks.1.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.1.mlp.fc2.bias                                  [72]
visual.trunk.blocks.2.norm1.weight                                  [72]
visual.trunk.blocks.2.norm1.bias                                    [72]
visual.trunk.blocks.2.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.2.attn.qkv.bias                                 [216]
visual.trunk.blocks.2.attn.proj.weight                              [72, 72]
visual.trunk.blocks.2.attn.proj.bias                                [72]
visual.trunk.blocks.2.norm2.weight                                  [72]
visual.trunk.blocks.2.norm2.bias                                    [72]
visual.trunk.blocks.2.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.2.mlp.fc1.bias                                  [288]
visual.trunk.blocks.2.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.2.mlp.fc2.bias                                  [72]
visual.trunk.blocks.3.norm1.weight                                  [72]
visual.trunk.blocks.3.norm1.bias                                    [72]
visual.trunk.blocks.3.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.3.attn.qkv.bias                                 [216]
visual.trunk.blocks.3.attn.proj.weight                              [72, 72]
visual.trunk.blocks.3.attn.proj.bias                                [72]
visual.trunk.blocks.3.norm2.weight                                  [72]
visual.trunk.blocks.3.norm2.bias                                    [72]
visual.trunk.blocks.3.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.3.mlp.fc1.bias                                  [288]
visual.trunk.blocks.3.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.3.mlp.fc2.bias                                  [72]
visual.trunk.blocks.4.norm1.weight                                  [72]
visual.trunk.blocks.4.norm1.bias                                    [72]
visual.trunk.blocks.4.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.4.attn.qkv.bias                                 [216]
visual.trunk.blocks.4.attn.proj.weight                              [72, 72]
visual.trunk.blocks.4.attn.proj.bias                                [72]
visual.trunk.blocks.4.norm2.weight                                  [72]
visual.trunk.blocks.4.norm2.bias                                    [72]
visual.trunk.blocks.4.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.4.mlp.fc1.bias                                  [288]
visual.trunk.blocks.4.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.4.mlp.fc2.bias                                  [72]
visual.trunk.blocks.5.norm1.weight                                  [72]
visual.trunk.blocks.5.norm1.bias                                    [72]
visual.trunk.blocks.5.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.5.attn.qkv.bias                                 [216]
visual.trunk.blocks.5.attn.proj.weight                              [72, 72]
visual.trunk.blocks.5.attn.proj.bias                                [72]
visual.trunk.blocks.5.norm2.weight                                  [72]
visual.trunk.blocks.5.norm2.bias                                    [72]
visual.trunk.blocks.5.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.5.mlp.fc1.bias                                  [288]
visual.trunk.blocks.5.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.5.mlp.fc2.bias                                  [72]
visual.trunk.blocks.6.norm1.weight                                  [72]
visual.trunk.blocks.6.norm1.bias                                    [72]
visual.trunk.blocks.6.attn.qkv.weight                               [216, 72]
visual.trunk.blocks.6.attn.qkv.bias                                 [216]
visual.trunk.blocks.6.attn.proj.weight                              [72, 72]
visual.trunk.blocks.6.attn.proj.bias                                [72]
visual.trunk.blocks.6.norm2.weight                                  [72]
visual.trunk.blocks.6.norm2.bias                                    [72]
visual.trunk.blocks.6.mlp.fc1.weight                                [288, 72]
visual.trunk.blocks.6.mlp.fc1.bias                                  [288]
visual.trunk.blocks.6.mlp.fc2.weight                                [72, 288]
visual.trunk.blocks.6.mlp.fc2.bias                                  [72]
visual.trunk.norm.weight                                            [72]
visual.trunk.norm.bias                                              [72]
visual.head.proj.weight                                             [32, 144]
)";

const char* const kVitBaseDualDinotxt1568Keys = R"(
visual.trunk.cls_token                                               [1, 1, 768]
visual.trunk.reg_token                                               [1, 1, 768]
visual.trunk.spatial_posemb                                          [1, 8, 14, 14, 768]
visual.trunk.patch_embed.proj.weight                                 [768, 1, 6, 16, 16]
visual.trunk.patch_embed.proj.bias                                   [768]
visual.trunk.blocks.0.norm1.weight                                   [768]
visual.trunk.blocks.0.norm1.bias                                     [768]
visual.trunk.blocks.0.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.0.attn.qkv.bias                                  [2304]
visual.trunk.blocks.0.attn.proj.weight                               [768, 768]
visual.trunk.blocks.0.attn.proj.bias                                 [768]
visual.trunk.blocks.0.norm2.weight                                   [768]
visual.trunk.blocks.0.norm2.bias                                     [768]
visual.trunk.blocks.0.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.0.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.0.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.0.mlp.fc2.bias                                   [768]
visual.trunk.blocks.1.norm1.weight                                   [768]
visual.trunk.blocks.1.norm1.bias                                     [768]
visual.trunk.blocks.1.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.1.attn.qkv.bias                                  [2304]
visual.trunk.blocks.1.attn.proj.weight                               [768, 768]
visual.trunk.blocks.1.attn.proj.bias                                 [768]
visual.trunk.blocks.1.norm2.weight                                   [768]
visual.trunk.blocks.1.norm2.bias                                     [768]
visual.trunk.blocks.1.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.1.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.1.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.1.mlp.fc2.bias                                   [768]
visual.trunk.blocks.2.norm1.weight                                   [768]
visual.trunk.blocks.2.norm1.bias                                     [768]
visual.trunk.blocks.2.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.2.attn.qkv.bias                                  [2304]
visual.trunk.blocks.2.attn.proj.weight                               [768, 768]
visual.trunk.blocks.2.attn.proj.bias                                 [768]
visual.trunk.blocks.2.norm2.weight                                   [768]
visual.trunk.blocks.2.norm2.bias                                     [768]
visual.trunk.blocks.2.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.2.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.2.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.2.mlp.fc2.bias                                   [768]
visual.trunk.blocks.3.norm1.weight                                   [768]
visual.trunk.blocks.3.norm1.bias                                     [768]
visual.trunk.blocks.3.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.3.attn.qkv.bias                                  [2304]
visual.trunk.blocks.3.attn.proj.weight                               [768, 768]
visual.trunk.blocks.3.attn.proj.bias                                 [768]
visual.trunk.blocks.3.norm2.weight                                   [768]
visual.trunk.blocks.3.norm2.bias                                     [768]
visual.trunk.blocks.3.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.3.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.3.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.3.mlp.fc2.bias                                   [768]
visual.trunk.blocks.4.norm1.weight                                   [768]
visual.trunk.blocks.4.norm1.bias                                     [768]
visual.trunk.blocks.4.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.4.attn.qkv.bias                                  [2304]
visual.trunk.blocks.4.attn.proj.weight                               [768, 768]
visual.trunk.blocks.4.attn.proj.bias                                 [768]
visual.trunk.blocks.4.norm2.weight                                   [768]
visual.trunk.blocks.4.norm2.bias                                     [768]
visual.trunk.blocks.4.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.4.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.4.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.4.mlp.fc2.bias                                   [768]
visual.trunk.blocks.5.norm1.weight                                   [768]
visual.trunk.blocks.5.norm1.bias                                     [768]
visual.trunk.blocks.5.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.5.attn.qkv.bias                                  [2304]
visual.trunk.blocks.5.attn.proj.weight                               [768, 768]
visual.trunk.blocks.5.attn.proj.bias                                 [768]
visual.trunk.blocks.5.norm2.weight                                   [768]
visual.trunk.blocks.5.norm2.bias                                     [768]
visual.trunk.blocks.5.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.5.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.5.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.5.mlp.fc2.bias                                   [768]
visual.trunk.blocks.6.norm1.weight                                   [768]
visual.trunk.blocks.6.norm1.bias                                     [768]
visual.trunk.blocks.6.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.6.attn.qkv.bias                                  [2304]
visual.trunk.blocks.6.attn.proj.weight                               [768, 768]
visual.trunk.blocks.6.attn.proj.bias                                 [768]
visual.trunk.blocks.6.norm2.weight                                   [768]
visual.trunk.blocks.6.norm2.bias                                     [768]
visual.trunk.blocks.6.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.6.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.6.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.6.mlp.fc2.bias                                   [768]
visual.trunk.blocks.7.norm1.weight                                   [768]
visual.trunk.blocks.7.norm1.bias                                     [768]
visual.trunk.blocks.7.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.7.attn.qkv.bias                                  [2304]
visual.trunk.blocks.7.attn.proj.weight                               [768, 768]
visual.trunk.blocks.7.attn.proj.bias                                 [768]
visual.trunk.blocks.7.norm2.weight                                   [768]
visual.trunk.blocks.7.norm2.bias                                     [768]
visual.trunk.blocks.7.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.7.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.7.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.7.mlp.fc2.bias                                   [768]
visual.trunk.blocks.8.norm1.weight                                   [768]
visual.trunk.blocks.8.norm1.bias                                     [768]
visual.trunk.blocks.8.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.8.attn.qkv.bias                                  [2304]
visual.trunk.blocks.8.attn.proj.weight                               [768, 768]
visual.trunk.blocks.8.attn.proj.bias                                 [768]
visual.trunk.blocks.8.norm2.weight                                   [768]
visual.trunk.blocks.8.norm2.bias                                     [768]
visual.trunk.blocks.8.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.8.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.8.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.8.mlp.fc2.bias                                   [768]
visual.trunk.blocks.9.norm1.weight                                   [768]
visual.trunk.blocks.9.norm1.bias                                     [768]
visual.trunk.blocks.9.attn.qkv.weight                                [2304, 768]
visual.trunk.blocks.9.attn.qkv.bias                                  [2304]
visual.trunk.blocks.9.attn.proj.weight                               [768, 768]
visual.trunk.blocks.9.attn.proj.bias                                 [768]
visual.trunk.blocks.9.norm2.weight                                   [768]
visual.trunk.blocks.9.norm2.bias                                     [768]
visual.trunk.blocks.9.mlp.fc1.weight                                 [3072, 768]
visual.trunk.blocks.9.mlp.fc1.bias                                   [3072]
visual.trunk.blocks.9.mlp.fc2.weight                                 [768, 3072]
visual.trunk.blocks.9.mlp.fc2.bias                                   [768]
visual.trunk.blocks.10.norm1.weight                                  [768]
visual.trunk.blocks.10.norm1.bias                                    [768]
visual.trunk.blocks.10.attn.qkv.weight                               [2304, 768]
visual.trunk.blocks.10.attn.qkv.bias                                 [2304]
visual.trunk.blocks.10.attn.proj.weight                              [768, 768]
visual.trunk.blocks.10.attn.proj.bias                                [768]
visual.trunk.blocks.10.norm2.weight                                  [768]
visual.trunk.blocks.10.norm2.bias                                    [768]
visual.trunk.blocks.10.mlp.fc1.weight                                [3072, 768]
visual.trunk.blocks.10.mlp.fc1.bias                                  [3072]
visual.trunk.blocks.10.mlp.fc2.weight                                [768, 3072]
visual.trunk.blocks.10.mlp.fc2.bias                                  [768]
visual.trunk.blocks.11.norm1.weight                                  [768]
visual.trunk.blocks.11.norm1.bias                                    [768]
visual.trunk.blocks.11.attn.qkv.weight                               [2304, 768]
visual.trunk.blocks.11.attn.qkv.bias                                 [2304]
visual.trunk.blocks.11.attn.proj.weight                              [768, 768]
visual.trunk.blocks.11.attn.proj.bias                                [768]
visual.trunk.blocks.11.norm2.weight                                  [768]
visual.trunk.blocks.11.norm2.bias                                    [768]
visual.trunk.blocks.11.mlp.fc1.weight                                [3072, 768]
visual.trunk.blocks.11.mlp.fc1.bias                                  [3072]
visual.trunk.blocks.11.mlp.fc2.weight                                [768, 3072]
visual.trunk.blocks.11.mlp.fc2.bias                                  [768]
visual.trunk.norm.weight                                             [768]
visual.trunk.norm.bias                                               [768]
visual.head.proj.weight                                              [768, 1536]
)";

std::string listing(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string name, shape, part;
    fields >> name;
    while (fields >> part)
      shape += part;
    out += name + " " + shape + "\n";
  }
  return out;
}

std::string listing(VisionTower& visual) {
  std::string out;
  for (const auto& item : visual->named_parameters(/*recurse=*/true)) {
    std::string shape = "[";
    for (int64_t i = 0; i < item.value().dim(); ++i) {
      shape += (i ? "," : "") + std::to_string(item.value().size(i));
    }
    out += "visual." + item.key() + " " + shape + "]\n";
  }
  for (const auto& item : visual->named_buffers(/*recurse=*/true))
    out += "visual." + item.key() + " (buffer)\n";
  return out;
}

VisionOptions tiny_cls_scan_study() {
  VisionOptions o;
  o.width = 96;
  o.depth = 4;
  o.num_heads = 4;
  o.img_size = {8, 24, 40};
  o.patch_size = {4, 8, 8};
  o.attention_levels = attention_levels_from_indexes(4, {}, {0, 1, 3}, {2});
  o.embed_dim = 24;
  return o;
}

VisionOptions tiny_dinotxt_slice_scan_study() {
  VisionOptions o;
  o.width = 72;
  o.depth = 7;
  o.num_heads = 3;
  o.img_size = {8, 24, 40};
  o.patch_size = {2, 8, 8};
  o.attention_levels = attention_levels_from_indexes(7, {0, 2, 6}, {1, 4}, {3, 5});
  o.reg_tokens = 1;
  o.pooling = Pooling::kDual;
  o.max_num_scans = 5;
  o.spatial_posemb_init = SpatialPosEmbInit::kSinCos3d;
  o.embed_dim = 32;
  return o;
}

TEST(VisionKeys, TinyClsScanStudyEqualsAppendixA2) {
  VisionTower visual(tiny_cls_scan_study());
  EXPECT_EQ(listing(visual), listing(kTinyClsScanStudyKeys));
}

TEST(VisionKeys, TinyDinotxtSliceScanStudyEqualsAppendixA3) {
  VisionTower visual(tiny_dinotxt_slice_scan_study());
  EXPECT_EQ(listing(visual), listing(kTinyDinotxtSliceScanStudyKeys));
}

TEST(VisionKeys, VitBaseDualDinotxt1568EqualsAppendixA1) {
  VisionOptions options = vision_options_for("vit_base_scan_study_dualdinotxt1568");
  options.embed_dim = 768;  // A.1 lists the E = 768 variant
  VisionTower visual(options);
  EXPECT_EQ(listing(visual), listing(kVitBaseDualDinotxt1568Keys));
}

TEST(VisionKeys, FrozenEmbeddingsAreParametersWithoutGradient) {
  VisionTower visual(tiny_dinotxt_slice_scan_study());
  EXPECT_FALSE(visual->trunk->spatial_posemb.requires_grad());
  EXPECT_FALSE(visual->trunk->sequential_posemb.requires_grad());
  EXPECT_TRUE(visual->trunk->cls_token.requires_grad());
  EXPECT_TRUE(visual->trunk->reg_token.requires_grad());
}

TEST(VisionKeys, SequentialEmbeddingOnlyForMoreThanOneScan) {
  VisionOptions options = tiny_cls_scan_study();
  for (int64_t rows : {0, 1}) {
    options.max_num_scans = rows;
    HierarchicalVit trunk(options);
    EXPECT_FALSE(trunk->sequential_posemb.defined()) << rows;
    EXPECT_EQ(trunk->named_parameters().find("sequential_posemb"), nullptr) << rows;
  }
  options.max_num_scans = 40;
  HierarchicalVit trunk(options);
  EXPECT_EQ(trunk->named_parameters()["sequential_posemb"].sizes(), (std::vector<int64_t>{1, 40, 96}));
}

TEST(VisionOptions, PublishedModelsResolve) {
  for (const std::string& name : published_vision_models()) {
    const VisionOptions o = vision_options_for(name);
    EXPECT_EQ(static_cast<int64_t>(o.attention_levels.size()), o.depth) << name;
  }
  const VisionOptions v1 = vision_options_for("vit_base_multiscan_h2_token1176");
  EXPECT_EQ(v1.max_num_scans, 40);
  EXPECT_EQ(v1.pooling, Pooling::kCls);
  const auto g1 = v1.grid_size();
  EXPECT_EQ(g1[0] * g1[1] * g1[2], 1176);  // "token1176": 6 x 14 x 14 tokens per scan
  const VisionOptions dual = vision_options_for("vit_base_scan_study_dualdinotxt1568");
  const auto g2 = dual.grid_size();
  EXPECT_EQ(g2[0] * g2[1] * g2[2], 1568);  // 48x224x224 at patch 6x16x16
  EXPECT_EQ(dual.num_prefix_tokens(), 2);
  EXPECT_EQ(dual.num_features(), 1536);
  const VisionOptions ct = vision_options_for("vit_base_slice_scan_dualdinotxt2744");
  const auto g3 = ct.grid_size();
  EXPECT_EQ(g3[0] * g3[1] * g3[2], 2744);
  EXPECT_EQ(ct.attention_levels[0], AttentionLevel::kSlice);
  EXPECT_EQ(ct.attention_levels[2], AttentionLevel::kScan);
  const VisionOptions large = vision_options_for("vit_large_slice_scan_study_dualdinotxt1568");
  EXPECT_EQ(large.attention_levels[3], AttentionLevel::kSlice);
  EXPECT_EQ(large.attention_levels[4], AttentionLevel::kScan);
  EXPECT_EQ(large.attention_levels[5], AttentionLevel::kStudy);
  EXPECT_EQ(large.attention_levels[6], AttentionLevel::kSlice);
  EXPECT_THROW(vision_options_for("vit_huge"), Error);
}

TEST(VisionOptions, ValidateNamesTheField) {
  VisionOptions o = tiny_cls_scan_study();
  o.attention_levels.pop_back();
  try {
    o.validate();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_levels"), std::string::npos) << e.what();
  }
  o = tiny_cls_scan_study();
  o.pooling = Pooling::kDual;  // needs a register token
  EXPECT_THROW(o.validate(), Error);
  o = tiny_cls_scan_study();
  o.img_size = {9, 24, 40};
  EXPECT_THROW(o.validate(), Error);
  o = tiny_cls_scan_study();
  o.spatial_posemb_init = SpatialPosEmbInit::kSinCos3d;
  EXPECT_NO_THROW(o.validate());  // 96 is a multiple of 6
  o.width = 100;
  o.num_heads = 4;
  EXPECT_THROW(o.validate(), Error);  // 100 is not
}

TEST(VisionOptions, AttentionIndexListsMustCoverEveryBlockOnce) {
  EXPECT_THROW(attention_levels_from_indexes(3, {0}, {1}, {}), Error);        // block 2 in no list
  EXPECT_THROW(attention_levels_from_indexes(3, {0, 1}, {1, 2}, {}), Error);  // block 1 twice
  EXPECT_THROW(attention_levels_from_indexes(3, {0, 1}, {2, 3}, {}), Error);  // block 3 out of range
  const auto levels = attention_levels_from_indexes(3, {2}, {0}, {1});
  EXPECT_EQ(levels, (std::vector<AttentionLevel>{AttentionLevel::kScan, AttentionLevel::kStudy,
                                                 AttentionLevel::kSlice}));
  EXPECT_EQ(parse_attention_level("study"), AttentionLevel::kStudy);
  EXPECT_EQ(parse_pooling("dual"), Pooling::kDual);
  EXPECT_THROW(parse_pooling("mean"), Error);
}

}  // namespace
}  // namespace hlip::model
