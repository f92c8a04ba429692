#include "hlip/ablate/spec.h"

#include <fmt/format.h>

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/model/clip.h"
#include "hlip/train/options.h"

namespace hlip::ablate {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string where_of(const std::string& file, const toml::node& node) {
  return fmt::format("{}:{}", file, node.source().begin.line);
}

json to_json(const toml::node& node, const std::string& where, const std::string& key) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return i->get();
  if (const auto* f = node.as_floating_point()) return f->get();
  if (const auto* b = node.as_boolean()) return b->get();
  if (const auto* a = node.as_array()) {
    json out = json::array();
    for (const auto& item : *a)
      out.push_back(to_json(item, where, key));
    return out;
  }
  throw Error(fmt::format("{}: \"{}\": dates, times and tables inside lists are not settings", where, key));
}

const std::set<std::string>& setting_namespaces() {
  static const std::set<std::string> names{"train", "model", "model_config", "data", "eval", "init"};
  return names;
}

// A TOML table of settings (dotted keys or nested tables) → flat keys.
void read_settings(const toml::table& table, const std::string& file, const std::string& prefix,
                   Settings& out) {
  for (const auto& [key, node] : table) {
    const std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    const std::string where = where_of(file, node);
    if (prefix.empty() && setting_namespaces().count(name) == 0) {
      throw Error(
          fmt::format("{}: unknown key \"{}\" (settings are train.*, model.*, model_config, data.train, "
                      "data.eval, eval.task, eval.template, init.finetune, init.inflate_2d)",
                      where, name));
    }
    if (const auto* sub = node.as_table()) {
      read_settings(*sub, file, name, out);
    } else {
      out.values[name] = to_json(node, where, name);
      out.where[name] = where;
    }
  }
}

void merge(Settings& into, const Settings& from) {
  for (const auto& [key, value] : from.values.items()) {
    into.values[key] = value;
    if (const auto it = from.where.find(key); it != from.where.end()) into.where[key] = it->second;
  }
}

// Reads the keys of `table` with `read`, refusing any key not in `known`.
void check_keys(const toml::table& table, const std::string& file, const std::set<std::string>& known,
                const std::string& what) {
  for (const auto& [key, node] : table) {
    if (known.count(std::string(key.str())) == 0) {
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      throw Error(fmt::format("{}: unknown key \"{}\" in {} (known: {})", where_of(file, node), key.str(),
                              what, list));
    }
  }
}

template <typename T>
T get(const toml::table& table, const std::string& key, const std::string& file, T fallback) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return fallback;
  const auto bad = [&](const char* expected) {
    return Error(fmt::format("{}: \"{}\" must be {}", where_of(file, *node), key, expected));
  };
  if constexpr (std::is_same_v<T, std::string>) {
    if (!node->is_string()) throw bad("a string");
    return *node->value<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!node->is_boolean()) throw bad("true or false");
    return *node->value<bool>();
  } else {
    if (!node->is_integer()) throw bad("an integer");
    const int64_t value = *node->value<int64_t>();
    if (value < 0) throw bad("a non-negative integer");
    return static_cast<T>(value);
  }
}

std::vector<std::string> get_strings(const toml::table& table, const std::string& key,
                                     const std::string& file) {
  std::vector<std::string> out;
  const toml::node* node = table.get(key);
  if (node == nullptr) return out;
  const auto* array = node->as_array();
  if (array == nullptr)
    throw Error(fmt::format("{}: \"{}\" must be a list of strings", where_of(file, *node), key));
  for (const auto& item : *array) {
    if (!item.is_string())
      throw Error(fmt::format("{}: \"{}\" must be a list of strings", where_of(file, *node), key));
    out.push_back(*item.value<std::string>());
  }
  return out;
}

const toml::table* get_table(const toml::table& table, const std::string& key, const std::string& file) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) throw Error(fmt::format("{}: \"{}\" must be a table", where_of(file, *node), key));
  return node->as_table();
}

