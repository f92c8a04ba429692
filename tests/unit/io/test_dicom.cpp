// DICOM series reading: series written here with DCMTK from known volumes (oblique, shuffled, signed,
// rescaled, compressed), read back with hlip; geometry checked against nibabel's DICOM wrapper (expectations
// from tests/ref/make_dicom_ref.py, as pydicom is not installed) and against a hand-derived affine; skipping
// and bad input.

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/io/dicom.h"
#include "hlip/io/volume.h"
#include "temp_dir.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;
using hlip::test::error_message;
using hlip::test::read_bytes;
using hlip::test::TempDir;
using hlip::test::write_bytes;
using nlohmann::json;

const std::string kDir = std::string(HLIP_TEST_DATA_DIR) + "/dicom";

const json& expected() {
  static const json doc = [] {
    std::ifstream in(kDir + "/expected.json");
    if (!in) throw std::runtime_error("cannot open " + kDir + "/expected.json");
    return json::parse(in);
  }();
  return doc;
}

// One slice as the test writes it. `values` are the stored pixel values, row by row.
struct Slice {
  std::string series_uid = "1.2.826.0.1.3680043.9.7777.1";
  int series_number = 1;
  std::string sop_uid;  // generated when empty
  int instance_number = 1;
  std::string sop_class = UID_CTImageStorage;
  std::string modality = "CT";
  std::string description = "test series";
  std::string image_type = "ORIGINAL\\PRIMARY\\AXIAL";
  std::string iop = "1\\0\\0\\0\\1\\0";
  std::string ipp = "0\\0\\0";
  std::string pixel_spacing = "0.5\\0.8";
  std::string slice_thickness = "2";
  std::string slope, intercept;  // absent when empty
  int rows = 3, columns = 4;
  int bits_allocated = 16, bits_stored = 16, high_bit = 15;
  bool is_signed = true;
  std::string photometric = "MONOCHROME2";
  int frames = 1;
  std::vector<int32_t> values;
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
};

void register_encoders() {
  static const bool registered = [] {
    DcmRLEEncoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    return true;
  }();
  (void)registered;
}

void check(const OFCondition& condition, const std::string& what) {
  if (condition.bad()) throw std::runtime_error(what + ": " + condition.text());
}

