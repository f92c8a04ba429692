#include "hlip/eval/metrics.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <utility>

#include "hlip/core/error.h"

namespace hlip::eval {

double Score::get() const {
  if (!value) throw Error("metric is undefined: " + reason);
  return *value;
}

Score Score::of(double value, std::string warning) {
  Score score;
  score.value = value;
  score.warning = std::move(warning);
  return score;
}

Score Score::undefined(std::string reason) {
  Score score;
  score.reason = std::move(reason);
  return score;
}

namespace {

template <typename A, typename B>
void check_same_length(const char* name_a, const std::vector<A>& a, const char* name_b,
                       const std::vector<B>& b) {
  if (a.size() != b.size()) {
    throw Error(fmt::format("{} has {} entries but {} has {}", name_b, b.size(), name_a, a.size()));
  }
  if (a.empty()) throw Error(fmt::format("{} is empty", name_a));
}

void check_binary_labels(const char* name, const std::vector<int>& labels) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1) {
      throw Error(fmt::format("{}[{}] is {}: binary labels must be 0 or 1", name, i, labels[i]));
    }
  }
}

void check_scores(const char* name, const std::vector<double>& scores) {
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) throw Error(fmt::format("{}[{}] is NaN", name, i));
  }
}

void check_binary_inputs(const std::vector<int>& y_true, const std::vector<double>& y_score,
                         const char* score_name = "y_score") {
  check_same_length("y_true", y_true, score_name, y_score);
  check_binary_labels("y_true", y_true);
  check_scores(score_name, y_score);
}

// Number of columns of a rectangular, non-empty matrix.
template <typename T>
std::size_t matrix_width(const char* name, const std::vector<std::vector<T>>& matrix) {
  if (matrix.empty()) throw Error(fmt::format("{} has no rows", name));
  const std::size_t width = matrix[0].size();
  if (width == 0) throw Error(fmt::format("{} row 0 has no columns", name));
  for (std::size_t i = 1; i < matrix.size(); ++i) {
    if (matrix[i].size() != width) {
      throw Error(fmt::format("{} row {} has {} columns but row 0 has {}", name, i, matrix[i].size(), width));
    }
  }
  return width;
}

std::size_t check_same_shape(const LabelMatrix& y_true, const char* name_b, std::size_t rows_b,
                             std::size_t width_b) {
  const std::size_t width = matrix_width("y_true", y_true);
  if (y_true.size() != rows_b || width != width_b) {
    throw Error(
        fmt::format("{} is {}x{} but y_true is {}x{}", name_b, rows_b, width_b, y_true.size(), width));
  }
  return width;
}

std::vector<double> column(const ScoreMatrix& matrix, std::size_t j) {
  std::vector<double> out(matrix.size());
  for (std::size_t i = 0; i < matrix.size(); ++i)
    out[i] = matrix[i][j];
  return out;
}

std::vector<int> column(const LabelMatrix& matrix, std::size_t j) {
  std::vector<int> out(matrix.size());
  for (std::size_t i = 0; i < matrix.size(); ++i)
    out[i] = matrix[i][j];
  return out;
}

struct ClassCounts {
  std::int64_t pos = 0;
  std::int64_t neg = 0;
};

ClassCounts count_classes(const std::vector<int>& y_true) {
  ClassCounts counts;
  for (int y : y_true)
    (y == 1 ? counts.pos : counts.neg) += 1;
  return counts;
}

std::string one_class_reason(const ClassCounts& counts, const char* what = "ROC AUC") {
  return fmt::format("only one class present in y_true ({} positives, {} negatives): {} is undefined",
                     counts.pos, counts.neg, what);
}

// Indices sorted by decreasing score.
std::vector<std::size_t> order_by_decreasing_score(const std::vector<double>& y_score) {
  std::vector<std::size_t> order(y_score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return y_score[a] > y_score[b]; });
  return order;
}

// Cumulative (false positives, true positives) at each distinct threshold, in decreasing threshold order.
struct RocSteps {
  std::vector<double> thresholds;
  std::vector<std::int64_t> false_pos, true_pos;
};

