#include "hlip/core/runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <malloc.h>
#include <sched.h>
#include <torch/cuda.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <thread>

#include "hlip/core/torch_compat.h"

#ifdef HLIP_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace hlip {
namespace {

std::string resolve_path(const char* path) {
  char resolved[PATH_MAX];
  if (path != nullptr && realpath(path, resolved) != nullptr) return resolved;
  return path != nullptr ? path : "";
}

template <typename Fn>
Fn find_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

}  // namespace

int hardware_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

void configure_threads(int threads) {
  if (threads <= 0) threads = hardware_threads();
  at::set_num_threads(threads);
  // pthread OpenBLAS keeps its own pool, sized from OPENBLAS_NUM_THREADS or the core count.
  using SetThreads = void (*)(int);
  if (auto set_openblas_threads = find_symbol<SetThreads>("openblas_set_num_threads")) {
    set_openblas_threads(threads);
  }
}

bool keep_freed_memory() {
  constexpr int kMaxMmapThreshold = 32 * 1024 * 1024;  // glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64 bit
  const bool threshold = mallopt(M_MMAP_THRESHOLD, kMaxMmapThreshold) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1;
  // Each growth of a heap also takes this much extra. Without it a worker thread's heap grows and shrinks
  // page by page around every large block (measured: `hlip prepare` of 256×256×160 .nii.gz scans spent
  // 1.4 s of 4.4 s in the kernel for 16 scans; 0.5 s with the padding).
  const bool pad = mallopt(M_TOP_PAD, 64 * 1024 * 1024) == 1;
  return threshold && trim && pad;
}

void use_one_thread_in_this_worker() {
  // LibTorch initialises each thread's OpenMP count lazily on its first parallel operation; run that now so
  // it cannot undo the setting below later.
  (void)at::get_num_threads();
  using SetThreads = void (*)(int);
  if (auto set_omp_threads = find_symbol<SetThreads>("omp_set_num_threads")) {
    set_omp_threads(1);  // this thread's OpenMP team size only
  } else {
    at::set_num_threads(1);  // LibTorch's native thread pool: no OpenMP to set per thread
  }
}

BlasInfo blas_info() {
  BlasInfo info;
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info where{};
  if (sgemm != nullptr && dladdr(sgemm, &where) != 0) info.library_path = resolve_path(where.dli_fname);

  using GetConfig = char* (*)();
  using GetThreads = int (*)();
  if (auto get_config = find_symbol<GetConfig>("openblas_get_config")) {
    info.name = "OpenBLAS";
    info.config = trim(get_config());
    if (auto get_threads = find_symbol<GetThreads>("openblas_get_num_threads")) info.threads = get_threads();
    return info;
  }
  const std::string path = lower(info.library_path);
  if (path.empty()) {
    info.name = sgemm == nullptr ? "none linked (LibTorch uses its own kernels)" : "unknown";
  } else if (path.find("mkl") != std::string::npos) {
    info.name = "MKL";
  } else if (path.find("blis") != std::string::npos) {
    info.name = "BLIS";
  } else if (path.find("atlas") != std::string::npos) {
    info.name = "ATLAS";
  } else if (path.find("/blas/libblas") != std::string::npos ||
             path.find("libblas.so") != std::string::npos) {
    info.name = "reference (netlib)";
  } else {
    info.name = "unknown";
  }
  return info;
}

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.hlip_version = HLIP_VERSION_STRING;
  info.torch_version = fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
#ifdef HLIP_WITH_CUDA
  info.torch_has_cuda = true;
#endif
  if (torch::cuda::is_available()) {
    const int count = static_cast<int>(torch::cuda::device_count());
    for (int i = 0; i < count; ++i) {
      CudaDevice device;
      device.index = i;
#ifdef HLIP_WITH_CUDA
      const auto* properties = at::cuda::getDeviceProperties(i);
      device.name = properties->name;
      device.memory_gib = static_cast<double>(properties->totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
#else
      device.name = fmt::format("cuda:{}", i);
#endif
      info.cuda_devices.push_back(device);
    }
  }
  info.blas = blas_info();
  info.intra_op_threads = at::get_num_threads();
  info.hardware_threads = hardware_threads();
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) info.openmp_wait_policy = policy;
  // The marker is inherited by child processes; it only says something while the value is still hlip's.
  info.openmp_wait_policy_defaulted =
      std::getenv("HLIP_SET_OMP_WAIT_POLICY") != nullptr && info.openmp_wait_policy == "PASSIVE";
  if (const char* coretype = std::getenv("OPENBLAS_CORETYPE")) info.openblas_coretype = coretype;
  info.openblas_coretype_defaulted =
      std::getenv("HLIP_SET_OPENBLAS_CORETYPE") != nullptr &&
      (info.openblas_coretype == "SKYLAKEX" || info.openblas_coretype == "HASWELL");

  std::istringstream parallel(at::get_parallel_info());
  for (std::string line; std::getline(parallel, line);) {
    const std::string key = "ATen parallel backend:";
    if (line.rfind(key, 0) == 0) info.parallel_backend = trim(line.substr(key.size()));
  }
  info.fused_attention = HLIP_TORCH_HAS_FUSED_SDPA;
#ifdef HLIP_HAVE_GLOO
  info.gloo = true;
#endif
  return info;
}

}  // namespace hlip
