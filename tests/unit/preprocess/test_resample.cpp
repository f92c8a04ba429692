// Resampling against scipy.ndimage.zoom and torch's F.interpolate, and HLIP's loader geometry against HLIP's
// own loader code; expectations from tests/ref/make_preprocess_ref.py.
//
// Tolerances: trilinear vs scipy (order 1): 5e-5 absolute on values in [0, 100], i.e. 5e-7 of the value range
// (torch weighs in float32 where scipy uses float64: a few float32 ulps); order 0 (nearest): identical.
// Against torch itself (the ATen kernels HLIP calls, or their exact float arithmetic): 1e-6, in practice 0.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/preprocess/resample.h"
#include "reference_data.h"

namespace hlip::preprocess {
namespace {

using nlohmann::json;
using test::max_abs_diff;
using test::preprocess_reference;
using test::reference_array;

std::array<int64_t, 3> size3(const json& j) {
  return j.get<std::array<int64_t, 3>>();
}

TEST(Resample, ZoomMatchesScipy) {
  const json& r = preprocess_reference()["resample"];
  const at::Tensor image = reference_array("resample/image");
  const at::Tensor labels = reference_array("resample/labels");
  ASSERT_GE(r["zoom"].size(), 12u);
  for (const json& c : r["zoom"]) {
    const GridMode grid = c["grid_mode"].get<bool>() ? GridMode::kHalfPixel : GridMode::kAlignCorners;
    const at::Tensor expected = reference_array(c["expected"]);
    SCOPED_TRACE(c["expected"].get<std::string>());
    if (c["order"] == 1) {
      EXPECT_LE(max_abs_diff(resize_scan(image, size3(c["size"]), Interpolation::kLinear, grid), expected),
                5e-5);
    } else {
      EXPECT_EQ(max_abs_diff(resize_scan(labels, size3(c["size"]), Interpolation::kNearest, grid), expected),
                0.0);
      // Label maps keep their integer type.
      const at::Tensor int_labels =
          resize_scan(labels.to(at::kShort), size3(c["size"]), Interpolation::kNearest, grid);
      EXPECT_EQ(int_labels.scalar_type(), at::kShort);
      EXPECT_TRUE(at::equal(int_labels, expected.to(at::kShort)));
    }
  }
}

TEST(Resample, TrilinearMatchesTorch) {
  const at::Tensor image = reference_array("resample/image");
  for (const json& c : preprocess_reference()["resample"]["torch_trilinear"]) {
    const GridMode grid = c["align_corners"].get<bool>() ? GridMode::kAlignCorners : GridMode::kHalfPixel;
    EXPECT_LE(max_abs_diff(resize_scan(image, size3(c["size"]), Interpolation::kLinear, grid),
                           reference_array(c["expected"])),
              1e-6);
  }
}

TEST(Resample, ToSpacingIsCtRateProcessing) {
  const json& c = preprocess_reference()["resample"]["to_spacing"];
  const auto spacing = c["spacing"].get<std::array<double, 3>>();
  const Resampled out = resample_to_spacing(reference_array("resample/image"), spacing,
                                            c["target"].get<std::array<double, 3>>());
  EXPECT_EQ(test::sizes_of(out.data), c["size"].get<std::vector<int64_t>>());
  EXPECT_LE(max_abs_diff(out.data, reference_array(c["expected"])), 1e-6);
  EXPECT_LE(max_abs_diff(out.data, reference_array(c["scipy"])), 5e-5);
  const std::array<double, 3> input_size{5, 7, 9};  // the half-pixel grid keeps the field of view
  for (int d = 0; d < 3; ++d)
    EXPECT_DOUBLE_EQ(out.spacing_mm[d], input_size[d] * spacing[d] / static_cast<double>(out.data.size(d)));
}

TEST(Resample, ResampledSizeTruncatesAsPython) {
  for (const json& s : preprocess_reference()["resample"]["resampled_sizes"]) {
    EXPECT_EQ(resampled_size(s[0].get<int64_t>(), s[1].get<double>(), s[2].get<double>()),
              s[3].get<int64_t>())
        << s.dump();
  }
  EXPECT_EQ(resampled_size(2, 0.1, 5.0), 1);  // never empty
  EXPECT_THROW(resampled_size(10, 0.0, 1.0), Error);
  EXPECT_THROW(resampled_size(10, 1.0, NAN), Error);
  EXPECT_THROW(resampled_size(10, 1.0, -1.0), Error);
}

TEST(Resample, NearestExactIndicesMatchTorch) {
  const json& cases = preprocess_reference()["nearest_exact"];
  ASSERT_GE(cases.size(), 10u);
  for (const json& c : cases) {
    const int64_t n_in = c["input"], n_out = c["output"];
    EXPECT_EQ(nearest_exact_indices(n_in, n_out), c["indices"].get<std::vector<int64_t>>())
        << n_in << " -> " << n_out;
    const at::Tensor slices = at::arange(n_in, at::kFloat).reshape({n_in, 1, 1}).expand({n_in, 2, 1});
    const at::Tensor picked = resize_depth_nearest_exact(slices, n_out);
    const at::Tensor picked_index = picked.select(1, 1).select(1, 0).to(at::kLong).contiguous();
    EXPECT_EQ(
        std::vector<int64_t>(picked_index.data_ptr<int64_t>(), picked_index.data_ptr<int64_t>() + n_out),
        c["indices"].get<std::vector<int64_t>>());
  }
  EXPECT_THROW(nearest_exact_indices(0, 3), Error);
}

TEST(Resample, BilinearMatchesTorch) {
  for (const json& c : preprocess_reference()["loaders"]["bilinear"]) {
    const auto size = c["size"].get<std::array<int64_t, 2>>();
    EXPECT_LE(max_abs_diff(resize_in_plane_bilinear(reference_array(c["input"]), size[0], size[1]),
                           reference_array(c["expected"])),
              1e-6);
  }
}

// hlip's own bilinear loop reproduces ATen's kernel bit for bit (including its fused multiply-adds on CPUs
// where ATen runs its AVX2 build), so the fused chain and the step-by-step one agree exactly.
TEST(Resample, BilinearIsAtensKernelBitForBit) {
  at::manual_seed(0);
  for (const auto& [h, w, oh, ow] : std::vector<std::array<int64_t, 4>>{{7, 9, 5, 16},
                                                                        {37, 128, 224, 224},
                                                                        {256, 256, 256, 256},
                                                                        {300, 512, 384, 387},
                                                                        {224, 200, 256, 250}}) {
    const at::Tensor x = at::rand({2, h, w});
    const at::Tensor aten =
        at::upsample_bilinear2d(x.unsqueeze(0), {oh, ow}, /*align_corners=*/false).squeeze(0);
    EXPECT_TRUE(at::equal(resize_in_plane_bilinear(x, oh, ow), aten))
        << h << "x" << w << " -> " << oh << "x" << ow;
  }
}

TEST(Resample, SquareResizeCropIsHlipsLoader) {
  const json& cases = preprocess_reference()["loaders"]["square"];
  ASSERT_EQ(cases.size(), 3u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["input"].get<std::string>());
    const at::Tensor input = reference_array(c["input"]);
    const std::array<int64_t, 3> size{c["depth"], c["crop"], c["crop"]};
    const at::Tensor eval = square_resize_crop(input, size, c["resize"], SquareResize::kBilinearNearestExact);
    EXPECT_TRUE(eval.is_contiguous());
    EXPECT_LE(max_abs_diff(eval, reference_array(c["eval"])), 1e-6);
    EXPECT_LE(max_abs_diff(square_resize_crop(input, size, c["resize"], SquareResize::kTrilinear),
                           reference_array(c["trilinear"])),
              1e-6);
  }
}

TEST(Resample, CenterPadCropIsCtRatesCropLoader) {
  for (const json& c : preprocess_reference()["loaders"]["crop"]) {
    EXPECT_EQ(max_abs_diff(center_pad_crop(reference_array(c["input"]), size3(c["size"])),
                           reference_array(c["expected"])),
              0.0)
        << c["input"];
  }
  const at::Tensor x = at::ones({1, 2, 4});
  const at::Tensor square = pad_to_square(x, -1.0);
  EXPECT_EQ(test::sizes_of(square), (std::vector<int64_t>{1, 4, 4}));
  EXPECT_EQ(square[0][0][0].item<float>(), -1.0f);  // before: (4 − 2) / 2 = 1 row
  EXPECT_EQ(square[0][1][0].item<float>(), 1.0f);
  EXPECT_EQ(square[0][3][0].item<float>(), -1.0f);
}

TEST(Resample, BadShapesAreErrors) {
  EXPECT_THROW(resize_scan(at::zeros({4, 4}), {2, 2, 2}), Error);
  EXPECT_THROW(resize_scan(at::zeros({4, 4, 4}), {2, 0, 2}), Error);
  EXPECT_THROW(resize_scan(at::zeros({4, 0, 4}), {2, 2, 2}), Error);
  EXPECT_THROW(resize_scan(at::zeros({4, 4, 4}, at::kInt), {2, 2, 2}, Interpolation::kLinear), Error);
  EXPECT_THROW(center_pad_crop(at::zeros({4, 4, 4}), {4, -1, 4}), Error);
  EXPECT_THROW(square_resize_crop(at::zeros({4, 4, 4}), {2, 2, 2}, 0, SquareResize::kTrilinear), Error);
}

}  // namespace
}  // namespace hlip::preprocess