RocSteps roc_steps(const std::vector<int>& y_true, const std::vector<double>& y_score) {
  RocSteps steps;
  const std::vector<std::size_t> order = order_by_decreasing_score(y_score);
  std::int64_t fp = 0, tp = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    (y_true[order[k]] == 1 ? tp : fp) += 1;
    if (k + 1 == order.size() || y_score[order[k + 1]] != y_score[order[k]]) {
      steps.thresholds.push_back(y_score[order[k]]);
      steps.false_pos.push_back(fp);
      steps.true_pos.push_back(tp);
    }
  }
  return steps;
}

std::string join_ints(const std::vector<int>& values) {
  return fmt::format("{}", fmt::join(values, ", "));
}

// Sorted union of the labels in the given vectors.
std::vector<int> sorted_union(const std::vector<int>& a, const std::vector<int>& b) {
  std::set<int> labels(a.begin(), a.end());
  labels.insert(b.begin(), b.end());
  return {labels.begin(), labels.end()};
}

// Per-label true positives, predicted counts and true counts.
struct LabelCounts {
  std::vector<int> labels;
  std::vector<std::int64_t> true_pos, predicted, actual;
};

LabelCounts count_labels(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                         const std::vector<int>& labels) {
  check_same_length("y_true", y_true, "y_pred", y_pred);
  LabelCounts counts;
  counts.labels = labels.empty() ? sorted_union(y_true, y_pred) : labels;
  std::map<int, std::size_t> index;
  for (std::size_t k = 0; k < counts.labels.size(); ++k) {
    if (!index.emplace(counts.labels[k], k).second) {
      throw Error(fmt::format("labels lists {} twice", counts.labels[k]));
    }
  }
  const std::size_t n = counts.labels.size();
  counts.true_pos.assign(n, 0);
  counts.predicted.assign(n, 0);
  counts.actual.assign(n, 0);
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const auto t = index.find(y_true[i]);
    const auto p = index.find(y_pred[i]);
    if (t != index.end()) counts.actual[t->second] += 1;
    if (p != index.end()) counts.predicted[p->second] += 1;
    if (t != index.end() && y_true[i] == y_pred[i]) counts.true_pos[t->second] += 1;
  }
  return counts;
}

double ratio_or_zero(double numerator, double denominator) {
  return denominator == 0 ? 0.0 : numerator / denominator;
}

// F1 from precision and recall in scikit-learn's order of operations, 0 when both are 0.
double f1_of(double precision, double recall) {
  const double denominator = precision + recall;
  return denominator == 0 ? 0.0 : 2.0 * precision * recall / denominator;
}

PrecisionRecallF1 prf_of_counts(double true_pos, double predicted, double actual) {
  PrecisionRecallF1 out;
  out.precision = ratio_or_zero(true_pos, predicted);
  out.recall = ratio_or_zero(true_pos, actual);
  out.f1 = f1_of(out.precision, out.recall);
  return out;
}

// Macro, weighted or micro average of per-label counts (zero_division = 0).
PrecisionRecallF1 average_counts(const LabelCounts& counts, Average average) {
  const std::size_t n = counts.labels.size();
  if (average == Average::kMicro) {
    const auto sum = [](const std::vector<std::int64_t>& v) {
      return static_cast<double>(std::accumulate(v.begin(), v.end(), std::int64_t{0}));
    };
    return prf_of_counts(sum(counts.true_pos), sum(counts.predicted), sum(counts.actual));
  }
  double weight_total = 0;
  PrecisionRecallF1 sum;
  for (std::size_t k = 0; k < n; ++k) {
    const PrecisionRecallF1 one =
        prf_of_counts(static_cast<double>(counts.true_pos[k]), static_cast<double>(counts.predicted[k]),
                      static_cast<double>(counts.actual[k]));
    const double weight = average == Average::kWeighted ? static_cast<double>(counts.actual[k]) : 1.0;
    sum.precision += weight * one.precision;
    sum.recall += weight * one.recall;
    sum.f1 += weight * one.f1;
    weight_total += weight;
  }
  // Weighted with no true samples of any label: every ratio is 0/0, reported as 0.
  if (weight_total == 0) return {};
  return {sum.precision / weight_total, sum.recall / weight_total, sum.f1 / weight_total};
}

const char* average_name(Average average) {
  switch (average) {
    case Average::kBinary:
      return "binary";
    case Average::kMacro:
      return "macro";
    case Average::kMicro:
      return "micro";
    case Average::kWeighted:
      return "weighted";
    case Average::kSamples:
      return "samples";
  }
  return "?";
}

