#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace hlip::test {
namespace {

const std::string kWeights = std::string(HLIP_TEST_DATA_DIR) + "/text/tiny-cls-scanstudy.safetensors";

TEST(Inspect, ListsTensorsAndMetadata) {
  const auto result = run_hlip("inspect " + kWeights);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("text.proj.weight"), std::string::npos);
  EXPECT_NE(result.out.find("[24, 32]"), std::string::npos);
  EXPECT_NE(result.out.find("metadata case = tiny-cls-scanstudy"), std::string::npos);
}

TEST(Inspect, JsonGivesDtypesShapesAndCounts) {
  const auto result = run_hlip("inspect --json " + kWeights);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  const auto& proj = json.at("tensors").at("text.proj.weight");
  EXPECT_EQ(proj.at("dtype"), "F32");
  EXPECT_EQ(proj.at("shape"), nlohmann::json::array({24, 32}));
  EXPECT_EQ(json.at("metadata").at("generator"), "tests/ref/hlip_text_ref.py");
  EXPECT_EQ(json.at("tensor_count").get<size_t>(), json.at("tensors").size());
}

TEST(Inspect, MissingFileIsOneLineError) {
  const auto result = run_hlip("inspect /nonexistent/model.safetensors");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("/nonexistent/model.safetensors"), std::string::npos) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
}

}  // namespace
}  // namespace hlip::test
