#include "hlip/core/doctor.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <thread>

#ifdef HLIP_HAVE_GLOO
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace hlip {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

double measure_gemm_gflops(at::ScalarType dtype, int64_t n, double seconds) {
  at::manual_seed(0);
  const auto a = at::randn({n, n}).to(dtype);
  const auto b = at::randn({n, n}).to(dtype);
  auto c = at::empty({n, n}, a.options());
  at::mm_out(c, a, b);  // warm-up: thread pools, oneDNN primitive caches
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  double best = 0;
  const auto start = Clock::now();
  int runs = 0;
  while (runs < 3 || seconds_since(start) < seconds) {
    const auto t0 = Clock::now();
    at::mm_out(c, a, b);
    const double elapsed = seconds_since(t0);
    if (elapsed > 0) best = std::max(best, flops / elapsed / 1e9);
    ++runs;
  }
  return best;
}

GlooCheck check_gloo() {
  GlooCheck result;
#ifdef HLIP_HAVE_GLOO
  result.compiled = true;
  try {
    auto store = c10::make_intrusive<::c10d::HashStore>();
    constexpr int kWorld = 2;
    std::vector<double> sums(kWorld, 0.0);
    std::vector<std::string> errors(kWorld);
    auto rank_main = [&](int rank) {
      try {
        auto options = ::c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(10000));
        options->devices.push_back(::c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        ::c10d::ProcessGroupGloo group(store, rank, kWorld, options);
        std::vector<at::Tensor> tensors{at::full({4}, static_cast<double>(rank + 1))};
        group.allreduce(tensors)->wait();
        sums[rank] = tensors[0].sum().item<double>();
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    };
    std::thread other(rank_main, 1);
    rank_main(0);
    other.join();
    for (const auto& error : errors) {
      if (!error.empty()) throw std::runtime_error(error.substr(0, error.find('\n')));
    }
    const double expected = 4 * (1 + 2);
    result.usable = sums[0] == expected && sums[1] == expected;
    result.message = result.usable ? "2-rank all-reduce over 127.0.0.1 correct"
                                   : fmt::format("2-rank all-reduce gave {} and {}, expected {}", sums[0],
                                                 sums[1], expected);
  } catch (const std::exception& e) {
    result.message = fmt::format("2-rank all-reduce failed: {}", e.what());
  }
#else
  result.message = "LibTorch's c10d Gloo headers were not found at build time (install libgloo-dev)";
#endif
  return result;
}

DoctorReport run_doctor(const DoctorOptions& options) {
  DoctorReport report;
  report.runtime = runtime_info();
  report.gemm_fp32_gflops =
      measure_gemm_gflops(at::kFloat, options.gemm_size, options.seconds_per_measurement);
  report.gemm_bf16_gflops =
      measure_gemm_gflops(at::kBFloat16, options.gemm_size, options.seconds_per_measurement);

  const int threads = std::max(1, report.runtime.intra_op_threads);
  const double floor = options.min_fp32_gflops_per_thread * threads;
  if (report.gemm_fp32_gflops < floor) {
    const auto& blas = report.runtime.blas;
    const bool openblas = blas.name.find("OpenBLAS") != std::string::npos;
    const std::string cause =
        openblas
            ? fmt::format(
                  "OpenBLAS's kernels may not fit this CPU (its configuration: {}); try "
                  "OPENBLAS_CORETYPE=HASWELL or SKYLAKEX",
                  blas.config)
            : "LibTorch is probably on the reference BLAS: run scripts/install-deps (installs OpenBLAS and "
              "selects it for libblas.so.3)";
    report.warnings.push_back(
        fmt::format("fp32 GEMM runs at {:.1f} GFLOP/s, far below the {:.0f} expected with {} "
                    "thread(s); BLAS in use: {} ({}). {}",
                    report.gemm_fp32_gflops, floor, threads, blas.name, blas.library_path, cause));
  }
  if (report.runtime.intra_op_threads < report.runtime.hardware_threads) {
    report.warnings.push_back(fmt::format("using {} of {} cores (set with --threads)",
                                          report.runtime.intra_op_threads, report.runtime.hardware_threads));
  }
  if (options.check_gloo) {
    report.gloo = check_gloo();
    if (!report.gloo.usable) report.warnings.push_back("c10d Gloo: " + report.gloo.message);
  }
  return report;
}

nlohmann::json to_json(const RuntimeInfo& info) {
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& device : info.cuda_devices) {
    devices.push_back({{"index", device.index}, {"name", device.name}, {"memory_gib", device.memory_gib}});
  }
  return {
      {"hlip_version", info.hlip_version},
      {"torch_version", info.torch_version},
      {"cuda",
       {{"compiled", info.torch_has_cuda}, {"available", !info.cuda_devices.empty()}, {"devices", devices}}},
      {"blas",
       {{"name", info.blas.name},
        {"library", info.blas.library_path},
        {"config", info.blas.config},
        {"threads", info.blas.threads}}},
      {"threads", info.intra_op_threads},
      {"hardware_threads", info.hardware_threads},
      {"parallel_backend", info.parallel_backend},
      {"openmp_wait_policy", info.openmp_wait_policy},
      {"openmp_wait_policy_defaulted", info.openmp_wait_policy_defaulted},
      {"openblas_coretype", info.openblas_coretype},
      {"openblas_coretype_defaulted", info.openblas_coretype_defaulted},
      {"fused_attention", info.fused_attention},
  };
}

nlohmann::json to_json(const DoctorReport& report) {
  auto json = to_json(report.runtime);
  json["gemm_fp32_gflops"] = report.gemm_fp32_gflops;
  json["gemm_bf16_gflops"] = report.gemm_bf16_gflops;
  json["gloo"] = {
      {"compiled", report.gloo.compiled}, {"usable", report.gloo.usable}, {"message", report.gloo.message}};
  json["warnings"] = report.warnings;
  return json;
}

std::string describe(const RuntimeInfo& info) {
  std::string cuda;
  if (info.cuda_devices.empty()) {
    cuda = info.torch_has_cuda ? "built with CUDA, no device visible" : "not compiled in";
  } else {
    for (const auto& device : info.cuda_devices) {
      cuda += fmt::format("{}cuda:{} {} ({:.0f} GiB)", cuda.empty() ? "" : ", ", device.index, device.name,
                          device.memory_gib);
    }
  }
  std::string blas = info.blas.name;
  if (!info.blas.library_path.empty()) blas += " (" + info.blas.library_path + ")";
  if (!info.blas.config.empty()) blas += ", " + info.blas.config;
  if (info.blas.threads > 0) blas += fmt::format(", {} threads", info.blas.threads);
  std::string wait_policy = info.openmp_wait_policy.empty() ? "unset (libgomp: spin, then sleep)"
                                                            : "OMP_WAIT_POLICY=" + info.openmp_wait_policy;
  if (info.openmp_wait_policy_defaulted) wait_policy += " (hlip's default; set the variable to change it)";
  if (!info.openblas_coretype.empty()) {
    blas += ", OPENBLAS_CORETYPE=" + info.openblas_coretype;
    if (info.openblas_coretype_defaulted)
      blas += " (hlip's choice for this CPU; set the variable to change it)";
  }
  return fmt::format(
      "hlip      {}\n"
      "LibTorch  {} (attention: {})\n"
      "CUDA      {}\n"
      "BLAS      {}\n"
      "threads   {} intra-op ({}) of {} cores\n"
      "OpenMP    {}\n",
      info.hlip_version, info.torch_version,
      info.fused_attention ? "fused scaled_dot_product_attention" : "at::_scaled_dot_product_attention", cuda,
      blas, info.intra_op_threads, info.parallel_backend, info.hardware_threads, wait_policy);
}

}  // namespace hlip
