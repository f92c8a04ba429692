// Named state and loading by name, on a small module shaped like HLIP's (nested blocks in a ModuleList,
// frozen buffers, an integer buffer, a bias-free projection).

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/state_dict.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include "temp_dir.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using hlip::model::load_module;
using hlip::model::load_state_dict;
using hlip::model::LoadOptions;
using hlip::model::named_state;
using hlip::model::save_module;
using hlip::test::error_message;

namespace {

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(int64_t dim) {
    fc1 = register_module("fc1", torch::nn::Linear(dim, 2 * dim));
    fc2 = register_module("fc2", torch::nn::Linear(2 * dim, dim));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
  explicit BlockImpl(int64_t dim) {
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    mlp = register_module("mlp", Mlp(dim));
  }
  torch::nn::LayerNorm norm1{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

struct TinyImpl : torch::nn::Module {
  explicit TinyImpl(int64_t dim = 4, int64_t depth = 2) {
    cls_token = register_parameter("cls_token", at::randn({1, 1, dim}));
    spatial_posemb = register_buffer("spatial_posemb", at::randn({1, 2, dim}));
    position_ids = register_buffer("position_ids", at::arange(6, at::kLong));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < depth; ++i)
      blocks->push_back(Block(dim));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(dim, 3).bias(false)));
  }
  at::Tensor cls_token, spatial_posemb, position_ids;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Tiny);

const std::vector<std::string> kTinyKeys = {"blocks.0.mlp.fc1.bias",
                                            "blocks.0.mlp.fc1.weight",
                                            "blocks.0.mlp.fc2.bias",
                                            "blocks.0.mlp.fc2.weight",
                                            "blocks.0.norm1.bias",
                                            "blocks.0.norm1.weight",
                                            "blocks.1.mlp.fc1.bias",
                                            "blocks.1.mlp.fc1.weight",
                                            "blocks.1.mlp.fc2.bias",
                                            "blocks.1.mlp.fc2.weight",
                                            "blocks.1.norm1.bias",
                                            "blocks.1.norm1.weight",
                                            "cls_token",
                                            "head.weight",
                                            "norm.bias",
                                            "norm.weight",
                                            "position_ids",
                                            "spatial_posemb"};

std::vector<std::string> keys_of(const std::map<std::string, at::Tensor>& state) {
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : state)
    keys.push_back(key);
  return keys;
}

// Deep copies, to compare a module's state before and after.
std::map<std::string, at::Tensor> snapshot(const torch::nn::Module& module) {
  auto state = named_state(module);
  for (auto& [key, tensor] : state)
    tensor = tensor.clone();
  return state;
}

void expect_state_equal(const std::map<std::string, at::Tensor>& actual,
                        const std::map<std::string, at::Tensor>& expected) {
  ASSERT_EQ(keys_of(actual), keys_of(expected));
  for (const auto& [key, tensor] : expected) {
    EXPECT_EQ(actual.at(key).scalar_type(), tensor.scalar_type()) << key;
    EXPECT_TRUE(at::equal(actual.at(key), tensor)) << key;
  }
}

// Fresh values with the module's own shapes and dtypes, unlike any initialisation.
std::map<std::string, at::Tensor> random_state_like(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> state;
  for (const auto& [key, tensor] : named_state(module)) {
    state[key] = at::isFloatingType(tensor.scalar_type())
                     ? at::randn(tensor.sizes(), tensor.options()) + 10
                     : at::randint(100, tensor.sizes(), tensor.options());
  }
  return state;
}

TEST(StateDict, NamedStateUsesDottedLibTorchNames) {
  Tiny tiny;
  auto state = named_state(*tiny);
  EXPECT_EQ(keys_of(state), kTinyKeys);
  // Shares storage with the module, without autograd history.
  EXPECT_EQ(state.at("blocks.1.mlp.fc2.weight").data_ptr(),
            tiny->blocks[1]->as<Block>()->mlp->fc2->weight.data_ptr());
  EXPECT_EQ(state.at("position_ids").data_ptr(), tiny->position_ids.data_ptr());
  EXPECT_FALSE(state.at("cls_token").requires_grad());
  EXPECT_TRUE(tiny->cls_token.requires_grad());
}

