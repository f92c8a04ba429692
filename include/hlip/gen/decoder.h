#pragma once
// A report decoder on HLIP's visual tokens, shaped as open_clip's CoCa text decoder (MultimodalTransformer):
// each layer is a causal self-attention block followed by a cross-attention block whose keys and values are
// the study's visual tokens (the vision trunk's final tokens, projected to the decoder's width), then a
// final LayerNorm and a projection onto the vocabulary. Generation and VQA share it: a VQA answer is decoded
// after the question's tokens (docs/generation.md).
//
//   hlip::gen::DecoderConfig config;  config.vocab_size = tokenizer.vocab().size();  config.visual_width =
//   96; hlip::gen::ReportDecoder decoder(config); at::Tensor memory = decoder->encode_visual(tokens); // [B,
//   T, C] -> [B, T, W] at::Tensor logits = decoder->forward(ids, memory, memory_mask);  // ids [B, L] -> [B,
//   L, V]
//
// Weight names follow CoCa's: text_decoder.token_embedding, .positional_embedding, .resblocks.N.{ln_1, attn
// (in_proj_weight/bias, out_proj), ln_2, mlp.c_fc, mlp.c_proj}, .cross_attn.N.{ln_1, ln_1_kv, attn, ln_2,
// mlp}, .ln_final, .text_projection; and visual_proj, ln_visual for the visual tokens.

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace hlip::gen {

struct DecoderConfig {
  int64_t vocab_size = 0;
  int64_t width = 256;
  int64_t layers = 3;
  int64_t heads = 4;
  double mlp_ratio = 4.0;
  int64_t max_length = 128;  // positions (prompt + generated tokens)
  int64_t visual_width = 0;  // channels of the vision trunk's tokens
  double dropout = 0.1;      // on attention outputs and MLPs in training
  int64_t bos_id = 0;        // the tokenizer's [CLS]
  int64_t eos_id = 0;        // [SEP]
  int64_t pad_id = 0;        // [PAD]

  nlohmann::json to_json() const;
  static DecoderConfig from_json(const nlohmann::json& json, const std::string& origin);
};

// Multi-head attention with nn.MultiheadAttention's packed projection (in_proj_weight [3W, W]).
class DecoderAttentionImpl : public torch::nn::Module {
 public:
  DecoderAttentionImpl(int64_t width, int64_t heads);
  // query [B, L, W], key_value [B, T, W]; mask additive [L, T] or [B, 1, L, T] (−inf where not allowed).
  at::Tensor forward(const at::Tensor& query, const at::Tensor& key_value, const at::Tensor& mask);

  at::Tensor in_proj_weight;
  at::Tensor in_proj_bias;
  torch::nn::Linear out_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(DecoderAttention);

class DecoderMlpImpl : public torch::nn::Module {
 public:
  DecoderMlpImpl(int64_t width, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear c_fc{nullptr};
  torch::nn::Linear c_proj{nullptr};
};
TORCH_MODULE(DecoderMlp);

// Self-attention (resblocks.N) or cross-attention (cross_attn.N, with ln_1_kv) residual block.
class DecoderBlockImpl : public torch::nn::Module {
 public:
  DecoderBlockImpl(int64_t width, int64_t heads, int64_t hidden, bool cross, double dropout);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& memory, const at::Tensor& mask);

  torch::nn::LayerNorm ln_1{nullptr};
  torch::nn::LayerNorm ln_1_kv{nullptr};  // cross-attention only
  DecoderAttention attn{nullptr};
  torch::nn::LayerNorm ln_2{nullptr};
  DecoderMlp mlp{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(DecoderBlock);

class TextDecoderImpl : public torch::nn::Module {
 public:
  explicit TextDecoderImpl(const DecoderConfig& config);
  // ids [B, L] (L ≤ max_length), memory [B, T, W], memory_mask bool [B, T] (true: a real token; undefined:
  // all real) -> logits [B, L, V].
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& memory, const at::Tensor& memory_mask);

  torch::nn::Embedding token_embedding{nullptr};
  at::Tensor positional_embedding;  // [max_length, W]
  torch::nn::ModuleList resblocks{nullptr};
  torch::nn::ModuleList cross_attn{nullptr};
  torch::nn::LayerNorm ln_final{nullptr};
  at::Tensor text_projection;  // [W, V]
};
TORCH_MODULE(TextDecoder);

class ReportDecoderImpl : public torch::nn::Module {
 public:
  explicit ReportDecoderImpl(DecoderConfig config);

  // The vision trunk's tokens [B, T, visual_width] -> decoder memory [B, T, W].
  at::Tensor encode_visual(const at::Tensor& visual_tokens);
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& memory, const at::Tensor& memory_mask = {});
  const DecoderConfig& config() const { return config_; }

  torch::nn::Linear visual_proj{nullptr};
  torch::nn::LayerNorm ln_visual{nullptr};
  TextDecoder text_decoder{nullptr};

 private:
  DecoderConfig config_;
};
TORCH_MODULE(ReportDecoder);

}  // namespace hlip::gen
