// Linear probes: L2-regularised logistic regression by Newton's method, the strength chosen on a validation
// split, and the test split scored with the zero-shot metrics.
#include "hlip/eval/probe.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <sstream>
#include <tuple>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/eval/embed.h"

namespace hlip::eval {
namespace {

using json = nlohmann::json;

struct Evaluation {
  double value = 0.0;
  at::Tensor gradient;  // flat
  at::Tensor hessian;   // [P, P], only when asked for
};
using Objective = std::function<Evaluation(const at::Tensor& theta, bool with_hessian)>;

struct NewtonOutcome {
  at::Tensor theta;
  int iterations = 0;
  bool converged = false;
  double value = 0.0;
  double gradient_max = 0.0;
};

// Solves H d = -g. H is positive definite in exact arithmetic (the penalty covers the weights, the data or
// the intercept term the intercepts); a Cholesky failure from rounding on nearly separable data adds a
// growing multiple of the identity.
at::Tensor newton_direction(const at::Tensor& hessian, const at::Tensor& gradient) {
  const auto size = hessian.size(0);
  const double scale = std::max(1.0, hessian.diagonal().abs().max().item<double>());
  at::Tensor matrix = hessian;
  for (double damping = 0.0; damping <= scale; damping = damping == 0.0 ? scale * 1e-14 : damping * 100) {
    if (damping > 0.0) matrix = hessian + damping * at::eye(size, hessian.options());
    auto [factor, info] = at::linalg_cholesky_ex(matrix);
    if (info.item<int64_t>() == 0) return at::cholesky_solve(-gradient.unsqueeze(1), factor).squeeze(1);
  }
  throw Error("logistic regression: the Hessian is not positive definite even with damping");
}

NewtonOutcome minimise_newton(const Objective& objective, at::Tensor theta, const LogisticOptions& options) {
  NewtonOutcome out;
  Evaluation current = objective(theta, true);
  for (;;) {
    out.gradient_max = current.gradient.abs().max().item<double>();
    if (out.gradient_max < options.gradient_tolerance) {
      out.converged = true;
      break;
    }
    if (out.iterations >= options.max_iterations) break;
    const at::Tensor step = newton_direction(current.hessian, current.gradient);
    const double slope = at::dot(current.gradient, step).item<double>();
    // Armijo backtracking; the last term lets a step through when the decrease is below float64's resolution
    // of the objective (near the optimum, where the gradient still shrinks).
    const double slack = 1e-15 * std::max(1.0, std::abs(current.value));
    bool accepted = false;
    for (double t = 1.0; t > 1e-12; t *= 0.5) {
      const at::Tensor candidate = theta + t * step;
      const Evaluation next = objective(candidate, false);
      if (next.value <= current.value + 1e-4 * t * slope + slack) {
        theta = candidate;
        accepted = true;
        break;
      }
    }
    ++out.iterations;
    if (!accepted) break;
    current = objective(theta, true);
  }
  out.theta = theta;
  out.value = current.value;
  return out;
}

// [x, 1]: the intercept as a last feature column.
at::Tensor with_ones(const at::Tensor& x) {
  return at::cat({x, at::ones({x.size(0), 1}, x.options())}, 1);
}

at::Tensor checked_features(const at::Tensor& x, size_t labels, const char* what) {
  if (x.dim() != 2 || x.size(0) != static_cast<int64_t>(labels) || x.size(0) == 0) {
    throw Error(fmt::format("{}: features have shape [{}] for {} labels; expected [N, D] with N = {} > 0",
                            what, fmt::join(x.sizes(), ", "), labels, labels));
  }
  const at::Tensor out = x.to(at::kCPU, at::kDouble).contiguous();
  if (!at::isfinite(out).all().item<bool>())
    throw Error(fmt::format("{}: features hold NaN or infinity", what));
  return out;
}

void check_l2(const LogisticOptions& options, const char* what) {
  if (!(options.l2 > 0.0) || !std::isfinite(options.l2)) {
    throw Error(fmt::format("{}: l2 is {}; it must be a positive number", what, options.l2));
  }
}

std::string format_optional(const Score& score) {
  return score.defined() ? fmt::format("{:.3f}", *score.value) : std::string("-");
}

json optional_json(const Score& score) {
  return score.defined() ? json(*score.value) : json(nullptr);
}

// Labels of every study of a split for every class of `task`, and the per-class counts.
std::vector<std::vector<int>> split_labels(const ZeroShotTask& task, const ProbeSplit& split,
                                           std::vector<ProbeClassCounts>* counts) {
  counts->assign(task.classes.size(), {});
  std::vector<std::vector<int>> out;
  for (size_t s = 0; s < split.studies.size(); ++s) {
    std::vector<std::string> reasons;
    out.push_back(task_labels(task, split.labels[s], split.studies[s], &reasons));
    for (size_t c = 0; c < task.classes.size(); ++c) {
      const int label = out.back()[c];
      if (label == 1) {
        ++(*counts)[c].pos;
      } else if (label == 0) {
        ++(*counts)[c].neg;
      } else {
        ++(*counts)[c].skipped[reasons[c]];
      }
    }
  }
  return out;
}

int64_t usable_studies(const std::vector<std::vector<int>>& labels) {
  return std::count_if(labels.begin(), labels.end(), [](const std::vector<int>& row) {
    return std::any_of(row.begin(), row.end(), [](int label) { return label >= 0; });
  });
}

// The class of each study with exactly one class labelled 1 (task_labels marks the others -1 throughout).
std::vector<std::pair<int64_t, int>> multiclass_rows(const std::vector<std::vector<int>>& labels) {
  std::vector<std::pair<int64_t, int>> out;
  for (size_t s = 0; s < labels.size(); ++s) {
    const auto one = std::find(labels[s].begin(), labels[s].end(), 1);
    if (one != labels[s].end())
      out.emplace_back(static_cast<int64_t>(s), static_cast<int>(one - labels[s].begin()));
  }
  return out;
}

at::Tensor rows_of(const at::Tensor& features, const std::vector<int64_t>& rows) {
  return features.index_select(0, at::tensor(rows, at::kLong));
}

void check_split(const ProbeSplit& split, const std::string& name, int64_t dim) {
  if (split.studies.size() != split.labels.size() || !split.features.defined() || split.features.dim() != 2 ||
      split.features.size(0) != static_cast<int64_t>(split.studies.size()) ||
      (dim >= 0 && split.features.size(1) != dim)) {
    throw Error(fmt::format(
        "probe: split \"{}\" has {} studies, {} label sets and features [{}]", name, split.studies.size(),
        split.labels.size(),
        split.features.defined() ? fmt::format("{}", fmt::join(split.features.sizes(), ", ")) : "none"));
  }
}

}  // namespace

at::Tensor LogisticModel::predict_proba(const at::Tensor& x) const {
  const at::Tensor z = at::matmul(x.to(at::kCPU, at::kDouble), weight.t()) + bias;
  return multinomial ? at::softmax(z, 1) : at::sigmoid(z);
}

LogisticModel fit_binary_logistic(const at::Tensor& x, const std::vector<int>& y,
                                  const LogisticOptions& options) {
  check_l2(options, "binary logistic regression");
  const at::Tensor features = with_ones(checked_features(x, y.size(), "binary logistic regression"));
  int64_t positives = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] != 0 && y[i] != 1) {
      throw Error(fmt::format("binary logistic regression: label {} is {}; expected 0 or 1", i, y[i]));
    }
    positives += y[i];
  }
  if (positives == 0 || positives == static_cast<int64_t>(y.size())) {
    throw Error(fmt::format("binary logistic regression: {} of {} labels are 1; both classes are needed",
                            positives, y.size()));
  }
  const at::Tensor target = at::tensor(std::vector<double>(y.begin(), y.end()), at::kDouble);
  const int64_t d = features.size(1) - 1;
  const double n = static_cast<double>(features.size(0));
  at::Tensor penalised = at::ones({d + 1}, at::kDouble);
  penalised[d] = 0.0;
  const double l2 = options.l2;
  const Objective objective = [&](const at::Tensor& theta, bool with_hessian) {
    const at::Tensor z = at::matmul(features, theta);
    // log(1 + e^z) - y z, computed without overflow.
    const at::Tensor loss = at::log1p(at::exp(-z.abs())) + z.clamp_min(0.0) - target * z;
    Evaluation e;
    e.value = loss.sum().item<double>() / n + 0.5 * l2 * (theta * theta * penalised).sum().item<double>();
    const at::Tensor p = at::sigmoid(z);
    e.gradient = at::matmul(features.t(), p - target) / n + l2 * theta * penalised;
    if (with_hessian) {
      e.hessian = at::matmul(features.t() * (p * (1.0 - p)), features) / n + at::diag(l2 * penalised);
    }
    return e;
  };
  const NewtonOutcome outcome = minimise_newton(objective, at::zeros({d + 1}, at::kDouble), options);
  LogisticModel model;
  model.weight = outcome.theta.slice(0, 0, d).unsqueeze(0).clone();
  model.bias = outcome.theta.slice(0, d).clone();
  model.iterations = outcome.iterations;
  model.converged = outcome.converged;
  model.objective = outcome.value;
  model.gradient_max = outcome.gradient_max;
  return model;
}

