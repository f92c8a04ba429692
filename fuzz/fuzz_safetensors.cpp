// libFuzzer target: safetensors files (length prefix, JSON header, offsets, tensor copy) through the public
// readers. hlip::Error is the expected way to refuse input; anything else is a finding.

#include <cstddef>
#include <cstdint>

#include "fuzz_input.h"
#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = hlip::fuzz::scratch_file(data, size, ".safetensors");
  try {
    hlip::io::read_safetensors_index(path);
    hlip::io::read_safetensors(path);
  } catch (const hlip::Error&) {
  }
  return 0;
}
