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
#include "tiny_dataset.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir("hlip_e2e_train");
    const fs::path root = root_->path();
    ASSERT_EQ(make_tiny_dataset(root, 12, 3), "");
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
  EXPECT_NE(params.find("device = 'cpu'\n"), std::string::npos) << params;
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

// --device: a bad value is a usage error; cuda trains on the GPU where this hlip's LibTorch has CUDA and a
// GPU is visible (`hlip version --json` says), and is otherwise refused with the reason.
TEST_F(Train, DeviceIsCheckedAndCudaRunsWhereThereIsAGpu) {
  const fs::path root = root_->path();
  const auto bad =
      run_hlip("train --config " + (root / "train.toml").string() + " --name gpu --device gpu" + common());
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--device \"gpu\" is not cpu, cuda or cuda:N"), std::string::npos) << bad.err;

  const auto version = run_hlip("version --json");
  ASSERT_EQ(version.exit_code, 0) << version.err;
  const json cuda = json::parse(version.out).at("cuda");
  const auto run = run_hlip("train --config " + (root / "train.toml").string() +
                            " --name cuda --batch-size 2 --device cuda" + common());
  if (cuda.at("available").get<bool>()) {
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_NE(read_file((root / "logs/cuda/out.log").string()).find("device cuda:0"), std::string::npos);
    EXPECT_TRUE(fs::exists(root / "logs/cuda/model/model.safetensors"));
  } else {
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_EQ(run.err.rfind("hlip: error: --device cuda: ", 0), 0u) << run.err;
    EXPECT_NE(run.err.find(cuda.at("compiled").get<bool>() ? "no CUDA device is visible" : "has no CUDA"),
              std::string::npos)
        << run.err;
  }
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

// Data-parallel training (docs/distributed.md) on a copy of hlip-tiny without dropout or drop path, so that
// runs with different numbers of processes can be compared.
class DataParallel : public Train {
 protected:
  static void SetUpTestSuite() {
    Train::SetUpTestSuite();
    std::ifstream in(std::string(HLIP_PRESET_DIR) + "/../models/hlip-tiny.json");
    json config = json::parse(in);
    config["vision_cfg"]["timm_drop_path"] = 0.0;
    config["text_cfg"]["hf_config"]["hidden_dropout_prob"] = 0.0;
    config["text_cfg"]["hf_config"]["attention_probs_dropout_prob"] = 0.0;
    std::ofstream(root_->path() / "still.json") << config.dump(1);
  }

  static std::string args(const std::string& name, const std::string& extra) {
    const fs::path root = root_->path();
    return "train --config " + (root / "train.toml").string() + " --name " + name + extra + common();
  }

  // The loss of each step, from metrics.jsonl.
  static std::vector<double> losses(const std::string& name) {
    std::vector<double> out;
    for (const auto& line : lines_of((root_->path() / "logs" / name / "metrics.jsonl").string())) {
      const json j = json::parse(line);
      if (j.contains("loss")) out.push_back(j.at("loss").get<double>());
    }
    return out;
  }

  // The largest difference between two runs' final weights.
  static double weight_difference(const std::string& a, const std::string& b) {
    const auto path = [](const std::string& name) {
      return (root_->path() / "logs" / name / "model/model.safetensors").string();
    };
    const auto first = read_safetensors_raw(path(a));
    const auto second = read_safetensors_raw(path(b));
    EXPECT_EQ(first.size(), second.size());
    double worst = 0;
    for (const auto& [key, tensor] : first) {
      const auto x = as_floats(tensor);
      const auto y = as_floats(second.at(key));
      for (size_t i = 0; i < x.size(); ++i)
        worst = std::max(worst, static_cast<double>(std::abs(x[i] - y.at(i))));
    }
    return worst;
  }
};