LogisticModel fit_multinomial_logistic(const at::Tensor& x, const std::vector<int>& y, int64_t classes,
                                       const LogisticOptions& options) {
  check_l2(options, "multinomial logistic regression");
  const at::Tensor features = with_ones(checked_features(x, y.size(), "multinomial logistic regression"));
  if (classes < 2)
    throw Error(fmt::format("multinomial logistic regression: {} classes; need 2 or more", classes));
  std::vector<int64_t> present(static_cast<size_t>(classes), 0);
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] < 0 || y[i] >= classes) {
      throw Error(fmt::format("multinomial logistic regression: label {} is {}; expected 0..{}", i, y[i],
                              classes - 1));
    }
    ++present[static_cast<size_t>(y[i])];
  }
  for (int64_t k = 0; k < classes; ++k) {
    if (present[static_cast<size_t>(k)] == 0) {
      throw Error(fmt::format("multinomial logistic regression: no example of class {}", k));
    }
  }
  const int64_t n_rows = features.size(0);
  const int64_t width = features.size(1);  // D + 1
  const int64_t d = width - 1;
  const double n = static_cast<double>(n_rows);
  const at::Tensor target =
      at::one_hot(at::tensor(std::vector<int64_t>(y.begin(), y.end()), at::kLong), classes).to(at::kDouble);
  at::Tensor penalised = at::ones({width}, at::kDouble);
  penalised[d] = 0.0;
  const double l2 = options.l2;
  const Objective objective = [&](const at::Tensor& theta, bool with_hessian) {
    const at::Tensor w = theta.view({classes, width});
    const at::Tensor log_p = at::log_softmax(at::matmul(features, w.t()), 1);  // [n, K]
    const double bias_sum = w.select(1, d).sum().item<double>();
    Evaluation e;
    e.value = -(target * log_p).sum().item<double>() / n +
              0.5 * l2 * (w * w * penalised).sum().item<double>() + 0.5 * bias_sum * bias_sum;
    const at::Tensor p = log_p.exp();
    at::Tensor gradient = at::matmul((p - target).t(), features) / n + l2 * w * penalised;
    gradient.select(1, d).add_(bias_sum);
    e.gradient = gradient.reshape({-1});
    if (with_hessian) {
      at::Tensor h = at::zeros({classes * width, classes * width}, at::kDouble);
      for (int64_t k = 0; k < classes; ++k) {
        for (int64_t l = k; l < classes; ++l) {
          const at::Tensor weight = p.select(1, k) * ((k == l ? 1.0 : 0.0) - p.select(1, l));
          const at::Tensor block = at::matmul(features.t() * weight, features) / n;
          h.slice(0, k * width, (k + 1) * width).slice(1, l * width, (l + 1) * width).copy_(block);
          if (l != k)
            h.slice(0, l * width, (l + 1) * width).slice(1, k * width, (k + 1) * width).copy_(block.t());
        }
      }
      h.diagonal().add_(l2 * penalised.repeat({classes}));
      for (int64_t k = 0; k < classes; ++k) {  // the (sum of intercepts)^2 / 2 term
        for (int64_t l = 0; l < classes; ++l)
          h[k * width + d][l * width + d].add_(1.0);
      }
      e.hessian = h;
    }
    return e;
  };
  const NewtonOutcome outcome =
      minimise_newton(objective, at::zeros({classes * width}, at::kDouble), options);
  const at::Tensor w = outcome.theta.view({classes, width});
  LogisticModel model;
  model.multinomial = true;
  model.weight = w.slice(1, 0, d).clone();
  model.bias = w.select(1, d).clone();
  model.iterations = outcome.iterations;
  model.converged = outcome.converged;
  model.objective = outcome.value;
  model.gradient_max = outcome.gradient_max;
  return model;
}

