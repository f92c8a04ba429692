// Sweep specs: parsing, resolution of arms, deduplication, fine-tuning dependencies, and every error naming
// the file, the key and the value; the analytic costs.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "hlip/ablate/costs.h"
#include "hlip/ablate/runner.h"
#include "hlip/ablate/spec.h"
#include "hlip/core/error.h"

namespace hlip::ablate {
namespace {

using json = nlohmann::json;

const std::string kSeedSpec = std::string(HLIP_TEST_DATA_DIR) + "/../../configs/ablations/hlip-seed.toml";

// A small valid spec; `extra` is appended (more ablations, or keys that break it).
std::string spec_text(const std::string& extra = "", const std::string& base_extra = "") {
  return R"(title = "t"
[base]
model.vision_cfg.hlip.reg_tokens = 0
data.train = ["mri"]
eval.task = "synth-brain-5"
train.batch_size = 4
)" + base_extra +
         R"(
[profile.quick]
steps = 10
[profile.quick.synth]
studies = 40
[profile.big]
seeds = [0, 1]
steps = 100
tokenizer = "/data/tok"
[profile.big.datasets]
mri = "/data/mri"
ct = "/data/ct"

[[ablation]]
name = "dropout"
[[ablation.arm]]
label = "0"
[[ablation.arm]]
label = "0.5"
model.vision_cfg.patch_dropout = 0.5
[[ablation.arm]]
label = "0.75"
model.vision_cfg.patch_dropout = 0.75
)" + extra;
}

SweepPlan plan_of(const std::string& text, const std::string& profile = "quick") {
  return plan_sweep(parse_sweep_spec(text, "sweep.toml"), profile);
}

