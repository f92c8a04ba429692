// Retrieval metrics on hand-computed similarity matrices (ranks, recall@K, mean and median rank, both tie
// rules) and the report text a study is matched with.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/eval/retrieval.h"
#include "temp_dir.h"

namespace hlip::eval {
namespace {

using test::error_message;

// Row i is image i, column j report j; the match of image i is report i.
//   image 0: 0.9 is the row's largest                                  -> rank 1
//   image 1: 0.8 and 0.6 beat the match 0.5                            -> rank 3
//   image 2: report 3 ties the match 0.3                               -> rank 2 pessimistic, 1 optimistic
//   image 3: 0.7 beats the match 0.4                                   -> rank 2
//   report 0: 0.9 beats 0.8, 0.1, 0.2 -> 1; report 1: 0.7 beats 0.5 -> 2; report 2: 0.6 beats 0.3 -> 2;
//   report 3: 0.4 beats 0.3, 0.1, 0.3 -> 1 (no ties with a column's match)
const ScoreMatrix kFour = {{0.9, 0.1, 0.2, 0.3},  //
                           {0.8, 0.5, 0.6, 0.1},
                           {0.1, 0.2, 0.3, 0.3},
                           {0.2, 0.7, 0.1, 0.4}};

TEST(RetrievalMetrics, HandComputedRanksWithThePessimisticTieRule) {
  const RetrievalMetrics m = retrieval_metrics(kFour, {1, 2, 5});
  EXPECT_EQ(m.n, 4);
  EXPECT_EQ(m.ties, TieRule::kPessimistic);
  EXPECT_EQ(m.image_to_report.ranks, (std::vector<int64_t>{1, 3, 2, 2}));
  EXPECT_DOUBLE_EQ(m.image_to_report.recall.at(1), 0.25);
  EXPECT_DOUBLE_EQ(m.image_to_report.recall.at(2), 0.75);
  EXPECT_DOUBLE_EQ(m.image_to_report.recall.at(5), 1.0);  // K above n
  EXPECT_DOUBLE_EQ(m.image_to_report.mean_rank, 2.0);
  EXPECT_DOUBLE_EQ(m.image_to_report.median_rank, 2.0);  // (2 + 2) / 2
  EXPECT_EQ(m.report_to_image.ranks, (std::vector<int64_t>{1, 2, 2, 1}));
  EXPECT_DOUBLE_EQ(m.report_to_image.recall.at(1), 0.5);
  EXPECT_DOUBLE_EQ(m.report_to_image.recall.at(2), 1.0);
  EXPECT_DOUBLE_EQ(m.report_to_image.mean_rank, 1.5);
  EXPECT_DOUBLE_EQ(m.report_to_image.median_rank, 1.5);  // (1 + 2) / 2
}

TEST(RetrievalMetrics, TheOptimisticRuleRanksTiesBehindTheMatch) {
  const RetrievalMetrics m = retrieval_metrics(kFour, {1, 2}, TieRule::kOptimistic);
  EXPECT_EQ(m.image_to_report.ranks, (std::vector<int64_t>{1, 3, 1, 2}));
  EXPECT_DOUBLE_EQ(m.image_to_report.recall.at(1), 0.5);
  EXPECT_DOUBLE_EQ(m.image_to_report.mean_rank, 1.75);
  EXPECT_DOUBLE_EQ(m.image_to_report.median_rank, 1.5);  // sorted 1 1 2 3
  EXPECT_EQ(m.report_to_image.ranks, (std::vector<int64_t>{1, 2, 2, 1}));
}

// An untrained model that maps everything to one vector: every candidate ties. The pessimistic rule gives
// it no credit; the optimistic one would call it perfect.
TEST(RetrievalMetrics, AllTiedIsChanceOrWorseNotPerfect) {
  const ScoreMatrix tied(3, std::vector<double>(3, 0.7));
  const RetrievalMetrics pessimistic = retrieval_metrics(tied);
  EXPECT_EQ(pessimistic.image_to_report.ranks, (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(pessimistic.report_to_image.ranks, (std::vector<int64_t>{3, 3, 3}));
  EXPECT_DOUBLE_EQ(pessimistic.image_to_report.recall.at(1), 0.0);
  EXPECT_DOUBLE_EQ(pessimistic.image_to_report.recall.at(5), 1.0);
  EXPECT_DOUBLE_EQ(pessimistic.image_to_report.recall.at(10), 1.0);
  const RetrievalMetrics optimistic = retrieval_metrics(tied, {1}, TieRule::kOptimistic);
  EXPECT_DOUBLE_EQ(optimistic.image_to_report.recall.at(1), 1.0);
}

TEST(RetrievalMetrics, OddCountMedianAndPerfectDiagonal) {
  const RetrievalMetrics m = retrieval_metrics({{1.0, 0.0, 0.0}, {0.5, 0.4, 0.0}, {0.9, 0.8, 0.1}}, {1});
  EXPECT_EQ(m.image_to_report.ranks, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_DOUBLE_EQ(m.image_to_report.median_rank, 2.0);
  EXPECT_DOUBLE_EQ(m.image_to_report.mean_rank, 2.0);
  EXPECT_NEAR(m.image_to_report.recall.at(1), 1.0 / 3.0, 1e-15);
  // Columns: report 0's match 1.0 is the largest; report 1: 0.8 beats 0.4; report 2: 0.1 beats 0, 0.
  EXPECT_EQ(m.report_to_image.ranks, (std::vector<int64_t>{1, 2, 1}));

  const RetrievalMetrics one = retrieval_metrics({{-0.2}});
  EXPECT_EQ(one.image_to_report.ranks, (std::vector<int64_t>{1}));
  EXPECT_DOUBLE_EQ(one.report_to_image.recall.at(1), 1.0);
}

TEST(RetrievalMetrics, BadMatricesAreErrors) {
  EXPECT_NE(error_message([] { retrieval_metrics({}); }).find("empty"), std::string::npos);
  EXPECT_NE(error_message([] {
              retrieval_metrics({{1, 2}, {3}});
            }).find("row 1 has 1 entries; expected 2"),
            std::string::npos);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(error_message([&] {
              retrieval_metrics({{1, 0}, {nan, 1}});
            }).find("similarity[1][0] is NaN"),
            std::string::npos);
  EXPECT_NE(error_message([] { retrieval_metrics({{1}}, {0}); }).find("recall@0"), std::string::npos);
  EXPECT_NE(error_message([] { parse_tie_rule("random"); }).find("\"random\""), std::string::npos);
  EXPECT_EQ(parse_tie_rule("optimistic"), TieRule::kOptimistic);
  EXPECT_EQ(to_string(TieRule::kPessimistic), "pessimistic");
}

TEST(RetrievalMetrics, DualModelsMatchReportsWithTheirReportRow) {
  std::string rule;
  EXPECT_EQ(report_image_row(2, -1, &rule), 1);
  EXPECT_NE(rule.find("dual"), std::string::npos);
  EXPECT_EQ(report_image_row(1, -1, &rule), 0);
  EXPECT_EQ(report_image_row(2, 0, &rule), 0);
  EXPECT_EQ(rule, "given");
  EXPECT_NE(
      error_message([] { report_image_row(1, 1); }).find("row 1 requested but the model gives 1 row(s)"),
      std::string::npos);
}

TEST(RetrievalReports, ReportTextIsTheSentencesInOrderWithSkipReasons) {
  data::ManifestStudy study;
  study.id = "s1";
  study.report = {"  No acute abnormality. ", "", "Ventricles are normal."};
  study.reports["impression"] = {"Normal study."};
  study.reports["empty"] = {" ", ""};
  std::string reason;
  EXPECT_EQ(study_report_text(study, "", &reason), "No acute abnormality. Ventricles are normal.");
  EXPECT_EQ(study_report_text(study, "report", &reason), "No acute abnormality. Ventricles are normal.");
  EXPECT_EQ(study_report_text(study, "impression", &reason), "Normal study.");
  EXPECT_TRUE(reason.empty());
  EXPECT_EQ(study_report_text(study, "findings", &reason), "");
  EXPECT_EQ(reason, "no report source \"findings\"");
  EXPECT_EQ(study_report_text(study, "empty", &reason), "");
  EXPECT_EQ(reason, "empty report \"empty\"");
  data::ManifestStudy without;
  without.id = "s2";
  EXPECT_EQ(study_report_text(without, "", &reason), "");
  EXPECT_EQ(reason, "no report");
}

}  // namespace
}  // namespace hlip::eval
