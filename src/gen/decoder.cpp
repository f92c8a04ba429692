#include "hlip/gen/decoder.h"

#include <fmt/format.h>
#include <torch/nn/functional/dropout.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>

#include "hlip/core/error.h"

namespace hlip::gen {

nlohmann::json DecoderConfig::to_json() const {
  return {{"vocab_size", vocab_size},
          {"width", width},
          {"layers", layers},
          {"heads", heads},
          {"mlp_ratio", mlp_ratio},
          {"max_length", max_length},
          {"visual_width", visual_width},
          {"dropout", dropout},
          {"bos_id", bos_id},
          {"eos_id", eos_id},
          {"pad_id", pad_id}};
}

DecoderConfig DecoderConfig::from_json(const nlohmann::json& json, const std::string& origin) {
  DecoderConfig c;
  const auto integer = [&](const char* key, int64_t& out, int64_t minimum) {
    if (!json.contains(key)) throw Error(fmt::format("{}: decoder config has no \"{}\"", origin, key));
    if (!json.at(key).is_number_integer() || json.at(key).get<int64_t>() < minimum) {
      throw Error(fmt::format("{}: decoder config \"{}\" = {} must be an integer of at least {}", origin, key,
                              json.at(key).dump(), minimum));
    }
    out = json.at(key).get<int64_t>();
  };
  integer("vocab_size", c.vocab_size, 1);
  integer("width", c.width, 1);
  integer("layers", c.layers, 1);
  integer("heads", c.heads, 1);
  integer("max_length", c.max_length, 2);
  integer("visual_width", c.visual_width, 1);
  integer("bos_id", c.bos_id, 0);
  integer("eos_id", c.eos_id, 0);
  integer("pad_id", c.pad_id, 0);
  c.mlp_ratio = json.value("mlp_ratio", 4.0);
  c.dropout = json.value("dropout", 0.0);
  if (c.width % c.heads != 0) {
    throw Error(
        fmt::format("{}: decoder width {} is not divisible by its {} heads", origin, c.width, c.heads));
  }
  for (const int64_t id : {c.bos_id, c.eos_id, c.pad_id}) {
    if (id >= c.vocab_size)
      throw Error(fmt::format("{}: decoder special token id {} is outside the vocabulary ({})", origin, id,
                              c.vocab_size));
  }
  return c;
}

DecoderAttentionImpl::DecoderAttentionImpl(int64_t width, int64_t heads) : heads_(heads) {
  in_proj_weight = register_parameter("in_proj_weight", at::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", at::zeros({3 * width}));
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  torch::nn::init::zeros_(out_proj->bias);
}

at::Tensor DecoderAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key_value,
                                         const at::Tensor& mask) {
  const int64_t width = query.size(-1);
  const auto w = in_proj_weight.chunk(3, 0);
  const auto b = in_proj_bias.chunk(3, 0);
  const auto heads = [&](const at::Tensor& x) {  // [B, L, W] -> [B, heads, L, hd]
    return x.view({x.size(0), x.size(1), heads_, width / heads_}).transpose(1, 2);
  };
  const at::Tensor q = heads(at::linear(query, w[0], b[0]));
  const at::Tensor k = heads(at::linear(key_value, w[1], b[1]));
  const at::Tensor v = heads(at::linear(key_value, w[2], b[2]));
  at::Tensor scores =
      at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(width / heads_)));
  if (mask.defined()) scores = scores + mask;
  const at::Tensor out = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape(query.sizes());
  return out_proj(out);
}

DecoderMlpImpl::DecoderMlpImpl(int64_t width, int64_t hidden) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, hidden));
  c_proj = register_module("c_proj", torch::nn::Linear(hidden, width));
}

at::Tensor DecoderMlpImpl::forward(const at::Tensor& x) {
  return c_proj(at::gelu(c_fc(x)));
}

