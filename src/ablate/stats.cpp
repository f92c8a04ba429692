#include "hlip/ablate/stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/data/csv_manifest.h"

namespace hlip::ablate {
namespace fs = std::filesystem;

namespace {

// One line of scores.csv as fields (RFC 4180 quoting, data::parse_csv_record); errors name `where`.
std::vector<std::string> split_csv_line(const std::string& line, const std::string& where) {
  std::size_t pos = 0;
  try {
    return data::parse_csv_record(line, pos);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
}

}  // namespace

MetricDefinition metric_definition(const std::string& name) {
  if (name == "macro_auc") return {name, "macro AUC", "/mean/auc", "zeroshot/mean_auc", ""};
  if (name == "multiclass_auc") {
    return {name, "multiclass macro AUC (one-vs-rest)", "/multiclass/auc_ovr_macro",
            "zeroshot/multiclass_auc", ""};
  }
  if (name.rfind("auc/", 0) == 0 && name.size() > 4) {
    const std::string cls = name.substr(4);
    std::string pointer = "/classes/";
    for (char c : cls) {
      if (c == '~')
        pointer += "~0";
      else if (c == '/')
        pointer += "~1";
      else
        pointer += c;
    }
    return {name, "AUC of " + cls, pointer + "/auc", "zeroshot/auc/" + cls, cls};
  }
  throw Error(fmt::format("metric \"{}\": unknown (known: macro_auc, multiclass_auc, auc/<class>)", name));
}

std::vector<ScoreRow> read_scores_csv(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path.string()));
  std::string line;
  if (!std::getline(in, line)) throw Error(fmt::format("{}: empty, expected a header", path.string()));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line != "study,class,score,label") {
    throw Error(
        fmt::format("{}:1: header \"{}\", expected \"study,class,score,label\"", path.string(), line));
  }
  std::vector<ScoreRow> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.empty() || line == "\r") continue;
    const std::string where = fmt::format("{}:{}", path.string(), number);
    const auto fields = split_csv_line(line, where);
    if (fields.size() != 4) throw Error(fmt::format("{}: {} fields, expected 4", where, fields.size()));
    ScoreRow row{fields[0], fields[1], 0.0, 0};
    try {
      std::size_t used = 0;
      row.score = std::stod(fields[2], &used);
      if (used != fields[2].size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      throw Error(fmt::format("{}: score \"{}\" is not a number", where, fields[2]));
    }
    if (fields[3] != "0" && fields[3] != "1") {
      throw Error(fmt::format("{}: label \"{}\" is neither 0 nor 1", where, fields[3]));
    }
    row.label = fields[3] == "1" ? 1 : 0;
    if (std::isnan(row.score)) throw Error(fmt::format("{}: score is NaN", where));
    rows.push_back(std::move(row));
  }
  return rows;
}

PairedScores pair_scores(const std::vector<std::vector<ScoreRow>>& runs_a,
                         const std::vector<std::vector<ScoreRow>>& runs_b, const MetricDefinition& metric) {
  if (runs_a.empty() || runs_b.empty()) throw Error("pair_scores: each arm needs at least one run's scores");
  using Key = std::pair<std::string, std::string>;  // (class, study)
  std::vector<const std::vector<ScoreRow>*> runs;
  for (const auto& run : runs_a)
    runs.push_back(&run);
  for (const auto& run : runs_b)
    runs.push_back(&run);
  std::vector<std::map<Key, std::pair<double, int>>> by_key(runs.size());
  std::set<Key> every;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    for (const ScoreRow& row : *runs[r]) {
      if (!metric.only_class.empty() && row.cls != metric.only_class) continue;
      by_key[r][{row.cls, row.study}] = {row.score, row.label};
      every.insert({row.cls, row.study});
    }
  }
  PairedScores out;
  // Pairs scored, with the same label, in every run.
  std::map<std::string, std::map<std::string, int>> kept;  // class -> study -> label
  std::size_t missing = 0, relabelled = 0;
  for (const Key& key : every) {
    std::optional<int> label;
    bool keep = true;
    for (const auto& run : by_key) {
      const auto it = run.find(key);
      if (it == run.end()) {
        keep = false;
        ++missing;
        break;
      }
      if (label && *label != it->second.second) {
        keep = false;
        ++relabelled;
        break;
      }
      label = it->second.second;
    }
    if (keep) kept[key.first][key.second] = *label;
  }
  out.dropped_pairs = missing + relabelled;
  if (missing > 0) {
    out.notes.push_back(
        fmt::format("{} (study, class) pairs were not scored in every run and are left out", missing));
  }
  if (relabelled > 0) {
    out.notes.push_back(fmt::format(
        "{} (study, class) pairs carry different labels in different runs and are left out", relabelled));
  }
  std::set<std::string> studies;
  for (const auto& [cls, by_study] : kept) {
    int positives = 0;
    for (const auto& [study, label] : by_study)
      positives += label;
    const int negatives = static_cast<int>(by_study.size()) - positives;
    if (positives == 0 || negatives == 0) {
      out.notes.push_back(
          fmt::format("class \"{}\" has {} positive and {} negative paired studies: no AUC, "
                      "left out of the metric",
                      cls, positives, negatives));
      continue;
    }
    out.classes.push_back(cls);
    for (const auto& entry : by_study)
      studies.insert(entry.first);
  }
  if (!metric.only_class.empty() && out.classes.empty() && kept.empty()) {
    out.notes.push_back(fmt::format("class \"{}\" has no paired studies", metric.only_class));
  }
  out.studies.assign(studies.begin(), studies.end());
  std::map<std::string, std::size_t> study_index;
  for (std::size_t i = 0; i < out.studies.size(); ++i)
    study_index[out.studies[i]] = i;
  out.labels.assign(out.classes.size(), std::vector<int>(out.studies.size(), -1));
  for (std::size_t c = 0; c < out.classes.size(); ++c) {
    for (const auto& [study, label] : kept[out.classes[c]])
      out.labels[c][study_index.at(study)] = label;
  }
  auto aligned = [&](std::size_t run) {
    std::vector<std::vector<double>> scores(out.classes.size(), std::vector<double>(out.studies.size(), 0.0));
    for (std::size_t c = 0; c < out.classes.size(); ++c) {
      for (std::size_t s = 0; s < out.studies.size(); ++s) {
        if (out.labels[c][s] >= 0) scores[c][s] = by_key[run].at({out.classes[c], out.studies[s]}).first;
      }
    }
    return scores;
  };
  for (std::size_t r = 0; r < runs_a.size(); ++r)
    out.a.push_back(aligned(r));
  for (std::size_t r = 0; r < runs_b.size(); ++r)
    out.b.push_back(aligned(runs_a.size() + r));
  return out;
}