std::vector<double> default_l2_grid() {
  std::vector<double> grid;
  for (int exponent = -6; exponent <= 2; ++exponent)
    grid.push_back(std::pow(10.0, exponent));
  return grid;
}

ProbeResult run_probe(const ZeroShotTask& task, const ProbeSplit& train, const ProbeSplit& val,
                      const ProbeSplit& test, const ProbeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.l2_grid.empty()) throw Error("probe: the L2 grid is empty");
  for (double l2 : options.l2_grid) {
    if (!(l2 > 0.0) || !std::isfinite(l2))
      throw Error(fmt::format("probe: L2 grid value {} is not positive", l2));
  }
  check_split(train, options.train_split, -1);
  check_split(val, options.val_split, train.features.size(1));
  check_split(test, options.test_split, train.features.size(1));

  ProbeResult result;
  result.task = task;
  result.multinomial = task.mode == ScoringMode::kMulticlass;
  result.image_embedding = options.image_embedding >= 0 ? options.image_embedding : task.image_embedding;
  result.train_split = options.train_split;
  result.val_split = options.val_split;
  result.failed_train = train.failed;
  result.failed_val = val.failed;

  // The task the probe scores: thresholds on probabilities (0.5) or the argmax, and only trainable classes.
  ZeroShotTask probe_task = task;
  std::vector<ProbeClassCounts> counts;
  split_labels(task, train, &counts);
  if (result.multinomial) {
    probe_task.threshold.reset();
    for (size_t c = 0; c < task.classes.size(); ++c) {
      if (counts[c].pos == 0) {
        throw Error(fmt::format(
            "task {}: class \"{}\" (label \"{}\") has no study in training split \"{}\"; a multiclass probe "
            "needs every class",
            task.name, task.classes[c].name, task.classes[c].label, options.train_split));
      }
    }
  } else {
    probe_task.mode =
        ScoringMode::kNegativePositive;  // labels as any non-multiclass task; scores are probabilities
    probe_task.threshold = 0.5;
    probe_task.classes.clear();
    for (size_t c = 0; c < task.classes.size(); ++c) {
      if (counts[c].pos > 0 && counts[c].neg > 0) {
        probe_task.classes.push_back(task.classes[c]);
      } else {
        result.dropped.emplace_back(
            task.classes[c].name, fmt::format("{} positive and {} negative studies in training split \"{}\"",
                                              counts[c].pos, counts[c].neg, options.train_split));
      }
    }
    if (probe_task.classes.empty()) {
      throw Error(
          fmt::format("task {}: no class has both positive and negative studies in training split \"{}\"",
                      task.name, options.train_split));
    }
  }
  const size_t k = probe_task.classes.size();
  const auto train_labels = split_labels(probe_task, train, &result.train_counts);
  const auto val_labels = split_labels(probe_task, val, &result.val_counts);
  result.n_train = usable_studies(train_labels);
  result.n_val = usable_studies(val_labels);
  const at::Tensor train_x = train.features.to(at::kCPU, at::kDouble);
  const at::Tensor val_x = val.features.to(at::kCPU, at::kDouble);

  // Fits of one L2 value: one multinomial model, or one binary model per class.
  const auto fit = [&](double l2, ProbeGridPoint* point) {
    LogisticOptions logistic = options.logistic;
    logistic.l2 = l2;
    std::vector<LogisticModel> models;
    if (result.multinomial) {
      std::vector<int64_t> rows;
      std::vector<int> y;
      for (const auto& [row, cls] : multiclass_rows(train_labels)) {
        rows.push_back(row);
        y.push_back(cls);
      }
      models.push_back(
          fit_multinomial_logistic(rows_of(train_x, rows), y, static_cast<int64_t>(k), logistic));
    } else {
      for (size_t c = 0; c < k; ++c) {
        std::vector<int64_t> rows;
        std::vector<int> y;
        for (size_t s = 0; s < train_labels.size(); ++s) {
          if (train_labels[s][c] < 0) continue;
          rows.push_back(static_cast<int64_t>(s));
          y.push_back(train_labels[s][c]);
        }
        models.push_back(fit_binary_logistic(rows_of(train_x, rows), y, logistic));
      }
    }
    for (const auto& m : models) {
      point->iterations.push_back(m.iterations);
      point->converged = point->converged && m.converged;
    }
    return models;
  };
  // Scores [S][K] of features under the fits.
  const auto score = [&](const std::vector<LogisticModel>& models, const at::Tensor& x) {
    at::Tensor p =
        result.multinomial ? models.front().predict_proba(x) : at::empty({x.size(0), 0}, at::kDouble);
    if (!result.multinomial) {
      std::vector<at::Tensor> columns;
      for (const auto& m : models)
        columns.push_back(m.predict_proba(x));
      p = at::cat(columns, 1);
    }
    p = p.contiguous();
    ScoreMatrix out(static_cast<size_t>(p.size(0)));
    for (int64_t s = 0; s < p.size(0); ++s)
      out[static_cast<size_t>(s)].assign(p[s].data_ptr<double>(), p[s].data_ptr<double>() + p.size(1));
    return out;
  };

  std::vector<std::vector<LogisticModel>> fits;
  std::optional<size_t> best;
  for (double l2 : options.l2_grid) {
    ProbeGridPoint point;
    point.l2 = l2;
    fits.push_back(fit(l2, &point));
    const ScoreMatrix val_scores = score(fits.back(), val_x);
    if (result.multinomial) {
      std::vector<int> y_true;
      ScoreMatrix y_score;
      for (const auto& [row, cls] : multiclass_rows(val_labels)) {
        y_true.push_back(cls);
        y_score.push_back(val_scores[static_cast<size_t>(row)]);
      }
      if (y_true.empty()) {
        point.val_macro_auc = Score::undefined("no validation study has exactly one class labelled 1");
        point.val_auc.assign(k, point.val_macro_auc);
      } else {
        const AveragedAuc auc = multiclass_roc_auc_ovr(y_true, y_score);
        point.val_macro_auc = auc.macro;
        point.val_auc = auc.per_label;
      }
    } else {
      std::vector<double> defined;
      for (size_t c = 0; c < k; ++c) {
        std::vector<int> y_true;
        std::vector<double> y_score;
        for (size_t s = 0; s < val_labels.size(); ++s) {
          if (val_labels[s][c] < 0) continue;
          y_true.push_back(val_labels[s][c]);
          y_score.push_back(val_scores[s][c]);
        }
        point.val_auc.push_back(y_true.empty() ? Score::undefined("no validation study has a label")
                                               : roc_auc(y_true, y_score));
        if (point.val_auc.back().defined()) defined.push_back(*point.val_auc.back().value);
      }
      point.val_macro_auc = defined.empty()
                                ? Score::undefined("no class has positive and negative validation studies")
                                : Score::of(std::accumulate(defined.begin(), defined.end(), 0.0) /
                                            static_cast<double>(defined.size()));
    }
    if (point.val_macro_auc.defined()) {
      const size_t index = result.grid.size();
      if (!best) {
        best = index;
      } else {
        const double value = *point.val_macro_auc.value;
        const double best_value = *result.grid[*best].val_macro_auc.value;
        if (value > best_value || (value == best_value && l2 > result.grid[*best].l2)) best = index;
      }
    }
    result.grid.push_back(std::move(point));
  }
  if (!best) {
    throw Error(fmt::format(
        "validation split \"{}\": no class has both positive and negative studies ({} studies with a label), "
        "so the L2 strength cannot be chosen",
        options.val_split, result.n_val));
  }
  result.chosen = *best;

  std::vector<std::vector<double>> test_scores = score(fits[*best], test.features.to(at::kCPU, at::kDouble));
  result.test =
      zeroshot_metrics(probe_task, test.studies, std::move(test_scores), test.labels, options.bootstrap);
  result.test.model = options.model;
  result.test.data = options.data;
  result.test.split = options.test_split;
  result.test.failed_studies = test.failed;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.test.seconds = result.seconds;
  return result;
}