// A relative path of the spec is relative to the spec's folder; names without a '/' or a known suffix are
// left alone (preset and task names).
std::string spec_path(const std::string& spec_file, const std::string& value) {
  if (value.empty() || fs::path(value).is_absolute()) return value;
  const bool looks_like_path = value.find('/') != std::string::npos || fs::path(value).has_extension();
  if (!looks_like_path) return value;
  return (fs::absolute(spec_file).parent_path() / value).lexically_normal().string();
}

ProfileSpec read_profile(const std::string& name, const toml::table& table, const std::string& file) {
  check_keys(table, file,
             {"description", "seeds", "steps", "jobs", "synth", "datasets", "tokenizer", "settings"},
             fmt::format("profile \"{}\"", name));
  ProfileSpec profile;
  profile.name = name;
  profile.description = get<std::string>(table, "description", file, "");
  profile.steps = get<int64_t>(table, "steps", file, 0);
  profile.jobs = get<int>(table, "jobs", file, 1);
  if (profile.jobs < 1) throw Error(fmt::format("{}: profile \"{}\": jobs must be at least 1", file, name));
  profile.tokenizer = spec_path(file, get<std::string>(table, "tokenizer", file, ""));
  if (const toml::node* seeds = table.get("seeds")) {
    const auto* array = seeds->as_array();
    if (array == nullptr || array->empty())
      throw Error(fmt::format("{}: \"seeds\" must be a non-empty list of integers", where_of(file, *seeds)));
    profile.seeds.clear();
    for (const auto& item : *array) {
      if (!item.is_integer() || *item.value<int64_t>() < 0)
        throw Error(
            fmt::format("{}: \"seeds\" must be a list of non-negative integers", where_of(file, *seeds)));
      const auto seed = static_cast<uint64_t>(*item.value<int64_t>());
      for (uint64_t other : profile.seeds) {
        if (other == seed)
          throw Error(fmt::format("{}: seed {} is listed twice", where_of(file, *seeds), seed));
      }
      profile.seeds.push_back(seed);
    }
  }
  if (const toml::table* synth = get_table(table, "synth", file)) {
    check_keys(*synth, file, {"studies", "seed", "size", "mri_preset", "ct_preset", "vocab_size"},
               fmt::format("profile \"{}\" synth", name));
    SynthData data;
    data.studies = get<int64_t>(*synth, "studies", file, data.studies);
    data.seed = get<uint64_t>(*synth, "seed", file, data.seed);
    data.size = get<std::string>(*synth, "size", file, data.size);
    data.mri_preset = spec_path(file, get<std::string>(*synth, "mri_preset", file, data.mri_preset));
    data.ct_preset = spec_path(file, get<std::string>(*synth, "ct_preset", file, data.ct_preset));
    data.vocab_size = get<int64_t>(*synth, "vocab_size", file, data.vocab_size);
    if (data.studies < 20)
      throw Error(
          fmt::format("{}: synth.studies must be at least 20, not {}", where_of(file, *synth), data.studies));
    profile.synth = data;
  }
  if (const toml::table* datasets = get_table(table, "datasets", file)) {
    for (const auto& [key, node] : *datasets) {
      if (!node.is_string())
        throw Error(fmt::format("{}: dataset \"{}\" must be a path (a prepared cache)", where_of(file, node),
                                key.str()));
      profile.datasets[std::string(key.str())] = spec_path(file, *node.value<std::string>());
    }
  }
  if (profile.synth && !profile.datasets.empty()) {
    throw Error(
        fmt::format("{}: profile \"{}\" has both synth and datasets; it builds \"mri\" and \"ct\" itself "
                    "with synth",
                    file, name));
  }
  if (!profile.synth && profile.datasets.empty())
    throw Error(fmt::format("{}: profile \"{}\" needs synth or datasets", file, name));
  if (!profile.synth && profile.tokenizer.empty())
    throw Error(fmt::format("{}: profile \"{}\" has datasets but no tokenizer", file, name));
  if (const toml::table* settings = get_table(table, "settings", file))
    read_settings(*settings, file, "", profile.settings);
  return profile;
}

