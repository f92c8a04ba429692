// Zero-shot task files: strict reading (every unknown or misplaced field is an error naming the file and the
// field) and the resolved form written into results.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/eval/zeroshot.h"

#include "hlip/text/report.h"
#include "json_config.h"

namespace hlip::eval {
namespace detail {
// Generated from configs/tasks/*.json by cmake/HlipEmbedModelConfigs.cmake.
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_task_files();
}  // namespace detail

namespace {

using json = nlohmann::json;

const std::set<std::string> kTaskFields = {
    "name",          "description",     "source",      "notes",     "modality", "mode",      "templates",
    "negative_word", "image_embedding", "logit_scale", "threshold", "metrics",  "bootstrap", "classes"};
const std::set<std::string> kClassFields = {
    "name", "label", "prompts", "templates", "negative_label", "negative_prompts", "negative_templates"};
const std::set<std::string> kBootstrapFields = {"resamples", "confidence", "seed"};

// Where a value sits, for messages: `tasks/x.json: classes[2] ("stroke").prompts`.
struct Where {
  std::string origin;
  std::string path;  // "" at the top level

  std::string field(const std::string& name) const {
    return path.empty() ? fmt::format("{}: \"{}\"", origin, name)
                        : fmt::format("{}: {}.{}", origin, path, name);
  }
};

void check_fields(const json& object, const std::set<std::string>& known, const Where& where) {
  for (const auto& item : object.items()) {
    if (known.count(item.key()) == 0) {
      throw Error(
          fmt::format("{}: unknown field (known: {})", where.field(item.key()), fmt::join(known, ", ")));
    }
  }
}

std::string read_string(const json& object, const std::string& key, const Where& where, bool required) {
  const auto it = object.find(key);
  if (it == object.end()) {
    if (required) throw Error(fmt::format("{} is missing", where.field(key)));
    return {};
  }
  if (!it->is_string() || it->get<std::string>().empty()) {
    throw Error(fmt::format("{} is {}; expected a non-empty string", where.field(key), it->dump()));
  }
  return it->get<std::string>();
}

std::vector<std::string> read_strings(const json& object, const std::string& key, const Where& where,
                                      bool required) {
  const auto it = object.find(key);
  if (it == object.end()) {
    if (required) throw Error(fmt::format("{} is missing", where.field(key)));
    return {};
  }
  if (!it->is_array())
    throw Error(fmt::format("{} is {}; expected a list of strings", where.field(key), it->dump()));
  if (it->empty()) throw Error(fmt::format("{} is empty", where.field(key)));
  std::vector<std::string> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& value = (*it)[i];
    if (!value.is_string() || value.get<std::string>().empty()) {
      throw Error(
          fmt::format("{}[{}] is {}; expected a non-empty string", where.field(key), i, value.dump()));
    }
    out.push_back(value.get<std::string>());
  }
  return out;
}

// Prompts, each spelled out by expand_alternatives.
std::vector<std::string> read_prompts(const json& object, const std::string& key, const Where& where,
                                      bool required) {
  const auto written = read_strings(object, key, where, required);
  std::vector<std::string> out;
  for (size_t i = 0; i < written.size(); ++i) {
    try {
      for (auto& prompt : expand_alternatives(written[i]))
        out.push_back(std::move(prompt));
    } catch (const Error& e) {
      throw Error(fmt::format("{}[{}] \"{}\": {}", where.field(key), i, written[i], e.what()));
    }
  }
  return out;
}

std::vector<std::string> read_templates(const json& object, const std::string& key, const Where& where,
                                        bool required) {
  auto templates = read_strings(object, key, where, required);
  for (size_t i = 0; i < templates.size(); ++i) {
    if (templates[i].find("{c}") == std::string::npos) {
      throw Error(
          fmt::format("{}[{}] \"{}\" has no {{c}} for the prompt", where.field(key), i, templates[i]));
    }
  }
  return templates;
}

double read_number(const json& value, const std::string& what) {
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    throw Error(fmt::format("{} is {}; expected a finite number", what, value.dump()));
  }
  return value.get<double>();
}

