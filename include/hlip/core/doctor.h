#pragma once
// `hlip doctor`: measures what this machine gives hlip (GEMM rates, BLAS, threads, c10d Gloo) and warns
// about the set-ups that make everything slow, such as LibTorch falling back to the reference BLAS.
//
//   auto report = hlip::run_doctor({});
//   std::cout << hlip::to_json(report).dump(2);

#include <ATen/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "hlip/core/runtime.h"

namespace hlip {

struct DoctorOptions {
  int64_t gemm_size = 1024;                // square matrices, n×n by n×n
  double seconds_per_measurement = 0.4;    // each of fp32 and bf16
  double min_fp32_gflops_per_thread = 40;  // below this, warn (reference BLAS gives about 5)
  bool check_gloo = true;
};

struct GlooCheck {
  bool compiled = false;  // LibTorch's c10d Gloo headers were found at build time
  bool usable = false;    // a 2-rank all-reduce over loopback gave the right sum
  std::string message;
};

struct DoctorReport {
  RuntimeInfo runtime;
  double gemm_fp32_gflops = 0;
  double gemm_bf16_gflops = 0;
  GlooCheck gloo;
  std::vector<std::string> warnings;
};

// Rate of an n×n×n matrix product in `dtype` on the CPU, best of repeated timings for about `seconds`.
double measure_gemm_gflops(at::ScalarType dtype, int64_t n, double seconds);

GlooCheck check_gloo();

DoctorReport run_doctor(const DoctorOptions& options);

nlohmann::json to_json(const RuntimeInfo& info);
nlohmann::json to_json(const DoctorReport& report);

// The human-readable lines of `hlip version` (and the head of `hlip doctor`).
std::string describe(const RuntimeInfo& info);

}  // namespace hlip
