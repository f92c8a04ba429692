// `hlip forward` on the reference cases: each model folder is assembled from the vision case's weights and
// the clip case's text weights as a sharded checkpoint (model.safetensors.index.json), and every output is
// compared with the references of tests/ref/hlip_vision_ref.py and tests/ref/hlip_clip_ref.py.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "safetensors_file.h"
#include "temp_dir.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;

const std::string kData = HLIP_TEST_DATA_DIR;

// A model folder in Hugging Face's sharded layout whose shards link to the checked-in reference weights.
void assemble_model(const std::string& name, const fs::path& folder) {
  fs::create_directories(folder);
  fs::copy_file(kData + "/clip/" + name + "/open_clip_config.json", folder / "open_clip_config.json");
  const std::pair<std::string, std::string> shards[] = {
      {"model-00001-of-00002.safetensors", kData + "/vision/" + name + "/model.safetensors"},
      {"model-00002-of-00002.safetensors", kData + "/clip/" + name + "/text.safetensors"}};
  nlohmann::json map = nlohmann::json::object();
  for (const auto& [shard, source] : shards) {
    fs::create_symlink(source, folder / shard);
    const nlohmann::json header = read_safetensors_header(source);
    for (const auto& [key, info] : header.items()) {
      if (key != "__metadata__") map[key] = shard;
    }
  }
  std::ofstream(folder / "model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump(1);
}

// |actual - expected| <= 2e-5 + 1e-4 |expected| (the vision tests' tolerance; the spec accepts 1e-4 / 1e-4).
void expect_close(const RawTensor& actual, const RawTensor& expected, const std::string& what) {
  ASSERT_EQ(actual.shape, expected.shape) << what;
  const auto a = as_floats(actual), e = as_floats(expected);
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double excess = std::abs(double(a[i]) - e[i]) - (2e-5 + 1e-4 * std::abs(double(e[i])));
    if (excess > worst) worst = excess, at = i;
  }
  EXPECT_EQ(worst, 0.0) << what << ": element " << at << " " << a[at] << " vs " << e[at];
}

class ForwardReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardReference, WritesEveryReferenceOutput) {
  const std::string name = GetParam();
  TempDir dir("hlip_e2e_forward");
  assemble_model(name, dir.path() / "model");
  const std::string out = dir.file("out.safetensors");
  const auto result = run_hlip("forward --model " + dir.file("model") + " --input " + kData + "/clip/" +
                               name + "/input_study.safetensors --out " + out);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("0 missing; 0 unexpected"), std::string::npos) << result.out;
  const auto outputs = read_safetensors_raw(out);
  int compared = 0;
  for (const std::string& file :
       std::vector<std::string>{kData + "/vision/" + name + "/expected.safetensors",
                                kData + "/clip/" + name + "/expected.safetensors"}) {
    for (const auto& [key, expected] : read_safetensors_raw(file)) {
      if (key.rfind("loss.", 0) == 0) continue;  // synthetic features for the loss tests, not model outputs
      const auto it = outputs.find(key);
      ASSERT_NE(it, outputs.end()) << key << " not written";
      expect_close(it->second, expected, name + " " + key);
      ++compared;
    }
  }
  EXPECT_GE(compared, 12);  // 6 vision outputs + 4 text + image_embeds + logits_per_image at least
}

INSTANTIATE_TEST_SUITE_P(Cases, ForwardReference,
                         ::testing::Values("tiny-cls-scanstudy", "tiny-dinotxt-slicescanstudy-seqpos",
                                           "micro-slicescan-cls-b2", "micro-study-dinotxt-resample",
                                           "micro-rope-scanstudy"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string id = info.param;
                           for (char& c : id) {
                             if (c == '-') c = '_';
                           }
                           return id;
                         });

TEST(Forward, PlainAttentionKernelAgrees) {
  TempDir dir("hlip_e2e_forward");
  assemble_model("tiny-dinotxt-slicescanstudy-seqpos", dir.path() / "model");
  const auto result =
      run_hlip("forward --attention plain --model " + dir.file("model") + " --input " + kData +
               "/clip/tiny-dinotxt-slicescanstudy-seqpos/input_study.safetensors --out " +
               dir.file("out.safetensors"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto outputs = read_safetensors_raw(dir.file("out.safetensors"));
  const auto expected =
      read_safetensors_raw(kData + "/clip/tiny-dinotxt-slicescanstudy-seqpos/expected.safetensors");
  expect_close(outputs.at("logits_report"), expected.at("logits_report"), "logits_report");
}

// A config name builds random weights: names and shapes of the outputs, image only (no text outputs).
TEST(Forward, ConfigNameGivesShapes) {
  TempDir dir("hlip_e2e_forward");
  const std::string input = dir.file("in.safetensors");
  write_safetensors_raw(
      input,
      {{"image", make_tensor("F32", {1, 2, 1, 16, 64, 64}, std::vector<float>(2 * 16 * 64 * 64, 0.5f))}});
  const auto result = run_hlip("forward --model hlip-tiny --seed 1 --input " + input + " --out " +
                               dir.file("out.safetensors"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("random weights"), std::string::npos) << result.err;
  const auto outputs = read_safetensors_raw(dir.file("out.safetensors"));
  EXPECT_EQ(outputs.at("image_embeds").shape, (std::vector<int64_t>{1, 2, 64}));
  EXPECT_EQ(outputs.at("vision.patch_tokens").shape, (std::vector<int64_t>{1, 2, 4, 4, 4, 96}));
  EXPECT_EQ(outputs.at("vision.pos_embed").shape, (std::vector<int64_t>{1, 2, 4, 4, 4, 96}));
  EXPECT_EQ(outputs.at("vision.features").shape, (std::vector<int64_t>{1, 2 + 2 * 64, 96}));
  EXPECT_EQ(outputs.count("vision.blocks.3.out"), 1u);
  EXPECT_EQ(outputs.count("text_embeds") + outputs.count("logits_per_image"), 0u);
}

TEST(Forward, ErrorsAreOneLine) {
  TempDir dir("hlip_e2e_forward");
  const std::string input = dir.file("in.safetensors");
  write_safetensors_raw(input, {{"other", make_tensor("F32", {2}, std::vector<float>{1, 2})}});
  auto result =
      run_hlip("forward --model hlip-tiny --input " + input + " --out " + dir.file("o.safetensors"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("neither"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(input), std::string::npos) << result.err;
  result =
      run_hlip("forward --model " + dir.file("nothing") + " --input " + input + " --out " + dir.file("o"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("hlip-tiny"), std::string::npos) << result.err;  // lists the known configs
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_FALSE(fs::exists(dir.file("o")));
}

}  // namespace
}  // namespace hlip::test
