#include "hlip/ablate/report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "hlip/ablate/plot.h"
#include "hlip/ablate/stats.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/eval/report.h"

namespace hlip::ablate {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kVerdictRule =
    "better: the confidence interval of B - A lies wholly on the side of improvement and, with two or more "
    "seeds run in both arms, every seed's own difference is on that side too; worse: the mirror image; not "
    "determined: fewer than 2 usable resamples; otherwise no detectable difference";

constexpr const char* kMethod =
    "paired percentile bootstrap over the evaluation studies scored in every run of both arms: each resample "
    "draws studies with replacement, evaluates the metric on it for every seed's scores.csv and averages "
    "over "
    "seeds; resamples in which a class lacks positives or negatives are skipped and counted";

// ---------------------------------------------------------------------------------------------------------
// What the sweep folder holds

struct Run {
  std::string seed;
  fs::path folder;                               // relative to the sweep folder
  std::optional<double> metric;                  // results.json at the metric's pointer
  std::vector<ScoreRow> scores;                  // scores.csv
  bool usable = false;                           // metric and scores read
  std::vector<std::pair<double, double>> curve;  // (step, value) of metrics.jsonl
  std::optional<double> last_step;               // the last step metrics.jsonl logged
  std::optional<json> cost;                      // cost.json
  std::vector<std::string> problems;
};

struct ArmData {
  std::string id;
  std::string status;
  std::string error;
  json changes = json::object();
  std::vector<Run> runs;  // in seed order

  std::vector<const Run*> usable() const {
    std::vector<const Run*> out;
    for (const Run& run : runs) {
      if (run.usable) out.push_back(&run);
    }
    return out;
  }
  bool ok() const { return status == "done" && !usable().empty(); }
  std::vector<double> metrics() const {
    std::vector<double> out;
    for (const Run* run : usable())
      out.push_back(*run->metric);
    return out;
  }
};

struct ChainArm {
  std::string label;
  std::string arm;
};

struct Ablation {
  int index = 0;
  std::string name, title, note;
  std::vector<ChainArm> arms;
};

struct Sweep {
  json raw;
  std::string task, split, profile, spec;
  MetricDefinition metric;
  bool higher_is_better = true;
  std::vector<Ablation> ablations;
  std::map<std::string, ArmData> arms;
};

std::string where(const fs::path& file, const std::string& field) {
  return fmt::format("{}: field \"{}\"", file.string(), field);
}

const json& field(const json& object, const std::string& key, const fs::path& file, const std::string& path,
                  json::value_t type) {
  if (!object.is_object() || !object.contains(key)) throw Error(where(file, path + key) + ": missing");
  const json& value = object.at(key);
  const bool fits = type == json::value_t::number_float ? value.is_number() : value.type() == type;
  if (!fits)
    throw Error(fmt::format("{}: {} is not a {}", where(file, path + key), value.dump(), [&] {
      switch (type) {
        case json::value_t::string:
          return "string";
        case json::value_t::array:
          return "list";
        case json::value_t::object:
          return "table";
        case json::value_t::boolean:
          return "boolean";
        default:
          return "number";
      }
    }()));
  return value;
}

std::string optional_string(const json& object, const std::string& key) {
  if (!object.is_object() || !object.contains(key) || !object.at(key).is_string()) return {};
  return object.at(key).get<std::string>();
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path.string()));
  json value = json::parse(in, nullptr, false);
  if (value.is_discarded()) throw Error(fmt::format("{}: not JSON", path.string()));
  return value;
}

