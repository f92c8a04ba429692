// libFuzzer target: NIfTI-1/2 header decoding from bytes, then the whole reader (gzip detection, header,
// voxel reading, scaling) on the same bytes as a file. hlip::Error is the expected way to refuse input;
// anything else (another exception, a crash, a sanitizer report) is a finding.

#include <cstddef>
#include <cstdint>

#include "fuzz_input.h"
#include "hlip/core/error.h"
#include "hlip/io/nifti.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hlip::io::decode_nifti_header(data, size, "fuzz.nii");
  } catch (const hlip::Error&) {
  }
  const std::string path = hlip::fuzz::scratch_file(data, size, ".nii");
  try {
    hlip::io::NiftiReadOptions options;
    options.require_finite = true;
    hlip::io::read_nifti(path, options);
  } catch (const hlip::Error&) {
  }
  return 0;
}
