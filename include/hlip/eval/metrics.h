#pragma once
// Classification metrics for evaluation (zero-shot, linear probe, VQA), defined as scikit-learn defines them
// and checked against scikit-learn's values (docs/metrics.md). Plain C++: no LibTorch.
//
//   std::vector<int> y_true = {0, 0, 1, 1};
//   std::vector<double> y_score = {0.1, 0.4, 0.35, 0.8};
//   hlip::eval::Score auc = hlip::eval::roc_auc(y_true, y_score);        // 0.75
//   if (!auc.defined()) std::cerr << auc.reason;                          // e.g. only one class present
//   auto at = hlip::eval::metrics_at_threshold(y_true, y_score, 0.5);     // precision, recall, F1, ...
//   auto best = hlip::eval::youden_threshold(y_true, y_score);            // best.threshold, best.youden_j
//   hlip::eval::BootstrapOptions options;                                 // 1000 resamples, 95%, seed 0
//   auto ci = hlip::eval::bootstrap_ci(y_true, y_score, hlip::eval::roc_auc, options);  // ci.lower, ci.upper
//
// Multi-label and multi-class inputs are row-major matrices: one row per study, one column per label or
// class. Malformed input (mismatched lengths, labels out of range, NaN scores) throws hlip::Error; a metric
// that is mathematically undefined on valid input (AUC with one class) is returned as an undefined Score.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hlip::eval {

using ScoreMatrix = std::vector<std::vector<double>>;  // [study][label or class]
using LabelMatrix = std::vector<std::vector<int>>;     // [study][label], each 0 or 1

// How per-class values are combined, as scikit-learn's `average=`.
enum class Average { kBinary, kMacro, kMicro, kWeighted, kSamples };

// A metric value that may be undefined. `reason` says why it is undefined; `warning` is a caveat on a
// defined value (for example classes that were ignored), the places where scikit-learn would warn.
struct Score {
  std::optional<double> value;
  std::string reason;
  std::string warning;

  bool defined() const { return value.has_value(); }
  // The value; throws hlip::Error with `reason` when undefined.
  double get() const;

  static Score of(double value, std::string warning = {});
  static Score undefined(std::string reason);
};

// ---------------------------------------------------------------------------------------------------------
// Binary scores (y_true 0/1, y_score any finite or infinite value; higher means "more positive")

// Area under the ROC curve; tied scores count 1/2 (equal to the Mann-Whitney U / (n_pos * n_neg)).
// Undefined when y_true lacks positives or negatives.
Score roc_auc(const std::vector<int>& y_true, const std::vector<double>& y_score);

// Every distinct score is a threshold (no points dropped); predictions are `y_score >= threshold`.
// The first point is (0, 0) at threshold +infinity, the last is (1, 1). Undefined (empty, `reason` set) when
// y_true lacks positives or negatives.
struct RocCurve {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<double> thresholds;  // strictly decreasing
  std::string reason;

  bool defined() const { return reason.empty(); }
};
RocCurve roc_curve(const std::vector<int>& y_true, const std::vector<double>& y_score);

// The rule youden_threshold applies, for writing into results files.
inline constexpr const char* kYoudenRule =
    "Youden's J: the threshold t among the observed scores that maximises TPR - FPR with predictions "
    "y_score >= t; on equal J the highest such threshold";

struct ThresholdChoice {
  std::optional<double> threshold;  // empty when undefined (one class only)
  double youden_j = 0.0;
  double tpr = 0.0;
  double fpr = 0.0;
  std::string reason;
};
ThresholdChoice youden_threshold(const std::vector<int>& y_true, const std::vector<double>& y_score);

// y_pred[i] = y_score[i] >= threshold.
std::vector<int> predict_at_threshold(const std::vector<double>& y_score, double threshold);

// Binary metrics of `y_score >= threshold`. Ratios with a zero denominator are 0 (zero_division = 0).
struct ThresholdMetrics {
  double threshold = 0.0;
  std::int64_t n_pos = 0, n_neg = 0;
  std::int64_t true_pos = 0, false_pos = 0, true_neg = 0, false_neg = 0;
  double accuracy = 0.0;
  Score balanced_accuracy;  // mean recall over the classes present in y_true
  double precision = 0.0;   // of the positive class
  double recall = 0.0;      // sensitivity
  double specificity = 0.0;
  double f1 = 0.0;
  double precision_weighted = 0.0;  // both classes, weighted by their support in y_true
  double recall_weighted = 0.0;
  double f1_weighted = 0.0;
};
ThresholdMetrics metrics_at_threshold(const std::vector<int>& y_true, const std::vector<double>& y_score,
                                      double threshold);

// ---------------------------------------------------------------------------------------------------------
// Multi-label and multi-class AUC

// Per-label (or per-class one-vs-rest) AUC and their averages. Labels without positives or without
// negatives are undefined in `per_label`, listed in `excluded` and left out of the averages; the averages
// then carry a warning naming them. scikit-learn raises instead of averaging in that case.
struct AveragedAuc {
  std::vector<Score> per_label;
  std::vector<int> included;
  std::vector<int> excluded;
  Score macro;     // unweighted mean over `included`
  Score weighted;  // mean over `included` weighted by positives (support)
};

AveragedAuc multilabel_roc_auc(const LabelMatrix& y_true, const ScoreMatrix& y_score);
// AUC of all (study, label) pairs pooled together (scikit-learn's average="micro").
Score micro_roc_auc(const LabelMatrix& y_true, const ScoreMatrix& y_score);

