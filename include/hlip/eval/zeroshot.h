#pragma once
// Zero-shot classification: task files (configs/tasks/*.json, docs/zeroshot.md) that fix classes, prompts,
// templates, the scoring mode and the metric set; a classifier that turns them into class embeddings once
// and scores image embeddings; and the evaluation of a whole split with every choice written to the results.
//
//   hlip::eval::ZeroShotTask task = hlip::eval::load_task("pub-brain-5-anomaly");   // or a JSON path
//   hlip::model::HlipClip clip = hlip::model::load_model_dir("model");
//   auto tokenizer = hlip::text::Tokenizer::from_pretrained(hlip::model::model_dir_tokenizer("model"));
//   hlip::data::StudyDataset test({{"cache"}}, "test");
//   hlip::eval::ZeroShotResult result = hlip::eval::evaluate_zeroshot(*clip, tokenizer, task, test);
//   hlip::eval::write_results(result, "out/results.json", "out/scores.csv");
//   std::cout << hlip::eval::format_results_table(result);
//
//   hlip::eval::ZeroShotClassifier classifier(*clip, tokenizer, task);   // prompts encoded once
//   at::Tensor scores = classifier.score(clip->encode_image(image));     // [B, K]
//
// Scoring modes (the score of study s for class k; cos = cosine of the image embedding row
// `image_embedding` with a class embedding; scale = exp(model logit_scale) unless the task fixes it):
//   positive           cos(s, class k)                                       (RSNA, CQ500)
//   negative-positive  softmax(scale · [cos(s, "No k"), cos(s, "k")])[1]    (CT-RATE, Pub-Brain-5 anomaly)
//   multiclass         softmax over the task's classes of scale · cos(s, ·)  (Pub-Brain-5 tumour, disease)
// A class embedding is the mean of the unit-length text embeddings of every prompt × template of the class,
// renormalised to unit length (open_clip's build_zero_shot_classifier).

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/data/dataset.h"
#include "hlip/data/shard.h"
#include "hlip/eval/metrics.h"
#include "hlip/model/clip.h"
#include "hlip/text/tokenizer.h"

namespace hlip::eval {

enum class ScoringMode { kPositive, kNegativePositive, kMulticlass };

std::string to_string(ScoringMode mode);  // "positive" | "negative-positive" | "multiclass"
ScoringMode parse_scoring_mode(const std::string& name);

// The metrics a task can name as its published set (all of them are always computed and written).
const std::vector<std::string>& zeroshot_metric_names();  // auc, balanced_accuracy, f1_weighted, ...

struct TaskClass {
  std::string name;
  std::string label;                   // key in the manifest's "labels" (default: the name)
  std::vector<std::string> prompts;    // positive prompts, averaged
  std::vector<std::string> templates;  // the class's own or the task's ("{c}" is the prompt)
  // Where set, only studies with this label = 1 count as negatives of the class; studies that are neither
  // positive nor such a negative are skipped for it (Pub-Brain-5 anomaly detection: normal vs one disease).
  std::string negative_label;
  std::vector<std::string> negative_prompts;    // negative-positive: given, or negative_prompt(p, word)
  std::vector<std::string> negative_templates;  // negative-positive: given, or the class's templates
};

struct ZeroShotTask {
  std::string name;
  std::string description;
  std::string source;  // where prompts and templates come from
  std::vector<std::string> notes;
  std::string origin;    // the file read, or "embedded:NAME"
  std::string modality;  // "mri", "ct" or "" (picks the default preset for single studies)
  ScoringMode mode = ScoringMode::kPositive;
  std::vector<std::string> templates;
  std::string negative_word = "No";   // negative-positive: "No X" for prompts without negative_prompts
  int64_t image_embedding = 0;        // row of the image features used (0: the sentence embedding)
  std::optional<double> logit_scale;  // the factor on cosines before a softmax; unset: exp(model's)
  // The default threshold on scores; unset means argmax (multiclass only): a study is predicted as the class
  // with the highest score.
  std::optional<double> threshold;
  std::vector<std::string> metrics;  // the published metric set, for tables
  BootstrapOptions bootstrap;        // of the AUC confidence intervals
  std::vector<TaskClass> classes;

