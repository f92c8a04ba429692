// Linear probes: the logistic regression against scikit-learn's fits (tests/data/probe/logistic.json, made by
// tests/ref/make_probe_ref.py), recovery of a known model, determinism, bad input, and the probe on
// hand-made embeddings (selection rule, dropped classes, skips, multiclass, the results files).

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/eval/probe.h"
#include "temp_dir.h"

namespace hlip::eval {
namespace {

using json = nlohmann::json;
using test::error_message;
using test::TempDir;

const json& reference() {
  static const json file = [] {
    const std::string path = std::string(HLIP_TEST_DATA_DIR) + "/probe/logistic.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return file;
}

at::Tensor matrix(const json& rows) {
  std::vector<double> flat;
  for (const auto& row : rows) {
    for (const auto& value : row)
      flat.push_back(value.get<double>());
  }
  const auto n = static_cast<int64_t>(rows.size());
  return at::tensor(flat, at::kDouble).view({n, static_cast<int64_t>(flat.size()) / n});
}

void expect_close(const at::Tensor& actual, const at::Tensor& expected, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double error = (actual - expected).abs().max().item<double>();
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_LE(error, tolerance * scale) << what << ": max error " << error;
}

TEST(LogisticRegression, MatchesScikitLearn) {
  ASSERT_GE(reference().at("cases").size(), 7u);
  for (const json& c : reference().at("cases")) {
    const std::string id = c.at("id");
    SCOPED_TRACE(id);
    ASSERT_LT(c.at("gradient_max").get<double>(), 1e-9);  // the reference is exact to about that
    const at::Tensor x = matrix(c.at("x"));
    const auto y = c.at("y").get<std::vector<int>>();
    LogisticOptions options;
    options.l2 = c.at("l2").get<double>();
    const LogisticModel fit = c.at("multinomial").get<bool>() ? fit_multinomial_logistic(x, y, 3, options)
                                                              : fit_binary_logistic(x, y, options);
    EXPECT_TRUE(fit.converged) << fit.gradient_max;
    EXPECT_LT(fit.gradient_max, options.gradient_tolerance);
    expect_close(fit.weight, matrix(c.at("coef")), 1e-7, id + " coef");
    expect_close(fit.bias, at::tensor(c.at("intercept").get<std::vector<double>>(), at::kDouble), 1e-7,
                 id + " intercept");
    const at::Tensor train = fit.predict_proba(x);
    const at::Tensor test = fit.predict_proba(matrix(c.at("x_test")));
    if (fit.multinomial) {
      expect_close(train, matrix(c.at("proba_train")), 1e-8, id + " proba_train");
      expect_close(test, matrix(c.at("proba_test")), 1e-8, id + " proba_test");
    } else {  // scikit-learn gives [P(0), P(1)]
      expect_close(train, matrix(c.at("proba_train")).select(1, 1).unsqueeze(1), 1e-8, id + " proba_train");
      expect_close(test, matrix(c.at("proba_test")).select(1, 1).unsqueeze(1), 1e-8, id + " proba_test");
    }
  }
}

// Labels drawn from a known model, n large and the penalty negligible: the fit finds the model again.
TEST(LogisticRegression, RecoversAKnownModelAndIsDeterministic) {
  at::manual_seed(11);
  const int64_t n = 20000;
  const at::Tensor x = at::randn({n, 3}, at::kDouble);
  const at::Tensor true_w = at::tensor({2.0, -1.0, 0.5}, at::kDouble);
  const double true_b = -0.5;
  const at::Tensor p = at::sigmoid(at::matmul(x, true_w) + true_b);
  const at::Tensor draws = at::rand({n}, at::kDouble) < p;
  std::vector<int> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    y[static_cast<size_t>(i)] = draws[i].item<bool>() ? 1 : 0;
  LogisticOptions options;
  options.l2 = 1e-8;
  const LogisticModel fit = fit_binary_logistic(x, y, options);
  EXPECT_TRUE(fit.converged);
  // Standard errors are about sqrt(1/(n p(1-p))) ~ 0.02 here.
  EXPECT_LT((fit.weight[0] - true_w).abs().max().item<double>(), 0.1) << fit.weight;
  EXPECT_NEAR(fit.bias[0].item<double>(), true_b, 0.1);
  const LogisticModel again = fit_binary_logistic(x, y, options);
  EXPECT_TRUE(at::equal(fit.weight, again.weight));
  EXPECT_TRUE(at::equal(fit.bias, again.bias));
}

TEST(LogisticRegression, BadInputIsAnError) {
  const at::Tensor x = at::tensor({0.0, 1.0, 2.0, 3.0}, at::kDouble).view({4, 1});
  EXPECT_NE(error_message([&] {
              fit_binary_logistic(x, {0, 0, 0, 0});
            }).find("0 of 4 labels are 1"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              fit_binary_logistic(x, {0, 1, 2, 1});
            }).find("label 2 is 2"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              fit_binary_logistic(x, {0, 1, 1});
            }).find("for 3 labels"),
            std::string::npos);
  LogisticOptions zero;
  zero.l2 = 0.0;
  EXPECT_NE(error_message([&] {
              fit_binary_logistic(x, {0, 1, 0, 1}, zero);
            }).find("l2 is 0"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              fit_multinomial_logistic(x, {0, 1, 0, 1}, 3);
            }).find("no example of class 2"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              fit_multinomial_logistic(x, {0, 1, 3, 1}, 3);
            }).find("label 2 is 3"),
            std::string::npos);
  const at::Tensor with_nan = at::tensor({0.0, NAN, 2.0, 3.0}, at::kDouble).view({4, 1});
  EXPECT_NE(error_message([&] {
              fit_binary_logistic(with_nan, {0, 1, 0, 1});
            }).find("NaN"),
            std::string::npos);
}

