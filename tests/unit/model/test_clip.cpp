// HlipClip, the open_clip CLIP wrapper (spec sections 5, 7, 9): state-dict keys against appendix A, the whole
// forward against tests/ref/hlip_clip_ref.py (vision + text + logits + losses), model configs and model
// folders.

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/clip.h"
#include "hlip/model/losses.h"
#include "hlip/model/state_dict.h"
#include "hlip/model/vision_config.h"
#include "temp_dir.h"
#include "test_vision_support.h"

namespace hlip::model {
namespace {

using testing::all_close;

// The text and logit lines of the spec's appendix A.2 and A.3 key lists, copied verbatim.
const char* const kTinyClsScanStudyTextKeys = R"(
text.transformer.embeddings.word_embeddings.weight                  [64, 32]
text.transformer.embeddings.position_embeddings.weight              [24, 32]
text.transformer.embeddings.token_type_embeddings.weight            [2, 32]
text.transformer.embeddings.LayerNorm.weight                        [32]
text.transformer.embeddings.LayerNorm.bias                          [32]
text.transformer.encoder.layer.0.attention.self.query.weight        [32, 32]
text.transformer.encoder.layer.0.attention.self.query.bias          [32]
text.transformer.encoder.layer.0.attention.self.key.weight          [32, 32]
text.transformer.encoder.layer.0.attention.self.key.bias            [32]
text.transformer.encoder.layer.0.attention.self.value.weight        [32, 32]
text.transformer.encoder.layer.0.attention.self.value.bias          [32]
text.transformer.encoder.layer.0.attention.output.dense.weight      [32, 32]
text.transformer.encoder.layer.0.attention.output.dense.bias        [32]
text.transformer.encoder.layer.0.attention.output.LayerNorm.weight  [32]
text.transformer.encoder.layer.0.attention.output.LayerNorm.bias    [32]
text.transformer.encoder.layer.0.intermediate.dense.weight          [64, 32]
text.transformer.encoder.layer.0.intermediate.dense.bias            [64]
text.transformer.encoder.layer.0.output.dense.weight                [32, 64]
text.transformer.encoder.layer.0.output.dense.bias                  [32]
text.transformer.encoder.layer.0.output.LayerNorm.weight            [32]
text.transformer.encoder.layer.0.output.LayerNorm.bias              [32]
text.transformer.encoder.layer.1.attention.self.query.weight        [32, 32]
text.transformer.encoder.layer.1.attention.self.query.bias          [32]
text.transformer.encoder.layer.1.attention.self.key.weight          [32, 32]
text.transformer.encoder.layer.1.attention.self.key.bias            [32]
text.transformer.encoder.layer.1.attention.self.value.weight        [32, 32]
text.transformer.encoder.layer.1.attention.self.value.bias          [32]
text.transformer.encoder.layer.1.attention.output.dense.weight      [32, 32]
text.transformer.encoder.layer.1.attention.output.dense.bias        [32]
text.transformer.encoder.layer.1.attention.output.LayerNorm.weight  [32]
text.transformer.encoder.layer.1.attention.output.LayerNorm.bias    [32]
text.transformer.encoder.layer.1.intermediate.dense.weight          [64, 32]
text.transformer.encoder.layer.1.intermediate.dense.bias            [64]
text.transformer.encoder.layer.1.output.dense.weight                [32, 64]
text.transformer.encoder.layer.1.output.dense.bias                  [32]
text.transformer.encoder.layer.1.output.LayerNorm.weight            [32]
text.transformer.encoder.layer.1.output.LayerNorm.bias              [32]
text.proj.weight                                                    [24, 32]
logit_scale                                                         []
)";

const char* const kTinyDinoTxtTextKeys = R"(
text.transformer.embeddings.word_embeddings.weight                  [97, 48]
text.transformer.embeddings.position_embeddings.weight              [32, 48]
text.transformer.embeddings.token_type_embeddings.weight            [2, 48]
text.transformer.embeddings.LayerNorm.weight                        [48]
text.transformer.embeddings.LayerNorm.bias                          [48]
text.transformer.encoder.layer.0.attention.self.query.weight        [48, 48]
text.transformer.encoder.layer.0.attention.self.query.bias          [48]
text.transformer.encoder.layer.0.attention.self.key.weight          [48, 48]
text.transformer.encoder.layer.0.attention.self.key.bias            [48]
text.transformer.encoder.layer.0.attention.self.value.weight        [48, 48]
text.transformer.encoder.layer.0.attention.self.value.bias          [48]
text.transformer.encoder.layer.0.attention.output.dense.weight      [48, 48]
text.transformer.encoder.layer.0.attention.output.dense.bias        [48]
text.transformer.encoder.layer.0.attention.output.LayerNorm.weight  [48]
text.transformer.encoder.layer.0.attention.output.LayerNorm.bias    [48]
text.transformer.encoder.layer.0.intermediate.dense.weight          [96, 48]
text.transformer.encoder.layer.0.intermediate.dense.bias            [96]
text.transformer.encoder.layer.0.output.dense.weight                [48, 96]
text.transformer.encoder.layer.0.output.dense.bias                  [48]
text.transformer.encoder.layer.0.output.LayerNorm.weight            [48]
text.transformer.encoder.layer.0.output.LayerNorm.bias              [48]
text.transformer.encoder.layer.1.attention.self.query.weight        [48, 48]
text.transformer.encoder.layer.1.attention.self.query.bias          [48]
text.transformer.encoder.layer.1.attention.self.key.weight          [48, 48]
text.transformer.encoder.layer.1.attention.self.key.bias            [48]
text.transformer.encoder.layer.1.attention.self.value.weight        [48, 48]
text.transformer.encoder.layer.1.attention.self.value.bias          [48]
text.transformer.encoder.layer.1.attention.output.dense.weight      [48, 48]
text.transformer.encoder.layer.1.attention.output.dense.bias        [48]
text.transformer.encoder.layer.1.attention.output.LayerNorm.weight  [48]
text.transformer.encoder.layer.1.attention.output.LayerNorm.bias    [48]
text.transformer.encoder.layer.1.intermediate.dense.weight          [96, 48]
text.transformer.encoder.layer.1.intermediate.dense.bias            [96]
text.transformer.encoder.layer.1.output.dense.weight                [48, 96]
text.transformer.encoder.layer.1.output.dense.bias                  [48]
text.transformer.encoder.layer.1.output.LayerNorm.weight            [48]
text.transformer.encoder.layer.1.output.LayerNorm.bias              [48]
text.proj.weight                                                    [32, 48]
logit_scale                                                         []
logit_bias                                                          []
)";