  // Every field, resolved (each class's prompts and templates spelled out), as results.json records it.
  nlohmann::json to_json() const;
};

// A task of configs/tasks/ by name (embedded at build time), or a JSON file by path. Unknown fields, missing
// or empty classes, prompts or templates, a template without "{c}", duplicate class names and fields that
// do not fit the mode are hlip::Errors naming the file and the field.
ZeroShotTask load_task(const std::string& name_or_path);
// `origin` names the source in error messages.
ZeroShotTask parse_task(const nlohmann::json& json, const std::string& origin);
std::vector<std::string> known_tasks();  // sorted

// A prompt with alternatives, spelled out: every `{a|b|...}` group is replaced by each of its alternatives in
// turn (empty ones allowed), all combinations in order: "{left|right} {frontal|parietal} glioma" gives four
// prompts. Task files use it for prompt ensembles over the phrases a report varies (side, lobe, size). An
// unbalanced or nested brace, a group without "|" or more than 10,000 combinations is an hlip::Error.
std::vector<std::string> expand_alternatives(const std::string& prompt);

// Replaces every template of `task` (the task's, each class's and the negative ones) by `templates`, each
// with "{c}": a model trained on whole reports (`--text-process report`) never saw the sentence prefix of
// HLIP's "This study shows: {c}." and is scored with "{c}." instead. An error names the template without
// "{c}".
void set_templates(ZeroShotTask& task, const std::vector<std::string>& templates);

// An ad-hoc multiclass task over `classes` (each name is its prompt and label), e.g. for `--classes`.
ZeroShotTask task_from_classes(const std::vector<std::string>& classes,
                               const std::vector<std::string>& templates = {"This study shows: {c}."});

// text_features [T, E] -> [E]: each row to unit length, the mean, renormalised to unit length.
at::Tensor average_embedding(const at::Tensor& text_features);

class ZeroShotClassifier {
 public:
  // Encodes every prompt × template of the task with the model's text tower (eval mode, no gradients; the
  // model's training mode is restored), at the model's context length.
  ZeroShotClassifier(model::HlipClipImpl& model, const text::Tokenizer& tokenizer, ZeroShotTask task);
  // From class embeddings already computed: positive [K, E], negative [K, E] (negative-positive only), and
  // the softmax factor (used by negative-positive and multiclass).
  ZeroShotClassifier(ZeroShotTask task, at::Tensor positive, at::Tensor negative, double logit_scale);

  const ZeroShotTask& task() const { return task_; }
  const at::Tensor& positive() const { return positive_; }  // float32 [K, E], unit rows
  const at::Tensor& negative() const { return negative_; }  // float32 [K, E] or undefined
  double logit_scale() const { return logit_scale_; }

  // image_features [B, P, E] (row task().image_embedding is used) or [B, E] -> float64 [B, K] cosines with
  // the positive class embeddings.
  at::Tensor cosine(const at::Tensor& image_features) const;
  // The same -> float64 [B, K] scores of the task's mode (see the top of this file).
  at::Tensor score(const at::Tensor& image_features) const;

 private:
  at::Tensor rows(const at::Tensor& image_features) const;

