// NIfTI reading against nibabel (expectations from tests/ref/make_nifti_ref.py), writing, and bad input.

#include <gtest/gtest.h>

#include <unistd.h>
#include "temp_dir.h"

#include <zlib.h>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/io/nifti.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;
using hlip::test::read_bytes;
using hlip::test::TempDir;
using hlip::test::write_bytes;
using nlohmann::json;

const std::string kDir = std::string(HLIP_TEST_DATA_DIR) + "/nifti";
const std::string kNibabelData = "/usr/lib/python3/dist-packages/nibabel/tests/data";

const json& expected() {
  static const json doc = [] {
    std::ifstream in(kDir + "/expected.json");
    if (!in) throw std::runtime_error("cannot open " + kDir + "/expected.json");
    return json::parse(in);
  }();
  return doc;
}

std::vector<std::string> names(const char* section) {
  std::vector<std::string> out;
  for (const auto& entry : expected()[section])
    out.push_back(entry["file"].get<std::string>());
  return out;
}

const json& entry(const char* section, const std::string& file) {
  for (const auto& e : expected()[section]) {
    if (e["file"] == file) return e;
  }
  throw std::runtime_error("no expectation for " + file);
}

std::string gtest_name(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

uint64_t fnv1a64(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  uint64_t h = 0xCBF29CE484222325ULL;
  for (int64_t i = 0; i < c.numel() * c.element_size(); ++i) {
    h ^= p[i];
    h *= 0x100000001B3ULL;
  }
  return h;
}

template <typename T>
void poke(std::vector<char>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

// Expects `f` to throw hlip::Error with a one-line message naming `path` and containing `needle`.
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

void expect_affine_eq(const Affine& got, const json& want) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      EXPECT_EQ(got[r][c], want[r][c].get<double>()) << "affine[" << r << "][" << c << "]";
  }
}

// Voxel (i, j, k, t) of nibabel's array, stored in C order in the JSON.
double at_index(const json& flat, const std::vector<int64_t>& shape, int64_t i, int64_t j, int64_t k,
                int64_t t) {
  int64_t index = 0;
  const int64_t ijkt[4] = {i, j, k, t};
  for (size_t a = 0; a < shape.size(); ++a)
    index = index * shape[a] + ijkt[a];
  return flat[index].get<double>();
}

class NiftiReference : public ::testing::TestWithParam<std::string> {};

TEST_P(NiftiReference, HeaderMatchesNibabel) {
  const json& want = entry("files", GetParam());
  const std::string path = kDir + "/" + GetParam();
  if (want.contains("error")) {
    EXPECT_NO_THROW(read_nifti_header(path));
    return;
  }
  const NiftiHeader header = read_nifti_header(path);
  EXPECT_EQ(header.version, want["version"].get<int>());
  EXPECT_EQ(header.dims, want["shape"].get<std::vector<int64_t>>());
  EXPECT_EQ(header.pixdim, want["zooms"].get<std::vector<double>>());
  EXPECT_EQ(header.datatype_name, want["dtype"].get<std::string>());
  EXPECT_EQ(header.qform_code, want["qform_code"].get<int>());
  EXPECT_EQ(header.sform_code, want["sform_code"].get<int>());
  EXPECT_EQ(header.description, want["description"].get<std::string>());
  expect_affine_eq(header.affine, want["affine"]);
}

