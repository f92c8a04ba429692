// Zero-shot classification: task files (shipped ones and every validation error), class embeddings, the
// three scoring modes on hand-made embeddings and through a small model's text tower, labels and skips,
// metrics against the metric functions, the results files and the trainer's summary.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/core/error.h"
#include "hlip/eval/metrics.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/model/clip.h"
#include "hlip/text/report.h"
#include "hlip/text/tensors.h"
#include "hlip/text/tokenizer.h"
#include "temp_dir.h"

namespace hlip::eval {
namespace {

using json = nlohmann::json;
using test::error_message;
using test::TempDir;

// A valid negative-positive task; tests break one field at a time.
json base_task() {
  return json::parse(R"({
    "name": "t", "mode": "negative-positive", "templates": ["This study shows: {c}."],
    "classes": [
      {"name": "glioma", "label": "Glioma", "prompts": ["Glioma"]},
      {"name": "stroke", "prompts": ["acute stroke", "infarct"], "negative_label": "Normal",
       "negative_prompts": ["no abnormality"], "templates": ["{c}.", "Findings: {c}."]}
    ]})");
}

std::string load_error(const json& task, const TempDir& dir) {
  const std::string path = dir.file("task.json");
  std::ofstream(path) << task.dump();
  return error_message([&] { load_task(path); });
}

TEST(ZeroShotTask, EveryShippedTaskLoadsUnderItsFileName) {
  const auto names = known_tasks();
  const std::set<std::string> expected{"synth-brain-5",
                                       "synth-anomaly",
                                       "synth-ich",
                                       "pub-brain-5-anomaly",
                                       "pub-brain-5-tumor",
                                       "pub-brain-5-disease",
                                       "pub-brain-5-anomaly-2026",
                                       "pub-brain-5-tumor-2026",
                                       "pub-brain-5-disease-2026",
                                       "rsna-ich",
                                       "rsna-ich-2026",
                                       "cq500",
                                       "ct-rate"};
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  for (const auto& name : names) {
    const ZeroShotTask task = load_task(name);
    EXPECT_EQ(task.name, name);
    EXPECT_FALSE(task.source.empty()) << name;
    EXPECT_NE(task.origin.find(name), std::string::npos) << name;
    for (const auto& c : task.classes) {
      EXPECT_FALSE(c.prompts.empty()) << name << " " << c.name;
      EXPECT_FALSE(c.templates.empty()) << name << " " << c.name;
    }
  }
}

TEST(ZeroShotTask, SetTemplatesReplacesEveryTemplate) {
  ZeroShotTask task = load_task("pub-brain-5-anomaly");
  set_templates(task, {"{c}."});
  EXPECT_EQ(task.templates, std::vector<std::string>{"{c}."});
  for (const auto& cls : task.classes) {
    EXPECT_EQ(cls.templates, std::vector<std::string>{"{c}."}) << cls.name;
    if (!cls.negative_templates.empty()) {
      EXPECT_EQ(cls.negative_templates, std::vector<std::string>{"{c}."}) << cls.name;
    }
  }
  EXPECT_THROW(set_templates(task, {"no class"}), UsageError);
  EXPECT_THROW(set_templates(task, {}), UsageError);
}

TEST(ZeroShotTask, PublishedTasksHaveTheirProtocols) {
  const ZeroShotTask ct = load_task("ct-rate");
  EXPECT_EQ(ct.mode, ScoringMode::kNegativePositive);
  ASSERT_EQ(ct.classes.size(), 18u);
  EXPECT_EQ(ct.templates, std::vector<std::string>{"The volume shows: {c}."});
  EXPECT_EQ(ct.classes[8].name, "Atelectasis");
  EXPECT_EQ(ct.classes[8].negative_prompts, std::vector<std::string>{"Not atelectatic"});
  EXPECT_EQ(load_task("cq500").classes.size(), 11u);
  EXPECT_EQ(load_task("cq500").templates.size(), 18u);
  const ZeroShotTask rsna = load_task("rsna-ich");
  EXPECT_EQ(rsna.mode, ScoringMode::kPositive);
  EXPECT_EQ(rsna.classes.size(), 5u);
  EXPECT_EQ(rsna.classes[0].label, "Any");
  const ZeroShotTask anomaly = load_task("pub-brain-5-anomaly");
  ASSERT_EQ(anomaly.classes.size(), 4u);
  EXPECT_EQ(anomaly.classes[0].negative_label, "Normal");
  EXPECT_EQ(anomaly.classes[0].negative_prompts, std::vector<std::string>{"No significant abnormalities"});
  EXPECT_EQ(anomaly.threshold.value(), 0.5);
  EXPECT_EQ(load_task("pub-brain-5-tumor").classes.size(), 3u);
  EXPECT_EQ(load_task("pub-brain-5-disease").mode, ScoringMode::kMulticlass);
  // 2026: the normal prompt keeps one sentence whatever the 18 templates are.
  const ZeroShotTask disease26 = load_task("pub-brain-5-disease-2026");
  EXPECT_EQ(disease26.classes[0].templates, std::vector<std::string>{"This study shows: {c}."});
  EXPECT_EQ(disease26.classes[1].templates.size(), 18u);
  const ZeroShotTask synth = load_task("synth-brain-5");
  EXPECT_FALSE(synth.threshold.has_value());  // argmax
  EXPECT_EQ(synth.classes.size(), 5u);
  const ZeroShotTask ich = load_task("synth-ich");
  EXPECT_EQ(ich.mode, ScoringMode::kNegativePositive);
  EXPECT_EQ(ich.threshold.value(), 0.5);
  // "any" ensembles every type's prompts against the normal reports' wording.
  EXPECT_GT(ich.classes[0].prompts.size(), ich.classes[5].prompts.size());
  EXPECT_EQ(ich.classes[0].negative_prompts, ich.classes[5].negative_prompts);
  EXPECT_EQ(ich.modality, "ct");
  ASSERT_EQ(ich.classes.size(), 6u);
  EXPECT_EQ(ich.classes[0].label, "Any");
  EXPECT_EQ(ich.classes[5].label, "Subdural");
}

TEST(ZeroShotTask, DefaultsAndResolvedFields) {
  const ZeroShotTask task = parse_task(base_task(), "inline");
  EXPECT_EQ(task.threshold.value(), 0.5);
  EXPECT_EQ(task.image_embedding, 0);
  EXPECT_FALSE(task.logit_scale.has_value());
  EXPECT_EQ(task.metrics, zeroshot_metric_names());
  EXPECT_EQ(task.bootstrap.resamples, 1000);
  EXPECT_EQ(task.classes[0].label, "Glioma");
  EXPECT_EQ(task.classes[0].negative_prompts, std::vector<std::string>{"No glioma"});
  EXPECT_EQ(task.classes[0].templates, task.templates);
  EXPECT_EQ(task.classes[0].negative_templates, task.templates);
  EXPECT_EQ(task.classes[1].label, "stroke");
  EXPECT_EQ(task.classes[1].negative_templates, (std::vector<std::string>{"{c}.", "Findings: {c}."}));
  json positive = base_task();
  positive["mode"] = "positive";
  positive["classes"][1].erase("negative_prompts");
  EXPECT_EQ(parse_task(positive, "inline").threshold.value(), 0.0);
  json words = base_task();
  words["negative_word"] = "Not";
  EXPECT_EQ(parse_task(words, "inline").classes[0].negative_prompts, std::vector<std::string>{"Not glioma"});
  // to_json spells out everything and reads back the same.
  json written = task.to_json();
  written.erase("origin");
  const ZeroShotTask again = parse_task(written, "round trip");
  EXPECT_EQ(again.to_json().dump(), [&] {
    json j = task.to_json();
    j["origin"] = "round trip";
    return j.dump();
  }());
}

TEST(ZeroShotTask, PromptAlternativesAreSpelledOut) {
  EXPECT_EQ(expand_alternatives("glioma"), std::vector<std::string>{"glioma"});
  EXPECT_EQ(expand_alternatives("{left|right} {frontal|occipital} glioma, {2|3} cm").size(), 8u);
  EXPECT_EQ(expand_alternatives("{Left|Right} glioma"),
            (std::vector<std::string>{"Left glioma", "Right glioma"}));
  EXPECT_EQ(expand_alternatives("{|solitary }metastasis"),
            (std::vector<std::string>{"metastasis", "solitary metastasis"}));
  EXPECT_EQ(expand_alternatives("a {b|c}{d|e}"), (std::vector<std::string>{"a bd", "a be", "a cd", "a ce"}));
  EXPECT_NE(error_message([] { expand_alternatives("{a|{b|c}}"); }).find("do not nest"), std::string::npos);
  EXPECT_NE(error_message([] { expand_alternatives("a}b"); }).find("closes no"), std::string::npos);
  EXPECT_NE(error_message([] { expand_alternatives("{left}"); }).find("has no \"|\""), std::string::npos);
  EXPECT_NE(error_message([] {
              expand_alternatives(
                  "{a|b|c|d|e|f|g|h|i|j}{a|b|c|d|e|f|g|h|i|j}"
                  "{a|b|c|d|e|f|g|h|i|j}{a|b|c|d|e|f|g|h|i|j}{a|b}");
            }).find("more than 10000"),
            std::string::npos);

  // In a task file: the class averages every spelled-out prompt.
  const ZeroShotTask task =
      parse_task(json::parse(R"({"name": "m", "mode": "multiclass", "templates": ["{c}."],
      "classes": [{"name": "a", "prompts": ["{left|right} a", "a"]}, {"name": "b", "prompts": ["b"]}]})"),
                 "inline");
  EXPECT_EQ(task.classes[0].prompts, (std::vector<std::string>{"left a", "right a", "a"}));
}

