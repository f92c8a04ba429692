// safetensors reader and writer against files from tests/ref/make_safetensors_ref.py (an independent Python
// writer), byte strings from the reference implementation's own tests, and hand-made corrupt files.

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include "temp_dir.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using hlip::io::read_safetensors;
using hlip::io::read_safetensors_index;
using hlip::io::read_safetensors_metadata;
using hlip::io::write_safetensors;
using hlip::test::error_message;

namespace {

const std::string kDataDir = std::string(HLIP_TEST_DATA_DIR) + "/safetensors/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A header-length prefix followed by `header` and `data`, for hand-made files.
std::string raw_file(const std::string& header, const std::string& data = "") {
  uint64_t n = header.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);
  return bytes + header + data;
}

// Same dtype, shape and values; NaNs equal each other and the sign of zero counts.
void expect_same(const at::Tensor& actual, const at::Tensor& expected, const std::string& name) {
  SCOPED_TRACE(name);
  ASSERT_TRUE(actual.defined());
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type());
  ASSERT_EQ(actual.sizes(), expected.sizes());
  if (at::isFloatingType(expected.scalar_type())) {
    at::Tensor a = actual.to(at::kDouble).contiguous().flatten();
    at::Tensor e = expected.to(at::kDouble).contiguous().flatten();
    for (int64_t i = 0; i < e.numel(); ++i) {
      double av = a.data_ptr<double>()[i], ev = e.data_ptr<double>()[i];
      if (std::isnan(ev)) {
        EXPECT_TRUE(std::isnan(av)) << "element " << i;
      } else {
        EXPECT_EQ(av, ev) << "element " << i;
        EXPECT_EQ(std::signbit(av), std::signbit(ev)) << "element " << i;
      }
    }
  } else {
    at::Tensor a = actual.to(at::kLong).contiguous().flatten();
    at::Tensor e = expected.to(at::kLong).contiguous().flatten();
    for (int64_t i = 0; i < e.numel(); ++i)
      EXPECT_EQ(a.data_ptr<int64_t>()[i], e.data_ptr<int64_t>()[i]) << i;
  }
}

at::Tensor floats(std::vector<double> values, at::ScalarType type, at::IntArrayRef shape) {
  return at::tensor(values, at::kDouble).to(type).reshape(shape);
}

at::Tensor ints(std::vector<int64_t> values, at::ScalarType type, at::IntArrayRef shape) {
  return at::tensor(values, at::kLong).to(type).reshape(shape);
}

// The tensors of all_dtypes.safetensors, spelled out as in make_safetensors_ref.py.
std::map<std::string, at::Tensor> reference_tensors() {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::map<std::string, at::Tensor> t;
  t["f64"] =
      floats({0.0, -1.5, 1e300, -std::numeric_limits<double>::denorm_min(), inf, nan}, at::kDouble, {2, 3});
  t["f32"] = at::tensor(std::vector<float>{1.0f, -0.0f, std::numeric_limits<float>::max(),
                                           std::numeric_limits<float>::denorm_min(), -INFINITY, 0.1f})
                 .reshape({3, 2});
  t["f16"] =
      floats({65504.0, -65504.0, std::ldexp(1.0, -24), 0.5, -0.0, inf, 1.0, -2.0}, at::kHalf, {2, 2, 2});
  t["bf16"] =
      floats({1.0, -2.5, 0.15625, 3.3895313892515355e38, -std::ldexp(1.0, -126), 256.0}, at::kBFloat16, {6});
  t["i64"] = ints({std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), 0, -1},
                  at::kLong, {2, 2});
  t["i32"] = ints({-2147483648LL, 2147483647LL, 7}, at::kInt, {3});
  t["i16"] = ints({-32768, 32767, -2, 3}, at::kShort, {1, 4});
  t["i8"] = ints({-128, 127, 0, 5, -6}, at::kChar, {5});
  t["u8"] = ints({0, 255, 128, 1}, at::kByte, {2, 2});
  t["bool"] = ints({1, 0, 0, 1, 1}, at::kBool, {5});
  t["scalar"] = at::scalar_tensor(2.75, at::kFloat);
  t["empty"] = at::empty({0, 3}, at::kFloat);
  t["empty_i64"] = at::empty({2, 0}, at::kLong);
  return t;
}

const std::map<std::string, std::string> kReferenceMetadata = {
    {"format", "pt"}, {"hlip", "reference \u2713 \"quoted\" back\\slash\nnewline\ttab"}, {"empty", ""}};

class SafetensorsFiles : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return temp_.file(name); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  hlip::test::TempDir temp_{"hlip_safetensors_test"};
  const fs::path& dir_ = temp_.path();
};

