#pragma once
// The checked-in reference data of tests/ref/make_preprocess_ref.py (nibabel, scipy, numpy, torch), and
// comparison helpers shared by the preprocess tests.

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hlip/io/safetensors.h"
#include "hlip/io/volume.h"

namespace hlip::test {

inline const std::string kPreprocessDir = std::string(HLIP_TEST_DATA_DIR) + "/preprocess";

inline const nlohmann::json& preprocess_reference() {
  static const nlohmann::json doc = [] {
    std::ifstream in(kPreprocessDir + "/reference.json");
    if (!in) throw std::runtime_error("cannot open " + kPreprocessDir + "/reference.json");
    return nlohmann::json::parse(in);
  }();
  return doc;
}

// A reference array by name (float32, C order).
inline at::Tensor reference_array(const std::string& name) {
  static const io::SafetensorsFile file = io::read_safetensors(kPreprocessDir + "/reference.safetensors");
  const auto it = file.tensors.find(name);
  if (it == file.tensors.end()) throw std::runtime_error("no reference array " + name);
  return it->second;
}

inline io::Affine affine_from_json(const nlohmann::json& rows) {
  io::Affine a{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      a[r][c] = rows.at(r).at(c).get<double>();
  }
  return a;
}

inline std::vector<int64_t> sizes_of(const at::Tensor& t) {
  return t.sizes().vec();
}

// FNV-1a 64 over the float32 values in C order, as hex (the generator's fnv1a64).
inline std::string fnv1a64_hex(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  uint64_t h = 0xCBF29CE484222325ULL;
  for (int64_t i = 0; i < c.numel() * 4; ++i) {
    h ^= p[i];
    h *= 0x100000001B3ULL;
  }
  std::ostringstream out;
  out << std::hex;
  out.width(16);
  out.fill('0');
  out << h;
  return out.str();
}

// Largest |actual − expected|, after checking the shapes agree (+inf when they do not).
inline double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) {
    ADD_FAILURE() << "shape " << actual.sizes() << " != expected " << expected.sizes();
    return INFINITY;
  }
  if (actual.numel() == 0) return 0.0;
  return (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
}

// A volume as the NIfTI reader returns one: data [I, J, K] with Fortran strides over `values` (C order).
inline io::Volume fortran_volume(const at::Tensor& c_order_values, const std::array<double, 3>& spacing,
                                 const io::Affine& affine, const std::string& path = "synthetic.nii") {
  io::Volume v;
  v.data = c_order_values.permute({2, 1, 0}).contiguous().permute({2, 1, 0});
  for (int a = 0; a < 3; ++a)
    v.dims[a] = v.data.size(a);
  v.spacing_mm = spacing;
  v.affine = affine;
  v.source_path = path;
  return v;
}

}  // namespace hlip::test
