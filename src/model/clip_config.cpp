// ClipConfig <-> open_clip model-config JSON, and the configs of configs/models/ compiled into the library.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/model/clip.h"
#include "hlip/model/vision_config.h"

namespace hlip::model {
namespace detail {
// Generated at build time from configs/models/*.json (cmake/HlipEmbedModelConfigs.cmake): {name, JSON}.
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_model_configs();
}  // namespace detail

namespace {

template <typename T>
T read(const nlohmann::json& object, const std::string& section, const char* key, T fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(
        fmt::format("model config: {}.{} = {} has the wrong type ({})", section, key, it->dump(), e.what()));
  }
}

// A key that only has one supported value in HLIP: absent or that value, anything else is refused.
template <typename T>
void require(const nlohmann::json& object, const std::string& section, const char* key, const T& supported,
             const char* why) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return;
  if (read<T>(object, section, key, supported) != supported) {
    throw Error(fmt::format("model config: {}.{} = {} is not supported ({})", section, key, it->dump(), why));
  }
}

BertOptions bert_from_json(const nlohmann::json& hf) {
  const std::string s = "text_cfg.hf_config";
  BertOptions b;
  b.vocab_size = read(hf, s, "vocab_size", b.vocab_size);
  b.hidden_size = read(hf, s, "hidden_size", b.hidden_size);
  b.num_hidden_layers = read(hf, s, "num_hidden_layers", b.num_hidden_layers);
  b.num_attention_heads = read(hf, s, "num_attention_heads", b.num_attention_heads);
  b.intermediate_size = read(hf, s, "intermediate_size", b.intermediate_size);
  b.max_position_embeddings = read(hf, s, "max_position_embeddings", b.max_position_embeddings);
  b.type_vocab_size = read(hf, s, "type_vocab_size", b.type_vocab_size);
  b.layer_norm_eps = read(hf, s, "layer_norm_eps", b.layer_norm_eps);
  b.hidden_dropout_prob = read(hf, s, "hidden_dropout_prob", b.hidden_dropout_prob);
  b.attention_probs_dropout_prob =
      read(hf, s, "attention_probs_dropout_prob", b.attention_probs_dropout_prob);
  b.initializer_range = read(hf, s, "initializer_range", b.initializer_range);
  b.pad_token_id = read(hf, s, "pad_token_id", b.pad_token_id);
  require<std::string>(hf, s, "hidden_act", "gelu", "BERT's exact GELU is the only activation");
  require<std::string>(hf, s, "position_embedding_type", "absolute", "only absolute positions are built");
  return b;
}

nlohmann::json bert_to_json(const BertOptions& b) {
  return {{"vocab_size", b.vocab_size},
          {"hidden_size", b.hidden_size},
          {"num_hidden_layers", b.num_hidden_layers},
          {"num_attention_heads", b.num_attention_heads},
          {"intermediate_size", b.intermediate_size},
          {"max_position_embeddings", b.max_position_embeddings},
          {"type_vocab_size", b.type_vocab_size},
          {"layer_norm_eps", b.layer_norm_eps},
          {"hidden_act", "gelu"},
          {"position_embedding_type", "absolute"},
          {"pad_token_id", b.pad_token_id},
          {"hidden_dropout_prob", b.hidden_dropout_prob},
          {"attention_probs_dropout_prob", b.attention_probs_dropout_prob},
          {"initializer_range", b.initializer_range}};
}

nlohmann::json parse_json(std::string_view text, const std::string& origin) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: invalid JSON ({})", origin, e.what()));
  }
}

// The model config inside an open_clip_config.json, or the object itself for a bare model config.
const nlohmann::json& model_cfg_of(const nlohmann::json& file) {
  return file.is_object() && file.contains("model_cfg") ? file.at("model_cfg") : file;
}

ClipConfig config_from_text(std::string_view text, const std::string& origin) {
  try {
    return ClipConfig::from_json(model_cfg_of(parse_json(text, origin)));
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(origin, 0) == 0) throw;
    throw Error(fmt::format("{}: {}", origin, message));
  }
}

}  // namespace

ClipConfig ClipConfig::from_json(const nlohmann::json& model_cfg) {
  if (!model_cfg.is_object()) throw Error("model config: expected a JSON object");
  ClipConfig c;
  c.vision = vision_options_from_json(model_cfg);
  c.embed_dim = c.vision.embed_dim;
  const nlohmann::json& vision = model_cfg.at("vision_cfg");
  c.timm_model_name = read<std::string>(vision, "vision_cfg", "timm_model_name", "");
  require<std::string>(vision, "vision_cfg", "timm_pool", "token",
                       "HLIP pools inside the trunk; timm attention pooling is not built");
  require<std::string>(vision, "vision_cfg", "timm_proj", "linear", "the head is one linear projection");
  require<bool>(vision, "vision_cfg", "timm_proj_bias", false, "HLIP's head projection has no bias");

  const auto text_it = model_cfg.find("text_cfg");
  if (text_it == model_cfg.end() || !text_it->is_object()) throw Error("model config: text_cfg is missing");
  const nlohmann::json& text = *text_it;
  if (!text.contains("hf_model_name")) {
    throw Error(
        "model config: text_cfg.hf_model_name is missing (only Hugging Face BERT text towers, open_clip's "
        "CustomTextCLIP, are supported)");
  }
  ClipTextConfig& t = c.text;
  t.hf_model_name = read<std::string>(text, "text_cfg", "hf_model_name", t.hf_model_name);
  t.hf_tokenizer_name = read<std::string>(text, "text_cfg", "hf_tokenizer_name", t.hf_model_name);
  t.hf_pooler_type = read<std::string>(text, "text_cfg", "hf_pooler_type", t.hf_pooler_type);
  if (t.hf_pooler_type != "cls_last_hidden_state_pooler" && t.hf_pooler_type != "mean_pooler") {
    throw Error(fmt::format(
        "model config: text_cfg.hf_pooler_type = \"{}\" is not supported (cls_last_hidden_state_pooler, as "
        "HLIP, or mean_pooler)",
        t.hf_pooler_type));
  }
  require<std::string>(text, "text_cfg", "hf_proj_type", t.hf_proj_type, "the text projection is linear");
  // open_clip's own default; every HLIP config sets it.
  t.context_length = read<int64_t>(text, "text_cfg", "context_length", 77);
  if (text.contains("hf_config")) t.bert = bert_from_json(text.at("hf_config"));

  c.init_logit_scale = read(model_cfg, "model_cfg", "init_logit_scale", c.init_logit_scale);
  if (model_cfg.contains("init_logit_bias") && !model_cfg.at("init_logit_bias").is_null()) {
    c.init_logit_bias = read<double>(model_cfg, "model_cfg", "init_logit_bias", 0.0);
  }
  c.validate();
  return c;
}