constexpr double kAtol = 2e-5;
constexpr double kRtol = 1e-4;

const std::vector<std::string> kCases = {"tiny-cls-scanstudy", "tiny-dinotxt-slicescanstudy-seqpos",
                                         "micro-slicescan-cls-b2", "micro-study-dinotxt-resample",
                                         "micro-rope-scanstudy"};

std::string data_path(const std::string& relative) {
  return std::string(HLIP_TEST_DATA_DIR) + "/" + relative;
}

std::map<std::string, at::Tensor> read(const std::string& relative) {
  return io::read_safetensors(data_path(relative)).tensors;
}

// A reference case's whole state: the vision case's weights plus the clip case's text and logit weights.
std::map<std::string, at::Tensor> case_state(const std::string& name) {
  std::map<std::string, at::Tensor> state = read("vision/" + name + "/model.safetensors");
  for (auto& [key, tensor] : read("clip/" + name + "/text.safetensors"))
    state.emplace(key, tensor);
  return state;
}

ClipConfig case_config(const std::string& name) {
  return read_clip_config(data_path("clip/" + name + "/open_clip_config.json"));
}

HlipClip load_case(const std::string& name) {
  HlipClip model(case_config(name));
  const LoadReport report = load_state_dict(*model, case_state(name));  // strict
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.summary();
  model->eval();
  return model;
}