TEST_P(NiftiReference, VoxelsMatchNibabel) {
  const json& want = entry("files", GetParam());
  const std::string path = kDir + "/" + GetParam();
  if (want.contains("error")) {
    expect_error([&] { read_nifti(path); }, path, want["error"].get<std::string>());
    return;
  }
  const auto shape = want["shape"].get<std::vector<int64_t>>();
  const int64_t volumes = shape.size() >= 4 ? shape[3] : 1;
  for (int64_t t = 0; t < volumes; ++t) {
    NiftiReadOptions options;
    options.volume = t;
    const Volume vol = read_nifti(path, options);
    ASSERT_EQ(vol.data.scalar_type(), at::kFloat);
    ASSERT_EQ(vol.data.dim(), 3);
    for (int a = 0; a < 3; ++a) {
      const int64_t extent = a < static_cast<int>(shape.size()) ? shape[a] : 1;
      ASSERT_EQ(vol.data.size(a), extent);
      ASSERT_EQ(vol.dims[a], extent);
      EXPECT_EQ(vol.spacing_mm[a], a < static_cast<int>(shape.size()) ? want["zooms"][a].get<double>() : 1.0);
    }
    expect_affine_eq(vol.affine, want["affine"]);
    EXPECT_EQ(vol.source_path, path);
    EXPECT_EQ(vol.scale_slope, 1.0);
    EXPECT_EQ(vol.scale_inter, 0.0);

    NiftiReadOptions stored_options = options;
    stored_options.values = VoxelValues::kStored;
    const Volume stored = read_nifti(path, stored_options);
    EXPECT_EQ(stored.scale_slope, want["slope"].get<double>());
    EXPECT_EQ(stored.scale_inter, want["inter"].get<double>());
    EXPECT_EQ(stored.stored_dtype, stored.data.scalar_type());

    const auto data = vol.data.accessor<float, 3>();
    const at::Tensor raw64 = stored.data.to(at::kDouble);
    const auto raw = raw64.accessor<double, 3>();
    int mismatches = 0;
    for (int64_t i = 0; i < vol.dims[0]; ++i) {
      for (int64_t j = 0; j < vol.dims[1]; ++j) {
        for (int64_t k = 0; k < vol.dims[2]; ++k) {
          const double f = at_index(want["fdata"], shape, i, j, k, t);
          const double r = at_index(want["raw"], shape, i, j, k, t);
          // Bitwise: the same float32, signed zeros included.
          const float got = data[i][j][k];
          const float expected_f = static_cast<float>(f);
          if (std::memcmp(&got, &expected_f, sizeof got) != 0 || raw[i][j][k] != r) {
            if (++mismatches <= 5) {
              ADD_FAILURE() << GetParam() << " volume " << t << " voxel (" << i << ", " << j << ", " << k
                            << "): hlip " << got << " / raw " << raw[i][j][k] << ", nibabel " << f
                            << " / raw " << r;
            }
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0);

    // kCompact: the same values, kept as stored integers where that is exact and no scaling applies.
    NiftiReadOptions compact_options = options;
    compact_options.values = VoxelValues::kCompact;
    const Volume compact = read_nifti(path, compact_options);
    EXPECT_EQ(compact.scale_slope, 1.0);
    EXPECT_EQ(compact.scale_inter, 0.0);
    const at::ScalarType type = stored.data.scalar_type();
    const std::string dtype = want["dtype"].get<std::string>();
    const bool small_integer = dtype == "uint8" || dtype == "int8" || dtype == "int16" || dtype == "uint16";
    const double slope = want["slope"].get<double>(), inter = want["inter"].get<double>();
    const bool scaling = std::isfinite(slope) && slope != 0.0 && !(slope == 1.0 && inter == 0.0);
    EXPECT_EQ(compact.data.scalar_type(), small_integer && !scaling ? type : at::kFloat) << GetParam();
    const at::Tensor as_float = compact.data.to(at::kFloat).contiguous(), reference = vol.data.contiguous();
    EXPECT_EQ(std::memcmp(as_float.data_ptr(), reference.data_ptr(), reference.numel() * sizeof(float)), 0)
        << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Files, NiftiReference, ::testing::ValuesIn(names("files")),
                         [](const auto& info) { return gtest_name(info.param); });

// The NIfTI files shipped in Debian's python3-nibabel, read in place.
class NibabelData : public ::testing::TestWithParam<std::string> {};

TEST_P(NibabelData, MatchesNibabel) {
  const std::string path = kNibabelData + "/" + GetParam();
  if (!fs::exists(path)) GTEST_SKIP() << path << " is absent (python3-nibabel not installed)";
  const json& want = entry("nibabel_data", GetParam());
  const NiftiHeader header = read_nifti_header(path);
  EXPECT_EQ(header.dims, want["shape"].get<std::vector<int64_t>>());
  if (want.contains("error")) {
    expect_error([&] { read_nifti(path); }, path, want["error"].get<std::string>());
    return;
  }
  EXPECT_EQ(header.pixdim, want["zooms"].get<std::vector<double>>());
  EXPECT_EQ(header.datatype_name, want["dtype"].get<std::string>());
  expect_affine_eq(header.affine, want["affine"]);
  for (const auto& check : want["volumes"]) {
    NiftiReadOptions options;
    options.volume = check["volume"].get<int64_t>();
    const Volume vol = read_nifti(path, options);
    expect_affine_eq(vol.affine, want["affine"]);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(vol.data)));
    EXPECT_EQ(std::string(hex), check["fnv1a64"].get<std::string>()) << "volume " << options.volume;
    if (!check["sum"].is_null()) {
      EXPECT_EQ(vol.data.to(at::kDouble).sum().item<double>(), check["sum"].get<double>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Debian, NibabelData, ::testing::ValuesIn(names("nibabel_data")),
                         [](const auto& info) { return gtest_name(info.param); });

TEST(NiftiRead, DataIsAFortranStridedViewIndexedLikeNibabel) {
  const Volume vol = read_nifti(kDir + "/f32.nii.gz");
  EXPECT_EQ(vol.data.strides().vec(), (std::vector<int64_t>{1, 5, 20}));
  const at::Tensor c = vol.data.contiguous();
  EXPECT_TRUE(at::equal(c, vol.data));
}

// libdeflate inflates a whole .nii.gz; files it does not take (several gzip members, bytes after the
// stream) must read exactly as zlib's stream reads them.
TEST(NiftiRead, GzipMembersAndTrailingBytesReadLikeOneStream) {
  TempDir dir;
  const std::string plain = (dir.path() / "scan.nii").string();
  at::manual_seed(5);
  const at::Tensor data = at::randint(-3000, 3000, {7, 6, 5}).to(at::kShort);
  write_nifti(plain, data, hlip::io::identity_affine());
  std::ifstream in(plain, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto gzip_members = [&](const std::string& path, const std::vector<std::string>& parts,
                                const std::string& trailer) {
    for (const std::string& part : parts) {
      gzFile out = gzopen(path.c_str(), "ab");
      ASSERT_NE(out, nullptr);
      ASSERT_EQ(gzwrite(out, part.data(), static_cast<unsigned>(part.size())), static_cast<int>(part.size()));
      ASSERT_EQ(gzclose(out), Z_OK);
    }
    std::ofstream(path, std::ios::binary | std::ios::app) << trailer;
  };
  const std::string two = (dir.path() / "two_members.nii.gz").string();
  gzip_members(two, {bytes.substr(0, 500), bytes.substr(500)}, "");
  const std::string trailing = (dir.path() / "trailing.nii.gz").string();
  gzip_members(trailing, {bytes}, std::string(16, '\0'));
  const at::Tensor expected = read_nifti(plain).data;
  for (const std::string& path : {two, trailing}) {
    const Volume vol = read_nifti(path);
    EXPECT_TRUE(at::equal(vol.data, expected)) << path;
    NiftiReadOptions compact;
    compact.values = VoxelValues::kCompact;
    const at::Tensor kept = read_nifti(path, compact).data;
    EXPECT_EQ(kept.scalar_type(), at::kShort);
    EXPECT_TRUE(at::equal(kept, data)) << path;
  }
}

TEST(NiftiRead, StoredValuesKeepTheFileDtype) {
  NiftiReadOptions options;
  options.values = VoxelValues::kStored;
  EXPECT_EQ(read_nifti(kDir + "/u8_scaled.nii", options).data.scalar_type(), at::kByte);
  EXPECT_EQ(read_nifti(kDir + "/i8_slope0.nii", options).data.scalar_type(), at::kChar);
  EXPECT_EQ(read_nifti(kDir + "/i16_scaled.nii.gz", options).data.scalar_type(), at::kShort);
  // No uint16 in LibTorch 1.13: widened to int32 with the values kept.
  const Volume u16 = read_nifti(kDir + "/u16.nii", options);
  EXPECT_EQ(u16.data.scalar_type(), at::kInt);
  EXPECT_EQ(u16.stored_dtype, at::kInt);
  EXPECT_EQ(u16.data.max().item<int>(), 65535);
  EXPECT_EQ(read_nifti(kDir + "/f64.nii.gz", options).data.scalar_type(), at::kDouble);
}

TEST(NiftiRead, AffineRuleFollowsTheCodes) {
  const NiftiHeader both = read_nifti_header(kDir + "/both_differ.nii.gz");
  EXPECT_EQ(both.affine, both.sform);
  EXPECT_NE(both.qform, both.sform);
  const NiftiHeader qonly = read_nifti_header(kDir + "/qform_only.nii");
  EXPECT_EQ(qonly.affine, qonly.qform);
  const NiftiHeader sonly = read_nifti_header(kDir + "/sform_only.nii");
  EXPECT_EQ(sonly.affine, sonly.sform);
  const NiftiHeader none = read_nifti_header(kDir + "/no_xform.nii");
  EXPECT_EQ(none.affine[0][0], -2.0);  // Analyze convention: x flipped
  EXPECT_EQ(none.affine[0][3], 4.0);   // origin at the centre of 5 voxels of 2 mm
  EXPECT_EQ(voxel_to_world(none.affine, 2, 0, 0), (std::array<double, 3>{0.0, -4.5, -4.0}));
}

TEST(NiftiRead, CompressionIsDetectedByContentNotName) {
  TempDir dir;
  write_bytes(dir.file("gzip_named_plain.nii"), read_bytes(kDir + "/f32.nii.gz"));
  write_bytes(dir.file("plain_named_gzip.nii.gz"), read_bytes(kDir + "/f32_scaled.nii"));
  EXPECT_TRUE(
      at::equal(read_nifti(dir.file("gzip_named_plain.nii")).data, read_nifti(kDir + "/f32.nii.gz").data));
  EXPECT_TRUE(at::equal(read_nifti(dir.file("plain_named_gzip.nii.gz")).data,
                        read_nifti(kDir + "/f32_scaled.nii").data));
}

TEST(NiftiRead, CorruptGzipStreamIsAnErrorNotAHang) {
  // Found by fuzz_nifti_header: zlib's -1 for a bad deflate block came back from znzread as a huge count.
  const std::string path =
      std::string(HLIP_TEST_DATA_DIR) + "/../../fuzz/corpus/nifti_header/crash-corrupt-gzip-hang.nii.gz";
  const std::string message = hlip::test::error_message([&] { read_nifti(path); });
  EXPECT_EQ(message.find(path + ": corrupt gzip data: zlib failed after "), 0u) << message;
}

TEST(NiftiRead, NonFiniteVoxelsAreKeptOrRefusedOnRequest) {
  TempDir dir;
  at::Tensor data = at::zeros({4, 3, 2});
  data[1][2][0] = NAN;
  data[3][0][1] = -INFINITY;
  const std::string path = dir.file("nan.nii.gz");
  write_nifti(path, data, identity_affine());
  const Volume vol = read_nifti(path);
  EXPECT_TRUE(std::isnan(vol.data[1][2][0].item<float>()));
  EXPECT_EQ(vol.data[3][0][1].item<float>(), -INFINITY);
  NiftiReadOptions options;
  options.require_finite = true;
  expect_error([&] { read_nifti(path, options); }, path,
               "voxel (1, 2, 0) of volume 0 is nan (2 non-finite voxels)");
}

// ---- bad input ----

TEST(NiftiErrors, MissingFile) {
  const std::string path = kDir + "/does_not_exist.nii.gz";
  expect_error([&] { read_nifti(path); }, path, "cannot open");
  expect_error([&] { read_nifti_header(path); }, path, "cannot open");
}

TEST(NiftiErrors, Directory) {
  expect_error([&] { read_nifti(kDir); }, kDir, "directory");
}

TEST(NiftiErrors, BadVolumeIndex) {
  const std::string path = kDir + "/four_d.nii.gz";
  NiftiReadOptions options;
  options.volume = 3;
  expect_error([&] { read_nifti(path, options); }, path, "volume 3 is out of range: dim[4] is 3");
  options.volume = -1;
  expect_error([&] { read_nifti(path, options); }, path, "volume -1 is out of range");
  const std::string three_d = kDir + "/f32.nii.gz";
  options.volume = 1;
  expect_error([&] { read_nifti(three_d, options); }, three_d, "volume 1 is out of range: dim[4] is 1");
}

TEST(NiftiErrors, TruncatedUncompressedVoxels) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/i32.nii");
  bytes.resize(bytes.size() - 7);
  const std::string path = dir.file("short.nii");
  write_bytes(path, bytes);
  expect_error([&] { read_nifti(path); }, path, "truncated");
}

TEST(NiftiErrors, TruncatedGzipVoxels) {
  TempDir dir;
  // Voxels that do not compress, so cutting the stream removes voxels rather than only the gzip trailer.
  at::Tensor noise = at::randint(-32768, 32767, {20, 20, 10}, at::dtype(at::kShort));
  const std::string good = dir.file("noise.nii.gz");
  write_nifti(good, noise, identity_affine());
  auto bytes = read_bytes(good);
  bytes.resize(bytes.size() / 2);
  const std::string path = dir.file("short.nii.gz");
  write_bytes(path, bytes);
  expect_error([&] { read_nifti(path); }, path, "truncated");
}

TEST(NiftiErrors, GzipTooSmallForItsDimsIsRefusedBeforeAllocating) {
  // A 1000³ uint8 header in a gzip file of a few hundred bytes: deflate cannot inflate that far (1032:1 at
  // most), so the reader refuses before allocating a gigabyte.
  TempDir dir;
  auto bytes = read_bytes(kDir + "/u8_scaled.nii");
  for (int a = 1; a <= 3; ++a)
    poke<int16_t>(bytes, 40 + 2 * a, 1000);
  const std::string path = dir.file("huge.nii.gz");
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
  expect_error([&] { read_nifti(path); }, path,
               "gzip file cannot inflate to the 1000000352 bytes its header");
}

TEST(NiftiErrors, TruncatedHeader) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/i32.nii");
  bytes.resize(200);
  const std::string path = dir.file("header.nii");
  write_bytes(path, bytes);
  expect_error([&] { read_nifti(path); }, path, "truncated NIfTI-1 header: 200 of 348 bytes");
}

TEST(NiftiErrors, EmptyFile) {
  TempDir dir;
  const std::string path = dir.file("empty.nii");
  write_bytes(path, {});
  expect_error([&] { read_nifti(path); }, path, "only 0 bytes");
}

// Each case patches one header field of a good NIfTI-1 file.
struct HeaderPatch {
  const char* name;
  void (*patch)(std::vector<char>&);
  const char* needle;
};

class NiftiHeaderErrors : public ::testing::TestWithParam<HeaderPatch> {};

TEST_P(NiftiHeaderErrors, OneLineErrorNamingFieldAndValue) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/u8_scaled.nii");
  GetParam().patch(bytes);
  const std::string path = dir.file("patched.nii");
  write_bytes(path, bytes);
  expect_error([&] { decode_nifti_header(bytes.data(), bytes.size(), path); }, path, GetParam().needle);
  expect_error([&] { read_nifti(path); }, path, GetParam().needle);
}

// NIfTI-1 offsets: sizeof_hdr 0, dim 40, datatype 70, pixdim 76, qform_code 252, sform_code 254,
// quatern_b 256, magic 344.
const HeaderPatch kHeaderPatches[] = {
    {"wrong_magic", [](auto& b) { std::memcpy(b.data() + 344, "xyz", 4); }, "magic is 'xyz', expected 'n+1'"},
    {"pair_magic", [](auto& b) { std::memcpy(b.data() + 344, "ni1", 4); }, "magic 'ni1'"},
    {"bad_sizeof_hdr", [](auto& b) { poke<int32_t>(b, 0, 1234); }, "sizeof_hdr is 1234"},
    {"zero_dim", [](auto& b) { poke<int16_t>(b, 44, 0); }, "dim[2] is 0"},
    {"negative_dim", [](auto& b) { poke<int16_t>(b, 46, -3); }, "dim[3] is -3"},
    {"dim0_too_large", [](auto& b) { poke<int16_t>(b, 40, 9); }, "dim[0] is 9"},
    {"overflowing_dims",
     [](auto& b) {
       poke<int16_t>(b, 40, 7);
       for (int a = 1; a <= 7; ++a)
         poke<int16_t>(b, 40 + 2 * a, 32767);
     },
     "overflow"},
    {"nan_spacing", [](auto& b) { poke<float>(b, 84, std::nanf("")); }, "pixdim[2] (voxel spacing) is nan"},
    {"zero_spacing", [](auto& b) { poke<float>(b, 80, 0.0f); }, "pixdim[1] (voxel spacing) is 0"},
    {"complex_datatype", [](auto& b) { poke<int16_t>(b, 70, 32); }, "datatype 32 (complex64)"},
    {"non_unit_quaternion",
     [](auto& b) {
       poke<int16_t>(b, 254, 0);
       poke<float>(b, 256, 1.0f);
       poke<float>(b, 260, 1.0f);
     },
     "not a unit quaternion"},
    {"infinite_inter", [](auto& b) { poke<float>(b, 116, INFINITY); }, "scl_inter is inf"},
    {"vox_offset_beyond_int64", [](auto& b) { poke<float>(b, 108, 1e20f); }, "vox_offset is 1e+20"},
};

INSTANTIATE_TEST_SUITE_P(Patched, NiftiHeaderErrors, ::testing::ValuesIn(kHeaderPatches),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(NiftiErrors, OverflowingNifti2Dims) {
  TempDir dir;
  auto bytes = read_bytes(kDir + "/nifti2_i16_scaled.nii");
  poke<int64_t>(bytes, 16, 3);
  poke<int64_t>(bytes, 24, int64_t{1} << 40);
  poke<int64_t>(bytes, 32, int64_t{1} << 40);
  const std::string path = dir.file("huge.nii");
  write_bytes(path, bytes);
  expect_error([&] { read_nifti(path); }, path, "overflow 64-bit sizes");
}

// ---- writing ----

Affine rotated_affine() {
  // 20° about z, 0.8/1.2/2.5 mm, a left-handed k axis, and an origin off the grid.
  const double c = std::cos(20 * M_PI / 180), s = std::sin(20 * M_PI / 180);
  return Affine{
      {{c * 0.8, -s * 1.2, 0.0, -30.25}, {s * 0.8, c * 1.2, 0.0, 12.5}, {0.0, 0.0, -2.5, 7.0}, {0, 0, 0, 1}}};
}

Affine as_float32(const Affine& a) {
  Affine out = a;
  for (auto& row : out) {
    for (double& v : row)
      v = static_cast<float>(v);
  }
  return out;
}

TEST(NiftiWrite, RoundTripFloat32BothVersionsAndCompressions) {
  TempDir dir;
  const at::Tensor data = at::randn({6, 5, 4}, at::dtype(at::kFloat));
  const Affine affine = rotated_affine();
  for (int version : {1, 2}) {
    for (const char* ext : {".nii", ".nii.gz"}) {
      const std::string path = dir.file("rt_v" + std::to_string(version) + ext);
      NiftiWriteOptions options;
      options.version = version;
      options.description = "heat map";
      write_nifti(path, data, affine, options);
      const NiftiHeader header = read_nifti_header(path);
      EXPECT_EQ(header.version, version);
      EXPECT_EQ(header.qform_code, 1);
      EXPECT_EQ(header.sform_code, 1);
      EXPECT_EQ(header.description, "heat map");
      // NIfTI-1 stores the sform as float32; NIfTI-2 as float64.
      EXPECT_EQ(header.affine, version == 1 ? as_float32(affine) : affine) << path;
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 4; ++c)
          EXPECT_NEAR(header.qform[r][c], affine[r][c], 1e-5) << path;
      }
      EXPECT_NEAR(header.pixdim[0], 0.8, 1e-6);
      EXPECT_NEAR(header.pixdim[1], 1.2, 1e-6);
      EXPECT_NEAR(header.pixdim[2], 2.5, 1e-6);
      const Volume vol = read_nifti(path);
      EXPECT_TRUE(at::equal(vol.data, data)) << path;
    }
  }
}

TEST(NiftiWrite, RoundTripIntegerTypesAndFourDims) {
  TempDir dir;
  NiftiReadOptions stored;
  stored.values = VoxelValues::kStored;
  const at::Tensor u8 = at::randint(0, 256, {4, 3, 2}, at::dtype(at::kByte));
  write_nifti(dir.file("u8.nii"), u8, identity_affine());
  EXPECT_TRUE(at::equal(read_nifti(dir.file("u8.nii"), stored).data, u8));

  const at::Tensor i16 = at::randint(-32768, 32768, {3, 4, 5, 2}, at::dtype(at::kShort));
  write_nifti(dir.file("i16.nii.gz"), i16, rotated_affine());
  stored.volume = 1;
  const Volume second = read_nifti(dir.file("i16.nii.gz"), stored);
  EXPECT_EQ(second.stored_dtype, at::kShort);
  EXPECT_TRUE(at::equal(second.data, i16.select(3, 1)));
}

TEST(NiftiWrite, VolumeOverloadAndNonContiguousInput) {
  TempDir dir;
  Volume vol = read_nifti(kDir + "/both_differ.nii.gz");
  vol.data = vol.data.contiguous().transpose(0, 2).contiguous().transpose(0, 2);  // C-strided view
  write_nifti(dir.file("copy.nii.gz"), vol);
  const Volume back = read_nifti(dir.file("copy.nii.gz"));
  EXPECT_TRUE(at::equal(back.data, vol.data));
  EXPECT_EQ(back.affine, vol.affine);  // already float32-exact: it came from a NIfTI-1 sform
}

TEST(NiftiWrite, ReplacesAtomicallyAndLeavesNoTemporaryFiles) {
  TempDir dir;
  const std::string path = dir.file("out.nii.gz");
  write_nifti(path, at::zeros({2, 2, 2}), identity_affine());
  write_nifti(path, at::ones({3, 2, 2}), identity_affine());
  EXPECT_EQ(read_nifti(path).dims, (std::array<int64_t, 3>{3, 2, 2}));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "out.nii.gz");
  }
  EXPECT_EQ(files, 1);
}

