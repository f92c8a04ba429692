#pragma once
// A report generator: an HLIP model's vision tower (frozen or fine-tuned) and a ReportDecoder reading its
// tokens (docs/generation.md). Its folder:
//
//   GEN/generator_config.json   {"decoder": DecoderConfig, "hlip_model": the HLIP model folder, "vision":
//                               "frozen" | "finetuned", "prompt": ..., "training": {...}}
//   GEN/decoder.safetensors     the decoder's weights (CoCa's names, decoder.h)
//   GEN/hlip/                   with a fine-tuned vision tower: the HLIP model folder it belongs to
//   GEN/metrics.jsonl           the training log
//
//   auto generator = hlip::gen::load_generator("runs/gen");
//   at::Tensor memory = generator.memory(image);                    // image [1, N, 1, D, H, W]
//   std::string report = generator.generate(memory, {.beams = 4});

#include <ATen/ATen.h>

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hlip/gen/decode.h"
#include "hlip/gen/decoder.h"
#include "hlip/model/clip.h"
#include "hlip/text/tokenizer.h"

namespace hlip::gen {

// The vision trunk's final tokens of a study, [B, N, 1, D, H, W] -> [B, T, C] (eval mode and no gradient
// unless `with_grad`; the model's mode is left as it was).
at::Tensor visual_tokens(model::HlipClipImpl& clip, const at::Tensor& image, bool with_grad = false);

// What a question-conditioned decoding starts from: [CLS] question-tokens [SEP] (the question's own [SEP]
// separates it from the answer); without a question just [CLS].
std::vector<int64_t> decoder_prompt(const text::Tokenizer& tokenizer, const std::string& question = "");

struct GenerateOptions {
  int64_t beams = 1;
  int64_t max_new_tokens = 96;
  double length_penalty = 1.0;
};

struct Generator {
  std::string dir;
  model::HlipClip clip{nullptr};
  ReportDecoder decoder{nullptr};
  std::optional<text::Tokenizer> tokenizer;
  std::string hlip_model;  // the HLIP model folder the vision tower comes from
  nlohmann::json config;   // generator_config.json

  // Decoder memory of a study image [1, N, 1, D, H, W] -> [1, T, W].
  at::Tensor memory(const at::Tensor& image);
  // The report (or, with a question, the answer) as text, special tokens removed.
  std::string generate(const at::Tensor& memory, const GenerateOptions& options = {},
                       const std::string& question = "");
};

Generator load_generator(const std::string& dir);

// What WordPiece decoding spaces apart, joined again: "extra - axial" -> "extra-axial", "5. 3 cm" -> "5.3
// cm",
// "( 4 )" -> "(4)". Metrics tokenise on alphanumeric runs, so this changes no score, only what is read.
std::string tidy_decoded_text(const std::string& text);

// Writes decoder.safetensors (atomically) and generator_config.json into `dir`.
void save_generator(ReportDecoderImpl& decoder, const std::string& dir, const nlohmann::json& config);

}  // namespace hlip::gen