DecoderBlockImpl::DecoderBlockImpl(int64_t width, int64_t heads, int64_t hidden, bool cross, double dropout)
    : dropout_(dropout) {
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  if (cross) ln_1_kv = register_module("ln_1_kv", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  attn = register_module("attn", DecoderAttention(width, heads));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  mlp = register_module("mlp", DecoderMlp(width, hidden));
}

at::Tensor DecoderBlockImpl::forward(const at::Tensor& x, const at::Tensor& memory, const at::Tensor& mask) {
  const auto drop = [&](const at::Tensor& t) {
    return dropout_ > 0 && is_training() ? at::dropout(t, dropout_, /*train=*/true) : t;
  };
  const at::Tensor h = ln_1(x);
  at::Tensor y = x + drop(attn(h, ln_1_kv ? ln_1_kv(memory) : h, mask));
  return y + drop(mlp(ln_2(y)));
}

TextDecoderImpl::TextDecoderImpl(const DecoderConfig& config) {
  token_embedding = register_module("token_embedding", torch::nn::Embedding(config.vocab_size, config.width));
  positional_embedding =
      register_parameter("positional_embedding", at::empty({config.max_length, config.width}));
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  cross_attn = register_module("cross_attn", torch::nn::ModuleList());
  const auto hidden = static_cast<int64_t>(std::llround(config.width * config.mlp_ratio));
  for (int64_t i = 0; i < config.layers; ++i) {
    resblocks->push_back(DecoderBlock(config.width, config.heads, hidden, false, config.dropout));
    cross_attn->push_back(DecoderBlock(config.width, config.heads, hidden, true, config.dropout));
  }
  ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.width})));
  text_projection = register_parameter("text_projection", at::empty({config.width, config.vocab_size}));
  // open_clip's CoCa initialisation: normal embeddings (std 0.02 tokens, 0.01 positions), projection
  // width^-0.5.
  torch::nn::init::normal_(token_embedding->weight, 0.0, 0.02);
  torch::nn::init::normal_(positional_embedding, 0.0, 0.01);
  torch::nn::init::normal_(text_projection, 0.0, std::pow(static_cast<double>(config.width), -0.5));
}

at::Tensor TextDecoderImpl::forward(const at::Tensor& ids, const at::Tensor& memory,
                                    const at::Tensor& memory_mask) {
  const int64_t length = ids.size(1);
  if (length > positional_embedding.size(0)) {
    throw Error(fmt::format("decoder input of {} tokens is longer than its {} positions", length,
                            positional_embedding.size(0)));
  }
  at::Tensor x = token_embedding(ids) + positional_embedding.slice(0, 0, length);
  const float minus_inf = -std::numeric_limits<float>::infinity();
  const at::Tensor causal =
      at::full({length, length}, minus_inf, x.options()).triu(1);  // a token sees itself and the ones before
  at::Tensor cross_mask;
  if (memory_mask.defined()) {
    cross_mask = at::zeros({memory_mask.size(0), 1, 1, memory_mask.size(1)}, x.options())
                     .masked_fill(memory_mask.logical_not().view({memory_mask.size(0), 1, 1, -1}), minus_inf);
  }
  for (size_t i = 0; i < resblocks->size(); ++i) {
    x = resblocks->at<DecoderBlockImpl>(i).forward(x, at::Tensor(), causal);
    x = cross_attn->at<DecoderBlockImpl>(i).forward(x, memory, cross_mask);
  }
  return at::matmul(ln_final(x), text_projection);
}

ReportDecoderImpl::ReportDecoderImpl(DecoderConfig config) : config_(std::move(config)) {
  if (config_.vocab_size < 1 || config_.visual_width < 1) {
    throw Error(fmt::format("decoder: vocab_size {} and visual_width {} must be positive", config_.vocab_size,
                            config_.visual_width));
  }
  visual_proj = register_module("visual_proj", torch::nn::Linear(config_.visual_width, config_.width));
  ln_visual =
      register_module("ln_visual", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config_.width})));
  text_decoder = register_module("text_decoder", TextDecoder(config_));
}

at::Tensor ReportDecoderImpl::encode_visual(const at::Tensor& visual_tokens) {
  return ln_visual(visual_proj(visual_tokens.to(visual_proj->weight.scalar_type())));
}

at::Tensor ReportDecoderImpl::forward(const at::Tensor& ids, const at::Tensor& memory,
                                      const at::Tensor& memory_mask) {
  return text_decoder(ids, memory, memory_mask);
}

}  // namespace hlip::gen
