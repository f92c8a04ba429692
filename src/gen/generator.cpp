#include "hlip/gen/generator.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/model/state_dict.h"

namespace hlip::gen {
namespace fs = std::filesystem;
using json = nlohmann::json;

at::Tensor visual_tokens(model::HlipClipImpl& clip, const at::Tensor& image, bool with_grad) {
  auto& trunk = *clip.visual->trunk;
  const bool was_training = trunk.is_training();
  if (!with_grad) trunk.eval();
  at::Tensor tokens;
  {
    at::AutoGradMode grad_mode(with_grad);
    const auto dtype = clip.visual->head->proj->weight.scalar_type();
    tokens = trunk.forward_features(image.to(dtype));
  }
  if (!with_grad) trunk.train(was_training);
  return tokens;
}

std::vector<int64_t> decoder_prompt(const text::Tokenizer& tokenizer, const std::string& question) {
  if (question.empty()) return {tokenizer.cls_id()};
  std::vector<int64_t> ids{tokenizer.cls_id()};
  for (const int64_t id : tokenizer.tokenize_to_ids(question))
    ids.push_back(id);
  ids.push_back(tokenizer.sep_id());
  return ids;
}

at::Tensor Generator::memory(const at::Tensor& image) {
  at::NoGradGuard no_grad;
  decoder->eval();
  return decoder->encode_visual(visual_tokens(*clip, image));
}

std::string Generator::generate(const at::Tensor& memory, const GenerateOptions& options,
                                const std::string& question) {
  at::NoGradGuard no_grad;
  decoder->eval();
  DecodeOptions decode_options;
  decode_options.prompt = decoder_prompt(*tokenizer, question);
  decode_options.eos_id = decoder->config().eos_id;
  decode_options.beams = options.beams;
  decode_options.length_penalty = options.length_penalty;
  decode_options.max_new_tokens =
      std::min<int64_t>(options.max_new_tokens,
                        decoder->config().max_length - static_cast<int64_t>(decode_options.prompt.size()));
  if (decode_options.max_new_tokens < 1) {
    throw Error(fmt::format("the question's {} tokens leave no room in the decoder's {} positions",
                            decode_options.prompt.size(), decoder->config().max_length));
  }
  const auto next = [&](const std::vector<std::vector<int64_t>>& prefixes) {
    std::vector<int64_t> flat;
    for (const auto& prefix : prefixes)
      flat.insert(flat.end(), prefix.begin(), prefix.end());
    const auto n = static_cast<int64_t>(prefixes.size());
    const at::Tensor ids = at::tensor(flat, at::kLong).view({n, -1});
    const at::Tensor logits = decoder->forward(ids, memory.expand({n, memory.size(1), memory.size(2)}));
    return at::log_softmax(logits.select(1, ids.size(1) - 1).to(at::kFloat), -1);
  };
  const Decoded decoded = decode(next, decode_options);
  text::DecodeOptions text_options;
  text_options.skip_special_tokens = true;
  return tidy_decoded_text(tokenizer->decode(decoded.tokens, text_options));
}

std::string tidy_decoded_text(const std::string& text) {
  // BERT's basic tokenizer splits on every punctuation character; its decode puts spaces back between them.
  static const std::regex hyphen(R"((\w) - (\w))");
  static const std::regex decimal(R"((\d)\. (\d))");
  static const std::regex open(R"(\( )");
  static const std::regex close(R"( \))");
  std::string out = std::regex_replace(text, hyphen, "$1-$2");
  out = std::regex_replace(out, decimal, "$1.$2");
  out = std::regex_replace(out, open, "(");
  return std::regex_replace(out, close, ")");
}

void save_generator(ReportDecoderImpl& decoder, const std::string& dir, const json& config) {
  create_directories(dir);
  model::save_module(decoder, (fs::path(dir) / "decoder.safetensors").string(), {{"format", "pt"}});
  write_file_atomic((fs::path(dir) / "generator_config.json").string(), config.dump(2) + "\n");
}

Generator load_generator(const std::string& dir) {
  const fs::path config_path = fs::path(dir) / "generator_config.json";
  std::ifstream in(config_path);
  if (!in)
    throw Error(fmt::format("{}: no generator here (train one with `hlip train-gen`)", config_path.string()));
  Generator out;
  out.dir = dir;
  out.config = json::parse(in, nullptr, false);
  if (!out.config.is_object() || !out.config.contains("decoder") || !out.config.contains("hlip_model")) {
    throw Error(fmt::format("{}: not a generator config (needs \"decoder\" and \"hlip_model\")",
                            config_path.string()));
  }
  const DecoderConfig decoder_config =
      DecoderConfig::from_json(out.config.at("decoder"), config_path.string());
  out.hlip_model = out.config.at("hlip_model").get<std::string>();
  if (fs::path(out.hlip_model).is_relative()) out.hlip_model = (fs::path(dir) / out.hlip_model).string();
  out.clip = model::load_model_dir(out.hlip_model);
  out.clip->eval();
  out.tokenizer.emplace(text::Tokenizer::from_pretrained(model::model_dir_tokenizer(out.hlip_model)));
  if (static_cast<int64_t>(out.tokenizer->vocab().size()) != decoder_config.vocab_size) {
    throw Error(fmt::format("{}: the decoder's vocabulary has {} tokens, {}'s tokenizer {}",
                            config_path.string(), decoder_config.vocab_size, out.hlip_model,
                            out.tokenizer->vocab().size()));
  }
  out.decoder = ReportDecoder(decoder_config);
  model::load_module(*out.decoder, (fs::path(dir) / "decoder.safetensors").string());
  out.decoder->eval();
  return out;
}

}  // namespace hlip::gen