void check_class_labels(const std::vector<int>& y_true, std::size_t n_classes) {
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i] < 0 || static_cast<std::size_t>(y_true[i]) >= n_classes) {
      throw Error(fmt::format("y_true[{}] is {}: classes must be in [0, {}) (the score columns)", i,
                              y_true[i], n_classes));
    }
  }
}

void check_score_matrix(const ScoreMatrix& y_score) {
  for (std::size_t i = 0; i < y_score.size(); ++i) {
    for (std::size_t j = 0; j < y_score[i].size(); ++j) {
      if (std::isnan(y_score[i][j])) throw Error(fmt::format("y_score[{}][{}] is NaN", i, j));
    }
  }
}

// Averages a set of per-label AUCs, listing and skipping the undefined ones.
AveragedAuc average_aucs(std::vector<Score> per_label, const std::vector<double>& support, const char* what) {
  AveragedAuc out;
  out.per_label = std::move(per_label);
  double sum = 0, weighted_sum = 0, weight_total = 0;
  for (std::size_t k = 0; k < out.per_label.size(); ++k) {
    if (!out.per_label[k].defined()) {
      out.excluded.push_back(static_cast<int>(k));
      continue;
    }
    out.included.push_back(static_cast<int>(k));
    sum += *out.per_label[k].value;
    weighted_sum += support[k] * *out.per_label[k].value;
    weight_total += support[k];
  }
  if (out.included.empty()) {
    const std::string reason =
        fmt::format("no {} has both positives and negatives: AUC is undefined for all of them", what);
    out.macro = Score::undefined(reason);
    out.weighted = Score::undefined(reason);
    return out;
  }
  std::string warning;
  if (!out.excluded.empty()) {
    warning = fmt::format("{}s {} excluded from the mean (no positives or no negatives in y_true)", what,
                          join_ints(out.excluded));
  }
  out.macro = Score::of(sum / static_cast<double>(out.included.size()), warning);
  out.weighted = Score::of(weighted_sum / weight_total, warning);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Binary scores

Score roc_auc(const std::vector<int>& y_true, const std::vector<double>& y_score) {
  check_binary_inputs(y_true, y_score);
  const ClassCounts counts = count_classes(y_true);
  if (counts.pos == 0 || counts.neg == 0) return Score::undefined(one_class_reason(counts));
  // Twice the Mann-Whitney U, accumulated in integers so the result is exact up to the final division:
  // walking down the distinct thresholds, each positive beats every negative scored lower and ties the ones
  // level.
  const RocSteps steps = roc_steps(y_true, y_score);
  std::int64_t twice_u = 0;
  std::int64_t prev_fp = 0, prev_tp = 0;
  for (std::size_t k = 0; k < steps.thresholds.size(); ++k) {
    const std::int64_t group_pos = steps.true_pos[k] - prev_tp;
    const std::int64_t group_neg = steps.false_pos[k] - prev_fp;
    const std::int64_t neg_below = counts.neg - steps.false_pos[k];
    twice_u += 2 * group_pos * neg_below + group_pos * group_neg;
    prev_fp = steps.false_pos[k];
    prev_tp = steps.true_pos[k];
  }
  return Score::of(static_cast<double>(twice_u) /
                   (2.0 * static_cast<double>(counts.pos) * static_cast<double>(counts.neg)));
}

RocCurve roc_curve(const std::vector<int>& y_true, const std::vector<double>& y_score) {
  check_binary_inputs(y_true, y_score);
  RocCurve curve;
  const ClassCounts counts = count_classes(y_true);
  if (counts.pos == 0 || counts.neg == 0) {
    curve.reason = one_class_reason(counts, "ROC curve");
    return curve;
  }
  const RocSteps steps = roc_steps(y_true, y_score);
  curve.fpr.push_back(0.0);
  curve.tpr.push_back(0.0);
  curve.thresholds.push_back(std::numeric_limits<double>::infinity());
  for (std::size_t k = 0; k < steps.thresholds.size(); ++k) {
    curve.fpr.push_back(static_cast<double>(steps.false_pos[k]) / static_cast<double>(counts.neg));
    curve.tpr.push_back(static_cast<double>(steps.true_pos[k]) / static_cast<double>(counts.pos));
    curve.thresholds.push_back(steps.thresholds[k]);
  }
  return curve;
}

ThresholdChoice youden_threshold(const std::vector<int>& y_true, const std::vector<double>& y_score) {
  check_binary_inputs(y_true, y_score);
  ThresholdChoice choice;
  const ClassCounts counts = count_classes(y_true);
  if (counts.pos == 0 || counts.neg == 0) {
    choice.reason = one_class_reason(counts, "Youden's J");
    return choice;
  }
  // J * n_pos * n_neg = tp * n_neg - fp * n_pos is an integer, so equal J values compare equal.
  const RocSteps steps = roc_steps(y_true, y_score);
  std::size_t best = 0;
  std::int64_t best_scaled_j = std::numeric_limits<std::int64_t>::min();
  for (std::size_t k = 0; k < steps.thresholds.size(); ++k) {
    const std::int64_t scaled_j = steps.true_pos[k] * counts.neg - steps.false_pos[k] * counts.pos;
    if (scaled_j > best_scaled_j) {
      best_scaled_j = scaled_j;
      best = k;
    }
  }
  choice.threshold = steps.thresholds[best];
  choice.tpr = static_cast<double>(steps.true_pos[best]) / static_cast<double>(counts.pos);
  choice.fpr = static_cast<double>(steps.false_pos[best]) / static_cast<double>(counts.neg);
  choice.youden_j = choice.tpr - choice.fpr;
  return choice;
}

std::vector<int> predict_at_threshold(const std::vector<double>& y_score, double threshold) {
  check_scores("y_score", y_score);
  std::vector<int> y_pred(y_score.size());
  for (std::size_t i = 0; i < y_score.size(); ++i)
    y_pred[i] = y_score[i] >= threshold ? 1 : 0;
  return y_pred;
}

ThresholdMetrics metrics_at_threshold(const std::vector<int>& y_true, const std::vector<double>& y_score,
                                      double threshold) {
  check_binary_inputs(y_true, y_score);
  if (std::isnan(threshold)) throw Error("threshold is NaN");
  const std::vector<int> y_pred = predict_at_threshold(y_score, threshold);
  ThresholdMetrics out;
  out.threshold = threshold;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i] == 1) {
      (y_pred[i] == 1 ? out.true_pos : out.false_neg) += 1;
    } else {
      (y_pred[i] == 1 ? out.false_pos : out.true_neg) += 1;
    }
  }
  out.n_pos = out.true_pos + out.false_neg;
  out.n_neg = out.true_neg + out.false_pos;
  out.accuracy = accuracy(y_true, y_pred);
  out.balanced_accuracy = balanced_accuracy(y_true, y_pred);
  const PrecisionRecallF1 positive = precision_recall_f1(y_true, y_pred, Average::kBinary);
  out.precision = positive.precision;
  out.recall = positive.recall;
  out.f1 = positive.f1;
  out.specificity = ratio_or_zero(static_cast<double>(out.true_neg), static_cast<double>(out.n_neg));
  const PrecisionRecallF1 weighted = precision_recall_f1(y_true, y_pred, Average::kWeighted, {0, 1});
  out.precision_weighted = weighted.precision;
  out.recall_weighted = weighted.recall;
  out.f1_weighted = weighted.f1;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Multi-label and multi-class AUC

