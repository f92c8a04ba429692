// Time, memory and FLOP rate of HLIP's hierarchical vision tower (scan + study attention, the published "h2"
// layout) against the same tower with every block at study level (full attention over all scans of a study),
// for 1, 2, 4, 8 and 16 scans per study, forward (evaluation, no graph) and forward + backward (training).
//
//   build/bin/hlip_bench_vision                                   # reduced model, 1-2 minutes on 2 cores
//   HLIP_BENCH_LARGE=1 build/bin/hlip_bench_vision --benchmark_filter='fwd/.*/scans:[1248]$'   # ViT-B
//
// Default ("reduced"): ViT-B's depth and level layout at width 192 / 3 heads on 12×112×112 scans (patch
// 6×16×16: 98 tokens per scan; 16 scans = 1568 tokens, one published scan). HLIP_BENCH_LARGE=1: ViT-B (768 /
// 12 heads) on 48×224×224 scans (1568 tokens per scan, as published). Cases whose estimated memory exceeds
// what the machine has are skipped with the estimate.
//
// Memory is measured two ways (counters):
//   tensor_MiB  the peak of live LibTorch CPU tensor bytes during one iteration above those alive before it
//               (weights excluded; activations, saved tensors, gradients included), counted by an allocator
//               that wraps LibTorch's CPU allocator. Exact and independent of malloc's caching, but blind to
//               memory that BLAS / oneDNN allocate for themselves.
//   rss_MiB     the process's resident-set high-water mark during the iteration (VmHWM, reset through
//               /proc/self/clear_refs before it): everything the machine had to hold, libraries, weights and
//               malloc's caches included, so it depends on what ran before in the same process.
// GFLOP is the model's analytic count (matrix products and attention, backward = 2× forward); gemm_frac is
// the achieved rate over `hlip doctor`'s fp32 GEMM rate measured at start-up (measure_gemm_gflops, n = 1024).
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "hlip/core/doctor.h"
#include "hlip/core/runtime.h"
#include "hlip/model/vision.h"

namespace {

using hlip::model::AttentionLevel;
using hlip::model::VisionOptions;

// LibTorch's CPU allocation (c10::alloc_cpu / free_cpu, as the default allocator) with a count of live tensor
// bytes and their peak. The data pointer is its own deleter context, as raw_allocate() (used by oneDNN
// kernels) requires, so sizes are kept in a table.
class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) const override {
    void* data = c10::alloc_cpu(bytes);
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      sizes_[data] = bytes;
      live_ += static_cast<int64_t>(bytes);
      peak_ = std::max(peak_, live_);
    }
    return {data, data, &CountingAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CountingAllocator::release; }

  static int64_t live() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return live_;
  }
  static int64_t peak() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return peak_;
  }
  static void reset_peak() {
    const std::lock_guard<std::mutex> lock(mutex_);
    peak_ = live_;
  }

 private:
  static void release(void* data) {
    if (data == nullptr) return;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto it = sizes_.find(data);
      if (it != sizes_.end()) {
        live_ -= static_cast<int64_t>(it->second);
        sizes_.erase(it);
      }
    }
    c10::free_cpu(data);
  }

  static inline std::mutex mutex_;
  static inline std::unordered_map<void*, size_t> sizes_;
  static inline int64_t live_ = 0;
  static inline int64_t peak_ = 0;
};

// kB field of /proc/self/status ("VmHWM", "VmRSS"), in bytes.
int64_t proc_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1) * 1024;
  }
  return 0;
}

int64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::atoll(line.c_str() + 13) * 1024;
  }
  return 0;
}

void reset_rss_peak() {
  std::ofstream("/proc/self/clear_refs") << "5";  // Linux >= 4.0: VmHWM := VmRSS
}

double g_gemm_gflops = 0;
bool g_large = false;

enum class Layout { kScanStudy, kStudy };

VisionOptions options_for(Layout layout) {
  VisionOptions o = hlip::model::vision_options_for("vit_base_scan_study_dualdinotxt1568");
  if (!g_large) {
    o.width = 192;
    o.num_heads = 3;
    o.img_size = {12, 112, 112};
  }
  o.drop_path = 0.0;  // the same work in every iteration
  if (layout == Layout::kStudy)
    o.attention_levels.assign(static_cast<size_t>(o.depth), AttentionLevel::kStudy);
  return o;
}

struct Cost {
  double forward_flops = 0;
  double attention_bytes = 0;  // attention probabilities of all blocks (kept for backward)
  double largest_block_attention_bytes = 0;
};

