// The trainer on a tiny prepared dataset: settings files, a run folder that resumes on the same batch
// sequence, and open_clip's feature-cache accumulation equal to one large batch.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "hlip/core/error.h"
#include "hlip/data/cache.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/clip.h"
#include "hlip/text/wordpiece_trainer.h"
#include "hlip/train/options.h"
#include "hlip/train/trainer.h"
#include "temp_dir.h"

namespace hlip::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::error_message;
using test::TempDir;

const std::vector<std::string> kFindings = {"a left frontal glioma with edema", "no acute abnormality",
                                            "an acute right MCA territory infarct", "a parietal meningioma"};

// Twelve studies of two 8×32×32 scans whose brightness follows the finding, a WordPiece vocabulary learned
// from their reports, and a copy of hlip-tiny without dropout or drop path (so steps are deterministic).
class TinyRun : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path cache = root() / "cache";
    fs::create_directories(cache / "scans");
    std::string manifest;
    std::vector<std::string> texts;
    for (int s = 0; s < 12; ++s) {
      const int finding = s % 4;
      std::string scans;
      for (int k = 0; k < 2; ++k) {
        const std::string relative = fmt::format("scans/{}_{}.npy", s, k);
        at::manual_seed(s * 2 + k);
        const at::Tensor scan = at::rand({8, 32, 32}).mul(0.5).add(0.15 * finding);
        data::write_cached_scan((cache / relative).string(), scan, data::CacheDtype::kUint8);
        scans += fmt::format("{}\"{}\"", k ? ", " : "", relative);
      }
      const std::string sentence =
          fmt::format("The study shows {}.", kFindings[static_cast<size_t>(finding)]);
      texts.push_back(sentence);
      manifest += json({{"study", fmt::format("s{}", s)},
                        {"modality", "mri"},
                        {"split", s < 10 ? "train" : "val"},
                        {"scans", json::parse("[" + scans + "]")},
                        {"report", {sentence, "No hemorrhage."}}})
                      .dump() +
                  "\n";
    }
    std::ofstream(cache / "studies.jsonl") << manifest;
    std::ofstream(cache / "cache.json") << R"({"format": "hlip-cache", "version": 1})"
                                        << "\n";
    texts.push_back("No hemorrhage. This study shows: ");
    text::WordPieceTrainerOptions vocab_options;
    vocab_options.vocab_size = 200;
    vocab_options.min_frequency = 1;
    std::ofstream vocab(root() / "vocab.txt");
    for (const auto& token : text::learn_wordpiece_vocab(texts, vocab_options))
      vocab << token << "\n";
    vocab.close();

    auto config = model::clip_config_by_name("hlip-tiny").to_json();
    config["vision_cfg"]["timm_drop_path"] = 0.0;
    config["text_cfg"]["hf_config"]["hidden_dropout_prob"] = 0.0;
    config["text_cfg"]["hf_config"]["attention_probs_dropout_prob"] = 0.0;
    config["text_cfg"]["context_length"] = 32;
    std::ofstream(root() / "tiny.json") << config.dump(2);
  }

  const fs::path& root() const { return temp_.path(); }

  TrainOptions options(const std::string& name) const {
    TrainOptions o;
    o.model = (root() / "tiny.json").string();
    o.tokenizer = (root() / "vocab.txt").string();
    o.train_data = {(root() / "cache").string()};
    o.logs = (root() / "logs").string();
    o.name = name;
    o.batch_size = 4;
    o.num_scans = 2;
    o.epochs = 2;
    o.warmup = 2;
    o.lr = 1e-3;
    o.workers = 1;
    o.progress = false;
    o.seed = 5;
    return o;
  }

  // metrics.jsonl lines that describe a step (not epoch summaries), by step.
  std::map<int64_t, json> step_lines(const std::string& name) const {
    std::map<int64_t, json> out;
    std::ifstream in(root() / "logs" / name / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto j = json::parse(line);
      if (j.contains("loss")) out[j["step"].get<int64_t>()] = j;
    }
    return out;
  }

  TempDir temp_{"hlip_trainer"};
};

TEST(TrainOptionsToml, RoundTripAndErrors) {
  TempDir dir;
  TrainOptions options;
  options.train_data = {"a", "b@0.5"};
  options.batch_size = 3;
  options.lr = 2e-4;
  options.grad_checkpointing = true;
  options.name = "say \"hi\"";
  std::ofstream(dir.file("p.toml")) << to_toml(options);
  const TrainOptions back = options_from_toml(dir.file("p.toml"));
  EXPECT_EQ(to_toml(back), to_toml(options));
  EXPECT_EQ(back.train_data, options.train_data);
  EXPECT_EQ(back.name, options.name);

  std::ofstream(dir.file("bad.toml")) << "batch-size = 4\nlearning_rate = 1\n";
  EXPECT_NE(error_message([&] {
              options_from_toml(dir.file("bad.toml"));
            }).find(":2: unknown setting \"learning_rate\""),
            std::string::npos);
  std::ofstream(dir.file("type.toml")) << "epochs = \"ten\"\n";
  EXPECT_NE(
      error_message([&] { options_from_toml(dir.file("type.toml")); }).find("\"epochs\" must be an integer"),
      std::string::npos);
}