void write_slice(const std::string& path, const Slice& s) {
  register_encoders();
  static int counter = 0;
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  const std::string sop_uid =
      s.sop_uid.empty() ? "1.2.826.0.1.3680043.9.7777.2." + std::to_string(++counter) : s.sop_uid;
  check(ds->putAndInsertString(DCM_SOPClassUID, s.sop_class.c_str()), "SOPClassUID");
  check(ds->putAndInsertString(DCM_SOPInstanceUID, sop_uid.c_str()), "SOPInstanceUID");
  check(ds->putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.9.7777.0"), "StudyInstanceUID");
  check(ds->putAndInsertString(DCM_SeriesInstanceUID, s.series_uid.c_str()), "SeriesInstanceUID");
  check(ds->putAndInsertString(DCM_SeriesNumber, std::to_string(s.series_number).c_str()), "SeriesNumber");
  check(ds->putAndInsertString(DCM_InstanceNumber, std::to_string(s.instance_number).c_str()),
        "InstanceNumber");
  check(ds->putAndInsertString(DCM_Modality, s.modality.c_str()), "Modality");
  check(ds->putAndInsertString(DCM_SeriesDescription, s.description.c_str()), "SeriesDescription");
  check(ds->putAndInsertString(DCM_ImageType, s.image_type.c_str()), "ImageType");
  check(ds->putAndInsertString(DCM_ImageOrientationPatient, s.iop.c_str()), "ImageOrientationPatient");
  check(ds->putAndInsertString(DCM_ImagePositionPatient, s.ipp.c_str()), "ImagePositionPatient");
  check(ds->putAndInsertString(DCM_PixelSpacing, s.pixel_spacing.c_str()), "PixelSpacing");
  check(ds->putAndInsertString(DCM_SliceThickness, s.slice_thickness.c_str()), "SliceThickness");
  if (!s.slope.empty()) check(ds->putAndInsertString(DCM_RescaleSlope, s.slope.c_str()), "RescaleSlope");
  if (!s.intercept.empty())
    check(ds->putAndInsertString(DCM_RescaleIntercept, s.intercept.c_str()), "RescaleIntercept");
  if (s.frames != 1)
    check(ds->putAndInsertString(DCM_NumberOfFrames, std::to_string(s.frames).c_str()), "NumberOfFrames");
  check(ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(s.rows)), "Rows");
  check(ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(s.columns)), "Columns");
  check(ds->putAndInsertUint16(DCM_SamplesPerPixel, 1), "SamplesPerPixel");
  check(ds->putAndInsertString(DCM_PhotometricInterpretation, s.photometric.c_str()), "Photometric");
  check(ds->putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(s.bits_allocated)), "BitsAllocated");
  check(ds->putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(s.bits_stored)), "BitsStored");
  check(ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(s.high_bit)), "HighBit");
  check(ds->putAndInsertUint16(DCM_PixelRepresentation, s.is_signed ? 1 : 0), "PixelRepresentation");

  const size_t count = static_cast<size_t>(s.rows) * s.columns * s.frames;
  if (s.values.size() != count) throw std::runtime_error("slice values: wrong count");
  const uint32_t mask = (1u << s.bits_stored) - 1u;
  const int shift = s.high_bit + 1 - s.bits_stored;
  if (s.bits_allocated == 8) {
    std::vector<Uint8> raw(count);
    for (size_t p = 0; p < count; ++p)
      raw[p] = static_cast<Uint8>((static_cast<uint32_t>(s.values[p]) & mask) << shift);
    check(ds->putAndInsertUint8Array(DCM_PixelData, raw.data(), static_cast<unsigned long>(count)),
          "PixelData");
  } else {
    std::vector<Uint16> raw(count);
    for (size_t p = 0; p < count; ++p)
      raw[p] = static_cast<Uint16>((static_cast<uint32_t>(s.values[p]) & mask) << shift);
    check(ds->putAndInsertUint16Array(DCM_PixelData, raw.data(), static_cast<unsigned long>(count)),
          "PixelData");
  }

  std::unique_ptr<DcmRepresentationParameter> parameters;
  if (s.xfer == EXS_JPEGLSLossless) parameters = std::make_unique<DJLSRepresentationParameter>(0, OFTrue);
  if (s.xfer == EXS_JPEGProcess14SV1) parameters = std::make_unique<DJ_RPLossless>(1, 0);
  if (DcmXfer(s.xfer).isEncapsulated()) {
    check(ds->chooseRepresentation(s.xfer, parameters.get()), "chooseRepresentation");
    if (!ds->canWriteXfer(s.xfer)) throw std::runtime_error("DCMTK cannot encode " + path);
  }
  check(file.saveFile(path.c_str(), s.xfer), "saveFile " + path);
}

// Stored values that exercise sign, range and position: v(c, r, k) for column c, row r, slice k.
int32_t pattern(int c, int r, int k, int low, int high) {
  const int span = high - low + 1;
  return low + static_cast<int>((static_cast<int64_t>(c) * 7919 + r * 104729 + k * 1299709 + 17) % span);
}

std::vector<int32_t> pattern_slice(int rows, int columns, int k, int low, int high) {
  std::vector<int32_t> values;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < columns; ++c)
      values.push_back(pattern(c, r, k, low, high));
  }
  return values;
}

// A simple axial stack: `depth` slices 2 mm apart starting at z = 10, file names in reverse order.
std::vector<std::string> write_axial_stack(const TempDir& dir, Slice base, int depth, int low, int high,
                                           const std::string& prefix = "s") {
  std::vector<std::string> paths;
  for (int k = 0; k < depth; ++k) {
    Slice s = base;
    s.ipp = "-100\\-120\\" + std::to_string(10 + 2 * k);
    s.instance_number = k + 1;
    s.values = pattern_slice(s.rows, s.columns, k, low, high);
    const std::string path = dir.file(prefix + std::to_string(depth - k) + ".dcm");
    write_slice(path, s);
    paths.push_back(path);
  }
  return paths;
}

std::array<double, 3> lps_to_ras(std::array<double, 3> p) {
  return {-p[0], -p[1], p[2]};
}

