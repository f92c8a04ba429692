// Matrix-product rates of the CPU back-end (BLAS for fp32, oneDNN for bf16): the ceiling every model
// benchmark in this folder is reported against.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "hlip/core/runtime.h"

namespace {

void gemm(benchmark::State& state, at::ScalarType dtype) {
  const int64_t n = state.range(0);
  at::manual_seed(0);
  const auto a = at::randn({n, n}).to(dtype);
  const auto b = at::randn({n, n}).to(dtype);
  auto c = at::empty({n, n}, a.options());
  for (auto _ : state) {
    at::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_GemmFp32(benchmark::State& state) {
  gemm(state, at::kFloat);
}
void BM_GemmBf16(benchmark::State& state) {
  gemm(state, at::kBFloat16);
}

// Wall-clock rates: the work runs on all of LibTorch's threads, not only the one the CPU timer watches.
BENCHMARK(BM_GemmFp32)->Arg(256)->Arg(768)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GemmBf16)->Arg(256)->Arg(768)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  hlip::configure_threads(0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
