#include <gtest/gtest.h>

#include <string>

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/state_dict.h"
#include "hlip/model/text.h"

namespace hlip::model {
namespace {

struct TextCase {
  std::string name;
  int64_t vocab, hidden, layers, heads, intermediate, positions, embed;
};

const TextCase kCases[] = {
    {"tiny-cls-scanstudy", 64, 32, 2, 2, 64, 24, 24},
    {"tiny-dinotxt-slicescanstudy-seqpos", 97, 48, 2, 4, 96, 32, 32},
};

TextTowerOptions options_for(const TextCase& c) {
  TextTowerOptions options;
  options.bert.vocab_size = c.vocab;
  options.bert.hidden_size = c.hidden;
  options.bert.num_hidden_layers = c.layers;
  options.bert.num_attention_heads = c.heads;
  options.bert.intermediate_size = c.intermediate;
  options.bert.max_position_embeddings = c.positions;
  options.embed_dim = c.embed;
  return options;
}

std::string case_path(const std::string& name) {
  return std::string(HLIP_TEST_DATA_DIR) + "/text/" + name + ".safetensors";
}

class TextReference : public ::testing::TestWithParam<TextCase> {};

// The tower loads the reference weights by their open_clip names and reproduces the float64 reference
// outputs.
TEST_P(TextReference, MatchesTheSpecReference) {
  const TextCase& c = GetParam();
  const auto file = io::read_safetensors(case_path(c.name));
  TextTower text(options_for(c));
  text->eval();
  LoadOptions load;
  load.source_prefix = "text.";
  const auto report = load_state_dict(*text, file.tensors, load);
  EXPECT_TRUE(report.missing.empty()) << report.summary();

  const auto out = text->forward(file.tensors.at("input.input_ids"));
  const auto close = [](const at::Tensor& actual, const at::Tensor& expected) {
    return at::allclose(actual, expected, 1e-4, 1e-4);
  };
  EXPECT_TRUE(close(out.last_hidden_state, file.tensors.at("expected.text.last_hidden_state")))
      << (out.last_hidden_state - file.tensors.at("expected.text.last_hidden_state")).abs().max();
  EXPECT_TRUE(close(out.pooled, file.tensors.at("expected.text.pooled")));
  EXPECT_TRUE(close(out.features, file.tensors.at("expected.text_features")))
      << (out.features - file.tensors.at("expected.text_features")).abs().max();
}

INSTANTIATE_TEST_SUITE_P(SpecCases, TextReference, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string name = info.param.name;
  for (char& ch : name) {
    if (ch == '-') ch = '_';
  }
  return name;
});

TEST(TextTower, ParameterNamesAreTheOpenClipKeys) {
  TextTower text(options_for(kCases[0]));
  const auto state = named_state(*text);
  const auto file = io::read_safetensors(case_path(kCases[0].name));
  size_t reference_keys = 0;
  for (const auto& [key, value] : file.tensors) {
    if (key.rfind("text.", 0) != 0) continue;
    ++reference_keys;
    const auto it = state.find(key.substr(5));
    ASSERT_NE(it, state.end()) << key;
    EXPECT_EQ(it->second.sizes(), value.sizes()) << key;
  }
  EXPECT_EQ(state.size(), reference_keys);
  EXPECT_EQ(state.count("transformer.encoder.layer.1.attention.self.query.weight"), 1u);
  EXPECT_EQ(state.count("transformer.embeddings.LayerNorm.weight"), 1u);
  EXPECT_EQ(state.count("proj.bias"), 0u);
}

TEST(TextTower, PaddingDoesNotChangeThePooledOutput) {
  TextTower text(options_for(kCases[0]));
  text->eval();
  const auto short_ids = at::tensor({2, 17, 33, 3}, at::kLong).unsqueeze(0);
  const auto padded_ids = at::cat({short_ids, at::zeros({1, 6}, at::kLong)}, 1);
  EXPECT_TRUE(
      at::allclose(text->forward(short_ids).features, text->forward(padded_ids).features, 1e-5, 1e-5));
}

// open_clip's MeanPooler: the masked mean of the last hidden state, so [PAD] rows change nothing either, and
// the pooled row is not the [CLS] row.
TEST(TextTower, MeanPoolerAveragesTheUnmaskedRows) {
  TextTowerOptions options = options_for(kCases[0]);
  options.mean_pool = true;
  TextTower text(options);
  text->eval();
  const auto short_ids = at::tensor({2, 17, 33, 3}, at::kLong).unsqueeze(0);
  const auto padded_ids = at::cat({short_ids, at::zeros({1, 6}, at::kLong)}, 1);
  const auto out = text->forward(short_ids);
  EXPECT_TRUE(at::allclose(out.pooled, out.last_hidden_state.mean(1), 1e-6, 1e-6));
  EXPECT_FALSE(at::allclose(out.pooled, out.last_hidden_state.select(1, 0), 1e-3, 1e-3));
  const auto padded = text->forward(padded_ids, padded_ids.ne(0).to(at::kLong));
  EXPECT_TRUE(at::allclose(out.features, padded.features, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(text->forward(padded_ids).features, out.features, 1e-5, 1e-5));
}

TEST(TextTower, LockFreezesTheTransformerButNotTheProjection) {
  TextTower text(options_for(kCases[0]));
  text->lock(0, true);
  for (const auto& item : text->named_parameters()) {
    const bool trainable = item.key().rfind("proj.", 0) == 0;
    EXPECT_EQ(item.value().requires_grad(), trainable) << item.key();
  }
}

TEST(TextTower, LockWithUnlockedLayersKeepsTheLastLayersTrainable) {
  TextTower text(options_for(kCases[0]));  // 2 layers
  text->lock(1, false);
  const auto params = text->named_parameters();
  EXPECT_FALSE(params["transformer.embeddings.word_embeddings.weight"].requires_grad());
  EXPECT_TRUE(
      params["transformer.embeddings.LayerNorm.weight"].requires_grad());  // freeze_layer_norm = false
  EXPECT_FALSE(params["transformer.encoder.layer.0.attention.self.query.weight"].requires_grad());
  EXPECT_TRUE(params["transformer.encoder.layer.1.attention.self.query.weight"].requires_grad());
  EXPECT_THROW(text->lock(3), Error);
}

TEST(TextTower, RejectsTooLongInput) {
  TextTower text(options_for(kCases[0]));  // 24 positions
  EXPECT_THROW(text->forward(at::ones({1, 25}, at::kLong)), Error);
  EXPECT_THROW(text->forward(at::ones({1, 5}, at::kInt)), Error);
}

}  // namespace
}  // namespace hlip::model
