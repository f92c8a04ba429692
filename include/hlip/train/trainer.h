#pragma once
// `hlip train`: HLIP's recipe (open_clip's trainer plus HLIP's flags) on prepared studies.
//
//   hlip::train::TrainOptions options;
//   options.model = "hlip-tiny";
//   options.train_data = {"cache/mri"};
//   options.tokenizer = "tokenizer";
//   options.name = "tiny";
//   auto result = hlip::train::train(options);   // logs/tiny/{params.toml, out.log, metrics.jsonl, ...}
//
// A run folder, like open_clip's (docs/training.md):
//   LOGS/NAME/params.toml                 every resolved setting
//   LOGS/NAME/out.log                     the log
//   LOGS/NAME/metrics.jsonl               one line per logged step, one per evaluation
//   LOGS/NAME/tensorboard/                TensorBoard event files
//   LOGS/NAME/checkpoints/epoch_N.safetensors, step_N.safetensors, latest
//   LOGS/NAME/model/                      the final model: open_clip_config.json, model.safetensors,
//   tokenizer/
//
// Checkpoints hold the model, the optimizer state, the step, the position in the data order and the random
// state; each is written atomically, so a kill at any moment leaves the previous one intact. `resume =
// "latest"` continues on the same batch sequence as the uninterrupted run.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/data/shard.h"
#include "hlip/model/clip.h"
#include "hlip/text/tokenizer.h"

namespace hlip::train {

struct TrainOptions {
  // Model
  std::string model = "hlip-tiny";  // a config name (configs/models/), a JSON config, or a model folder
  std::string tokenizer;            // a tokenizer folder or vocab.txt; default: the model folder's
  std::string finetune;             // start from these weights (a model folder or a checkpoint file)
  std::string init_2d;              // or: the vision trunk inflated from a 2D ViT / an HLIP model's 2D part
  std::string init_2d_inflation = "average";  // average | central (model/inflate.h)
  bool grad_checkpointing = false;
  double force_patch_dropout = -1;  // ≥ 0 overrides the config's rate (0: unmasked fine-tuning)
  int64_t lock_text = -1;           // ≥ 0: freeze BERT except its last N layers (open_clip's lock_text)
  bool siglip = false;              // SigLIP loss instead of CLIP (needs logit_bias)
  // Data
  std::vector<std::string> train_data;  // caches or manifests, each "PATH" or "PATH@WEIGHT"
  std::vector<std::string> val_data;    // for the validation loss; default: train_data's val split
  std::string train_split = "train";
  std::string val_split = "val";
  std::string preset;  // preprocessing for manifests that are not caches
  int64_t num_scans = 8;
  std::string text_process;   // report | sentence | sentence-and-report; "" = by the model (dual: both)
  std::string report_source;  // "" = the main report
  int workers = 2;
  // Schedule
  int64_t batch_size = 8;
  int64_t accum_freq = 1;   // open_clip: feature cache over this many micro-batches
  int64_t accum_batch = 1;  // HLIP: micro-batches concatenated before one forward
  int64_t epochs = 10;
  int64_t max_steps = 0;          // stop after this many optimizer steps (0: all epochs)
  std::string zeroshot_template;  // replaces the periodic zero-shot task's templates ("": the task's)
  int64_t profile_steps = 0;      // LibTorch's operator profiler over this many steps after 5 warm-up steps
  double lr = 5e-4;
  double wd = 0.2;
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-6;
  int64_t warmup = 10000;
  std::string lr_scheduler = "cosine";  // cosine | const | const-cooldown
  int64_t epochs_cooldown = 0;
  double lr_cooldown_end = 0.0;
  double lr_cooldown_power = 1.0;
  double grad_clip_norm = 0.0;     // 0: no clipping
  std::string precision = "fp32";  // fp32 | amp_bf16 | pure_bf16
  std::string device = "cpu";      // cpu | cuda | cuda:N ("cuda": cuda:LOCAL_RANK in data-parallel runs)
  uint64_t seed = 0;
  // Run folder
  std::string logs = "logs";
  std::string name;              // default: a time stamp
  std::string resume;            // "latest" or a checkpoint path
  int64_t save_frequency = 1;    // checkpoint every N epochs
  int64_t save_every_steps = 0;  // and every N steps (0: only at epoch ends)
  int64_t log_every_steps = 1;
  int64_t val_frequency = 1;               // validation loss every N epochs (0: never)
  int64_t zeroshot_frequency = 0;          // zero-shot evaluation every N epochs (needs an evaluator)
  std::string zeroshot_task;               // the task `hlip train` evaluates (configs/tasks/ name or file)
  std::vector<std::string> zeroshot_data;  // default: the validation data
  std::string zeroshot_split = "val";
  bool progress = true;
  bool delete_previous_checkpoint = false;
  // Data-parallel (docs/distributed.md)
  int64_t nproc_per_node = 1;  // `hlip train` starts this many local workers
  bool gather_with_grad = false;
  bool local_loss = false;
  double dist_timeout = 1800;  // seconds
};

// Every setting as a TOML document (params.toml) and back; unknown keys are errors naming the key.
std::string to_toml(const TrainOptions& options);
TrainOptions options_from_toml(const std::string& path);

// Called every `zeroshot_frequency` epochs with the model in eval mode; returns metrics (name → value) that
// go to metrics.jsonl and TensorBoard under "zeroshot/". In data-parallel training every rank calls it with
// its `shard` of the evaluation data (eval::ZeroShotOptions::shard); rank 0's metrics are logged.
using Evaluator = std::function<std::map<std::string, double>(
    model::HlipClip& model, const text::Tokenizer& tokenizer, int64_t epoch, const data::Shard& shard)>;

struct TrainResult {
  std::string run_dir;
  std::string model_dir;  // the final model folder
  int64_t steps = 0;
  int64_t epochs = 0;
  double final_loss = 0;  // mean training loss of the last epoch
  int64_t skipped_steps = 0;
  int64_t failed_studies = 0;
  double seconds = 0;
  double studies_per_second = 0;
};

TrainResult train(const TrainOptions& options, const Evaluator& evaluator = {});

// The file a checkpoint reference means: "latest" in `run_dir`, or the path itself.
std::string resolve_checkpoint(const std::string& run_dir, const std::string& reference);

}  // namespace hlip::train