ProbeResult evaluate_probe(model::HlipClipImpl& model, const ZeroShotTask& task,
                           const data::StudyDataset& train, const data::StudyDataset& val,
                           const data::StudyDataset& test, const ProbeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t row = options.image_embedding >= 0 ? options.image_embedding : task.image_embedding;
  EmbedOptions embed_options;
  embed_options.workers = options.workers;
  embed_options.progress = options.progress;
  const auto embed = [&](const data::StudyDataset& dataset) {
    const StudyEmbeddings embeddings = embed_dataset(model, dataset, embed_options);
    if (row >= embeddings.embeddings.size(1)) {
      throw Error(fmt::format("the probe uses image embedding row {} but the model gives {} row(s)", row,
                              embeddings.embeddings.size(1)));
    }
    ProbeSplit split;
    split.studies = embeddings.ids;
    split.features = embeddings.embeddings.select(1, row).contiguous();
    split.failed = embeddings.failed;
    for (int64_t index : embeddings.indices)
      split.labels.push_back(dataset.study(index).labels);
    return split;
  };
  const ProbeSplit train_split = embed(train);
  const ProbeSplit val_split = embed(val);
  const ProbeSplit test_split = embed(test);
  ProbeResult result = run_probe(task, train_split, val_split, test_split, options);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.test.seconds = result.seconds;
  return result;
}