AblationSpec read_ablation(const toml::table& table, const std::string& file, const std::string& where) {
  check_keys(table, file, {"name", "title", "note", "profiles", "settings", "arm"}, "an [[ablation]]");
  AblationSpec ablation;
  ablation.where = where;
  ablation.name = get<std::string>(table, "name", file, "");
  if (ablation.name.empty()) throw Error(fmt::format("{}: an [[ablation]] needs a name", where));
  if (ablation.name.find('.') != std::string::npos)
    throw Error(fmt::format("{}: ablation name \"{}\" must not contain '.'", where, ablation.name));
  ablation.title = get<std::string>(table, "title", file, ablation.name);
  ablation.note = get<std::string>(table, "note", file, "");
  ablation.profiles = get_strings(table, "profiles", file);
  if (const toml::table* settings = get_table(table, "settings", file))
    read_settings(*settings, file, "", ablation.settings);
  const toml::node* arms = table.get("arm");
  const toml::array* list = arms != nullptr ? arms->as_array() : nullptr;
  if (list == nullptr || list->size() < 2) {
    throw Error(fmt::format("{}: ablation \"{}\" needs a chain of at least two [[ablation.arm]]", where,
                            ablation.name));
  }
  std::set<std::string> labels;
  for (const auto& node : *list) {
    const auto* arm_table = node.as_table();
    if (arm_table == nullptr)
      throw Error(
          fmt::format("{}: ablation \"{}\": every arm must be a table", where_of(file, node), ablation.name));
    ArmSpec arm;
    arm.where = where_of(file, node);
    for (const auto& [key, value] : *arm_table) {
      if (key.str() == "label") continue;
      if (key.str() == "profile") {
        if (!value.is_table())
          throw Error(fmt::format("{}: \"profile\" must be a table of [ablation.arm.profile.NAME] tables",
                                  where_of(file, value)));
        for (const auto& [profile, changes] : *value.as_table()) {
          if (!changes.is_table())
            throw Error(
                fmt::format("{}: profile \"{}\" must be a table", where_of(file, changes), profile.str()));
          read_settings(*changes.as_table(), file, "", arm.profile_changes[std::string(profile.str())]);
        }
        continue;
      }
      toml::table one;
      one.insert(key, value);
      read_settings(one, file, "", arm.changes);
    }
    arm.label = get<std::string>(*arm_table, "label", file, "");
    if (arm.label.empty())
      throw Error(fmt::format("{}: ablation \"{}\": an arm needs a label", arm.where, ablation.name));
    if (!labels.insert(arm.label).second) {
      throw Error(fmt::format("{}: ablation \"{}\": label \"{}\" is used twice", arm.where, ablation.name,
                              arm.label));
    }
    ablation.arms.push_back(std::move(arm));
  }
  return ablation;
}

}  // namespace

json flatten(const json& nested, const std::string& prefix) {
  json out = json::object();
  for (const auto& [key, value] : nested.items()) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (value.is_object() && !value.empty()) {
      const json inner = flatten(value, name);
      for (const auto& [k, v] : inner.items())
        out[k] = v;
    } else {
      out[name] = value;
    }
  }
  return out;
}