TEST(Dicom, ObliqueShuffledSignedSeriesMatchesNibabelGeometry) {
  const json& stack = expected().at("oblique");
  const int rows = stack.at("rows"), columns = stack.at("columns");
  const int depth = static_cast<int>(stack.at("slices").size());
  TempDir dir;
  for (const auto& entry : stack.at("slices")) {
    Slice s;
    s.rows = rows;
    s.columns = columns;
    s.iop = stack.at("iop");
    s.pixel_spacing = stack.at("pixel_spacing");
    s.slice_thickness = stack.at("slice_thickness");
    s.ipp = entry.at("ipp");
    s.instance_number = entry.at("instance_number");
    s.slope = "0.5";
    s.intercept = "-1024";
    s.values = pattern_slice(rows, columns, entry.at("stack_index"), -2000, 3000);
    write_slice(dir.file(entry.at("file")), s);
  }

  DicomSeriesInfo info;
  const Volume vol = read_dicom_series(dir.path().string(), {}, &info);
  ASSERT_EQ(vol.data.sizes(), (at::IntArrayRef{columns, rows, depth}));
  EXPECT_EQ(vol.data.scalar_type(), at::kFloat);
  EXPECT_EQ(vol.stored_dtype, at::kShort);
  EXPECT_EQ(vol.description, "test series");
  EXPECT_NEAR(vol.spacing_mm[0], 0.9, 1e-12);  // PixelSpacing[1]: between columns
  EXPECT_NEAR(vol.spacing_mm[1], 0.7, 1e-12);  // PixelSpacing[0]: between rows
  EXPECT_NEAR(vol.spacing_mm[2], stack.at("slice_gap_mm").get<double>(), 1e-5);
  EXPECT_FALSE(info.uneven_gaps);
  EXPECT_TRUE(info.warnings.empty());

  // Slice k is the file whose stack index is k: hlip sorts along row × column cosines, the opposite of
  // nibabel's slice_indicator (which projects on column × row), never by InstanceNumber.
  std::vector<const json*> by_file(depth);
  for (const auto& entry : stack.at("slices")) {
    const auto it = std::find(info.files.begin(), info.files.end(), dir.file(entry.at("file")));
    ASSERT_NE(it, info.files.end());
    const int k = static_cast<int>(it - info.files.begin());
    EXPECT_EQ(k, entry.at("stack_index").get<int>()) << entry.at("file");
    by_file[k] = &entry;
  }
  for (int k = 1; k < depth; ++k) {
    EXPECT_LT(by_file[k]->at("nibabel_slice_indicator").get<double>(),
              by_file[k - 1]->at("nibabel_slice_indicator").get<double>());
  }

  for (int k = 0; k < depth; ++k) {
    const auto& nib = by_file[k]->at("nibabel_affine_lps");
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < columns; ++c) {
        // nibabel indexes a slice [row, column]; hlip's voxel is (column, row, slice).
        std::array<double, 3> lps{};
        for (int a = 0; a < 3; ++a)
          lps[a] = nib[a][0].get<double>() * r + nib[a][1].get<double>() * c + nib[a][3].get<double>();
        const auto want = lps_to_ras(lps);
        const auto got = voxel_to_world(vol.affine, c, r, k);
        for (int a = 0; a < 3; ++a)
          ASSERT_NEAR(got[a], want[a], 2e-5) << "voxel " << c << "," << r << "," << k << " axis " << a;
        const double value = pattern(c, r, k, -2000, 3000) * 0.5 - 1024;
        ASSERT_EQ(vol.data[c][r][k].item<float>(), static_cast<float>(value)) << c << "," << r << "," << k;
      }
    }
  }
  EXPECT_DOUBLE_EQ(vol.affine[3][3], 1.0);
}

TEST(Dicom, AxialAffineIsTheHandDerivedOne) {
  // IOP 1\0\0\0\1\0 (rows run along +x_LPS = left, columns along +y_LPS = posterior), PixelSpacing 0.5\0.8
  // (0.5 mm between rows, 0.8 mm between columns), slices at z = 10, 12, 14 (LPS z = superior):
  //   LPS: column i moves 0.8 mm along x, row j 0.5 mm along y, slice k 2 mm along z, origin (-100, -120,
  //   10); RAS negates x and y: diag(-0.8, -0.5, 2) and origin (100, 120, 10).
  TempDir dir;
  Slice base;
  write_axial_stack(dir, base, 3, -5, 5);
  const Volume vol = read_volume(dir.path().string());
  const Affine want = {{{-0.8, 0, 0, 100}, {0, -0.5, 0, 120}, {0, 0, 2, 10}, {0, 0, 0, 1}}};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(vol.affine[r][c], want[r][c], 1e-12) << r << "," << c;
  }
  EXPECT_EQ(vol.dims, (std::array<int64_t, 3>{4, 3, 3}));
  EXPECT_EQ(vol.spacing_mm, (std::array<double, 3>{0.8, 0.5, 2.0}));
  EXPECT_EQ(vol.data.strides(), (at::IntArrayRef{1, 4, 12}));
}

