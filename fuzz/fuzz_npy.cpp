// libFuzzer target: the .npy header parser on bytes, then read_npy on the same bytes as a file.
// hlip::Error is the expected way to refuse input; anything else is a finding.

#include <cstddef>
#include <cstdint>

#include "fuzz_input.h"
#include "hlip/core/error.h"
#include "hlip/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hlip::io::decode_npy_header(data, size, "fuzz.npy");
  } catch (const hlip::Error&) {
  }
  const std::string path = hlip::fuzz::scratch_file(data, size, ".npy");
  try {
    hlip::io::read_npy(path);
  } catch (const hlip::Error&) {
  }
  return 0;
}
