// preprocess_volume end to end: against HLIP's own steps on small scans (tests/ref/make_preprocess_ref.py),
// against the step-by-step public functions on a larger oblique scan, and on bad input.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "hlip/core/error.h"
#include "hlip/preprocess/orient.h"
#include "hlip/preprocess/preset.h"
#include "hlip/preprocess/resample.h"
#include "reference_data.h"
#include "temp_dir.h"

namespace hlip::preprocess {
namespace {

using nlohmann::json;
using test::max_abs_diff;
using test::preprocess_reference;
using test::reference_array;

using test::error_message;

Preset preset_from_case(const json& c) {
  Preset p = preset_for_modality(c["modality"]);
  p.name = "reference";
  p.geometry = c["geometry"];
  p.output_size = c["output_size"].get<std::array<int64_t, 3>>();
  if (c.contains("resize_size")) p.resize_size = c["resize_size"];
  if (c.contains("target_spacing_mm"))
    p.target_spacing_mm = c["target_spacing_mm"].get<std::array<double, 3>>();
  if (c.contains("windows")) {
    p.windows.clear();
    for (const json& w : c["windows"])
      p.windows.push_back({w["name"], w["min_hu"], w["max_hu"]});
  }
  return p;
}

TEST(Pipeline, MatchesHlipsOwnSteps) {
  const json& cases = preprocess_reference()["chain"];
  ASSERT_EQ(cases.size(), 3u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const io::Volume volume =
        test::fortran_volume(reference_array(c["data"]), c["spacing"].get<std::array<double, 3>>(),
                             test::affine_from_json(c["affine"]));
    const std::vector<ProcessedScan> scans = preprocess_volume(volume, preset_from_case(c["preset"]));
    ASSERT_EQ(scans.size(), c["expected"].size());
    for (size_t s = 0; s < scans.size(); ++s) {
      EXPECT_TRUE(scans[s].data.is_contiguous());
      EXPECT_EQ(scans[s].data.scalar_type(), at::kFloat);
      EXPECT_LE(max_abs_diff(scans[s].data, reference_array(c["expected"][s])), 1e-6) << s;
      EXPECT_EQ(scans[s].suffix, c.contains("suffixes") ? c["suffixes"][s].get<std::string>() : "");
    }
  }
}

// A 3-D scan with an oblique, flipped affine, not square in-plane, so every step does something.
io::Volume oblique_scan() {
  at::manual_seed(9);
  const at::Tensor values = (at::rand({37, 30, 11}) * 1200 - 100).round();
  io::Affine affine{};
  const double c = std::cos(0.3), s = std::sin(0.3);
  affine[0] = {0, 0, -4.0, 30};  // k points left: the thick axis
  affine[1] = {-0.8 * c, 0.9 * s, 0, 10};
  affine[2] = {0.8 * s, 0.9 * c, 0, -5};
  affine[3] = {0, 0, 0, 1};
  return test::fortran_volume(values, {0.8, 0.9, 4.0}, affine, "oblique.nii.gz");
}

TEST(Pipeline, EvalPathEqualsStepByStep) {
  const io::Volume volume = oblique_scan();
  Preset preset = preset_by_name("mri-brain");
  preset.output_size = {8, 24, 24};
  preset.resize_size = 32;
  const OrientedScan scan = to_hlip_axes(to_closest_canonical(volume));
  EXPECT_EQ(scan.source_axes[0], 0);  // the thick voxel axis k points left: canonical i, a sagittal stack
  EXPECT_EQ(scan.spacing_mm[0], 4.0);
  const at::Tensor expected = square_resize_crop(percentile_normalize(scan.data), preset.output_size, 32,
                                                 SquareResize::kBilinearNearestExact);
  const auto out = preprocess_volume(volume, preset);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(max_abs_diff(out[0].data, expected), 0.0);

  // With resampling and the other geometries too.
  preset.target_spacing_mm = std::array<double, 3>{3.0, 1.5, 1.1};
  for (const char* geometry : {"eval", "resize", "crop"}) {
    preset.geometry = geometry;
    const Resampled r = resample_to_spacing(scan.data, scan.spacing_mm, *preset.target_spacing_mm);
    const at::Tensor scaled = percentile_normalize(r.data);
    const at::Tensor step_by_step =
        preset.geometry == "crop"
            ? center_pad_crop(scaled, preset.output_size)
            : square_resize_crop(
                  scaled, preset.output_size, 32,
                  preset.geometry == "eval" ? SquareResize::kBilinearNearestExact : SquareResize::kTrilinear);
    EXPECT_EQ(max_abs_diff(preprocess_volume(volume, preset)[0].data, step_by_step), 0.0) << geometry;
  }
}

TEST(Pipeline, PublishedPresetsGiveModelShapes) {
  at::manual_seed(2);
  const io::Volume mri =
      test::fortran_volume(at::rand({64, 60, 20}) * 500, {0.9, 0.9, 5.0}, io::identity_affine());
  const auto brain = preprocess_volume(mri, preset_by_name("mri-brain"));
  ASSERT_EQ(brain.size(), 1u);
  EXPECT_EQ(brain[0].data.sizes(), at::IntArrayRef({48, 224, 224}));
  EXPECT_EQ(brain[0].suffix, "");
  EXPECT_GE(brain[0].data.min().item<float>(), 0.0f);
  EXPECT_LE(brain[0].data.max().item<float>(), 1.0f);

  const io::Volume ct =
      test::fortran_volume(at::rand({40, 40, 12}) * 3000 - 1000, {0.5, 0.5, 5.0}, io::identity_affine());
  const auto head = preprocess_volume(ct, preset_by_name("ct-head"));
  ASSERT_EQ(head.size(), 3u);
  EXPECT_EQ(head[0].suffix, "brain");
  EXPECT_EQ(head[1].suffix, "subdural");
  EXPECT_EQ(head[2].suffix, "bone");
  for (const auto& s : head)
    EXPECT_EQ(s.data.sizes(), at::IntArrayRef({48, 224, 224}));
  const auto chest = preprocess_volume(ct, preset_by_name("ct-chest"));
  ASSERT_EQ(chest.size(), 1u);
  EXPECT_EQ(chest[0].suffix, "");
  EXPECT_EQ(chest[0].data.sizes(), at::IntArrayRef({112, 336, 336}));
}

TEST(Pipeline, StoredIntegerVoxelsAreScaledFirst) {
  at::manual_seed(4);
  const at::Tensor raw = at::randint(0, 2000, {20, 18, 6}).to(at::kShort);
  io::Volume stored = test::fortran_volume(raw, {1, 1, 3}, io::identity_affine(), "i16.nii");
  stored.scale_slope = 2.0;
  stored.scale_inter = -1024;
  const io::Volume scaled =
      test::fortran_volume(raw.to(at::kFloat) * 2 - 1024, {1, 1, 3}, io::identity_affine());
  Preset preset = preset_by_name("ct-head");
  preset.output_size = {4, 16, 16};
  preset.resize_size = 20;
  const auto a = preprocess_volume(stored, preset), b = preprocess_volume(scaled, preset);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(max_abs_diff(a[i].data, b[i].data), 0.0);
}

// Integer voxels with no scaling (the readers' VoxelValues::kCompact) are read directly, never as a float32
// copy; every path gives exactly the float volume's result.
TEST(Pipeline, IntegerVoxelsGiveTheFloatResult) {
  at::manual_seed(9);
  io::Affine affine = io::identity_affine();
  affine[0][0] = -0.9;  // LPS-like: canonical orientation flips two axes
  affine[1][1] = -0.9;
  affine[2][2] = 4.0;
  const at::Tensor values = at::randint(-200, 3000, {30, 26, 9});
  for (const at::ScalarType type : {at::kShort, at::kInt, at::kByte}) {
    const at::Tensor raw = type == at::kByte ? values.clamp(0, 255).to(type) : values.to(type);
    const io::Volume integer = test::fortran_volume(raw, {0.9, 0.9, 4.0}, affine, "int.nii");
    const io::Volume floating = test::fortran_volume(raw.to(at::kFloat), {0.9, 0.9, 4.0}, affine, "f.nii");
    for (const char* name : {"mri-brain", "ct-head", "ct-chest"}) {
      Preset preset = preset_by_name(name);
      preset.output_size = {6, 20, 20};
      preset.resize_size = 24;
      const auto a = preprocess_volume(integer, preset), b = preprocess_volume(floating, preset);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].data.scalar_type(), at::kFloat);
        EXPECT_EQ(max_abs_diff(a[i].data, b[i].data), 0.0) << name << " " << type;
      }
    }
  }
}

