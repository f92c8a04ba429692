// `hlip probe`: linear probes (L2 logistic regression) on frozen image embeddings, the strength chosen on a
// validation split, the test split scored as zero-shot is (results.json, scores.csv). docs/zeroshot.md.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "command.h"
#include "eval_common.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/eval/probe.h"
#include "hlip/eval/zeroshot.h"

namespace hlip::cli {
namespace {

namespace fs = std::filesystem;

struct ProbeArgs {
  std::string model;
  std::string device = "cpu";
  std::string data;
  std::string train_split = "train";
  std::string val_split = "val";
  std::string test_split = "test";
  std::string task;
  std::string labels;
  std::vector<double> l2_grid;
  std::string out;
  std::string preset;
  std::string modality;
  int64_t image_embedding = -1;
  int bootstrap = -1;
  int64_t seed = -1;
  int workers = 2;
  bool no_progress = false;
};

// --task, or --labels: a one-vs-rest task whose classes are the manifest label keys.
eval::ZeroShotTask probe_task(const ProbeArgs& args) {
  if (args.task.empty() == args.labels.empty()) throw UsageError("give one of --task and --labels");
  if (!args.task.empty()) return eval::load_task(args.task);
  const auto labels = split_list(args.labels);
  if (labels.empty()) throw UsageError(fmt::format("--labels \"{}\" names no label", args.labels));
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& label : labels)
    classes.push_back({{"name", label}, {"prompts", {label}}});
  // Prompts and templates are unused by a probe; the task format requires them.
  return eval::parse_task({{"name", "labels:" + fmt::format("{}", fmt::join(labels, ","))},
                           {"mode", "positive"},
                           {"templates", {"{c}"}},
                           {"classes", classes}},
                          "--labels");
}

int run_probe(const ProbeArgs& args) {
  const eval::ZeroShotTask task = probe_task(args);
  const auto preset = dataset_preset(
      args.data, args.preset,
      !args.modality.empty() ? args.modality : (task.modality.empty() ? "mri" : task.modality));
  const data::StudyDataset train = split_dataset(args.data, args.train_split, preset);
  const data::StudyDataset val = split_dataset(args.data, args.val_split, preset);
  const data::StudyDataset test = split_dataset(args.data, args.test_split, preset);
  model::HlipClip clip = load_model(args.model, args.device);
  eval::ProbeOptions options;
  if (!args.l2_grid.empty()) options.l2_grid = args.l2_grid;
  if (args.bootstrap >= 0 || args.seed >= 0) {
    eval::BootstrapOptions bootstrap = task.bootstrap;
    if (args.bootstrap >= 0) bootstrap.resamples = args.bootstrap;
    if (args.seed >= 0) bootstrap.seed = static_cast<uint64_t>(args.seed);
    options.bootstrap = bootstrap;
  }
  options.image_embedding = args.image_embedding;
  options.workers = args.workers;
  options.progress = !args.no_progress;
  options.model = args.model;
  options.data = args.data;
  options.train_split = args.train_split;
  options.val_split = args.val_split;
  options.test_split = args.test_split;
  const eval::ProbeResult result = eval::evaluate_probe(*clip, task, train, val, test, options);
  create_directories(args.out);
  const std::string results = (fs::path(args.out) / "results.json").string();
  const std::string scores = (fs::path(args.out) / "scores.csv").string();
  eval::write_probe_results(result, results, scores);
  std::cout << eval::format_probe_table(result);
  std::cout << fmt::format("wrote {} and {} ({:.1f} s)\n", results, scores, result.seconds);
  return 0;
}

}  // namespace

Command probe_command() {
  return {
      "probe",
      "Linear probe on frozen image embeddings: logistic regression, L2 chosen on a validation split",
      [](CLI::App& app) {
        auto args = std::make_shared<ProbeArgs>();
        app.add_option("--model", args->model, "Model folder (open_clip_config.json + model.safetensors)")
            ->required();
        app.add_option("--data", args->data, "A prepared cache or a manifest (.jsonl, needs --preset)")
            ->required();
        app.add_option("--train-split", args->train_split, "Split the probe is fitted on")
            ->capture_default_str();
        app.add_option("--val-split", args->val_split, "Split the L2 strength is chosen on")
            ->capture_default_str();
        app.add_option("--test-split", args->test_split, "Split the probe is scored on")
            ->capture_default_str();
        app.add_option("--task", args->task,
                       fmt::format("Task name or JSON file: its classes and label keys ({})",
                                   fmt::join(eval::known_tasks(), ", ")));
        app.add_option("--labels", args->labels,
                       "Comma-separated manifest label keys: one binary probe per label (one-vs-rest)");
        app.add_option("--l2", args->l2_grid,
                       "L2 strengths to try (repeatable; default 1e-6, 1e-5, ..., 1e2)")
            ->check(CLI::PositiveNumber);
        app.add_option("--out", args->out, "Output folder for results.json and scores.csv")->required();
        app.add_option("--preset", args->preset, "Preprocessing for a manifest: a preset name or TOML file");
        app.add_option("--modality", args->modality, "mri or ct, for a cache folder given as --preset")
            ->check(CLI::IsMember({"mri", "ct"}));
        app.add_option("--image-embedding", args->image_embedding,
                       "Image row probed (default: the task's, 0: the sentence / zero-shot embedding)")
            ->check(CLI::NonNegativeNumber);
        app.add_option("--bootstrap", args->bootstrap, "Bootstrap resamples for the test AUC intervals")
            ->check(CLI::NonNegativeNumber);
        app.add_option("--seed", args->seed, "Bootstrap seed")->check(CLI::NonNegativeNumber);
        app.add_option("--workers", args->workers, "Threads reading studies ahead")->capture_default_str();
        add_device_flag(app, args->device);
        app.add_flag("--no-progress", args->no_progress, "Hide the progress bar");
        return [args] { return run_probe(*args); };
      }};
}

}  // namespace hlip::cli