// "name [d0, d1]" lines -> name -> shape.
std::map<std::string, std::vector<int64_t>> parse_key_list(const char* text) {
  std::map<std::string, std::vector<int64_t>> keys;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string name, shape_text;
    fields >> name;
    std::getline(fields, shape_text);
    std::vector<int64_t> shape;
    for (char& c : shape_text) {
      if (c == '[' || c == ']' || c == ',') c = ' ';
    }
    std::istringstream dims(shape_text);
    for (int64_t d; dims >> d;)
      shape.push_back(d);
    keys[name] = shape;
  }
  return keys;
}

void expect_keys(const HlipClip& model, const char* appendix, int64_t tensors, int64_t values) {
  const auto state = named_state(*model);
  int64_t total = 0;
  for (const auto& [key, tensor] : state)
    total += tensor.numel();
  EXPECT_EQ(static_cast<int64_t>(state.size()), tensors);
  EXPECT_EQ(total, values);
  const auto expected = parse_key_list(appendix);
  size_t non_visual = 0;
  for (const auto& [key, tensor] : state) {
    if (key.rfind("visual.", 0) == 0) continue;
    ++non_visual;
    const auto it = expected.find(key);
    ASSERT_NE(it, expected.end()) << key << " is not in appendix A";
    EXPECT_EQ(tensor.sizes().vec(), it->second) << key;
  }
  EXPECT_EQ(non_visual, expected.size());
}

TEST(ClipKeys, TinyConfigsMatchAppendixA) {
  expect_keys(HlipClip(case_config("tiny-cls-scanstudy")), kTinyClsScanStudyTextKeys, 94, 498305);
  expect_keys(HlipClip(case_config("tiny-dinotxt-slicescanstudy-seqpos")), kTinyDinoTxtTextKeys, 133, 506714);
}

TEST(ClipKeys, PublishedViTBCounts) {
  // Appendix A.1: the 2026 dual ViT-B with E = 768 has 352 tensors and 198,103,298 values; v1 (section 7)
  // has sequential_posemb instead of reg_token and logit_bias: 351.
  ClipConfig dual = clip_config_by_name("clip_vit_base_scan_study_dualdinotxt1568");
  dual.embed_dim = dual.vision.embed_dim = 768;
  {
    const auto state = named_state(*HlipClip(dual));
    int64_t values = 0;
    for (const auto& [key, tensor] : state)
      values += tensor.numel();
    EXPECT_EQ(state.size(), 352u);
    EXPECT_EQ(values, 198103298);
    EXPECT_EQ(state.at("visual.head.proj.weight").sizes(), at::IntArrayRef({768, 1536}));
    EXPECT_EQ(state.at("logit_bias").dim(), 0);
  }
  const auto v1 = named_state(*HlipClip(clip_config_by_name("vit_base_multiscan_h2_token1176")));
  EXPECT_EQ(v1.size(), 351u);
  EXPECT_EQ(v1.count("visual.trunk.reg_token") + v1.count("logit_bias"), 0u);
  EXPECT_EQ(v1.at("visual.trunk.spatial_posemb").sizes(), at::IntArrayRef({1, 6, 14, 14, 768}));
  EXPECT_EQ(v1.at("visual.trunk.sequential_posemb").sizes(), at::IntArrayRef({1, 40, 768}));
  EXPECT_EQ(v1.at("visual.trunk.patch_embed.proj.weight").sizes(), at::IntArrayRef({768, 1, 8, 16, 16}));
  EXPECT_EQ(v1.at("visual.head.proj.weight").sizes(), at::IntArrayRef({512, 768}));
  EXPECT_EQ(v1.at("text.proj.weight").sizes(), at::IntArrayRef({512, 768}));
}

class ClipReference : public ::testing::TestWithParam<std::string> {};