// A positive-mode task of three labels; "rare" has no positive training study.
ZeroShotTask label_task() {
  return parse_task(json::parse(R"({"name": "labels", "mode": "positive", "templates": ["{c}"],
      "classes": [{"name": "a", "prompts": ["a"]}, {"name": "b", "label": "B", "prompts": ["b"]},
                  {"name": "rare", "prompts": ["rare"]}]})"),
                    "inline");
}

// One feature per study (E = 1): every positive L2 gives the same ranking, so the validation AUC ties
// across the grid.
ProbeSplit one_feature_split(const std::string& prefix, const std::vector<double>& values,
                             const std::vector<std::map<std::string, int>>& labels) {
  ProbeSplit split;
  for (size_t i = 0; i < values.size(); ++i)
    split.studies.push_back(prefix + std::to_string(i));
  split.features = at::tensor(values, at::kFloat).view({static_cast<int64_t>(values.size()), 1});
  split.labels = labels;
  return split;
}

TEST(Probe, OneVsRestChoosesTheLargestStrengthOnTiesAndDropsUntrainableClasses) {
  // Label a = feature > 0, label B = feature < 0; "rare" is 0 everywhere in training; the last training
  // study has no labels at all.
  const std::vector<double> values = {-2.0, -1.0, -0.5, 0.5, 1.0, 2.0};
  std::vector<std::map<std::string, int>> labels;
  for (double v : values)
    labels.push_back({{"a", v > 0}, {"B", v < 0}, {"rare", 0}});
  ProbeSplit train = one_feature_split("train", {-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 0.1}, labels);
  train.labels.push_back({});
  const ProbeSplit val = one_feature_split("val", values, labels);
  std::vector<std::map<std::string, int>> test_labels = labels;
  test_labels[0].erase("B");  // skipped for B
  test_labels[1]["rare"] = 1;
  const ProbeSplit test = one_feature_split("test", {-3.0, -1.5, -0.2, 0.2, 1.5, 3.0}, test_labels);

  ProbeOptions options;
  options.bootstrap = BootstrapOptions{50, 0.95, 1};
  options.train_split = "train";
  options.val_split = "val";
  options.test_split = "test";
  const ProbeResult result = run_probe(label_task(), train, val, test, options);
  EXPECT_FALSE(result.multinomial);
  ASSERT_EQ(result.grid.size(), 9u);
  for (const auto& point : result.grid) {
    EXPECT_DOUBLE_EQ(*point.val_macro_auc.value, 1.0);
    EXPECT_TRUE(point.converged);
    EXPECT_EQ(point.iterations.size(), 2u);  // a and b; rare dropped
  }
  EXPECT_DOUBLE_EQ(result.grid[result.chosen].l2, 100.0);  // ties: the strongest penalty
  ASSERT_EQ(result.dropped.size(), 1u);
  EXPECT_EQ(result.dropped[0].first, "rare");
  EXPECT_EQ(result.dropped[0].second, "0 positive and 6 negative studies in training split \"train\"");
  EXPECT_EQ(result.n_train, 6);
  EXPECT_EQ(result.train_counts[0].skipped.at("label missing"), 1);

  const ZeroShotResult& t = result.test;
  ASSERT_EQ(t.classes.size(), 2u);
  EXPECT_EQ(t.classes[0].name, "a");
  EXPECT_DOUBLE_EQ(*t.classes[0].auc.value, 1.0);
  EXPECT_DOUBLE_EQ(*t.classes[1].auc.value, 1.0);
  EXPECT_EQ(t.classes[1].n_pos + t.classes[1].n_neg, 5);
  EXPECT_EQ(t.classes[1].skipped.at("label missing"), 1);
  EXPECT_EQ(*t.classes[0].at_default->threshold, 0.5);
  for (const auto& row : t.scores) {
    EXPECT_GT(row[0], 0.0);
    EXPECT_LT(row[0], 1.0);
  }
  // Scores are the chosen fit's probabilities: a rises with the feature, b falls.
  EXPECT_LT(t.scores[0][0], t.scores[5][0]);
  EXPECT_GT(t.scores[0][1], t.scores[5][1]);

  TempDir dir("hlip_probe");
  write_probe_results(result, dir.file("results.json"), dir.file("scores.csv"));
  std::ifstream in(dir.file("results.json"));
  const json written = json::parse(in);
  EXPECT_EQ(written["task"], "labels");
  EXPECT_EQ(written["split"], "test");
  EXPECT_EQ(written["probe"]["chosen_l2"], 100.0);
  EXPECT_EQ(written["probe"]["l2_grid"].size(), 9u);
  EXPECT_EQ(written["probe"]["dropped"][0]["class"], "rare");
  EXPECT_EQ(written["probe"]["classes"]["b"]["train_pos"], 3);
  EXPECT_EQ(written["classes"]["a"]["auc"], 1.0);
  EXPECT_NE(written["protocol"]["objective"].get<std::string>().find("(l2/2)"), std::string::npos);
  std::ifstream csv(dir.file("scores.csv"));
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "study,class,score,label");
  int rows = 0;
  for (std::string line; std::getline(csv, line);)
    ++rows;
  EXPECT_EQ(rows, 6 + 5);  // a: six studies; b: five (one skipped)
  EXPECT_NE(format_probe_table(result).find("<- chosen"), std::string::npos);
}

