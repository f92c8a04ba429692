// Preprocessing throughput: a 256×256×160 int16-valued brain MRI (float32 voxels in the NIfTI reader's
// Fortran layout, LPS-oriented like a scanner export) through preprocess_volume with the mri-brain preset
// (48×224×224), on one thread. Compare with bench/baseline_preprocess.py (nibabel + scipy.ndimage).
//
//   build/bin/hlip_bench_preprocess --benchmark_counters_tabular=true
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "hlip/io/volume.h"
#include "hlip/preprocess/intensity.h"
#include "hlip/preprocess/orient.h"
#include "hlip/preprocess/preset.h"
#include "hlip/preprocess/resample.h"

namespace {

using namespace hlip::preprocess;

// An ellipsoid "head" of tissue-like int16 intensities with noise, on a zero background; voxel axes
// i → left, j → posterior, k → superior (LPS), 0.9375 × 0.9375 × 1.2 mm.
const hlip::io::Volume& mri_volume() {
  static const hlip::io::Volume volume = [] {
    at::manual_seed(0);
    const int64_t ni = 256, nj = 256, nk = 160;
    const at::Tensor i = at::linspace(-1, 1, ni).view({ni, 1, 1});
    const at::Tensor j = at::linspace(-1, 1, nj).view({1, nj, 1});
    const at::Tensor k = at::linspace(-1, 1, nk).view({1, 1, nk});
    const at::Tensor r = (i / 0.8).square() + (j / 0.9).square() + (k / 0.85).square();
    at::Tensor values = at::where(r < 1, 600 + 400 * at::cos(6 * r), at::zeros_like(r));
    values = (values + 40 * at::randn({ni, nj, nk}) * (r < 1)).clamp_min(0).round().to(at::kShort);
    hlip::io::Volume v;
    // The reader's layout: float32 [I, J, K] with Fortran strides.
    v.data = values.to(at::kFloat).permute({2, 1, 0}).contiguous().permute({2, 1, 0});
    v.dims = {ni, nj, nk};
    v.spacing_mm = {0.9375, 0.9375, 1.2};
    v.affine = hlip::io::identity_affine();
    v.affine[0][0] = -0.9375;
    v.affine[1][1] = -0.9375;
    v.affine[2][2] = 1.2;
    v.stored_dtype = at::kShort;
    v.source_path = "synthetic_t1.nii.gz";
    return v;
  }();
  return volume;
}

void BM_PreprocessMriBrain(benchmark::State& state) {
  const hlip::io::Volume& volume = mri_volume();
  const Preset preset = preset_by_name("mri-brain");
  for (auto _ : state) {
    auto scans = preprocess_volume(volume, preset);
    benchmark::DoNotOptimize(scans[0].data.data_ptr());
  }
  state.counters["scans/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The same result through the public step-by-step functions (full canonical copy, full [D, H, W] copy,
// intensity on every voxel, then the loader geometry): what the fused chain saves.
void BM_PreprocessMriBrainStepByStep(benchmark::State& state) {
  const hlip::io::Volume& volume = mri_volume();
  for (auto _ : state) {
    const OrientedScan scan = to_hlip_axes(to_closest_canonical(volume));
    const at::Tensor out = square_resize_crop(percentile_normalize(scan.data), {48, 224, 224}, 256,
                                              SquareResize::kBilinearNearestExact);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.counters["scans/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The exact 0.5 / 99.5 % values over all 10.5 M voxels: the part of the chain that must see every voxel.
void BM_PercentileRange(benchmark::State& state) {
  const hlip::io::Volume& volume = mri_volume();
  for (auto _ : state) {
    const IntensityRange range = percentile_range(volume.data);
    benchmark::DoNotOptimize(range.low);
  }
  state.SetItemsProcessed(state.iterations() * volume.data.numel());
}

BENCHMARK(BM_PreprocessMriBrain)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PreprocessMriBrainStepByStep)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PercentileRange)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);  // rates per core
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
