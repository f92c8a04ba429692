#pragma once
// HLIP's text tower: open_clip's `HFTextEncoder` around a Hugging Face `BertModel` (BiomedBERT), CLS pooling
// of the last hidden state and a linear projection into the joint space (spec section 4). Registered names
// equal the open_clip keys under `text.`: `transformer.embeddings.word_embeddings.weight`,
// `transformer.encoder.layer.{i}.attention.self.query.weight`, ..., `proj.weight`.
//
//   hlip::model::TextTower text(hlip::model::TextTowerOptions{});     // BiomedBERT-base, E = 512
//   auto out = text->forward(input_ids);                                // [T, L] int64, 0 = [PAD]
//   at::Tensor features = out.features;                                 // [T, E], not normalised

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

namespace hlip::model {

// Hugging Face `BertConfig` fields, BiomedBERT-base values by default.
struct BertOptions {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double initializer_range = 0.02;  // std of the normal init of weights and embeddings
  int64_t pad_token_id = 0;
};

struct TextTowerOptions {
  BertOptions bert;
  int64_t embed_dim = 512;  // E, the joint embedding width (`text.proj.weight` is [E, hidden])
  int64_t context_length = 256;
  // open_clip's MeanPooler (`hf_pooler_type = "mean_pooler"`): the attention-masked mean of the last hidden
  // state. Off: ClsLastHiddenStatePooler, the [CLS] row, as HLIP.
  bool mean_pool = false;
};

class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertOptions& options);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids = {});

  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Embedding position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // registered as "LayerNorm", as Hugging Face names it
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

// A linear layer registered as "dense", optionally followed by a LayerNorm registered as "LayerNorm":
// Hugging Face's BertIntermediate, BertSelfOutput and BertOutput parameter layouts.
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in_features, int64_t out_features, bool with_layer_norm, double layer_norm_eps);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // null without a LayerNorm
};
TORCH_MODULE(Dense);

class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(int64_t hidden_size);
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(BertSelfAttention);

class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertOptions& options);
  BertSelfAttention self{nullptr};  // "self"
  Dense output{nullptr};            // "output": dense + LayerNorm
};
TORCH_MODULE(BertAttention);

// One post-norm encoder layer: self-attention, add & norm, GELU MLP, add & norm.
class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertOptions& options);
  // x [T, L, H]; additive_mask [T, 1, 1, L]: 0 for real keys, the dtype's lowest value for padding.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& additive_mask);

  BertAttention attention{nullptr};
  Dense intermediate{nullptr};  // dense only
  Dense output{nullptr};        // dense + LayerNorm

 private:
  BertOptions options_;
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(BertLayer);

class BertEncoderImpl : public torch::nn::Module {
 public:
  explicit BertEncoderImpl(const BertOptions& options);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

class BertModelImpl : public torch::nn::Module {
 public:
  explicit BertModelImpl(const BertOptions& options);
  // input_ids [T, L] int64 -> last hidden state [T, L, H]. attention_mask [T, L] (nonzero = attend); when
  // undefined it is (ids != pad_token_id), as open_clip derives it. Token types are all 0.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {});

  const BertOptions& options() const { return options_; }
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};

 private:
  BertOptions options_;
};
TORCH_MODULE(BertModel);

struct TextOutput {
  at::Tensor last_hidden_state;  // [T, L, H]
  at::Tensor pooled;             // [T, H], the [CLS] row of the last hidden state
  at::Tensor features;           // [T, E], pooled @ proj.weightᵀ (not normalised)
};

class TextTowerImpl : public torch::nn::Module {
 public:
  explicit TextTowerImpl(TextTowerOptions options);
  TextOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {});

  // Hugging Face's BERT init (weights and embeddings N(0, initializer_range), the [PAD] embedding row and
  // biases 0, LayerNorms 1 and 0) and PyTorch's default init of the projection, as open_clip builds it.
  void reset_parameters();

  // open_clip's `lock_text`: freeze the transformer except its last `unlocked_layers` encoder layers
  // (and the LayerNorms of the frozen ones when `freeze_layer_norm` is false); the projection stays
  // trainable.
  void lock(int64_t unlocked_layers = 0, bool freeze_layer_norm = true);

  const TextTowerOptions& options() const { return options_; }
  BertModel transformer{nullptr};
  torch::nn::Linear proj{nullptr};

 private:
  TextTowerOptions options_;
};
TORCH_MODULE(TextTower);

}  // namespace hlip::model
