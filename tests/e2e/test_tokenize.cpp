// `hlip tokenize` against the published and computed Hugging Face cases (tests/data/tokenizer/).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "cli_runner.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
const fs::path kData = fs::path(HLIP_TEST_DATA_DIR) / "tokenizer";

std::vector<nlohmann::json> full_pipeline_cases() {
  std::vector<nlohmann::json> cases;
  for (const char* file : {"cases.jsonl", "computed_biomedbert_cases.jsonl"}) {
    std::ifstream in(kData / file);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto json = nlohmann::json::parse(line);
      // Pairs and non-default options (no CJK splitting) are the unit tests' job: the command has no flags
      // for them.
      const bool single_text = !json.contains("text_pair");
      const bool default_options =
          !json.contains("options") || json["options"].value("tokenize_chinese_chars", true);
      if (json.at("stage") == "tokenize" && single_text && default_options) cases.push_back(std::move(json));
    }
  }
  return cases;
}

TEST(Tokenize, EveryFullPipelineCaseMatchesHuggingFace) {
  const auto cases = full_pipeline_cases();
  ASSERT_GE(cases.size(), 40u);
  // One run per (vocabulary, lower-casing, max length), texts as JSON strings so that newlines and tabs
  // survive.
  std::map<std::tuple<std::string, bool, int64_t>, std::vector<const nlohmann::json*>> groups;
  for (const auto& c : cases) {
    const int64_t max_length =
        c.contains("expected_encoding") ? c["expected_encoding"].at("max_length").get<int64_t>() : 0;
    groups[{c.at("vocab").get<std::string>(), c.at("do_lower_case").get<bool>(), max_length}].push_back(&c);
  }
  const fs::path input = fs::temp_directory_path() / "hlip_e2e_tokenize_input.jsonl";
  size_t checked = 0;
  for (const auto& [key, group] : groups) {
    {
      std::ofstream out(input);
      for (const auto* c : group)
        out << c->at("text").dump() << "\n";
    }
    const auto& [vocab, lower_case, max_length] = key;
    std::string args = "tokenize --json-input --vocab " + (kData / vocab).string();
    if (!lower_case) args += " --no-lower-case";
    if (max_length > 0) args += " --max-length " + std::to_string(max_length);
    const auto result = run_hlip(args, input.string());
    ASSERT_EQ(result.exit_code, 0) << args << ": " << result.err;
    std::istringstream lines(result.out);
    for (const auto* c : group) {
      std::string line;
      ASSERT_TRUE(std::getline(lines, line)) << c->at("id");
      const auto out = nlohmann::json::parse(line);
      EXPECT_EQ(out.at("tokens"), c->at("tokens")) << c->at("id");
      EXPECT_EQ(out.at("attention_mask").size(), out.at("input_ids").size());
      ++checked;
      if (c->contains("expected_encoding")) {
        EXPECT_EQ(out.at("input_ids"), c->at("expected_encoding").at("input_ids")) << c->at("id");
        EXPECT_EQ(out.at("attention_mask"), c->at("expected_encoding").at("attention_mask")) << c->at("id");
        continue;
      }
      auto ids = out.at("input_ids").get<std::vector<int64_t>>();
      if (!c->at("ids_with_special_tokens").get<bool>())
        ids = std::vector<int64_t>(ids.begin() + 1, ids.end() - 1);
      EXPECT_EQ(nlohmann::json(ids), c->at("ids")) << c->at("id");
    }
  }
  EXPECT_EQ(checked, cases.size());
  fs::remove(input);
}

TEST(Tokenize, MaxLengthTruncatesAndPads) {
  const fs::path input = fs::temp_directory_path() / "hlip_e2e_tokenize_short.txt";
  {
    std::ofstream out(input);
    out << "no acute intracranial abnormality\n"
        << "a b c d e f g h i j k l m n o p q r s t u v w x y z\n";
  }
  const auto result = run_hlip(
      "tokenize --max-length 8 --vocab " + (kData / "biomedbert-abstract-fulltext-vocab.txt").string(),
      input.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::istringstream lines(result.out);
  std::string first, second;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  const auto a = nlohmann::json::parse(first), b = nlohmann::json::parse(second);
  EXPECT_EQ(a.at("input_ids").size(), 8u);
  EXPECT_EQ(a.at("attention_mask").back(), 0);  // padded
  EXPECT_EQ(b.at("input_ids").size(), 8u);
  EXPECT_EQ(b.at("attention_mask").back(), 1);  // truncated, ends with [SEP]
  fs::remove(input);
}

TEST(Tokenize, InvalidUtf8IsAnErrorNamingTheLine) {
  const fs::path input = fs::temp_directory_path() / "hlip_e2e_tokenize_bad.txt";
  {
    std::ofstream out(input, std::ios::binary);
    out << "fine\n"
        << "bad \xC3\x28 byte\n";
  }
  const auto result = run_hlip(
      "tokenize --vocab " + (kData / "biomedbert-abstract-fulltext-vocab.txt").string(), input.string());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("stdin:2:"), std::string::npos) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  fs::remove(input);
}

}  // namespace
}  // namespace hlip::test
