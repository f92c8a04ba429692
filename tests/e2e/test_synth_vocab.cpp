#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cli_runner.h"
#include "temp_dir.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;

class SynthVocab : public ::testing::Test {
 protected:
  TempDir temp_{"hlip_e2e_synth"};
  const fs::path& root_ = temp_.path();
};

TEST_F(SynthVocab, SynthWritesADatasetAndVocabLearnsFromIt) {
  const auto data = root_ / "data";
  const auto synth = run_hlip("synth --out " + data.string() + " --studies 6 --seed 4 --no-progress");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  EXPECT_NE(synth.out.find("wrote 6 studies"), std::string::npos) << synth.out;
  EXPECT_EQ(lines_of(data / "studies.jsonl").size(), 6u);
  for (const char* split : {"train", "val", "test"}) {
    EXPECT_TRUE(fs::exists(data / (std::string("labels_") + split + ".csv"))) << split;
  }
  EXPECT_TRUE(fs::exists(data / "README.md"));

  const auto vocab_path = root_ / "tokenizer" / "vocab.txt";
  const auto vocab = run_hlip("vocab --manifest " + (data / "studies.jsonl").string() + " --out " +
                              vocab_path.string() + " --size 300 --all-splits");
  ASSERT_EQ(vocab.exit_code, 0) << vocab.err;
  const auto tokens = lines_of(vocab_path);
  ASSERT_GT(tokens.size(), 60u);
  EXPECT_LE(tokens.size(), 300u);
  EXPECT_EQ(tokens.front(), "[PAD]");
  EXPECT_TRUE(fs::exists(root_ / "tokenizer" / "tokenizer_config.json"));
}

TEST_F(SynthVocab, SynthRejectsBadSplitsWithOneLine) {
  const auto result = run_hlip("synth --out " + (root_ / "x").string() + " --studies 2 --splits 0.5,0.5,0.5");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("--splits"), std::string::npos) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
}

TEST_F(SynthVocab, VocabLearnsTheClosedQuestionsUnlessToldNot) {
  fs::create_directories(root_);
  std::ofstream(root_ / "studies.jsonl")
      << R"({"study": "a", "modality": "mri", "scans": ["a.nii"], "report": "Fine.", "qa": [)"
      << R"({"type": "sequence", "question": "Which sequence?", "answer": "T1c"}]})"
      << "\n";
  const auto learn = [&](const std::string& extra) {
    const auto result = run_hlip("vocab --manifest " + (root_ / "studies.jsonl").string() + " --out " +
                                 (root_ / "v.txt").string() + extra);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return std::make_pair(result.out, lines_of(root_ / "v.txt"));
  };
  const auto has = [](const std::vector<std::string>& tokens, const std::string& token) {
    return std::find(tokens.begin(), tokens.end(), token) != tokens.end();
  };
  auto [out, tokens] = learn("");
  EXPECT_NE(out.find("from 1 sentences and 1 questions of 1 studies"), std::string::npos) << out;
  EXPECT_TRUE(has(tokens, "##1") && has(tokens, "w")) << "T1c and Which are spelled with the vocabulary";
  std::tie(out, tokens) = learn(" --no-questions");
  EXPECT_NE(out.find("and 0 questions"), std::string::npos) << out;
  EXPECT_FALSE(has(tokens, "##1"));
}

TEST_F(SynthVocab, VocabNamesTheBadManifestLine) {
  fs::create_directories(root_);
  {
    std::ofstream out(root_ / "studies.jsonl");
    out << R"({"study": "a", "modality": "mri", "scans": ["a.nii"], "report": "Fine."})"
        << "\n"
        << R"({"study": "b", "modality": "xray", "scans": ["b.nii"]})"
        << "\n";
  }
  const auto result = run_hlip("vocab --manifest " + (root_ / "studies.jsonl").string() + " --out " +
                               (root_ / "v.txt").string());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("studies.jsonl:2: \"modality\" is \"xray\""), std::string::npos) << result.err;
}

}  // namespace
}  // namespace hlip::test
