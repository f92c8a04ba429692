// .npy reading against numpy (expectations from tests/ref/make_nifti_ref.py), writing, and bad input.

#include <gtest/gtest.h>

#include <unistd.h>
#include "temp_dir.h"

#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/io/nifti.h"
#include "hlip/io/npy.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;
using hlip::test::read_bytes;
using hlip::test::TempDir;
using hlip::test::write_bytes;
using nlohmann::json;

const std::string kDir = std::string(HLIP_TEST_DATA_DIR) + "/npy";

const json& expected() {
  static const json doc = [] {
    std::ifstream in(kDir + "/expected.json");
    if (!in) throw std::runtime_error("cannot open " + kDir + "/expected.json");
    return json::parse(in);
  }();
  return doc;
}

std::vector<json> cases() {
  std::vector<json> out;
  for (const auto& e : expected()["files"])
    out.push_back(e);
  return out;
}

template <typename F>
void expect_error(F&& f, const std::string& path, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << needle << "\"";
  } catch (const hlip::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

at::ScalarType dtype_for(const std::string& descr) {
  const std::string t = descr.substr(1);
  if (t == "b1") return at::kBool;
  if (t == "u1") return at::kByte;
  if (t == "i1") return at::kChar;
  if (t == "i2") return at::kShort;
  if (t == "u2" || t == "i4") return at::kInt;  // uint16 widens to int32
  if (t == "i8") return at::kLong;
  if (t == "f2") return at::kHalf;
  if (t == "f4") return at::kFloat;
  if (t == "f8") return at::kDouble;
  throw std::runtime_error("unknown descr " + descr);
}

class NpyReference : public ::testing::TestWithParam<json> {};

TEST_P(NpyReference, MatchesNumpy) {
  const json& want = GetParam();
  const std::string path = kDir + "/" + want["file"].get<std::string>();
  if (want.contains("error")) {
    expect_error([&] { read_npy(path); }, path, want["error"].get<std::string>());
    return;
  }
  const at::Tensor t = read_npy(path);
  EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
  EXPECT_EQ(t.scalar_type(), dtype_for(want["descr"].get<std::string>()));
  // Numpy's C-order flattening of the array, whatever its layout in the file.
  const at::Tensor flat = t.contiguous().reshape({-1}).to(at::kDouble);
  const auto& values = want["values"];
  ASSERT_EQ(flat.numel(), static_cast<int64_t>(values.size()));
  const double* p = flat.data_ptr<double>();
  for (int64_t n = 0; n < flat.numel(); ++n) {
    ASSERT_EQ(p[n], values[n].get<double>()) << path << " element " << n;
  }
  const NpyHeader header = read_npy_header(path);
  EXPECT_EQ(header.descr, want["descr"].get<std::string>());
  EXPECT_EQ(header.fortran_order, want["fortran_order"].get<bool>());
}

INSTANTIATE_TEST_SUITE_P(Files, NpyReference, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string name = info.param["file"].template get<std::string>();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
});