// Every output the reference holds (vision trace, image features, text tower, embeddings, logits, alt.*)
// from forward_outputs, i.e. what `hlip forward` writes.
TEST_P(ClipReference, ForwardOutputsMatchReference) {
  const std::string name = GetParam();
  HlipClip model = load_case(name);
  const auto outputs = forward_outputs(*model, read("clip/" + name + "/input_study.safetensors"));
  int compared = 0;
  for (const std::string& file : std::vector<std::string>{"vision/" + name + "/expected.safetensors",
                                                          "clip/" + name + "/expected.safetensors"}) {
    for (const auto& [key, expected] : read(file)) {
      if (key.rfind("loss.", 0) == 0) continue;
      const auto it = outputs.find(key);
      ASSERT_NE(it, outputs.end()) << key;
      EXPECT_TRUE(all_close(it->second, expected, kAtol, kRtol)) << name << " " << key;
      ++compared;
    }
  }
  EXPECT_GE(compared, 12);  // 6 vision outputs + 4 text + image_embeds + logits_per_image at least
  EXPECT_EQ(outputs.count("logits_report"),
            static_cast<size_t>(model->logit_bias.defined() && outputs.at("image_embeds").size(1) == 2));
}

// The loss checks of each case (spec section 9): CLIP and SigLIP on row 0, dual on both rows.
TEST_P(ClipReference, LossesMatchReference) {
  const std::string name = GetParam();
  const ClipConfig config = case_config(name);
  const auto e = read("clip/" + name + "/expected.safetensors");
  const at::Tensor image = e.at("loss.image_embeds"), sentence = e.at("loss.text_sentence");
  const at::Tensor scale = at::full({}, config.init_logit_scale).exp();
  EXPECT_TRUE(all_close(clip_loss(image.select(1, 0), sentence, scale), e.at("loss.clip"), 1e-5, 1e-5));
  EXPECT_TRUE(all_close(siglip_loss(image.select(1, 0), sentence, at::full({}, 10.0), at::full({}, -10.0)),
                        e.at("loss.siglip"), 1e-5, 1e-5));
  if (e.count("loss.dual")) {
    const HlipLoss dual =
        hlip_loss(image, sentence, e.at("loss.text_report"), scale, at::full({}, *config.init_logit_bias));
    EXPECT_TRUE(all_close(dual.total, e.at("loss.dual"), 1e-5, 1e-5));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ClipReference, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string id = info.param;
                           for (char& c : id) {
                             if (c == '-') c = '_';
                           }
                           return id;
                         });

TEST(Clip, EncodersNormaliseAndForwardBundlesTheScales) {
  HlipClip model = load_case("tiny-dinotxt-slicescanstudy-seqpos");
  const auto input = read("clip/tiny-dinotxt-slicescanstudy-seqpos/input_study.safetensors");
  at::NoGradGuard no_grad;
  const at::Tensor image = input.at("image").to(at::kFloat), ids = input.at("input_ids");
  const ClipOutput out = model->forward(image, ids);
  EXPECT_EQ(out.image_features.sizes(), at::IntArrayRef({1, 2, 32}));
  EXPECT_EQ(out.text_features.sizes(), at::IntArrayRef({3, 32}));
  EXPECT_TRUE(all_close(out.image_features.norm(2, {-1}), at::ones({1, 2}), 1e-6, 0));
  EXPECT_NEAR(out.logit_scale.item<double>(), std::exp(2.1), 1e-5);
  EXPECT_NEAR(out.logit_bias.item<double>(), 1.7, 1e-6);  // raw
  const at::Tensor raw = model->encode_image(image, /*normalize=*/false);
  EXPECT_TRUE(all_close(l2_normalize(raw), out.image_features, 1e-6, 0));
  // An explicit mask equal to (ids != [PAD]) changes nothing; masking a real token does.
  const at::Tensor mask = input.at("attention_mask");
  EXPECT_TRUE(all_close(model->encode_text(ids, mask), out.text_features, 1e-6, 0));
  at::Tensor shorter = mask.clone();
  shorter[0][5] = 0;
  EXPECT_GT(testing::max_abs_diff(model->encode_text(ids, shorter)[0], out.text_features[0]), 1e-3);
  EXPECT_THROW(model->encode_image(image.squeeze(2)), Error);
  EXPECT_THROW(model->encode_text(ids, mask.narrow(1, 0, 3)), Error);
}

void expect_same_config(const ClipConfig& a, const ClipConfig& b, const std::string& what) {
  EXPECT_EQ(a.to_json(), b.to_json()) << what;
}