nlohmann::json ClipConfig::to_json() const {
  VisionOptions v = vision;
  v.embed_dim = embed_dim;
  nlohmann::json vision_cfg = vision_options_to_json(v).at("vision_cfg");
  if (!timm_model_name.empty()) vision_cfg["timm_model_name"] = timm_model_name;
  vision_cfg["timm_model_pretrained"] = false;
  nlohmann::json out = {{"embed_dim", embed_dim},
                        {"init_logit_scale", init_logit_scale},
                        {"custom_text", true},
                        {"vision_cfg", vision_cfg},
                        {"text_cfg",
                         {{"hf_model_name", text.hf_model_name},
                          {"hf_tokenizer_name", text.hf_tokenizer_name},
                          {"hf_pooler_type", text.hf_pooler_type},
                          {"hf_proj_type", text.hf_proj_type},
                          {"context_length", text.context_length},
                          {"hf_config", bert_to_json(text.bert)}}}};
  if (init_logit_bias) out["init_logit_bias"] = *init_logit_bias;
  return out;
}

TextTowerOptions ClipConfig::text_options() const {
  TextTowerOptions o;
  o.bert = text.bert;
  o.embed_dim = embed_dim;
  o.context_length = text.context_length;
  o.mean_pool = text.hf_pooler_type == "mean_pooler";
  return o;
}

void ClipConfig::validate() const {
  if (embed_dim <= 0) throw Error(fmt::format("model config: embed_dim = {} must be positive", embed_dim));
  if (vision.embed_dim != embed_dim) {
    throw Error(fmt::format("model config: vision embed_dim {} differs from embed_dim {}", vision.embed_dim,
                            embed_dim));
  }
  vision.validate();
  const BertOptions& b = text.bert;
  const std::pair<const char*, int64_t> positive[] = {{"vocab_size", b.vocab_size},
                                                      {"hidden_size", b.hidden_size},
                                                      {"num_hidden_layers", b.num_hidden_layers},
                                                      {"num_attention_heads", b.num_attention_heads},
                                                      {"intermediate_size", b.intermediate_size},
                                                      {"max_position_embeddings", b.max_position_embeddings},
                                                      {"type_vocab_size", b.type_vocab_size}};
  for (const auto& [key, value] : positive) {
    if (value <= 0)
      throw Error(fmt::format("model config: text_cfg.hf_config.{} = {} must be positive", key, value));
  }
  if (b.hidden_size % b.num_attention_heads != 0) {
    throw Error(fmt::format(
        "model config: text_cfg.hf_config.hidden_size {} is not divisible by num_attention_heads {}",
        b.hidden_size, b.num_attention_heads));
  }
  if (b.pad_token_id < 0 || b.pad_token_id >= b.vocab_size) {
    throw Error(
        fmt::format("model config: text_cfg.hf_config.pad_token_id = {} is outside the vocabulary [0, {})",
                    b.pad_token_id, b.vocab_size));
  }
  if (text.context_length <= 0 || text.context_length > b.max_position_embeddings) {
    throw Error(
        fmt::format("model config: text_cfg.context_length = {} must be in [1, max_position_embeddings {}]",
                    text.context_length, b.max_position_embeddings));
  }
}

ClipConfig read_clip_config(const std::string& json_path) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open model config", json_path));
  std::ostringstream text;
  text << in.rdbuf();
  return config_from_text(text.str(), json_path);
}

std::vector<std::string> known_model_configs() {
  std::vector<std::string> names;
  for (const auto& [name, json] : detail::embedded_model_configs())
    names.emplace_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

ClipConfig clip_config_by_name(const std::string& name) {
  const auto& configs = detail::embedded_model_configs();
  for (const auto& [config_name, json] : configs) {
    if (config_name == name) return config_from_text(json, "configs/models/" + name + ".json");
  }
  // A vision model name: the config whose vision tower it names.
  for (const auto& [config_name, json] : configs) {
    const nlohmann::json cfg = parse_json(json, std::string(config_name));
    if (cfg.value("vision_cfg", nlohmann::json::object()).value("timm_model_name", "") == name) {
      return config_from_text(json, "configs/models/" + std::string(config_name) + ".json");
    }
  }
  throw Error(fmt::format("model config \"{}\" is unknown (known: {})", name,
                          fmt::join(known_model_configs(), ", ")));
}

ClipConfig resolve_clip_config(const std::string& name_or_path) {
  std::error_code error;
  if (std::filesystem::is_regular_file(name_or_path, error)) return read_clip_config(name_or_path);
  return clip_config_by_name(name_or_path);
}

}  // namespace hlip::model
