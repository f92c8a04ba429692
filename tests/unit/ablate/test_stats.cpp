// The statistics of the ablation report: the paired bootstrap of one step against a Python reference that
// draws the same resamples (tests/ref/make_ablate_stats_ref.py), constructed cases with known answers
// (identical arms, a B better on every study), the verdict rule, scores.csv parsing and the metric names.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/ablate/stats.h"
#include "hlip/core/error.h"
#include "temp_dir.h"

namespace hlip::ablate {
namespace {

using json = nlohmann::json;
using test::error_message;
using test::TempDir;

std::vector<ScoreRow> rows_of(const json& rows) {
  std::vector<ScoreRow> out;
  for (const auto& r : rows)
    out.push_back({r["study"], r["class"], r["score"], r["label"]});
  return out;
}

// One class, `n` studies alternating negative / positive, the given score per study.
std::vector<ScoreRow> one_class(const std::vector<double>& scores) {
  std::vector<ScoreRow> out;
  for (std::size_t i = 0; i < scores.size(); ++i)
    out.push_back({"s" + std::to_string(100 + i), "glioma", scores[i], static_cast<int>(i % 2)});
  return out;
}

TEST(AblateStats, PairedBootstrapMatchesThePythonReference) {
  std::ifstream in(std::string(HLIP_TEST_DATA_DIR) + "/ablate/stats_ref.json");
  ASSERT_TRUE(in) << "tests/data/ablate/stats_ref.json";
  const json ref = json::parse(in);
  const json& expected = ref["expected"];
  const auto metric = metric_definition("macro_auc");
  const auto paired = pair_scores({rows_of(ref["runs"]["a0"]), rows_of(ref["runs"]["a1"])},
                                  {rows_of(ref["runs"]["b0"]), rows_of(ref["runs"]["b1"])}, metric);
  EXPECT_EQ(paired.classes, expected["classes"].get<std::vector<std::string>>());
  EXPECT_EQ(paired.n_studies(), expected["n_studies"].get<std::size_t>());
  EXPECT_EQ(paired.dropped_pairs, expected["dropped_pairs"].get<std::size_t>());
  ASSERT_EQ(paired.notes.size(), 1u);
  EXPECT_NE(paired.notes[0].find("not scored in every run"), std::string::npos) << paired.notes[0];

  std::vector<std::size_t> all(paired.n_studies());
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  const json& per_seed = expected["per_seed_macro_auc"];
  EXPECT_NEAR(*metric_on(paired, paired.a[0], all).value, per_seed["a0"].get<double>(), 1e-12);
  EXPECT_NEAR(*metric_on(paired, paired.a[1], all).value, per_seed["a1"].get<double>(), 1e-12);
  EXPECT_NEAR(*metric_on(paired, paired.b[0], all).value, per_seed["b0"].get<double>(), 1e-12);
  EXPECT_NEAR(*metric_on(paired, paired.b[1], all).value, per_seed["b1"].get<double>(), 1e-12);

  eval::BootstrapOptions options;
  options.resamples = ref["options"]["resamples"];
  options.confidence = ref["options"]["confidence"];
  options.seed = ref["options"]["seed"];
  const std::vector<double> seed_differences = {per_seed["b0"].get<double>() - per_seed["a0"].get<double>(),
                                                per_seed["b1"].get<double>() - per_seed["a1"].get<double>()};
  const Comparison step = compare(paired, true, options, seed_differences);
  EXPECT_NEAR(*step.difference.estimate.value, expected["estimate"].get<double>(), 1e-12);
  ASSERT_TRUE(step.difference.defined()) << step.difference.reason;
  EXPECT_NEAR(*step.difference.lower, expected["lower"].get<double>(), 1e-12);
  EXPECT_NEAR(*step.difference.upper, expected["upper"].get<double>(), 1e-12);
  EXPECT_NEAR(*step.difference.p_value, expected["p_value"].get<double>(), 1e-12);
  EXPECT_EQ(step.difference.resamples_used, expected["resamples_used"].get<int>());
  EXPECT_EQ(step.difference.resamples_skipped, expected["resamples_skipped"].get<int>());
  // The reference's B separates the classes better: the interval is above 0 and both seeds agree.
  EXPECT_GT(*step.difference.lower, 0.0);
  EXPECT_EQ(step.verdict, Verdict::kBetter) << step.verdict_reason;
}

TEST(AblateStats, IdenticalArmsGiveZeroAndNoDetectableDifference) {
  const auto scores = one_class({0.1, 0.7, 0.4, 0.3, 0.9, 0.2, 0.5, 0.8, 0.6, 0.35});
  const auto paired = pair_scores({scores}, {scores}, metric_definition("macro_auc"));
  const Comparison step = compare(paired, true, {}, {});
  EXPECT_EQ(*step.difference.estimate.value, 0.0);
  ASSERT_TRUE(step.difference.defined());
  EXPECT_EQ(*step.difference.lower, 0.0);
  EXPECT_EQ(*step.difference.upper, 0.0);
  EXPECT_EQ(*step.difference.p_value, 1.0);
  EXPECT_EQ(step.verdict, Verdict::kNoDetectableDifference);
  EXPECT_EQ(step.verdict_reason, "the interval contains 0");
}

TEST(AblateStats, BBetterOnEveryStudyIsBetterAndTheMirrorIsWorse) {
  // A ranks every positive below every negative (AUC 0), B every positive above (AUC 1): every resample
  // with both labels gives B - A = 1.
  std::vector<double> a_scores, b_scores;
  for (int i = 0; i < 30; ++i) {
    a_scores.push_back(i % 2 ? 0.1 + 0.01 * i : 0.9 - 0.01 * i);
    b_scores.push_back(i % 2 ? 0.9 - 0.01 * i : 0.1 + 0.01 * i);
  }
  const auto metric = metric_definition("macro_auc");
  const auto paired = pair_scores({one_class(a_scores)}, {one_class(b_scores)}, metric);
  const Comparison better = compare(paired, true, {}, {});
  EXPECT_EQ(*better.difference.estimate.value, 1.0);
  EXPECT_EQ(*better.difference.lower, 1.0);
  EXPECT_EQ(*better.difference.upper, 1.0);
  EXPECT_EQ(*better.difference.p_value, 0.0);
  EXPECT_EQ(better.verdict, Verdict::kBetter);

  const Comparison worse =
      compare(pair_scores({one_class(b_scores)}, {one_class(a_scores)}, metric), true, {}, {});
  EXPECT_EQ(*worse.difference.upper, -1.0);
  EXPECT_EQ(worse.verdict, Verdict::kWorse);
  // A metric where lower is better reads the same interval the other way round.
  EXPECT_EQ(compare(paired, false, {}, {}).verdict, Verdict::kWorse);
}

TEST(AblateStats, VerdictNeedsEverySeedToAgreeAndAnInterval) {
  std::string reason;
  EXPECT_EQ(decide(0.01, 0.05, {0.02, 0.03, 0.01}, true, &reason), Verdict::kBetter);
  EXPECT_EQ(reason, "the interval excludes 0 and all 3 seeds agree");
  EXPECT_EQ(decide(0.01, 0.05, {0.02, -0.01, 0.03}, true, &reason), Verdict::kNoDetectableDifference);
  EXPECT_EQ(reason, "the interval excludes 0 but only 2 of 3 seeds agree");
  EXPECT_EQ(decide(-0.05, -0.01, {-0.02}, true, &reason), Verdict::kWorse);
  EXPECT_EQ(reason, "the interval excludes 0");
  EXPECT_EQ(decide(-0.05, 0.01, {}, true, &reason), Verdict::kNoDetectableDifference);
  EXPECT_EQ(decide(-0.05, -0.01, {}, false, &reason), Verdict::kBetter);
  EXPECT_EQ(decide(std::nullopt, std::nullopt, {}, true, &reason), Verdict::kNotDetermined);
  EXPECT_STREQ(to_string(Verdict::kNoDetectableDifference), "no detectable difference");
}

TEST(AblateStats, TooFewStudiesLeaveTheVerdictNotDetermined) {
  // One positive and one negative: every resample that draws both is the whole sample, most lack one.
  const auto paired =
      pair_scores({one_class({0.2, 0.3})}, {one_class({0.3, 0.2})}, metric_definition("macro_auc"));
  eval::BootstrapOptions options;
  options.resamples = 1;
  const Comparison step = compare(paired, true, options, {});
  EXPECT_FALSE(step.difference.defined());
  EXPECT_EQ(step.verdict, Verdict::kNotDetermined);
}

TEST(AblateStats, SpreadIsTheSampleStandardDeviation) {
  const Spread s = spread({0.7, 0.8, 0.9});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.8, 1e-15);
  EXPECT_NEAR(s.sd, 0.1, 1e-15);
  EXPECT_EQ(s.min, 0.7);
  EXPECT_EQ(s.max, 0.9);
  EXPECT_EQ(spread({0.5}).sd, 0.0);
}

TEST(AblateStats, ReadsScoresCsvWithQuotingAndNamesBadRows) {
  TempDir dir;
  {
    std::ofstream out(dir.file("scores.csv"));
    out << "study,class,score,label\n\"a,1\",glioma,0.25,1\n\"b \"\"x\"\"\",glioma,-1e-3,0\n";
  }
  const auto rows = read_scores_csv(dir.file("scores.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].study, "a,1");
  EXPECT_EQ(rows[0].score, 0.25);
  EXPECT_EQ(rows[1].study, "b \"x\"");
  EXPECT_EQ(rows[1].label, 0);
  {
    std::ofstream out(dir.file("bad.csv"));
    out << "study,class,score,label\ns1,glioma,0.5,2\n";
  }
  EXPECT_NE(error_message([&] { read_scores_csv(dir.file("bad.csv")); }).find("bad.csv:2: label \"2\""),
            std::string::npos);
  {
    std::ofstream out(dir.file("header.csv"));
    out << "study,score\n";
  }
  EXPECT_NE(error_message([&] { read_scores_csv(dir.file("header.csv")); }).find("header.csv:1: header"),
            std::string::npos);
}

TEST(AblateStats, MetricNames) {
  EXPECT_EQ(metric_definition("macro_auc").results_pointer, "/mean/auc");
  EXPECT_EQ(metric_definition("macro_auc").curve_key, "zeroshot/mean_auc");
  const auto glioma = metric_definition("auc/glioma");
  EXPECT_EQ(glioma.results_pointer, "/classes/glioma/auc");
  EXPECT_EQ(glioma.only_class, "glioma");
  EXPECT_NE(error_message([] { metric_definition("accuracy"); }).find("metric \"accuracy\": unknown"),
            std::string::npos);
  // A per-class metric pairs only that class's rows.
  auto rows = one_class({0.1, 0.9, 0.2, 0.8});
  rows.push_back({"s100", "stroke", 0.5, 1});
  const auto paired = pair_scores({rows}, {rows}, glioma);
  EXPECT_EQ(paired.classes, std::vector<std::string>{"glioma"});
}

}  // namespace
}  // namespace hlip::ablate