TEST(StateDict, StrictLoadCopiesEveryKeyAndKeepsParametersTrainable) {
  at::manual_seed(1);
  Tiny tiny;
  auto source = random_state_like(*tiny);
  auto report = load_state_dict(*tiny, source);
  EXPECT_EQ(report.loaded, kTinyKeys);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_TRUE(report.converted.empty());
  expect_state_equal(snapshot(*tiny), source);
  EXPECT_TRUE(tiny->cls_token.requires_grad());
  EXPECT_TRUE(tiny->cls_token.is_leaf());
  EXPECT_TRUE(tiny->head->weight.is_leaf());
  // Copied, not aliased: changing the source afterwards leaves the module alone.
  source.at("norm.weight").fill_(-1);
  EXPECT_FALSE(at::equal(tiny->norm->weight, source.at("norm.weight")));
}

TEST(StateDict, StrictLoadListsMissingAndUnexpectedKeysAndChangesNothing) {
  Tiny tiny;
  auto before = snapshot(*tiny);
  auto source = random_state_like(*tiny);
  source.erase("blocks.1.norm1.bias");
  source.erase("cls_token");
  source["logit_bias"] = at::zeros({});
  std::string message = error_message([&] { load_state_dict(*tiny, source); });
  EXPECT_NE(message.find("2 missing key(s)"), std::string::npos) << message;
  EXPECT_NE(message.find("blocks.1.norm1.bias, cls_token"), std::string::npos) << message;
  EXPECT_NE(message.find("1 unexpected key(s)"), std::string::npos) << message;
  EXPECT_NE(message.find("logit_bias"), std::string::npos) << message;
  expect_state_equal(snapshot(*tiny), before);
}

TEST(StateDict, NonStrictLoadReportsMissingAndUnexpectedKeys) {
  Tiny tiny;
  auto before = snapshot(*tiny);
  auto source = random_state_like(*tiny);
  source.erase("head.weight");
  source["text.transformer.pooler.dense.weight"] = at::zeros({2, 2});
  LoadOptions options;
  options.strict = false;
  auto report = load_state_dict(*tiny, source, options);
  EXPECT_EQ(report.missing, std::vector<std::string>{"head.weight"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"text.transformer.pooler.dense.weight"});
  EXPECT_EQ(report.loaded.size(), kTinyKeys.size() - 1);
  EXPECT_TRUE(at::equal(tiny->head->weight, before.at("head.weight")));
  EXPECT_TRUE(at::equal(tiny->norm->bias, source.at("norm.bias")));
  const std::string summary = report.summary();
  EXPECT_NE(summary.find("loaded 17 tensors; 1 missing (head.weight); 1 unexpected"), std::string::npos)
      << summary;
}

TEST(StateDict, ShapeMismatchNamesKeyAndBothShapesEvenWhenNotStrict) {
  Tiny tiny;
  auto before = snapshot(*tiny);
  auto source = random_state_like(*tiny);
  source["blocks.0.mlp.fc1.weight"] = at::zeros({4, 8});  // transposed
  source["cls_token"] = at::zeros({1, 2, 4});
  LoadOptions options;
  options.strict = false;
  std::string message = error_message([&] { load_state_dict(*tiny, source, options); });
  EXPECT_NE(message.find("2 shape mismatches"), std::string::npos) << message;
  EXPECT_NE(message.find("\"blocks.0.mlp.fc1.weight\": checkpoint shape [4, 8] vs module shape [8, 4]"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("\"cls_token\": checkpoint shape [1, 2, 4] vs module shape [1, 1, 4]"),
            std::string::npos)
      << message;
  expect_state_equal(snapshot(*tiny), before);
}

TEST(StateDict, ConvertsDtypeToTheModules) {
  Tiny tiny;
  auto source = random_state_like(*tiny);
  source["norm.weight"] = source["norm.weight"].to(at::kBFloat16);
  source["head.weight"] = source["head.weight"].to(at::kDouble);
  source["position_ids"] = source["position_ids"].to(at::kInt);
  auto report = load_state_dict(*tiny, source);
  std::vector<std::string> converted = report.converted;
  std::sort(converted.begin(), converted.end());
  EXPECT_EQ(converted, (std::vector<std::string>{"head.weight", "norm.weight", "position_ids"}));
  EXPECT_EQ(tiny->norm->weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(tiny->norm->weight, source["norm.weight"].to(at::kFloat)));
  EXPECT_TRUE(at::equal(tiny->head->weight, source["head.weight"].to(at::kFloat)));
  EXPECT_EQ(tiny->position_ids.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(tiny->position_ids, source["position_ids"].to(at::kLong)));
}

TEST(StateDict, SourcePrefixLoadsASubmoduleFromAWholeModelCheckpoint) {
  Tiny tiny;
  std::map<std::string, at::Tensor> checkpoint;
  auto trunk = random_state_like(*tiny);
  for (const auto& [key, tensor] : trunk)
    checkpoint["visual.trunk." + key] = tensor;
  checkpoint["text.proj.weight"] = at::zeros({3, 3});
  checkpoint["logit_scale"] = at::zeros({});
  checkpoint["visual.trunk.reg_token"] = at::zeros({1, 1, 4});
  LoadOptions options;
  options.source_prefix = "visual.trunk.";
  options.strict = false;
  auto report = load_state_dict(*tiny, checkpoint, options);
  EXPECT_EQ(report.loaded, kTinyKeys);
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"reg_token"});  // keys outside the prefix are skipped
  expect_state_equal(snapshot(*tiny), trunk);

  options.strict = true;
  std::string message = error_message([&] { load_state_dict(*tiny, checkpoint, options); });
  EXPECT_NE(message.find("source prefix \"visual.trunk.\""), std::string::npos) << message;
  EXPECT_NE(message.find("reg_token"), std::string::npos) << message;
}