TEST(Dicom, UnsignedAndMonochrome1StoredValues) {
  TempDir dir;
  {
    // 12 bits stored in the low bits of 16, unsigned: the stored values come back widened to int32.
    TempDir sub("hlip_dicom12");
    Slice base;
    base.is_signed = false;
    base.bits_stored = 12;
    base.high_bit = 11;
    base.slope = "2";
    base.intercept = "-10";
    write_axial_stack(sub, base, 2, 0, 4095);
    DicomReadOptions options;
    options.values = VoxelValues::kStored;
    const Volume vol = read_dicom_series(sub.path().string(), options);
    EXPECT_EQ(vol.data.scalar_type(), at::kInt);
    EXPECT_EQ(vol.scale_slope, 2.0);
    EXPECT_EQ(vol.scale_inter, -10.0);
    for (int k = 0; k < 2; ++k) {
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 4; ++c)
          ASSERT_EQ(vol.data[c][r][k].item<int32_t>(), pattern(c, r, k, 0, 4095));
      }
    }
  }
  {
    // 8-bit unsigned MONOCHROME1: 255 - v, so that bright means high as in MONOCHROME2.
    Slice base;
    base.is_signed = false;
    base.bits_allocated = base.bits_stored = 8;
    base.high_bit = 7;
    base.photometric = "MONOCHROME1";
    write_axial_stack(dir, base, 2, 0, 255);
    DicomReadOptions options;
    options.values = VoxelValues::kStored;
    const Volume stored = read_dicom_series(dir.path().string(), options);
    EXPECT_EQ(stored.data.scalar_type(), at::kByte);
    const Volume scaled = read_dicom_series(dir.path().string());
    for (int k = 0; k < 2; ++k) {
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 4; ++c) {
          ASSERT_EQ(stored.data[c][r][k].item<uint8_t>(), 255 - pattern(c, r, k, 0, 255));
          ASSERT_EQ(scaled.data[c][r][k].item<float>(), 255.0f - pattern(c, r, k, 0, 255));
        }
      }
    }
  }
}

TEST(Dicom, SignedEightBitAndHighBitInTheMiddle) {
  TempDir dir;
  Slice base;
  base.bits_allocated = 16;
  base.bits_stored = 10;
  base.high_bit = 12;  // bits 3..12 hold the value: shifted and sign-extended on read
  write_axial_stack(dir, base, 2, -512, 511);
  const Volume vol = read_dicom_series(dir.path().string());
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c)
      ASSERT_EQ(vol.data[c][r][1].item<float>(), pattern(c, r, 1, -512, 511));
  }
  TempDir eight;
  Slice s8;
  s8.bits_allocated = s8.bits_stored = 8;
  s8.high_bit = 7;
  write_axial_stack(eight, s8, 2, -128, 127);
  DicomReadOptions options;
  options.values = VoxelValues::kStored;
  const Volume vol8 = read_dicom_series(eight.path().string(), options);
  EXPECT_EQ(vol8.data.scalar_type(), at::kChar);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c)
      ASSERT_EQ(vol8.data[c][r][0].item<int8_t>(), pattern(c, r, 0, -128, 127));
  }
}

// kCompact keeps an unscaled series' stored integers and scales any other, with the values of kScaledFloat32.
TEST(Dicom, CompactValuesKeepUnscaledIntegers) {
  DicomReadOptions compact;
  compact.values = VoxelValues::kCompact;
  TempDir plain;
  write_axial_stack(plain, Slice{}, 2, -1000, 3000);
  const Volume kept = read_dicom_series(plain.path().string(), compact);
  EXPECT_EQ(kept.data.scalar_type(), at::kShort);
  EXPECT_TRUE(at::equal(kept.data.to(at::kFloat), read_dicom_series(plain.path().string()).data));
  TempDir rescaled;
  Slice ct;
  ct.slope = "1";
  ct.intercept = "-1024";
  write_axial_stack(rescaled, ct, 2, 0, 4000);
  const Volume scaled = read_dicom_series(rescaled.path().string(), compact);
  EXPECT_EQ(scaled.data.scalar_type(), at::kFloat);
  EXPECT_EQ(scaled.scale_inter, 0.0);
  EXPECT_TRUE(at::equal(scaled.data, read_dicom_series(rescaled.path().string()).data));
}