BootstrapOptions read_bootstrap(const json& value, const Where& where) {
  const std::string what = where.field("bootstrap");
  if (!value.is_object()) throw Error(fmt::format("{} is {}; expected an object", what, value.dump()));
  check_fields(value, kBootstrapFields, Where{where.origin, "bootstrap"});
  BootstrapOptions options;
  if (value.contains("resamples")) {
    const json& n = value["resamples"];
    if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > 1000000) {
      throw Error(fmt::format("{}.resamples is {}; expected an integer in [0, 1000000]", what, n.dump()));
    }
    options.resamples = static_cast<int>(n.get<int64_t>());
  }
  if (value.contains("confidence")) {
    options.confidence = read_number(value["confidence"], what + ".confidence");
    if (!(options.confidence > 0 && options.confidence < 1)) {
      throw Error(fmt::format("{}.confidence is {}; expected a number in (0, 1)", what, options.confidence));
    }
  }
  if (value.contains("seed")) {
    const json& seed = value["seed"];
    if (!seed.is_number_integer() || seed.get<int64_t>() < 0) {
      throw Error(fmt::format("{}.seed is {}; expected a non-negative integer", what, seed.dump()));
    }
    options.seed = seed.get<uint64_t>();
  }
  return options;
}

TaskClass read_class(const json& value, size_t index, const ZeroShotTask& task, const Where& top) {
  Where where{top.origin, fmt::format("classes[{}]", index)};
  if (!value.is_object()) {
    throw Error(fmt::format("{}: {} is {}; expected an object", top.origin, where.path, value.dump()));
  }
  TaskClass out;
  out.name = read_string(value, "name", where, true);
  where.path = fmt::format("classes[{}] (\"{}\")", index, out.name);
  check_fields(value, kClassFields, where);
  out.label = read_string(value, "label", where, false);
  if (out.label.empty()) out.label = out.name;
  out.prompts = read_prompts(value, "prompts", where, true);
  out.templates = read_templates(value, "templates", where, false);
  if (out.templates.empty()) out.templates = task.templates;
  const bool pairs = task.mode == ScoringMode::kNegativePositive;
  for (const char* key : {"negative_prompts", "negative_templates"}) {
    if (!pairs && value.contains(key)) {
      throw Error(fmt::format("{} is only for mode \"negative-positive\" (the task's mode is \"{}\")",
                              where.field(key), to_string(task.mode)));
    }
  }
  if (task.mode == ScoringMode::kMulticlass && value.contains("negative_label")) {
    throw Error(
        fmt::format("{} does not apply to mode \"multiclass\" (a study's class is the one labelled 1)",
                    where.field("negative_label")));
  }
  out.negative_label = read_string(value, "negative_label", where, false);
  if (pairs) {
    out.negative_prompts = read_prompts(value, "negative_prompts", where, false);
    if (out.negative_prompts.empty()) {
      for (const auto& prompt : out.prompts)
        out.negative_prompts.push_back(text::negative_prompt(prompt, task.negative_word));
    }
    out.negative_templates = read_templates(value, "negative_templates", where, false);
    if (out.negative_templates.empty()) out.negative_templates = out.templates;
  }
  return out;
}

}  // namespace

std::string to_string(ScoringMode mode) {
  switch (mode) {
    case ScoringMode::kPositive:
      return "positive";
    case ScoringMode::kNegativePositive:
      return "negative-positive";
    case ScoringMode::kMulticlass:
      return "multiclass";
  }
  return "?";
}

ScoringMode parse_scoring_mode(const std::string& name) {
  if (name == "positive") return ScoringMode::kPositive;
  if (name == "negative-positive") return ScoringMode::kNegativePositive;
  if (name == "multiclass") return ScoringMode::kMulticlass;
  throw Error(fmt::format("scoring mode \"{}\"; expected positive, negative-positive or multiclass", name));
}

const std::vector<std::string>& zeroshot_metric_names() {
  static const std::vector<std::string> names{"auc", "balanced_accuracy", "f1_weighted", "precision",
                                              "recall"};
  return names;
}

