// DICOM series writing: an oblique integer volume written with write_dicom_series reads back through
// read_dicom_series with the same values, stored encoding and affine; what cannot be stored is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "hlip/core/error.h"
#include "hlip/io/dicom.h"
#include "hlip/io/dicom_write.h"
#include "hlip/io/volume.h"
#include "temp_dir.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;
using hlip::test::error_message;
using hlip::test::TempDir;

// A 5×4×3 volume of HU-like values on a rotated, anisotropic grid (right-handed: slices along row × column).
Volume oblique_volume() {
  Volume volume = volume_from_tensor(
      (at::arange(60, at::kShort).view({3, 4, 5}).permute({2, 1, 0}) * 37 - 1000).to(at::kShort));
  const double c = std::cos(0.2), s = std::sin(0.2);
  // Columns: i towards −x (0.7 mm), j towards −y tilted by 0.2 rad about x (0.8 mm), k = i × j direction (3
  // mm).
  volume.affine = {
      {{-0.7, 0, 0, 12.5}, {0, -0.8 * c, -3 * s, -30.25}, {0, -0.8 * s, 3 * c, 7}, {0, 0, 0, 1}}};
  volume.spacing_mm = {0.7, 0.8, 3};
  return volume;
}

TEST(DicomWrite, SeriesReadsBackWithItsValuesAndAffine) {
  TempDir dir("hlip_dicom_write");
  const Volume volume = oblique_volume();
  DicomWriteOptions options;
  options.study_uid = "2.25.11";
  options.series_uid = "2.25.12";
  options.description = "round trip";
  write_dicom_series(dir.file("series"), volume, options);
  EXPECT_TRUE(fs::exists(dir.file("series/slice-0003.dcm")));

  DicomSeriesInfo info;
  const Volume scaled = read_dicom_series(dir.file("series"), {}, &info);
  EXPECT_EQ(info.series_uid, "2.25.12");
  EXPECT_EQ(info.modality, "CT");
  EXPECT_EQ(info.description, "round trip");
  EXPECT_TRUE(info.warnings.empty());
  EXPECT_TRUE(at::equal(scaled.data, volume.data.to(at::kFloat)));
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(scaled.affine[r][c], volume.affine[r][c], 1e-6) << r << "," << c;

  // Stored as unsigned values with intercept −1024, as CT scanners write them.
  DicomReadOptions stored_options;
  stored_options.values = VoxelValues::kStored;
  const Volume stored = read_dicom_series(dir.file("series"), stored_options);
  EXPECT_EQ(stored.stored_dtype, at::kInt);
  EXPECT_EQ(stored.scale_inter, -1024);
  EXPECT_TRUE(at::equal(stored.data, volume.data.to(at::kInt) + 1024));
}

TEST(DicomWrite, RefusesWhatItCannotStore) {
  TempDir dir("hlip_dicom_write_bad");
  DicomWriteOptions options;
  options.study_uid = "2.25.1";
  options.series_uid = "2.25.2";
  Volume volume = oblique_volume();
  volume.data[0][0][0] = 3500;  // 3500 + 1024 does not fit 12 bits
  EXPECT_NE(error_message([&] { write_dicom_series(dir.file("a"), volume, options); }).find("3500"),
            std::string::npos);
  volume = oblique_volume();
  for (int r = 0; r < 3; ++r)
    volume.affine[r][2] = -volume.affine[r][2];  // slices against row × column
  EXPECT_NE(error_message([&] { write_dicom_series(dir.file("b"), volume, options); }).find("right-handed"),
            std::string::npos);
  EXPECT_THROW(write_dicom_series(dir.file("c"), volume_from_tensor(at::zeros({2, 2, 2})), options), Error);
  options.series_uid.clear();
  EXPECT_THROW(write_dicom_series(dir.file("d"), oblique_volume(), options), Error);
}

}  // namespace
}  // namespace hlip::io
