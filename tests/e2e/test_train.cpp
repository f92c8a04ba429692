// `hlip train` and `hlip report` through the binary: a run folder from flags and a TOML file, and a run
// killed with SIGKILL at arbitrary moments, whose latest checkpoint must still load.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_runner.h"
#include "safetensors_file.h"
#include "temp_dir.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir("hlip_e2e_train");
    const fs::path root = root_->path();
    ASSERT_EQ(run_hlip("synth --out " + (root / "data").string() + " --studies 12 --seed 3 --no-progress")
                  .exit_code,
              0);
    std::ofstream(root / "small.toml")
        << "base = \"mri-brain\"\nname = \"small\"\noutput_size = [8, 32, 32]\n"
           "resize_size = 36\n";
    ASSERT_EQ(run_hlip("prepare --no-progress --manifest " + (root / "data/studies.jsonl").string() +
                       " --out " + (root / "cache").string() + " --preset " + (root / "small.toml").string())
                  .exit_code,
              0);
    ASSERT_EQ(run_hlip("vocab --all-splits --manifest " + (root / "data/studies.jsonl").string() + " --out " +
                       (root / "tokenizer/vocab.txt").string() + " --size 300")
                  .exit_code,
              0);
    std::ofstream(root / "train.toml") << "model = \"hlip-tiny\"\nbatch_size = 4\nnum_scans = 2\nepochs = 1\n"
                                          "warmup = 1\nworkers = 1\nval_frequency = 0\n";
  }
  static void TearDownTestSuite() { delete root_; }

  static std::string common() {
    const fs::path root = root_->path();
    return " --no-progress --train-data " + (root / "cache").string() + " --tokenizer " +
           (root / "tokenizer").string() + " --logs " + (root / "logs").string();
  }

  static TempDir* root_;
};

TempDir* Train::root_ = nullptr;

TEST_F(Train, FlagsOverrideTheConfigFileAndTheRunFolderIsComplete) {
  const fs::path root = root_->path();
  const auto result = run_hlip("train --config " + (root / "train.toml").string() +
                               " --name flags --batch-size 2" + common());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("trained"), std::string::npos) << result.out;
  const fs::path run = root / "logs/flags";
  const std::string params = read_file((run / "params.toml").string());
  EXPECT_NE(params.find("batch_size = 2\n"), std::string::npos) << params;  // the flag wins
  EXPECT_NE(params.find("num_scans = 2\n"), std::string::npos) << params;   // from the file
  EXPECT_TRUE(fs::exists(run / "model/open_clip_config.json"));
  // The cache's preset goes into the model folder, for `hlip zeroshot --study` on raw scans.
  const json config = json::parse(read_file((run / "model/open_clip_config.json").string()));
  const json cache = json::parse(read_file((root / "cache/cache.json").string()));
  EXPECT_EQ(config.at("preprocess_cfg").at("hlip_preset"), cache.at("presets").at("*"));
  EXPECT_EQ(config["preprocess_cfg"]["hlip_preset"]["output_size"], json({8, 32, 32}));
  EXPECT_TRUE(fs::exists(run / "model/tokenizer/vocab.txt"));
  const std::string latest = read_file((run / "checkpoints/latest").string());
  const auto inspect =
      run_hlip("inspect --json " + (run / "checkpoints" / latest.substr(0, latest.size() - 1)).string());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("optimizer.logit_scale.exp_avg"), std::string::npos);

  const auto report = run_hlip("report --run " + run.string() + " --out " + (root / "report.md").string());
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(read_file((root / "report-loss.svg").string()).find("<polyline"), std::string::npos);
  EXPECT_NE(read_file((root / "report.md").string()).find("report-loss.svg"), std::string::npos);

  std::ofstream(root / "bad.toml") << "learning_rate = 1\n";
  const auto unknown = run_hlip("train --config " + (root / "bad.toml").string() + common());
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(count_lines(unknown.err), 1) << unknown.err;
  EXPECT_NE(unknown.err.find("unknown setting \"learning_rate\""), std::string::npos) << unknown.err;
}

TEST_F(Train, ProfileStepsWriteAChromeTraceOfTheOperators) {
  const fs::path root = root_->path();
  const auto result = run_hlip("train --config " + (root / "train.toml").string() +
                               " --name profiled --batch-size 2 --epochs 2 --profile-steps 1" + common());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const fs::path trace = root / "logs/profiled/profile/trace.json";
  ASSERT_TRUE(fs::exists(trace)) << result.out << result.err;
  const json events = json::parse(read_file(trace.string()));
  ASSERT_TRUE(events.is_array());
  bool matrix_product = false;
  for (const auto& event : events) {
    if (event.value("name", "") == "aten::mm" && event.value("ph", "") == "X") matrix_product = true;
  }
  EXPECT_TRUE(matrix_product) << "no aten::mm event among " << events.size();

  const auto negative = run_hlip("train --config " + (root / "train.toml").string() +
                                 " --name negative --profile-steps -1" + common());
  EXPECT_EQ(negative.exit_code, 2) << negative.err;
  EXPECT_NE(negative.err.find("--profile-steps -1 is negative"), std::string::npos) << negative.err;
}