ZeroShotTask parse_task(const json& root, const std::string& origin) {
  const Where where{origin, ""};
  if (!root.is_object()) throw Error(fmt::format("{}: a task is a JSON object", origin));
  check_fields(root, kTaskFields, where);
  ZeroShotTask task;
  task.origin = origin;
  task.name = read_string(root, "name", where, true);
  task.description = read_string(root, "description", where, false);
  task.source = read_string(root, "source", where, false);
  if (root.contains("notes")) {
    task.notes = root["notes"].is_string() ? std::vector<std::string>{read_string(root, "notes", where, true)}
                                           : read_strings(root, "notes", where, true);
  }
  task.modality = read_string(root, "modality", where, false);
  if (!task.modality.empty() && task.modality != "mri" && task.modality != "ct") {
    throw Error(
        fmt::format("{} is \"{}\"; expected \"mri\" or \"ct\"", where.field("modality"), task.modality));
  }
  const std::string mode = read_string(root, "mode", where, true);
  try {
    task.mode = parse_scoring_mode(mode);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where.field("mode"), e.what()));
  }
  task.templates = read_templates(root, "templates", where, true);
  if (root.contains("negative_word")) {
    if (task.mode != ScoringMode::kNegativePositive) {
      throw Error(fmt::format("{} is only for mode \"negative-positive\"", where.field("negative_word")));
    }
    task.negative_word = read_string(root, "negative_word", where, true);
  }
  if (root.contains("image_embedding")) {
    const json& row = root["image_embedding"];
    if (!row.is_number_integer() || row.get<int64_t>() < 0) {
      throw Error(fmt::format("{} is {}; expected a row index (0: the sentence embedding)",
                              where.field("image_embedding"), row.dump()));
    }
    task.image_embedding = row.get<int64_t>();
  }
  if (root.contains("logit_scale")) {
    const json& scale = root["logit_scale"];
    if (!(scale.is_string() && scale.get<std::string>() == "model")) {
      task.logit_scale = read_number(scale, where.field("logit_scale"));
      if (!(*task.logit_scale > 0)) {
        throw Error(fmt::format("{} is {}; expected \"model\" or a positive factor",
                                where.field("logit_scale"), *task.logit_scale));
      }
    }
  }
  if (task.mode != ScoringMode::kMulticlass) task.threshold = task.mode == ScoringMode::kPositive ? 0.0 : 0.5;
  if (root.contains("threshold")) {
    const json& threshold = root["threshold"];
    if (threshold.is_string() && threshold.get<std::string>() == "argmax") {
      if (task.mode != ScoringMode::kMulticlass) {
        throw Error(fmt::format("{} \"argmax\" is only for mode \"multiclass\"", where.field("threshold")));
      }
      task.threshold.reset();
    } else {
      task.threshold = read_number(threshold, where.field("threshold"));
    }
  }
  task.metrics = read_strings(root, "metrics", where, false);
  for (const auto& metric : task.metrics) {
    const auto& known = zeroshot_metric_names();
    if (std::find(known.begin(), known.end(), metric) == known.end()) {
      throw Error(fmt::format("{}: unknown metric \"{}\" (known: {})", where.field("metrics"), metric,
                              fmt::join(known, ", ")));
    }
  }
  if (task.metrics.empty()) task.metrics = zeroshot_metric_names();
  if (root.contains("bootstrap")) task.bootstrap = read_bootstrap(root["bootstrap"], where);

  const auto classes = root.find("classes");
  if (classes == root.end()) throw Error(fmt::format("{} is missing", where.field("classes")));
  if (!classes->is_array()) {
    throw Error(fmt::format("{} is {}; expected a list of classes", where.field("classes"), classes->dump()));
  }
  if (classes->empty()) throw Error(fmt::format("{} is empty", where.field("classes")));
  std::set<std::string> names;
  for (size_t i = 0; i < classes->size(); ++i) {
    TaskClass entry = read_class((*classes)[i], i, task, where);
    if (!names.insert(entry.name).second) {
      throw Error(fmt::format("{}: classes[{}]: the class name \"{}\" appears twice", origin, i, entry.name));
    }
    task.classes.push_back(std::move(entry));
  }
  if (task.mode == ScoringMode::kMulticlass && task.classes.size() < 2) {
    throw Error(fmt::format("{}: mode \"multiclass\" needs at least 2 classes, got {}",
                            where.field("classes"), task.classes.size()));
  }
  return task;
}

std::vector<std::string> known_tasks() {
  return detail::embedded_names(detail::embedded_task_files());
}

void set_templates(ZeroShotTask& task, const std::vector<std::string>& templates) {
  if (templates.empty()) throw UsageError(fmt::format("task {}: no template given", task.name));
  for (const auto& t : templates) {
    if (t.find("{c}") == std::string::npos)
      throw UsageError(fmt::format("task {}: template \"{}\" has no {{c}} for the prompt", task.name, t));
  }
  task.templates = templates;
  for (auto& cls : task.classes) {
    cls.templates = templates;
    if (!cls.negative_templates.empty()) cls.negative_templates = templates;
  }
}