TEST(StateDict, IgnorePatternsSilenceKnownExtraAndAbsentKeys) {
  Tiny tiny;
  auto source = random_state_like(*tiny);
  source.erase("position_ids");
  source.erase("blocks.1.mlp.fc2.bias");
  source["text.transformer.pooler.dense.weight"] = at::zeros({2, 2});
  source["text.transformer.pooler.dense.bias"] = at::zeros({2});
  LoadOptions options;
  options.ignore = {"position_ids", "text.transformer.pooler.*", "blocks.*.mlp.fc2.bias"};
  auto report = load_state_dict(*tiny, source, options);
  std::vector<std::string> ignored = report.ignored;
  std::sort(ignored.begin(), ignored.end());
  EXPECT_EQ(ignored, (std::vector<std::string>{"blocks.1.mlp.fc2.bias", "position_ids",
                                               "text.transformer.pooler.dense.bias",
                                               "text.transformer.pooler.dense.weight"}));
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());

  // A pattern matches whole keys only.
  options.ignore = {"text.*.dense", "position_id", "blocks.*.fc2.bias"};
  std::string message = error_message([&] { load_state_dict(*tiny, source, options); });
  EXPECT_NE(message.find("1 missing key(s) (in the module, not in the checkpoint): position_ids;"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("2 unexpected key(s)"), std::string::npos) << message;
}

TEST(StateDict, LongKeyListsAreShortenedInMessages) {
  Tiny tiny(4, 6);  // 42 keys
  LoadOptions options;
  options.source_prefix = "model.";  // matches nothing: every key is missing
  std::string message = error_message([&] { load_state_dict(*tiny, named_state(*tiny), options); });
  EXPECT_NE(message.find("42 missing key(s)"), std::string::npos) << message;
  EXPECT_NE(message.find("... and 22 more"), std::string::npos) << message;
}

class StateDictFiles : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return temp_.file(name); }
  hlip::test::TempDir temp_{"hlip_state_dict_test"};
  const fs::path& dir_ = temp_.path();
};

TEST_F(StateDictFiles, SaveAndLoadModuleRoundTrip) {
  at::manual_seed(3);
  Tiny saved;
  save_module(*saved, path("tiny.safetensors"), {{"config", "tiny"}});
  EXPECT_EQ(hlip::io::read_safetensors_metadata(path("tiny.safetensors")).at("config"), "tiny");
  EXPECT_EQ(hlip::io::read_safetensors_index(path("tiny.safetensors")).size(), kTinyKeys.size());

  Tiny loaded;
  auto report = load_module(*loaded, path("tiny.safetensors"));
  EXPECT_EQ(report.loaded, kTinyKeys);
  expect_state_equal(snapshot(*loaded), snapshot(*saved));
}

TEST_F(StateDictFiles, LoadModuleErrorsNameTheFile) {
  Tiny small(4, 2);
  save_module(*small, path("small.safetensors"));
  Tiny deeper(4, 3);
  std::string message = error_message([&] { load_module(*deeper, path("small.safetensors")); });
  EXPECT_EQ(message.rfind(path("small.safetensors") + ": strict load", 0), 0u) << message;
  EXPECT_NE(message.find("blocks.2.mlp.fc1.bias"), std::string::npos) << message;

  Tiny wider(8, 2);
  message = error_message([&] { load_module(*wider, path("small.safetensors")); });
  EXPECT_EQ(message.rfind(path("small.safetensors") + ": ", 0), 0u) << message;
  EXPECT_NE(message.find("\"norm.weight\": checkpoint shape [4] vs module shape [8]"), std::string::npos)
      << message;
}

}  // namespace
