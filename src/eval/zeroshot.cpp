// Zero-shot classification: class embeddings, scoring, metrics over a split and the results files.
#include "hlip/eval/zeroshot.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/eval/embed.h"
#include "hlip/text/report.h"

namespace hlip::eval {
namespace {

using json = nlohmann::json;

// Texts per text-tower forward when encoding prompts (CT-RATE: 18 classes × 2 × 1 template; CQ500: 11 × 18).
constexpr size_t kTextBatch = 64;

// The class embedding of prompts × templates.
at::Tensor class_embedding(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                           const std::vector<std::string>& prompts,
                           const std::vector<std::string>& templates) {
  return average_embedding(
      embed_texts(model, tokenizer, text::expand_prompts(prompts, templates).texts, kTextBatch));
}

std::optional<int> study_label(const std::map<std::string, int>& labels, const std::string& key,
                               const std::string& study) {
  const auto it = labels.find(key);
  if (it == labels.end()) return std::nullopt;
  if (it->second != 0 && it->second != 1) {
    throw Error(
        fmt::format("study {}: label \"{}\" is {}; zero-shot labels must be 0 or 1", study, key, it->second));
  }
  return it->second;
}

std::string threshold_rule(const ZeroShotTask& task) {
  if (!task.threshold) {
    return "argmax: a study is predicted positive for the class with its highest score (the first class on "
           "ties)";
  }
  std::string rule = fmt::format("score >= {}", *task.threshold);
  if (task.mode == ScoringMode::kPositive) {
    rule += " (on the cosine, which is not a calibrated probability: prefer AUC or the optimal threshold)";
  }
  return rule;
}

std::string score_definition(ScoringMode mode) {
  switch (mode) {
    case ScoringMode::kPositive:
      return "cosine of the image embedding with the class embedding";
    case ScoringMode::kNegativePositive:
      return "softmax(logit_scale * [cosine with the negative class embedding, cosine with the positive "
             "class embedding])[1]";
    case ScoringMode::kMulticlass:
      return "softmax over the task's classes of logit_scale * cosine with each class embedding";
  }
  return "?";
}

json optional_value(const Score& score) {
  return score.defined() ? json(*score.value) : json(nullptr);
}

json threshold_json(const ClassThreshold& at) {
  const ThresholdMetrics& m = at.metrics;
  return {{"threshold", at.threshold ? json(*at.threshold) : json(nullptr)},
          {"threshold_rule", at.rule},
          {"balanced_accuracy", optional_value(m.balanced_accuracy)},
          {"f1_weighted", m.f1_weighted},
          {"precision", m.precision},
          {"recall", m.recall},
          {"specificity", m.specificity},
          {"accuracy", m.accuracy},
          {"f1", m.f1},
          {"tp", m.true_pos},
          {"fp", m.false_pos},
          {"tn", m.true_neg},
          {"fn", m.false_neg}};
}

// The metrics that the means cover, read from one class at one threshold.
std::map<std::string, double> threshold_values(const ThresholdMetrics& m) {
  std::map<std::string, double> out{
      {"f1_weighted", m.f1_weighted}, {"precision", m.precision}, {"recall", m.recall}};
  if (m.balanced_accuracy.defined()) out["balanced_accuracy"] = *m.balanced_accuracy.value;
  return out;
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string quoted = "\"";
  for (char c : value) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string format_value(const std::optional<double>& value) {
  return value ? fmt::format("{:.3f}", *value) : std::string("-");
}

}  // namespace

at::Tensor average_embedding(const at::Tensor& text_features) {
  if (text_features.dim() != 2 || text_features.size(0) == 0) {
    throw Error(fmt::format("text features have shape [{}]; expected [T, E] with T >= 1",
                            fmt::join(text_features.sizes(), ", ")));
  }
  const at::Tensor mean = model::l2_normalize(text_features).mean(0);
  return mean / mean.norm();
}

ZeroShotClassifier::ZeroShotClassifier(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                       ZeroShotTask task)
    : task_(std::move(task)) {
  EvalScope scope(model);
  std::vector<at::Tensor> positive, negative;
  for (const TaskClass& c : task_.classes) {
    positive.push_back(class_embedding(model, tokenizer, c.prompts, c.templates));
    if (task_.mode == ScoringMode::kNegativePositive)
      negative.push_back(class_embedding(model, tokenizer, c.negative_prompts, c.negative_templates));
  }
  positive_ = at::stack(positive);
  if (!negative.empty()) negative_ = at::stack(negative);
  logit_scale_ = task_.logit_scale ? *task_.logit_scale : model.logit_scale.exp().item<double>();
}

ZeroShotClassifier::ZeroShotClassifier(ZeroShotTask task, at::Tensor positive, at::Tensor negative,
                                       double logit_scale)
    : task_(std::move(task)),
      positive_(positive.to(at::kFloat)),
      negative_(negative.defined() ? negative.to(at::kFloat) : negative),
      logit_scale_(logit_scale) {
  const auto k = static_cast<int64_t>(task_.classes.size());
  if (positive_.dim() != 2 || positive_.size(0) != k) {
    throw Error(fmt::format("task {}: positive class embeddings have shape [{}]; expected [{}, E]",
                            task_.name, fmt::join(positive_.sizes(), ", "), k));
  }
  if ((task_.mode == ScoringMode::kNegativePositive) != negative_.defined() ||
      (negative_.defined() && negative_.sizes() != positive_.sizes())) {
    throw Error(
        fmt::format("task {} (mode {}): negative class embeddings [{}] do not fit [{}]", task_.name,
                    to_string(task_.mode),
                    negative_.defined() ? fmt::format("{}", fmt::join(negative_.sizes(), ", ")) : "none",
                    fmt::join(positive_.sizes(), ", ")));
  }
}

at::Tensor ZeroShotClassifier::rows(const at::Tensor& image_features) const {
  at::Tensor features = image_features;
  if (features.dim() == 3) {
    if (task_.image_embedding >= features.size(1)) {
      throw Error(fmt::format("task {} uses image embedding row {} but the model gives {} row(s)", task_.name,
                              task_.image_embedding, features.size(1)));
    }
    features = features.select(1, task_.image_embedding);
  }
  if (features.dim() != 2 || features.size(1) != positive_.size(1)) {
    throw Error(fmt::format("image features have shape [{}]; expected [B, P, {}] or [B, {}]",
                            fmt::join(image_features.sizes(), ", "), positive_.size(1), positive_.size(1)));
  }
  return features.to(at::kCPU, at::kDouble);
}

at::Tensor ZeroShotClassifier::cosine(const at::Tensor& image_features) const {
  return at::matmul(rows(image_features), positive_.to(at::kDouble).t());
}

at::Tensor ZeroShotClassifier::score(const at::Tensor& image_features) const {
  const at::Tensor image = rows(image_features);
  const at::Tensor positive = at::matmul(image, positive_.to(at::kDouble).t());  // [B, K]
  switch (task_.mode) {
    case ScoringMode::kPositive:
      return positive;
    case ScoringMode::kNegativePositive: {
      const at::Tensor negative = at::matmul(image, negative_.to(at::kDouble).t());
      return at::softmax(at::stack({negative, positive}, -1) * logit_scale_, -1).select(-1, 1).contiguous();
    }
    case ScoringMode::kMulticlass:
      return at::softmax(positive * logit_scale_, 1);
  }
  return positive;
}

std::vector<int> task_labels(const ZeroShotTask& task, const std::map<std::string, int>& labels,
                             const std::string& study, std::vector<std::string>* reasons) {
  const size_t k = task.classes.size();
  std::vector<int> out(k, -1);
  std::vector<std::string> why(k);
  if (task.mode == ScoringMode::kMulticlass) {
    int positives = 0;
    std::string missing;
    for (size_t c = 0; c < k; ++c) {
      const auto value = study_label(labels, task.classes[c].label, study);
      if (!value) {
        missing = task.classes[c].label;
        continue;
      }
      out[c] = *value;
      positives += *value;
    }
    std::string reason;
    if (!missing.empty()) {
      reason = "label missing";
    } else if (positives == 0) {
      reason = "no class of the task labelled 1";
    } else if (positives > 1) {
      reason = "several classes of the task labelled 1";
    }
    if (!reason.empty()) {
      std::fill(out.begin(), out.end(), -1);
      std::fill(why.begin(), why.end(), reason);
    }
  } else {
    for (size_t c = 0; c < k; ++c) {
      const TaskClass& entry = task.classes[c];
      const auto value = study_label(labels, entry.label, study);
      if (!value) {
        why[c] = "label missing";
      } else if (*value == 1) {
        out[c] = 1;
      } else if (entry.negative_label.empty()) {
        out[c] = 0;
      } else {
        const auto negative = study_label(labels, entry.negative_label, study);
        if (!negative) {
          why[c] = "label missing";
        } else if (*negative == 1) {
          out[c] = 0;
        } else {
          why[c] = fmt::format("neither {} nor {}", entry.label, entry.negative_label);
        }
      }
    }
  }
  if (reasons) *reasons = std::move(why);
  return out;
}

ZeroShotResult zeroshot_metrics(const ZeroShotTask& task, std::vector<std::string> studies,
                                std::vector<std::vector<double>> scores,
                                const std::vector<std::map<std::string, int>>& study_labels,
                                std::optional<BootstrapOptions> bootstrap) {
  const size_t k = task.classes.size();
  if (scores.size() != studies.size() || study_labels.size() != studies.size()) {
    throw Error(fmt::format("zero-shot metrics: {} studies, {} score rows and {} label sets", studies.size(),
                            scores.size(), study_labels.size()));
  }
  ZeroShotResult result;
  result.task = task;
  result.bootstrap = bootstrap ? *bootstrap : task.bootstrap;
  result.studies = std::move(studies);
  result.scores = std::move(scores);
  result.classes.resize(k);
  for (size_t c = 0; c < k; ++c) {
    result.classes[c].name = task.classes[c].name;
    result.classes[c].label = task.classes[c].label;
  }
  for (size_t s = 0; s < result.studies.size(); ++s) {
    if (result.scores[s].size() != k) {
      throw Error(fmt::format("zero-shot metrics: study {} has {} scores for {} classes", result.studies[s],
                              result.scores[s].size(), k));
    }
    std::vector<std::string> reasons;
    result.labels.push_back(task_labels(task, study_labels[s], result.studies[s], &reasons));
    for (size_t c = 0; c < k; ++c) {
      if (result.labels[s][c] < 0) ++result.classes[c].skipped[reasons[c]];
    }
  }

  std::map<std::string, std::vector<double>> mean_parts, optimal_parts;
  for (size_t c = 0; c < k; ++c) {
    ClassResult& out = result.classes[c];
    std::vector<int> y_true;
    std::vector<double> y_score;
    std::vector<size_t> rows;
    for (size_t s = 0; s < result.studies.size(); ++s) {
      if (result.labels[s][c] < 0) continue;
      y_true.push_back(result.labels[s][c]);
      y_score.push_back(result.scores[s][c]);
      rows.push_back(s);
    }
    out.n_pos = std::count(y_true.begin(), y_true.end(), 1);
    out.n_neg = static_cast<int64_t>(y_true.size()) - out.n_pos;
    if (out.n_pos == 0 || out.n_neg == 0) {
      out.excluded_reason = y_true.empty()   ? "no study has a label for this class"
                            : out.n_pos == 0 ? fmt::format("no positive studies ({} negatives)", out.n_neg)
                                             : fmt::format("no negative studies ({} positives)", out.n_pos);
      out.auc = Score::undefined(out.excluded_reason);
      result.excluded.emplace_back(out.name, out.excluded_reason);
      continue;
    }
    out.included = true;
    out.auc = roc_auc(y_true, y_score);
    if (result.bootstrap.resamples > 0) out.auc_ci = bootstrap_ci(y_true, y_score, roc_auc, result.bootstrap);

    ClassThreshold at_default;
    at_default.threshold = task.threshold;
    at_default.rule = threshold_rule(task);
    if (task.threshold) {
      at_default.metrics = metrics_at_threshold(y_true, y_score, *task.threshold);
    } else {
      std::vector<double> predicted;
      for (size_t row : rows)
        predicted.push_back(argmax(result.scores[row]) == static_cast<int>(c) ? 1.0 : 0.0);
      at_default.metrics = metrics_at_threshold(y_true, predicted, 0.5);
    }
    out.at_default = at_default;

    const ThresholdChoice best = youden_threshold(y_true, y_score);
    ClassThreshold at_optimal;
    at_optimal.threshold = best.threshold;
    at_optimal.rule = kYoudenRule;
    at_optimal.metrics = metrics_at_threshold(y_true, y_score, *best.threshold);
    out.at_optimal = at_optimal;
    out.youden_j = best.youden_j;

    mean_parts["auc"].push_back(*out.auc.value);
    for (const auto& [name, value] : threshold_values(at_default.metrics))
      mean_parts[name].push_back(value);
    for (const auto& [name, value] : threshold_values(at_optimal.metrics))
      optimal_parts[name].push_back(value);
  }
  const auto mean_of = [](const std::map<std::string, std::vector<double>>& parts) {
    std::map<std::string, double> out;
    for (const auto& [name, values] : parts)
      out[name] = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    return out;
  };
  result.mean = mean_of(mean_parts);
  result.mean_optimal = mean_of(optimal_parts);

  if (task.mode == ScoringMode::kMulticlass) {
    MulticlassResult multi;
    std::vector<int> y_true;
    ScoreMatrix y_score;
    for (size_t s = 0; s < result.studies.size(); ++s) {
      const auto& row = result.labels[s];
      const auto one = std::find(row.begin(), row.end(), 1);
      if (one == row.end()) continue;  // skipped: every class of the row is -1
      y_true.push_back(static_cast<int>(one - row.begin()));
      y_score.push_back(result.scores[s]);
    }
    multi.n = static_cast<int64_t>(y_true.size());
    if (multi.n > 0) {
      const std::vector<int> y_pred = argmax(y_score);
      multi.accuracy = accuracy(y_true, y_pred);
      multi.balanced_accuracy = balanced_accuracy(y_true, y_pred);
      multi.f1_weighted = precision_recall_f1(y_true, y_pred, Average::kWeighted).f1;
      const AveragedAuc auc = multiclass_roc_auc_ovr(y_true, y_score);
      multi.auc_ovr_macro = auc.macro;
      multi.auc_ovr_weighted = auc.weighted;
      if (auc.macro.defined() && result.bootstrap.resamples > 0) {
        const std::set<int> present(y_true.begin(), y_true.end());
        multi.auc_ovr_macro_ci = bootstrap_ci(
            y_true.size(),
            [&](const std::vector<size_t>& indices) {
              const auto truth = take(y_true, indices);
              if (std::set<int>(truth.begin(), truth.end()) != present) {
                return Score::undefined("a class is missing from the resample");
              }
              return multiclass_roc_auc_ovr(truth, take(y_score, indices)).macro;
            },
            result.bootstrap);
      }
    } else {
      multi.balanced_accuracy = Score::undefined("no study has exactly one class of the task labelled 1");
      multi.auc_ovr_macro = multi.balanced_accuracy;
      multi.auc_ovr_weighted = multi.balanced_accuracy;
    }
    result.multiclass = multi;
  }
  return result;
}

ZeroShotResult evaluate_zeroshot(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                 const ZeroShotTask& task, const data::StudyDataset& dataset,
                                 const ZeroShotOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const ZeroShotClassifier classifier(model, tokenizer, task);
  EmbedOptions embed_options;
  embed_options.workers = options.workers;
  embed_options.progress = options.progress;
  embed_options.shard = options.shard;
  const StudyEmbeddings embeddings = embed_dataset(model, dataset, embed_options);
  const at::Tensor scores = classifier.score(embeddings.embeddings).contiguous();
  std::vector<std::vector<double>> rows;
  std::vector<std::map<std::string, int>> labels;
  for (size_t s = 0; s < embeddings.ids.size(); ++s) {
    const double* row = scores[static_cast<int64_t>(s)].data_ptr<double>();
    rows.emplace_back(row, row + scores.size(1));
    labels.push_back(dataset.study(embeddings.indices[s]).labels);
  }
  ZeroShotResult result = zeroshot_metrics(task, embeddings.ids, std::move(rows), labels, options.bootstrap);
  result.model = options.model;
  result.data = options.data;
  result.split = options.split;
  result.failed_studies = embeddings.failed;
  result.logit_scale = classifier.logit_scale();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

json results_json(const ZeroShotResult& result) {
  const ZeroShotTask& task = result.task;
  json classes = json::object();
  for (const ClassResult& c : result.classes) {
    json entry = {{"label", c.label},
                  {"n_pos", c.n_pos},
                  {"n_neg", c.n_neg},
                  {"n", c.n_pos + c.n_neg},
                  {"skipped", c.skipped},
                  {"included", c.included},
                  {"auc", optional_value(c.auc)}};
    if (!c.included) entry["excluded_reason"] = c.excluded_reason;
    entry["auc_ci95"] = c.auc_ci.defined() ? json::array({*c.auc_ci.lower, *c.auc_ci.upper}) : json(nullptr);
    entry["auc_ci_resamples_used"] = c.auc_ci.resamples_used;
    entry["auc_ci_resamples_skipped"] = c.auc_ci.resamples_skipped;
    if (c.at_default) {
      entry.update(threshold_json(*c.at_default));
    } else {
      entry["threshold"] = task.threshold ? json(*task.threshold) : json(nullptr);
      entry["threshold_rule"] = threshold_rule(task);
    }
    if (c.at_optimal) {
      entry["optimal"] = threshold_json(*c.at_optimal);
      entry["optimal"]["youden_j"] = *c.youden_j;
    }
    classes[c.name] = std::move(entry);
  }
  json mean = json::object();
  for (const auto& [name, value] : result.mean)
    mean[name] = value;
  mean["n_classes"] = result.classes.size() - result.excluded.size();
  mean["optimal"] = result.mean_optimal;
  json excluded = json::array();
  for (const auto& [name, reason] : result.excluded)
    excluded.push_back({{"class", name}, {"reason", reason}});

  json protocol = {
      {"mode", to_string(task.mode)},
      {"score", score_definition(task.mode)},
      {"class_embedding",
       "mean of the unit-length text embeddings of every prompt x template of the class, renormalised to "
       "unit "
       "length (open_clip build_zero_shot_classifier)"},
      {"image_embedding", result.task.image_embedding},
      {"logit_scale", result.logit_scale},
      {"logit_scale_source", task.logit_scale ? "task" : "model: exp(logit_scale)"},
      {"templates", task.templates},
      {"threshold_rule", threshold_rule(task)},
      {"optimal_threshold_rule",
       std::string(kYoudenRule) + "; chosen on the evaluated studies, so the metrics at it are optimistic"},
      {"labels",
       "a study counts for a class when its manifest label is 0 or 1; studies without it (or, with a "
       "negative_label, labelled neither) are skipped for that class and counted in 'skipped'"},
      {"means",
       "unweighted mean over the classes with positive and negative studies; the others are listed "
       "in 'excluded'"},
      {"bootstrap",
       {{"resamples", result.bootstrap.resamples},
        {"confidence", result.bootstrap.confidence},
        {"seed", result.bootstrap.seed},
        {"method",
         "percentile interval of the AUC over resamples of the class's studies with replacement; "
         "resamples lacking a class are skipped and counted"}}},
      {"batch_size", 1},
      {"scans", "every scan of each study, in manifest order"},
      {"metrics", task.metrics},
      {"task_definition", task.to_json()}};

  json out = {{"task", task.name},
              {"model", result.model},
              {"data", result.data},
              {"split", result.split},
              {"hlip_version", HLIP_VERSION_STRING},
              {"n_studies", result.studies.size()},
              {"failed_studies", result.failed_studies},
              {"classes", classes},
              {"mean", mean},
              {"excluded", excluded}};
  if (result.multiclass) {
    const MulticlassResult& m = *result.multiclass;
    out["multiclass"] = {
        {"n", m.n},
        {"accuracy", m.accuracy},
        {"balanced_accuracy", optional_value(m.balanced_accuracy)},
        {"f1_weighted", m.f1_weighted},
        {"auc_ovr_macro", optional_value(m.auc_ovr_macro)},
        {"auc_ovr_weighted", optional_value(m.auc_ovr_weighted)},
        {"auc_ovr_macro_ci95", m.auc_ovr_macro_ci.defined()
                                   ? json::array({*m.auc_ovr_macro_ci.lower, *m.auc_ovr_macro_ci.upper})
                                   : json(nullptr)},
        {"rule",
         "the studies with exactly one class of the task labelled 1; predictions are the argmax of the "
         "scores (first class on ties); AUC one-vs-rest per class, classes without positives left out"}};
    if (!m.auc_ovr_macro.warning.empty()) out["multiclass"]["auc_warning"] = m.auc_ovr_macro.warning;
  }
  out["protocol"] = protocol;
  out["seconds"] = result.seconds;
  return out;
}

void write_results(const ZeroShotResult& result, const std::string& out_json, const std::string& scores_csv) {
  if (!out_json.empty()) write_file_atomic(out_json, results_json(result).dump(2) + "\n");
  if (scores_csv.empty()) return;
  std::string csv = "study,class,score,label\n";
  for (size_t s = 0; s < result.studies.size(); ++s) {
    for (size_t c = 0; c < result.classes.size(); ++c) {
      if (result.labels[s][c] < 0) continue;
      csv += fmt::format("{},{},{:.17g},{}\n", csv_field(result.studies[s]),
                         csv_field(result.classes[c].name), result.scores[s][c], result.labels[s][c]);
    }
  }
  write_file_atomic(scores_csv, csv);
}

std::string format_results_table(const ZeroShotResult& result) {
  size_t width = 5;
  for (const ClassResult& c : result.classes)
    width = std::max(width, c.name.size());
  std::ostringstream out;
  out << fmt::format("task {} ({}), {} studies", result.task.name, to_string(result.task.mode),
                     result.studies.size());
  if (result.failed_studies > 0) out << fmt::format(", {} failed to load", result.failed_studies);
  out << fmt::format("\nthreshold: {}\n", threshold_rule(result.task));
  out << fmt::format("{:<{}}  {:>5}  {:>5}  {:>5}  {:>13}  {:>7}  {:>5}  {:>5}  {:>6}\n", "class", width,
                     "n+", "n-", "AUC", "95% CI", "bal.acc", "F1w", "prec", "recall");
  for (const ClassResult& c : result.classes) {
    if (!c.included) {
      out << fmt::format("{:<{}}  {:>5}  {:>5}  excluded: {}\n", c.name, width, c.n_pos, c.n_neg,
                         c.excluded_reason);
      continue;
    }
    const ThresholdMetrics& m = c.at_default->metrics;
    const std::string ci = c.auc_ci.defined() ? fmt::format("{:.3f}-{:.3f}", *c.auc_ci.lower, *c.auc_ci.upper)
                                              : std::string("-");
    out << fmt::format("{:<{}}  {:>5}  {:>5}  {:>5}  {:>13}  {:>7}  {:>5.3f}  {:>5.3f}  {:>6.3f}\n", c.name,
                       width, c.n_pos, c.n_neg, format_value(c.auc.value), ci,
                       format_value(m.balanced_accuracy.value), m.f1_weighted, m.precision, m.recall);
  }
  const auto mean = [&](const char* name) {
    const auto it = result.mean.find(name);
    return it == result.mean.end() ? std::optional<double>() : std::optional<double>(it->second);
  };
  out << fmt::format("{:<{}}  {:>5}  {:>5}  {:>5}  {:>13}  {:>7}  {:>5}  {:>5}  {:>6}\n",
                     fmt::format("mean ({})", result.classes.size() - result.excluded.size()), width, "", "",
                     format_value(mean("auc")), "", format_value(mean("balanced_accuracy")),
                     format_value(mean("f1_weighted")), format_value(mean("precision")),
                     format_value(mean("recall")));
  if (result.multiclass) {
    const MulticlassResult& m = *result.multiclass;
    out << fmt::format(
        "multiclass ({} studies, argmax): balanced accuracy {}, weighted F1 {:.3f}, accuracy {:.3f}, "
        "macro AUC (one-vs-rest) {}\n",
        m.n, format_value(m.balanced_accuracy.value), m.f1_weighted, m.accuracy,
        format_value(m.auc_ovr_macro.value));
  }
  for (const ClassResult& c : result.classes) {
    for (const auto& [reason, count] : c.skipped)
      out << fmt::format("skipped for {}: {} studies ({})\n", c.name, count, reason);
  }
  return out.str();
}

std::map<std::string, double> zeroshot_summary(const ZeroShotResult& result) {
  std::map<std::string, double> out;
  if (const auto it = result.mean.find("auc"); it != result.mean.end()) out["mean_auc"] = it->second;
  if (const auto it = result.mean.find("balanced_accuracy"); it != result.mean.end())
    out["mean_balanced_accuracy"] = it->second;
  for (const ClassResult& c : result.classes) {
    if (c.auc.defined()) out["auc/" + c.name] = *c.auc.value;
  }
  if (result.multiclass) {
    if (result.multiclass->balanced_accuracy.defined())
      out["multiclass_balanced_accuracy"] = *result.multiclass->balanced_accuracy.value;
    if (result.multiclass->auc_ovr_macro.defined())
      out["multiclass_auc"] = *result.multiclass->auc_ovr_macro.value;
  }
  return out;
}

}  // namespace hlip::eval
