// VQA answer sets: the embedded synthetic one and the checks on a file's fields.
#include <gtest/gtest.h>

#include <fstream>

#include "hlip/core/error.h"
#include "hlip/eval/vqa.h"
#include "temp_dir.h"

namespace hlip::eval {
namespace {

using test::error_message;

TEST(VqaSet, TheEmbeddedSyntheticSetHasEveryQuestionType) {
  EXPECT_NE(std::find(known_vqa_sets().begin(), known_vqa_sets().end(), "synth-mri"), known_vqa_sets().end());
  const VqaSet set = load_vqa_set("synth-mri");
  EXPECT_EQ(set.name, "synth-mri");
  for (const char* type : {"abnormal", "finding", "side", "sequence", "enhancement"})
    ASSERT_TRUE(set.types.count(type)) << type;
  const ZeroShotTask& finding = set.types.at("finding");
  EXPECT_EQ(finding.mode, ScoringMode::kMulticlass);
  ASSERT_EQ(finding.classes.size(), 5u);
  EXPECT_EQ(finding.classes[3].name, "meningioma");
  EXPECT_EQ(finding.classes[3].templates, std::vector<std::string>{"This study shows: {c}."});
  EXPECT_EQ(set.types.at("sequence").classes[0].name, "DWI");
}

TEST(VqaSet, FileErrorsNameTheFieldOneLine) {
  test::TempDir dir;
  const auto error_for = [&](const std::string& text) {
    std::ofstream(dir.file("set.json")) << text;
    return error_message([&] { load_vqa_set(dir.file("set.json")); });
  };
  EXPECT_NE(error_for(R"({"types": {}})").find("\"types\" must be a non-empty object"), std::string::npos);
  EXPECT_NE(error_for(R"({"types": {"a": [{"name": "x", "prompts": ["x"]}]}, "colour": 1})")
                .find("unknown field \"colour\""),
            std::string::npos);
  EXPECT_NE(error_for(R"({"types": {"side": [{"name": "left", "prompts": ["l"]}]}})")
                .find("\"types\".side must list at least two answers"),
            std::string::npos);
  const std::string bad_class = error_for(
      R"({"types": {"side": [{"name": "left", "prompts": []}, {"name": "right", "prompts": ["r"]}]}})");
  EXPECT_NE(bad_class.find("\"types\".side:"), std::string::npos) << bad_class;
  EXPECT_EQ(bad_class.find('\n'), std::string::npos);
  EXPECT_NE(error_for("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_message([] { load_vqa_set("no-such-set"); }).find("known: synth-mri"), std::string::npos);
}

TEST(VqaScore, CountsExactMatchesPerTypeBesideTheMajorityAnswer) {
  const std::vector<VqaRow> rows{
      {"a", "side", "Which side?", "left", "Left"},    // right after normalising
      {"b", "side", "Which side?", "right", "left"},   // wrong; the majority answer "left" is wrong too
      {"c", "side", "Which side?", "left", " left "},  // right
      {"a", "finding", "What?", "glioma", "stroke"},   // wrong; majority (from test) "glioma" right
  };
  const auto scores = score_vqa_answers(rows, {{"side", "left"}}, {{"side", "right"}, {"finding", "glioma"}});
  EXPECT_EQ(scores["questions"], 4);
  EXPECT_DOUBLE_EQ(scores["accuracy"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(scores["majority_accuracy"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(scores["types"]["side"]["accuracy"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(scores["types"]["side"]["majority_accuracy"].get<double>(), 2.0 / 3.0);
  EXPECT_EQ(scores["types"]["side"]["majority_from"], "train");
  EXPECT_EQ(scores["types"]["finding"]["majority_answer"], "glioma");
  EXPECT_EQ(scores["types"]["finding"]["majority_from"], "evaluated split");
  EXPECT_DOUBLE_EQ(scores["types"]["finding"]["accuracy"].get<double>(), 0.0);
  EXPECT_THROW(score_vqa_answers({}, {}, {}), Error);
}

}  // namespace
}  // namespace hlip::eval