SweepSpec parse_sweep_spec(const std::string& text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& error) {
    throw Error(fmt::format("{}:{}: {}", path, error.source().begin.line, error.description()));
  }
  check_keys(root, path, {"title", "metric", "higher_is_better", "split", "base", "profile", "ablation"},
             "the sweep spec");
  SweepSpec spec;
  spec.file = path;
  spec.title = get<std::string>(root, "title", path, "");
  spec.metric = get<std::string>(root, "metric", path, spec.metric);
  spec.higher_is_better = get<bool>(root, "higher_is_better", path, spec.higher_is_better);
  spec.split = get<std::string>(root, "split", path, spec.split);
  const toml::table* base = get_table(root, "base", path);
  if (base == nullptr) throw Error(fmt::format("{}: no [base] table", path));
  read_settings(*base, path, "", spec.base);
  const toml::table* profiles = get_table(root, "profile", path);
  if (profiles == nullptr || profiles->empty()) throw Error(fmt::format("{}: no [profile.NAME] table", path));
  for (const auto& [name, node] : *profiles) {
    if (!node.is_table())
      throw Error(fmt::format("{}: profile \"{}\" must be a table", where_of(path, node), name.str()));
    spec.profiles[std::string(name.str())] = read_profile(std::string(name.str()), *node.as_table(), path);
  }
  const toml::node* ablations = root.get("ablation");
  const toml::array* list = ablations != nullptr ? ablations->as_array() : nullptr;
  if (list == nullptr || list->empty()) throw Error(fmt::format("{}: no [[ablation]]", path));
  std::set<std::string> names;
  for (const auto& node : *list) {
    if (!node.is_table())
      throw Error(fmt::format("{}: every [[ablation]] must be a table", where_of(path, node)));
    AblationSpec ablation = read_ablation(*node.as_table(), path, where_of(path, node));
    if (!names.insert(ablation.name).second)
      throw Error(fmt::format("{}: ablation name \"{}\" is used twice", ablation.where, ablation.name));
    std::vector<std::string> named = ablation.profiles;
    for (const auto& arm : ablation.arms) {
      for (const auto& [profile, changes] : arm.profile_changes)
        named.push_back(profile);
    }
    for (const auto& profile : named) {
      if (spec.profiles.count(profile) == 0) {
        throw Error(fmt::format("{}: ablation \"{}\": unknown profile \"{}\"", ablation.where, ablation.name,
                                profile));
      }
    }
    spec.ablations.push_back(std::move(ablation));
  }
  return spec;
}

SweepSpec read_sweep_spec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot read the sweep spec", path));
  std::stringstream text;
  text << in.rdbuf();
  return parse_sweep_spec(text.str(), path);
}

std::string arm_id(const json& config) {
  uint64_t hash = 14695981039346656037ULL;
  for (unsigned char c : config.dump()) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", hash).substr(0, 10);
}

const Arm& SweepPlan::arm(const std::string& id) const {
  for (const auto& a : arms) {
    if (a.id == id) return a;
  }
  throw Error(fmt::format("no arm \"{}\" in the sweep", id));
}

namespace {

// Settings the runner owns: every run gets its own folder, data, model file and seed.
const std::set<std::string>& runner_train_keys() {
  static const std::set<std::string> keys{"model",         "tokenizer",     "finetune", "train_data",
                                          "val_data",      "logs",          "name",     "resume",
                                          "zeroshot_task", "zeroshot_data", "seed"};
  return keys;
}

class Planner {
 public:
  Planner(const SweepSpec& spec, const std::string& profile_name) : spec_(spec) {
    const auto it = spec.profiles.find(profile_name);
    if (it == spec.profiles.end()) {
      std::string known;
      for (const auto& [name, profile] : spec.profiles)
        known += (known.empty() ? "" : ", ") + name;
      throw Error(
          fmt::format("{}: unknown profile \"{}\" (the spec has: {})", spec.file, profile_name, known));
    }
    profile_ = it->second;
    base_ = spec.base;
    merge(base_, profile_.settings);
    if (profile_.synth) {
      datasets_ = {"ct", "mri"};
    } else {
      for (const auto& [name, path] : profile_.datasets)
        datasets_.insert(name);
    }
  }