// Every transfer syntax gives back exactly the values of the uncompressed series.
TEST(Dicom, TransferSyntaxesReadBackExactly) {
  struct Case {
    E_TransferSyntax xfer;
    bool is_signed;
    int low, high;
  };
  const Case cases[] = {
      {EXS_LittleEndianImplicit, true, -3000, 3000}, {EXS_BigEndianExplicit, true, -3000, 3000},
      {EXS_RLELossless, true, -3000, 3000},          {EXS_RLELossless, false, 0, 65535},
      {EXS_JPEGLSLossless, false, 0, 4095},          {EXS_JPEGProcess14SV1, false, 0, 4095},
  };
  for (const auto& test_case : cases) {
    SCOPED_TRACE(DcmXfer(test_case.xfer).getXferName());
    TempDir dir;
    Slice base;
    base.rows = 17;
    base.columns = 23;
    base.is_signed = test_case.is_signed;
    base.xfer = test_case.xfer;
    if (!test_case.is_signed && test_case.high < 4096) {
      base.bits_stored = 12;
      base.high_bit = 11;
    }
    write_axial_stack(dir, base, 3, test_case.low, test_case.high);
    DicomSeriesInfo info;
    const Volume vol = read_dicom_series(dir.path().string(), {}, &info);
    EXPECT_EQ(info.transfer_syntax, DcmXfer(test_case.xfer).getXferName());
    ASSERT_EQ(vol.data.sizes(), (at::IntArrayRef{23, 17, 3}));
    for (int k = 0; k < 3; ++k) {
      for (int r = 0; r < 17; ++r) {
        for (int c = 0; c < 23; ++c)
          ASSERT_EQ(vol.data[c][r][k].item<float>(), pattern(c, r, k, test_case.low, test_case.high))
              << c << "," << r << "," << k;
      }
    }
  }
}

TEST(Dicom, LocalizersOtherStacksAndNonImagesAreSkippedWithReasons) {
  TempDir dir;
  Slice base;
  write_axial_stack(dir, base, 4, 0, 100);
  Slice localizer = base;
  localizer.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
  localizer.iop = "0\\1\\0\\0\\0\\-1";
  localizer.values = pattern_slice(3, 4, 0, 0, 100);
  write_slice(dir.file("localizer.dcm"), localizer);
  Slice sagittal = localizer;
  sagittal.image_type = "ORIGINAL\\PRIMARY\\OTHER";
  sagittal.ipp = "5\\0\\0";
  write_slice(dir.file("sagittal.dcm"), sagittal);
  {
    // A structured report: DICOM, same study, no pixel data.
    DcmFileFormat sr;
    sr.getDataset()->putAndInsertString(DCM_SOPClassUID, UID_BasicTextSRStorage);
    sr.getDataset()->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.9.7777.3.1");
    sr.getDataset()->putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.9.7777.3");
    sr.getDataset()->putAndInsertString(DCM_Modality, "SR");
    check(sr.saveFile(dir.file("report.dcm").c_str(), EXS_LittleEndianExplicit), "save SR");
  }
  std::ofstream(dir.file("README.txt")) << "not a DICOM file\n";

  const DicomScan scan = scan_dicom({dir.path().string()});
  EXPECT_EQ(scan.files_seen, 8);
  ASSERT_EQ(scan.series.size(), 1u);
  const auto& series = scan.series[0];
  EXPECT_EQ(series.num_slices(), 4);
  EXPECT_EQ(series.modality, "CT");
  ASSERT_EQ(series.skipped.size(), 2u);
  for (const auto& skipped : series.skipped) {
    if (skipped.path == dir.file("localizer.dcm")) {
      EXPECT_NE(skipped.reason.find("localizer"), std::string::npos) << skipped.reason;
    } else {
      EXPECT_EQ(skipped.path, dir.file("sagittal.dcm"));
      EXPECT_NE(skipped.reason.find("ImageOrientationPatient 0\\1\\0\\0\\0\\-1 differs"), std::string::npos)
          << skipped.reason;
    }
  }
  ASSERT_EQ(scan.skipped.size(), 2u);
  EXPECT_EQ(scan.skipped[0].path, dir.file("README.txt"));
  EXPECT_EQ(scan.skipped[0].reason.find("not a DICOM file (DCMTK: "), 0u) << scan.skipped[0].reason;
  EXPECT_EQ(scan.skipped[1].path, dir.file("report.dcm"));
  EXPECT_NE(scan.skipped[1].reason.find("no PixelData"), std::string::npos) << scan.skipped[1].reason;
  EXPECT_NE(scan.skipped[1].reason.find("SR"), std::string::npos) << scan.skipped[1].reason;

  const Volume vol = read_volume(dir.path().string());
  EXPECT_EQ(vol.dims, (std::array<int64_t, 3>{4, 3, 4}));
}

