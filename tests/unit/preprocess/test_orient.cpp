// Orientation against nibabel (as_closest_canonical, aff2axcodes) and HLIP's axis order against HLIP's own
// steps (RPI + transpose2dhw); expectations from tests/ref/make_preprocess_ref.py.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "hlip/core/error.h"
#include "hlip/io/volume.h"
#include "hlip/preprocess/orient.h"
#include "reference_data.h"

namespace hlip::preprocess {
namespace {

using nlohmann::json;
using test::affine_from_json;
using test::fnv1a64_hex;
using test::preprocess_reference;

const std::string kNibabelData = "/usr/lib/python3/dist-packages/nibabel/tests/data";

std::string codes_string(const std::array<char, 3>& codes) {
  return std::string(codes.begin(), codes.end());
}

void expect_affine_near(const io::Affine& actual, const json& expected, const std::string& what) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      const double e = expected[r][c].get<double>();
      EXPECT_NEAR(actual[r][c], e, 1e-9 * std::max(1.0, std::abs(e)))
          << what << " affine[" << r << "][" << c << "]";
    }
  }
}

std::vector<double> corners(const at::Tensor& t) {
  const int64_t a = t.size(0) - 1, b = t.size(1) - 1, c = t.size(2) - 1;
  return {t[0][0][0].item<double>(), t[a][0][0].item<double>(), t[0][b][0].item<double>(),
          t[0][0][c].item<double>()};
}

// A synthetic case's volume: voxel (i, j, k) holds i + I·(j + J·k), in the reader's Fortran layout.
io::Volume synthetic_volume(const json& c) {
  const std::vector<int64_t> shape = c["shape"].get<std::vector<int64_t>>();
  const at::Tensor values = at::arange(shape[0] * shape[1] * shape[2], at::kFloat)
                                .reshape({shape[2], shape[1], shape[0]})
                                .permute({2, 1, 0});
  return test::fortran_volume(values, c["spacing"].get<std::array<double, 3>>(),
                              affine_from_json(c["affine"]), c["name"].get<std::string>());
}

TEST(Orient, SyntheticAffinesMatchNibabelAndHlip) {
  const json& cases = preprocess_reference()["orientation"];
  ASSERT_GE(cases.size(), 30u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const io::Volume volume = synthetic_volume(c);
    EXPECT_EQ(codes_string(orientation_codes(volume.affine)), c["codes"].get<std::string>());

    const io::Volume canonical = to_closest_canonical(volume);
    EXPECT_EQ(test::sizes_of(canonical.data), c["canonical_shape"].get<std::vector<int64_t>>());
    EXPECT_TRUE(canonical.data.is_contiguous());
    EXPECT_EQ(canonical.data.scalar_type(), at::kFloat);
    EXPECT_EQ(canonical.dims[0], canonical.data.size(0));
    expect_affine_near(canonical.affine, c["canonical_affine"], "canonical");
    EXPECT_EQ(canonical.spacing_mm, (c["canonical_spacing"].get<std::array<double, 3>>()));
    EXPECT_EQ(corners(canonical.data), c["canonical_corners"].get<std::vector<double>>());
    EXPECT_EQ(fnv1a64_hex(canonical.data), c["canonical_fnv1a64"].get<std::string>());
    EXPECT_EQ(codes_string(orientation_codes(canonical.affine)), c["canonical_codes"].get<std::string>());

    const OrientedScan scan = to_hlip_axes(canonical);
    EXPECT_EQ(test::sizes_of(scan.data), c["hlip_shape"].get<std::vector<int64_t>>());
    EXPECT_TRUE(scan.data.is_contiguous());
    for (int d = 0; d < 3; ++d)
      EXPECT_DOUBLE_EQ(scan.spacing_mm[d], c["hlip_spacing"][d].get<double>()) << "spacing "
                                                                               << "DHW"[d];
    EXPECT_EQ(corners(scan.data), c["hlip_corners"].get<std::vector<double>>());
    EXPECT_EQ(fnv1a64_hex(scan.data), c["hlip_fnv1a64"].get<std::string>());
  }
}

void check_file(const json& e, const std::string& path) {
  SCOPED_TRACE(path);
  const io::Volume volume = io::read_volume(path);
  EXPECT_EQ(codes_string(orientation_codes(volume.affine)), e["codes"].get<std::string>());
  const io::Volume canonical = to_closest_canonical(volume);
  EXPECT_EQ(test::sizes_of(canonical.data), e["canonical_shape"].get<std::vector<int64_t>>());
  expect_affine_near(canonical.affine, e["canonical_affine"], path);
  for (int a = 0; a < 3; ++a)
    EXPECT_NEAR(canonical.spacing_mm[a], e["canonical_spacing"][a].get<double>(), 1e-6) << "spacing " << a;
  EXPECT_EQ(fnv1a64_hex(canonical.data), e["canonical_fnv1a64"].get<std::string>());
  const OrientedScan scan = to_hlip_axes(canonical);
  EXPECT_EQ(test::sizes_of(scan.data), e["hlip_shape"].get<std::vector<int64_t>>());
  for (int d = 0; d < 3; ++d)
    EXPECT_NEAR(scan.spacing_mm[d], e["hlip_spacing"][d].get<double>(), 1e-6) << "spacing "
                                                                              << "DHW"[d];
  EXPECT_EQ(fnv1a64_hex(scan.data), e["hlip_fnv1a64"].get<std::string>());
}