  ZeroShotTask task_;
  at::Tensor positive_;
  at::Tensor negative_;
  double logit_scale_ = 1.0;
};

// Metrics of one class at one threshold rule.
struct ClassThreshold {
  std::optional<double> threshold;  // empty for argmax
  std::string rule;
  ThresholdMetrics metrics;
};

struct ClassResult {
  std::string name;
  std::string label;
  int64_t n_pos = 0;
  int64_t n_neg = 0;
  std::map<std::string, int64_t> skipped;  // studies left out of this class, by reason
  Score auc;
  ConfidenceInterval auc_ci;
  std::optional<ClassThreshold> at_default;  // the task's threshold (0.5, argmax, ...)
  std::optional<ClassThreshold> at_optimal;  // Youden's J on this class's ROC
  std::optional<double> youden_j;
  bool included = false;  // has positives and negatives: counted in the means
  std::string excluded_reason;
};

// Multiclass tasks: the K-way decision on the studies with exactly one of the task's classes labelled 1.
struct MulticlassResult {
  int64_t n = 0;
  double accuracy = 0.0;
  Score balanced_accuracy;  // of the argmax
  double f1_weighted = 0.0;
  Score auc_ovr_macro;  // one-vs-rest, classes without positives left out (with a warning)
  Score auc_ovr_weighted;
  ConfidenceInterval auc_ovr_macro_ci;
};

struct ZeroShotResult {
  ZeroShotTask task;
  std::string model;  // what was evaluated (a folder), for the record
  std::string data;
  std::string split;
  std::vector<std::string> studies;            // scored studies, in data order
  std::vector<std::vector<double>> scores;     // [study][class]
  std::vector<std::vector<int>> labels;        // [study][class]: 1, 0, or -1 (skipped for that class)
  int64_t failed_studies = 0;                  // could not be loaded (logged by the loader)
  double logit_scale = 1.0;                    // the softmax factor used
  BootstrapOptions bootstrap;                  // used for the intervals
  std::vector<ClassResult> classes;            // task order
  std::map<std::string, double> mean;          // macro means over included classes (at the default)
  std::map<std::string, double> mean_optimal;  // the same at each class's optimal threshold
  std::vector<std::pair<std::string, std::string>> excluded;  // (class, reason)
  std::optional<MulticlassResult> multiclass;
  double seconds = 0.0;
};

// Labels of one study for every class of `task` from its manifest labels: 1 or 0, or -1 with the reason in
// `reasons` ("missing label", "neither positive nor <negative_label>", "no class of the task labelled 1",
// "several classes of the task labelled 1"). A label other than 0 or 1 is an hlip::Error naming the study.
std::vector<int> task_labels(const ZeroShotTask& task, const std::map<std::string, int>& labels,
                             const std::string& study, std::vector<std::string>* reasons);

// Every metric from scores [study][class] and each study's manifest labels: what evaluate_zeroshot does
// after scoring. `bootstrap` replaces the task's options when given.
ZeroShotResult zeroshot_metrics(const ZeroShotTask& task, std::vector<std::string> studies,
                                std::vector<std::vector<double>> scores,
                                const std::vector<std::map<std::string, int>>& study_labels,
                                std::optional<BootstrapOptions> bootstrap = std::nullopt);

struct ZeroShotOptions {
  std::optional<BootstrapOptions> bootstrap;  // replaces the task's
  int workers = 1;                            // loader threads reading studies ahead
  bool progress = false;                      // a progress bar on stderr
  std::string model;                          // recorded in the results
  std::string data;
  std::string split;
  data::Shard shard;  // data-parallel: each process embeds its share; all get the whole result
};

// Scores every study of `dataset` (batch size 1, all scans, model in eval mode without gradients; its
// training mode is restored) and computes the metrics. Studies that fail to load are logged and counted.
ZeroShotResult evaluate_zeroshot(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                 const ZeroShotTask& task, const data::StudyDataset& dataset,
                                 const ZeroShotOptions& options = {});

// results.json (docs/zeroshot.md) and scores.csv ("study,class,score,label", one row per study and class
// with a label, scores with 17 significant digits), each written atomically; an empty path skips the file.
nlohmann::json results_json(const ZeroShotResult& result);
void write_results(const ZeroShotResult& result, const std::string& out_json, const std::string& scores_csv);

// A plain-text table: one row per class (counts, AUC with its interval, metrics at the default threshold),
// the macro mean, the multiclass line and the excluded classes.
std::string format_results_table(const ZeroShotResult& result);

// For the trainer's periodic zero-shot: "mean_auc", "mean_balanced_accuracy", "auc/<class>" and, for
// multiclass tasks, "multiclass_balanced_accuracy" and "multiclass_auc"; undefined values are left out.
std::map<std::string, double> zeroshot_summary(const ZeroShotResult& result);

}  // namespace hlip::eval