TEST(ZeroShotTask, BadFilesNameTheFileAndTheField) {
  TempDir dir("hlip_zeroshot");
  const auto expect_error = [&](const json& task, const std::string& part) {
    const std::string message = load_error(task, dir);
    EXPECT_NE(message.find("task.json"), std::string::npos) << message;
    EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  json t = base_task();
  t["temperature"] = 1;
  expect_error(t, "\"temperature\": unknown field");
  t = base_task();
  t["classes"][1]["promts"] = json::array({"x"});
  expect_error(t, "classes[1] (\"stroke\").promts: unknown field");
  t = base_task();
  t["classes"] = json::array();
  expect_error(t, "\"classes\" is empty");
  t = base_task();
  t.erase("classes");
  expect_error(t, "\"classes\" is missing");
  t = base_task();
  t["classes"][0]["prompts"] = json::array();
  expect_error(t, "classes[0] (\"glioma\").prompts is empty");
  t = base_task();
  t["classes"][0].erase("prompts");
  expect_error(t, "prompts is missing");
  t = base_task();
  t["templates"] = json::array({"no placeholder"});
  expect_error(t, "has no {c}");
  t = base_task();
  t["classes"][1]["name"] = "glioma";
  expect_error(t, "\"glioma\" appears twice");
  t = base_task();
  t["mode"] = "softmax";
  expect_error(t, "\"mode\"");
  t = base_task();
  t["mode"] = "positive";
  expect_error(t, "negative_prompts is only for mode \"negative-positive\"");
  t = base_task();
  t["threshold"] = "argmax";
  expect_error(t, "\"argmax\" is only for mode \"multiclass\"");
  t = base_task();
  t["metrics"] = json::array({"auc", "kappa"});
  expect_error(t, "unknown metric \"kappa\"");
  t = base_task();
  t["bootstrap"] = {{"resamples", 10}, {"seeds", 1}};
  expect_error(t, "bootstrap.seeds: unknown field");
  t = base_task();
  t["logit_scale"] = -1;
  expect_error(t, "\"logit_scale\"");
  json multi = json::parse(R"({"name": "m", "mode": "multiclass", "templates": ["{c}"],
                               "classes": [{"name": "a", "prompts": ["a"]}]})");
  expect_error(multi, "at least 2 classes");
  multi["classes"].push_back({{"name", "b"}, {"prompts", {"b"}}, {"negative_label", "a"}});
  expect_error(multi, "does not apply to mode \"multiclass\"");

  t = base_task();
  t["classes"][0]["prompts"] = json::array({"glioma", "{left|right glioma"});
  expect_error(t, "classes[0] (\"glioma\").prompts[1] \"{left|right glioma\": the \"{\" at 0 is not closed");
  std::ofstream(dir.file("broken.json")) << "{\"name\": ";
  const std::string broken = error_message([&] { load_task(dir.file("broken.json")); });
  EXPECT_NE(broken.find("broken.json: not valid JSON"), std::string::npos) << broken;
  const std::string unknown = error_message([] { load_task("no-such-task"); });
  EXPECT_NE(unknown.find("ct-rate"), std::string::npos) << unknown;  // lists the known names
}

