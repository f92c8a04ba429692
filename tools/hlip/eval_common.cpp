#include "eval_common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hlip/core/device.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/train/distributed.h"

namespace hlip::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

preprocess::Preset cache_preset(const std::string& cache, const std::string& modality) {
  const json presets = data::cache_presets(cache);
  if (presets.contains("*")) return preprocess::preset_from_json(presets["*"]);
  if (presets.contains(modality)) return preprocess::preset_from_json(presets[modality]);
  throw Error(fmt::format("{}: \"presets\" has none for modality \"{}\" (has: {})",
                          (fs::path(cache) / "cache.json").string(), modality, presets.dump()));
}

preprocess::Preset preset_from_flag(const std::string& spec, const std::string& modality) {
  if (data::is_cache_dir(spec)) return cache_preset(spec, modality);
  std::error_code error;
  if (fs::is_regular_file(spec, error)) return preprocess::preset_from_toml(spec);
  return preprocess::preset_by_name(spec);
}

std::optional<preprocess::Preset> dataset_preset(const std::string& data, const std::string& flag,
                                                 const std::string& modality) {
  if (data::is_cache_dir(data)) {
    if (!flag.empty()) std::cerr << fmt::format("--preset {} ignored: {} is a prepared cache\n", flag, data);
    return std::nullopt;
  }
  if (flag.empty()) {
    throw UsageError(
        fmt::format("{} is a manifest, not a prepared cache: pass --preset (or run `hlip prepare`)", data));
  }
  return preset_from_flag(flag, modality);
}

data::StudyDataset split_dataset(const std::string& data, const std::string& split,
                                 const std::optional<preprocess::Preset>& preset) {
  data::StudyDataset dataset({{data}}, split == "all" ? "" : split, preset);
  if (dataset.size() > 0) return dataset;
  const data::StudyDataset all({{data}}, "", preset);
  std::set<std::string> splits;
  for (int64_t i = 0; i < all.size(); ++i)
    splits.insert(all.study(i).split.empty() ? "(none)" : all.study(i).split);
  throw Error(fmt::format(
      "{}: no study in split \"{}\" (splits: {})", data, split,
      splits.empty() ? "none, the data has no study" : fmt::format("{}", fmt::join(splits, ", "))));
}

void add_device_flag(CLI::App& app, std::string& device) {
  app.add_option("--device", device,
                 "cpu, cuda or cuda:N (cuda: GPU LOCAL_RANK of a sharded run; needs a CUDA LibTorch)")
      ->capture_default_str();
}

model::HlipClip load_model(const std::string& dir, const std::string& device) {
  const c10::Device target = resolve_device(device, train::dist_env_from_environment().local_rank);
  std::error_code error;
  if (!fs::is_directory(dir, error)) throw Error(fmt::format("--model {}: not a model folder", dir));
  model::LoadReport report;
  model::HlipClip clip = model::load_model_dir(dir, {}, &report);
  clip->to(target);
  use_as_current_device(target);
  std::cerr << fmt::format("model {}: {}{}\n", dir, report.summary(),
                           target.is_cpu() ? "" : fmt::format(", on {}", target.str()));
  return clip;
}

text::Tokenizer load_tokenizer(const std::string& flag, const std::string& model_dir) {
  const std::string path = flag.empty() ? model::model_dir_tokenizer(model_dir) : flag;
  if (path.empty()) {
    throw Error(fmt::format("{}: the model folder has no tokenizer/vocab.txt; pass --tokenizer", model_dir));
  }
  return text::Tokenizer::from_pretrained(path);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    const auto begin = item.find_first_not_of(" \t");
    const auto end = item.find_last_not_of(" \t");
    if (begin != std::string::npos) out.push_back(item.substr(begin, end - begin + 1));
  }
  return out;
}

std::string csv_field(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string write_vqa_answers(const std::string& dir, const std::vector<eval::VqaRow>& rows) {
  const std::string path = (std::filesystem::path(dir) / "answers.csv").string();
  std::string csv = "study,type,question,answer,predicted\n";
  for (const auto& row : rows) {
    csv += fmt::format("{},{},{},{},{}\n", csv_field(row.study), csv_field(row.type), csv_field(row.question),
                       csv_field(row.answer), csv_field(row.predicted));
  }
  write_file_atomic(path, csv);
  return path;
}

void print_vqa_table(const nlohmann::json& scores) {
  std::cout << fmt::format("{:<14} {:>9} {:>9} {:>9}\n", "type", "questions", "accuracy", "majority");
  for (const auto& [type, r] : scores["types"].items()) {
    std::cout << fmt::format("{:<14} {:>9} {:>9.3f} {:>9.3f}\n", type, r["questions"].get<int64_t>(),
                             r["accuracy"].get<double>(), r["majority_accuracy"].get<double>());
  }
  std::cout << fmt::format("{:<14} {:>9} {:>9.3f} {:>9.3f}\n", "all", scores["questions"].get<int64_t>(),
                           scores["accuracy"].get<double>(), scores["majority_accuracy"].get<double>());
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
}

// --preset, else the preset the model folder records (open_clip_config.json "preprocess_cfg"."hlip_preset"),
// else the default preset of the modality.
ResolvedPreset resolve_preset(const std::string& flag, const std::string& model_dir,
                              const std::string& modality) {
  if (!flag.empty()) return {preset_from_flag(flag, modality), "--preset " + flag};
  if (const auto recorded = model::recorded_preprocess_preset(model_dir)) {
    const std::string config = (fs::path(model_dir) / "open_clip_config.json").string();
    try {
      return {preprocess::preset_from_json(*recorded), config + " preprocess_cfg.hlip_preset"};
    } catch (const Error& e) {
      throw Error(fmt::format("{}: preprocess_cfg.hlip_preset: {}", config, e.what()));
    }
  }
  return {preprocess::preset_for_modality(modality), "the default for " + modality};
}

void add_model_and_data_flags(CLI::App& app, std::string& model, std::string& tokenizer, std::string& data) {
  app.add_option("--model", model, "Model folder (open_clip_config.json + model.safetensors)")->required();
  app.add_option("--tokenizer", tokenizer, "Tokenizer folder or vocab.txt (default: MODEL/tokenizer)");
  app.add_option("--data", data, "A prepared cache or a manifest (.jsonl, needs --preset)")->required();
}

}  // namespace hlip::cli
