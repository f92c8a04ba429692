// AdamW against torch.optim.AdamW, open_clip's parameter groups and learning-rate schedules
// (references from tests/ref/make_optim_ref.py).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"
#include "hlip/train/optim.h"

namespace hlip::train {
namespace {

const std::string kDir = std::string(HLIP_TEST_DATA_DIR) + "/optim";

TEST(AdamW, MatchesTorchOverThreeSteps) {
  const auto ref = io::read_safetensors(kDir + "/adamw.safetensors").tensors;
  const std::vector<std::string> names = {"blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "norm.weight",
                                          "logit_scale"};
  std::vector<NamedParameter> params;
  for (const auto& name : names) {
    at::Tensor p = ref.at("init." + name).clone().requires_grad_(true);
    params.push_back({name, p, !excluded_from_weight_decay(name, p)});
  }
  EXPECT_TRUE(params[0].decay);
  EXPECT_FALSE(params[1].decay);
  EXPECT_FALSE(params[3].decay);
  AdamW optimizer(params, {1e-2, 0.2, 0.9, 0.98, 1e-6});
  for (int step = 0; step < 3; ++step) {
    for (auto& p : params)
      p.tensor.mutable_grad() = ref.at("grad" + std::to_string(step) + "." + p.name);
    optimizer.step();
    for (const auto& p : params) {
      const at::Tensor want = ref.at("after" + std::to_string(step) + "." + p.name);
      EXPECT_TRUE(at::allclose(p.tensor.detach(), want, 1e-6, 1e-7)) << p.name << " step " << step;
    }
  }
}

TEST(AdamW, StateRoundTripsAndIsChecked) {
  at::Tensor w = at::randn({3, 2}).requires_grad_(true);
  at::Tensor b = at::randn({3}).requires_grad_(true);
  std::vector<NamedParameter> params{{"w", w, true}, {"b", b, false}};
  AdamW first(params, {});
  w.mutable_grad() = at::ones_like(w);
  first.step();  // b has no gradient: no state for it
  const auto state = first.state();
  EXPECT_EQ(state.size(), 3u);
  EXPECT_EQ(state.at("w.step").item<int64_t>(), 1);

  at::Tensor w2 = w.detach().clone().requires_grad_(true);
  at::Tensor b2 = b.detach().clone().requires_grad_(true);
  AdamW second({{"w", w2, true}, {"b", b2, false}}, {});
  second.load_state(state);
  w.mutable_grad() = at::full_like(w, 0.5);
  w2.mutable_grad() = at::full_like(w2, 0.5);
  first.step();
  second.step();
  EXPECT_TRUE(w.equal(w2));

  auto bad = state;
  bad["w.exp_avg"] = at::zeros({2, 3});
  EXPECT_THROW(second.load_state(bad), Error);
  bad = state;
  bad["other.exp_avg"] = at::zeros({1});
  EXPECT_THROW(second.load_state(bad), Error);
  bad = state;
  bad.erase("w.step");
  EXPECT_THROW(second.load_state(bad), Error);
}

TEST(ParameterGroups, OpenClipRule) {
  EXPECT_TRUE(excluded_from_weight_decay("logit_scale", at::zeros({})));
  EXPECT_TRUE(excluded_from_weight_decay("logit_bias", at::zeros({})));
  EXPECT_TRUE(excluded_from_weight_decay("visual.trunk.blocks.0.norm1.weight", at::zeros({4})));
  EXPECT_TRUE(excluded_from_weight_decay("text.proj.bias", at::zeros({4})));
  EXPECT_FALSE(excluded_from_weight_decay("visual.trunk.blocks.0.attn.qkv.weight", at::zeros({12, 4})));
  EXPECT_FALSE(excluded_from_weight_decay("visual.trunk.cls_token", at::zeros({1, 1, 4})));

  torch::nn::Linear linear(4, 3);
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({3}));
  torch::nn::Module module;
  module.register_module("fc", linear);
  module.register_module("ln", norm);
  linear->bias.requires_grad_(false);
  const auto params = named_trainable_parameters(module);
  ASSERT_EQ(params.size(), 3u);  // the frozen bias is left out
  EXPECT_EQ(params[0].name, "fc.weight");
  EXPECT_TRUE(params[0].decay);
  EXPECT_FALSE(params[1].decay);  // ln.weight
}

TEST(ClipGradNorm, ScalesToTheMaximum) {
  at::Tensor a = at::zeros({2}).requires_grad_(true);
  a.mutable_grad() = at::tensor({3.0f, 4.0f});
  const std::vector<NamedParameter> params{{"a", a, true}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(params, 1.0), 5.0);
  EXPECT_NEAR(a.grad().norm().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(clip_grad_norm(params, 10.0), 1.0, 1e-6);  // under the maximum: unchanged
  EXPECT_NEAR(a.grad().norm().item<double>(), 1.0, 1e-6);
}

TEST(Schedules, MatchOpenClip) {
  std::ifstream in(kDir + "/schedules.json");
  const auto ref = nlohmann::json::parse(in);
  ScheduleOptions options;
  options.base_lr = ref["base_lr"];
  options.warmup_steps = ref["warmup"];
  options.total_steps = ref["steps"];
  options.cooldown_steps = ref["cooldown_steps"];
  options.lr_cooldown_end = ref["lr_cooldown_end"];
  options.cooldown_power = ref["cooldown_power"];
  for (const char* name : {"cosine", "const", "const-cooldown"}) {
    options.schedule = parse_schedule(name);
    EXPECT_EQ(to_string(options.schedule), name);
    for (int64_t step = 0; step < options.total_steps; ++step) {
      EXPECT_NEAR(learning_rate(options, step), ref[name][static_cast<size_t>(step)].get<double>(), 1e-12)
          << name << " step " << step;
    }
  }
  EXPECT_THROW(parse_schedule("linear"), UsageError);
}

}  // namespace
}  // namespace hlip::train