TEST(NiftiWrite, Errors) {
  TempDir dir;
  const std::string missing_dir = dir.file("no/such/dir/out.nii");
  expect_error(
      [&] {
        write_nifti(missing_dir, at::zeros({2, 2, 2}), identity_affine());
      },
      missing_dir, "cannot create temporary file");
  const std::string path = dir.file("out.nii");
  expect_error(
      [&] {
        write_nifti(path, at::zeros({2, 2, 2}, at::kDouble), identity_affine());
      },
      path, "cannot write Double voxels");
  expect_error([&] { write_nifti(path, at::zeros({2, 2}), identity_affine()); }, path, "2-dim tensor");
  Affine bad = identity_affine();
  bad[1][3] = NAN;
  expect_error([&] { write_nifti(path, at::zeros({2, 2, 2}), bad); }, path, "non-finite");
  EXPECT_FALSE(fs::exists(path));
}

// nibabel reads what hlip writes: runs only where Debian's python3 with nibabel is installed.
TEST(NiftiWrite, NibabelReadsWhatHlipWrites) {
  if (!fs::exists("/usr/bin/python3") ||
      std::system("/usr/bin/python3 -c 'import nibabel' 2>/dev/null") != 0) {
    GTEST_SKIP() << "no /usr/bin/python3 with nibabel";
  }
  TempDir dir;
  const at::Tensor data = at::randn({5, 4, 3});
  const Affine affine = rotated_affine();
  for (const char* name : {"a.nii", "b.nii.gz"}) {
    const std::string path = dir.file(name);
    write_nifti(path, data, affine);
    const std::string script =
        "import sys, nibabel as nib, numpy as np\n"
        "img = nib.load(sys.argv[1])\n"
        "d = img.get_fdata(dtype=np.float32)\n"
        "print(img.header['qform_code'], img.header['sform_code'], *img.shape)\n"
        "print(*[repr(float(v)) for v in img.affine.ravel()])\n"
        "print(*[repr(float(v)) for v in d.ravel()])\n";
    const std::string script_path = dir.file("check.py");
    std::ofstream(script_path) << script;
    const std::string command = "/usr/bin/python3 " + script_path + " " + path;
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, pipe))
      out.append(buf, n);
    ASSERT_EQ(pclose(pipe), 0) << out;
    std::istringstream in(out);
    int qcode = 0, scode = 0;
    int64_t i = 0, j = 0, k = 0;
    in >> qcode >> scode >> i >> j >> k;
    EXPECT_EQ(qcode, 1);
    EXPECT_EQ(scode, 1);
    EXPECT_EQ((std::vector<int64_t>{i, j, k}), (std::vector<int64_t>{5, 4, 3}));
    const Affine f32 = as_float32(affine);
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c) {
        double v = 0;
        in >> v;
        EXPECT_EQ(v, f32[r][c]) << name << " affine[" << r << "][" << c << "]";
      }
    }
    const at::Tensor c_order = data.contiguous();
    const float* p = c_order.data_ptr<float>();
    for (int64_t n = 0; n < data.numel(); ++n) {
      double v = 0;
      in >> v;
      ASSERT_EQ(static_cast<float>(v), p[n]) << name << " voxel " << n;
    }
  }
}

}  // namespace
}  // namespace hlip::io