AveragedAuc multilabel_roc_auc(const LabelMatrix& y_true, const ScoreMatrix& y_score) {
  const std::size_t width =
      check_same_shape(y_true, "y_score", y_score.size(), matrix_width("y_score", y_score));
  std::vector<Score> per_label;
  std::vector<double> support;
  for (std::size_t j = 0; j < width; ++j) {
    const std::vector<int> labels = column(y_true, j);
    check_binary_labels(fmt::format("y_true[:, {}]", j).c_str(), labels);
    per_label.push_back(roc_auc(labels, column(y_score, j)));
    support.push_back(static_cast<double>(count_classes(labels).pos));
  }
  return average_aucs(std::move(per_label), support, "label");
}

Score micro_roc_auc(const LabelMatrix& y_true, const ScoreMatrix& y_score) {
  check_same_shape(y_true, "y_score", y_score.size(), matrix_width("y_score", y_score));
  for (std::size_t i = 0; i < y_true.size(); ++i)
    check_binary_labels(fmt::format("y_true[{}]", i).c_str(), y_true[i]);
  check_score_matrix(y_score);
  std::vector<int> labels;
  std::vector<double> scores;
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    labels.insert(labels.end(), y_true[i].begin(), y_true[i].end());
    scores.insert(scores.end(), y_score[i].begin(), y_score[i].end());
  }
  return roc_auc(labels, scores);
}

