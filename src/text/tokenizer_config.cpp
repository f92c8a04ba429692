// Reading tokenizer_config.json and special_tokens_map.json as Hugging Face publishes them.

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "hlip/core/error.h"
#include "hlip/text/tokenizer.h"

namespace hlip::text {
namespace {

using nlohmann::json;

json read_json(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", file.string()));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", file.string(), e.what()));
  }
}

[[noreturn]] void wrong_type(const std::filesystem::path& file, const std::string& key, const json& value,
                             const char* expected) {
  throw Error(fmt::format("{}: \"{}\" is {}, expected {}", file.string(), key, value.dump(), expected));
}

void read_bool(const json& config, const std::filesystem::path& file, const std::string& key, bool& out) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return;
  if (!it->is_boolean()) wrong_type(file, key, *it, "true or false");
  out = it->get<bool>();
}

// A special token is written either as a string or as a serialised AddedToken {"content": "[UNK]", ...}.
std::string token_content(const json& value, const std::filesystem::path& file, const std::string& key) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) {
    const auto content = value.find("content");
    if (content != value.end() && content->is_string()) return content->get<std::string>();
  }
  wrong_type(file, key, value, "a string or an object with a string \"content\"");
}

void read_token(const json& config, const std::filesystem::path& file, const std::string& key,
                std::string& out) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return;
  out = token_content(*it, file, key);
}

void read_token_list(const json& config, const std::filesystem::path& file, const std::string& key,
                     std::vector<std::string>& out) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return;
  if (!it->is_array()) wrong_type(file, key, *it, "a list of tokens");
  out.clear();
  for (const json& value : *it)
    out.push_back(token_content(value, file, key));
}

void read_side(const json& config, const std::filesystem::path& file, const std::string& key, Side& out) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return;
  if (*it == "right") {
    out = Side::right;
  } else if (*it == "left") {
    out = Side::left;
  } else {
    wrong_type(file, key, *it, "\"left\" or \"right\"");
  }
}

// Hugging Face writes "no limit" as int(1e30), which JSON readers see as a float beyond int64.
void read_max_length(const json& config, const std::filesystem::path& file, const std::string& key,
                     std::optional<int64_t>& out) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return;
  if (!it->is_number()) wrong_type(file, key, *it, "a number");
  const double value = it->get<double>();
  if (value <= 0) wrong_type(file, key, *it, "a positive number");
  if (it->is_number_integer() && value < 1e18) {
    out = it->get<int64_t>();
  } else {
    out = std::nullopt;
  }
}

void read_special_tokens(const json& config, const std::filesystem::path& file, TokenizerOptions& options) {
  read_token(config, file, "unk_token", options.unk_token);
  read_token(config, file, "sep_token", options.sep_token);
  read_token(config, file, "pad_token", options.pad_token);
  read_token(config, file, "cls_token", options.cls_token);
  read_token(config, file, "mask_token", options.mask_token);
  read_token_list(config, file, "additional_special_tokens", options.additional_special_tokens);
}

void require_object(const json& config, const std::filesystem::path& file) {
  if (!config.is_object())
    throw Error(fmt::format("{}: expected a JSON object, got {}", file.string(), config.type_name()));
}

}  // namespace

TokenizerOptions read_tokenizer_options(const std::filesystem::path& path, TokenizerOptions defaults) {
  TokenizerOptions options = std::move(defaults);
  if (!std::filesystem::is_directory(path)) return options;

  const std::filesystem::path config_file = path / "tokenizer_config.json";
  if (std::filesystem::exists(config_file)) {
    const json config = read_json(config_file);
    require_object(config, config_file);
    read_bool(config, config_file, "do_lower_case", options.do_lower_case);
    if (const auto it = config.find("strip_accents"); it != config.end()) {
      if (it->is_null()) {
        options.strip_accents = std::nullopt;
      } else if (it->is_boolean()) {
        options.strip_accents = it->get<bool>();
      } else {
        wrong_type(config_file, "strip_accents", *it, "true, false or null");
      }
    }
    read_bool(config, config_file, "tokenize_chinese_chars", options.tokenize_chinese_chars);
    read_bool(config, config_file, "do_basic_tokenize", options.do_basic_tokenize);
    read_bool(config, config_file, "clean_up_tokenization_spaces", options.clean_up_tokenization_spaces);
    read_token_list(config, config_file, "never_split", options.never_split);
    read_special_tokens(config, config_file, options);
    read_max_length(config, config_file, "max_len", options.model_max_length);  // the older name
    read_max_length(config, config_file, "model_max_length", options.model_max_length);
    read_side(config, config_file, "padding_side", options.padding_side);
    read_side(config, config_file, "truncation_side", options.truncation_side);
  }

  // transformers' from_pretrained lets special_tokens_map.json override tokenizer_config.json.
  const std::filesystem::path map_file = path / "special_tokens_map.json";
  if (std::filesystem::exists(map_file)) {
    const json map = read_json(map_file);
    require_object(map, map_file);
    read_special_tokens(map, map_file, options);
  }
  return options;
}

void write_tokenizer_config(const std::filesystem::path& file, const TokenizerOptions& options) {
  json config = {
      {"tokenizer_class", "BertTokenizer"},
      {"do_lower_case", options.do_lower_case},
      {"strip_accents", options.strip_accents ? json(*options.strip_accents) : json(nullptr)},
      {"tokenize_chinese_chars", options.tokenize_chinese_chars},
      {"do_basic_tokenize", options.do_basic_tokenize},
      {"never_split", options.never_split.empty() ? json(nullptr) : json(options.never_split)},
      {"unk_token", options.unk_token},
      {"sep_token", options.sep_token},
      {"pad_token", options.pad_token},
      {"cls_token", options.cls_token},
      {"mask_token", options.mask_token},
      {"additional_special_tokens", options.additional_special_tokens},
      {"padding_side", options.padding_side == Side::left ? "left" : "right"},
      {"truncation_side", options.truncation_side == Side::left ? "left" : "right"},
      {"clean_up_tokenization_spaces", options.clean_up_tokenization_spaces},
  };
  if (options.model_max_length) config["model_max_length"] = *options.model_max_length;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(fmt::format("{}: cannot write", file.string()));
  out << config.dump(2) << '\n';
  out.flush();
  if (!out) throw Error(fmt::format("{}: write error", file.string()));
}

}  // namespace hlip::text
