#pragma once
// The statistics of an ablation report: one step A -> B of an ablation chain, compared on the evaluation
// studies both arms were scored on (their zero-shot scores.csv files), with a paired bootstrap interval of
// the difference B - A and a verdict derived from that interval and the seeds, never from a single number.
//
//   const auto metric = hlip::ablate::metric_definition("macro_auc");
//   auto paired = hlip::ablate::pair_scores({read_scores_csv("a/seed-0/zeroshot/scores.csv")},
//                                           {read_scores_csv("b/seed-0/zeroshot/scores.csv")}, metric);
//   auto step = hlip::ablate::compare(paired, /*higher_is_better=*/true, {}, /*seed_differences=*/{});
//   step.difference.lower, step.difference.upper;   // 95% interval of B - A
//   hlip::ablate::to_string(step.verdict);           // "better", "worse", "no detectable difference"
//
// With several seeds, each resample of the studies evaluates the metric of every seed's scores on it and
// averages over seeds, so the interval is that of the difference of the seed-mean metrics, the quantity the
// report's point estimate is. The rule of `decide` is documented in docs/ablation.md.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "hlip/eval/metrics.h"

namespace hlip::ablate {

// A metric the report can compare (sweep.json "metric"): where results.json holds it, which metrics.jsonl
// key traces it during training, and how scores.csv recomputes it.
struct MetricDefinition {
  std::string name;             // macro_auc, multiclass_auc, auc/<class>
  std::string label;            // for people: "macro AUC"
  std::string results_pointer;  // JSON pointer into results.json: "/mean/auc"
  std::string curve_key;        // metrics.jsonl key of the epoch-end lines: "zeroshot/mean_auc"
  std::string only_class;       // auc/<class>: that class; empty: the mean AUC over the classes
};

// Throws hlip::Error listing the known names when `name` is none of them.
MetricDefinition metric_definition(const std::string& name);

// One row of the scores.csv that `hlip zeroshot` writes (header study,class,score,label; RFC 4180 quoting).
struct ScoreRow {
  std::string study;
  std::string cls;
  double score = 0.0;
  int label = 0;
};
std::vector<ScoreRow> read_scores_csv(const std::filesystem::path& path);

// The (study, class) pairs scored in every run of both arms, aligned.
struct PairedScores {
  std::vector<std::string> studies;
  std::vector<std::string> classes;      // the classes the metric averages over (both labels present)
  std::vector<std::vector<int>> labels;  // [class][study]: 0, 1, or -1 when the study has no row
  std::vector<std::vector<std::vector<double>>> a, b;  // [seed][class][study]
  std::size_t dropped_pairs = 0;   // (study, class) rows missing from some run or labelled differently
  std::vector<std::string> notes;  // what was left out, and why

  std::size_t n_studies() const { return studies.size(); }
};
// `runs_a` and `runs_b`: the scores of each seed's run of each arm (at least one each).
PairedScores pair_scores(const std::vector<std::vector<ScoreRow>>& runs_a,
                         const std::vector<std::vector<ScoreRow>>& runs_b, const MetricDefinition& metric);

// The metric of one run's scores ([class][study]) on the studies at `indices` (a resample, repetitions
// allowed): the mean over classes of each class's AUC. Undefined when a class lacks positives or negatives
// in the resample.
eval::Score metric_on(const PairedScores& paired, const std::vector<std::vector<double>>& scores,
                      const std::vector<std::size_t>& indices);

enum class Verdict { kBetter, kWorse, kNoDetectableDifference, kNotDetermined };
const char* to_string(Verdict verdict);

// better: the interval of B - A lies wholly on the side of improvement (above 0 when higher is better) and,
// with two or more seeds run in both arms, every seed's own difference is on that side too; worse: the
// mirror image; not determined: no interval (fewer than 2 usable resamples); otherwise no detectable
// difference. `reason` says which condition decided.
Verdict decide(const std::optional<double>& lower, const std::optional<double>& upper,
               const std::vector<double>& seed_differences, bool higher_is_better, std::string* reason);

// Mean, sample standard deviation (0 with one value), min and max.
struct Spread {
  int n = 0;
  double mean = 0.0;
  double sd = 0.0;
  double min = 0.0;
  double max = 0.0;
};
Spread spread(const std::vector<double>& values);

struct Comparison {
  eval::PairedDifference difference;  // B - A of the seed-mean metric, recomputed from the scores
  Verdict verdict = Verdict::kNotDetermined;
  std::string verdict_reason;
};
// `seed_differences`: B - A of the final metric of each seed run in both arms (from results.json).
Comparison compare(const PairedScores& paired, bool higher_is_better, const eval::BootstrapOptions& options,
                   const std::vector<double>& seed_differences);

}  // namespace hlip::ablate
