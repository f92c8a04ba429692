// `hlip ablate` through the binary: a three-ablation sweep on a tiny synthetic set (an arm shared by two
// ablations, an arm fine-tuned from another, an arm that fails), `--only`, a sweep killed after its first
// finished run and resumed, and the files the report reads.
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
#include "temp_dir.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class Ablate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir("hlip_e2e_ablate");
    const fs::path root = root_->path();
    std::ofstream(root / "small.toml")
        << "base = \"mri-brain\"\nname = \"small\"\noutput_size = [8, 32, 32]\n"
           "resize_size = 36\n";
    std::ofstream(root / "small-ct.toml")
        << "base = \"ct-head\"\nname = \"small-ct\"\noutput_size = [8, 32, 32]\n"
           "resize_size = 36\n";
    std::ofstream(root / "sweep.toml") << R"(title = "e2e"
[base]
model.vision_cfg.hlip.img_size = [8, 32, 32]
model.vision_cfg.hlip.reg_tokens = 0
data.train = ["mri"]
eval.task = "synth-brain-5"
train.num_scans = 2
train.batch_size = 4
train.epochs = 100
train.warmup = 1
train.workers = 1
train.val_frequency = 0
train.zeroshot_frequency = 1
train.save_frequency = 1
train.delete_previous_checkpoint = true

[profile.quick]
seeds = [0]
steps = 6
jobs = 2
[profile.quick.synth]
studies = 40
mri_preset = "small.toml"
ct_preset = "small-ct.toml"
vocab_size = 300

[[ablation]]
name = "dropout"
title = "Patch dropout"
note = "a note"
[[ablation.arm]]
label = "0"
[[ablation.arm]]
label = "0.5"
model.vision_cfg.patch_dropout = 0.5

[[ablation]]
name = "unmasked"
[[ablation.arm]]
label = "masked"
model.vision_cfg.patch_dropout = 0.5
[[ablation.arm]]
label = "unmasked"
init.finetune = "unmasked.masked"
train.force_patch_dropout = 0.0
train.max_steps = 3

[[ablation]]
name = "broken"
[[ablation.arm]]
label = "ok"
[[ablation.arm]]
label = "dual-text"
train.text_process = "sentence-and-report"
)";
  }
  static void TearDownTestSuite() { delete root_; }

  static std::string sweep(const std::string& out, const std::string& flags) {
    return "--threads 2 ablate " + (root_->path() / "sweep.toml").string() + " --out " +
           (root_->path() / out).string() + " " + flags;
  }

  static json sweep_json(const std::string& out) {
    return json::parse(read_file((root_->path() / out / "sweep.json").string()));
  }

  static int starts(const std::string& output) {
    int count = 0;
    for (size_t at = output.find("ablate: start arm"); at != std::string::npos;
         at = output.find("ablate: start arm", at + 1))
      ++count;
    return count;
  }

  static TempDir* root_;
};

TempDir* Ablate::root_ = nullptr;