TEST(NpyRead, FortranOrderIsAStridedViewWithNumpyIndexing) {
  const at::Tensor t = read_npy(kDir + "/f32_fortran.npy");
  EXPECT_EQ(t.sizes().vec(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(t.strides().vec(), (std::vector<int64_t>{1, 3, 12}));
  EXPECT_TRUE(read_npy_header(kDir + "/f32_fortran.npy").fortran_order);
}

TEST(NpyRead, FormatVersions) {
  EXPECT_EQ(read_npy_header(kDir + "/f32.npy").major_version, 1);
  EXPECT_EQ(read_npy_header(kDir + "/f32_v2.npy").major_version, 2);
  EXPECT_EQ(read_npy_header(kDir + "/u8_v3.npy").major_version, 3);
}

TEST(NpyRead, VolumeFromThreeAndFourDims) {
  const Volume vol = read_npy_volume(kDir + "/i16.npy");
  EXPECT_EQ(vol.data.scalar_type(), at::kFloat);
  EXPECT_EQ(vol.stored_dtype, at::kShort);
  EXPECT_EQ(vol.dims, (std::array<int64_t, 3>{3, 4, 5}));
  EXPECT_EQ(vol.affine, identity_affine());
  EXPECT_TRUE(at::equal(vol.data, read_npy(kDir + "/i16.npy").to(at::kFloat)));

  const at::Tensor four = read_npy(kDir + "/f32_4d.npy");
  const Volume third = read_npy_volume(kDir + "/f32_4d.npy", 2, VoxelValues::kStored);
  EXPECT_TRUE(at::equal(third.data, four.select(3, 2)));

  const std::string path4 = kDir + "/f32_4d.npy";
  expect_error([&] { read_npy_volume(path4, 3); }, path4, "volume 3 is out of range: shape[3] is 3");
  const std::string path2 = kDir + "/bool.npy";
  expect_error([&] { read_npy_volume(path2); }, path2, "shape (3, 2) is not a 3D or 4D scan");
}

TEST(NpyRead, ReadVolumeDispatchesOnTheSuffix) {
  const Volume npy = read_volume(kDir + "/f32_4d.npy", 1);
  EXPECT_TRUE(at::equal(npy.data, read_npy(kDir + "/f32_4d.npy").select(3, 1)));
  const std::string nifti = std::string(HLIP_TEST_DATA_DIR) + "/nifti/four_d.nii.gz";
  NiftiReadOptions options;
  options.volume = 2;
  EXPECT_TRUE(at::equal(read_volume(nifti, 2).data, read_nifti(nifti, options).data));
}

// ---- bad input ----

TEST(NpyErrors, MissingFile) {
  const std::string path = kDir + "/does_not_exist.npy";
  expect_error([&] { read_npy(path); }, path, "cannot open");
}

TEST(NpyErrors, TruncatedData) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/f32.npy");
  bytes.resize(bytes.size() - 3);
  const std::string path = dir.file("short.npy");
  write_bytes(path, bytes);
  expect_error([&] { read_npy(path); }, path,
               "truncated: shape (3, 4, 5) of <f4 needs 240 bytes of data, the file has 237");
}

TEST(NpyErrors, HugeShapeInATinyFileIsRefusedBeforeAllocating) {
  TempDir dir;
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }";
  header.resize(128 - 10 - 1, ' ');
  header += '\n';
  std::vector<char> bytes = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<char>(header.size()), 0};
  bytes.insert(bytes.end(), header.begin(), header.end());
  const std::string path = dir.file("huge.npy");
  write_bytes(path, bytes);
  expect_error(
      [&] { read_npy(path); }, path,
      "truncated: shape (1048576, 1048576) of <f4 needs 4398046511104 bytes of data, the file has 0");
}

TEST(NpyErrors, TruncatedHeader) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/f32.npy");
  bytes.resize(40);
  const std::string path = dir.file("short.npy");
  write_bytes(path, bytes);
  expect_error([&] { read_npy(path); }, path,
               "truncated .npy header: header_len is 118, only 30 bytes follow");
}

// Each case replaces part of a good file's header text (same length, so the data offset holds).
struct HeaderEdit {
  const char* name;
  const char* from;
  const char* to;
  const char* needle;
};

class NpyHeaderErrors : public ::testing::TestWithParam<HeaderEdit> {};

TEST_P(NpyHeaderErrors, OneLineErrorNamingFieldAndValue) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/f32.npy");
  std::string text(bytes.begin(), bytes.end());
  const size_t at = text.find(GetParam().from);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(std::strlen(GetParam().from), std::strlen(GetParam().to));
  std::memcpy(bytes.data() + at, GetParam().to, std::strlen(GetParam().to));
  const std::string path = dir.file("edited.npy");
  write_bytes(path, bytes);
  expect_error([&] { read_npy(path); }, path, GetParam().needle);
  expect_error([&] { decode_npy_header(bytes.data(), bytes.size(), path); }, path, GetParam().needle);
}