TEST(Probe, MulticlassFitsOneSoftmaxModel) {
  const ZeroShotTask task =
      parse_task(json::parse(R"({"name": "three", "mode": "multiclass", "templates": ["{c}"],
      "classes": [{"name": "x", "prompts": ["x"]}, {"name": "y", "prompts": ["y"]}, {"name": "z", "prompts": ["z"]}]})"),
                 "inline");
  // Three clusters on the axes of a 3-D space.
  const auto split = [](const std::string& prefix, int per_class, double spread) {
    ProbeSplit out;
    std::vector<float> values;
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < per_class; ++i) {
        out.studies.push_back(prefix + std::to_string(c) + "_" + std::to_string(i));
        for (int e = 0; e < 3; ++e)
          values.push_back((e == c ? 1.0f : 0.0f) + static_cast<float>(spread * ((i * 7 + e * 3) % 5 - 2)));
        out.labels.push_back({{"x", c == 0}, {"y", c == 1}, {"z", c == 2}});
      }
    }
    out.features = at::tensor(values, at::kFloat).view({3 * per_class, 3});
    return out;
  };
  ProbeSplit test = split("test", 4, 0.05);
  test.labels[0] = {{"x", 1}, {"y", 1}, {"z", 0}};  // several classes labelled: skipped
  ProbeOptions options;
  options.l2_grid = {1e-3, 1e-1};
  options.bootstrap = BootstrapOptions{20, 0.95, 0};
  const ProbeResult result = run_probe(task, split("train", 5, 0.1), split("val", 3, 0.08), test, options);
  EXPECT_TRUE(result.multinomial);
  EXPECT_EQ(result.grid[0].iterations.size(), 1u);
  ASSERT_TRUE(result.test.multiclass.has_value());
  EXPECT_EQ(result.test.multiclass->n, 11);
  EXPECT_DOUBLE_EQ(result.test.multiclass->accuracy, 1.0);
  for (const auto& row : result.test.scores)
    EXPECT_NEAR(row[0] + row[1] + row[2], 1.0, 1e-12);
  EXPECT_FALSE(result.test.task.threshold.has_value());  // argmax

  // Every class must be in training.
  ProbeSplit no_z = split("train", 5, 0.1);
  for (auto& labels : no_z.labels)
    labels["z"] = 0;
  EXPECT_NE(error_message([&] {
              run_probe(task, no_z, split("val", 3, 0.08), test, options);
            }).find("class \"z\" (label \"z\") has no study in training split"),
            std::string::npos);
}

TEST(Probe, ValidationWithoutBothLabelsIsAnError) {
  const std::vector<std::map<std::string, int>> labels = {{{"a", 0}}, {{"a", 1}}, {{"a", 0}}, {{"a", 1}}};
  const ProbeSplit train = one_feature_split("t", {-1, 1, -2, 2}, labels);
  const ProbeSplit val = one_feature_split("v", {-1, -2}, {{{"a", 0}}, {{"a", 0}}});
  const ZeroShotTask task = parse_task(
      json::parse(
          R"({"name": "one", "mode": "positive", "templates": ["{c}"], "classes": [{"name": "a", "prompts": ["a"]}]})"),
      "inline");
  ProbeOptions options;
  options.val_split = "val";
  EXPECT_NE(error_message([&] {
              run_probe(task, train, val, train, options);
            }).find("validation split \"val\": no class has both positive and negative studies"),
            std::string::npos);
  const ProbeSplit wrong_width{{"w"}, at::zeros({1, 2}), {{{"a", 1}}}, 0};
  EXPECT_NE(
      error_message([&] { run_probe(task, train, wrong_width, train, options); }).find("features [1, 2]"),
      std::string::npos);
}

}  // namespace
}  // namespace hlip::eval