AveragedAuc multiclass_roc_auc_ovr(const std::vector<int>& y_true, const ScoreMatrix& y_score) {
  const std::size_t n_classes = matrix_width("y_score", y_score);
  check_same_length("y_true", y_true, "y_score", y_score);
  check_class_labels(y_true, n_classes);
  check_score_matrix(y_score);
  std::vector<Score> per_class;
  std::vector<double> support;
  for (std::size_t k = 0; k < n_classes; ++k) {
    std::vector<int> is_class(y_true.size());
    for (std::size_t i = 0; i < y_true.size(); ++i)
      is_class[i] = y_true[i] == static_cast<int>(k) ? 1 : 0;
    per_class.push_back(roc_auc(is_class, column(y_score, k)));
    support.push_back(static_cast<double>(count_classes(is_class).pos));
  }
  return average_aucs(std::move(per_class), support, "class");
}

Score multiclass_roc_auc_ovo(const std::vector<int>& y_true, const ScoreMatrix& y_score, Average average) {
  if (average != Average::kMacro && average != Average::kWeighted) {
    throw Error(
        fmt::format("one-vs-one AUC: average is \"{}\", must be macro or weighted", average_name(average)));
  }
  const std::size_t n_classes = matrix_width("y_score", y_score);
  check_same_length("y_true", y_true, "y_score", y_score);
  check_class_labels(y_true, n_classes);
  check_score_matrix(y_score);
  std::vector<std::int64_t> support(n_classes, 0);
  for (int y : y_true)
    support[static_cast<std::size_t>(y)] += 1;
  std::vector<int> present, absent;
  for (std::size_t k = 0; k < n_classes; ++k)
    (support[k] > 0 ? present : absent).push_back(static_cast<int>(k));
  if (present.size() < 2) {
    return Score::undefined(
        fmt::format("one-vs-one AUC needs at least two classes in y_true; found {}", present.size()));
  }
  double sum = 0, weight_total = 0;
  for (std::size_t ia = 0; ia < present.size(); ++ia) {
    for (std::size_t ib = ia + 1; ib < present.size(); ++ib) {
      const int a = present[ia], b = present[ib];
      std::vector<int> is_a, is_b;
      std::vector<double> score_a, score_b;
      for (std::size_t i = 0; i < y_true.size(); ++i) {
        if (y_true[i] != a && y_true[i] != b) continue;
        is_a.push_back(y_true[i] == a ? 1 : 0);
        is_b.push_back(y_true[i] == b ? 1 : 0);
        score_a.push_back(y_score[i][static_cast<std::size_t>(a)]);
        score_b.push_back(y_score[i][static_cast<std::size_t>(b)]);
      }
      const double pair_auc = (roc_auc(is_a, score_a).get() + roc_auc(is_b, score_b).get()) / 2;
      const double weight = average == Average::kWeighted
                                ? static_cast<double>(is_a.size()) / static_cast<double>(y_true.size())
                                : 1.0;
      sum += weight * pair_auc;
      weight_total += weight;
    }
  }
  std::string warning;
  if (!absent.empty()) {
    warning =
        fmt::format("classes {} absent from y_true are left out of the one-vs-one pairs", join_ints(absent));
  }
  return Score::of(sum / weight_total, warning);
}

// ---------------------------------------------------------------------------------------------------------
// Thresholded predictions

int argmax(const std::vector<double>& row) {
  if (row.empty()) throw Error("argmax of an empty row");
  std::size_t best = 0;
  for (std::size_t k = 0; k < row.size(); ++k) {
    if (std::isnan(row[k])) throw Error(fmt::format("argmax: entry {} is NaN", k));
    if (row[k] > row[best]) best = k;
  }
  return static_cast<int>(best);
}