TEST(SafetensorsRead, EveryDtypeFromPythonWriter) {
  auto file = read_safetensors(kDataDir + "all_dtypes.safetensors");
  auto expected = reference_tensors();
  ASSERT_EQ(file.tensors.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(file.tensors.count(name)) << name;
    expect_same(file.tensors.at(name), tensor, name);
    EXPECT_TRUE(file.tensors.at(name).is_contiguous()) << name;
  }
  EXPECT_EQ(file.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(file.tensors.at("scalar").item<float>(), 2.75f);
  EXPECT_EQ(file.metadata, kReferenceMetadata);
}

TEST(SafetensorsRead, TensorsOwnWritableMemory) {
  auto file = read_safetensors(kDataDir + "all_dtypes.safetensors");
  at::Tensor f32 = file.tensors.at("f32");
  f32.fill_(3.0f);  // would fault if it were a view of the read-only mapping
  EXPECT_EQ(f32.sum().item<float>(), 18.0f);
  EXPECT_EQ(read_safetensors(kDataDir + "all_dtypes.safetensors").tensors.at("f32")[0][0].item<float>(),
            1.0f);
}

TEST(SafetensorsRead, NameOrderedUnalignedFile) {
  // An older writer's order: the F32 tensor starts at data byte 3, not a multiple of 4.
  auto index = read_safetensors_index(kDataDir + "name_order_unaligned.safetensors");
  EXPECT_EQ(index.at("b_floats").begin, 3u);
  auto file = read_safetensors(kDataDir + "name_order_unaligned.safetensors");
  expect_same(file.tensors.at("a_bytes"), ints({1, 2, 3}, at::kChar, {3}), "a_bytes");
  expect_same(file.tensors.at("b_floats"), floats({1.5, -2.5}, at::kFloat, {2}), "b_floats");
  expect_same(file.tensors.at("c_halfs"), floats({0.25}, at::kHalf, {1}), "c_halfs");
  EXPECT_TRUE(file.metadata.empty());
}

TEST(SafetensorsRead, NoTensorsOnlyMetadata) {
  auto file = read_safetensors(kDataDir + "no_tensors.safetensors");
  EXPECT_TRUE(file.tensors.empty());
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"framework", "pt"}}));
}

