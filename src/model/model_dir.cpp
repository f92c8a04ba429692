// Model folders in the layout of released open_clip checkpoints: open_clip_config.json + model.safetensors
// (or a sharded model.safetensors.index.json), and an optional tokenizer/ subfolder.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/clip.h"

namespace hlip::model {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfigFile = "open_clip_config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kShardIndexFile = "model.safetensors.index.json";
constexpr const char* kTokenizerFolder = "tokenizer";
// Files of a Hugging Face tokenizer folder that are copied along with a model.
constexpr const char* kTokenizerFiles[] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Hugging Face's sharded layout: {"metadata": {...}, "weight_map": {key: shard file}}. Every key must be in
// its shard and every tensor of a shard in the map, so a stale index cannot mix two checkpoints.
std::map<std::string, at::Tensor> read_sharded(const fs::path& index_path) {
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text(index_path));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: invalid JSON ({})", index_path.string(), e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
    throw Error(fmt::format("{}: no \"weight_map\" object", index_path.string()));
  }
  std::map<std::string, std::set<std::string>> keys_of_shard;
  for (const auto& [key, file] : index.at("weight_map").items()) {
    if (!file.is_string()) {
      throw Error(fmt::format("{}: weight_map[\"{}\"] = {} is not a file name", index_path.string(), key,
                              file.dump()));
    }
    const fs::path shard(file.get<std::string>());
    if (shard.empty() || shard.is_absolute() ||
        std::any_of(shard.begin(), shard.end(), [](const fs::path& part) { return part == ".."; })) {
      throw Error(fmt::format("{}: weight_map[\"{}\"] = \"{}\" must name a file inside the folder",
                              index_path.string(), key, shard.string()));
    }
    keys_of_shard[shard.string()].insert(key);
  }
  std::map<std::string, at::Tensor> state;
  for (const auto& [shard, keys] : keys_of_shard) {
    const fs::path path = index_path.parent_path() / shard;
    io::SafetensorsFile file = io::read_safetensors(path.string());
    for (auto& [key, tensor] : file.tensors) {
      if (keys.count(key) == 0) {
        throw Error(fmt::format("{}: tensor \"{}\" is not mapped to this shard by {}", path.string(), key,
                                index_path.filename().string()));
      }
      state.emplace(key, std::move(tensor));
    }
    for (const std::string& key : keys) {
      if (state.count(key) == 0) {
        throw Error(
            fmt::format("{}: maps \"{}\" to {}, which does not hold it", index_path.string(), key, shard));
      }
    }
  }
  return state;
}

std::map<std::string, at::Tensor> read_dir_weights(const fs::path& root) {
  std::error_code error;
  if (fs::is_regular_file(root / kWeightsFile, error))
    return io::read_safetensors((root / kWeightsFile).string()).tensors;
  if (fs::is_regular_file(root / kShardIndexFile, error)) return read_sharded(root / kShardIndexFile);
  if (fs::exists(root / "pytorch_model.bin", error)) {
    throw Error(fmt::format(
        "{}: has pytorch_model.bin but no {}; hlip reads safetensors only (pickles can run code): "
        "convert it with safetensors.torch.save_file(torch.load(...))",
        root.string(), kWeightsFile));
  }
  throw Error(fmt::format("{}: no {} or {}", root.string(), kWeightsFile, kShardIndexFile));
}

// DDP training checkpoints prefix every key with "module.".
void strip_module_prefix(std::map<std::string, at::Tensor>& state) {
  const std::string prefix = "module.";
  if (state.empty()) return;
  for (const auto& [key, tensor] : state) {
    if (key.compare(0, prefix.size(), prefix) != 0) return;
  }
  std::map<std::string, at::Tensor> stripped;
  for (auto& [key, tensor] : state)
    stripped.emplace(key.substr(prefix.size()), std::move(tensor));
  state = std::move(stripped);
}

// Spec section 1: E and the presence of logit_bias are read off the weights.
void adapt_to_weights(ClipConfig& config, const std::map<std::string, at::Tensor>& state,
                      const std::string& dir) {
  const auto head = state.find("visual.head.proj.weight");
  if (head != state.end() && head->second.dim() == 2 && head->second.size(0) != config.embed_dim) {
    spdlog::warn("{}: embed_dim {} -> {} (the first dimension of visual.head.proj.weight)", dir,
                 config.embed_dim, head->second.size(0));
    config.embed_dim = config.vision.embed_dim = head->second.size(0);
  }
  if (state.count("logit_scale") == 0) return;  // not a whole CLIP state: nothing to say about logit_bias
  const auto bias = state.find("logit_bias");
  if (bias != state.end() && !config.init_logit_bias) {
    spdlog::warn("{}: the weights have logit_bias, the config has no init_logit_bias: building it", dir);
    config.init_logit_bias = bias->second.to(at::kDouble).item<double>();
  } else if (bias == state.end() && config.init_logit_bias) {
    spdlog::warn("{}: the config sets init_logit_bias, the weights have no logit_bias: building none", dir);
    config.init_logit_bias.reset();
  }
}

