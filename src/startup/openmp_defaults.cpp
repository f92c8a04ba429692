// Linked into every hlip executable (the `hlip` tool, the test and benchmark programs), never into a library.
//
// Two run-time defaults that must be in the environment before the libraries initialise, set only where the
// user has not set them:
//
// - OMP_WAIT_POLICY=PASSIVE. libgomp's default lets an idle OpenMP thread spin for a while before it sleeps;
//   in hlip a spinning thread takes a core from the threads that have work (OpenBLAS, the data-loading
//   workers, another process). `hlip train` on the demo (2 cores, idle machine) took 1.25 s per step with the
//   default and 0.59 s with PASSIVE (docs/performance.md).
// - OPENBLAS_CORETYPE from the CPU's instruction sets (SKYLAKEX with AVX-512, HASWELL with AVX2 and FMA).
//   OpenBLAS's DYNAMIC_ARCH picks its kernels from the CPU model and falls back to the oldest (Prescott) for
//   a model it does not know: on the development VM's Xeon ("Intel(R) Xeon(R) Processor", AVX-512) Debian's
//   OpenBLAS 0.3.21 ran fp32 GEMM at 33 GFLOP/s instead of 221, and fp32 training of the demo model at
//   1.67 s per step instead of 0.84.
//
// libgomp and OpenBLAS read their variables once, in initialisers that run before main(); setenv() in main()
// would be too late. So the process restarts itself with the missing variables (and HLIP_SET_<NAME>=1
// markers, which `hlip doctor` reports) from the executable's .preinit_array: after the dynamic linker has
// loaded the libraries (about 40 ms for LibTorch) and before any library initialiser has run. Values the user
// set are kept; when nothing is missing nothing restarts.

#include <alloca.h>
#include <unistd.h>

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace {

// The OpenBLAS core type this CPU can run at full width, or nullptr (not x86-64, or no AVX2). Uses only the
// cpuid and xgetbv instructions: libc is not initialised yet.
const char* openblas_coretype_for_this_cpu() {
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return nullptr;
  const bool osxsave = (c & (1u << 27)) != 0, fma = (c & (1u << 12)) != 0, avx = (c & (1u << 28)) != 0;
  if (!osxsave || !avx) return nullptr;
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  const bool os_avx = (xcr0_low & 0x6u) == 0x6u;       // SSE and AVX state saved by the OS
  const bool os_avx512 = (xcr0_low & 0xE6u) == 0xE6u;  // and the opmask and upper ZMM state
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return nullptr;
  const bool avx2 = (b & (1u << 5)) != 0;
  const bool avx512 = (b & (1u << 16)) != 0 && (b & (1u << 17)) != 0 && (b & (1u << 30)) != 0 &&
                      (b & (1u << 31)) != 0;  // F, DQ, BW, VL: what OpenBLAS's SkylakeX kernels use
  if (os_avx512 && avx512 && fma) return "SKYLAKEX";
  if (os_avx && avx2 && fma) return "HASWELL";
#endif
  return nullptr;
}

bool has_variable(char** envp, int count, const char* prefix) {
  const size_t length = std::strlen(prefix);
  for (int i = 0; i < count; ++i) {
    if (std::strncmp(envp[i], prefix, length) == 0) return true;
  }
  return false;
}

void restart_with_runtime_defaults(int /*argc*/, char** argv, char** envp) {
  int count = 0;
  while (envp != nullptr && envp[count] != nullptr)
    ++count;
  const bool set_wait_policy = !has_variable(envp, count, "OMP_WAIT_POLICY=");
  const char* coretype =
      has_variable(envp, count, "OPENBLAS_CORETYPE=") ? nullptr : openblas_coretype_for_this_cpu();
  if (!set_wait_policy && coretype == nullptr) return;
  // No getenv/setenv and no malloc yet: build the environment on the stack.
  auto** environment = static_cast<char**>(alloca(sizeof(char*) * static_cast<size_t>(count + 5)));
  int n = 0;
  for (int i = 0; i < count; ++i)
    environment[n++] = envp[i];
  if (set_wait_policy) {
    environment[n++] = const_cast<char*>("OMP_WAIT_POLICY=PASSIVE");
    environment[n++] = const_cast<char*>("HLIP_SET_OMP_WAIT_POLICY=1");
  }
  if (coretype != nullptr) {
    // The two possible values as whole strings: nothing to concatenate without libc.
    environment[n++] = const_cast<char*>(
        std::strcmp(coretype, "SKYLAKEX") == 0 ? "OPENBLAS_CORETYPE=SKYLAKEX" : "OPENBLAS_CORETYPE=HASWELL");
    environment[n++] = const_cast<char*>("HLIP_SET_OPENBLAS_CORETYPE=1");
  }
  environment[n] = nullptr;
  execve("/proc/self/exe", argv, environment);  // returns only on failure: then run on with the defaults
}

}  // namespace

__attribute__((section(".preinit_array"), used)) static void (*const kRestartWithRuntimeDefaults)(
    int, char**, char**) = restart_with_runtime_defaults;
