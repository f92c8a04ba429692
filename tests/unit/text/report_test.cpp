#include <gtest/gtest.h>

#include <set>

#include "hlip/core/error.h"
#include "hlip/text/report.h"

namespace hlip::text {
namespace {

const std::vector<std::string> kReport{"Left frontal glioma.", "  ", "No midline shift.",
                                       "Ventricles normal."};

TEST(Report, SentenceDropoutTakesOneSentenceWithThePrefix) {
  ReportOptions options;
  options.mode = TextProcess::kSentence;
  Random rng(1);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const auto texts = process_report(kReport, options, rng);
    ASSERT_EQ(texts.size(), 1u);
    seen.insert(texts[0]);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"This study shows: Left frontal glioma.",
                                         "This study shows: No midline shift.",
                                         "This study shows: Ventricles normal."}));
}

TEST(Report, ReportModeShufflesAllSentences) {
  ReportOptions options;
  Random rng(2);
  std::set<std::string> orders;
  for (int i = 0; i < 100; ++i) {
    const auto texts = process_report(kReport, options, rng);
    ASSERT_EQ(texts.size(), 1u);
    EXPECT_EQ(texts[0].size(),
              std::string("Left frontal glioma. No midline shift. Ventricles normal.").size());
    orders.insert(texts[0]);
  }
  EXPECT_EQ(orders.size(), 6u);  // all 3! orders appear
  options.shuffle = false;
  EXPECT_EQ(process_report(kReport, options, rng)[0],
            "Left frontal glioma. No midline shift. Ventricles normal.");
}

TEST(Report, SentenceAndReportGivesBothInThatOrder) {
  ReportOptions options;
  options.mode = parse_text_process("sentence-and-report");
  Random rng(3);
  const auto texts = process_report(kReport, options, rng);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0].rfind("This study shows: ", 0), 0u);
  EXPECT_NE(texts[1].find("No midline shift."), std::string::npos);
}

TEST(Report, SameSeedSameTexts) {
  ReportOptions options;
  options.mode = TextProcess::kSentenceAndReport;
  Random a(9), b(9);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(process_report(kReport, options, a), process_report(kReport, options, b));
}

TEST(Report, EmptyOrBlankReportIsAnError) {
  Random rng(0);
  EXPECT_THROW(process_report({}, ReportOptions{}, rng), Error);
  EXPECT_THROW(process_report({" ", "\t\n"}, ReportOptions{}, rng), Error);
  EXPECT_THROW(parse_text_process("paragraph"), Error);
}

TEST(Report, SplitsFreeTextIntoSentences) {
  EXPECT_EQ(split_sentences("No bleed. Mass 3.2 cm in the left lobe!  Stable?\nEnd"),
            (std::vector<std::string>{"No bleed.", "Mass 3.2 cm in the left lobe!", "Stable?", "End"}));
  EXPECT_TRUE(split_sentences("   ").empty());
}

TEST(Prompts, ExpandsClassesTimesTemplates) {
  const auto set =
      expand_prompts({"Glioma", "Acute stroke"}, {"This MRI study shows: {c}.", "{c} identified."});
  EXPECT_EQ(set.texts,
            (std::vector<std::string>{"This MRI study shows: Glioma.", "Glioma identified.",
                                      "This MRI study shows: Acute stroke.", "Acute stroke identified."}));
  EXPECT_EQ(set.class_index, (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(set.num_templates, 2);
  EXPECT_THROW(expand_prompts({"x"}, {"no placeholder"}), Error);
  EXPECT_THROW(expand_prompts({}, {"{c}"}), Error);
}

TEST(Prompts, NegativePrompts) {
  EXPECT_EQ(negative_prompt("Glioma"), "No glioma");
  EXPECT_EQ(negative_prompt("MCA infarct"), "No MCA infarct");
  EXPECT_EQ(negative_prompt("pleural effusion", "Not"), "Not pleural effusion");
  EXPECT_THROW(negative_prompt(""), Error);
}

}  // namespace
}  // namespace hlip::text