json probe_results_json(const ProbeResult& result) {
  json out = results_json(result.test);
  const ZeroShotTask& task = result.test.task;
  const ProbeGridPoint& chosen = result.grid.at(result.chosen);
  json grid = json::array();
  for (const ProbeGridPoint& point : result.grid) {
    grid.push_back({{"l2", point.l2},
                    {"val_macro_auc", optional_json(point.val_macro_auc)},
                    {"converged", point.converged},
                    {"iterations", point.iterations}});
  }
  json classes = json::object();
  for (size_t c = 0; c < task.classes.size(); ++c) {
    classes[task.classes[c].name] = {{"train_pos", result.train_counts[c].pos},
                                     {"train_neg", result.train_counts[c].neg},
                                     {"train_skipped", result.train_counts[c].skipped},
                                     {"val_pos", result.val_counts[c].pos},
                                     {"val_neg", result.val_counts[c].neg},
                                     {"val_skipped", result.val_counts[c].skipped},
                                     {"val_auc", optional_json(chosen.val_auc.at(c))}};
  }
  json dropped = json::array();
  for (const auto& [name, reason] : result.dropped)
    dropped.push_back({{"class", name}, {"reason", reason}});
  out["probe"] = {
      {"classifier", result.multinomial ? "multinomial logistic regression over the task's classes"
                                        : "binary logistic regression per class (one-vs-rest)"},
      {"train_split", result.train_split},
      {"val_split", result.val_split},
      {"n_train", result.n_train},
      {"n_val", result.n_val},
      {"failed_train", result.failed_train},
      {"failed_val", result.failed_val},
      {"l2_grid", grid},
      {"chosen_l2", chosen.l2},
      {"val_macro_auc", optional_json(chosen.val_macro_auc)},
      {"classes", classes},
      {"dropped", dropped}};
  const double tolerance = LogisticOptions{}.gradient_tolerance;
  out["protocol"] = {
      {"features",
       fmt::format("row {} of the frozen image embeddings (unit length), float64", result.image_embedding)},
      {"objective", result.multinomial ? "(1/n) sum -log softmax(W x + b)[y] + (l2/2) ||W||_F^2, intercepts "
                                         "not penalised (the common shift "
                                         "of the intercepts fixed by their sum = 0)"
                                       : "per class: (1/n) sum [log(1 + exp(w.x + b)) - y (w.x + b)] + "
                                         "(l2/2) ||w||^2 on the studies with "
                                         "a label for the class, intercept not penalised"},
      {"sklearn_equivalent",
       result.multinomial
           ? "LogisticRegression(C = 1 / (l2 * n), multi_class='multinomial')"
           : "LogisticRegression(C = 1 / (l2 * n)) per class, n its labelled training studies"},
      {"solver",
       fmt::format("Newton's method in float64 from zero with Armijo backtracking; converged when every "
                   "gradient entry is below {:g} (at most {} steps)",
                   tolerance, LogisticOptions{}.max_iterations)},
      {"selection",
       "the grid value with the highest macro AUC on the validation split (mean over the classes with "
       "positive and negative validation studies; one-vs-rest for multiclass), the largest value on ties; "
       "the model fitted on the training split at that value scores the test split"},
      {"score", result.multinomial ? "softmax probability of the class" : "sigmoid probability of the class"},
      {"threshold_rule", out["classes"].empty()
                             ? json(nullptr)
                             : out["classes"].begin()->value("threshold_rule", json(nullptr))},
      {"optimal_threshold_rule",
       std::string(kYoudenRule) + "; chosen on the evaluated studies, so the metrics at it are optimistic"},
      {"labels",
       "as zero-shot: a study counts for a class when its manifest label is 0 or 1 (task_labels); others are "
       "skipped for that class and counted"},
      {"means", "unweighted mean over the classes with positive and negative test studies"},
      {"bootstrap",
       {{"resamples", result.test.bootstrap.resamples},
        {"confidence", result.test.bootstrap.confidence},
        {"seed", result.test.bootstrap.seed},
        {"method", "percentile interval of the AUC over resamples of the class's test studies"}}},
      {"batch_size", 1},
      {"scans", "every scan of each study, in manifest order"},
      {"task_definition", result.task.to_json()}};
  return out;
}