TEST(Pipeline, ConstantScanGivesZeros) {
  const io::Volume flat =
      test::fortran_volume(at::full({10, 10, 4}, 300.0f), {1, 1, 3}, io::identity_affine());
  Preset preset = preset_by_name("mri-brain");
  preset.output_size = {4, 8, 8};
  preset.resize_size = 10;
  EXPECT_EQ(preprocess_volume(flat, preset)[0].data.abs().max().item<float>(), 0.0f);
}

TEST(Pipeline, BadScansAreErrorsNamingTheFile) {
  at::Tensor values = at::rand({6, 5, 4});
  values[2][3][1] = NAN;
  const io::Volume nan_scan = test::fortran_volume(values, {1, 1, 1}, io::identity_affine(), "nan.nii.gz");
  std::string m = error_message([&] { preprocess_volume(nan_scan, preset_by_name("mri-brain")); });
  EXPECT_NE(m.find("nan.nii.gz: scan: voxel (2, 3, 1) is NaN"), std::string::npos) << m;
  values[2][3][1] = -INFINITY;
  const io::Volume inf_scan = test::fortran_volume(values, {1, 1, 1}, io::identity_affine(), "inf.nii.gz");
  m = error_message([&] { preprocess_volume(inf_scan, preset_by_name("ct-head")); });
  EXPECT_NE(m.find("inf.nii.gz: scan: voxel (2, 3, 1) is -inf"), std::string::npos) << m;

  io::Volume flat =
      test::fortran_volume(at::rand({6, 5, 4}), {1, 1, 1}, io::identity_affine(), "flat.nii.gz");
  flat.affine[2][2] = 0;
  m = error_message([&] { preprocess_volume(flat, preset_by_name("mri-brain")); });
  EXPECT_NE(m.find("flat.nii.gz: cannot orient"), std::string::npos) << m;

  io::Volume zero_spacing =
      test::fortran_volume(at::rand({6, 5, 4}), {1, 0, 1}, io::identity_affine(), "z.nii");
  m = error_message([&] { preprocess_volume(zero_spacing, preset_by_name("ct-chest")); });
  EXPECT_NE(m.find("z.nii: resample"), std::string::npos) << m;

  Preset bad = preset_by_name("mri-brain");
  bad.geometry = "zoom";
  EXPECT_THROW(preprocess_volume(flat, bad), Error);
}

}  // namespace
}  // namespace hlip::preprocess