std::vector<int> argmax(const ScoreMatrix& y_score) {
  matrix_width("y_score", y_score);
  std::vector<int> out;
  out.reserve(y_score.size());
  for (const auto& row : y_score)
    out.push_back(argmax(row));
  return out;
}

double accuracy(const std::vector<int>& y_true, const std::vector<int>& y_pred) {
  check_same_length("y_true", y_true, "y_pred", y_pred);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < y_true.size(); ++i)
    correct += y_true[i] == y_pred[i] ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(y_true.size());
}

Score balanced_accuracy(const std::vector<int>& y_true, const std::vector<int>& y_pred, bool adjusted) {
  const LabelCounts counts = count_labels(y_true, y_pred, {});
  double recall_sum = 0;
  std::size_t n_present = 0;
  std::vector<int> only_predicted;
  for (std::size_t k = 0; k < counts.labels.size(); ++k) {
    if (counts.actual[k] == 0) {
      only_predicted.push_back(counts.labels[k]);
      continue;
    }
    recall_sum += static_cast<double>(counts.true_pos[k]) / static_cast<double>(counts.actual[k]);
    ++n_present;
  }
  std::string warning;
  if (!only_predicted.empty()) {
    warning = fmt::format("y_pred contains classes not in y_true ({}); they are ignored",
                          join_ints(only_predicted));
  }
  double score = recall_sum / static_cast<double>(n_present);
  if (adjusted) {
    if (n_present < 2) {
      Score out = Score::undefined(fmt::format(
          "adjusted balanced accuracy needs at least two classes in y_true; found {} (chance level is 1)",
          n_present));
      out.warning = warning;
      return out;
    }
    const double chance = 1.0 / static_cast<double>(n_present);
    score -= chance;
    score /= 1.0 - chance;
  }
  return Score::of(score, warning);
}

PerClassPrf precision_recall_f1_per_class(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                          const std::vector<int>& labels) {
  const LabelCounts counts = count_labels(y_true, y_pred, labels);
  PerClassPrf out;
  out.labels = counts.labels;
  for (std::size_t k = 0; k < counts.labels.size(); ++k) {
    const PrecisionRecallF1 one =
        prf_of_counts(static_cast<double>(counts.true_pos[k]), static_cast<double>(counts.predicted[k]),
                      static_cast<double>(counts.actual[k]));
    out.precision.push_back(one.precision);
    out.recall.push_back(one.recall);
    out.f1.push_back(one.f1);
    out.support.push_back(counts.actual[k]);
  }
  return out;
}

PrecisionRecallF1 precision_recall_f1(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                      Average average, const std::vector<int>& labels, int pos_label) {
  switch (average) {
    case Average::kBinary: {
      check_same_length("y_true", y_true, "y_pred", y_pred);
      check_binary_labels("y_true", y_true);
      check_binary_labels("y_pred", y_pred);
      const LabelCounts counts = count_labels(y_true, y_pred, {pos_label});
      return prf_of_counts(static_cast<double>(counts.true_pos[0]), static_cast<double>(counts.predicted[0]),
                           static_cast<double>(counts.actual[0]));
    }
    case Average::kMacro:
    case Average::kMicro:
    case Average::kWeighted:
      return average_counts(count_labels(y_true, y_pred, labels), average);
    case Average::kSamples:
      break;
  }
  throw Error("average is \"samples\": it needs multi-label (matrix) inputs");
}

