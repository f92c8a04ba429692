// The scan cache's .npy files: round trips, HLIP's uint8 convention, and damaged files.
#include <gtest/gtest.h>

#include <filesystem>

#include "hlip/data/cache.h"
#include "hlip/io/npy.h"
#include "temp_dir.h"

namespace hlip::data {
namespace {

using test::error_message;
using test::TempDir;

TEST(Cache, Uint8RoundTripIsHlipsDivideBy255) {
  TempDir dir;
  const std::string path = dir.file("s.npy");
  const at::Tensor scan = at::rand({3, 5, 4});
  write_cached_scan(path, scan, CacheDtype::kUint8);
  const at::Tensor stored = read_cached_scan(path);
  EXPECT_EQ(stored.scalar_type(), at::kByte);
  EXPECT_EQ(stored.sizes(), scan.sizes());
  EXPECT_TRUE(stored.equal(scan.mul(255).round().to(at::kByte)));
  const at::Tensor back = cached_to_unit_float(stored);
  EXPECT_LE(back.sub(scan).abs().max().item<float>(), 0.5f / 255 + 1e-6f);
  // numpy's own reader sees the same array.
  EXPECT_TRUE(io::read_npy(path).equal(stored));
}

TEST(Cache, Float16AndClamping) {
  TempDir dir;
  const std::string path = dir.file("s.npy");
  const at::Tensor scan = at::tensor({-0.5f, 0.25f, 0.5f, 1.5f}).reshape({1, 2, 2});
  write_cached_scan(path, scan, CacheDtype::kFloat16);
  const at::Tensor stored = read_cached_scan(path);
  EXPECT_EQ(stored.scalar_type(), at::kHalf);
  EXPECT_TRUE(cached_to_unit_float(stored).equal(at::tensor({0.0f, 0.25f, 0.5f, 1.0f}).reshape({1, 2, 2})));
}

TEST(Cache, ReadIntoABatchSlot) {
  TempDir dir;
  const std::string path = dir.file("s.npy");
  write_cached_scan(path, at::rand({2, 3, 4}), CacheDtype::kUint8);
  at::Tensor batch = at::zeros({2, 2, 3, 4}, at::kByte);
  at::Tensor slot = batch[1];
  read_cached_scan_into(path, slot);
  EXPECT_TRUE(batch[1].equal(read_cached_scan(path)));
  EXPECT_EQ(batch[0].sum().item<int64_t>(), 0);
  at::Tensor wrong = at::zeros({2, 3, 5}, at::kByte);
  EXPECT_NE(error_message([&] { read_cached_scan_into(path, wrong); }).find("does not match the batch slot"),
            std::string::npos);
}

TEST(Cache, DamagedFilesAreNamedErrors) {
  TempDir dir;
  const std::string path = dir.file("s.npy");
  EXPECT_NE(error_message([&] { read_cached_scan(path); }).find(path), std::string::npos);

  write_cached_scan(path, at::rand({4, 4, 4}), CacheDtype::kUint8);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  const std::string truncated = error_message([&] { read_cached_scan(path); });
  EXPECT_NE(truncated.find("truncated"), std::string::npos) << truncated;
  EXPECT_NE(truncated.find(path), std::string::npos);

  io::write_npy(path, at::zeros({4, 4}, at::kByte));
  EXPECT_NE(error_message([&] { read_cached_scan(path); }).find("3 ([D, H, W])"), std::string::npos);
  io::write_npy(path, at::zeros({2, 2, 2}, at::kFloat));
  EXPECT_NE(error_message([&] { read_cached_scan(path); }).find("'<f4'"), std::string::npos);
  EXPECT_THROW(write_cached_scan(path, at::zeros({2, 2}), CacheDtype::kUint8), Error);
}

TEST(Cache, NamesAndDtypes) {
  EXPECT_EQ(sidecar_path("a/b/T1.npy"), "a/b/T1.json");
  EXPECT_EQ(parse_cache_dtype("uint8"), CacheDtype::kUint8);
  EXPECT_EQ(parse_cache_dtype("float16"), CacheDtype::kFloat16);
  EXPECT_EQ(to_string(CacheDtype::kFloat16), "float16");
  EXPECT_THROW(parse_cache_dtype("int16"), Error);
}

}  // namespace
}  // namespace hlip::data