TEST(SafetensorsRead, HeaderOnly) {
  EXPECT_EQ(read_safetensors_metadata(kDataDir + "all_dtypes.safetensors"), kReferenceMetadata);
  auto index = read_safetensors_index(kDataDir + "all_dtypes.safetensors");
  ASSERT_EQ(index.size(), 13u);
  EXPECT_EQ(index.at("f16").dtype, "F16");
  EXPECT_EQ(index.at("f16").shape, (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(index.at("f16").end - index.at("f16").begin, 16u);
  EXPECT_TRUE(index.at("scalar").shape.empty());
  EXPECT_EQ(index.at("empty").begin, index.at("empty").end);
}

TEST(SafetensorsRead, BoolBytesAreNormalised) {
  std::string header = R"({"flags":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string path = (fs::temp_directory_path() / "hlip_safetensors_bool.safetensors").string();
  write_bytes(path, raw_file(header, std::string("\x00\x02\x01", 3)));
  auto file = read_safetensors(path);
  fs::remove(path);
  expect_same(file.tensors.at("flags"), ints({0, 1, 1}, at::kBool, {3}), "flags");
}

struct CorruptCase {
  const char* file;
  std::vector<std::string> expected_in_message;
};

class SafetensorsCorrupt : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(SafetensorsCorrupt, ThrowsNamingFileAndValue) {
  const auto& param = GetParam();
  const std::string path = kDataDir + "corrupt_" + param.file + ".safetensors";
  ASSERT_TRUE(fs::exists(path)) << path;
  for (int header_only = 0; header_only < 2; ++header_only) {
    SCOPED_TRACE(header_only ? "read_safetensors_metadata" : "read_safetensors");
    std::string message = error_message([&] {
      if (header_only) {
        read_safetensors_metadata(path);
      } else {
        read_safetensors(path);
      }
    });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (const auto& part : param.expected_in_message) {
      EXPECT_NE(message.find(part), std::string::npos) << "\"" << part << "\" not in: " << message;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, SafetensorsCorrupt,
    ::testing::Values(
        CorruptCase{"too_short", {"3 bytes", "8-byte header length"}},
        CorruptCase{"header_length_past_end", {"header length 1000", "70-byte file"}},
        CorruptCase{"header_length_huge", {"header length 4611686018427387904", "limit"}},
        CorruptCase{"truncated", {"tensor \"w\"", "[0, 16]", "12-byte data buffer", "truncated"}},
        CorruptCase{"trailing_bytes", {"cover 8 of the 12 data bytes"}},
        CorruptCase{"offsets_overlap", {"tensor \"b\"", "[4, 8]", "overlap tensor \"a\" at [0, 8]"}},
        CorruptCase{"offsets_gap", {"tensor \"b\"", "[12, 16]", "[8, 12) unused"}},
        CorruptCase{"offsets_reversed", {"tensor \"w\"", "[8, 0]", "end before"}},
        CorruptCase{"offsets_past_end", {"tensor \"w\"", "[0, 16]", "8-byte data buffer"}},
        CorruptCase{"size_mismatch", {"tensor \"w\"", "shape [3] of F32 needs 12 bytes", "[0, 8] span 8"}},
        CorruptCase{"unsupported_dtype", {"tensor \"w\"", "dtype \"U16\" is not supported", "BF16"}},
        CorruptCase{"unknown_dtype", {"tensor \"w\"", "dtype \"Q4\""}},
        CorruptCase{"duplicate_name", {"tensor \"w\" appears twice"}},
        CorruptCase{"negative_dim", {"tensor \"w\"", "shape holds -2"}},
        CorruptCase{"shape_overflow", {"tensor \"w\"", "[4294967296,4294967296]", "64 bits"}},
        CorruptCase{"missing_offsets", {"tensor \"w\"", "no \"data_offsets\""}},
        CorruptCase{"not_json", {"not valid JSON"}},
        CorruptCase{"not_an_object", {"does not start with '{'", "0x5b"}},
        CorruptCase{"bad_metadata", {"__metadata__ \"epoch\" is 3"}},
        CorruptCase{"bad_utf8", {"not valid JSON", "UTF-8"}}),
    [](const ::testing::TestParamInfo<CorruptCase>& info) { return std::string(info.param.file); });

TEST_F(SafetensorsFiles, MissingAndEmptyFiles) {
  EXPECT_NE(error_message([&] { read_safetensors(path("absent.safetensors")); }).find("cannot open"),
            std::string::npos);
  write_bytes(path("empty.safetensors"), "");
  std::string message = error_message([&] { read_safetensors(path("empty.safetensors")); });
  EXPECT_NE(message.find("empty.safetensors: file is 0 bytes"), std::string::npos) << message;
  message = error_message([&] { read_safetensors(dir_.string()); });
  EXPECT_NE(message.find("not a regular file"), std::string::npos) << message;
}

TEST_F(SafetensorsFiles, WriteIsByteIdenticalToPythonWriter) {
  write_safetensors(path("all_dtypes.safetensors"), reference_tensors(), kReferenceMetadata);
  std::string ours = read_bytes(path("all_dtypes.safetensors"));
  std::string theirs = read_bytes(kDataDir + "all_dtypes.safetensors");
  ASSERT_EQ(ours.size(), theirs.size());
  EXPECT_TRUE(ours == theirs) << "first difference at byte "
                              << std::mismatch(ours.begin(), ours.end(), theirs.begin()).first - ours.begin();
}

// Byte strings asserted by the reference implementation's tests (safetensors/src/tensor.rs).
TEST_F(SafetensorsFiles, WriteMatchesReferenceImplementationTests) {
  write_safetensors(path("empty.safetensors"), {});
  EXPECT_EQ(read_bytes(path("empty.safetensors")), raw_file("{}      "));

  write_safetensors(path("framework.safetensors"), {}, {{"framework", "pt"}});
  EXPECT_EQ(read_bytes(path("framework.safetensors")),
            raw_file("{\"__metadata__\":{\"framework\":\"pt\"}}     "));

  at::Tensor attn = at::arange(6, at::kFloat).reshape({1, 1, 2, 3});
  write_safetensors(path("attn0.safetensors"), {{"attn0", attn}});
  std::string data(reinterpret_cast<const char*>(attn.data_ptr<float>()), 24);
  EXPECT_EQ(read_bytes(path("attn0.safetensors")),
            raw_file(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )", data));
}

TEST_F(SafetensorsFiles, WriteOrdersByAlignmentThenName) {
  std::map<std::string, at::Tensor> tensors = {{"a_u8", at::ones({3}, at::kByte)},
                                               {"b_f32", at::ones({2}, at::kFloat)},
                                               {"c_i64", at::ones({1}, at::kLong)},
                                               {"d_f16", at::ones({5}, at::kHalf)},
                                               {"e_f32", at::ones({1}, at::kFloat)}};
  write_safetensors(path("order.safetensors"), tensors);
  auto index = read_safetensors_index(path("order.safetensors"));
  EXPECT_EQ(index.at("c_i64").begin, 0u);
  EXPECT_EQ(index.at("b_f32").begin, 8u);
  EXPECT_EQ(index.at("e_f32").begin, 16u);
  EXPECT_EQ(index.at("d_f16").begin, 20u);
  EXPECT_EQ(index.at("a_u8").begin, 30u);
}

TEST_F(SafetensorsFiles, RoundTripKeepsValuesOfNonContiguousAndOffsetTensors) {
  at::manual_seed(7);
  std::map<std::string, at::Tensor> tensors;
  tensors["visual.trunk.blocks.0.attn.qkv.weight"] = at::randn({12, 4});
  tensors["transposed"] = at::randn({5, 3}, at::kDouble).t();
  tensors["sliced"] = at::arange(40, at::kInt).reshape({4, 10}).slice(1, 3, 9, 2);
  tensors["bf16"] = at::randn({7}).to(at::kBFloat16);
  tensors["half"] = at::randn({2, 2}).to(at::kHalf);
  tensors["flags"] = at::randn({9}) > 0;
  tensors["bytes"] = at::randint(-128, 127, {11}, at::kChar);
  tensors["shorts"] = at::randint(-1000, 1000, {3}, at::kShort);
  tensors["u8"] = at::randint(0, 255, {6}, at::kByte);
  tensors["ids"] = at::arange(24, at::kLong);
  tensors["logit_scale"] = at::scalar_tensor(2.6592, at::kFloat);
  tensors["nothing"] = at::empty({0}, at::kHalf);
  tensors["big"] = at::randn({1 << 20});
  ASSERT_FALSE(tensors["transposed"].is_contiguous());
  ASSERT_GT(tensors["sliced"].storage_offset(), 0);

  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"step", "1200"}, {"unicode", "Müller ✓"}};
  write_safetensors(path("round.safetensors"), tensors, metadata);
  auto file = read_safetensors(path("round.safetensors"));
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    ASSERT_TRUE(file.tensors.count(name)) << name;
    expect_same(file.tensors.at(name), tensor, name);
  }
  EXPECT_EQ(file.metadata, metadata);
  // Every tensor starts aligned for its dtype: the header is padded and the writer sorts by alignment.
  const std::string bytes = read_bytes(path("round.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  for (const auto& [name, info] : read_safetensors_index(path("round.safetensors"))) {
    EXPECT_EQ(info.begin % file.tensors.at(name).element_size(), 0u) << name;
  }
}

TEST_F(SafetensorsFiles, AtomicWriteLeavesOnlyTheFile) {
  const std::string target = path("model.safetensors");
  write_safetensors(target, {{"a", at::ones({2})}});
  write_safetensors(target, {{"b", at::zeros({3})}});  // replaces the first
  EXPECT_EQ(entries(), std::vector<std::string>{"model.safetensors"});
  auto file = read_safetensors(target);
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_TRUE(file.tensors.count("b"));

  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
}

TEST_F(SafetensorsFiles, FailedRenameRemovesTheTemporaryFile) {
  // The destination is a directory, so everything succeeds up to the rename.
  fs::create_directory(path("taken.safetensors"));
  std::string message = error_message([&] {
    write_safetensors(path("taken.safetensors"), {{"a", at::ones({2})}});
  });
  EXPECT_NE(message.find("cannot rename"), std::string::npos) << message;
  EXPECT_EQ(entries(), std::vector<std::string>{"taken.safetensors"});
  EXPECT_TRUE(fs::is_directory(path("taken.safetensors")));
}

TEST_F(SafetensorsFiles, WriteErrorsNameTheTensorAndLeaveNothing) {
  const std::string target = path("out.safetensors");
  write_safetensors(target, {{"keep", at::ones({1})}});
  const std::string before = read_bytes(target);

  std::string message = error_message([&] {
    write_safetensors(target, {{"a", at::ones({2})}, {"z", at::ones({2}, at::kComplexFloat)}});
  });
  EXPECT_NE(message.find("tensor \"z\""), std::string::npos) << message;
  EXPECT_NE(message.find("ComplexFloat"), std::string::npos) << message;

  message = error_message([&] { write_safetensors(target, {{"__metadata__", at::ones({1})}}); });
  EXPECT_NE(message.find("reserved"), std::string::npos) << message;

  message = error_message([&] { write_safetensors(target, {{"undefined", at::Tensor()}}); });
  EXPECT_NE(message.find("tensor \"undefined\" is undefined"), std::string::npos) << message;

  message = error_message([&] { write_safetensors(target, {{"bad\xff", at::ones({1})}}); });
  EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;

  message = error_message([&] { write_safetensors(target, {}, {{"key", "bad\xfe"}}); });
  EXPECT_NE(message.find("metadata value of \"key\""), std::string::npos) << message;

  EXPECT_EQ(read_bytes(target), before);
  EXPECT_EQ(entries(), std::vector<std::string>{"out.safetensors"});

  message = error_message([&] { write_safetensors(path("no/such/dir/x.safetensors"), {}); });
  EXPECT_NE(message.find("cannot create"), std::string::npos) << message;
}

}  // namespace