TEST(Dicom, TwoSeriesInOneFolder) {
  TempDir dir;
  Slice a;
  a.series_uid = "1.2.826.0.1.3680043.9.7777.10";
  a.series_number = 2;
  a.description = "small";
  write_axial_stack(dir, a, 3, 0, 10, "a");
  Slice b = a;
  b.series_uid = "1.2.826.0.1.3680043.9.7777.11";
  b.series_number = 1;
  b.modality = "MR";
  b.sop_class = UID_MRImageStorage;
  b.description = "large";
  write_axial_stack(dir, b, 5, 20, 30, "b");

  const DicomScan scan = scan_dicom({dir.path().string()});
  ASSERT_EQ(scan.series.size(), 2u);
  EXPECT_EQ(scan.series[0].series_uid, b.series_uid);  // SeriesNumber order
  EXPECT_EQ(scan.series[0].modality, "MR");
  EXPECT_EQ(scan.series[0].num_slices(), 5);
  EXPECT_EQ(scan.series[1].description, "small");
  EXPECT_EQ(scan.series[1].num_slices(), 3);

  EXPECT_EQ(read_dicom_series(dir.path().string()).description, "large");
  DicomReadOptions options;
  options.series_uid = a.series_uid;
  const Volume small = read_dicom_series(dir.path().string(), options);
  EXPECT_EQ(small.dims[2], 3);
  EXPECT_EQ(small.data[0][0][0].item<float>(), pattern(0, 0, 0, 0, 10));

  options.series_uid = "1.2.3";
  const std::string message = error_message([&] { read_dicom_series(dir.path().string(), options); });
  EXPECT_NE(message.find("SeriesInstanceUID 1.2.3 not found"), std::string::npos) << message;
  EXPECT_NE(message.find(b.series_uid + " (5 slices)"), std::string::npos) << message;

  // A file list picks the files, whatever else the folder holds.
  const Volume listed = read_dicom_series(std::vector<std::string>{dir.file("a1.dcm"), dir.file("a2.dcm")});
  EXPECT_EQ(listed.dims[2], 2);
}

TEST(Dicom, UnevenGapsAreReportedAndTheMedianIsUsed) {
  TempDir dir;
  const int z[] = {0, 2, 4, 7, 9};
  for (int k = 0; k < 5; ++k) {
    Slice s;
    s.ipp = "0\\0\\" + std::to_string(z[k]);
    s.values = pattern_slice(3, 4, k, 0, 9);
    write_slice(dir.file("u" + std::to_string(k)), s);
  }
  DicomSeriesInfo info;
  const Volume vol = read_dicom_series(dir.path().string(), {}, &info);
  EXPECT_TRUE(info.uneven_gaps);
  EXPECT_DOUBLE_EQ(info.slice_spacing_mm, 2.0);  // gaps 2, 2, 3, 2
  EXPECT_DOUBLE_EQ(info.min_gap_mm, 2.0);
  EXPECT_DOUBLE_EQ(info.max_gap_mm, 3.0);
  ASSERT_EQ(info.warnings.size(), 1u);
  EXPECT_NE(info.warnings[0].find("uneven slice gaps from 2 to 3 mm (median 2 mm)"), std::string::npos)
      << info.warnings[0];
  EXPECT_EQ(info.positions_mm, (std::vector<double>{0, 2, 4, 7, 9}));
  EXPECT_DOUBLE_EQ(vol.spacing_mm[2], 2.0);
  EXPECT_DOUBLE_EQ(vol.affine[2][2], 2.0);

  TempDir even;
  write_axial_stack(even, Slice{}, 3, 0, 9);
  DicomSeriesInfo even_info;
  read_dicom_series(even.path().string(), {}, &even_info);
  EXPECT_FALSE(even_info.uneven_gaps);
  EXPECT_DOUBLE_EQ(even_info.slice_spacing_mm, 2.0);
}