PrecisionRecallF1 precision_recall_f1(const LabelMatrix& y_true, const LabelMatrix& y_pred, Average average) {
  const std::size_t width = check_same_shape(y_true, "y_pred", y_pred.size(), matrix_width("y_pred", y_pred));
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    check_binary_labels(fmt::format("y_true[{}]", i).c_str(), y_true[i]);
    check_binary_labels(fmt::format("y_pred[{}]", i).c_str(), y_pred[i]);
  }
  if (average == Average::kBinary) {
    throw Error("average is \"binary\": multi-label inputs take macro, micro, weighted or samples");
  }
  if (average == Average::kSamples) {
    PrecisionRecallF1 sum;
    for (std::size_t i = 0; i < y_true.size(); ++i) {
      std::int64_t true_pos = 0, predicted = 0, actual = 0;
      for (std::size_t j = 0; j < width; ++j) {
        true_pos += y_true[i][j] & y_pred[i][j];
        predicted += y_pred[i][j];
        actual += y_true[i][j];
      }
      const PrecisionRecallF1 one = prf_of_counts(
          static_cast<double>(true_pos), static_cast<double>(predicted), static_cast<double>(actual));
      sum.precision += one.precision;
      sum.recall += one.recall;
      sum.f1 += one.f1;
    }
    const double n = static_cast<double>(y_true.size());
    return {sum.precision / n, sum.recall / n, sum.f1 / n};
  }
  LabelCounts counts;
  counts.true_pos.assign(width, 0);
  counts.predicted.assign(width, 0);
  counts.actual.assign(width, 0);
  for (std::size_t j = 0; j < width; ++j)
    counts.labels.push_back(static_cast<int>(j));
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    for (std::size_t j = 0; j < width; ++j) {
      counts.true_pos[j] += y_true[i][j] & y_pred[i][j];
      counts.predicted[j] += y_pred[i][j];
      counts.actual[j] += y_true[i][j];
    }
  }
  return average_counts(counts, average);
}

