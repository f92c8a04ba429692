// Percentiles against numpy.percentile, MRI normalisation against HLIP's clip_by_percentile, CT windows
// against HLIP's torch expressions (tests/ref/make_preprocess_ref.py), plus a sort-based check of the
// selection on large inputs.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/preprocess/intensity.h"
#include "reference_data.h"
#include "temp_dir.h"

namespace hlip::preprocess {
namespace {

using nlohmann::json;
using test::max_abs_diff;
using test::preprocess_reference;
using test::reference_array;

// numpy's "linear" percentile written out over a sorted copy: the reference for large inputs.
double sorted_percentile(std::vector<float> v, double q) {
  std::sort(v.begin(), v.end());
  const double index = static_cast<double>(v.size() - 1) * (q / 100.0);
  const auto lo = static_cast<size_t>(std::floor(index));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  const double t = index - static_cast<double>(lo), a = v[lo], b = v[hi];
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

using test::error_message;

TEST(Intensity, PercentilesMatchNumpy) {
  const json& cases = preprocess_reference()["intensity"]["percentiles"];
  ASSERT_EQ(cases.size(), 6u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["values"].get<std::string>());
    const at::Tensor values = reference_array(c["values"]);
    const auto q = c["q"].get<std::vector<double>>();
    const std::vector<double> got = percentiles(values, q);
    for (size_t i = 0; i < q.size(); ++i) {
      const double e = c["expected"][i].get<double>();
      EXPECT_NEAR(got[i], e, 1e-12 * std::max(1.0, std::abs(e))) << "q = " << q[i];
    }
    // Shape and memory layout do not matter: a strided (non-dense) view of the same values.
    const at::Tensor strided = at::stack({values, values}, 1).select(1, 0).reshape({1, -1});
    EXPECT_EQ(percentile(strided, 25.0), percentile(values, 25.0));
  }
}

TEST(Intensity, PercentileNormalizeIsHlipsClipByPercentile) {
  for (const json& c : preprocess_reference()["intensity"]["percentiles"]) {
    EXPECT_LE(
        max_abs_diff(percentile_normalize(reference_array(c["values"])), reference_array(c["normalized"])),
        1e-7)
        << c["values"];
  }
}

TEST(Intensity, SelectionMatchesSortOnLargeInputs) {
  at::manual_seed(3);
  const std::vector<at::Tensor> inputs = {
      at::randn({200000}),                                                           // distinct values
      at::randint(-1000, 4000, {300000}).to(at::kFloat),                             // int16-like, many ties
      at::cat({at::zeros({250000}), at::randint(1, 3000, {60000}).to(at::kFloat)}),  // background-heavy
      at::cat({at::randn({100000}) * 1e-3f, at::full({10}, 1e7f)}),                  // one crowded bin
  };
  for (const at::Tensor& x : inputs) {
    const std::vector<float> v(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    for (double q : {0.0, 0.5, 1.0, 50.0, 99.5, 100.0}) {
      EXPECT_DOUBLE_EQ(percentile(x, q), sorted_percentile(v, q)) << "q = " << q << " n = " << x.numel();
    }
  }
}

// Integer voxels are counted as they are (no float copy); the percentiles are those of their float values.
TEST(Intensity, IntegerPercentilesEqualTheFloatOnes) {
  at::manual_seed(8);
  const std::vector<at::Tensor> inputs = {
      at::randint(0, 256, {40000}).to(at::kByte),
      at::randint(-128, 128, {40000}).to(at::kChar),
      at::cat({at::zeros({60000}), at::randint(-1024, 3000, {9999})}).to(at::kShort),  // background-heavy
      at::randint(0, 65536, {50000}).to(at::kInt),                                     // uint16 voxels
      at::randint(-5000000, 5000000, {30000}).to(at::kInt),  // too wide for a count table: read as float
      at::full({7}, 42).to(at::kShort),
  };
  for (const at::Tensor& x : inputs) {
    for (double q : {0.0, 0.5, 1.0, 37.0, 99.5, 100.0}) {
      EXPECT_DOUBLE_EQ(percentile(x, q), percentile(x.to(at::kFloat), q)) << x.scalar_type() << " q = " << q;
    }
    // Any shape and strides: a Fortran-ordered volume is read in memory order.
    const at::Tensor volume = x.view({-1, 1, 1}).expand({-1, 1, 1});
    EXPECT_DOUBLE_EQ(percentile(volume, 99.5), percentile(x.to(at::kFloat), 99.5));
  }
}

TEST(Intensity, ConstantScanBecomesZeros) {
  const at::Tensor out = percentile_normalize(at::full({3, 4, 5}, 42.0f));
  EXPECT_EQ(out.sizes(), at::IntArrayRef({3, 4, 5}));
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(percentile_normalize(at::full({1, 1, 1}, -3.0f)).item<float>(), 0.0f);
}

TEST(Intensity, NormalizedRangeIsZeroToOne) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({8, 16, 16}) * 300 + 1000;
  const at::Tensor out = percentile_normalize(x, 1.0, 99.0);
  EXPECT_EQ(out.min().item<float>(), 0.0f);
  EXPECT_NEAR(out.max().item<float>(), 1.0f, 1e-6);
  const IntensityRange r = percentile_range(x, 1.0, 99.0);
  EXPECT_LT(r.low, r.high);
}

TEST(Intensity, NanInfAndBadArgumentsAreErrors) {
  at::Tensor x = at::rand({4, 4, 4});
  x[1][2][3] = NAN;
  EXPECT_NE(error_message([&] { percentile(x, 50); }).find("NaN"), std::string::npos);
  EXPECT_THROW(percentile_normalize(x), Error);
  EXPECT_THROW(apply_window(x, named_window("brain")), Error);
  x[1][2][3] = INFINITY;
  EXPECT_THROW(percentile(x, 50), Error);
  EXPECT_THROW(clip_and_rescale(x, {0, 1}), Error);
  EXPECT_THROW(percentile(at::rand({5}), 100.5), Error);
  EXPECT_THROW(percentile(at::rand({5}), -1), Error);
  EXPECT_THROW(percentile(at::rand({0}), 50), Error);
  EXPECT_THROW(percentile_range(at::rand({5}), 60, 40), Error);
}

TEST(Intensity, WindowsMatchHlipsTorchExpression) {
  const json& cases = preprocess_reference()["intensity"]["windows"];
  const at::Tensor hu = reference_array("window/hu");
  for (const json& c : cases) {
    const CtWindow w{c["name"], c["min_hu"], c["max_hu"]};
    EXPECT_EQ(max_abs_diff(apply_window(hu, w), reference_array(c["expected"])), 0.0) << w.name;
  }
  EXPECT_EQ(apply_window(hu.reshape({1, 1, -1}), named_window("brain")).sizes(),
            at::IntArrayRef({1, 1, hu.numel()}));
}

TEST(Intensity, NamedWindows) {
  EXPECT_EQ(named_window("brain"), (CtWindow{"brain", 0, 80}));
  EXPECT_EQ(named_window("subdural"), (CtWindow{"subdural", -20, 180}));
  EXPECT_EQ(named_window("blood"), (CtWindow{"blood", -20, 180}));
  EXPECT_EQ(named_window("bone"), (CtWindow{"bone", -800, 2000}));
  EXPECT_EQ(named_window("ct-rate"), (CtWindow{"ct-rate", -1150, 350}));
  EXPECT_EQ(named_window("bone").level_hu(), 600);
  EXPECT_EQ(named_window("bone").width_hu(), 2800);
  EXPECT_EQ(CtWindow::from_level_width("lung", -600, 1500), (CtWindow{"lung", -1350, 150}));
  const std::string message = error_message([] { named_window("lungs"); });
  EXPECT_NE(message.find("\"lungs\""), std::string::npos) << message;
  EXPECT_NE(message.find("brain, subdural, blood, bone, ct-rate"), std::string::npos) << message;
  EXPECT_THROW(apply_window(at::zeros({2}), CtWindow{"empty", 10, 10}), Error);
}

}  // namespace
}  // namespace hlip::preprocess