// The message of the hlip::Error that `text` (or its plan) raises; empty when none.
std::string error_of(const std::string& text, const std::string& profile = "quick") {
  try {
    (void)plan_of(text, profile);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& text, const std::vector<std::string>& parts,
                  const std::string& profile = "quick") {
  const std::string message = error_of(text, profile);
  ASSERT_FALSE(message.empty()) << "no error";
  for (const auto& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "\"" << part << "\" not in: " << message;
}

TEST(AblateSpec, ParsesAndResolvesAChain) {
  const SweepPlan plan = plan_of(spec_text());
  ASSERT_EQ(plan.ablations.size(), 1u);
  const PlannedAblation& ablation = plan.ablations[0];
  EXPECT_EQ(ablation.index, 1);
  EXPECT_EQ(ablation.title, "dropout");  // the name when there is no title
  EXPECT_EQ(ablation.task, "synth-brain-5");
  ASSERT_EQ(ablation.arms.size(), 3u);
  EXPECT_EQ(plan.arms.size(), 3u);
  const Arm& base = plan.arm(ablation.arms[0].second);
  const Arm& high = plan.arm(ablation.arms[2].second);
  EXPECT_EQ(base.changes, json::object());
  EXPECT_EQ(high.changes, json({{"model.vision_cfg.patch_dropout", 0.75}}));
  // Every setting is resolved: the model config in full, the step budget, the default evaluation data.
  EXPECT_EQ(high.config.at("train.max_steps"), 10);
  EXPECT_EQ(high.config.at("data.eval"), "mri");
  EXPECT_EQ(high.config.at("model.vision_cfg.hlip.width"), 96);
  EXPECT_EQ(high.model.at("vision_cfg").at("patch_dropout"), 0.75);
  EXPECT_EQ(high.id, arm_id(high.config));
  EXPECT_EQ(high.id.size(), 10u);
  EXPECT_EQ(plan.profile.seeds, std::vector<uint64_t>{0});
  EXPECT_EQ(plan.metric, "macro_auc");
  EXPECT_TRUE(plan.higher_is_better);
  EXPECT_EQ(plan.split, "test");
}

TEST(AblateSpec, IdsAreStableHashesOfTheConfiguration) {
  EXPECT_EQ(arm_id(json{{"a", 1}}), arm_id(json::parse(R"({"a": 1})")));
  EXPECT_NE(arm_id(json{{"a", 1}}), arm_id(json{{"a", 2}}));
  EXPECT_EQ(arm_id(json{{"a", 1}}), "9c3e82dd6f");  // FNV-1a 64 of {"a":1}: must never change
  EXPECT_EQ(plan_of(spec_text()).arms[1].id, plan_of(spec_text()).arms[1].id);
}

TEST(AblateSpec, IdenticalArmsAcrossAblationsRunOnce) {
  // A second ablation whose first arm is the first one's 0.5 arm, reached another way.
  const SweepPlan plan = plan_of(spec_text(R"(
[[ablation]]
name = "seqpos"
settings.model.vision_cfg.patch_dropout = 0.5
[[ablation.arm]]
label = "none"
[[ablation.arm]]
label = "4"
model.vision_cfg.hlip.max_num_scans = 4
)"));
  ASSERT_EQ(plan.ablations.size(), 2u);
  EXPECT_EQ(plan.ablations[1].arms[0].second, plan.ablations[0].arms[1].second);
  EXPECT_EQ(plan.arms.size(), 4u);  // 3 + 1 new
}

TEST(AblateSpec, SettingAKeyToItsBaseValueIsTheBaseArm) {
  const SweepPlan plan = plan_of(spec_text(R"(
[[ablation]]
name = "explicit"
[[ablation.arm]]
label = "zero"
model.vision_cfg.patch_dropout = 0.0
train.batch_size = 4
[[ablation.arm]]
label = "half"
model.vision_cfg.patch_dropout = 0.5
)"));
  EXPECT_EQ(plan.ablations[1].arms[0].second, plan.ablations[0].arms[0].second);
  EXPECT_EQ(plan.ablations[1].arms[1].second, plan.ablations[0].arms[1].second);
  EXPECT_EQ(plan.arms.size(), 3u);
}

TEST(AblateSpec, ProfilesChangeTheBaseAndArms) {
  const std::string text = spec_text(R"(
[[ablation]]
name = "patch"
[[ablation.arm]]
label = "4"
[[ablation.arm]]
label = "2"
model.vision_cfg.hlip.patch_size = [2, 16, 16]
profile.big.model.vision_cfg.hlip.patch_size = [8, 16, 16]
)");
  const SweepPlan quick = plan_of(text, "quick");
  const SweepPlan big = plan_of(text, "big");
  EXPECT_EQ(quick.arm(quick.ablations[1].arms[1].second).config.at("model.vision_cfg.hlip.patch_size"),
            json({2, 16, 16}));
  EXPECT_EQ(big.arm(big.ablations[1].arms[1].second).config.at("model.vision_cfg.hlip.patch_size"),
            json({8, 16, 16}));
  EXPECT_EQ(big.profile.seeds, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(big.arms[0].config.at("train.max_steps"), 100);
  EXPECT_NE(big.arms[0].id, quick.arms[0].id);
}

TEST(AblateSpec, AblationsCanBeLimitedToProfiles) {
  const std::string text = spec_text(R"(
[[ablation]]
name = "gpu-only"
profiles = ["big"]
[[ablation.arm]]
label = "a"
[[ablation.arm]]
label = "b"
train.num_scans = 3
)");
  EXPECT_EQ(plan_of(text, "quick").ablations.size(), 1u);
  EXPECT_EQ(plan_of(text, "big").ablations.size(), 2u);
}

TEST(AblateSpec, FineTuningArmsComeAfterTheirSource) {
  // The fine-tuning ablation comes first in the file, its source arm is defined later.
  const std::string text = spec_text() + R"(
[[ablation]]
name = "unmasked"
[[ablation.arm]]
label = "masked"
model.vision_cfg.patch_dropout = 0.25
[[ablation.arm]]
label = "unmasked"
init.finetune = "late.source"
train.force_patch_dropout = 0.0

[[ablation]]
name = "late"
[[ablation.arm]]
label = "source"
model.vision_cfg.patch_dropout = 0.3
[[ablation.arm]]
label = "other"
model.vision_cfg.patch_dropout = 0.4
)";
  const SweepPlan plan = plan_of(text);
  const std::string finetuned = plan.ablations[1].arms[1].second;
  const std::string source = plan.ablations[2].arms[0].second;
  const Arm& arm = plan.arm(finetuned);
  EXPECT_EQ(arm.finetune_from, source);
  EXPECT_EQ(arm.config.at("init.finetune"), source);
  const auto position = [&](const std::string& id) {
    return std::find_if(plan.arms.begin(), plan.arms.end(), [&](const Arm& a) { return a.id == id; }) -
           plan.arms.begin();
  };
  EXPECT_LT(position(source), position(finetuned));
}

TEST(AblateSpec, InflationArmsStartFromTheirTwoDimensionalSource) {
  const std::string text = spec_text(R"(
[[ablation]]
name = "init"
[[ablation.arm]]
label = "slices"
model.vision_cfg.hlip.patch_size = [1, 16, 16]
[[ablation.arm]]
label = "average"
model.vision_cfg.hlip.patch_size = [4, 16, 16]
init.inflate_2d = "init.slices"
train.init_2d_inflation = "average"
[[ablation.arm]]
label = "central"
train.init_2d_inflation = "central"
)");
  const SweepPlan plan = plan_of(text);
  const auto& init = plan.ablations[1];  // after spec_text's own "dropout"
  const std::string slices = init.arms[0].second;
  for (size_t k : {1, 2}) {
    const Arm& arm = plan.arm(init.arms[k].second);
    EXPECT_EQ(arm.inflate_from, slices);
    EXPECT_EQ(arm.source(), slices);
    EXPECT_TRUE(arm.finetune_from.empty());
    EXPECT_EQ(arm.config.at("init.inflate_2d"), slices);
  }
  EXPECT_NE(init.arms[1].second, init.arms[2].second);
  expect_error(spec_text(R"(
[[ablation]]
name = "both"
[[ablation.arm]]
label = "x"
[[ablation.arm]]
label = "y"
init.finetune = "both.x"
init.inflate_2d = "both.x"
)"),
               {"sweep.toml:", "init.", "either"});
  expect_error(spec_text(R"(
[[ablation]]
name = "lost"
[[ablation.arm]]
label = "x"
[[ablation.arm]]
label = "y"
init.inflate_2d = "nowhere.x"
)"),
               {"init.inflate_2d = \"nowhere.x\"", "no such arm"});
}

TEST(AblateSpec, CyclesOfFineTuningAreErrors) {
  expect_error(spec_text(R"(
[[ablation]]
name = "a"
[[ablation.arm]]
label = "x"
[[ablation.arm]]
label = "y"
init.finetune = "b.y"

[[ablation]]
name = "b"
[[ablation.arm]]
label = "x"
[[ablation.arm]]
label = "y"
init.finetune = "a.y"
)"),
               {"sweep.toml:", "cycle", "a.y", "b.y"});
  // An arm that starts from itself.
  expect_error(spec_text(R"(
[[ablation]]
name = "self"
[[ablation.arm]]
label = "x"
[[ablation.arm]]
label = "y"
init.finetune = "self.y"
)"),
               {"cycle", "self.y -> self.y"});
}

TEST(AblateSpec, ErrorsNameTheFileTheKeyAndTheValue) {
  expect_error(spec_text("", "train.learning_rate = 1e-3\n"),
               {"sweep.toml:7:", "train.learning_rate", "0.001", "unknown key"});
  expect_error(spec_text("", "model.vision_cfg.hlip.patchsize = [4, 16, 16]\n"),
               {"sweep.toml:7:", "model.vision_cfg.hlip.patchsize", "unknown key"});
  expect_error(spec_text("", "optimizer.lr = 1\n"), {"sweep.toml:7:", "unknown key \"optimizer\""});
  expect_error(spec_text("", "train.num_scans = \"big\"\n"), {"train.num_scans", "\"big\"", "wrong type"});
  expect_error(spec_text("", "model.vision_cfg.hlip.width = \"wide\"\n"),
               {"model.vision_cfg.hlip.width", "type"});
  expect_error(spec_text("", "train.logs = \"x\"\n"), {"train.logs", "set by hlip ablate"});
  expect_error(spec_text("", "data.eval = \"pet\"\n"), {"data.eval", "\"pet\""});
  expect_error(spec_text(R"(
[[ablation]]
name = "task"
[[ablation.arm]]
label = "a"
[[ablation.arm]]
label = "b"
eval.task = "no-such-task"
)"),
               {"sweep.toml:", "arm \"b\"", "eval.task", "no-such-task"});
  expect_error(spec_text("", "model.vision_cfg.hlip.patch_size = [5, 16, 16]\n"),
               {"sweep.toml", "the base", "invalid", "patch"});
  expect_error(spec_text("", "eval.template = \"no class here\"\n"),
               {"sweep.toml:7:", "eval.template", "{c}"});
  expect_error(spec_text("unknown_top = 1\n"), {"sweep.toml", "unknown key \"unknown_top\""});
  expect_error(spec_text(), {"sweep.toml", "unknown profile \"nightly\"", "big, quick"}, "nightly");
}

TEST(AblateSpec, AnArmThatChangesNothingIsAnError) {
  expect_error(spec_text(R"(
[[ablation]]
name = "same"
[[ablation.arm]]
label = "a"
train.num_scans = 3
[[ablation.arm]]
label = "b"
train.num_scans = 3
)"),
               {"sweep.toml:", "ablation \"same\"", "arm \"b\" changes nothing against arm \"a\""});
}

TEST(AblateSpec, ChainsLabelsAndReferencesAreChecked) {
  expect_error(spec_text(R"(
[[ablation]]
name = "short"
[[ablation.arm]]
label = "only"
)"),
               {"ablation \"short\"", "at least two"});
  expect_error(spec_text(R"(
[[ablation]]
name = "dup"
[[ablation.arm]]
label = "a"
[[ablation.arm]]
label = "a"
train.num_scans = 3
)"),
               {"label \"a\" is used twice"});
  expect_error(spec_text(R"(
[[ablation]]
name = "dropout"
[[ablation.arm]]
label = "a"
[[ablation.arm]]
label = "b"
train.num_scans = 3
)"),
               {"ablation name \"dropout\" is used twice"});
  expect_error(spec_text(R"(
[[ablation]]
name = "ref"
[[ablation.arm]]
label = "a"
[[ablation.arm]]
label = "b"
init.finetune = "nowhere.x"
)"),
               {"init.finetune = \"nowhere.x\"", "no such arm"});
  expect_error(spec_text(R"(
[[ablation]]
name = "p"
profiles = ["weekly"]
[[ablation.arm]]
label = "a"
[[ablation.arm]]
label = "b"
train.num_scans = 3
)"),
               {"unknown profile \"weekly\""});
  expect_error("[base\n", {"sweep.toml:1:"});
}

TEST(AblateSpec, TheSeedSpecPlansBothProfiles) {
  const SweepSpec spec = read_sweep_spec(kSeedSpec);
  const SweepPlan quick = plan_sweep(spec, "quick");
  EXPECT_EQ(quick.ablations.size(), 16u);
  EXPECT_EQ(quick.arms.size(), 23u);
  ASSERT_TRUE(quick.profile.synth.has_value());
  EXPECT_EQ(quick.profile.jobs, 2);
  EXPECT_EQ(default_sweep_dir(kSeedSpec, "quick"), "runs/ablate/hlip-seed-quick");
  const auto find = [&](const SweepPlan& plan, const std::string& name) {
    for (const auto& ablation : plan.ablations) {
      if (ablation.name == name) return ablation;
    }
    ADD_FAILURE() << name;
    return PlannedAblation{};
  };
  // The seed's ablations build on one base: the dino.txt arm is the baseline of the later MRI ablations.
  const std::string base = find(quick, "pooling").arms[1].second;
  for (const char* name :
       {"patch-depth", "patch-dropout", "seqposemb", "scans", "report-source", "patch-plane"})
    EXPECT_EQ(find(quick, name).arms[0].second, base) << name;
  EXPECT_EQ(find(quick, "patch-dropout").arms.size(), 3u);
  EXPECT_EQ(find(quick, "unmasked-ct").arms[0].second, find(quick, "joint-vs-ct").arms[1].second);
  EXPECT_EQ(quick.arm(find(quick, "unmasked-ct").arms[1].second).finetune_from,
            find(quick, "unmasked-ct").arms[0].second);
  EXPECT_EQ(find(quick, "rope-ct").task, "synth-ich");
  // Whole-report arms are scored without the sentence prefix, sentence-dropout arms with it.
  EXPECT_EQ(quick.arm(base).config.at("eval.template"), "{c}.");
  EXPECT_EQ(quick.arm(find(quick, "sentence-dropout-mri").arms[1].second).config.at("eval.template"),
            "This study shows: {c}.");
  const SweepPlan full = plan_sweep(spec, "full");
  EXPECT_EQ(full.arms.size(), 23u);
  EXPECT_EQ(full.profile.seeds.size(), 3u);
  // The 2D -> 3D initialisation: both inflations start from the chain's 2D arm, at the published patch in
  // full.
  const auto init = find(full, "init");
  ASSERT_EQ(init.arms.size(), 3u);
  for (size_t k : {1, 2}) {
    EXPECT_EQ(full.arm(init.arms[k].second).inflate_from, init.arms[0].second);
    EXPECT_EQ(full.arm(init.arms[k].second).config.at("model.vision_cfg.hlip.patch_size"), json({8, 16, 16}));
  }
  EXPECT_EQ(full.arm(init.arms[0].second).config.at("model.vision_cfg.hlip.patch_size"), json({1, 16, 16}));
  EXPECT_EQ(full.arm(find(full, "patch-depth").arms[1].second).config.at("model.vision_cfg.hlip.patch_size"),
            json({6, 16, 16}));
}

TEST(AblateCosts, TokensFlopsAndParameters) {
  model::VisionOptions vision;  // ViT-B defaults: 48x224x224, patch 8x16x16
  vision.attention_levels = model::scan_study_levels(12);
  EXPECT_EQ(tokens_per_scan(vision), 6 * 14 * 14);

  // One block at scan level, one scan, no prefix beyond CLS, checked by hand.
  model::VisionOptions small;
  small.width = 8;
  small.depth = 1;
  small.num_heads = 2;
  small.mlp_ratio = 4;
  small.img_size = {4, 8, 8};
  small.patch_size = {2, 4, 4};
  small.attention_levels = {model::AttentionLevel::kScan};
  small.embed_dim = 4;
  // 8 tokens of 32 voxels; block: n = 9 tokens.
  const double c = 8, n = 9;
  const double expected = 2 * 8 * 32 * c + 2 * n * c * 3 * c + 2 * 2 * n * n * c + 2 * n * c * c +
                          2 * n * 2 * c * 4 * c + 2 * 1 * c * 4;
  EXPECT_DOUBLE_EQ(vision_flops_per_study(small, 1, /*training=*/false), expected);
  // Study level with 2 scans: one window of 1 + 16 tokens.
  small.attention_levels = {model::AttentionLevel::kStudy};
  const double n2 = 17;
  const double expected2 = 2 * 2 * 8 * 32 * c + 2 * n2 * c * 3 * c + 2 * 2 * n2 * n2 * c + 2 * n2 * c * c +
                           2 * n2 * 2 * c * 4 * c + 2 * 1 * c * 4;
  EXPECT_DOUBLE_EQ(vision_flops_per_study(small, 2, false), expected2);
  // Patch dropout 0.5 in training keeps 4 of 8 tokens per scan window (block 0 at scan level).
  small.attention_levels = {model::AttentionLevel::kScan};
  small.patch_dropout = 0.5;
  const double n3 = 5;
  const double expected3 = 2 * 8 * 32 * c + 2 * n3 * c * 3 * c + 2 * 2 * n3 * n3 * c + 2 * n3 * c * c +
                           2 * n3 * 2 * c * 4 * c + 2 * 1 * c * 4;
  EXPECT_DOUBLE_EQ(vision_flops_per_study(small, 1, true), expected3);
  EXPECT_DOUBLE_EQ(vision_flops_per_study(small, 1, false), expected);

  const model::ClipConfig tiny = model::clip_config_by_name("hlip-tiny");
  EXPECT_EQ(tokens_per_scan(tiny.vision), 4 * 4 * 4);
  const int64_t params = parameter_count(tiny);
  EXPECT_GT(params, 500000);
  EXPECT_LT(params, 2000000);
}

TEST(AblateCosts, StepMetricsAreMediansWithoutTheFirstStep) {
  const std::string path = ::testing::TempDir() + "/ablate_metrics.jsonl";
  {
    std::ofstream out(path);
    out << R"({"step":1,"step_s":9.0,"studies_per_s":1.0})"
        << "\n"
        << R"({"step":2,"step_s":1.0,"studies_per_s":10.0})"
        << "\n"
        << R"({"epoch":1,"zeroshot/mean_auc":0.5})"
        << "\n"
        << R"({"step":3,"step_s":3.0,"studies_per_s":30.0})"
        << "\n"
        << R"({"step":4,"step_s":2.0,"studies_per_s":20.0})"
        << "\n";
  }
  RunCost cost;
  read_step_metrics(path, cost);
  EXPECT_DOUBLE_EQ(*cost.step_s_median, 2.0);
  EXPECT_DOUBLE_EQ(*cost.studies_per_s, 20.0);
  const json written = cost.to_json();
  EXPECT_TRUE(written.at("peak_gpu_bytes").is_null());
  for (const char* key : {"wall_s", "step_s_median", "studies_per_s", "peak_rss_bytes", "peak_gpu_bytes",
                          "tokens_per_scan", "params", "flops_per_study"})
    EXPECT_TRUE(written.contains(key)) << key;
}

}  // namespace
}  // namespace hlip::ablate