namespace detail {

std::vector<std::string> embedded_names(
    const std::vector<std::pair<std::string_view, std::string_view>>& embedded) {
  std::vector<std::string> names;
  for (const auto& [name, contents] : embedded)
    names.emplace_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<JsonConfig> read_json_config(
    const std::string& name_or_path,
    const std::vector<std::pair<std::string_view, std::string_view>>& embedded, const std::string& folder) {
  std::error_code error;
  if (std::filesystem::is_regular_file(name_or_path, error)) {
    std::ifstream in(name_or_path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in && !in.eof()) throw Error(fmt::format("{}: cannot read the file", name_or_path));
    try {
      return JsonConfig{json::parse(buffer.str()), name_or_path};
    } catch (const json::parse_error& e) {
      throw Error(fmt::format("{}: not valid JSON: {}", name_or_path, e.what()));
    }
  }
  for (const auto& [name, contents] : embedded) {
    if (name == name_or_path)
      return JsonConfig{json::parse(contents), fmt::format("configs/{}/{}.json (embedded)", folder, name)};
  }
  return std::nullopt;
}

}  // namespace detail

std::vector<std::string> expand_alternatives(const std::string& prompt) {
  constexpr size_t kMaxPrompts = 10000;
  std::vector<std::string> out{""};
  size_t i = 0;
  while (i < prompt.size()) {
    const char c = prompt[i];
    if (c == '}') throw Error(fmt::format("a \"}}\" at {} closes no \"{{\"", i));
    if (c != '{') {
      const size_t next = prompt.find_first_of("{}", i);
      const std::string literal = prompt.substr(i, next == std::string::npos ? std::string::npos : next - i);
      for (auto& partial : out)
        partial += literal;
      i += literal.size();
      continue;
    }
    const size_t close = prompt.find_first_of("{}", i + 1);
    if (close == std::string::npos || prompt[close] == '{')
      throw Error(fmt::format("the \"{{\" at {} is not closed (groups do not nest)", i));
    const std::string group = prompt.substr(i + 1, close - i - 1);
    if (group.find('|') == std::string::npos)
      throw Error(fmt::format("the group \"{{{}}}\" has no \"|\" between alternatives", group));
    std::vector<std::string> alternatives;
    size_t start = 0;
    for (size_t bar = group.find('|'); bar != std::string::npos; bar = group.find('|', start)) {
      alternatives.push_back(group.substr(start, bar - start));
      start = bar + 1;
    }
    alternatives.push_back(group.substr(start));
    if (out.size() * alternatives.size() > kMaxPrompts)
      throw Error(fmt::format("more than {} combinations", kMaxPrompts));
    std::vector<std::string> grown;
    for (const auto& partial : out)
      for (const auto& alternative : alternatives)
        grown.push_back(partial + alternative);
    out = std::move(grown);
    i = close + 1;
  }
  return out;
}

ZeroShotTask load_task(const std::string& name_or_path) {
  if (auto config = detail::read_json_config(name_or_path, detail::embedded_task_files(), "tasks"))
    return parse_task(config->root, config->origin);
  throw Error(fmt::format("task \"{}\": no such task file or task name (known: {})", name_or_path,
                          fmt::join(known_tasks(), ", ")));
}

ZeroShotTask task_from_classes(const std::vector<std::string>& classes,
                               const std::vector<std::string>& templates) {
  json root = {{"name", "classes"},
               {"description", "classes given on the command line"},
               {"mode", "multiclass"},
               {"templates", templates},
               {"classes", json::array()}};
  for (const auto& name : classes)
    root["classes"].push_back({{"name", name}, {"prompts", {name}}});
  return parse_task(root, "--classes");
}

json ZeroShotTask::to_json() const {
  json classes_json = json::array();
  for (const TaskClass& c : classes) {
    json entry = {{"name", c.name}, {"label", c.label}, {"prompts", c.prompts}, {"templates", c.templates}};
    if (!c.negative_label.empty()) entry["negative_label"] = c.negative_label;
    if (mode == ScoringMode::kNegativePositive) {
      entry["negative_prompts"] = c.negative_prompts;
      entry["negative_templates"] = c.negative_templates;
    }
    classes_json.push_back(std::move(entry));
  }
  json out = {
      {"name", name},
      {"origin", origin},
      {"mode", to_string(mode)},
      {"templates", templates},
      {"image_embedding", image_embedding},
      {"logit_scale", logit_scale ? json(*logit_scale) : json("model")},
      {"threshold", threshold ? json(*threshold) : json("argmax")},
      {"metrics", metrics},
      {"bootstrap",
       {{"resamples", bootstrap.resamples}, {"confidence", bootstrap.confidence}, {"seed", bootstrap.seed}}},
      {"classes", classes_json}};
  if (mode == ScoringMode::kNegativePositive) out["negative_word"] = negative_word;
  // Optional texts only when present, so that the output reads back with parse_task (after removing
  // "origin").
  if (!description.empty()) out["description"] = description;
  if (!source.empty()) out["source"] = source;
  if (!notes.empty()) out["notes"] = notes;
  if (!modality.empty()) out["modality"] = modality;
  return out;
}

}  // namespace hlip::eval