void write_probe_results(const ProbeResult& result, const std::string& out_json,
                         const std::string& scores_csv) {
  if (!out_json.empty()) write_file_atomic(out_json, probe_results_json(result).dump(2) + "\n");
  write_results(result.test, "", scores_csv);
}

std::string format_probe_table(const ProbeResult& result) {
  std::ostringstream out;
  const ProbeGridPoint& chosen = result.grid.at(result.chosen);
  out << fmt::format("probe {} ({}), {} train / {} val / {} test studies\n", result.task.name,
                     result.multinomial ? "multinomial" : "one-vs-rest", result.n_train, result.n_val,
                     result.test.studies.size());
  out << fmt::format("{:>8}  {:>13}\n", "L2", "val macro AUC");
  for (size_t i = 0; i < result.grid.size(); ++i) {
    const ProbeGridPoint& point = result.grid[i];
    out << fmt::format("{:>8.0e}  {:>13}{}{}\n", point.l2, format_optional(point.val_macro_auc),
                       i == result.chosen ? "  <- chosen" : "", point.converged ? "" : "  (not converged)");
  }
  const std::string table = format_results_table(result.test);
  out << fmt::format("test split \"{}\" at L2 {:g}:\n", result.test.split, chosen.l2);
  out << table.substr(table.find('\n') + 1);  // zero-shot's first line names a scoring mode
  for (const auto& [name, reason] : result.dropped)
    out << fmt::format("dropped {}: {}\n", name, reason);
  return out.str();
}

}  // namespace hlip::eval