  SweepPlan plan() {
    SweepPlan plan;
    plan.spec_file = spec_.file;
    plan.title = spec_.title;
    plan.profile = profile_;
    plan.metric = spec_.metric;
    plan.higher_is_better = spec_.higher_is_better;
    plan.split = spec_.split;
    base_config_ = resolve(base_, "the base").config;
    if (!base_config_.contains("eval.task"))
      throw Error(fmt::format("{}: the base has no eval.task (the zero-shot task)", spec_.file));
    plan.task = base_config_.at("eval.task");
    int index = 0;
    for (size_t a = 0; a < spec_.ablations.size(); ++a) {
      const AblationSpec& ablation = spec_.ablations[a];
      if (!ablation.profiles.empty() && std::find(ablation.profiles.begin(), ablation.profiles.end(),
                                                  profile_.name) == ablation.profiles.end()) {
        continue;
      }
      PlannedAblation planned;
      planned.index = ++index;
      planned.name = ablation.name;
      planned.title = ablation.title;
      planned.note = ablation.note;
      for (size_t k = 0; k < ablation.arms.size(); ++k) {
        const Arm& arm = arm_of(a, k);
        planned.arms.emplace_back(ablation.arms[k].label, arm.id);
        if (planned.task.empty()) planned.task = arm.config.at("eval.task");
        if (k > 0) {
          const Arm& previous = arm_of(a, k - 1);
          if (previous.id == arm.id) {
            throw Error(fmt::format("{}: ablation \"{}\": arm \"{}\" changes nothing against arm \"{}\"",
                                    ablation.arms[k].where, ablation.name, ablation.arms[k].label,
                                    ablation.arms[k - 1].label));
          }
        }
      }
      plan.ablations.push_back(std::move(planned));
    }
    for (const std::string& id : order_)
      plan.arms.push_back(arms_.at(id));
    return plan;
  }

 private:
  struct Resolved {
    json config;
    json model;
    std::string finetune_from;
    std::string inflate_from;
  };

  static std::string where(const Settings& settings, const std::string& key, const std::string& fallback) {
    const auto it = settings.where.find(key);
    return it != settings.where.end() ? it->second : fallback;
  }

  // The settings of arm k of ablation a, before resolution.
  Settings settings_of(size_t a, size_t k) const {
    const AblationSpec& ablation = spec_.ablations[a];
    Settings settings = base_;
    merge(settings, ablation.settings);
    for (size_t i = 0; i <= k; ++i) {
      merge(settings, ablation.arms[i].changes);
      const auto it = ablation.arms[i].profile_changes.find(profile_.name);
      if (it != ablation.arms[i].profile_changes.end()) merge(settings, it->second);
    }
    return settings;
  }

  const Arm& arm_of(size_t a, size_t k) {
    const auto key = std::make_pair(a, k);
    if (const auto it = by_position_.find(key); it != by_position_.end()) return arms_.at(it->second);
    const AblationSpec& ablation = spec_.ablations[a];
    if (std::find(visiting_.begin(), visiting_.end(), key) != visiting_.end()) {
      std::string cycle;
      bool in_cycle = false;
      for (const auto& [va, vk] : visiting_) {
        in_cycle = in_cycle || (va == a && vk == k);
        if (in_cycle) cycle += spec_.ablations[va].name + "." + spec_.ablations[va].arms[vk].label + " -> ";
      }
      throw Error(fmt::format("{}: init.finetune/init.inflate_2d references form a cycle: {}{}.{}",
                              ablation.arms[k].where, cycle, ablation.name, ablation.arms[k].label));
    }
    visiting_.push_back(key);
    const std::string context =
        fmt::format("ablation \"{}\", arm \"{}\"", ablation.name, ablation.arms[k].label);
    Resolved resolved = resolve(settings_of(a, k), context, ablation.arms[k].where);
    visiting_.pop_back();
    Arm arm;
    arm.config = resolved.config;
    arm.id = arm_id(arm.config);
    arm.model = resolved.model;
    arm.finetune_from = resolved.finetune_from;
    arm.inflate_from = resolved.inflate_from;
    arm.changes = json::object();
    for (const auto& [k2, v] : arm.config.items()) {
      if (!base_config_.contains(k2) || base_config_.at(k2) != v) arm.changes[k2] = v;
    }
    for (const auto& [k2, v] : base_config_.items()) {
      if (!arm.config.contains(k2)) arm.changes[k2] = nullptr;
    }
    by_position_[key] = arm.id;
    if (arms_.emplace(arm.id, arm).second) order_.push_back(arm.id);
    return arms_.at(arm.id);
  }