// Seeds sort numerically when they are numbers.
bool seed_less(const std::string& a, const std::string& b) {
  auto digits = [](const std::string& s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  };
  const bool na = digits(a), nb = digits(b);
  if (na && nb && a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

Run load_run(const fs::path& dir, const std::string& seed, const std::string& relative,
             const MetricDefinition& metric) {
  Run run;
  run.seed = seed;
  run.folder = relative;
  const fs::path folder = dir / relative;
  const fs::path metrics_path = folder / "train" / "metrics.jsonl";
  if (std::ifstream in(metrics_path); in) {
    std::string line;
    int bad = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const json value = json::parse(line, nullptr, false);
      if (value.is_discarded() || !value.is_object()) {
        ++bad;
        continue;
      }
      if (!value.contains("step") || !value["step"].is_number()) continue;
      const double step = value["step"].get<double>();
      run.last_step = run.last_step ? std::max(*run.last_step, step) : step;
      if (value.contains(metric.curve_key) && value[metric.curve_key].is_number())
        run.curve.emplace_back(step, value[metric.curve_key].get<double>());
    }
    if (bad > 0) run.problems.push_back(fmt::format("{}: {} lines are not JSON", metrics_path.string(), bad));
  } else {
    run.problems.push_back(fmt::format("{}: cannot open", metrics_path.string()));
  }
  if (fs::exists(folder / "cost.json")) {
    try {
      run.cost = read_json(folder / "cost.json");
    } catch (const std::exception& e) {
      run.problems.push_back(e.what());
    }
  }
  try {
    const fs::path results_path = folder / "zeroshot" / "results.json";
    const json results = read_json(results_path);
    const json::json_pointer pointer(metric.results_pointer);
    if (!results.contains(pointer) || !results.at(pointer).is_number()) {
      throw Error(fmt::format("{}: no number at {} (the metric {})", results_path.string(),
                              metric.results_pointer, metric.name));
    }
    run.metric = results.at(pointer).get<double>();
    run.scores = read_scores_csv(folder / "zeroshot" / "scores.csv");
    run.usable = true;
  } catch (const std::exception& e) {
    run.problems.push_back(e.what());
  }
  // Paths in messages relative to the sweep folder, as sweep.json names them.
  const std::string prefix = (dir / "").string();
  for (std::string& problem : run.problems) {
    for (std::size_t at = 0; (at = problem.find(prefix, at)) != std::string::npos;)
      problem.erase(at, prefix.size());
  }
  return run;
}

Sweep read_sweep(const fs::path& dir) {
  const fs::path file = dir / "sweep.json";
  Sweep sweep;
  sweep.raw = read_json(file);
  const json& raw = sweep.raw;
  if (!raw.is_object()) throw Error(fmt::format("{}: not a JSON object", file.string()));
  sweep.metric = metric_definition(field(raw, "metric", file, "", json::value_t::string).get<std::string>());
  sweep.task = optional_string(raw, "task");
  sweep.split = optional_string(raw, "split");
  if (sweep.split.empty()) sweep.split = "test";
  sweep.profile = optional_string(raw, "profile");
  sweep.spec = optional_string(raw, "spec");
  if (raw.contains("higher_is_better"))
    sweep.higher_is_better = field(raw, "higher_is_better", file, "", json::value_t::boolean).get<bool>();

  const json& arms = field(raw, "arms", file, "", json::value_t::object);
  for (const auto& [id, arm] : arms.items()) {
    const std::string path = "arms." + id + ".";
    ArmData data;
    data.id = id;
    data.status = field(arm, "status", file, path, json::value_t::string).get<std::string>();
    if (data.status != "done" && data.status != "failed" && data.status != "pending") {
      throw Error(fmt::format("{}: \"{}\" is none of done, failed, pending", where(file, path + "status"),
                              data.status));
    }
    data.error = optional_string(arm, "error");
    if (arm.contains("changes") && arm["changes"].is_object()) data.changes = arm["changes"];
    if (arm.contains("runs") && !arm["runs"].is_null()) {
      const json& runs = field(arm, "runs", file, path, json::value_t::object);
      std::vector<std::string> seeds;
      for (const auto& [seed, relative] : runs.items()) {
        if (!relative.is_string())
          throw Error(
              fmt::format("{}: {} is not a string", where(file, path + "runs." + seed), relative.dump()));
        seeds.push_back(seed);
      }
      std::sort(seeds.begin(), seeds.end(), seed_less);
      for (const std::string& seed : seeds)
        data.runs.push_back(load_run(dir, seed, runs[seed].get<std::string>(), sweep.metric));
    }
    sweep.arms.emplace(id, std::move(data));
  }

  const json& ablations = field(raw, "ablations", file, "", json::value_t::array);
  for (std::size_t i = 0; i < ablations.size(); ++i) {
    const json& a = ablations[i];
    const std::string path = fmt::format("ablations[{}].", i);
    Ablation ablation;
    ablation.index = a.contains("index") && a["index"].is_number_integer() ? a["index"].get<int>()
                                                                           : static_cast<int>(i) + 1;
    ablation.name = field(a, "name", file, path, json::value_t::string).get<std::string>();
    ablation.title = optional_string(a, "title");
    if (ablation.title.empty()) ablation.title = ablation.name;
    ablation.note = optional_string(a, "note");
    const json& chain = field(a, "arms", file, path, json::value_t::array);
    for (std::size_t k = 0; k < chain.size(); ++k) {
      const std::string arm_path = fmt::format("{}arms[{}].", path, k);
      ChainArm arm{field(chain[k], "label", file, arm_path, json::value_t::string).get<std::string>(),
                   field(chain[k], "arm", file, arm_path, json::value_t::string).get<std::string>()};
      if (!sweep.arms.count(arm.arm)) {
        throw Error(fmt::format("{}: arm \"{}\" is not in \"arms\"", where(file, arm_path + "arm"), arm.arm));
      }
      ablation.arms.push_back(std::move(arm));
    }
    sweep.ablations.push_back(std::move(ablation));
  }
  return sweep;
}

// ---------------------------------------------------------------------------------------------------------
// Numbers and words

std::string signed_number(double value, int decimals = 3) {
  const std::string digits = fmt::format("{:.{}f}", std::abs(value), decimals);
  if (digits.find_first_not_of("0.") == std::string::npos) return digits;  // rounds to zero: no sign
  return (value < 0 ? "\u2212" : "+") + digits;
}

std::string metric_text(const std::vector<double>& values) {
  if (values.empty()) return "\u2013";
  const Spread s = spread(values);
  if (s.n == 1) return fmt::format("{:.3f}", s.mean);
  return fmt::format("{:.3f} \u00b1 {:.3f}", s.mean, s.sd);
}

std::string bytes_text(double bytes) {
  if (bytes >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
  return fmt::format("{:.0f} MiB", bytes / (1024.0 * 1024));
}

std::string changes_text(const json& changes) {
  std::string out;
  for (const auto& [key, value] : changes.items()) {
    if (!out.empty()) out += ", ";
    out += key + " = " + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return out.empty() ? "(the base)" : out;
}

// Mean over the seed runs of a cost.json number; empty when no run has it.
std::optional<double> mean_cost(const ArmData& arm, const std::string& key) {
  double sum = 0;
  int n = 0;
  for (const Run& run : arm.runs) {
    if (run.cost && run.cost->contains(key) && (*run.cost)[key].is_number()) {
      sum += (*run.cost)[key].get<double>();
      ++n;
    }
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

struct CostChange {
  std::string key;
  std::string what;  // "per step", "peak memory", "FLOPs per study"
  std::optional<double> a, b;
  std::optional<double> ratio() const {
    if (!a || !b || *a <= 0) return std::nullopt;
    return *b / *a;
  }
};

std::vector<CostChange> cost_changes(const ArmData& a, const ArmData& b) {
  std::vector<CostChange> out;
  out.push_back({"step_s_median", "step time", mean_cost(a, "step_s_median"), mean_cost(b, "step_s_median")});
  // GPU memory where both arms measured it, else the process's resident memory.
  CostChange memory{"peak_gpu_bytes", "peak GPU memory", mean_cost(a, "peak_gpu_bytes"),
                    mean_cost(b, "peak_gpu_bytes")};
  if (!memory.ratio()) {
    memory = {"peak_rss_bytes", "peak memory", mean_cost(a, "peak_rss_bytes"),
              mean_cost(b, "peak_rss_bytes")};
  }
  out.push_back(memory);
  out.push_back({"flops_per_study", "FLOPs per study", mean_cost(a, "flops_per_study"),
                 mean_cost(b, "flops_per_study")});
  return out;
}

std::string ratio_text(const std::optional<double>& ratio) {
  if (!ratio) return "\u2013";
  const double percent = (*ratio - 1.0) * 100.0;
  if (std::abs(percent) < 0.5) return "\u00b10%";
  return fmt::format("{}{:.0f}%", percent < 0 ? "\u2212" : "+", std::abs(percent));
}

// "3% slower per step, 12% more peak memory, FLOPs per study unchanged".
std::string cost_sentence(const std::vector<CostChange>& changes) {
  std::vector<std::string> parts;
  for (const CostChange& c : changes) {
    const auto ratio = c.ratio();
    if (!ratio) continue;
    const double percent = (*ratio - 1.0) * 100.0;
    if (std::abs(percent) < 0.5) {
      parts.push_back(c.what + " unchanged");
    } else if (c.key == "step_s_median") {
      parts.push_back(
          fmt::format("{:.0f}% {} per step", std::abs(percent), percent > 0 ? "slower" : "faster"));
    } else {
      parts.push_back(fmt::format("{:.0f}% {} {}", std::abs(percent), percent > 0 ? "more" : "less", c.what));
    }
  }
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i)
    out += (i ? ", " : "") + parts[i];
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// One step A -> B of an ablation chain

struct Step {
  const ChainArm* from = nullptr;
  const ChainArm* to = nullptr;
  bool compared = false;
  std::string not_compared_reason;
  std::vector<double> metric_a, metric_b;  // per usable seed run, results.json
  std::vector<std::string> seeds_a, seeds_b;
  std::vector<double> seed_differences;  // seeds run in both
  std::optional<PairedScores> paired;
  std::optional<Comparison> comparison;
  std::vector<CostChange> costs;
  std::vector<std::string> notes;
  std::string summary;
};

Step compare_step(const Sweep& sweep, const ChainArm& from, const ChainArm& to,
                  const ReportOptions& options) {
  Step step;
  step.from = &from;
  step.to = &to;
  const ArmData& a = sweep.arms.at(from.arm);
  const ArmData& b = sweep.arms.at(to.arm);
  step.costs = cost_changes(a, b);
  for (const Run* run : a.usable()) {
    step.metric_a.push_back(*run->metric);
    step.seeds_a.push_back(run->seed);
  }
  for (const Run* run : b.usable()) {
    step.metric_b.push_back(*run->metric);
    step.seeds_b.push_back(run->seed);
  }
  std::vector<std::string> missing;
  for (const auto* arm : {&from, &to}) {
    const ArmData& data = sweep.arms.at(arm->arm);
    if (!data.ok()) {
      missing.push_back(data.status == "done" ? fmt::format("{} has no readable results", arm->label)
                                              : fmt::format("{} {}", arm->label, data.status));
    }
  }
  if (!missing.empty()) {
    step.not_compared_reason = missing.size() == 2 ? missing[0] + " and " + missing[1] : missing[0];
    return step;
  }
  for (std::size_t i = 0; i < step.seeds_a.size(); ++i) {
    const auto it = std::find(step.seeds_b.begin(), step.seeds_b.end(), step.seeds_a[i]);
    if (it != step.seeds_b.end())
      step.seed_differences.push_back(step.metric_b[static_cast<std::size_t>(it - step.seeds_b.begin())] -
                                      step.metric_a[i]);
  }
  if (step.seeds_a != step.seeds_b) {
    step.notes.push_back(fmt::format("seeds differ: {} has {} usable seed runs, {} has {}", from.label,
                                     step.seeds_a.size(), to.label, step.seeds_b.size()));
  }
  try {
    std::vector<std::vector<ScoreRow>> runs_a, runs_b;
    for (const Run* run : a.usable())
      runs_a.push_back(run->scores);
    for (const Run* run : b.usable())
      runs_b.push_back(run->scores);
    step.paired = pair_scores(runs_a, runs_b, sweep.metric);
    for (const std::string& note : step.paired->notes)
      step.notes.push_back(note);
    eval::BootstrapOptions bootstrap;
    bootstrap.resamples = options.bootstrap_resamples;
    bootstrap.confidence = options.confidence;
    bootstrap.seed = options.bootstrap_seed;
    step.comparison = compare(*step.paired, sweep.higher_is_better, bootstrap, step.seed_differences);
    step.compared = true;
    // The scores must reproduce the results files' numbers; say so when they do not.
    const double from_results = spread(step.metric_b).mean - spread(step.metric_a).mean;
    const auto& estimate = step.comparison->difference.estimate;
    if (estimate.defined() && std::abs(*estimate.value - from_results) > 1e-9) {
      step.notes.push_back(fmt::format(
          "the scores.csv files give a difference of {:.6f}, the results.json files {:.6f} (studies left out "
          "of the pairing, or a metric computed differently)",
          *estimate.value, from_results));
    }
  } catch (const std::exception& e) {
    step.not_compared_reason = e.what();
    step.compared = false;
  }
  return step;
}

std::string percent_of(double confidence) {
  return fmt::format("{:g}%", confidence * 100.0);
}

std::string step_summary(const Sweep& sweep, const Step& step, const ReportOptions& options) {
  const std::string& a = step.from->label;
  const std::string& b = step.to->label;
  if (!step.compared) return fmt::format("{} \u2192 {}: not compared ({}).", a, b, step.not_compared_reason);
  const Spread sa = spread(step.metric_a), sb = spread(step.metric_b);
  const double difference = sb.mean - sa.mean;
  const auto& d = step.comparison->difference;
  std::string text = fmt::format("{} \u2192 {}: {} {:.3f} vs {:.3f} ({}", a, b, sweep.metric.label, sb.mean,
                                 sa.mean, signed_number(difference));
  if (d.defined()) {
    text += fmt::format(", {} CI {} to {}", percent_of(options.confidence), signed_number(*d.lower),
                        signed_number(*d.upper));
  }
  text += fmt::format(", {} studies", step.paired->n_studies());
  if (sa.n > 1 || sb.n > 1) {
    text += fmt::format("; mean of {} and {} seeds, sd {:.3f} and {:.3f}", sb.n, sa.n, sb.sd, sa.sd);
  }
  text += fmt::format("): {}", to_string(step.comparison->verdict));
  text += fmt::format(" ({})", step.comparison->verdict_reason);
  const std::string costs = cost_sentence(step.costs);
  if (!costs.empty()) text += "; " + costs;
  return text + ".";
}

// ---------------------------------------------------------------------------------------------------------
// The page: blocks rendered to Markdown and to HTML

struct Block {
  enum Kind { kHeading, kParagraph, kList, kTable, kImage, kRule } kind;
  int level = 0;
  std::string text;                            // heading, paragraph; image: alt text
  std::vector<std::string> items;              // list
  std::vector<std::vector<std::string>> rows;  // table: the first row is the header
  fs::path image;                              // relative to the sweep folder
};

Block heading(int level, std::string text) {
  return {Block::kHeading, level, std::move(text), {}, {}, {}};
}
Block paragraph(std::string text) {
  return {Block::kParagraph, 0, std::move(text), {}, {}, {}};
}
Block list(std::vector<std::string> items) {
  return {Block::kList, 0, {}, std::move(items), {}, {}};
}
Block table(std::vector<std::vector<std::string>> rows) {
  return {Block::kTable, 0, {}, {}, std::move(rows), {}};
}
Block image_block(std::string alt, fs::path path) {
  return {Block::kImage, 0, std::move(alt), {}, {}, std::move(path)};
}
Block rule() {
  return {Block::kRule, 0, {}, {}, {}, {}};
}

std::string markdown_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|' || c == '*' || c == '`' || c == '[' || c == ']' || c == '<' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

using eval::html_escape;

// A link target with spaces, parentheses and '>' that Markdown renderers all accept.
std::string percent_encode(const std::string& path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || std::string_view("-_.~/:,").find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                   static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == bytes.size()) {
    const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const auto n = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string read_binary(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", path.string()));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string render_markdown(const std::vector<Block>& blocks) {
  std::string md;
  for (const Block& block : blocks) {
    switch (block.kind) {
      case Block::kHeading:
        md += std::string(static_cast<std::size_t>(block.level), '#') + " " + markdown_escape(block.text) +
              "\n\n";
        break;
      case Block::kParagraph:
        md += markdown_escape(block.text) + "\n\n";
        break;
      case Block::kList:
        for (const auto& item : block.items)
          md += "- " + markdown_escape(item) + "\n";
        md += "\n";
        break;
      case Block::kTable:
        for (std::size_t r = 0; r < block.rows.size(); ++r) {
          md += "|";
          for (const auto& cell : block.rows[r])
            md += " " + markdown_escape(cell) + " |";
          md += "\n";
          if (r == 0) {
            md += "|";
            for (std::size_t c = 0; c < block.rows[0].size(); ++c)
              md += "---|";
            md += "\n";
          }
        }
        md += "\n";
        break;
      case Block::kImage:
        md += "![" + markdown_escape(block.text) + "](" + percent_encode(block.image.generic_string()) +
              ")\n\n";
        break;
      case Block::kRule:
        md += "---\n\n";
        break;
    }
  }
  return md;
}

std::string render_html(const std::vector<Block>& blocks, const fs::path& dir, const std::string& title) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n"
      "body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; "
      "line-height: 1.45; }}\n"
      "table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}\n"
      "th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}\n"
      "th {{ background: #f3f3f3; }}\n"
      "img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}\n"
      "hr {{ border: 0; border-top: 1px solid #ddd; margin: 2em 0; }}\n"
      "</style>\n</head>\n<body>\n",
      html_escape(title));
  for (const Block& block : blocks) {
    switch (block.kind) {
      case Block::kHeading:
        html += fmt::format("<h{0}>{1}</h{0}>\n", block.level, html_escape(block.text));
        break;
      case Block::kParagraph:
        html += "<p>" + html_escape(block.text) + "</p>\n";
        break;
      case Block::kList:
        html += "<ul>\n";
        for (const auto& item : block.items)
          html += "<li>" + html_escape(item) + "</li>\n";
        html += "</ul>\n";
        break;
      case Block::kTable:
        html += "<table>\n";
        for (std::size_t r = 0; r < block.rows.size(); ++r) {
          html += "<tr>";
          for (const auto& cell : block.rows[r])
            html += fmt::format("<{0}>{1}</{0}>", r == 0 ? "th" : "td", html_escape(cell));
          html += "</tr>\n";
        }
        html += "</table>\n";
        break;
      case Block::kImage:
        html +=
            fmt::format("<figure><img src=\"data:image/png;base64,{}\" alt=\"{}\" title=\"{}\"></figure>\n",
                        base64(read_binary(dir / block.image)), html_escape(block.text),
                        html_escape(block.image.generic_string()));
        break;
      case Block::kRule:
        html += "<hr>\n";
        break;
    }
  }
  return html + "</body>\n</html>\n";
}

// "1 pooling (cls -> dino.txt).png"; '/' becomes ':' as in the seed page ("w -> w:o"), control characters
// '_'.
std::string image_name(const Ablation& ablation) {
  std::string labels;
  for (std::size_t i = 0; i < ablation.arms.size(); ++i)
    labels += (i ? " -> " : "") + ablation.arms[i].label;
  std::string name = fmt::format("{} {} ({}).png", ablation.index, ablation.name, labels);
  for (char& c : name) {
    if (c == '/') c = ':';
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  return name;
}

// The curve of an arm: at each step logged by any seed run, the mean and the range over the runs.
PlotSeries arm_series(const ArmData& arm, const std::string& label) {
  PlotSeries series;
  std::map<double, std::vector<double>> at_step;
  std::optional<double> last_step;
  int runs_with_curves = 0;
  for (const Run& run : arm.runs) {
    if (!run.curve.empty()) ++runs_with_curves;
    for (const auto& [step, value] : run.curve)
      at_step[step].push_back(value);
    if (run.last_step) last_step = last_step ? std::max(*last_step, *run.last_step) : *run.last_step;
  }
  for (const auto& [step, values] : at_step) {
    const Spread s = spread(values);
    series.steps.push_back(step);
    series.values.push_back(s.mean);
    if (runs_with_curves > 1) {
      series.low.push_back(s.min);
      series.high.push_back(s.max);
    }
  }
  // The legend: "cls (2 seeds, final 0.812)", "0.25 (final 0.560)", "0.50 [failed]".
  std::vector<std::string> details;
  if (arm.runs.size() > 1) details.push_back(fmt::format("{} seeds", arm.runs.size()));
  const auto metrics = arm.metrics();
  if (!metrics.empty() && arm.status == "done") {
    const Spread s = spread(metrics);
    series.final_value = s.mean;
    series.final_step = last_step ? *last_step : (series.steps.empty() ? 0.0 : series.steps.back());
    if (s.n > 1) {
      series.final_low = s.min;
      series.final_high = s.max;
    }
    details.push_back(fmt::format("final {:.3f}", s.mean));
  }
  series.label = label;
  for (std::size_t i = 0; i < details.size(); ++i)
    series.label += (i == 0 ? " (" : ", ") + details[i] + (i + 1 == details.size() ? ")" : "");
  if (arm.status != "done") series.label += " [" + arm.status + "]";
  return series;
}

json optional_number(const std::optional<double>& value) {
  return value ? json(*value) : json();
}

}  // namespace

ReportFiles write_report(const fs::path& sweep_dir, const ReportOptions& options) {
  if (options.bootstrap_resamples < 1) {
    throw Error(
        fmt::format("ablation report: bootstrap resamples {} (at least 1)", options.bootstrap_resamples));
  }
  if (!(options.confidence > 0.0 && options.confidence < 1.0)) {
    throw Error(fmt::format("ablation report: confidence {} is not between 0 and 1", options.confidence));
  }
  const Sweep sweep = read_sweep(sweep_dir);
  ReportFiles files;
  files.markdown = sweep_dir / "report.md";
  files.html = sweep_dir / "report.html";
  files.summary = sweep_dir / "summary.json";
  create_directories((sweep_dir / "images").string());

  const std::string conf = percent_of(options.confidence);
  const std::string direction = sweep.higher_is_better ? "higher is better" : "lower is better";
  std::vector<Block> blocks;
  std::vector<Block> summary_blocks;
  std::vector<std::vector<std::string>> summary_table = {{"ablation", "step", "metric A", "metric B",
                                                          "difference B \u2212 A", conf + " CI", "verdict",
                                                          "step time", "peak memory", "FLOPs/study"}};
  json summary_ablations = json::array();
  int section = 2;
  std::vector<Block> sections;
  std::vector<std::string> notes;

  for (const Ablation& ablation : sweep.ablations) {
    const std::string image = image_name(ablation);
    const fs::path image_relative = fs::path("images") / image;
    std::vector<PlotSeries> series;
    for (const ChainArm& arm : ablation.arms)
      series.push_back(arm_series(sweep.arms.at(arm.arm), arm.label));
    PlotOptions plot;
    plot.title = image.substr(0, image.size() - 4);
    plot.y_label = sweep.metric.label;
    plot.caption = fmt::format("lines: {} during training (band: seed range); circles: final, {} split",
                               sweep.metric.curve_key, sweep.split);
    plot.width = options.image_width;
    plot.height = options.image_height;
    write_metric_plot(sweep_dir / image_relative, series, plot);
    files.images.push_back(sweep_dir / image_relative);

    sections.push_back(heading(2, fmt::format("{}. {}", section++, ablation.title)));
    sections.push_back(image_block(ablation.title, image_relative));

    std::vector<std::vector<std::string>> arm_rows = {{"arm", "changes", "status", "seeds",
                                                       sweep.metric.label + " (" + sweep.split + ")",
                                                       "step time", "peak memory", "FLOPs/study"}};
    for (const ChainArm& chain_arm : ablation.arms) {
      const ArmData& arm = sweep.arms.at(chain_arm.arm);
      const auto step_s = mean_cost(arm, "step_s_median");
      const auto gpu = mean_cost(arm, "peak_gpu_bytes");
      const auto rss = mean_cost(arm, "peak_rss_bytes");
      const auto flops = mean_cost(arm, "flops_per_study");
      arm_rows.push_back({chain_arm.label, changes_text(arm.changes), arm.status,
                          fmt::format("{} of {}", arm.usable().size(), arm.runs.size()),
                          metric_text(arm.metrics()), step_s ? fmt::format("{:.3f} s", *step_s) : "\u2013",
                          gpu   ? bytes_text(*gpu) + " GPU"
                          : rss ? bytes_text(*rss)
                                : "\u2013",
                          flops ? fmt::format("{:.3g}", *flops) : "\u2013"});
    }

    json summary_steps = json::array();
    std::vector<std::string> step_texts;
    for (std::size_t k = 0; k + 1 < ablation.arms.size(); ++k) {
      Step step = compare_step(sweep, ablation.arms[k], ablation.arms[k + 1], options);
      step.summary = step_summary(sweep, step, options);
      step_texts.push_back(step.summary);
      const std::string step_name = ablation.arms[k].label + " \u2192 " + ablation.arms[k + 1].label;
      for (const std::string& note : step.notes)
        notes.push_back(fmt::format("{} {}: {}", ablation.name, step_name, note));
      json s = {{"from", ablation.arms[k].label},
                {"to", ablation.arms[k + 1].label},
                {"from_arm", ablation.arms[k].arm},
                {"to_arm", ablation.arms[k + 1].arm},
                {"compared", step.compared},
                {"metric_from_seeds", step.metric_a},
                {"metric_to_seeds", step.metric_b},
                {"seeds_from", step.seeds_a},
                {"seeds_to", step.seeds_b},
                {"summary", step.summary},
                {"notes", step.notes}};
      std::vector<std::string> row = {ablation.name, step_name};
      if (!step.metric_a.empty()) {
        const Spread sa = spread(step.metric_a);
        s["metric_from"] = sa.mean;
        s["metric_from_sd"] = sa.sd;
      }
      if (!step.metric_b.empty()) {
        const Spread sb = spread(step.metric_b);
        s["metric_to"] = sb.mean;
        s["metric_to_sd"] = sb.sd;
      }
      row.push_back(metric_text(step.metric_a));
      row.push_back(metric_text(step.metric_b));
      if (step.compared) {
        const auto& d = step.comparison->difference;
        const double difference = spread(step.metric_b).mean - spread(step.metric_a).mean;
        s["difference"] = difference;
        s["difference_from_scores"] = optional_number(d.estimate.value);
        s["ci"] = d.defined() ? json::array({*d.lower, *d.upper}) : json();
        s["confidence"] = options.confidence;
        s["p_value"] = optional_number(d.p_value);
        s["resamples_used"] = d.resamples_used;
        s["resamples_skipped"] = d.resamples_skipped;
        s["n_studies"] = step.paired->n_studies();
        s["classes"] = step.paired->classes;
        s["dropped_pairs"] = step.paired->dropped_pairs;
        s["seed_differences"] = step.seed_differences;
        s["verdict"] = to_string(step.comparison->verdict);
        s["verdict_reason"] = step.comparison->verdict_reason;
        row.push_back(signed_number(difference));
        row.push_back(d.defined() ? signed_number(*d.lower) + " to " + signed_number(*d.upper) : "\u2013");
        row.push_back(to_string(step.comparison->verdict));
      } else {
        s["verdict"] = "not compared";
        s["verdict_reason"] = step.not_compared_reason;
        row.insert(row.end(), {"\u2013", "\u2013", "not compared"});
      }
      json costs = json::object();
      for (const CostChange& c : step.costs) {
        costs[c.key] = {{"from", optional_number(c.a)},
                        {"to", optional_number(c.b)},
                        {"ratio", optional_number(c.ratio())}};
        row.push_back(ratio_text(c.ratio()));
      }
      s["cost"] = costs;
      summary_steps.push_back(std::move(s));
      summary_table.push_back(std::move(row));
    }

    if (ablation.arms.size() > 2) {
      sections.push_back(paragraph("Summary, step by step:"));
      std::vector<std::string> items;
      for (std::size_t k = 0; k < step_texts.size(); ++k)
        items.push_back(fmt::format("({}) {}", static_cast<char>('a' + k % 26), step_texts[k]));
      sections.push_back(list(items));
    } else if (!step_texts.empty()) {
      sections.push_back(paragraph("Summary: " + step_texts[0]));
    } else {
      sections.push_back(paragraph("Summary: a single arm, nothing to compare."));
    }
    sections.push_back(table(arm_rows));
    if (!ablation.note.empty()) sections.push_back(paragraph("Note: " + ablation.note));
    sections.push_back(rule());

    json chain = json::array();
    for (const ChainArm& arm : ablation.arms)
      chain.push_back({{"label", arm.label}, {"arm", arm.arm}});
    summary_ablations.push_back({{"index", ablation.index},
                                 {"name", ablation.name},
                                 {"title", ablation.title},
                                 {"note", ablation.note},
                                 {"image", image_relative.generic_string()},
                                 {"arms", chain},
                                 {"steps", summary_steps}});
  }

  // Arms, failed experiments and run problems.
  json summary_arms = json::object();
  std::vector<std::vector<std::string>> failed_rows = {{"arm", "in", "status", "error"}};
  int done = 0, failed = 0, pending = 0;
  for (const auto& [id, arm] : sweep.arms) {
    done += arm.status == "done";
    failed += arm.status == "failed";
    pending += arm.status == "pending";
    std::vector<std::string> used_in;
    for (const Ablation& ablation : sweep.ablations) {
      for (const ChainArm& chain_arm : ablation.arms) {
        if (chain_arm.arm == id) used_in.push_back(ablation.name + ": " + chain_arm.label);
      }
    }
    std::string in;
    for (std::size_t i = 0; i < used_in.size(); ++i)
      in += (i ? "; " : "") + used_in[i];
    json runs = json::object();
    std::vector<std::string> problems;
    for (const Run& run : arm.runs) {
      runs[run.seed] = {{"folder", run.folder.generic_string()},
                        {"metric", optional_number(run.metric)},
                        {"usable", run.usable},
                        {"cost", run.cost ? *run.cost : json()},
                        {"problems", run.problems}};
      for (const std::string& problem : run.problems) {
        problems.push_back(problem);
        // A finished arm's missing curve or unreadable result is worth a note; a failed arm's is expected.
        if (arm.status == "done") notes.push_back(fmt::format("arm {} seed {}: {}", id, run.seed, problem));
      }
    }
    const auto metrics = arm.metrics();
    json metric = json();
    if (!metrics.empty()) {
      const Spread s = spread(metrics);
      metric = {{"n", s.n}, {"mean", s.mean}, {"sd", s.sd}, {"min", s.min}, {"max", s.max}};
    }
    json cost = json::object();
    for (const char* key : {"wall_s", "step_s_median", "studies_per_s", "peak_rss_bytes", "peak_gpu_bytes",
                            "tokens_per_scan", "params", "flops_per_study"})
      cost[key] = optional_number(mean_cost(arm, key));
    summary_arms[id] = {{"status", arm.status},
                        {"error", arm.error.empty() ? json() : json(arm.error)},
                        {"changes", arm.changes},
                        {"used_in", used_in},
                        {"runs", runs},
                        {"metric", metric},
                        {"cost", cost}};
    if (!arm.ok()) {
      std::string error = arm.error;
      if (error.empty() && arm.status == "done") error = "no readable results";
      if (error.empty() && arm.status == "pending") error = "not run yet";
      if (error.empty() && !problems.empty()) error = problems.front();
      failed_rows.push_back({id, in, arm.status, error.empty() ? "\u2013" : error});
    }
  }

  // The page, in the seed page's order.
  const std::string title = "HLIP Ablation Study";
  blocks.push_back(heading(1, title));
  blocks.push_back(paragraph(
      fmt::format("Sweep {}{}: {} ablations, {} arms ({} done, {} failed, {} pending). Every number "
                  "below is read from the arms' own results.json, scores.csv, metrics.jsonl and "
                  "cost.json files; summary.json holds them all.",
                  sweep_dir.filename().string().empty() ? sweep_dir.string() : sweep_dir.filename().string(),
                  sweep.profile.empty() ? "" : " (profile " + sweep.profile + ")", sweep.ablations.size(),
                  sweep.arms.size(), done, failed, pending)));
  blocks.push_back(rule());
  blocks.push_back(heading(2, "1. Experimental setup"));
  std::string seeds;
  if (sweep.raw.contains("seeds") && sweep.raw["seeds"].is_array()) {
    for (const auto& s : sweep.raw["seeds"])
      seeds += (seeds.empty() ? "" : ", ") + (s.is_string() ? s.get<std::string>() : s.dump());
  }
  std::vector<std::string> setup = {
      "Spec: " + (sweep.spec.empty() ? std::string("\u2013") : sweep.spec) +
          (sweep.profile.empty() ? "" : ", profile " + sweep.profile),
      "Task: " + (sweep.task.empty() ? std::string("\u2013") : sweep.task) + ", evaluated on the " +
          sweep.split + " split",
      fmt::format("Metric: {} ({}; results.json {}, training curve {})", sweep.metric.label, direction,
                  sweep.metric.results_pointer, sweep.metric.curve_key),
      "Seeds: " + (seeds.empty() ? std::string("\u2013") : seeds),
      fmt::format("Statistics: {} resamples, {} intervals, bootstrap seed {}: {}",
                  options.bootstrap_resamples, conf, options.bootstrap_seed, kMethod),
      std::string("Verdict: ") + kVerdictRule,
      "Plots: the metric during training (validation, mean over seeds, band: min to max over seeds) and the "
      "final metric on the evaluation split (circle, bar: min to max over seeds)"};
  blocks.push_back(list(setup));
  blocks.push_back(heading(3, "Summary table"));
  blocks.push_back(table(summary_table));
  blocks.push_back(
      paragraph("Costs are B relative to A: the median step time, the peak memory (GPU where both arms "
                "measured it, else the process's resident memory) and the vision tower's training FLOPs per "
                "study, each the mean over seed runs."));
  blocks.push_back(rule());
  blocks.insert(blocks.end(), sections.begin(), sections.end());
  blocks.push_back(heading(2, fmt::format("{}. Failed experiments", section++)));
  if (failed_rows.size() > 1) {
    blocks.push_back(
        paragraph("Arms without usable results: their steps are not compared, and their plots show what they "
                  "logged before stopping."));
    blocks.push_back(table(failed_rows));
  } else {
    blocks.push_back(paragraph("None: every arm finished with readable results."));
  }
  blocks.push_back(rule());
  blocks.push_back(heading(2, fmt::format("{}. Notes", section++)));
  if (notes.empty()) notes.push_back("Every step paired all the studies of its arms; nothing was left out.");
  blocks.push_back(list(notes));

  json failed_json = json::array();
  for (std::size_t i = 1; i < failed_rows.size(); ++i) {
    failed_json.push_back(
        {{"arm", failed_rows[i][0]}, {"status", failed_rows[i][2]}, {"error", failed_rows[i][3]}});
  }
  json summary = {{"sweep",
                   {{"folder", sweep_dir.string()},
                    {"spec", sweep.spec},
                    {"profile", sweep.profile},
                    {"task", sweep.task},
                    {"split", sweep.split},
                    {"metric", sweep.metric.name},
                    {"metric_label", sweep.metric.label},
                    {"higher_is_better", sweep.higher_is_better},
                    {"seeds", sweep.raw.value("seeds", json::array())}}},
                  {"statistics",
                   {{"method", kMethod},
                    {"resamples", options.bootstrap_resamples},
                    {"confidence", options.confidence},
                    {"seed", options.bootstrap_seed},
                    {"verdict_rule", kVerdictRule}}},
                  {"ablations", summary_ablations},
                  {"arms", summary_arms},
                  {"failed", failed_json},
                  {"notes", notes}};

  write_file_atomic(files.summary.string(), summary.dump(2) + "\n");
  write_file_atomic(files.markdown.string(), render_markdown(blocks));
  write_file_atomic(files.html.string(), render_html(blocks, sweep_dir, title));
  return files;
}

}  // namespace hlip::ablate
