#pragma once
// What hlip runs on: LibTorch build, BLAS library, threads and accelerators.
//
//   hlip::configure_threads(0);            // all cores, for LibTorch and OpenBLAS alike
//   auto info = hlip::runtime_info();      // for `hlip version` and run folders

#include <string>
#include <vector>

namespace hlip {

struct BlasInfo {
  std::string library_path;  // the shared object that provides sgemm_, with links resolved
  std::string name;          // "OpenBLAS", "reference (netlib)", "MKL", "BLIS", ... or "unknown"
  std::string config;        // OpenBLAS's own build description when available
  int threads = 0;           // OpenBLAS's thread count, 0 when the library does not say
};

struct CudaDevice {
  int index = 0;
  std::string name;
  double memory_gib = 0.0;
};

struct RuntimeInfo {
  std::string hlip_version;
  std::string torch_version;
  bool torch_has_cuda = false;  // built with CUDA (the LibTorch may still see no device)
  std::vector<CudaDevice> cuda_devices;
  BlasInfo blas;
  int intra_op_threads = 0;
  int hardware_threads = 0;
  std::string parallel_backend;  // "OpenMP", "native", ...
  // OMP_WAIT_POLICY as this process started with it ("" when unset), and whether hlip's start-up code set
  // it (to PASSIVE, because the variable was unset; src/startup/openmp_defaults.cpp).
  std::string openmp_wait_policy;
  bool openmp_wait_policy_defaulted = false;
  // OPENBLAS_CORETYPE as this process started with it ("" when unset), and whether hlip's start-up code set
  // it from the CPU's instruction sets (SKYLAKEX or HASWELL, because the variable was unset).
  std::string openblas_coretype;
  bool openblas_coretype_defaulted = false;
  bool fused_attention = false;  // at::scaled_dot_product_attention with fused kernels (LibTorch >= 2.0)
  bool gloo = false;             // c10d Gloo compiled in
};

// Number of logical CPUs this process may use (respects affinity masks and cgroup CPU sets).
int hardware_threads();

// Sets LibTorch's intra-op threads and OpenBLAS's threads to `threads` (0 = all usable cores).
// LibTorch 1.13 defaults to half the cores and pthread OpenBLAS ignores LibTorch's setting, so hlip sets
// both.
void configure_threads(int threads);

// Makes glibc's allocator keep freed memory for reuse instead of returning it to the kernel: blocks up to
// 32 MiB (glibc's maximum) come from the heap rather than fresh mappings, the heap is not trimmed, and it
// grows 64 MiB at a time (which is what keeps a worker thread's heap from shrinking and regrowing). On
// the VMs hlip was measured on, faulting in a fresh 4 KiB page costs about 12 µs, so a training step that
// allocated its activations anew each time spent most of its time in the kernel (docs/performance.md).
// Returns false when glibc refused a setting.
bool keep_freed_memory();

// For a background worker thread (data loading, generation): its own LibTorch operations run on one
// thread, leaving the cores to the main thread, and nothing else changes. LibTorch's at::set_num_threads
// would not do: it also sets the count that every thread started later initialises itself with, so a worker
// calling it would quietly make the next training thread single-threaded.
void use_one_thread_in_this_worker();

BlasInfo blas_info();
RuntimeInfo runtime_info();

}  // namespace hlip