TEST(ZeroShotClassifier, ClassEmbeddingAveragesUnitRowsAndRenormalises) {
  const at::Tensor features = at::tensor({3.0, 4.0, 0.0, 0.0, 2.0, 0.0}, at::kDouble).view({2, 3});
  // (0.6, 0.8, 0) and (0, 1, 0): mean (0.3, 0.9, 0), norm sqrt(0.9).
  const at::Tensor expected = at::tensor({0.3, 0.9, 0.0}, at::kDouble) / std::sqrt(0.9);
  EXPECT_TRUE(at::allclose(average_embedding(features), expected, 1e-12, 1e-12));
  EXPECT_THROW(average_embedding(at::zeros({0, 3})), Error);
}

// Three classes in E = 4; images with two rows (row 1 must be ignored).
struct HandMade {
  at::Tensor positive = at::eye(4, at::kFloat).slice(0, 0, 3);                // classes along e0, e1, e2
  at::Tensor negative = at::eye(4, at::kFloat).slice(0, 1, 4);                // "No k" along e1, e2, e3
  at::Tensor image = at::tensor({0.5f, 0.5f, 0.5f, 0.5f, 0.f, 0.f, 0.f, 1.f,  //
                                 0.8f, 0.f, 0.6f, 0.f, 0.f, 1.f, 0.f, 0.f},   //
                                at::kFloat)
                         .view({2, 2, 4});
};