TEST_F(DataParallel, TwoProcessesEqualOneWithTheGlobalBatch) {
  const std::string still = " --model " + (root_->path() / "still.json").string() + " --epochs 3";
  auto result = run_hlip(args("one", still + " --batch-size 8"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto reference = losses("one");
  ASSERT_EQ(reference.size(), 3u);
  for (const std::string flags : {"", " --gather-with-grad", " --gather-with-grad --local-loss"}) {
    const std::string name = "two" + std::to_string(flags.size());
    result = run_hlip(args(name, still + " --batch-size 4 --nproc-per-node 2" + flags));
    ASSERT_EQ(result.exit_code, 0) << flags << result.err;
    const auto summaries = result.out.find("trained 3 steps");
    EXPECT_NE(summaries, std::string::npos) << result.out;
    EXPECT_EQ(result.out.find("trained", summaries + 1), std::string::npos) << "rank 0 alone reports";
    // With the gradient through every rank's features the update is the one process's (fp32 reduction
    // order aside). Without it, as in open_clip, the towers get 1/world of the gradient, which Adam's
    // normalisation undoes except where a gradient is near its epsilon: the losses agree less closely.
    const double tolerance = flags.empty() ? 1e-4 : 2e-6;
    const auto two = losses(name);
    ASSERT_EQ(two.size(), reference.size()) << flags;  // rank 0 alone writes metrics
    for (size_t k = 0; k < two.size(); ++k)
      EXPECT_NEAR(two[k], reference[k], tolerance) << flags << " step " << k + 1;
    if (!flags.empty()) {
      EXPECT_LT(weight_difference("one", name), 5e-5) << flags;
    }
  }
}

TEST_F(DataParallel, SharedEvaluationEqualsOneProcess) {
  // The periodic zero-shot evaluation runs on every rank's share of the studies.
  const fs::path root = root_->path();
  auto result = run_hlip(args("scored",
                              " --batch-size 4 --nproc-per-node 2 --zeroshot-frequency 1 "
                              "--zeroshot-task synth-brain-5 --zeroshot-split train"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  bool scored = false;
  for (const auto& line : lines_of((root / "logs/scored/metrics.jsonl").string()))
    scored = scored || json::parse(line).contains("zeroshot/mean_auc");
  EXPECT_TRUE(scored);

  // `hlip zeroshot` and `hlip embed` over two processes write what one process writes.
  const std::string model = " --model " + (root / "logs/scored/model").string() + " --data " +
                            (root / "cache").string() + " --split all --no-progress";
  for (const std::string nproc : {"1", "2"}) {
    result = run_hlip("zeroshot --task synth-brain-5 --out " + (root / ("zs" + nproc)).string() + model +
                      " --nproc-per-node " + nproc);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    result = run_hlip("embed --out " + (root / ("embed" + nproc + ".safetensors")).string() + model +
                      " --nproc-per-node " + nproc);
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }
  EXPECT_EQ(read_file((root / "zs1/scores.csv").string()), read_file((root / "zs2/scores.csv").string()));
  EXPECT_EQ(count_lines(read_file((root / "zs2/scores.csv").string())), 1 + 12 * 5);
  EXPECT_EQ(read_file((root / "embed1.safetensors").string()),
            read_file((root / "embed2.safetensors").string()));
  result = run_hlip("zeroshot --task synth-brain-5 --study x.nii.gz --nproc-per-node 2" + model);
  EXPECT_EQ(result.exit_code, 2) << result.err;
}

TEST_F(DataParallel, AResumedRunContinuesEveryRanksStream) {
  // hlip-tiny's own dropout and drop path draw from each rank's generator, which the checkpoint keeps.
  const std::string flags = " --epochs 4 --batch-size 4 --nproc-per-node 2 --lr-scheduler const";
  auto result = run_hlip(args("whole", flags));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = run_hlip(args("halves", flags + " --max-steps 2"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const fs::path checkpoints = root_->path() / "logs/halves/checkpoints";
  const json header =
      read_safetensors_header((checkpoints / lines_of((checkpoints / "latest").string()).at(0)).string());
  EXPECT_EQ(header.at("rng.cpu.ranks").at("shape"), json::parse("[2, 5056]"));
  result = run_hlip(args("halves", flags + " --resume latest"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(losses("halves"), losses("whole"));
  EXPECT_EQ(weight_difference("whole", "halves"), 0.0);
}

TEST_F(DataParallel, AWorkerThatDiesStopsTheOthersWithAClearError) {
  // Two workers started the way torchrun starts them; rank 1 is killed once training is under way.
  const fs::path root = root_->path();
  const int port = 20000 + static_cast<int>(getpid() % 20000);
  const std::string command =
      std::string(HLIP_BINARY) + " " +
      args("orphan", " --epochs 1000 --batch-size 4 --dist-timeout 20 --save-every-steps 1");
  pid_t pids[2];
  for (int rank = 0; rank < 2; ++rank) {
    pids[rank] = fork();
    ASSERT_GE(pids[rank], 0);
    if (pids[rank] == 0) {
      const std::string env = "RANK=" + std::to_string(rank) +
                              " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port);
      const std::string log = (root / ("orphan" + std::to_string(rank) + ".err")).string();
      execl("/bin/sh", "sh", "-c", ("exec env " + env + " " + command + " >/dev/null 2>" + log).c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  const fs::path latest = root / "logs/orphan/checkpoints/latest";
  for (int waited = 0; waited < 1200 && !fs::exists(latest); ++waited)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pids[1], SIGKILL);
  int status = 0;
  waitpid(pids[1], &status, 0);
  // Rank 0 must end by itself (a hang would be killed after two minutes and fail the test).
  bool ended = false;
  for (int waited = 0; waited < 1200 && !ended; ++waited) {
    ended = waitpid(pids[0], &status, WNOHANG) == pids[0];
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!ended) {
    kill(pids[0], SIGKILL);
    waitpid(pids[0], &status, 0);
  }
  ASSERT_TRUE(fs::exists(latest)) << read_file((root / "orphan0.err").string());
  ASSERT_TRUE(ended) << "rank 0 did not stop after its peer died";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  const auto err = lines_of((root / "orphan0.err").string());
  ASSERT_FALSE(err.empty());
  EXPECT_NE(err.back().find("hlip: error: distributed: rank 0:"), std::string::npos) << err.back();
  EXPECT_NE(err.back().find("a peer died"), std::string::npos) << err.back();
  // What was saved before stays loadable.
  const auto inspect =
      run_hlip("inspect " + (root / "logs/orphan/checkpoints" / lines_of(latest.string())[0]).string());
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
}

TEST_F(DataParallel, TheLauncherNamesTheWorkerThatFailed) {
  // A setting every worker rejects: each says so, and the launcher's status is theirs.
  const auto result = run_hlip(args("nothing", " --nproc-per-node 2 --train-split nowhere"));
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("hlip: worker of rank"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("exited with status 2"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace hlip::test
