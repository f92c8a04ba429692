#include "hlip/model/text.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/core/torch_compat.h"
#include "hlip/model/layer_norm.h"

namespace hlip::model {
namespace {

torch::nn::LayerNorm make_layer_norm(int64_t width, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}

// Attention of q, k, v [T, heads, L, hd] with an additive key mask [T, 1, 1, L].
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& mask, double dropout) {
#if HLIP_TORCH_HAS_FUSED_SDPA
  return at::scaled_dot_product_attention(q, k, v, mask, dropout);
#else
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, mask, dropout));
#endif
}

// Hugging Face freezes by parameter name: a parameter of a LayerNorm follows `freeze_layer_norm`.
void freeze(torch::nn::Module& module, bool freeze_layer_norm) {
  for (auto& item : module.named_parameters()) {
    const bool is_layer_norm = item.key().find("LayerNorm") != std::string::npos;
    item.value().set_requires_grad(is_layer_norm ? !freeze_layer_norm : false);
  }
}

// The positions a text attends to: those of `attention_mask` that are not 0, or without a mask those that
// are not [PAD]. The encoder masks the others and the mean pooler leaves them out.
at::Tensor attended_positions(const at::Tensor& input_ids, const at::Tensor& attention_mask, int64_t pad) {
  return attention_mask.defined() ? attention_mask.ne(0) : input_ids.ne(pad);
}

}  // namespace

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertOptions& options) {
  word_embeddings =
      register_module("word_embeddings", torch::nn::Embedding(options.vocab_size, options.hidden_size));
  position_embeddings = register_module(
      "position_embeddings", torch::nn::Embedding(options.max_position_embeddings, options.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings",
                                          torch::nn::Embedding(options.type_vocab_size, options.hidden_size));
  layer_norm = register_module("LayerNorm", make_layer_norm(options.hidden_size, options.layer_norm_eps));
  dropout = register_module("dropout", torch::nn::Dropout(options.hidden_dropout_prob));
}

at::Tensor BertEmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids) {
  const int64_t length = input_ids.size(1);
  const at::Tensor positions = at::arange(length, input_ids.options().dtype(at::kLong));
  at::Tensor x = word_embeddings(input_ids) + position_embeddings(positions).unsqueeze(0);
  x = token_type_ids.defined() ? x + token_type_embeddings(token_type_ids)
                               : x + token_type_embeddings->weight[0];
  return dropout(layer_norm_fp32(layer_norm, x));
}

DenseImpl::DenseImpl(int64_t in_features, int64_t out_features, bool with_layer_norm, double layer_norm_eps) {
  dense = register_module("dense", torch::nn::Linear(in_features, out_features));
  if (with_layer_norm)
    layer_norm = register_module("LayerNorm", make_layer_norm(out_features, layer_norm_eps));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(int64_t hidden_size) {
  query = register_module("query", torch::nn::Linear(hidden_size, hidden_size));
  key = register_module("key", torch::nn::Linear(hidden_size, hidden_size));
  value = register_module("value", torch::nn::Linear(hidden_size, hidden_size));
}

BertAttentionImpl::BertAttentionImpl(const BertOptions& options) {
  self = register_module("self", BertSelfAttention(options.hidden_size));
  output = register_module("output",
                           Dense(options.hidden_size, options.hidden_size, true, options.layer_norm_eps));
}

BertLayerImpl::BertLayerImpl(const BertOptions& options) : options_(options) {
  if (options.num_attention_heads <= 0 || options.hidden_size % options.num_attention_heads != 0) {
    throw Error(fmt::format("text tower: hidden_size {} is not divisible by num_attention_heads {}",
                            options.hidden_size, options.num_attention_heads));
  }
  attention = register_module("attention", BertAttention(options));
  intermediate =
      register_module("intermediate", Dense(options.hidden_size, options.intermediate_size, false, 0));
  output = register_module(
      "output", Dense(options.intermediate_size, options.hidden_size, true, options.layer_norm_eps));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.hidden_dropout_prob));
}

at::Tensor BertLayerImpl::forward(const at::Tensor& x, const at::Tensor& additive_mask) {
  const int64_t texts = x.size(0), length = x.size(1), hidden = x.size(2);
  const int64_t heads = options_.num_attention_heads, head_dim = hidden / heads;
  auto split_heads = [&](const at::Tensor& t) {
    return t.view({texts, length, heads, head_dim}).transpose(1, 2);
  };
  auto self = attention->self;
  const double attention_dropout = is_training() ? options_.attention_probs_dropout_prob : 0.0;
  const at::Tensor context = masked_attention(split_heads(self->query(x)), split_heads(self->key(x)),
                                              split_heads(self->value(x)), additive_mask, attention_dropout)
                                 .transpose(1, 2)
                                 .reshape({texts, length, hidden});
  auto attention_out = attention->output;
  const at::Tensor a =
      layer_norm_fp32(attention_out->layer_norm, dropout_(attention_out->dense(context)) + x);
  const at::Tensor mlp = output->dense(at::gelu(intermediate->dense(a)));
  return layer_norm_fp32(output->layer_norm, dropout_(mlp) + a);
}