// The shipped training configurations (the demos') read without an error, with the settings they state.
TEST(TrainOptionsToml, TheShippedConfigsRead) {
  const std::string dir = std::string(HLIP_TEST_DATA_DIR) + "/../../configs/train/";
  const TrainOptions mri = options_from_toml(dir + "demo.toml");
  EXPECT_EQ(mri.zeroshot_task, "synth-brain-5");
  EXPECT_EQ(mri.num_scans, 4);
  const TrainOptions ct = options_from_toml(dir + "demo-ct.toml");
  EXPECT_EQ(ct.zeroshot_task, "synth-ich");
  EXPECT_EQ(ct.num_scans, 3);  // the three windows of one series
  EXPECT_EQ(ct.device, "cpu");
  EXPECT_EQ(ct.precision, mri.precision);
  EXPECT_EQ(ct.batch_size * ct.nproc_per_node, mri.batch_size * mri.nproc_per_node);
}

TEST_F(TinyRun, WritesARunFolderAndResumesOnTheSameBatches) {
  auto full_options = options("full");
  full_options.save_every_steps = 3;
  const auto full = train(full_options);
  EXPECT_EQ(full.steps, 4);  // 10 training studies, batch 4: 2 steps per epoch, 2 epochs
  EXPECT_EQ(full.epochs, 2);
  const fs::path run = root() / "logs" / "full";
  for (const char* file : {"params.toml", "out.log", "metrics.jsonl", "checkpoints/epoch_1.safetensors",
                           "checkpoints/epoch_2.safetensors", "checkpoints/step_3.safetensors",
                           "checkpoints/latest", "model/open_clip_config.json", "model/model.safetensors"}) {
    EXPECT_TRUE(fs::exists(run / file)) << file;
  }
  EXPECT_FALSE(fs::is_empty(run / "tensorboard"));
  const auto reference = step_lines("full");
  ASSERT_EQ(reference.size(), 4u);
  EXPECT_TRUE(reference.at(1).contains("loss_report"));  // hlip-tiny is a dual model

  // Interrupted after epoch 1, and in the middle of epoch 2 (step 3): both resume to the same losses.
  for (const std::string checkpoint : {"epoch_1.safetensors", "step_3.safetensors"}) {
    const std::string name = "resumed-" + checkpoint;
    fs::create_directories(root() / "logs" / name / "checkpoints");
    fs::copy_file(run / "checkpoints" / checkpoint, root() / "logs" / name / "checkpoints" / checkpoint);
    std::ofstream(root() / "logs" / name / "checkpoints" / "latest") << checkpoint << "\n";
    auto resumed_options = options(name);
    resumed_options.resume = "latest";
    const auto resumed = train(resumed_options);
    EXPECT_EQ(resumed.steps, 4);
    const auto lines = step_lines(name);
    ASSERT_FALSE(lines.empty());
    for (const auto& [step, line] : lines) {
      EXPECT_NEAR(line["loss"].get<double>(), reference.at(step)["loss"].get<double>(), 1e-5)
          << checkpoint << " step " << step;
    }
  }

  // The run folder is not overwritten by accident.
  const std::string again = error_message([&] { train(options("full")); });
  EXPECT_NE(again.find("--resume latest"), std::string::npos) << again;
}

TEST_F(TinyRun, FeatureCacheAccumulationEqualsOneLargeBatch) {
  auto large = options("large");
  large.max_steps = 1;
  large.epochs = 1;
  auto accumulated = options("accumulated");
  accumulated.batch_size = 2;
  accumulated.accum_freq = 2;
  accumulated.max_steps = 1;
  accumulated.epochs = 1;
  train(large);
  train(accumulated);
  const auto a = step_lines("large").at(1);
  const auto b = step_lines("accumulated").at(1);
  EXPECT_NEAR(a["loss"].get<double>(), b["loss"].get<double>(), 1e-5);
  // After one AdamW step, exp_avg = (1 − β1)·gradient: the gradients of both runs, parameter by parameter.
  const auto large_state =
      io::read_safetensors((root() / "logs/large/checkpoints/step_1.safetensors").string());
  const auto accumulated_state =
      io::read_safetensors((root() / "logs/accumulated/checkpoints/step_1.safetensors").string());
  int compared = 0;
  for (const auto& [name, want] : large_state.tensors) {
    if (name.rfind("optimizer.", 0) != 0 || name.find(".exp_avg") == std::string::npos ||
        name.find(".exp_avg_sq") != std::string::npos) {
      continue;
    }
    const at::Tensor got = accumulated_state.tensors.at(name);
    if (name.find("logit_") != std::string::npos) {
      // As in open_clip, every micro-batch's loss uses logit_scale (and the dual report temperature), so
      // their gradients are summed accum_freq times.
      EXPECT_NEAR(got.item<double>(), 2 * want.item<double>(), 1e-4 * std::abs(want.item<double>()) + 1e-7)
          << name;
    } else {
      EXPECT_TRUE(at::allclose(got, want, 2e-3, 1e-7))
          << name << ": max difference " << (got - want).abs().max().item<double>();
    }
    ++compared;
  }
  EXPECT_GT(compared, 50);
}

TEST_F(TinyRun, BadSettingsAreUsageErrors) {
  auto o = options("bad");
  o.text_process = "report";  // hlip-tiny is dual: it needs sentences and reports
  EXPECT_THROW(train(o), UsageError);
  o = options("bad2");
  o.batch_size = 64;  // more than the training studies
  EXPECT_THROW(train(o), UsageError);
}

}  // namespace
}  // namespace hlip::train