eval::Score metric_on(const PairedScores& paired, const std::vector<std::vector<double>>& scores,
                      const std::vector<std::size_t>& indices) {
  if (paired.classes.empty()) return eval::Score::undefined("no class with positive and negative studies");
  double sum = 0.0;
  std::vector<int> y_true;
  std::vector<double> y_score;
  for (std::size_t c = 0; c < paired.classes.size(); ++c) {
    y_true.clear();
    y_score.clear();
    for (std::size_t index : indices) {
      const int label = paired.labels[c][index];
      if (label < 0) continue;
      y_true.push_back(label);
      y_score.push_back(scores[c][index]);
    }
    const eval::Score auc = eval::roc_auc(y_true, y_score);
    if (!auc.defined())
      return eval::Score::undefined(fmt::format("class \"{}\": {}", paired.classes[c], auc.reason));
    sum += *auc.value;
  }
  return eval::Score::of(sum / static_cast<double>(paired.classes.size()));
}

const char* to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::kBetter:
      return "better";
    case Verdict::kWorse:
      return "worse";
    case Verdict::kNoDetectableDifference:
      return "no detectable difference";
    case Verdict::kNotDetermined:
      return "not determined";
  }
  return "not determined";
}

Verdict decide(const std::optional<double>& lower, const std::optional<double>& upper,
               const std::vector<double>& seed_differences, bool higher_is_better, std::string* reason) {
  std::string why;
  Verdict verdict = Verdict::kNoDetectableDifference;
  if (!lower || !upper) {
    why = "no confidence interval";
    verdict = Verdict::kNotDetermined;
  } else {
    // Improvements: B - A when higher is better, A - B otherwise.
    const double sign = higher_is_better ? 1.0 : -1.0;
    const double low = std::min(sign * *lower, sign * *upper);
    const double high = std::max(sign * *lower, sign * *upper);
    if (low <= 0.0 && high >= 0.0) {
      why = "the interval contains 0";
    } else {
      const bool improves = low > 0.0;
      std::size_t agree = 0;
      for (double d : seed_differences)
        agree += (improves ? sign * d > 0.0 : sign * d < 0.0) ? 1 : 0;
      if (seed_differences.size() >= 2 && agree < seed_differences.size()) {
        why = fmt::format("the interval excludes 0 but only {} of {} seeds agree", agree,
                          seed_differences.size());
      } else {
        verdict = improves ? Verdict::kBetter : Verdict::kWorse;
        why = seed_differences.size() >= 2
                  ? fmt::format("the interval excludes 0 and all {} seeds agree", seed_differences.size())
                  : "the interval excludes 0";
      }
    }
  }
  if (reason) *reason = why;
  return verdict;
}

Spread spread(const std::vector<double>& values) {
  Spread out;
  out.n = static_cast<int>(values.size());
  if (values.empty()) return out;
  out.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  out.min = *std::min_element(values.begin(), values.end());
  out.max = *std::max_element(values.begin(), values.end());
  if (values.size() >= 2) {
    double sum = 0.0;
    for (double v : values)
      sum += (v - out.mean) * (v - out.mean);
    out.sd = std::sqrt(sum / static_cast<double>(values.size() - 1));
  }
  return out;
}

Comparison compare(const PairedScores& paired, bool higher_is_better, const eval::BootstrapOptions& options,
                   const std::vector<double>& seed_differences) {
  Comparison out;
  if (paired.studies.empty() || paired.classes.empty()) {
    out.difference.estimate = eval::Score::undefined("no paired studies");
    out.difference.reason = "no paired studies with positive and negative labels";
    out.verdict = decide(std::nullopt, std::nullopt, seed_differences, higher_is_better, &out.verdict_reason);
    return out;
  }
  auto seed_mean = [&paired](const std::vector<std::vector<std::vector<double>>>& runs) {
    return [&paired, &runs](const std::vector<std::size_t>& indices) {
      double sum = 0.0;
      for (const auto& scores : runs) {
        const eval::Score score = metric_on(paired, scores, indices);
        if (!score.defined()) return score;
        sum += *score.value;
      }
      return eval::Score::of(sum / static_cast<double>(runs.size()));
    };
  };
  out.difference = eval::paired_bootstrap_difference(paired.n_studies(), seed_mean(paired.b),
                                                     seed_mean(paired.a), options);
  out.verdict = decide(out.difference.lower, out.difference.upper, seed_differences, higher_is_better,
                       &out.verdict_reason);
  if (!out.difference.defined()) out.verdict_reason += ": " + out.difference.reason;
  return out;
}

}  // namespace hlip::ablate