const HeaderEdit kHeaderEdits[] = {
    {"bad_magic", "NUMPY", "NUMPX", "magic string"},
    {"bad_version", "NUMPY\x01", "NUMPY\x04", "format version 4.0"},
    {"missing_descr", "'descr'", "'dtype'", "key 'descr' is missing"},
    {"fortran_not_bool", "False", "'No' ", "fortran_order is 'No', expected True or False"},
    {"shape_not_tuple", "(3, 4, 5)", "[3, 4, 5]", "shape is [3, 4, 5], expected a tuple of integers"},
    {"negative_shape", "(3, 4, 5)", "(3, -4, 5", "shape: expected a non-negative integer"},
    {"unsupported_descr", "<f4", "<u4", "descr '<u4' is not supported"},
    {"not_a_dict", "{'descr'", "['descr'", "expected '{'"},
    {"unterminated_shape", "(3, 4, 5), }", "(99999999999", "shape: expected ',' or ')'"},
    {"integer_overflow", "'shape': (3, 4, 5), }                  ", "'shape': (9999999999999999999999999999,",
     "shape: entry 0 overflows 64 bits"},
};

INSTANTIATE_TEST_SUITE_P(Edited, NpyHeaderErrors, ::testing::ValuesIn(kHeaderEdits),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(NpyErrors, ShapeOverflow) {
  const std::string text = "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }";
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(text.size() + 1);
  bytes += '\0';
  bytes += text + "\n";
  expect_error([&] { decode_npy_header(bytes.data(), bytes.size(), "big.npy"); }, "big.npy",
               "shape (4294967296, 4294967296) overflows 64-bit sizes");
}

// ---- writing ----

TEST(NpyWrite, ByteIdenticalToNumpy) {
  TempDir dir;
  for (const char* name : {"u8.npy", "i16.npy", "f32.npy", "f64.npy", "i32.npy", "i64.npy", "bool.npy",
                           "f16.npy", "scalar.npy", "empty.npy"}) {
    const std::string path = dir.file(name);
    write_npy(path, read_npy(kDir + "/" + name));
    EXPECT_EQ(read_bytes(path), read_bytes(kDir + "/" + name)) << name;
  }
}

TEST(NpyWrite, RoundTripNonContiguousAndFortran) {
  TempDir dir;
  const at::Tensor t = at::randn({4, 5, 6}).permute({2, 0, 1});
  write_npy(dir.file("p.npy"), t);
  EXPECT_TRUE(at::equal(read_npy(dir.file("p.npy")), t));
  // A Fortran-ordered array comes back C-ordered with the same values.
  const at::Tensor f = read_npy(kDir + "/f32_fortran.npy");
  write_npy(dir.file("f.npy"), f);
  EXPECT_FALSE(read_npy_header(dir.file("f.npy")).fortran_order);
  EXPECT_TRUE(at::equal(read_npy(dir.file("f.npy")), f));
}

TEST(NpyWrite, LongHeaderUsesVersion2) {
  TempDir dir;
  std::vector<int64_t> shape(30000, 1);
  const at::Tensor t = at::ones(shape, at::kByte);
  write_npy(dir.file("long.npy"), t);
  const NpyHeader header = read_npy_header(dir.file("long.npy"));
  EXPECT_EQ(header.major_version, 2);
  EXPECT_EQ(header.shape.size(), 30000u);
  EXPECT_EQ(header.data_offset % 64, 0u);
}

TEST(NpyWrite, ErrorsAndAtomicity) {
  TempDir dir;
  const std::string missing = dir.file("no/dir/x.npy");
  expect_error([&] { write_npy(missing, at::zeros({2})); }, missing, "cannot create temporary file");
  write_npy(dir.file("x.npy"), at::zeros({2}));
  write_npy(dir.file("x.npy"), at::ones({3}));
  EXPECT_TRUE(at::equal(read_npy(dir.file("x.npy")), at::ones({3})));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "x.npy");
  }
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace hlip::io