BertEncoderImpl::BertEncoderImpl(const BertOptions& options) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_hidden_layers; ++i)
    layer->push_back(BertLayer(options));
}

BertModelImpl::BertModelImpl(const BertOptions& options) : options_(options) {
  embeddings = register_module("embeddings", BertEmbeddings(options));
  encoder = register_module("encoder", BertEncoder(options));
}

at::Tensor BertModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  if (input_ids.dim() != 2 || input_ids.scalar_type() != at::kLong) {
    throw Error(fmt::format("text tower: input_ids must be int64 [texts, length], got {} {}",
                            c10::toString(input_ids.scalar_type()), c10::str(input_ids.sizes())));
  }
  if (input_ids.size(1) > options_.max_position_embeddings) {
    throw Error(fmt::format("text tower: input length {} exceeds max_position_embeddings {}",
                            input_ids.size(1), options_.max_position_embeddings));
  }
  if (attention_mask.defined() && attention_mask.sizes() != input_ids.sizes()) {
    throw Error(fmt::format("text tower: attention_mask {} does not match input_ids {}",
                            c10::str(attention_mask.sizes()), c10::str(input_ids.sizes())));
  }
  at::Tensor x = embeddings(input_ids);
  // Hugging Face's extended mask: (1 - mask) * lowest, broadcast over heads and query rows.
  const at::Tensor padding =
      attended_positions(input_ids, attention_mask, options_.pad_token_id).logical_not().to(x.scalar_type());
  const double lowest = x.scalar_type() == at::kDouble ? std::numeric_limits<double>::lowest()
                        : x.scalar_type() == at::kBFloat16
                            ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                            : static_cast<double>(std::numeric_limits<float>::lowest());
  const at::Tensor additive_mask = (padding * lowest).view({input_ids.size(0), 1, 1, input_ids.size(1)});
  for (const auto& module : *encoder->layer)
    x = module->as<BertLayer>()->forward(x, additive_mask);
  return x;
}

TextTowerImpl::TextTowerImpl(TextTowerOptions options) : options_(std::move(options)) {
  transformer = register_module("transformer", BertModel(options_.bert));
  proj = register_module(
      "proj",
      torch::nn::Linear(torch::nn::LinearOptions(options_.bert.hidden_size, options_.embed_dim).bias(false)));
  reset_parameters();
}

TextOutput TextTowerImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  TextOutput out;
  out.last_hidden_state = transformer(input_ids, attention_mask);
  if (options_.mean_pool) {
    const at::Tensor mask = attended_positions(input_ids, attention_mask, options_.bert.pad_token_id)
                                .to(out.last_hidden_state.scalar_type())
                                .unsqueeze(-1);
    out.pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1);
  } else {
    out.pooled = out.last_hidden_state.select(1, 0);
  }
  out.features = proj(out.pooled);
  return out;
}

void TextTowerImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  const double std = options_.bert.initializer_range;
  for (auto& item : transformer->named_parameters()) {
    at::Tensor& p = item.value();
    const std::string& name = item.key();
    const bool layer_norm = name.find("LayerNorm") != std::string::npos;
    if (layer_norm) {
      p.fill_(name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 ? 1.0 : 0.0);
    } else if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) {
      p.zero_();
    } else {
      p.normal_(0.0, std);
    }
  }
  const int64_t pad = options_.bert.pad_token_id;
  if (pad >= 0 && pad < options_.bert.vocab_size)
    transformer->embeddings->word_embeddings->weight[pad].zero_();
  proj->reset_parameters();
}

void TextTowerImpl::lock(int64_t unlocked_layers, bool freeze_layer_norm) {
  const int64_t num_layers = static_cast<int64_t>(transformer->encoder->layer->size());
  if (unlocked_layers < 0 || unlocked_layers > num_layers) {
    throw Error(fmt::format("lock_text: unlocked_layers {} is outside [0, {}]", unlocked_layers, num_layers));
  }
  if (unlocked_layers == 0) {
    freeze(*transformer, freeze_layer_norm);
    return;
  }
  // open_clip freezes [embeddings, layer 0, ..., layer n-1] minus the last `unlocked_layers` of that list.
  freeze(*transformer->embeddings, freeze_layer_norm);
  for (int64_t i = 0; i < num_layers - unlocked_layers; ++i) {
    freeze(*transformer->encoder->layer[i], freeze_layer_norm);
  }
}

}  // namespace hlip::model