ConfusionMatrix confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                 const std::vector<int>& labels) {
  check_same_length("y_true", y_true, "y_pred", y_pred);
  ConfusionMatrix out;
  out.labels = labels.empty() ? sorted_union(y_true, y_pred) : labels;
  std::map<int, std::size_t> index;
  for (std::size_t k = 0; k < out.labels.size(); ++k) {
    if (!index.emplace(out.labels[k], k).second)
      throw Error(fmt::format("labels lists {} twice", out.labels[k]));
  }
  out.counts.assign(out.labels.size(), std::vector<std::int64_t>(out.labels.size(), 0));
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    const auto t = index.find(y_true[i]);
    const auto p = index.find(y_pred[i]);
    if (t != index.end() && p != index.end()) out.counts[t->second][p->second] += 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Bootstrap

double percentile_sorted(const std::vector<double>& sorted_values, double q) {
  if (sorted_values.empty()) throw Error("percentile of no values");
  if (!(q >= 0.0 && q <= 1.0)) throw Error(fmt::format("percentile: q is {}, must be in [0, 1]", q));
  const double position = q * static_cast<double>(sorted_values.size() - 1);
  const std::size_t below = static_cast<std::size_t>(std::floor(position));
  if (below + 1 >= sorted_values.size()) return sorted_values.back();
  const double fraction = position - static_cast<double>(below);
  return sorted_values[below] + fraction * (sorted_values[below + 1] - sorted_values[below]);
}

namespace {

void check_options(const BootstrapOptions& options, std::size_t n_studies) {
  if (options.resamples < 1)
    throw Error(fmt::format("bootstrap resamples is {}, must be >= 1", options.resamples));
  if (!(options.confidence > 0.0 && options.confidence < 1.0)) {
    throw Error(fmt::format("bootstrap confidence is {}, must be in (0, 1)", options.confidence));
  }
  if (n_studies == 0) throw Error("bootstrap over 0 studies");
}

// Uniform in [0, n) by rejection from the raw 64-bit output, so a seed gives the same resamples with every
// standard library (std::uniform_int_distribution's algorithm is implementation-defined).
std::size_t uniform_index(std::mt19937_64& rng, std::size_t n) {
  const std::uint64_t range = n;
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = max - max % range;
  std::uint64_t draw = rng();
  while (draw >= limit)
    draw = rng();
  return static_cast<std::size_t>(draw % range);
}

std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> indices(n);
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

// Percentile bounds of the replicates, or a reason when there are too few.
std::string percentile_bounds(std::vector<double> replicates, int skipped, double confidence,
                              std::optional<double>& lower, std::optional<double>& upper) {
  if (replicates.size() < 2) {
    return fmt::format("only {} usable resamples ({} skipped for a missing class or an undefined metric)",
                       replicates.size(), skipped);
  }
  std::sort(replicates.begin(), replicates.end());
  const double tail = (1.0 - confidence) / 2.0;
  lower = percentile_sorted(replicates, tail);
  upper = percentile_sorted(replicates, 1.0 - tail);
  return {};
}

// Wraps a binary metric as a ResampleMetric that skips resamples lacking a class present in y_true.
ResampleMetric binary_resample_metric(const std::vector<int>& y_true, const std::vector<double>& y_score,
                                      const BinaryMetric& metric) {
  const ClassCounts all = count_classes(y_true);
  return [&y_true, &y_score, &metric, all](const std::vector<std::size_t>& indices) {
    std::vector<int> labels = take(y_true, indices);
    const ClassCounts counts = count_classes(labels);
    if ((all.pos > 0 && counts.pos == 0) || (all.neg > 0 && counts.neg == 0)) {
      return Score::undefined("resample lacks a class present in y_true");
    }
    return metric(labels, take(y_score, indices));
  };
}

}  // namespace

ConfidenceInterval bootstrap_ci(std::size_t n_studies, const ResampleMetric& metric,
                                const BootstrapOptions& options) {
  check_options(options, n_studies);
  ConfidenceInterval out;
  out.estimate = metric(all_indices(n_studies));
  std::mt19937_64 rng(options.seed);
  std::vector<std::size_t> indices(n_studies);
  for (int b = 0; b < options.resamples; ++b) {
    for (std::size_t& index : indices)
      index = uniform_index(rng, n_studies);
    const Score score = metric(indices);
    if (score.defined()) {
      out.replicates.push_back(*score.value);
    } else {
      ++out.resamples_skipped;
    }
  }
  out.resamples_used = static_cast<int>(out.replicates.size());
  out.reason =
      percentile_bounds(out.replicates, out.resamples_skipped, options.confidence, out.lower, out.upper);
  return out;
}

ConfidenceInterval bootstrap_ci(const std::vector<int>& y_true, const std::vector<double>& y_score,
                                const BinaryMetric& metric, const BootstrapOptions& options) {
  check_binary_inputs(y_true, y_score);
  return bootstrap_ci(y_true.size(), binary_resample_metric(y_true, y_score, metric), options);
}

PairedDifference paired_bootstrap_difference(std::size_t n_studies, const ResampleMetric& metric_a,
                                             const ResampleMetric& metric_b,
                                             const BootstrapOptions& options) {
  check_options(options, n_studies);
  PairedDifference out;
  const std::vector<std::size_t> all = all_indices(n_studies);
  const Score a = metric_a(all), b = metric_b(all);
  if (a.defined() && b.defined()) {
    out.estimate = Score::of(*a.value - *b.value);
  } else {
    out.estimate = Score::undefined(a.defined() ? "metric_b: " + b.reason : "metric_a: " + a.reason);
  }
  std::mt19937_64 rng(options.seed);
  std::vector<std::size_t> indices(n_studies);
  for (int r = 0; r < options.resamples; ++r) {
    for (std::size_t& index : indices)
      index = uniform_index(rng, n_studies);
    const Score ra = metric_a(indices);
    if (!ra.defined()) {
      ++out.resamples_skipped;
      continue;
    }
    const Score rb = metric_b(indices);
    if (!rb.defined()) {
      ++out.resamples_skipped;
      continue;
    }
    out.replicates.push_back(*ra.value - *rb.value);
  }
  out.resamples_used = static_cast<int>(out.replicates.size());
  out.reason =
      percentile_bounds(out.replicates, out.resamples_skipped, options.confidence, out.lower, out.upper);
  if (out.resamples_used > 0) {
    std::int64_t at_most_zero = 0, at_least_zero = 0;
    for (double d : out.replicates) {
      at_most_zero += d <= 0 ? 1 : 0;
      at_least_zero += d >= 0 ? 1 : 0;
    }
    const double used = static_cast<double>(out.resamples_used);
    out.p_value = std::min(1.0, 2.0 * static_cast<double>(std::min(at_most_zero, at_least_zero)) / used);
  }
  return out;
}

PairedDifference paired_bootstrap_difference(const std::vector<int>& y_true,
                                             const std::vector<double>& score_a,
                                             const std::vector<double>& score_b, const BinaryMetric& metric,
                                             const BootstrapOptions& options) {
  check_binary_inputs(y_true, score_a, "score_a");
  check_binary_inputs(y_true, score_b, "score_b");
  return paired_bootstrap_difference(y_true.size(), binary_resample_metric(y_true, score_a, metric),
                                     binary_resample_metric(y_true, score_b, metric), options);
}

}  // namespace hlip::eval
