#pragma once
// Shared helpers of the vision tests: reference files under tests/data/vision and tolerance checks.

#include <cmath>
#include <map>
#include <sstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "hlip/io/safetensors.h"

namespace hlip::model::testing {

inline std::string vision_data_path(const std::string& relative) {
  return std::string(HLIP_TEST_DATA_DIR) + "/vision/" + relative;
}

inline std::map<std::string, at::Tensor> read_vision_data(const std::string& relative) {
  return io::read_safetensors(vision_data_path(relative)).tensors;
}

// |actual - expected| <= atol + rtol * |expected| everywhere, with the worst element in the message.
inline ::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected, double atol,
                                            double rtol) {
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream out;
    out << "shape " << actual.sizes() << " != expected " << expected.sizes();
    return ::testing::AssertionFailure() << out.str();
  }
  const at::Tensor a = actual.detach().to(at::kDouble), e = expected.detach().to(at::kDouble);
  const at::Tensor excess = (a - e).abs() - (atol + rtol * e.abs());
  const double worst = excess.max().item<double>();
  if (worst <= 0.0) return ::testing::AssertionSuccess();
  const int64_t at_index = excess.reshape({-1}).argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "max |diff| " << (a - e).abs().max().item<double>() << ", element "
                                       << at_index << ": " << a.reshape({-1})[at_index].item<double>()
                                       << " vs expected " << e.reshape({-1})[at_index].item<double>();
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(at::kDouble) - b.detach().to(at::kDouble)).abs().max().item<double>();
}

}  // namespace hlip::model::testing