// Matrix products: qkv 3C², proj C², MLP 8C² per token (×2 FLOPs); attention q·kᵀ and p·v: 2·2·T·C per token
// for windows of T tokens; patch embedding: 2·C·pd·ph·pw per token.
Cost cost(const VisionOptions& o, int64_t scans) {
  const auto [d, h, w] = o.grid_size();
  const double c = static_cast<double>(o.width), p = static_cast<double>(o.num_prefix_tokens());
  const double per_scan = static_cast<double>(d * h * w);
  const double kernel = static_cast<double>(o.patch_size[0] * o.patch_size[1] * o.patch_size[2]);
  Cost cost;
  cost.forward_flops = 2 * c * kernel * per_scan * static_cast<double>(scans);
  for (const AttentionLevel level : o.attention_levels) {
    const double windows = level == AttentionLevel::kStudy  ? 1
                           : level == AttentionLevel::kScan ? static_cast<double>(scans)
                                                            : static_cast<double>(scans * d);
    const double tokens_per_window = p + static_cast<double>(scans) * per_scan / windows;
    const double tokens = windows * tokens_per_window;
    cost.forward_flops += 24 * c * c * tokens + 4 * tokens_per_window * c * tokens;
    const double attention =
        windows * static_cast<double>(o.num_heads) * tokens_per_window * tokens_per_window * 4;
    cost.attention_bytes += attention;
    cost.largest_block_attention_bytes = std::max(cost.largest_block_attention_bytes, attention);
  }
  return cost;
}

void run(benchmark::State& state, Layout layout, bool backward) {
  const int64_t scans = state.range(0);
  const VisionOptions options = options_for(layout);
  const Cost model_cost = cost(options, scans);
  const auto [d, h, w] = options.grid_size();
  const double tokens = static_cast<double>(scans * d * h * w);
  // Rough need: a few copies of the largest attention matrix (scores, probabilities, their gradients) and,
  // for training, every block's probabilities and ~40 token-by-width activations per block.
  const double activations =
      40.0 * tokens * static_cast<double>(options.width) * 4 * static_cast<double>(options.depth);
  const double need =
      backward
          ? model_cost.attention_bytes * 2 + model_cost.largest_block_attention_bytes * 2 + activations
          : model_cost.largest_block_attention_bytes * 3 + activations / static_cast<double>(options.depth);
  const double available = static_cast<double>(mem_available_bytes());
  if (need > 0.8 * available) {
    state.SkipWithError(
        fmt::format("needs about {:.0f} GiB, {:.0f} GiB available", need / (1 << 30), available / (1 << 30))
            .c_str());
    for (auto _ : state) {
    }
    return;
  }

  at::manual_seed(0);
  hlip::model::VisionTower model(options);
  const std::array<int64_t, 3> img = options.img_size;
  const at::Tensor image = at::randn({1, scans, 1, img[0], img[1], img[2]});
  if (backward) {
    model->train();
  } else {
    model->eval();
  }
  // One single-scan pass first, so one-time costs (thread pool start, oneDNN kernel creation) stay out of the
  // timed iterations.
  {
    const at::Tensor warm_up = image.narrow(1, 0, 1);
    if (backward) {
      model->forward(warm_up).sum().backward();
    } else {
      at::NoGradGuard no_grad;
      model->forward(warm_up);
    }
  }
  int64_t tensor_peak = 0, rss_peak = 0;
  for (auto _ : state) {
    for (auto& p : model->parameters())
      p.mutable_grad() = at::Tensor();
    const int64_t live_before = CountingAllocator::live();
    CountingAllocator::reset_peak();
    reset_rss_peak();
    if (backward) {
      model->forward(image).sum().backward();
    } else {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(model->forward(image).data_ptr());
    }
    tensor_peak = std::max(tensor_peak, CountingAllocator::peak() - live_before);
    rss_peak = std::max(rss_peak, proc_status_bytes("VmHWM"));
  }
  const double flops = model_cost.forward_flops * (backward ? 3 : 1);
  state.counters["tokens"] = tokens;
  state.counters["GFLOP"] = flops / 1e9;
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["tensor_MiB"] = static_cast<double>(tensor_peak) / (1 << 20);
  state.counters["rss_MiB"] = static_cast<double>(rss_peak) / (1 << 20);
  if (g_gemm_gflops > 0) {
    // flops / peak per iteration, as a rate: (achieved FLOP/s) / (GEMM FLOP/s).
    state.counters["gemm_frac"] =
        benchmark::Counter(flops / (g_gemm_gflops * 1e9), benchmark::Counter::kIsIterationInvariantRate);
  }
}

}  // namespace

int main(int argc, char** argv) {
  hlip::configure_threads(0);
  static CountingAllocator counting;
  c10::SetCPUAllocator(&counting, /*priority=*/1);
  const char* large = std::getenv("HLIP_BENCH_LARGE");
  g_large = large != nullptr && std::string(large) == "1";
  g_gemm_gflops = hlip::measure_gemm_gflops(at::kFloat, 1024, 0.4);
  benchmark::AddCustomContext("model", g_large ? "ViT-B 768/12/12, 48x224x224 scans, patch 6x16x16"
                                               : "reduced: 192/12/3, 12x112x112 scans, patch 6x16x16");
  benchmark::AddCustomContext("gemm_fp32_gflops", fmt::format("{:.1f}", g_gemm_gflops));

  for (const bool backward : {false, true}) {
    for (const Layout layout : {Layout::kScanStudy, Layout::kStudy}) {
      const std::string name = fmt::format("{}/{}", backward ? "fwd_bwd" : "fwd",
                                           layout == Layout::kScanStudy ? "scan_study" : "study");
      benchmark::RegisterBenchmark(name.c_str(), run, layout, backward)
          ->ArgName("scans")
          ->Arg(1)
          ->Arg(2)
          ->Arg(4)
          ->Arg(8)
          ->Arg(16)
          ->MinTime(0.1)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
