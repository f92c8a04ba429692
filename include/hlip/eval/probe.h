#pragma once
// Linear probes on frozen image embeddings (docs/zeroshot.md, "hlip probe"): L2-regularised logistic
// regression fitted by Newton's method in float64, one-vs-rest per class for multi-label tasks and one
// multinomial (softmax) model for multiclass tasks, the L2 strength chosen on a validation split by macro
// AUC, and the test split scored with the zero-shot metrics and files.
//
//   hlip::eval::LogisticOptions options;
//   options.l2 = 1e-2;
//   hlip::eval::LogisticModel fit = hlip::eval::fit_binary_logistic(x, y, options);  // x [N, D], y 0/1
//   at::Tensor p = fit.predict_proba(x);                                              // [N, 1]
//
//   hlip::eval::ProbeResult result = hlip::eval::evaluate_probe(*clip, task, train, val, test);
//   hlip::eval::write_probe_results(result, "out/results.json", "out/scores.csv");
//
// Objective (n training studies, W the weights without the intercepts b):
//   binary       (1/n) sum_i [log(1 + exp(z_i)) - y_i z_i] + (l2/2) ||W||^2,         z_i = w.x_i + b
//   multinomial  (1/n) sum_i -log softmax(W x_i + b)[y_i] + (l2/2) ||W||_F^2 + (1/2) (sum_k b_k)^2
// The intercepts are not penalised; the last multinomial term only picks, among the equally good intercepts
// (softmax ignores a common shift), those summing to 0. scikit-learn's LogisticRegression(C) minimises
// C * n times the same loss, so l2 = 1 / (C n).

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/data/dataset.h"
#include "hlip/eval/metrics.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/model/clip.h"

namespace hlip::eval {

struct LogisticOptions {
  double l2 = 1e-2;                   // the L2 strength (above); must be > 0
  int max_iterations = 100;           // Newton steps
  double gradient_tolerance = 1e-10;  // converged when every gradient entry is below this in magnitude
};

struct LogisticModel {
  at::Tensor weight;  // float64 [K, D]; K = 1 for a binary model
  at::Tensor bias;    // float64 [K]
  bool multinomial = false;
  int iterations = 0;
  bool converged = false;
  double objective = 0.0;
  double gradient_max = 0.0;  // max |gradient| at the end

  // x [N, D] -> float64 [N, K]: sigmoid(w.x + b) for binary models, softmax(W x + b) for multinomial ones.
  at::Tensor predict_proba(const at::Tensor& x) const;
};

// x [N, D] (any floating dtype), y 0 or 1 each, both classes present. Deterministic: starts at zero.
LogisticModel fit_binary_logistic(const at::Tensor& x, const std::vector<int>& y,
                                  const LogisticOptions& options = {});
// y in [0, classes), every class present.
LogisticModel fit_multinomial_logistic(const at::Tensor& x, const std::vector<int>& y, int64_t classes,
                                       const LogisticOptions& options = {});

// {1e-6, 1e-5, ..., 1e2}: one strength per decade.
std::vector<double> default_l2_grid();

// One split's image embeddings and manifest labels.
struct ProbeSplit {
  std::vector<std::string> studies;
  at::Tensor features;                             // [S, E]
  std::vector<std::map<std::string, int>> labels;  // each study's manifest labels
  int64_t failed = 0;                              // studies that could not be loaded
};

struct ProbeOptions {
  std::vector<double> l2_grid = default_l2_grid();
  LogisticOptions logistic;                   // its l2 is replaced by each value of the grid
  std::optional<BootstrapOptions> bootstrap;  // of the test AUC intervals; replaces the task's
  int64_t image_embedding = -1;               // the image row probed; -1: the task's (0 unless it sets one)
  int workers = 1;                            // loader threads (evaluate_probe)
  bool progress = false;
  std::string model;  // recorded in the results
  std::string data;
  std::string train_split, val_split, test_split;
};

// Counts of one class on one split, from task_labels.
struct ProbeClassCounts {
  int64_t pos = 0, neg = 0;
  std::map<std::string, int64_t> skipped;
};

struct ProbeGridPoint {
  double l2 = 0.0;
  Score val_macro_auc;          // over the classes with positive and negative validation studies
  std::vector<Score> val_auc;   // per class (task order)
  std::vector<int> iterations;  // Newton steps per fitted model (one per class, or one multinomial)
  bool converged = true;        // every fit converged
};

struct ProbeResult {
  ZeroShotResult test;  // the test split scored with the probe: per-class metrics, means, multiclass block
  ZeroShotTask task;    // the task as given
  bool multinomial = false;
  int64_t image_embedding = 0;
  std::vector<ProbeGridPoint> grid;
  size_t chosen = 0;                                       // index into grid
  std::vector<ProbeClassCounts> train_counts, val_counts;  // per class of test.task
  int64_t n_train = 0, n_val = 0;                          // studies with at least one usable label
  int64_t failed_train = 0, failed_val = 0;
  std::vector<std::pair<std::string, std::string>> dropped;  // classes that could not be trained, and why
  std::string train_split, val_split;
  double seconds = 0.0;
};

// The probe on embeddings already computed: labels from `task` as zero-shot takes them (task_labels), a fit
// per grid value on `train`, the value with the highest validation macro AUC (the largest value on ties),
// and that fit's test scores through zeroshot_metrics. One-vs-rest classes without positive or negative
// training studies are dropped (listed in `dropped`); a multiclass task needs every class in training. No
// usable validation AUC is an hlip::Error.
ProbeResult run_probe(const ZeroShotTask& task, const ProbeSplit& train, const ProbeSplit& val,
                      const ProbeSplit& test, const ProbeOptions& options = {});

// Embeds the three splits (batch size 1, all scans) and runs the probe.
ProbeResult evaluate_probe(model::HlipClipImpl& model, const ZeroShotTask& task,
                           const data::StudyDataset& train, const data::StudyDataset& val,
                           const data::StudyDataset& test, const ProbeOptions& options = {});

// results.json (zero-shot's layout, with the probe's protocol and a "probe" block: grid, chosen strength,
// training and validation counts) and scores.csv (zero-shot's "study,class,score,label").
nlohmann::json probe_results_json(const ProbeResult& result);
void write_probe_results(const ProbeResult& result, const std::string& out_json,
                         const std::string& scores_csv);
std::string format_probe_table(const ProbeResult& result);

}  // namespace hlip::eval
