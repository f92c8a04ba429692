// 2D -> 3D initialisation from a timm 2D ViT state dict (spec 3.12), against the Python reference and by its
// defining properties.

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hlip/core/error.h"
#include "hlip/model/inflate.h"
#include "hlip/model/pos_embed.h"
#include "hlip/model/state_dict.h"
#include "test_vision_support.h"

namespace hlip::model {
namespace {

using testing::all_close;
using testing::read_vision_data;

// The reference's target model (metadata "target" of inflate-2d/expected.safetensors).
VisionOptions target_options() {
  VisionOptions o;
  o.width = 24;
  o.depth = 1;
  o.num_heads = 2;
  o.img_size = {6, 18, 30};
  o.patch_size = {3, 6, 6};  // 2D kernel 4x4 -> 6x6, 2D grid 4x4 -> (3, 5), depth rows 2
  o.attention_levels = {AttentionLevel::kScan};
  o.max_num_scans = 4;
  o.embed_dim = 8;
  return o;
}

TEST(Inflate2d, MatchesReferenceForBothInflations) {
  const auto state_2d = read_vision_data("inflate-2d/vit2d.safetensors");
  const auto expected = read_vision_data("inflate-2d/expected.safetensors");
  for (const PatchInflation inflation : {PatchInflation::kAverage, PatchInflation::kCentral}) {
    const std::string prefix = to_string(inflation) + ".";
    const auto out = inflate_2d_state_dict(state_2d, target_options(), inflation);
    size_t compared = 0;
    for (const auto& [key, value] : expected) {
      if (key.rfind(prefix, 0) != 0) continue;
      const std::string name = key.substr(prefix.size());
      ASSERT_EQ(out.count(name), 1u) << name;
      EXPECT_TRUE(all_close(out.at(name), value, 1e-6, 1e-5)) << prefix << name;
      ++compared;
    }
    // cls_token, patch weight and bias, spatial and sequential embeddings, blocks.0.norm1.weight,
    // norm.weight.
    EXPECT_EQ(compared, 7u);
    EXPECT_EQ(out.size(), compared);  // head.weight and blocks beyond depth are dropped
  }
}

TEST(Inflate2d, LoadsIntoTheTrunkAndKeepsTheTwoDimensionalResponse) {
  at::manual_seed(0);
  const int64_t width = 12;
  std::map<std::string, at::Tensor> state_2d{
      {"cls_token", at::randn({1, 1, width})},
      {"pos_embed", at::randn({1, 1 + 4, width})},  // class row + 2x2 grid
      {"patch_embed.proj.weight", at::randn({width, 3, 8, 8})},
      {"patch_embed.proj.bias", at::randn({width})},
  };
  VisionOptions o;
  o.width = width;
  o.depth = 1;
  o.num_heads = 2;
  o.img_size = {4, 16, 16};
  o.patch_size = {4, 8, 8};  // grid (1, 2, 2): no resampling
  o.attention_levels = {AttentionLevel::kScan};
  o.embed_dim = 4;
  for (const PatchInflation inflation : {PatchInflation::kAverage, PatchInflation::kCentral}) {
    const auto out = inflate_2d_state_dict(state_2d, o, inflation);
    // The class row is folded into cls_token; the grid rows plus E1(C, 0) become the spatial embedding.
    EXPECT_TRUE(all_close(out.at("cls_token"), state_2d["cls_token"] + state_2d["pos_embed"].narrow(1, 0, 1),
                          1e-7, 0));
    EXPECT_TRUE(all_close(out.at("spatial_posemb").reshape({4, width}),
                          state_2d["pos_embed"][0].narrow(0, 1, 4) + sincos_1d(width, at::zeros({1}))[0],
                          1e-6, 0));
    const at::Tensor kernel = out.at("patch_embed.proj.weight");
    ASSERT_EQ(kernel.sizes(), (std::vector<int64_t>{width, 1, 4, 8, 8}));
    const at::Tensor summed = state_2d["patch_embed.proj.weight"].sum(1);
    if (inflation == PatchInflation::kAverage) {
      for (int64_t z = 0; z < 4; ++z)
        EXPECT_TRUE(all_close(kernel.select(2, z).squeeze(1), summed / 4.0, 1e-6, 1e-6));
    } else {
      EXPECT_TRUE(all_close(kernel.select(2, 2).squeeze(1), summed, 1e-6, 1e-6));
      EXPECT_EQ(kernel.select(2, 0).abs().max().item<double>(), 0.0);
      EXPECT_EQ(kernel.select(2, 3).abs().max().item<double>(), 0.0);
    }
    // A depth-constant scan gives the 2D convolution of one slice with the channel-summed kernel.
    HierarchicalVit trunk(o);
    LoadOptions load;
    load.strict = false;
    load_state_dict(*trunk, out, load);
    const at::Tensor slice = at::randn({16, 16});
    const at::Tensor image = slice.view({1, 1, 1, 1, 16, 16}).expand({1, 1, 1, 4, 16, 16});
    const at::Tensor tokens = trunk->patch_embed(image).reshape({4, width});
    const at::Tensor response = at::conv2d(slice.view({1, 1, 16, 16}), summed.unsqueeze(1),
                                           state_2d["patch_embed.proj.bias"], {8, 8});
    EXPECT_TRUE(all_close(tokens, response.view({width, 4}).t(), 1e-4, 1e-5));
  }
}

TEST(Inflate2d, TheTrunkOfA3dModelGivesBackThe2dModelItWasInflatedFrom) {
  // Summing the depth taps undoes kAverage; averaging spatial_posemb over depth leaves the 2D grid plus the
  // mean depth row, a constant that inflation's own depth sin-cos then sits on.
  at::manual_seed(1);
  const int64_t width = 12;
  std::map<std::string, at::Tensor> state_2d{
      {"cls_token", at::randn({1, 1, width})},
      {"pos_embed", at::randn({1, 4, width})},  // 2x2 grid, no class row
      {"patch_embed.proj.weight", at::randn({width, 1, 8, 8})},
      {"patch_embed.proj.bias", at::randn({width})},
      {"blocks.0.norm1.weight", at::randn({width})},
      {"norm.weight", at::randn({width})},
  };
  VisionOptions o;
  o.width = width;
  o.depth = 1;
  o.num_heads = 2;
  o.img_size = {12, 16, 16};
  o.patch_size = {4, 8, 8};  // grid (3, 2, 2)
  o.attention_levels = {AttentionLevel::kScan};
  o.embed_dim = 4;
  const auto inflated = inflate_2d_state_dict(state_2d, o, PatchInflation::kAverage);
  const auto back = trunk_to_2d_state_dict(inflated);
  EXPECT_TRUE(all_close(back.at("patch_embed.proj.weight"), state_2d["patch_embed.proj.weight"], 1e-6, 1e-6));
  const at::Tensor depth_mean = sincos_1d(width, at::arange(3, at::kFloat)).mean(0);
  EXPECT_TRUE(all_close(back.at("pos_embed"), state_2d["pos_embed"] + depth_mean, 1e-5, 1e-6));
  for (const std::string key : {"cls_token", "patch_embed.proj.bias", "blocks.0.norm1.weight", "norm.weight"})
    EXPECT_TRUE(all_close(back.at(key), state_2d[key], 0, 0)) << key;
  EXPECT_EQ(back.size(), state_2d.size());

  auto no_kernel = inflated;
  no_kernel.erase("patch_embed.proj.weight");
  EXPECT_THROW(trunk_to_2d_state_dict(no_kernel), Error);
  auto flat_kernel = inflated;
  flat_kernel["patch_embed.proj.weight"] = state_2d["patch_embed.proj.weight"];  // already 2D
  EXPECT_THROW(trunk_to_2d_state_dict(flat_kernel), Error);
}

TEST(Inflate2d, ErrorsNameTheKey) {
  std::map<std::string, at::Tensor> state_2d{{"cls_token", at::zeros({1, 1, 12})}};
  VisionOptions o;
  o.width = 12;
  o.depth = 1;
  o.num_heads = 2;
  o.attention_levels = {AttentionLevel::kScan};
  try {
    inflate_2d_state_dict(state_2d, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pos_embed"), std::string::npos) << e.what();
  }
  state_2d["pos_embed"] = at::zeros({1, 7, 12});  // neither square nor square plus a class row
  state_2d["patch_embed.proj.weight"] = at::zeros({12, 3, 16, 16});
  state_2d["patch_embed.proj.bias"] = at::zeros({12});
  EXPECT_THROW(inflate_2d_state_dict(state_2d, o), Error);
  state_2d["pos_embed"] = at::zeros({1, 197, 16});  // wrong width
  EXPECT_THROW(inflate_2d_state_dict(state_2d, o), Error);
  EXPECT_EQ(parse_patch_inflation("central"), PatchInflation::kCentral);
  EXPECT_THROW(parse_patch_inflation("middle"), Error);
}

}  // namespace
}  // namespace hlip::model