// Multi-class: y_true[i] in [0, K), y_score[i][k] the score of class k. One-vs-rest per class.
AveragedAuc multiclass_roc_auc_ovr(const std::vector<int>& y_true, const ScoreMatrix& y_score);
// One-vs-one (Hand & Till): for every pair of classes present in y_true, the mean of AUC(a vs b, score a) and
// AUC(b vs a, score b) on the studies of those two classes; macro = mean over pairs, weighted = weighted by
// the pair's share of studies. Classes absent from y_true are left out with a warning; undefined with < 2
// classes.
Score multiclass_roc_auc_ovo(const std::vector<int>& y_true, const ScoreMatrix& y_score,
                             Average average = Average::kMacro);

// ---------------------------------------------------------------------------------------------------------
// Thresholded predictions (labels are any integers unless stated)

// Index of the largest entry of each row; the first one on ties.
int argmax(const std::vector<double>& row);
std::vector<int> argmax(const ScoreMatrix& y_score);

double accuracy(const std::vector<int>& y_true, const std::vector<int>& y_pred);

// Mean recall over the classes present in y_true. Classes only predicted are ignored (with a warning).
// `adjusted` rescales so chance is 0 and perfect is 1: (score - 1/C) / (1 - 1/C) with C the number of classes
// in y_true; undefined when C = 1.
Score balanced_accuracy(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                        bool adjusted = false);

struct PrecisionRecallF1 {
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
};

// Per-class values for `labels` (default: sorted union of y_true and y_pred), zero_division = 0.
struct PerClassPrf {
  std::vector<int> labels;
  std::vector<double> precision, recall, f1;
  std::vector<std::int64_t> support;  // count in y_true
};
PerClassPrf precision_recall_f1_per_class(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                          const std::vector<int>& labels = {});

// Averages as scikit-learn's `average=`: kBinary reports class `pos_label` (labels must be 0/1), kMacro the
// unweighted mean over `labels`, kWeighted the mean weighted by support, kMicro pools the counts.
// kSamples is for multi-label only. zero_division = 0 throughout.
PrecisionRecallF1 precision_recall_f1(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                      Average average, const std::vector<int>& labels = {},
                                      int pos_label = 1);
// Multi-label (0/1 matrices); kSamples averages the per-study values; kBinary is not accepted.
PrecisionRecallF1 precision_recall_f1(const LabelMatrix& y_true, const LabelMatrix& y_pred, Average average);

// counts[i][j] = studies with true label labels[i] predicted as labels[j]; labels default to the sorted union
// of y_true and y_pred; studies whose true or predicted label is not in `labels` are not counted.
struct ConfusionMatrix {
  std::vector<int> labels;
  std::vector<std::vector<std::int64_t>> counts;
};
ConfusionMatrix confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                 const std::vector<int>& labels = {});

// ---------------------------------------------------------------------------------------------------------
// Bootstrap confidence intervals (percentile method)

struct BootstrapOptions {
  int resamples = 1000;
  double confidence = 0.95;
  std::uint64_t seed = 0;
};

// A metric evaluated on a resample, given as the indices of the chosen studies (with repetitions).
// Returning an undefined Score skips that resample (it is counted).
using ResampleMetric = std::function<Score(const std::vector<std::size_t>& indices)>;
// A binary metric such as roc_auc.
using BinaryMetric = std::function<Score(const std::vector<int>& y_true, const std::vector<double>& y_score)>;

struct ConfidenceInterval {
  Score estimate;               // the metric on all studies
  std::optional<double> lower;  // empty when fewer than 2 resamples were usable
  std::optional<double> upper;
  int resamples_used = 0;
  int resamples_skipped = 0;       // resamples missing a class or where the metric was undefined
  std::vector<double> replicates;  // the metric on each used resample, in draw order
  std::string reason;              // why lower/upper are empty

  bool defined() const { return lower.has_value(); }
};

// Draws `options.resamples` resamples of n_studies studies with replacement from std::mt19937_64(seed).
ConfidenceInterval bootstrap_ci(std::size_t n_studies, const ResampleMetric& metric,
                                const BootstrapOptions& options = {});
// Resamples (y_true, y_score) pairs; a resample lacking a class present in y_true is skipped and counted.
ConfidenceInterval bootstrap_ci(const std::vector<int>& y_true, const std::vector<double>& y_score,
                                const BinaryMetric& metric, const BootstrapOptions& options = {});

// metric_a - metric_b on the same resamples of the same studies (paired bootstrap).
struct PairedDifference {
  Score estimate;  // metric_a - metric_b on all studies
  std::optional<double> lower;
  std::optional<double> upper;
  // Two-sided bootstrap p-value for "no difference": 2 * min(share of differences <= 0, share >= 0), at
  // most 1.
  std::optional<double> p_value;
  int resamples_used = 0;
  int resamples_skipped = 0;
  std::vector<double> replicates;
  std::string reason;

  bool defined() const { return lower.has_value(); }
};
PairedDifference paired_bootstrap_difference(std::size_t n_studies, const ResampleMetric& metric_a,
                                             const ResampleMetric& metric_b,
                                             const BootstrapOptions& options = {});
// Two score sets for the same studies (e.g. two models), compared with one binary metric.
PairedDifference paired_bootstrap_difference(const std::vector<int>& y_true,
                                             const std::vector<double>& score_a,
                                             const std::vector<double>& score_b, const BinaryMetric& metric,
                                             const BootstrapOptions& options = {});

// The entries of `values` at `indices` (a resample).
template <typename T>
std::vector<T> take(const std::vector<T>& values, const std::vector<std::size_t>& indices) {
  std::vector<T> out;
  out.reserve(indices.size());
  for (std::size_t index : indices)
    out.push_back(values.at(index));
  return out;
}

// The percentile of sorted values with linear interpolation (numpy's default), q in [0, 1].
double percentile_sorted(const std::vector<double>& sorted_values, double q);

}  // namespace hlip::eval