void copy_file_atomic(const fs::path& from, const fs::path& to) {
  const std::string bytes = read_text(from);
  write_file_atomic(to.string(), bytes);
}

}  // namespace

std::map<std::string, at::Tensor> read_model_weights(const std::string& path) {
  std::error_code error;
  if (fs::is_directory(path, error)) return read_dir_weights(path);
  return io::read_safetensors(path).tensors;
}

HlipClip load_model_dir(const std::string& dir, const ModelDirOptions& options, LoadReport* report) {
  std::error_code error;
  const fs::path root(dir);
  if (!fs::is_directory(root, error)) throw Error(fmt::format("{}: not a model folder", dir));
  ClipConfig config;
  if (!options.config.empty()) {
    config = resolve_clip_config(options.config);
  } else if (fs::is_regular_file(root / kConfigFile, error)) {
    config = read_clip_config((root / kConfigFile).string());
  } else {
    throw Error(fmt::format("{}: no {}; name its config (one of {}) or a JSON file", dir, kConfigFile,
                            fmt::join(known_model_configs(), ", ")));
  }
  std::map<std::string, at::Tensor> state = read_dir_weights(root);
  strip_module_prefix(state);
  if (options.adapt_to_weights) adapt_to_weights(config, state, dir);
  if (options.adjust_config) options.adjust_config(config);

  HlipClip model(config);
  LoadOptions load;
  load.strict = options.strict;
  load.ignore = {"text.transformer.embeddings.position_ids"};
  LoadReport loaded;
  try {
    loaded = load_state_dict(*model, state, load);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", dir, e.what()));
  }
  if (report != nullptr) *report = std::move(loaded);
  return model;
}

void save_model_dir(HlipClip& model, const ClipConfig& config, const std::string& dir,
                    const SaveModelDirOptions& options) {
  const fs::path root(dir);
  create_directories(dir);
  std::map<std::string, std::string> metadata = options.metadata;
  metadata.emplace("format", "pt");
  io::write_safetensors((root / kWeightsFile).string(), named_state(*model), metadata);

  if (!options.tokenizer.empty()) {
    std::error_code error;
    const fs::path source(options.tokenizer);
    const fs::path target = root / kTokenizerFolder;
    create_directories(target.string());
    if (fs::is_directory(source, error)) {
      if (!fs::is_regular_file(source / "vocab.txt", error)) {
        throw Error(fmt::format("{}: tokenizer folder without vocab.txt", source.string()));
      }
      for (const char* name : kTokenizerFiles) {
        if (fs::is_regular_file(source / name, error)) copy_file_atomic(source / name, target / name);
      }
    } else {
      copy_file_atomic(source, target / "vocab.txt");
    }
  }

  nlohmann::json file = {
      {"model_cfg", config.to_json()},
      // Spec section 2: intensities in [0, 1] are normalised with HLIP's single-channel mean and std.
      {"preprocess_cfg", {{"mean", {0.449}}, {"std", {0.226}}, {"size", config.vision.img_size}}}};
  if (options.preprocess_preset) file["preprocess_cfg"]["hlip_preset"] = *options.preprocess_preset;
  write_file_atomic((root / kConfigFile).string(), file.dump(2) + "\n");
}

std::optional<nlohmann::json> recorded_preprocess_preset(const std::string& dir) {
  const fs::path config = fs::path(dir) / kConfigFile;
  std::error_code error;
  if (!fs::is_regular_file(config, error)) return std::nullopt;
  std::ifstream in(config);
  const nlohmann::json root = nlohmann::json::parse(in, nullptr, false);
  if (root.is_discarded()) throw Error(fmt::format("{}: not valid JSON", config.string()));
  if (root.contains("preprocess_cfg") && root["preprocess_cfg"].is_object() &&
      root["preprocess_cfg"].contains("hlip_preset"))
    return root["preprocess_cfg"]["hlip_preset"];
  return std::nullopt;
}

std::string model_dir_tokenizer(const std::string& dir) {
  std::error_code error;
  const fs::path folder = fs::path(dir) / kTokenizerFolder;
  return fs::is_regular_file(folder / "vocab.txt", error) ? folder.string() : std::string();
}

}  // namespace hlip::model