TEST_F(Train, Init2dInflatesTheTrunkOfA2dModel) {
  // The 2D → 3D initialisation ablation's path: a model trained on slabs of one slice (patch depth 1) is the
  // 2D ViT; --init-2d inflates its trunk into a patch depth of 4. With lr 0 the saved model is the initial
  // one.
  const fs::path root = root_->path();
  json config = json::parse(read_file(std::string(HLIP_PRESET_DIR) + "/../models/hlip-tiny.json"));
  config["vision_cfg"]["hlip"]["patch_size"] = {1, 16, 16};
  std::ofstream(root / "slices.json") << config.dump(1);
  const auto slices =
      run_hlip("train --config " + (root / "train.toml").string() + " --name slices --model " +
               (root / "slices.json").string() + " --max-steps 2" + common());
  ASSERT_EQ(slices.exit_code, 0) << slices.err;
  const auto central = run_hlip(
      "train --config " + (root / "train.toml").string() + " --name central --lr 0 --max-steps 1" +
      " --init-2d " + (root / "logs/slices/model").string() + " --init-2d-inflation central" + common());
  ASSERT_EQ(central.exit_code, 0) << central.err;
  EXPECT_NE(read_file((root / "logs/central/out.log").string()).find("vision trunk from the 2D model"),
            std::string::npos);

  const auto source = read_safetensors_raw((root / "logs/slices/model/model.safetensors").string());
  const auto target = read_safetensors_raw((root / "logs/central/model/model.safetensors").string());
  const std::string kernel = "visual.trunk.patch_embed.proj.weight";
  ASSERT_EQ(source.at(kernel).shape, (std::vector<int64_t>{96, 1, 1, 16, 16}));
  ASSERT_EQ(target.at(kernel).shape, (std::vector<int64_t>{96, 1, 4, 16, 16}));
  const auto k2 = as_floats(source.at(kernel)), k3 = as_floats(target.at(kernel));
  size_t mismatches = 0;
  for (size_t c = 0; c < 96; ++c) {
    for (size_t tap = 0; tap < 4; ++tap) {
      for (size_t i = 0; i < 256; ++i) {
        const float expected = tap == 2 ? k2[c * 256 + i] : 0.0F;  // central: tap pd/2 holds the 2D kernel
        mismatches += k3[(c * 4 + tap) * 256 + i] != expected;
      }
    }
  }
  EXPECT_EQ(mismatches, 0U);
  for (const std::string key : {"visual.trunk.blocks.3.mlp.fc2.weight", "visual.trunk.cls_token"})
    EXPECT_EQ(as_floats(source.at(key)), as_floats(target.at(key))) << key;

  const auto missing = run_hlip("train --config " + (root / "train.toml").string() + " --name missing" +
                                " --init-2d " + (root / "nowhere").string() + common());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(count_lines(missing.err), 1) << missing.err;
  EXPECT_NE(missing.err.find((root / "nowhere").string()), std::string::npos) << missing.err;
  const auto sideways =
      run_hlip("train --config " + (root / "train.toml").string() + " --name sideways" + " --init-2d " +
               (root / "logs/slices/model").string() + " --init-2d-inflation sideways" + common());
  EXPECT_EQ(sideways.exit_code, 2);  // a usage error
  EXPECT_NE(sideways.err.find("sideways"), std::string::npos) << sideways.err;
}

TEST_F(Train, AKillAtAnyMomentLeavesALoadableCheckpoint) {
  const fs::path root = root_->path();
  const fs::path run = root / "logs/killed";
  const std::string command = std::string(HLIP_BINARY) + " train --config " + (root / "train.toml").string() +
                              " --name killed --epochs 50 --batch-size 2 --save-every-steps 1" + common();
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::string resume = attempt > 0 ? " --resume latest" : "";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", (command + resume + " >/dev/null 2>&1").c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait for checkpoints to be written (one per step), then kill it without warning at a moment that
    // varies from attempt to attempt, most likely in the middle of writing the next one.
    const fs::path latest_file = run / "checkpoints/latest";
    for (int waited = 0; waited < 600 && !fs::exists(latest_file); ++waited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 370 * attempt));
    kill(pid, SIGKILL);
    system("pkill -9 -f 'name killed' >/dev/null 2>&1");
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(fs::exists(latest_file)) << "no checkpoint within a minute";
    std::string latest = read_file(latest_file.string());
    ASSERT_FALSE(latest.empty());
    latest.pop_back();
    const auto inspect = run_hlip("inspect " + (run / "checkpoints" / latest).string());
    EXPECT_EQ(inspect.exit_code, 0) << "attempt " << attempt << ": " << inspect.err;
  }
}

}  // namespace
}  // namespace hlip::test