TEST(Orient, NiftiTestFilesMatchNibabel) {
  const json& files = preprocess_reference()["files"];
  ASSERT_GE(files.size(), 20u);
  for (const json& e : files)
    check_file(e, std::string(HLIP_TEST_DATA_DIR) + "/nifti/" + e["file"].get<std::string>());
}

TEST(Orient, DebianNibabelDataMatchesNibabel) {
  if (!std::filesystem::exists(kNibabelData)) GTEST_SKIP() << "python3-nibabel test data not installed";
  const json& files = preprocess_reference()["nibabel_data"];
  ASSERT_GE(files.size(), 5u);
  for (const json& e : files) {
    const std::string path = kNibabelData + "/" + e["file"].get<std::string>();
    if (!std::filesystem::exists(path)) continue;
    check_file(e, path);
  }
}

TEST(Orient, CanonicalAppliesPendingScaling) {
  io::Volume stored =
      io::volume_from_tensor(at::arange(24, at::kShort).reshape({2, 3, 4}), {1, 2, 3}, "s.nii");
  stored.scale_slope = 0.5;
  stored.scale_inter = -1;
  stored.affine[0][0] = -1;  // LAS: i gets flipped
  const io::Volume canonical = to_closest_canonical(stored);
  EXPECT_EQ(canonical.scale_slope, 1.0);
  EXPECT_EQ(canonical.scale_inter, 0.0);
  const at::Tensor expected = (at::arange(24, at::kFloat).reshape({2, 3, 4}) * 0.5 - 1).flip({0});
  EXPECT_TRUE(at::equal(canonical.data, expected));
  EXPECT_EQ(canonical.affine[0][0], 1.0);
  EXPECT_EQ(canonical.affine[0][3], -1.0);  // the old last voxel along i is the new first
}

TEST(Orient, DegenerateAffineIsAnErrorNamingTheFile) {
  io::Volume v = io::volume_from_tensor(at::zeros({2, 2, 2}), {1, 1, 1}, "flat.nii.gz");
  v.affine[1][1] = 0;  // voxel axis j has no direction
  try {
    to_closest_canonical(v);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("flat.nii.gz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("voxel axis j"), std::string::npos) << e.what();
  }
  EXPECT_THROW(orientation_codes(v.affine), Error);
  v.affine[1][1] = NAN;
  EXPECT_THROW(closest_canonical_mapping(v.affine), Error);
}

TEST(Orient, HlipAxisRuleAndTieBreak) {
  const auto depth = [](std::array<double, 3> s) { return hlip_axis_mapping(s)[0].axis; };
  EXPECT_EQ(depth({1, 1, 3}), 2);
  EXPECT_EQ(depth({1, 3, 1}), 1);
  EXPECT_EQ(depth({3, 1, 1}), 0);
  EXPECT_EQ(depth({1, 1, 1}), 2);       // exact tie: k
  EXPECT_EQ(depth({2, 2, 1}), 1);       // i/j tie: j
  EXPECT_EQ(depth({1.0009, 1, 1}), 2);  // within 0.1 %: still a tie
  EXPECT_EQ(depth({1.0011, 1, 1}), 0);  // beyond: i is larger
  EXPECT_EQ(depth({0.9375, 0.9375, 0.93751}), 2);

  const AxisMapping axial = hlip_axis_mapping({0.9, 0.9, 5});
  EXPECT_EQ(axial[1].axis, 1);
  EXPECT_TRUE(axial[0].flip && axial[1].flip && !axial[2].flip);
  const AxisMapping sagittal = hlip_axis_mapping({5, 0.9, 0.9});
  EXPECT_EQ(sagittal[1].axis, 2);
  EXPECT_EQ(sagittal[2].axis, 1);
  EXPECT_TRUE(!sagittal[0].flip && sagittal[1].flip && sagittal[2].flip);
}

TEST(Orient, ComposeChainsMappings) {
  const AxisMapping inner{AxisSource{2, true}, AxisSource{0, false}, AxisSource{1, true}};
  const AxisMapping outer{AxisSource{1, true}, AxisSource{2, false}, AxisSource{0, true}};
  const at::Tensor x = at::arange(2 * 3 * 4, at::kFloat).reshape({2, 3, 4});
  // Apply inner, then outer, by permute + flip; compare with the composed mapping applied at once.
  const auto apply = [](const at::Tensor& t, const AxisMapping& m) {
    at::Tensor out = t.permute({m[0].axis, m[1].axis, m[2].axis});
    for (int d = 0; d < 3; ++d) {
      if (m[d].flip) out = out.flip({d});
    }
    return out;
  };
  EXPECT_TRUE(at::equal(apply(apply(x, inner), outer), apply(x, compose(inner, outer))));
}

}  // namespace
}  // namespace hlip::preprocess
