// Linked into every hlip executable (the `hlip` tool, the test and benchmark programs), never into a library.
//
// libgomp's default lets an idle OpenMP thread spin for a while before it sleeps. In hlip a spinning thread
// takes a core from the threads that have work: OpenBLAS, the data-loading workers, or another process.
// `hlip train` on the demo (2 cores, idle machine) took 1.25 s per step with the default and 0.59 s with
// OMP_WAIT_POLICY=PASSIVE (docs/performance.md). libgomp reads the variable once, in its initialiser, which
// runs before main(); setenv() in main() would be too late. So when the variable is unset, the process
// restarts itself with OMP_WAIT_POLICY=PASSIVE (and HLIP_SET_OMP_WAIT_POLICY=1, which `hlip doctor` reports)
// from the executable's .preinit_array: after the dynamic linker has loaded the libraries (about 40 ms for
// LibTorch) and before any library initialiser has run. A value the user set is kept and nothing restarts.

#include <alloca.h>
#include <unistd.h>

#include <cstring>

namespace {

void restart_with_openmp_defaults(int /*argc*/, char** argv, char** envp) {
  int count = 0;
  for (; envp != nullptr && envp[count] != nullptr; ++count) {
    if (std::strncmp(envp[count], "OMP_WAIT_POLICY=", 16) == 0) return;
  }
  // libc is not initialised yet (no getenv/setenv, no malloc): build the environment on the stack.
  auto** environment = static_cast<char**>(alloca(sizeof(char*) * static_cast<size_t>(count + 3)));
  for (int i = 0; i < count; ++i)
    environment[i] = envp[i];
  environment[count] = const_cast<char*>("OMP_WAIT_POLICY=PASSIVE");
  environment[count + 1] = const_cast<char*>("HLIP_SET_OMP_WAIT_POLICY=1");
  environment[count + 2] = nullptr;
  execve("/proc/self/exe", argv, environment);  // returns only on failure: then run on with the default
}

}  // namespace

__attribute__((section(".preinit_array"),
               used)) static void (*const kRestartWithOpenmpDefaults)(int, char**,
                                                                      char**) = restart_with_openmp_defaults;
