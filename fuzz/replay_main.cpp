// Runs files through a fuzz target's LLVMFuzzerTestOneInput without libFuzzer, so any compiler can build the
// targets and CTest can replay the checked-in corpus (fuzz/corpus/<target>/):
//
//   fuzz_npy_replay fuzz/corpus/npy crash-1234
//
// Arguments are files or folders (every regular file inside, in name order). A crash or an escaping
// exception fails the run, as it would under libFuzzer.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<std::string> inputs;
  for (int a = 1; a < argc; ++a) {
    if (fs::is_directory(argv[a])) {
      std::vector<std::string> inside;
      for (const auto& entry : fs::directory_iterator(argv[a])) {
        if (entry.is_regular_file()) inside.push_back(entry.path().string());
      }
      std::sort(inside.begin(), inside.end());
      inputs.insert(inputs.end(), inside.begin(), inside.end());
    } else if (fs::is_regular_file(argv[a])) {
      inputs.emplace_back(argv[a]);
    } else {
      std::fprintf(stderr, "%s: no such file or folder\n", argv[a]);
      return 1;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_FOLDER...: no inputs given\n", argv[0]);
    return 1;
  }
  for (const auto& input : inputs) {
    std::ifstream in(input, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("replayed %zu inputs\n", inputs.size());
  return 0;
}
