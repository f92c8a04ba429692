// The model grid's place in the source volume (grid.h): exact for the "crop" geometry (every model voxel
// holds the windowed value of the source voxel the affine names), within a source voxel for the "eval"
// geometry (a cube's centre of mass maps back to the cube's centre), on a permuted, flipped, anisotropic
// affine; and maps resampled back onto the source grid.

#include <gtest/gtest.h>

#include <cmath>

#include "hlip/core/error.h"
#include "hlip/io/volume.h"
#include "hlip/preprocess/grid.h"
#include "hlip/preprocess/preset.h"

namespace hlip::preprocess {
namespace {

// i runs superior (2.5 mm, so it becomes D), j runs left (flipped against R), k runs anterior.
io::Volume oblique_volume(const at::Tensor& data) {
  io::Volume volume = io::volume_from_tensor(data, {2.5, 1.0, 1.1}, "grid-test");
  volume.affine = {{{0.0, -1.0, 0.0, 10.0}, {0.0, 0.0, 1.1, -20.0}, {2.5, 0.0, 0.0, 30.0}, {0, 0, 0, 1}}};
  return volume;
}

// A CT preset whose window maps 0..1000 HU linearly to 0..1: values stay comparable to the source.
Preset linear_ct(const std::string& geometry, std::array<int64_t, 3> output_size, int64_t resize_size = 30) {
  Preset preset = preset_by_name("ct-head");
  preset.name = "grid-test";
  preset.geometry = geometry;
  preset.output_size = output_size;
  preset.resize_size = resize_size;
  preset.windows = {CtWindow{"linear", 0.0, 1000.0}};
  return preset;
}

std::array<double, 3> apply(const io::Affine& affine, double d, double h, double w) {
  return io::voxel_to_world(affine, d, h, w);
}

TEST(ModelGrid, CropGeometryNamesTheSourceVoxelOfEveryModelVoxel) {
  at::manual_seed(0);
  const at::Tensor data = at::randint(0, 1000, {10, 28, 22}, at::kFloat);
  const io::Volume volume = oblique_volume(data);
  const Preset preset = linear_ct("crop", {8, 24, 26});  // crops D and one in-plane axis, pads the other
  const at::Tensor scan = preprocess_volume(volume, preset).front().data;
  const io::Affine to_source = model_voxel_to_source_voxel(volume, preset);
  int64_t inside = 0, outside = 0;
  for (int64_t d = 0; d < 8; ++d) {
    for (int64_t h = 0; h < 24; ++h) {
      for (int64_t w = 0; w < 26; ++w) {
        const auto s = apply(to_source, d, h, w);
        const float value = scan[d][h][w].item<float>();
        bool in = true;
        for (int a = 0; a < 3; ++a) {
          ASSERT_EQ(s[a], std::round(s[a]));  // a crop or pad moves whole voxels
          in = in && s[a] >= 0 && s[a] < static_cast<double>(data.size(a));
        }
        if (in) {
          ++inside;
          ASSERT_FLOAT_EQ(
              value, data[static_cast<int64_t>(s[0])][static_cast<int64_t>(s[1])][static_cast<int64_t>(s[2])]
                             .item<float>() /
                         1000.0f)
              << d << " " << h << " " << w;
        } else {
          ++outside;
          ASSERT_EQ(value, 0.0f);
        }
      }
    }
  }
  EXPECT_GT(inside, 0);
  EXPECT_GT(outside, 0);
  // World coordinates are the source affine after the voxel map.
  const auto world = apply(model_voxel_to_world(volume, preset), 3, 4, 5);
  const auto source = apply(to_source, 3, 4, 5);
  const auto expected = io::voxel_to_world(volume.affine, source[0], source[1], source[2]);
  for (int a = 0; a < 3; ++a)
    EXPECT_NEAR(world[a], expected[a], 1e-9);
}

TEST(ModelGrid, EvalGeometryPutsACubeBackWhereItWas) {
  at::Tensor data = at::zeros({10, 28, 22}, at::kFloat);
  data.slice(0, 3, 6).slice(1, 10, 16).slice(2, 6, 10).fill_(1000.0);  // centre (4, 12.5, 7.5)
  const io::Volume volume = oblique_volume(data);
  const Preset preset = linear_ct("eval", {8, 24, 24}, 30);
  const at::Tensor scan = preprocess_volume(volume, preset).front().data.to(at::kDouble);
  const at::Tensor d = at::arange(8, at::kDouble).view({8, 1, 1});
  const at::Tensor h = at::arange(24, at::kDouble).view({1, 24, 1});
  const at::Tensor w = at::arange(24, at::kDouble).view({1, 1, 24});
  const double mass = scan.sum().item<double>();
  ASSERT_GT(mass, 0.0);
  const auto centre =
      apply(model_voxel_to_source_voxel(volume, preset), (scan * d).sum().item<double>() / mass,
            (scan * h).sum().item<double>() / mass, (scan * w).sum().item<double>() / mass);
  EXPECT_NEAR(centre[0], 4.0, 0.6);  // depth picks slices: within half a source slice, plus rounding
  EXPECT_NEAR(centre[1], 12.5, 0.3);
  EXPECT_NEAR(centre[2], 7.5, 0.3);

  const at::Tensor back = resample_to_source(scan, volume, preset);
  ASSERT_EQ(back.sizes(), data.sizes());
  EXPECT_GT(back[4][12][7].item<float>(), 0.9f);
  EXPECT_EQ(back[0][0][0].item<float>(), 0.0f);
  EXPECT_LT(back.slice(0, 0, 2).abs().max().item<float>(), 1e-6f);  // far from the cube along D
}

TEST(ModelGrid, ResamplingBackInvertsAPadExactlyAndZeroesCroppedVoxels) {
  at::manual_seed(1);
  const at::Tensor data = at::randint(0, 1000, {10, 28, 22}, at::kFloat);
  const io::Volume volume = oblique_volume(data);
  const Preset padded = linear_ct("crop", {12, 24, 30});  // pads every axis
  const at::Tensor back = resample_to_source(preprocess_volume(volume, padded).front().data, volume, padded);
  EXPECT_TRUE(at::allclose(back, data / 1000.0, 0.0, 1e-6));

  const Preset cropped = linear_ct("crop", {8, 24, 26});  // drops one voxel at each end of i and of j
  const at::Tensor partial =
      resample_to_source(preprocess_volume(volume, cropped).front().data, volume, cropped);
  EXPECT_EQ(partial.select(0, 0).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(partial.select(0, 9).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(partial.select(1, 0).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(partial.select(1, 27).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(at::allclose(partial.slice(0, 1, 9).slice(1, 1, 27),
                           data.slice(0, 1, 9).slice(1, 1, 27) / 1000.0, 0.0, 1e-6));

  EXPECT_THROW(resample_to_source(at::zeros({8, 24, 25}), volume, cropped), Error);
}

}  // namespace
}  // namespace hlip::preprocess
