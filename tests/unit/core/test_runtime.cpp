#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "hlip/core/doctor.h"
#include "hlip/core/runtime.h"

namespace hlip {
namespace {

TEST(Runtime, ConfigureThreadsSetsLibTorchThreads) {
  configure_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  configure_threads(0);
  EXPECT_EQ(at::get_num_threads(), hardware_threads());
}

TEST(Runtime, InfoNamesVersionsAndBlas) {
  const auto info = runtime_info();
  EXPECT_EQ(info.hlip_version, HLIP_VERSION_STRING);
  EXPECT_FALSE(info.torch_version.empty());
  EXPECT_FALSE(info.blas.name.empty());
  EXPECT_GE(info.hardware_threads, 1);
  EXPECT_FALSE(info.parallel_backend.empty());
}

TEST(Doctor, GemmRateIsPositiveForBothPrecisions) {
  EXPECT_GT(measure_gemm_gflops(at::kFloat, 128, 0.01), 0.0);
  EXPECT_GT(measure_gemm_gflops(at::kBFloat16, 128, 0.01), 0.0);
}

TEST(Doctor, GlooAllReduceAcrossTwoRanks) {
  const auto gloo = check_gloo();
#ifdef HLIP_HAVE_GLOO
  EXPECT_TRUE(gloo.compiled);
  EXPECT_TRUE(gloo.usable) << gloo.message;
#else
  EXPECT_FALSE(gloo.usable);
  GTEST_SKIP() << gloo.message;
#endif
}

TEST(Doctor, JsonHasTheDocumentedKeys) {
  DoctorOptions options;
  options.gemm_size = 128;
  options.seconds_per_measurement = 0.01;
  options.check_gloo = false;
  options.min_fp32_gflops_per_thread = 1e9;  // forces the slow-BLAS warning
  const auto report = run_doctor(options);
  const auto json = to_json(report);
  for (const char* key :
       {"torch_version", "blas", "threads", "cuda", "gemm_fp32_gflops", "gemm_bf16_gflops", "gloo"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
  ASSERT_FALSE(report.warnings.empty());
  EXPECT_NE(report.warnings.front().find("fp32 GEMM"), std::string::npos);
}

}  // namespace
}  // namespace hlip