ZeroShotTask mode_task(const std::string& mode) {
  json t = json::parse(R"({"name": "h", "templates": ["{c}"], "classes": [
      {"name": "a", "prompts": ["a"]}, {"name": "b", "prompts": ["b"]}, {"name": "c", "prompts": ["c"]}]})");
  t["mode"] = mode;
  return parse_task(t, "inline");
}

TEST(ZeroShotClassifier, ScoringModesOnHandMadeEmbeddings) {
  const HandMade h;
  const double scale = 10.0;
  const std::vector<std::vector<double>> cos = {{0.5, 0.5, 0.5}, {0.8, 0.0, 0.6}};
  const std::vector<std::vector<double>> neg = {{0.5, 0.5, 0.5}, {0.0, 0.6, 0.0}};

  const ZeroShotClassifier positive(mode_task("positive"), h.positive, {}, scale);
  const at::Tensor p = positive.score(h.image);
  ASSERT_EQ(p.sizes().vec(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(p.scalar_type(), at::kDouble);
  for (int b = 0; b < 2; ++b) {
    for (int k = 0; k < 3; ++k)
      EXPECT_NEAR(p[b][k].item<double>(), cos[b][k], 1e-7);
  }
  EXPECT_TRUE(at::equal(positive.cosine(h.image), p));
  // A [B, E] input is taken as is.
  EXPECT_TRUE(at::allclose(positive.score(h.image.select(1, 0)), p));

  const ZeroShotClassifier pairs(mode_task("negative-positive"), h.positive, h.negative, scale);
  const at::Tensor np = pairs.score(h.image);
  for (int b = 0; b < 2; ++b) {
    for (int k = 0; k < 3; ++k) {
      const double expected =
          std::exp(scale * cos[b][k]) / (std::exp(scale * cos[b][k]) + std::exp(scale * neg[b][k]));
      EXPECT_NEAR(np[b][k].item<double>(), expected, 1e-6) << b << " " << k;
    }
  }

  const ZeroShotClassifier multi(mode_task("multiclass"), h.positive, {}, scale);
  const at::Tensor m = multi.score(h.image);
  for (int b = 0; b < 2; ++b) {
    double total = 0;
    for (int k = 0; k < 3; ++k)
      total += std::exp(scale * cos[b][k]);
    for (int k = 0; k < 3; ++k)
      EXPECT_NEAR(m[b][k].item<double>(), std::exp(scale * cos[b][k]) / total, 1e-6);
  }

  json row_two = mode_task("positive").to_json();
  row_two.erase("origin");
  row_two["image_embedding"] = 2;
  const ZeroShotClassifier too_far(parse_task(row_two, "inline"), h.positive, {}, scale);
  EXPECT_NE(error_message([&] { too_far.score(h.image); }).find("row 2"), std::string::npos);
  EXPECT_THROW(ZeroShotClassifier(mode_task("negative-positive"), h.positive, {}, scale), Error);
  EXPECT_THROW(ZeroShotClassifier(mode_task("positive"), h.positive.slice(0, 0, 2), {}, scale), Error);
}

// A small random model: the classifier's class embeddings are the averages of the text tower's outputs for
// each class's prompts × templates, and logit_scale is exp() of the model's.
TEST(ZeroShotClassifier, EncodesPromptsThroughTheTextTower) {
  const model::ClipConfig config = model::read_clip_config(std::string(HLIP_TEST_DATA_DIR) +
                                                           "/clip/tiny-cls-scanstudy/open_clip_config.json");
  at::manual_seed(3);
  model::HlipClip clip(config);
  std::vector<std::string> tokens{"[PAD]", "[UNK]",  "[CLS]",   "[SEP]",   "[MASK]", "this",
                                  "study", "shows",  ":",       ".",       "no",     "glioma",
                                  "acute", "stroke", "infarct", "finding", "##s"};
  const text::Tokenizer tokenizer{text::Vocab(tokens)};
  const ZeroShotTask task = parse_task(base_task(), "inline");
  clip->train();
  const ZeroShotClassifier classifier(*clip, tokenizer, task);
  EXPECT_TRUE(clip->is_training());  // restored
  clip->eval();
  at::NoGradGuard no_grad;
  const auto encode = [&](const std::vector<std::string>& prompts,
                          const std::vector<std::string>& templates) {
    const auto texts = text::expand_prompts(prompts, templates).texts;
    const auto batch = text::to_tensors(
        tokenizer.encode_batch(texts, text::EncodeOptions::fixed_length(config.text.context_length)));
    return average_embedding(clip->encode_text(batch.input_ids, batch.attention_mask));
  };
  EXPECT_TRUE(at::allclose(classifier.positive()[1],
                           encode({"acute stroke", "infarct"}, {"{c}.", "Findings: {c}."}), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(classifier.negative()[1], encode({"no abnormality"}, {"{c}.", "Findings: {c}."}),
                           1e-5, 1e-6));
  EXPECT_TRUE(
      at::allclose(classifier.negative()[0], encode({"No glioma"}, {"This study shows: {c}."}), 1e-5, 1e-6));
  EXPECT_NEAR(classifier.logit_scale(), std::exp(config.init_logit_scale), 1e-5);
  EXPECT_NEAR(classifier.positive().norm(2, 1).min().item<double>(), 1.0, 1e-5);
}

TEST(ZeroShotLabels, SkipsAreCountedWithTheirReason) {
  const ZeroShotTask pairs = parse_task(base_task(), "inline");
  std::vector<std::string> why;
  EXPECT_EQ(task_labels(pairs, {{"Glioma", 1}, {"stroke", 0}, {"Normal", 1}}, "s", &why),
            (std::vector<int>{1, 0}));
  EXPECT_EQ(task_labels(pairs, {{"Glioma", 0}, {"stroke", 0}, {"Normal", 0}}, "s", &why),
            (std::vector<int>{0, -1}));
  EXPECT_EQ(why[1], "neither stroke nor Normal");
  EXPECT_EQ(task_labels(pairs, {{"stroke", 1}}, "s", &why), (std::vector<int>{-1, 1}));
  EXPECT_EQ(why[0], "label missing");
  const std::string bad = error_message([&] { task_labels(pairs, {{"Glioma", 2}}, "s7", &why); });
  EXPECT_NE(bad.find("study s7: label \"Glioma\" is 2"), std::string::npos) << bad;

  const ZeroShotTask multi = mode_task("multiclass");
  EXPECT_EQ(task_labels(multi, {{"a", 0}, {"b", 1}, {"c", 0}}, "s", &why), (std::vector<int>{0, 1, 0}));
  EXPECT_EQ(task_labels(multi, {{"a", 0}, {"b", 0}, {"c", 0}}, "s", &why), (std::vector<int>{-1, -1, -1}));
  EXPECT_EQ(why[2], "no class of the task labelled 1");
  task_labels(multi, {{"a", 1}, {"b", 1}, {"c", 0}}, "s", &why);
  EXPECT_EQ(why[0], "several classes of the task labelled 1");
  task_labels(multi, {{"a", 1}, {"b", 0}}, "s", &why);
  EXPECT_EQ(why[1], "label missing");
}

// Six studies, two classes; class "b" has no positives.
struct Split {
  std::vector<std::string> studies{"s1", "s2", "s3", "s4", "s5", "s6,odd"};
  std::vector<std::vector<double>> scores{{0.9, 0.1}, {0.7, 0.2}, {0.4, 0.3},
                                          {0.6, 0.4}, {0.2, 0.5}, {0.5, 0.6}};
  std::vector<std::map<std::string, int>> labels{{{"a", 1}, {"b", 0}}, {{"a", 1}, {"b", 0}},
                                                 {{"a", 0}, {"b", 0}}, {{"a", 0}, {"b", 0}},
                                                 {{"a", 0}, {"b", 0}}, {{"b", 0}}};
};

TEST(ZeroShotMetrics, PerClassValuesMeansAndExclusions) {
  json t = json::parse(R"({"name": "two", "mode": "positive", "templates": ["{c}"], "threshold": 0.5,
      "bootstrap": {"resamples": 200, "seed": 7},
      "classes": [{"name": "a", "prompts": ["a"]}, {"name": "b", "prompts": ["b"]}]})");
  const ZeroShotTask task = parse_task(t, "inline");
  Split split;
  const ZeroShotResult r = zeroshot_metrics(task, split.studies, split.scores, split.labels);
  ASSERT_EQ(r.classes.size(), 2u);
  const ClassResult& a = r.classes[0];
  EXPECT_EQ(a.n_pos, 2);
  EXPECT_EQ(a.n_neg, 3);
  EXPECT_EQ(a.skipped.at("label missing"), 1);
  const std::vector<int> y{1, 1, 0, 0, 0};
  const std::vector<double> s{0.9, 0.7, 0.4, 0.6, 0.2};
  EXPECT_DOUBLE_EQ(*a.auc.value, *roc_auc(y, s).value);
  const ThresholdMetrics at = metrics_at_threshold(y, s, 0.5);
  EXPECT_DOUBLE_EQ(*a.at_default->metrics.balanced_accuracy.value, *at.balanced_accuracy.value);
  EXPECT_DOUBLE_EQ(a.at_default->metrics.f1_weighted, at.f1_weighted);
  EXPECT_EQ(a.at_optimal->threshold.value(), youden_threshold(y, s).threshold.value());
  BootstrapOptions options;
  options.resamples = 200;
  options.seed = 7;
  const ConfidenceInterval ci = bootstrap_ci(y, s, roc_auc, options);
  EXPECT_EQ(a.auc_ci.lower.value(), ci.lower.value());
  EXPECT_EQ(a.auc_ci.upper.value(), ci.upper.value());

  const ClassResult& b = r.classes[1];
  EXPECT_FALSE(b.included);
  EXPECT_FALSE(b.auc.defined());
  ASSERT_EQ(r.excluded.size(), 1u);
  EXPECT_EQ(r.excluded[0].first, "b");
  EXPECT_NE(r.excluded[0].second.find("no positive studies (6 negatives)"), std::string::npos);
  // Means over "a" only.
  EXPECT_DOUBLE_EQ(r.mean.at("auc"), *a.auc.value);
  EXPECT_DOUBLE_EQ(r.mean.at("recall"), at.recall);
  EXPECT_DOUBLE_EQ(r.mean_optimal.at("balanced_accuracy"), *a.at_optimal->metrics.balanced_accuracy.value);

  const auto summary = zeroshot_summary(r);
  EXPECT_DOUBLE_EQ(summary.at("mean_auc"), *a.auc.value);
  EXPECT_EQ(summary.count("mean_balanced_accuracy"), 1u);
  EXPECT_EQ(summary.count("auc/a"), 1u);
  EXPECT_EQ(summary.count("auc/b"), 0u);

  const std::string table = format_results_table(r);
  EXPECT_NE(table.find("excluded: no positive studies"), std::string::npos) << table;
  EXPECT_NE(table.find("skipped for a: 1 studies (label missing)"), std::string::npos) << table;

  // Another bootstrap seed gives another interval; an override replaces the task's options.
  BootstrapOptions other = options;
  other.seed = 8;
  const ZeroShotResult r8 = zeroshot_metrics(task, split.studies, split.scores, split.labels, other);
  EXPECT_EQ(r8.bootstrap.seed, 8u);
  EXPECT_EQ(r8.classes[0].auc_ci.lower.value(), bootstrap_ci(y, s, roc_auc, other).lower.value());
}

TEST(ZeroShotMetrics, MulticlassUsesTheArgmax) {
  const ZeroShotTask task = mode_task("multiclass");  // threshold: argmax
  const std::vector<std::string> studies{"1", "2", "3", "4", "5", "6", "7"};
  const std::vector<std::vector<double>> scores{{0.6, 0.3, 0.1}, {0.2, 0.5, 0.3}, {0.4, 0.4, 0.2},
                                                {0.1, 0.2, 0.7}, {0.5, 0.1, 0.4}, {0.3, 0.3, 0.4},
                                                {0.2, 0.2, 0.6}};
  const std::vector<std::map<std::string, int>> labels{
      {{"a", 1}, {"b", 0}, {"c", 0}}, {{"a", 0}, {"b", 1}, {"c", 0}}, {{"a", 0}, {"b", 1}, {"c", 0}},
      {{"a", 0}, {"b", 0}, {"c", 1}}, {{"a", 0}, {"b", 0}, {"c", 1}}, {{"a", 1}, {"b", 0}, {"c", 0}},
      {{"a", 0}, {"b", 0}, {"c", 0}}};  // the last is skipped: no class labelled 1
  const ZeroShotResult r = zeroshot_metrics(task, studies, scores, labels);
  ASSERT_TRUE(r.multiclass.has_value());
  EXPECT_EQ(r.multiclass->n, 6);
  const std::vector<int> y{0, 1, 1, 2, 2, 0};
  const ScoreMatrix rows(scores.begin(), scores.begin() + 6);
  const std::vector<int> pred = argmax(rows);
  EXPECT_DOUBLE_EQ(*r.multiclass->balanced_accuracy.value, *balanced_accuracy(y, pred).value);
  EXPECT_DOUBLE_EQ(r.multiclass->f1_weighted, precision_recall_f1(y, pred, Average::kWeighted).f1);
  EXPECT_DOUBLE_EQ(*r.multiclass->auc_ovr_macro.value, *multiclass_roc_auc_ovr(y, rows).macro.value);
  EXPECT_TRUE(r.multiclass->auc_ovr_macro_ci.defined());
  // Per class: one-vs-rest, predicted positive where the class is the argmax (study 3 ties a/b -> a).
  const ClassResult& b = r.classes[1];
  EXPECT_EQ(b.n_pos, 2);
  EXPECT_EQ(b.n_neg, 4);
  EXPECT_EQ(b.skipped.at("no class of the task labelled 1"), 1);
  EXPECT_FALSE(b.at_default->threshold.has_value());
  EXPECT_EQ(b.at_default->metrics.true_pos, 1);   // study 2
  EXPECT_EQ(b.at_default->metrics.false_neg, 1);  // study 3 (argmax a)
  EXPECT_EQ(b.at_default->metrics.false_pos, 0);
  EXPECT_NE(b.at_default->rule.find("argmax"), std::string::npos);
  EXPECT_EQ(zeroshot_summary(r).count("multiclass_balanced_accuracy"), 1u);
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

TEST(ZeroShotResults, FilesHoldEveryValueAndChoice) {
  json t = json::parse(R"({"name": "two", "mode": "positive", "templates": ["{c}"], "threshold": 0.5,
      "bootstrap": {"resamples": 50, "seed": 3},
      "classes": [{"name": "a", "prompts": ["a"]}, {"name": "b", "prompts": ["b"]}]})");
  Split split;
  split.scores[0][0] = 0.1 + 0.2;  // a value that needs 17 digits
  ZeroShotResult r = zeroshot_metrics(parse_task(t, "inline"), split.studies, split.scores, split.labels);
  r.model = "runs/m";
  r.data = "cache";
  r.split = "test";
  TempDir dir("hlip_zeroshot");
  write_results(r, dir.file("results.json"), dir.file("scores.csv"));

  const json results = json::parse(test::read_bytes(dir.file("results.json")));
  EXPECT_EQ(results["task"], "two");
  EXPECT_EQ(results["model"], "runs/m");
  EXPECT_EQ(results["data"], "cache");
  EXPECT_EQ(results["split"], "test");
  EXPECT_EQ(results["n_studies"], 6);
  const json& a = results["classes"]["a"];
  for (const char* key : {"auc", "balanced_accuracy", "f1_weighted", "precision", "recall", "n_pos", "n_neg",
                          "auc_ci95", "threshold_rule", "threshold", "optimal", "skipped"}) {
    EXPECT_TRUE(a.contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(a["auc"].get<double>(), *r.classes[0].auc.value);
  EXPECT_EQ(a["auc_ci95"].size(), 2u);
  EXPECT_EQ(a["threshold"], 0.5);
  EXPECT_EQ(a["optimal"]["threshold_rule"].get<std::string>().rfind(kYoudenRule, 0), 0u);
  EXPECT_TRUE(results["classes"]["b"]["auc"].is_null());
  EXPECT_FALSE(results["classes"]["b"]["included"].get<bool>());
  EXPECT_EQ(results["excluded"][0]["class"], "b");
  EXPECT_DOUBLE_EQ(results["mean"]["auc"].get<double>(), r.mean.at("auc"));
  EXPECT_EQ(results["mean"]["n_classes"], 1);
  const json& protocol = results["protocol"];
  EXPECT_EQ(protocol["mode"], "positive");
  EXPECT_EQ(protocol["templates"], json::array({"{c}"}));
  EXPECT_EQ(protocol["bootstrap"]["resamples"], 50);
  EXPECT_EQ(protocol["bootstrap"]["seed"], 3);
  EXPECT_NE(protocol["threshold_rule"].get<std::string>().find(">= 0.5"), std::string::npos);
  EXPECT_EQ(protocol["task_definition"]["classes"][1]["prompts"], json::array({"b"}));

  const auto lines = lines_of(dir.file("scores.csv"));
  ASSERT_EQ(lines.size(), 1u + 5u + 6u);  // "a" lacks a label for the last study
  EXPECT_EQ(lines[0], "study,class,score,label");
  EXPECT_EQ(lines[1], "s1,a,0.30000000000000004,1");
  EXPECT_EQ(lines.back(), "\"s6,odd\",b,0.59999999999999998,0");
  // Every score reads back exactly.
  for (size_t i = 2; i < lines.size() - 1; ++i) {
    std::stringstream row(lines[i]);
    std::string study, cls, score, label;
    std::getline(row, study, ',');
    std::getline(row, cls, ',');
    std::getline(row, score, ',');
    std::getline(row, label, ',');
    size_t s = 0;
    while (split.studies[s] != study)
      ++s;
    EXPECT_EQ(std::stod(score), split.scores[s][cls == "a" ? 0 : 1]) << lines[i];
    EXPECT_EQ(std::stoi(label), split.labels[s].at(cls)) << lines[i];
  }
}

}  // namespace
}  // namespace hlip::eval
