#pragma once
// safetensors, hlip's weights format (never pickles). A file is an 8-byte little-endian header length N,
// N bytes of JSON ({"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...} plus an
// optional "__metadata__" string map), then the tensors' bytes, packed back to back in C order.
//
//   auto file = hlip::io::read_safetensors("model.safetensors");
//   const at::Tensor& w = file.tensors.at("visual.trunk.patch_embed.proj.weight");
//   hlip::io::write_safetensors("copy.safetensors", file.tensors, {{"format", "pt"}});
//
// Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. Every malformed file raises
// hlip::Error naming the file, the tensor and the offending value.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hlip::io {

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;  // contiguous CPU tensors that own their memory
  std::map<std::string, std::string> metadata;
};

// Where one tensor lives in a file, as its header says.
struct SafetensorsTensorInfo {
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data buffer that follows the header
  uint64_t end = 0;
};

// Reads and validates the whole file. The data is copied out of a read-only mapping, so the tensors are
// aligned, writable and independent of the file (which may be replaced or deleted afterwards).
SafetensorsFile read_safetensors(const std::string& path);

// Reads and validates the header only (the tensor data is not touched).
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);
std::map<std::string, SafetensorsTensorInfo> read_safetensors_index(const std::string& path);

// Writes tensors in the order of the reference writer (descending dtype alignment, then name), so the bytes
// equal those of `safetensors.torch.save_file` for the same tensors and metadata. Non-contiguous and
// non-CPU tensors are written as their contiguous CPU copies. The file appears atomically: the bytes go to
// `path.tmp-XXXXXX`, which is fsynced and renamed over `path`; a failure never leaves a partial `path`.
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace hlip::io