TEST(ClipConfigs, EveryEmbeddedConfigRoundTrips) {
  const std::vector<std::string> names = known_model_configs();
  for (const std::string expected :
       {"hlip-tiny", "vit_base_multiscan_h2_token1176", "vit_base_multiscan_h3_token1176",
        "vit_base_singlescan_h2_token2744", "ablate_seqposemb_clip_vit_base_multiscan_h2_dinotxt1568",
        "ablate_seqposemb_clip_vit_base_multiscan_h2_dualdinotxt1568",
        "clip_vit_base_scan_study_dualdinotxt1568", "clip_vit_base_slice_scan_dualdinotxt2744",
        "clip_vit_large_scan_study_dualdinotxt1568", "clip_vit_large_slice_scan_study_dualdinotxt1568"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  for (const std::string& name : names) {
    const ClipConfig config = clip_config_by_name(name);
    expect_same_config(ClipConfig::from_json(config.to_json()), config, name);
    EXPECT_EQ(config.vision.embed_dim, config.embed_dim) << name;
  }
}

// The JSON files and the knob table of vision_options_for() (spec section 1) were written separately.
TEST(ClipConfigs, PublishedConfigsAgreeWithTheSpecTable) {
  const std::vector<std::string> published = published_vision_models();
  int checked = 0;
  for (const std::string& name : known_model_configs()) {
    const ClipConfig config = clip_config_by_name(name);
    if (std::find(published.begin(), published.end(), config.timm_model_name) == published.end()) continue;
    ++checked;
    VisionOptions expected = vision_options_for(config.timm_model_name);
    VisionOptions actual = config.vision;
    EXPECT_EQ(vision_options_to_json(actual), vision_options_to_json(expected)) << name;
    const bool ct = name.find("2744") != std::string::npos;
    EXPECT_EQ(config.text.context_length, ct ? 512 : 256) << name;
    EXPECT_EQ(config.text.bert.hidden_size, 768) << name;
    EXPECT_EQ(config.init_logit_scale, kInitLogitScale) << name;
    // Every dual model needs logit_bias for its report loss.
    EXPECT_EQ(config.init_logit_bias.has_value(), config.vision.pooling == Pooling::kDual) << name;
  }
  EXPECT_EQ(checked, 8);
  // A vision model name finds the config of its CLIP model.
  EXPECT_EQ(clip_config_by_name("vit_base_scan_study_dualdinotxt1568").timm_model_name,
            "vit_base_scan_study_dualdinotxt1568");
  EXPECT_NE(test::error_message([] { clip_config_by_name("vit_huge"); }).find("hlip-tiny"),
            std::string::npos);
}

TEST(ClipConfigs, TinyDemoConfigRunsOnDemoScans) {
  const ClipConfig config = clip_config_by_name("hlip-tiny");
  EXPECT_EQ(config.vision.grid_size(), (std::array<int64_t, 3>{4, 4, 4}));
  HlipClip model(config);
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor ids = at::randint(5, 100, {4, 32}, at::kLong);
  for (const auto& shape :
       {std::vector<int64_t>{2, 3, 1, 16, 64, 64}, std::vector<int64_t>{1, 2, 1, 24, 96, 96}}) {
    const ClipOutput out = model->forward(at::randn(shape), ids);
    EXPECT_EQ(out.image_features.sizes(), at::IntArrayRef({shape[0], 2, 64}));
    EXPECT_EQ(out.text_features.sizes(), at::IntArrayRef({4, 64}));
  }
}

TEST(ClipConfigs, ReadsBothFileShapesAndNamesBadKeys) {
  test::TempDir dir;
  // The reference case's open_clip_config.json wraps the model config in "model_cfg".
  const ClipConfig wrapped = case_config("tiny-dinotxt-slicescanstudy-seqpos");
  EXPECT_EQ(wrapped.embed_dim, 32);
  EXPECT_EQ(wrapped.text.bert.vocab_size, 97);
  EXPECT_EQ(wrapped.text.context_length, 20);
  EXPECT_EQ(*wrapped.init_logit_bias, 1.7);
  const std::string bare = dir.file("bare.json");
  { std::ofstream(bare) << wrapped.to_json().dump(); }
  expect_same_config(read_clip_config(bare), wrapped, "bare");
  expect_same_config(resolve_clip_config(bare), wrapped, "resolve");

  const auto error_for = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json cfg = wrapped.to_json();
    edit(cfg);
    const std::string path = dir.file("edited.json");
    { std::ofstream(path) << cfg.dump(); }
    return test::error_message([&] { read_clip_config(path); });
  };
  EXPECT_NE(error_for([](auto& c) { c["vision_cfg"]["timm_pool"] = "map"; }).find("vision_cfg.timm_pool"),
            std::string::npos);
  EXPECT_NE(error_for([](auto& c) { c["text_cfg"]["hf_proj_type"] = "mlp"; }).find("text_cfg.hf_proj_type"),
            std::string::npos);
  EXPECT_NE(error_for([](auto& c) { c["text_cfg"]["hf_pooler_type"] = "max_pooler"; }).find("max_pooler"),
            std::string::npos);
  {
    nlohmann::json cfg = wrapped.to_json();
    cfg["text_cfg"]["hf_pooler_type"] = "mean_pooler";
    { std::ofstream(dir.file("mean.json")) << cfg.dump(); }
    EXPECT_TRUE(read_clip_config(dir.file("mean.json")).text_options().mean_pool);
    EXPECT_FALSE(wrapped.text_options().mean_pool);
  }
  EXPECT_NE(error_for([](auto& c) { c.erase("text_cfg"); }).find("text_cfg"), std::string::npos);
  EXPECT_NE(error_for([](auto& c) { c["text_cfg"]["context_length"] = 64; }).find("context_length"),
            std::string::npos);
  EXPECT_NE(error_for([](auto& c) { c["text_cfg"]["hf_config"]["hidden_act"] = "relu"; }).find("hidden_act"),
            std::string::npos);
  const std::string message = error_for([](auto& c) { c["embed_dim"] = "wide"; });
  EXPECT_NE(message.find("edited.json"), std::string::npos) << message;
  EXPECT_NE(message.find("embed_dim"), std::string::npos) << message;
  { std::ofstream(dir.file("broken.json")) << "{\"embed_dim\": "; }
  EXPECT_NE(test::error_message([&] { read_clip_config(dir.file("broken.json")); }).find("broken.json"),
            std::string::npos);
}

// A small random model: hlip-tiny with a 200-token vocabulary.
ClipConfig small_config() {
  ClipConfig config = clip_config_by_name("hlip-tiny");
  config.text.bert.vocab_size = 200;
  return config;
}

std::map<std::string, at::Tensor> demo_inputs() {
  at::manual_seed(3);
  return {{"image", at::randn({2, 2, 1, 16, 64, 64})},
          {"input_ids", at::randint(5, 200, {4, 24}, at::kLong)}};
}

void expect_same_state(const HlipClip& a, const HlipClip& b) {
  const auto sa = named_state(*a), sb = named_state(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [key, tensor] : sa)
    EXPECT_TRUE(at::equal(tensor, sb.at(key))) << key;
}

TEST(ModelDir, SaveLoadRoundTripWithTokenizer) {
  test::TempDir dir;
  const std::string tokenizer = dir.file("tok");
  std::filesystem::create_directories(tokenizer);
  {
    std::ofstream(tokenizer + "/vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nbrain\n";
    std::ofstream(tokenizer + "/tokenizer_config.json") << "{\"do_lower_case\": true}\n";
  }
  const ClipConfig config = small_config();
  HlipClip model(config);
  SaveModelDirOptions options;
  options.tokenizer = tokenizer;
  options.metadata = {{"step", "12"}};
  const std::string out = dir.file("model");
  save_model_dir(model, config, out, options);
  EXPECT_EQ(io::read_safetensors_metadata(out + "/model.safetensors").at("step"), "12");
  EXPECT_EQ(model_dir_tokenizer(out), out + "/tokenizer");
  EXPECT_TRUE(std::filesystem::exists(out + "/tokenizer/tokenizer_config.json"));
  EXPECT_EQ(model_dir_tokenizer(dir.file("tok")), "");

  LoadReport report;
  HlipClip loaded = load_model_dir(out, {}, &report);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.summary();
  expect_same_config(loaded->config(), config, "saved config");
  expect_same_state(model, loaded);
  model->eval();
  loaded->eval();
  const auto a = forward_outputs(*model, demo_inputs()), b = forward_outputs(*loaded, demo_inputs());
  for (const char* key : {"image_embeds", "text_embeds", "logits_per_image", "logits_report"})
    EXPECT_TRUE(at::equal(a.at(key), b.at(key))) << key;
  // No spurious files (temporaries) are left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(out))
    ++files;
  EXPECT_EQ(files, 3);
}

TEST(ModelDir, ShardsPrefixesAndAdaptation) {
  test::TempDir dir;
  ClipConfig config = small_config();
  config.embed_dim = config.vision.embed_dim = 32;  // the weights say E = 32
  config.init_logit_bias.reset();                   // ... and have no logit_bias
  HlipClip model(config);
  const auto state = named_state(*model);
  const std::string folder = dir.file("sharded");
  std::filesystem::create_directories(folder);
  // Two shards plus Hugging Face's index, every key prefixed by DDP's "module.".
  std::map<std::string, at::Tensor> vision, rest;
  nlohmann::json map = nlohmann::json::object();
  for (const auto& [key, tensor] : state) {
    const bool is_vision = key.rfind("visual.", 0) == 0;
    (is_vision ? vision : rest)["module." + key] = tensor;
    map["module." + key] =
        is_vision ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::write_safetensors(folder + "/model-00001-of-00002.safetensors", vision);
  io::write_safetensors(folder + "/model-00002-of-00002.safetensors", rest);
  { std::ofstream(folder + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump(); }
  // No open_clip_config.json: the config is named; hlip-tiny says E = 64 and has logit_bias.
  ModelDirOptions options;
  options.config = "hlip-tiny";
  EXPECT_NE(test::error_message([&] { load_model_dir(folder); }).find("open_clip_config.json"),
            std::string::npos);
  options.adapt_to_weights = false;
  EXPECT_NE(test::error_message([&] { load_model_dir(folder, options); }).find("shape"), std::string::npos);
  options.adapt_to_weights = true;
  ClipConfig vocab_200 = small_config();
  { std::ofstream(dir.file("tiny200.json")) << vocab_200.to_json().dump(); }
  options.config = dir.file("tiny200.json");
  HlipClip loaded = load_model_dir(folder, options);
  EXPECT_EQ(loaded->config().embed_dim, 32);
  EXPECT_FALSE(loaded->logit_bias.defined());
  expect_same_state(model, loaded);

  // A stale index: a key mapped to the wrong shard.
  map["module.logit_scale"] = "model-00001-of-00002.safetensors";
  { std::ofstream(folder + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump(); }
  EXPECT_NE(test::error_message([&] { load_model_dir(folder, options); }).find("logit_scale"),
            std::string::npos);
  map["module.logit_scale"] = "../outside.safetensors";
  { std::ofstream(folder + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump(); }
  EXPECT_NE(test::error_message([&] { load_model_dir(folder, options); }).find("inside the folder"),
            std::string::npos);
}

TEST(ModelDir, StrictLoadingListsMissingKeys) {
  test::TempDir dir;
  const ClipConfig config = small_config();
  HlipClip model(config);
  save_model_dir(model, config, dir.file("m"));
  auto state = io::read_safetensors(dir.file("m/model.safetensors")).tensors;
  state.erase("text.proj.weight");
  state["text.transformer.embeddings.position_ids"] = at::arange(128).unsqueeze(0);  // ignored
  io::write_safetensors(dir.file("m/model.safetensors"), state);
  const std::string message = test::error_message([&] { load_model_dir(dir.file("m")); });
  EXPECT_NE(message.find("text.proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find(dir.file("m")), std::string::npos) << message;
  ModelDirOptions lenient;
  lenient.strict = false;
  LoadReport report;
  load_model_dir(dir.file("m"), lenient, &report);
  EXPECT_EQ(report.missing, std::vector<std::string>{"text.proj.weight"});
  EXPECT_EQ(report.ignored, std::vector<std::string>{"text.transformer.embeddings.position_ids"});

  std::filesystem::remove(dir.file("m/model.safetensors"));
  { std::ofstream(dir.file("m/pytorch_model.bin")) << "pickle"; }
  EXPECT_NE(test::error_message([&] { load_model_dir(dir.file("m")); }).find("safetensors"),
            std::string::npos);
  EXPECT_NE(test::error_message([&] { load_model_dir(dir.file("none")); }).find("not a model folder"),
            std::string::npos);
}

TEST(ClipTraining, GradientsReachEveryTrainableParameter) {
  HlipClip model(small_config());
  model->train();
  const auto inputs = demo_inputs();
  const ClipOutput out = model->forward(inputs.at("image"), inputs.at("input_ids"));
  const auto [sentences, reports] = split_text_features(out.text_features, 2);
  const HlipLoss loss = hlip_loss(out.image_features, sentences, reports, out.logit_scale, out.logit_bias);
  EXPECT_TRUE(std::isfinite(loss.total.item<double>()));
  loss.total.backward();
  for (const auto& item : model->named_parameters()) {
    if (!item.value().requires_grad()) {
      EXPECT_NE(item.key().find("posemb"), std::string::npos) << item.key() << " is frozen";
      continue;
    }
    const at::Tensor grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(at::isfinite(grad).all().item<bool>()) << item.key();
    // Only [PAD]'s and unused tokens' embedding rows, and the unused token type, may get no gradient.
    if (item.key().find("embeddings") == std::string::npos) {
      EXPECT_GT(grad.abs().sum().item<double>(), 0) << item.key();
    }
  }
}

TEST(ClipTraining, CheckpointingGivesTheSameGradients) {
  HlipClip model(small_config());
  model->eval();  // no drop path or dropout: both runs compute the same function
  const auto inputs = demo_inputs();
  const auto gradients = [&] {
    model->zero_grad();
    const ClipOutput out = model->forward(inputs.at("image"), inputs.at("input_ids"));
    const auto [sentences, reports] = split_text_features(out.text_features, 2);
    hlip_loss(out.image_features, sentences, reports, out.logit_scale, out.logit_bias).total.backward();
    std::map<std::string, at::Tensor> grads;
    for (const auto& item : model->named_parameters()) {
      if (item.value().grad().defined()) grads[item.key()] = item.value().grad().clone();
    }
    return grads;
  };
  const auto plain = gradients();
  model->set_grad_checkpointing(true);
  EXPECT_TRUE(model->config().vision.grad_checkpointing);
  const auto checkpointed = gradients();
  ASSERT_EQ(plain.size(), checkpointed.size());
  for (const auto& [key, grad] : plain)
    EXPECT_TRUE(all_close(checkpointed.at(key), grad, 1e-6, 1e-4)) << key;
}

TEST(ClipTraining, LockTextAndClampLogitScale) {
  HlipClip model(small_config());
  model->lock_text();
  for (const auto& item : model->text->transformer->named_parameters())
    EXPECT_FALSE(item.value().requires_grad()) << item.key();
  EXPECT_TRUE(model->text->proj->weight.requires_grad());
  EXPECT_TRUE(model->visual->trunk->cls_token.requires_grad());

  {
    at::NoGradGuard no_grad;
    model->logit_scale.fill_(5.0);
    model->logit_bias.fill_(-1.0);
  }
  model->clamp_logit_scale();
  EXPECT_DOUBLE_EQ(model->logit_scale.item<double>(), static_cast<float>(kMaxLogitScale));
  EXPECT_EQ(model->logit_bias.item<double>(), 0.0);  // the dual report temperature is clamped too

  // A single-row model with a SigLIP bias: the bias is not a temperature and is left alone.
  ClipConfig siglip = small_config();
  siglip.vision.reg_tokens = 0;
  siglip.vision.pooling = Pooling::kDinoTxt;
  siglip.init_logit_bias = -10.0;
  HlipClip single(siglip);
  single->clamp_logit_scale();
  EXPECT_EQ(single->logit_bias.item<double>(), -10.0);
}

}  // namespace
}  // namespace hlip::model