TEST_F(Ablate, RunsEveryDistinctArmOnceRecordsFailuresAndResumesWithOnly) {
  const fs::path out = root_->path() / "a";
  // First only the dropout ablation: its 0.5 arm is also the unmasked ablation's source.
  auto result = run_hlip(sweep("a", "--only dropout --jobs 2"));
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_EQ(starts(result.out), 2) << result.out;
  json s = sweep_json("a");
  EXPECT_EQ(s.at("profile"), "quick");
  EXPECT_EQ(s.at("task"), "synth-brain-5");
  EXPECT_EQ(s.at("split"), "test");
  EXPECT_EQ(s.at("metric"), "macro_auc");
  EXPECT_EQ(s.at("higher_is_better"), true);
  EXPECT_EQ(s.at("seeds"), json({0}));
  ASSERT_EQ(s.at("ablations").size(), 3u);
  const json& dropout = s.at("ablations")[0];
  EXPECT_EQ(dropout.at("index"), 1);
  EXPECT_EQ(dropout.at("name"), "dropout");
  EXPECT_EQ(dropout.at("title"), "Patch dropout");
  EXPECT_EQ(dropout.at("note"), "a note");
  const std::string base = dropout.at("arms")[0].at("arm");
  const std::string half = dropout.at("arms")[1].at("arm");
  EXPECT_EQ(dropout.at("arms")[1].at("label"), "0.5");
  // The unmasked ablation's first arm is the same configuration as the dropout ablation's second.
  EXPECT_EQ(s.at("ablations")[1].at("arms")[0].at("arm"), half);
  EXPECT_EQ(s.at("ablations")[2].at("arms")[0].at("arm"), base);
  const std::string unmasked = s.at("ablations")[1].at("arms")[1].at("arm");
  EXPECT_EQ(s.at("arms").size(), 4u);
  EXPECT_EQ(s.at("arms").at(base).at("status"), "done");
  EXPECT_EQ(s.at("arms").at(half).at("status"), "done");
  EXPECT_EQ(s.at("arms").at(half).at("changes"), json({{"model.vision_cfg.patch_dropout", 0.5}}));
  EXPECT_EQ(s.at("arms").at(unmasked).at("status"), "pending");
  EXPECT_EQ(s.at("arms").at(half).at("runs").at("0"), "arms/" + half + "/seed-0");

  // Every file of a finished run.
  const fs::path run = out / "arms" / half / "seed-0";
  for (const char* file : {"train/metrics.jsonl", "train/model/open_clip_config.json",
                           "zeroshot/results.json", "zeroshot/scores.csv", "cost.json", "DONE"})
    EXPECT_TRUE(fs::exists(run / file)) << file;
  EXPECT_TRUE(fs::exists(out / "arms" / half / "model.json"));
  EXPECT_NE(read_file((run / "train/metrics.jsonl").string()).find("\"zeroshot/mean_auc\""),
            std::string::npos);
  const json cost = json::parse(read_file((run / "cost.json").string()));
  EXPECT_GT(cost.at("wall_s").get<double>(), 0);
  EXPECT_GT(cost.at("step_s_median").get<double>(), 0);
  EXPECT_GT(cost.at("studies_per_s").get<double>(), 0);
  EXPECT_GT(cost.at("peak_rss_bytes").get<int64_t>(), 50 << 20);
  EXPECT_TRUE(cost.at("peak_gpu_bytes").is_null());
  EXPECT_EQ(cost.at("tokens_per_scan"), 8);  // (8/4) x (32/16) x (32/16)
  EXPECT_GT(cost.at("params").get<int64_t>(), 100000);
  const json base_cost = json::parse(read_file((out / "arms" / base / "seed-0/cost.json").string()));
  EXPECT_LT(cost.at("flops_per_study").get<double>(), base_cost.at("flops_per_study").get<double>());
  const auto done_time = fs::last_write_time(run / "DONE");

  // Without --resume a folder with runs is refused.
  result = run_hlip(sweep("a", ""));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--resume"), std::string::npos) << result.err;

  // Resumed: only the fine-tuned arm and the broken one run; the failure is recorded, the sweep goes on.
  result = run_hlip(sweep("a", "--resume"));  // the profile's 2 jobs
  EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
  EXPECT_NE(result.out.find("2 job(s)"), std::string::npos) << result.out;
  EXPECT_EQ(starts(result.out), 2) << result.out;
  EXPECT_NE(result.err.find("1 run(s) failed"), std::string::npos) << result.err;
  EXPECT_EQ(fs::last_write_time(run / "DONE"), done_time);
  s = sweep_json("a");
  EXPECT_EQ(s.at("arms").at(unmasked).at("status"), "done");
  EXPECT_EQ(s.at("arms").at(unmasked).at("finetune_from"), half);
  const std::string train_toml = read_file((out / "arms" / unmasked / "seed-0/train.toml").string());
  EXPECT_NE(train_toml.find("finetune = \"" + (out / "arms" / half / "seed-0/train/model").string()),
            std::string::npos)
      << train_toml;
  EXPECT_NE(train_toml.find("force_patch_dropout = 0.0"), std::string::npos);
  const std::string broken = s.at("ablations")[2].at("arms")[1].at("arm");
  EXPECT_EQ(s.at("arms").at(broken).at("status"), "failed");
  const std::string error = s.at("arms").at(broken).at("error");
  EXPECT_NE(error.find("text-process"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;

  // The report reads what is on disk.
  result = run_hlip(sweep("a", "--report-only"));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(fs::exists(out / "report.md"));
}

TEST_F(Ablate, AKilledSweepResumesWhereItStopped) {
  const fs::path out = root_->path() / "k";
  const std::string command = std::string(HLIP_BINARY) + " " + sweep("k", "--only dropout --jobs 1");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command + " >/dev/null 2>&1").c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill it without warning once its first run has finished (the second is then under way).
  fs::path first_done;
  for (int waited = 0; waited < 1200 && first_done.empty(); ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(out / "arms")) continue;
    for (const auto& arm : fs::directory_iterator(out / "arms")) {
      if (fs::exists(arm.path() / "seed-0/DONE")) first_done = arm.path() / "seed-0/DONE";
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_FALSE(first_done.empty()) << "no run finished within two minutes";
  const auto done_time = fs::last_write_time(first_done);
  // Count finished runs by their DONE markers, which is what a resume trusts: sweep.json is updated a moment
  // after DONE is written, so the kill can fall between the two.
  int done = 0;
  for (const auto& arm : fs::directory_iterator(out / "arms"))
    done += fs::exists(arm.path() / "seed-0/DONE");
  EXPECT_LT(done, 2);  // the kill came before the sweep ended

  // The dead process's lock is taken over and the interrupted run is done again; the finished one is kept.
  const auto result = run_hlip(sweep("k", "--only dropout --resume"));
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_EQ(starts(result.out), 2 - done) << result.out;
  EXPECT_EQ(fs::last_write_time(first_done), done_time);
  const json s = sweep_json("k");
  for (const auto& ablation_arm : s.at("ablations")[0].at("arms")) {
    const std::string id = ablation_arm.at("arm");
    EXPECT_EQ(s.at("arms").at(id).at("status"), "done") << id;
    EXPECT_FALSE(fs::exists(out / "arms" / id / "seed-0.lock")) << id;
  }
}

TEST_F(Ablate, PlanAndUsageErrors) {
  auto result = run_hlip(sweep("p", "--plan"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("3 ablations, 4 distinct arms, 1 seed(s)"), std::string::npos) << result.out;
  EXPECT_FALSE(fs::exists(root_->path() / "p"));

  result = run_hlip(sweep("p", "--plan --profile nightly"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find("unknown profile \"nightly\""), std::string::npos) << result.err;

  result = run_hlip(sweep("p", "--only nothing"));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--only nothing"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace hlip::test