TEST(Dicom, SingleFileIsOneSliceWithNibabelsSliceSpacing) {
  TempDir dir;
  Slice s;
  s.slice_thickness = "3.5";
  s.values = pattern_slice(3, 4, 0, 0, 9);
  write_slice(dir.file("one"), s);  // no .dcm suffix: recognised by the DICM magic
  EXPECT_TRUE(looks_like_dicom(dir.file("one")));
  const Volume vol = read_volume(dir.file("one"));
  EXPECT_EQ(vol.dims, (std::array<int64_t, 3>{4, 3, 1}));
  EXPECT_DOUBLE_EQ(vol.spacing_mm[2], 3.5);
  EXPECT_EQ(error_message([&] { read_volume(dir.file("one"), 1); }),
            dir.file("one") + ": volume 1 requested, but a DICOM series is a single 3D volume");
}

TEST(Dicom, FolderWithoutPixelData) {
  TempDir dir;
  std::ofstream(dir.file("notes.txt")) << "hello\n";
  DcmFileFormat sr;
  sr.getDataset()->putAndInsertString(DCM_SOPClassUID, UID_BasicTextSRStorage);
  sr.getDataset()->putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.9.7777.4");
  sr.getDataset()->putAndInsertString(DCM_Modality, "SR");
  check(sr.saveFile(dir.file("sr.dcm").c_str(), EXS_LittleEndianExplicit), "save SR");
  const std::string message = error_message([&] { read_volume(dir.path().string()); });
  EXPECT_EQ(
      message.find(dir.path().string() + ": no DICOM image with pixel data (2 files skipped: notes.txt: "),
      0u)
      << message;
  EXPECT_NE(message.find("sr.dcm: no PixelData: not an image (Modality 'SR'"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);

  TempDir empty;
  EXPECT_EQ(
      error_message([&] { read_volume(empty.path().string()); }),
      empty.path().string() + ": no DICOM image with pixel data: no files (subfolders are not searched)");
}

TEST(Dicom, TruncatedAndMissingFiles) {
  TempDir dir;
  const auto paths = write_axial_stack(dir, Slice{}, 3, 0, 9);
  auto bytes = read_bytes(paths[1]);
  bytes.resize(bytes.size() - 7);  // cut into the pixel data
  write_bytes(paths[1], bytes);

  // Alone, and inside its series: both name the file; a series never silently loses a slice.
  std::string message = error_message([&] { read_volume(paths[1]); });
  EXPECT_EQ(message.find(paths[1] + ": "), 0u) << message;
  EXPECT_NE(message.find("s2.dcm: truncated or corrupt DICOM file (DCMTK: "), std::string::npos) << message;
  message = error_message([&] { read_volume(dir.path().string()); });
  EXPECT_EQ(message.find(paths[1] + ": truncated or corrupt DICOM file (DCMTK: "), 0u) << message;

  EXPECT_EQ(error_message([&] { read_volume(dir.file("missing.dcm")); }),
            dir.file("missing.dcm") + ": no such file or folder");
  EXPECT_EQ(error_message([&] { scan_dicom({dir.file("nope")}); }),
            dir.file("nope") + ": no such file or folder");
}

TEST(Dicom, MultiFrameAndRepeatedPositionsAreClearErrors) {
  TempDir dir;
  Slice s;
  s.frames = 2;
  s.values = pattern_slice(6, 4, 0, 0, 9);
  write_slice(dir.file("multi.dcm"), s);
  const std::string message = error_message([&] { read_volume(dir.path().string()); });
  EXPECT_NE(message.find("multi.dcm: NumberOfFrames 2: multi-frame (enhanced) images are not supported"),
            std::string::npos)
      << message;

  TempDir echoes;
  for (int e = 0; e < 2; ++e)
    write_axial_stack(echoes, Slice{}, 2, 0, 9, "e" + std::to_string(e) + "_");
  const std::string repeated = error_message([&] { read_volume(echoes.path().string()); });
  EXPECT_NE(repeated.find("share the slice position 10.0000 mm"), std::string::npos) << repeated;
}

}  // namespace
}  // namespace hlip::io