  // "ABLATION.LABEL" → the position of that arm.
  std::pair<size_t, size_t> find_arm(const std::string& key, const std::string& reference,
                                     const std::string& at) const {
    const auto dot = reference.find('.');
    const std::string name = reference.substr(0, dot);
    const std::string label = dot == std::string::npos ? "" : reference.substr(dot + 1);
    for (size_t a = 0; a < spec_.ablations.size(); ++a) {
      if (spec_.ablations[a].name != name) continue;
      for (size_t k = 0; k < spec_.ablations[a].arms.size(); ++k) {
        if (spec_.ablations[a].arms[k].label == label) return {a, k};
      }
    }
    throw Error(fmt::format("{}: {} = \"{}\": no such arm (write ABLATION.LABEL)", at, key, reference));
  }

  Resolved resolve(const Settings& settings, const std::string& context, const std::string& fallback = "") {
    const std::string at_default = fallback.empty() ? spec_.file : fallback;
    Resolved out;
    out.config = json::object();
    const auto at = [&](const std::string& key) { return where(settings, key, at_default); };
    const auto fail = [&](const std::string& key, const std::string& message) {
      return Error(fmt::format("{}: {}: \"{}\" = {}: {}", at(key), context, key,
                               settings.values.at(key).dump(), message));
    };

    std::string model_config = "hlip-tiny";
    if (settings.values.contains("model_config")) {
      if (!settings.values.at("model_config").is_string()) throw fail("model_config", "must be a string");
      model_config = settings.values.at("model_config");
      if (model_config.find('/') != std::string::npos) model_config = spec_path(spec_.file, model_config);
    }
    json model_flat;
    try {
      model_flat = flatten(model::resolve_clip_config(model_config).to_json());
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}: model_config \"{}\": {}", at("model_config"), context, model_config,
                              e.what()));
    }

    for (const auto& [key, value] : settings.values.items()) {
      const auto dot = key.find('.');
      const std::string space = key.substr(0, dot);
      const std::string rest = dot == std::string::npos ? "" : key.substr(dot + 1);
      if (space == "model_config") continue;
      if (space == "model") {
        if (!model_flat.contains(rest)) {
          throw fail(key,
                     fmt::format("unknown key: the model config \"{}\" has no \"{}\"", model_config, rest));
        }
        const json& current = model_flat.at(rest);
        const bool same_kind = (current.is_number() && value.is_number()) ||
                               (current.is_boolean() && value.is_boolean()) ||
                               (current.is_string() && value.is_string()) ||
                               (current.is_array() && value.is_array()) || current.is_null();
        if (!same_kind) throw fail(key, fmt::format("must be of the same type as {}", current.dump()));
        model_flat[rest] = value;
      } else if (space == "train") {
        const train::OptionField* field = nullptr;
        for (const auto& candidate : train::train_option_fields()) {
          if (candidate.key == rest) field = &candidate;
        }
        if (field == nullptr) throw fail(key, "unknown key (not a setting of hlip train)");
        if (runner_train_keys().count(rest) > 0) throw fail(key, "set by hlip ablate for every run");
        const bool ok = std::visit(
            [&](auto member) {
              using T = std::decay_t<decltype(train::TrainOptions{}.*member)>;
              if constexpr (std::is_same_v<T, std::string>) return value.is_string();
              if constexpr (std::is_same_v<T, bool>) return value.is_boolean();
              if constexpr (std::is_same_v<T, double>) return value.is_number();
              if constexpr (std::is_same_v<T, std::vector<std::string>>) return value.is_array();
              if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
                return value.is_number_integer();
              return false;
            },
            field->member);
        if (!ok) throw fail(key, "wrong type for this hlip train setting");
        out.config[key] = value;
      } else if (key == "data.train") {
        json list = value.is_string() ? json::array({value}) : value;
        if (!list.is_array() || list.empty()) throw fail(key, "must be a dataset name or a list of them");
        for (const auto& item : list) {
          if (!item.is_string()) throw fail(key, "must be a dataset name or a list of them");
          const std::string name = item.get<std::string>().substr(0, item.get<std::string>().find('@'));
          if (datasets_.count(name) == 0) throw fail(key, fmt::format("unknown dataset \"{}\"", name));
        }
        out.config[key] = list;
      } else if (key == "data.eval") {
        if (!value.is_string() || datasets_.count(value.get<std::string>()) == 0)
          throw fail(key, "must name a dataset of the profile");
        out.config[key] = value;
      } else if (key == "eval.task") {
        if (!value.is_string()) throw fail(key, "must be a task name or file");
        std::string task = value;
        if (task.find('/') != std::string::npos) task = spec_path(spec_.file, task);
        try {
          (void)eval::load_task(task);
        } catch (const Error& e) {
          throw fail(key, e.what());
        }
        out.config[key] = task;
      } else if (key == "eval.template") {
        if (!value.is_string() || value.get<std::string>().find("{c}") == std::string::npos)
          throw fail(key, "must be a prompt template with {c}, e.g. \"{c}.\"");
        out.config[key] = value;
      } else if (key == "init.finetune" || key == "init.inflate_2d") {
        if (!value.is_string()) throw fail(key, "must be \"ABLATION.LABEL\"");
        const auto [a, k] = find_arm(key, value, at(key));
        (key == "init.finetune" ? out.finetune_from : out.inflate_from) = arm_of(a, k).id;
        out.config[key] = arm_of(a, k).id;
        if (!out.finetune_from.empty() && !out.inflate_from.empty())
          throw fail(key,
                     "an arm starts either from a model (init.finetune) or from a 2D one (init.inflate_2d)");
      } else {
        throw fail(key,
                   "unknown key (settings are train.*, model.*, model_config, data.train, data.eval, "
                   "eval.task, eval.template, init.finetune, init.inflate_2d)");
      }
    }
    if (!out.config.contains("data.train"))
      throw Error(fmt::format("{}: {}: no data.train (the datasets to train on)", at_default, context));
    if (!out.config.contains("data.eval")) {
      const std::string first = out.config["data.train"][0];
      out.config["data.eval"] = first.substr(0, first.find('@'));
    }
    if (profile_.steps > 0 && !out.config.contains("train.max_steps"))
      out.config["train.max_steps"] = profile_.steps;

    json nested = json::object();
    for (const auto& [key, value] : model_flat.items()) {
      json* node = &nested;
      size_t start = 0;
      for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
        node = &(*node)[key.substr(start, dot - start)];
        start = dot + 1;
      }
      (*node)[key.substr(start)] = value;
    }
    try {
      const model::ClipConfig config = model::ClipConfig::from_json(nested);
      config.validate();
      out.model = config.to_json();
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}: the model config with these changes is invalid: {}", at_default,
                              context, e.what()));
    }
    const json model_leaves = flatten(out.model);
    for (const auto& [key, value] : model_leaves.items())
      out.config["model." + key] = value;
    return out;
  }

  const SweepSpec& spec_;
  ProfileSpec profile_;
  Settings base_;
  json base_config_ = json::object();
  std::set<std::string> datasets_;
  std::map<std::pair<size_t, size_t>, std::string> by_position_;
  std::vector<std::pair<size_t, size_t>> visiting_;
  std::map<std::string, Arm> arms_;
  std::vector<std::string> order_;
};

}  // namespace

SweepPlan plan_sweep(const SweepSpec& spec, const std::string& profile) {
  return Planner(spec, profile).plan();
}

}  // namespace hlip::ablate
