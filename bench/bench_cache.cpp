// Loading prepared scans: the raw cache read (one thread) and whole training
// batches from the loader (background workers, uint8 → normalised float32). The
// goal of issue 3: at least 1,000 scans of 48×224×224 per second on 2 cores.
// The files sit in the page cache after the first pass, as they do during
// training on a machine whose memory holds the cache.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "hlip/core/runtime.h"
#include "hlip/data/cache.h"
#include "hlip/data/dataset.h"
#include "hlip/data/loader.h"

namespace {

namespace fs = std::filesystem;
constexpr int kStudies = 32;
constexpr int kScansPerStudy = 4;

// A cache of kStudies × kScansPerStudy random 48×224×224 uint8 scans in the
// temp folder, made once.
const std::string& cache_dir() {
  static const std::string dir = [] {
    const fs::path root = fs::temp_directory_path() / fmt::format("hlip_bench_cache_{}", ::getpid());
    fs::create_directories(root / "scans");
    std::string manifest;
    for (int s = 0; s < kStudies; ++s) {
      std::string scans;
      for (int k = 0; k < kScansPerStudy; ++k) {
        const std::string relative = fmt::format("scans/{}_{}.npy", s, k);
        hlip::data::write_cached_scan((root / relative).string(), at::rand({48, 224, 224}),
                                      hlip::data::CacheDtype::kUint8);
        scans += fmt::format("{}\"{}\"", k ? ", " : "", relative);
      }
      manifest += fmt::format(
          "{{\"study\": \"s{}\", \"modality\": \"mri\", \"scans\": "
          "[{}], \"report\": [\"A finding.\"]}}\n",
          s, scans);
    }
    std::ofstream(root / "studies.jsonl") << manifest;
    std::ofstream(root / "cache.json") << "{\"format\": \"hlip-cache\", \"version\": 1}\n";
    return root.string();
  }();
  return dir;
}

void BM_ReadCachedScan(benchmark::State& state) {
  const std::string root = cache_dir();
  int64_t i = 0;
  for (auto _ : state) {
    const auto path =
        fmt::format("{}/scans/{}_{}.npy", root, (i / kScansPerStudy) % kStudies, i % kScansPerStudy);
    benchmark::DoNotOptimize(hlip::data::read_cached_scan(path).data_ptr());
    ++i;
  }
  state.counters["scans/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Training batches of 8 studies × 8 scans (each study's 4 scans repeated, as HLIP does), built by
// `workers` background threads while the calling thread only takes them. The loader lives across Google
// Benchmark's warm-up and measurement runs, so the figure is the steady state of a long training run, after
// its batch buffers have been faulted in once.
std::map<int, std::unique_ptr<hlip::data::StudyLoader>>& loaders() {
  static std::map<int, std::unique_ptr<hlip::data::StudyLoader>> by_workers;
  return by_workers;
}

void BM_LoaderBatches(benchmark::State& state) {
  static hlip::data::StudyDataset dataset({{cache_dir()}}, "");
  const int workers = static_cast<int>(state.range(0));
  auto& loader = loaders()[workers];
  if (!loader) {
    hlip::data::LoaderOptions options;
    options.batch_size = 8;
    options.num_scans = 8;
    options.workers = workers;
    loader = std::make_unique<hlip::data::StudyLoader>(dataset, options);
    loader->start(0);
  }
  static int64_t epoch = 0;
  int64_t scans = 0;
  for (auto _ : state) {
    auto batch = loader->next();
    if (!batch) {
      loader->start(++epoch);
      batch = loader->next();
    }
    scans += batch->image.size(0) * batch->image.size(1);
    benchmark::DoNotOptimize(batch->image.data_ptr());
  }
  state.counters["scans/s"] = benchmark::Counter(static_cast<double>(scans), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_ReadCachedScan)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoaderBatches)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->MinWarmUpTime(5)
    ->MinTime(10)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  hlip::configure_threads(0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  loaders().clear();  // stop the workers before their files go
  std::error_code ignored;
  fs::remove_all(cache_dir(), ignored);
  return 0;
}
