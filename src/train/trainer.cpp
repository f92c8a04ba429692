#include "hlip/train/trainer.h"

#include <ATen/Parallel.h>
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define HLIP_HAVE_RECORD_PROFILE 1
#endif
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "hlip/core/device.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/core/progress.h"
#include "hlip/core/random.h"
#include "hlip/data/dataset.h"
#include "hlip/data/loader.h"
#include "hlip/io/safetensors.h"
#include "hlip/io/tensorboard.h"
#include "hlip/model/inflate.h"
#include "hlip/model/losses.h"
#include "hlip/model/state_dict.h"
#include "hlip/text/tensors.h"
#include "hlip/text/tokenizer.h"
#include "hlip/train/distributed.h"
#include "hlip/train/optim.h"
#include "hlip/train/options.h"

namespace hlip::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kMaxBadStepsInARow = 10;
constexpr const char* kCheckpointKey = "hlip.checkpoint";
constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr const char* kRngKey = "rng.cpu";
constexpr const char* kRankRngKey = "rng.cpu.ranks";  // data-parallel: every rank's generator state, by rank
constexpr const char* kCudaRngKey = "rng.cuda";       // training on a GPU: its generator's state
constexpr const char* kCudaRankRngKey = "rng.cuda.ranks";  // ... every rank's, by rank

bool is_rng_key(const std::string& name) {
  return name.rfind("rng.", 0) == 0;
}

enum class Precision { kFp32, kAmpBf16, kPureBf16 };

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "amp_bf16" || name == "amp") return Precision::kAmpBf16;
  if (name == "pure_bf16") return Precision::kPureBf16;
  throw UsageError(fmt::format("precision \"{}\" is unknown, expected fp32, amp_bf16 or pure_bf16", name));
}

std::string time_stamp() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof(text), "%Y_%m_%d-%H_%M_%S", &local);
  return text;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

bool is_model_dir(const std::string& path) {
  std::error_code error;
  return fs::is_regular_file(fs::path(path) / "open_clip_config.json", error);
}

// Where the run's state stands: what a checkpoint records besides tensors.
struct Position {
  int64_t step = 0;        // optimizer steps done
  int64_t epoch = 0;       // the epoch in progress (or the next one when `next_batch` is 0)
  int64_t next_batch = 0;  // the loader batch to continue from within `epoch`
};

struct Checkpoint {
  std::map<std::string, at::Tensor> model;
  std::map<std::string, at::Tensor> optimizer;
  at::Tensor rng;
  at::Tensor rank_rng;       // [world, state bytes] of a data-parallel run
  at::Tensor cuda_rng;       // a run on a GPU: the device generator's state
  at::Tensor cuda_rank_rng;  // ... of every rank
  Position position;
  json meta;
};

Checkpoint read_checkpoint(const std::string& path) {
  auto file = io::read_safetensors(path);
  const auto meta_text = file.metadata.find(kCheckpointKey);
  if (meta_text == file.metadata.end()) {
    throw Error(
        fmt::format("{}: not an hlip training checkpoint (no \"{}\" metadata)", path, kCheckpointKey));
  }
  Checkpoint out;
  out.meta = json::parse(meta_text->second, nullptr, false);
  if (!out.meta.is_object())
    throw Error(fmt::format("{}: metadata \"{}\" is not JSON", path, kCheckpointKey));
  out.position = {out.meta.value("step", int64_t{0}), out.meta.value("epoch", int64_t{0}),
                  out.meta.value("next_batch", int64_t{0})};
  const std::string optimizer_prefix = kOptimizerPrefix;
  for (auto& [name, tensor] : file.tensors) {
    if (name == kRngKey) {
      out.rng = tensor;
    } else if (name == kRankRngKey) {
      out.rank_rng = tensor;
    } else if (name == kCudaRngKey) {
      out.cuda_rng = tensor;
    } else if (name == kCudaRankRngKey) {
      out.cuda_rank_rng = tensor;
    } else if (is_rng_key(name)) {
      continue;
    } else if (name.rfind(optimizer_prefix, 0) == 0) {
      out.optimizer.emplace(name.substr(optimizer_prefix.size()), tensor);
    } else {
      out.model.emplace(name, tensor);
    }
  }
  return out;
}

// Weights to fine-tune from: a model folder, a training checkpoint (without its optimizer state and RNG), or
// a bare safetensors file.
std::map<std::string, at::Tensor> read_weights(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (auto& [name, tensor] : model::read_model_weights(path)) {
    if (name.rfind(kOptimizerPrefix, 0) != 0 && !is_rng_key(name)) out.emplace(name, tensor);
  }
  return out;
}

std::string format_metric(double value) {
  return fmt::format("{:.4g}", value);
}

// `--profile-steps N`: LibTorch's operator profiler over N steps after kWarmupSteps of this process, written
// as a Chrome trace (chrome://tracing, Perfetto) when the last of them ends.
class OperatorProfile {
 public:
  static constexpr int64_t kWarmupSteps = 5;

  OperatorProfile(int64_t steps, fs::path path, spdlog::logger& logger)
      : steps_(steps), path_(std::move(path)), logger_(logger) {}

  void before_step() {
#ifdef HLIP_HAVE_RECORD_PROFILE
    if (steps_ <= 0 || started_ != kWarmupSteps || recording_) return;
    fs::create_directories(path_.parent_path());
    recording_ = std::make_unique<torch::autograd::profiler::RecordProfile>(path_.string());
#endif
  }

  void after_step() {
    ++started_;
#ifdef HLIP_HAVE_RECORD_PROFILE
    if (recording_ && started_ == kWarmupSteps + steps_) {
      recording_.reset();  // writes the trace
      logger_.info("operator profile of steps {}-{} of this run: {}", kWarmupSteps + 1, started_,
                   path_.string());
    }
#endif
  }

 private:
  int64_t steps_;
  fs::path path_;
  spdlog::logger& logger_;
  int64_t started_ = 0;
#ifdef HLIP_HAVE_RECORD_PROFILE
  std::unique_ptr<torch::autograd::profiler::RecordProfile> recording_;
#endif
};

// The model, and for amp_bf16 a bf16 copy that does the computing while the
// fp32 master takes the updates; both on the training device.
class Models {
 public:
  Models(const model::ClipConfig& config, Precision precision, const c10::Device& device)
      : precision_(precision) {
    master = model::HlipClip(config);
    master->to(device, precision_ == Precision::kPureBf16 ? at::kBFloat16 : at::kFloat);
    if (precision_ == Precision::kAmpBf16) {
      compute_ = model::HlipClip(config);
      compute_->to(device, at::kBFloat16);
    }
  }

  model::HlipClip& compute() { return precision_ == Precision::kAmpBf16 ? compute_ : master; }

  // The compute copy's tensor of each of `parameters` (the master's), matched by name.
  std::vector<at::Tensor> compute_parameters(const std::vector<NamedParameter>& parameters) {
    auto named = compute()->named_parameters(true);
    std::vector<at::Tensor> out;
    for (const auto& parameter : parameters)
      out.push_back(named[parameter.name]);
    return out;
  }
  at::ScalarType dtype() const { return precision_ == Precision::kFp32 ? at::kFloat : at::kBFloat16; }

  // After the master weights changed (load, optimizer step): refresh the bf16
  // copy.
  void sync_compute() {
    if (precision_ != Precision::kAmpBf16) return;
    at::NoGradGuard no_grad;
    const auto from = master->named_parameters(true);
    auto to = compute_->named_parameters(true);
    for (const auto& item : from)
      to[item.key()].copy_(item.value());
    const auto from_buffers = master->named_buffers(true);
    auto to_buffers = compute_->named_buffers(true);
    for (const auto& item : from_buffers)
      to_buffers[item.key()].copy_(item.value());
  }

  // Before the optimizer step: the bf16 copy's gradients become the master's,
  // in fp32.
  void gradients_to_master() {
    if (precision_ != Precision::kAmpBf16) return;
    const auto from = compute_->named_parameters(true);
    auto to = master->named_parameters(true);
    for (const auto& item : from) {
      at::Tensor& target = to[item.key()];
      if (!target.requires_grad()) continue;
      const at::Tensor& grad = item.value().grad();
      target.mutable_grad() = grad.defined() ? grad.to(at::kFloat) : at::Tensor();
    }
  }

  void zero_compute_grad() {
    if (precision_ == Precision::kAmpBf16) compute_->zero_grad(/*set_to_none=*/true);
  }

  void train_mode(bool on) {
    master->train(on);
    if (precision_ == Precision::kAmpBf16) compute_->train(on);
  }

  model::HlipClip master{nullptr};

 private:
  Precision precision_;
  model::HlipClip compute_{nullptr};
};

struct StepLoss {
  at::Tensor total;
  at::Tensor sentence;
  at::Tensor report;
  // What to log: the values, averaged over ranks in data-parallel training (NaN for an undefined term).
  double total_value = 0;
  double sentence_value = 0;
  double report_value = 0;
};

class Trainer {
 public:
  Trainer(TrainOptions options, const Evaluator& evaluator)
      : options_(std::move(options)),
        evaluator_(evaluator),
        precision_(parse_precision(options_.precision)) {}

  TrainResult run();

 private:
  void validate_options() const;
  void set_up_run_folder();
  void build_model();
  void load_init_2d(model::HlipClipImpl& model);
  void build_data();
  text::TextTensors encode_texts(const std::vector<std::vector<std::string>>& texts) const;
  // `across_ranks`: in data-parallel training, against the features of every rank (open_clip's gather).
  StepLoss compute_loss(const at::Tensor& image_features, const at::Tensor& text_features,
                        const model::ClipOutput& output, int64_t batch, bool across_ranks = true) const;
  model::ClipOutput forward(model::HlipClipImpl& model, const data::StudyBatch& batch,
                            const text::TextTensors& texts) const;
  std::optional<StepLoss> train_step(std::vector<data::StudyBatch>& micro);
  double validation_loss();
  void save_checkpoint(const std::string& name, const Position& position);
  void log_metrics(const json& line);
  // Data-parallel helpers; with one process they do what that one process needs.
  bool is_root() const { return !group_ || group_->rank() == 0; }
  std::string share_from_root(const std::string& value);
  bool agree_finite(StepLoss& loss);
  void connect_ranks();
  void synchronise_start();
  void restore_cuda_rng(int world);

  TrainOptions options_;
  Evaluator evaluator_;
  Precision precision_;
  c10::Device device_{c10::kCPU};
  fs::path run_dir_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<io::EventWriter> events_;
  std::ofstream metrics_;

  model::ClipConfig config_;
  std::string tokenizer_path_;
  std::optional<nlohmann::json> preset_record_;  // the one preprocessing preset of the training data, if any
  std::optional<text::Tokenizer> tokenizer_;
  std::unique_ptr<Models> models_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<data::StudyDataset> train_set_;
  std::unique_ptr<data::StudyDataset> val_set_;
  std::unique_ptr<data::StudyLoader> loader_;
  ScheduleOptions schedule_;
  Position position_;
  std::optional<Checkpoint> resumed_;
  bool dual_ = false;
  int64_t skipped_steps_ = 0;
  DistEnv env_;
  std::unique_ptr<ProcessGroup> group_;
  std::unique_ptr<GradReducer> reducer_;
};

void Trainer::validate_options() const {
  if (options_.train_data.empty()) throw UsageError("no --train-data given");
  const auto positive = [](const char* name, int64_t value) {
    if (value < 1) throw UsageError(fmt::format("--{} {} must be at least 1", name, value));
  };
  positive("batch-size", options_.batch_size);
  positive("accum-freq", options_.accum_freq);
  positive("accum-batch", options_.accum_batch);
  positive("epochs", options_.epochs);
  positive("save-frequency", options_.save_frequency);
  positive("log-every-steps", options_.log_every_steps);
  if (options_.profile_steps < 0)
    throw UsageError(fmt::format("--profile-steps {} is negative", options_.profile_steps));
#ifndef HLIP_HAVE_RECORD_PROFILE
  if (options_.profile_steps > 0)
    throw UsageError("--profile-steps: this LibTorch has no operator profiler (profiler_legacy.h)");
#endif
  if (options_.num_scans < 1)
    throw UsageError(fmt::format("--num-scans {} must be at least 1", options_.num_scans));
  if (options_.warmup < 0) throw UsageError(fmt::format("--warmup {} is negative", options_.warmup));
  (void)parse_schedule(options_.lr_scheduler);
  if (!options_.text_process.empty()) (void)text::parse_text_process(options_.text_process);
  positive("nproc-per-node", options_.nproc_per_node);
  if (!(options_.dist_timeout > 0))
    throw UsageError(fmt::format("--dist-timeout {} must be positive (seconds)", options_.dist_timeout));
}

// The process group of `env_` (torchrun's or Slurm's variables, set by `--nproc-per-node` for local workers).
void Trainer::connect_ranks() {
  if (!env_.distributed()) return;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.dist_timeout * 1000));
  group_ = ProcessGroup::connect(env_, timeout);
  if (group_->rank() != 0) options_.progress = false;
}

// Rank 0's `value` on every rank (a run name, a checkpoint path).
std::string Trainer::share_from_root(const std::string& value) {
  if (!group_) return value;
  at::Tensor length = at::tensor({static_cast<int64_t>(value.size())}, at::kLong);
  group_->broadcast({length});
  at::Tensor bytes = at::zeros({length.item<int64_t>()}, at::kByte);
  if (group_->rank() == 0) std::memcpy(bytes.data_ptr(), value.data(), value.size());
  group_->broadcast({bytes});
  return std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
}

void Trainer::set_up_run_folder() {
  const std::string name = share_from_root(options_.name.empty() ? time_stamp() : options_.name);
  run_dir_ = fs::path(options_.logs) / name;
  const fs::path checkpoints = run_dir_ / "checkpoints";
  if (options_.resume.empty() && fs::exists(checkpoints / "latest")) {
    throw UsageError(
        fmt::format("run folder {} already holds checkpoints: "
                    "pass --resume latest to continue it, "
                    "or choose another --name",
                    run_dir_.string()));
  }
  if (!is_root()) {  // rank 0 alone writes the run folder; the others log warnings and errors
    logger_ =
        std::make_shared<spdlog::logger>(fmt::format("train rank {}", group_->rank()),
                                         spdlog::sinks_init_list{spdlog::default_logger()->sinks().front()});
    logger_->set_level(spdlog::level::warn);
    return;
  }
  create_directories(checkpoints.string());
  logger_ = std::make_shared<spdlog::logger>(
      "train", spdlog::sinks_init_list{spdlog::default_logger()->sinks().front(),
                                       std::make_shared<spdlog::sinks::basic_file_sink_mt>(
                                           (run_dir_ / "out.log").string(), /*truncate=*/false)});
  logger_->set_level(spdlog::level::info);
  events_ = std::make_unique<io::EventWriter>((run_dir_ / "tensorboard").string());
  metrics_.open(run_dir_ / "metrics.jsonl", std::ios::app);
  if (!metrics_)
    throw Error(fmt::format("{}: cannot open for writing", (run_dir_ / "metrics.jsonl").string()));
}

void Trainer::build_model() {
  const bool model_dir = is_model_dir(options_.model);
  config_ = model_dir ? model::read_clip_config((fs::path(options_.model) / "open_clip_config.json").string())
                      : model::resolve_clip_config(options_.model);
  if (options_.force_patch_dropout >= 0) config_.vision.patch_dropout = options_.force_patch_dropout;
  dual_ = config_.vision.pooling == model::Pooling::kDual;
  if (options_.text_process.empty()) options_.text_process = dual_ ? "sentence-and-report" : "report";
  const auto mode = text::parse_text_process(options_.text_process);
  if (dual_ != (mode == text::TextProcess::kSentenceAndReport)) {
    throw UsageError(
        fmt::format("--text-process {} does not fit model {}: dual-pooling models train on "
                    "sentence-and-report, the others on report or sentence",
                    options_.text_process, options_.model));
  }
  if (options_.siglip && !config_.init_logit_bias) {
    throw UsageError(
        fmt::format("--siglip needs a model with logit_bias (init_logit_bias); {} has none", options_.model));
  }
  if (options_.siglip && dual_) throw UsageError("--siglip is for single-embedding models, not dual pooling");

  tokenizer_path_ = options_.tokenizer;
  if (tokenizer_path_.empty() && model_dir) tokenizer_path_ = model::model_dir_tokenizer(options_.model);
  if (tokenizer_path_.empty() && !options_.finetune.empty() && fs::is_directory(options_.finetune)) {
    tokenizer_path_ = model::model_dir_tokenizer(options_.finetune);
  }
  if (tokenizer_path_.empty()) throw UsageError("no tokenizer: pass --tokenizer (a folder or vocab.txt)");
  tokenizer_.emplace(text::Tokenizer::from_pretrained(tokenizer_path_));

  at::manual_seed(static_cast<uint64_t>(derive_seed(options_.seed, name_hash("init"))));
  models_ = std::make_unique<Models>(config_, precision_, device_);
  model::HlipClip& model = models_->master;
  if (model_dir || !options_.finetune.empty()) {
    const std::string source = !options_.finetune.empty() ? options_.finetune : options_.model;
    const auto report = model::load_state_dict(*model, read_weights(source));
    logger_->info("weights from {}: {}", source, report.summary());
  }
  if (!options_.init_2d.empty()) load_init_2d(*model);
  if (options_.lock_text >= 0) model->lock_text(options_.lock_text);
  if (options_.grad_checkpointing) models_->compute()->set_grad_checkpointing(true);

  if (!options_.resume.empty()) {
    const std::string path =
        share_from_root(is_root() ? resolve_checkpoint(run_dir_.string(), options_.resume) : "");
    resumed_ = read_checkpoint(path);
    model::load_state_dict(*model, resumed_->model);
    position_ = resumed_->position;
    logger_->info("resuming from {} at step {} (epoch {}, batch {})", path, position_.step, position_.epoch,
                  position_.next_batch);
  }
  synchronise_start();
  models_->sync_compute();
  optimizer_ = std::make_unique<AdamW>(
      named_trainable_parameters(*model),
      AdamWOptions{options_.lr, options_.wd, options_.beta1, options_.beta2, options_.eps});
  if (resumed_) {
    optimizer_->load_state(resumed_->optimizer);
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the shared one
    const int world = group_ ? group_->world_size() : 1;
    if (resumed_->rank_rng.defined() && resumed_->rank_rng.size(0) == world) {
      generator.set_state(resumed_->rank_rng[group_ ? group_->rank() : 0].clone());
    } else if (resumed_->rng.defined() && is_root()) {
      generator.set_state(resumed_->rng);
    } else if (resumed_->rank_rng.defined()) {
      logger_->warn("the checkpoint holds the random state of {} ranks, this run has {}: ranks reseeded",
                    resumed_->rank_rng.size(0), world);
    }
    if (device_.is_cuda()) restore_cuda_rng(world);
  }
  if (group_) {
    std::vector<at::Tensor> hooked = models_->compute_parameters(optimizer_->parameters());
    std::vector<at::Tensor> targets;
    for (const auto& parameter : optimizer_->parameters())
      targets.push_back(parameter.tensor);
    reducer_ = std::make_unique<GradReducer>(*group_, std::move(hooked), std::move(targets));
    logger_->info("data-parallel: rank {} of {} ({}), Gloo, {} gradient buckets{}{}", group_->rank(),
                  group_->world_size(), env_.source, reducer_->buckets(),
                  options_.gather_with_grad ? ", gather with grad" : "",
                  options_.local_loss ? ", local loss" : "");
    if (options_.local_loss && !options_.gather_with_grad) {
      logger_->warn(
          "--local-loss without --gather-with-grad: no gradient flows through the other ranks' rows (as in "
          "open_clip); add --gather-with-grad for the full gradient");
    }
  }
  int64_t parameters = 0;
  for (const auto& p : optimizer_->parameters())
    parameters += p.tensor.numel();
  logger_->info("model {}: {:.2f} M trainable parameters, precision {}, device {}", options_.model,
                parameters / 1e6, options_.precision, device_.str());
}

// Data-parallel start: every rank holds rank 0's weights, and ranks other than 0 draw their own random
// streams (patch dropout, BERT dropout), as open_clip seeds each rank with seed + rank.
void Trainer::synchronise_start() {
  if (!group_) return;
  std::vector<at::Tensor> tensors;
  {
    at::NoGradGuard no_grad;
    for (const auto& item : models_->master->named_parameters(true))
      tensors.push_back(item.value());
    for (const auto& item : models_->master->named_buffers(true))
      tensors.push_back(item.value());
    // Gloo carries fp32 CPU tensors; bf16 weights travel as fp32 and come back exactly, GPU ones through
    // host memory.
    std::vector<at::Tensor> wire;
    for (const auto& tensor : tensors) {
      wire.push_back(tensor.is_floating_point() ? tensor.to(at::kCPU, at::kFloat).contiguous()
                                                : tensor.to(at::kCPU).contiguous());
    }
    group_->broadcast(wire);
    for (size_t k = 0; k < tensors.size(); ++k)
      tensors[k].copy_(wire[k]);
  }
  if (group_->rank() != 0) {
    at::manual_seed(
        derive_seed(derive_seed(options_.seed, name_hash("rank")), static_cast<uint64_t>(group_->rank())));
  }
}

// Resuming on a GPU: the device generator continues where the checkpoint's run left it (each rank's own in a
// data-parallel run of the same size); a checkpoint from a CPU run leaves it seeded.
void Trainer::restore_cuda_rng(int world) {
  at::Generator generator = at::globalContext().defaultGenerator(device_);
  if (resumed_->cuda_rank_rng.defined() && resumed_->cuda_rank_rng.size(0) == world) {
    generator.set_state(resumed_->cuda_rank_rng[group_ ? group_->rank() : 0].clone());
  } else if (resumed_->cuda_rng.defined() && world == 1) {
    generator.set_state(resumed_->cuda_rng);
  } else {
    logger_->warn(
        "the checkpoint holds no GPU random state for this run's {} rank{}: the GPU generator is "
        "seeded afresh (dropout draws differ from the interrupted run)",
        world, world == 1 ? "" : "s");
  }
}

// `--init-2d PATH`: the vision trunk from a 2D ViT, inflated to this model's patch and grid (HLIP's 2D → 3D
// initialisation); the head, the text tower and register tokens keep their fresh initialisation.
void Trainer::load_init_2d(model::HlipClipImpl& model) {
  if (!options_.finetune.empty() || is_model_dir(options_.model)) {
    throw UsageError(fmt::format(
        "--init-2d {} starts from a 2D model; it cannot be combined with {}", options_.init_2d,
        options_.finetune.empty() ? "--model " + options_.model : "--finetune " + options_.finetune));
  }
  model::PatchInflation inflation;
  try {
    inflation = model::parse_patch_inflation(options_.init_2d_inflation);
  } catch (const Error& e) {
    throw UsageError(fmt::format("--init-2d-inflation: {}", e.what()));
  }
  std::map<std::string, at::Tensor> state;
  try {
    for (auto& [key, value] :
         model::inflate_2d_state_dict(model::read_2d_source(options_.init_2d), config_.vision, inflation))
      state.emplace("visual.trunk." + key, value);
  } catch (const Error& e) {
    throw Error(fmt::format("--init-2d: {}", e.what()));
  }
  model::LoadOptions load;
  load.strict = false;
  const auto report = model::load_state_dict(model, state, load);
  logger_->info("vision trunk from the 2D model {} ({} inflation): {} tensors", options_.init_2d,
                model::to_string(inflation), report.loaded.size());
}

// The preprocessing every training scan went through, for the model folder (preprocess_cfg.hlip_preset), so
// that `hlip zeroshot --study` prepares raw scans the same way: the `--preset` of raw manifests and the
// preset each cache records (cache.json "presets"). Several different ones (e.g. MRI and CT caches) record
// none.
std::optional<nlohmann::json> training_preset(const std::vector<data::DataSource>& sources,
                                              const std::optional<preprocess::Preset>& preset) {
  std::optional<nlohmann::json> found;
  const auto add = [&](const nlohmann::json& candidate) {
    if (found && *found != candidate) return false;
    found = candidate;
    return true;
  };
  for (const auto& source : sources) {
    if (!data::is_cache_dir(source.path)) {
      if (!preset || !add(preprocess::to_json(*preset))) return std::nullopt;
      continue;
    }
    nlohmann::json presets;
    try {
      presets = data::cache_presets(source.path);
    } catch (const Error& e) {
      spdlog::warn("no preset recorded for the model: {}", e.what());
      return std::nullopt;
    }
    if (presets.size() != 1 || !add(presets.begin().value())) return std::nullopt;
  }
  return found;
}

void Trainer::build_data() {
  std::optional<preprocess::Preset> preset;
  if (!options_.preset.empty()) preset = preprocess::preset_by_name(options_.preset);
  std::vector<data::DataSource> sources;
  for (const auto& spec : options_.train_data)
    sources.push_back(data::parse_data_source(spec));
  train_set_ = std::make_unique<data::StudyDataset>(sources, options_.train_split, preset);
  preset_record_ = training_preset(sources, preset);
  if (train_set_->size() == 0) {
    throw UsageError(fmt::format("no studies of split \"{}\" in the training data", options_.train_split));
  }
  std::vector<data::DataSource> val_sources;
  for (const auto& spec : options_.val_data.empty() ? options_.train_data : options_.val_data) {
    val_sources.push_back(data::parse_data_source(spec));
  }
  if (options_.val_frequency > 0) {
    val_set_ = std::make_unique<data::StudyDataset>(val_sources, options_.val_split, preset);
    if (val_set_->size() < 2) val_set_.reset();  // a contrastive loss needs two studies
  }
  data::LoaderOptions loader;
  loader.batch_size = options_.batch_size;
  loader.num_scans = options_.num_scans;
  loader.seed = options_.seed;
  loader.workers = options_.workers;
  loader.pin_memory = device_.is_cuda();
  loader.report.mode = text::parse_text_process(options_.text_process);
  loader.report_source = options_.report_source;
  if (group_) {
    loader.rank = group_->rank();
    loader.world_size = group_->world_size();
  }
  loader_ = std::make_unique<data::StudyLoader>(*train_set_, loader);

  const int64_t micro_per_step = options_.accum_freq * options_.accum_batch;
  const int64_t steps_per_epoch = loader_->batches_per_epoch() / micro_per_step;
  if (steps_per_epoch < 1) {
    throw UsageError(fmt::format("{} training studies make no full step of {} × {} × {} studies{}",
                                 train_set_->size(), options_.batch_size, options_.accum_batch,
                                 options_.accum_freq,
                                 group_ ? fmt::format(" on each of {} ranks", group_->world_size()) : ""));
  }
  schedule_.schedule = parse_schedule(options_.lr_scheduler);
  schedule_.base_lr = options_.lr;
  schedule_.warmup_steps = options_.warmup;
  schedule_.total_steps = steps_per_epoch * options_.epochs;
  if (options_.max_steps > 0) schedule_.total_steps = std::min(schedule_.total_steps, options_.max_steps);
  schedule_.cooldown_steps = steps_per_epoch * options_.epochs_cooldown;
  schedule_.lr_cooldown_end = options_.lr_cooldown_end;
  schedule_.cooldown_power = options_.lr_cooldown_power;
  logger_->info("{} training studies, {} steps per epoch, {} steps in all", train_set_->size(),
                steps_per_epoch, schedule_.total_steps);
}

text::TextTensors Trainer::encode_texts(const std::vector<std::vector<std::string>>& texts) const {
  // Sentences first, then reports (split_text_features' order).
  std::vector<std::string> flat;
  const size_t per_study = texts.empty() ? 1 : texts.front().size();
  for (size_t column = 0; column < per_study; ++column) {
    for (const auto& study : texts)
      flat.push_back(study.at(column));
  }
  return text::to_tensors(
      tokenizer_->encode_batch(flat, text::EncodeOptions::up_to_length(config_.text.context_length)));
}

model::ClipOutput Trainer::forward(model::HlipClipImpl& model, const data::StudyBatch& batch,
                                   const text::TextTensors& texts) const {
  const bool async = device_.is_cuda() && batch.image.is_pinned();
  return model.forward(batch.image.to(device_, models_->dtype(), /*non_blocking=*/async),
                       texts.input_ids.to(device_), texts.attention_mask.to(device_));
}

StepLoss Trainer::compute_loss(const at::Tensor& image_features, const at::Tensor& text_features,
                               const model::ClipOutput& output, int64_t batch, bool across_ranks) const {
  ProcessGroup* group = across_ranks ? group_.get() : nullptr;
  const at::Tensor image = image_features.to(at::kFloat);
  const at::Tensor text = text_features.to(at::kFloat);
  const at::Tensor scale = output.logit_scale.to(at::kFloat);
  const at::Tensor bias = output.logit_bias.defined() ? output.logit_bias.to(at::kFloat) : at::Tensor();
  if (options_.siglip) {
    at::Tensor loss = model::siglip_loss(image.select(1, 0), text, scale, bias);
    if (group) {
      // open_clip's SigLIP across ranks: this rank's images against every other rank's texts as negatives;
      // the texts travel with their gradient (open_clip's neighbour exchange does too).
      const at::Tensor all_text = gather_features(*group, text, /*with_grad=*/true);
      const int64_t rows = text.size(0);
      for (int r = 0; r < group->world_size(); ++r) {
        if (r == group->rank()) continue;
        loss = loss + model::siglip_loss(image.select(1, 0), all_text.slice(0, r * rows, (r + 1) * rows),
                                         scale, bias, /*negative_only=*/true);
      }
    }
    return {loss, loss, at::Tensor()};
  }
  const auto [sentences, reports] = model::split_text_features(text, batch);
  if (!group) {
    const auto loss = model::hlip_loss(image, sentences, reports, scale, bias);
    return {loss.total, loss.sentence, loss.report};
  }
  // open_clip's ClipLoss across ranks: features gathered from every rank; the full matrix on every rank,
  // or with --local-loss this rank's rows against the gathered columns.
  const bool with_grad = options_.gather_with_grad;
  model::GatheredFeatures all;
  all.image = gather_features(*group, image, with_grad);
  all.sentence = gather_features(*group, sentences, with_grad);
  if (reports.defined()) all.report = gather_features(*group, reports, with_grad);
  all.offset = group->rank() * batch;
  const auto loss = options_.local_loss ? model::hlip_loss(image, sentences, reports, scale, bias, &all)
                                        : model::hlip_loss(all.image, all.sentence, all.report, scale, bias);
  return {loss.total, loss.sentence, loss.report};
}

std::optional<StepLoss> Trainer::train_step(std::vector<data::StudyBatch>& micro) {
  model::HlipClipImpl& model = *models_->compute();
  std::vector<text::TextTensors> texts;
  for (const auto& batch : micro)
    texts.push_back(encode_texts(batch.texts));
  StepLoss loss;
  if (micro.size() == 1) {
    const auto output = forward(model, micro[0], texts[0]);
    loss = compute_loss(output.image_features, output.text_features, output, micro[0].image.size(0));
    if (!agree_finite(loss)) return std::nullopt;
    if (reducer_) reducer_->prepare();
    loss.total.backward();
  } else {
    // open_clip's accum-freq: features of every micro-batch without gradients
    // first, then each micro-batch again with gradients, its features swapped
    // into the full set, so every loss sees all negatives.
    std::vector<at::Tensor> images, sentences, reports;
    int64_t total = 0;
    {
      at::NoGradGuard no_grad;
      for (size_t j = 0; j < micro.size(); ++j) {
        const auto output = forward(model, micro[j], texts[j]);
        const int64_t b = micro[j].image.size(0);
        images.push_back(output.image_features);
        sentences.push_back(output.text_features.slice(0, 0, b));
        reports.push_back(output.text_features.slice(0, b));
        total += b;
      }
    }
    for (size_t j = 0; j < micro.size(); ++j) {
      const auto output = forward(model, micro[j], texts[j]);
      const int64_t b = micro[j].image.size(0);
      auto all_images = images;
      auto all_sentences = sentences;
      auto all_reports = reports;
      all_images[j] = output.image_features;
      all_sentences[j] = output.text_features.slice(0, 0, b);
      all_reports[j] = output.text_features.slice(0, b);
      at::Tensor text = at::cat(all_sentences);
      if (dual_) text = at::cat({text, at::cat(all_reports)});
      loss = compute_loss(at::cat(all_images), text, output, total);
      if (!agree_finite(loss)) return std::nullopt;
      if (reducer_ && j + 1 == micro.size()) reducer_->prepare();  // the last pass reduces the sum
      loss.total.backward();
    }
  }
  return loss;
}

// Whether every rank's loss is finite (all skip the step together otherwise), and the values to log: the
// mean over ranks.
bool Trainer::agree_finite(StepLoss& loss) {
  const auto value = [](const at::Tensor& tensor) {
    return tensor.defined() ? tensor.item<double>() : std::nan("");
  };
  loss.total_value = value(loss.total);
  loss.sentence_value = value(loss.sentence);
  loss.report_value = value(loss.report);
  if (group_) {
    at::Tensor values = at::tensor({loss.total_value, loss.sentence_value, loss.report_value}, at::kDouble);
    group_->all_reduce_sum(values);
    values.div_(group_->world_size());
    loss.total_value = values[0].item<double>();
    loss.sentence_value = values[1].item<double>();
    loss.report_value = values[2].item<double>();
  }
  return std::isfinite(loss.total_value);
}

double Trainer::validation_loss() {
  if (!val_set_) return std::nan("");
  data::LoaderOptions options;
  const int64_t world = group_ ? group_->world_size() : 1;  // each rank scores its share of the batches
  options.batch_size = std::max<int64_t>(
      1, std::min<int64_t>(options_.batch_size * options_.accum_batch, val_set_->size() / world));
  options.num_scans = options_.num_scans;
  options.seed = derive_seed(options_.seed, name_hash("validation"));
  options.shuffle = false;
  options.workers = options_.workers;
  options.pin_memory = device_.is_cuda();
  options.report.mode = text::parse_text_process(options_.text_process);
  options.report_source = options_.report_source;
  if (group_) {  // the sums meet below
    options.rank = group_->rank();
    options.world_size = group_->world_size();
  }
  data::StudyLoader loader(*val_set_, options);
  loader.start(0);
  at::NoGradGuard no_grad;
  models_->train_mode(false);
  double sum = 0;
  int64_t count = 0;
  while (auto batch = loader.next()) {
    if (batch->image.size(0) < 2) continue;
    const auto texts = encode_texts(batch->texts);
    const auto output = forward(*models_->compute(), *batch, texts);
    sum += compute_loss(output.image_features, output.text_features, output, batch->image.size(0),
                        /*across_ranks=*/false)
               .total.item<double>();
    ++count;
  }
  if (group_) {
    at::Tensor totals = at::tensor({sum, static_cast<double>(count)}, at::kDouble);
    group_->all_reduce_sum(totals);
    sum = totals[0].item<double>();
    count = static_cast<int64_t>(totals[1].item<double>());
  }
  models_->train_mode(true);
  return count > 0 ? sum / static_cast<double>(count) : std::nan("");
}

void Trainer::save_checkpoint(const std::string& name, const Position& position) {
  const at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  // Every rank's random state, so that a resumed data-parallel run continues each rank's stream.
  const at::Tensor rank_rng = group_ ? group_->all_gather(rng.unsqueeze(0)) : at::Tensor();
  // On a GPU, dropout and patch dropout draw from the device's generator: its state too.
  at::Tensor cuda_rng, cuda_rank_rng;
  if (device_.is_cuda()) {
    cuda_rng = at::globalContext().defaultGenerator(device_).get_state();
    if (group_) cuda_rank_rng = group_->all_gather(cuda_rng.unsqueeze(0));
  }
  if (!is_root()) return;
  std::map<std::string, at::Tensor> tensors = model::named_state(*models_->master);
  for (const auto& [key, value] : optimizer_->state())
    tensors.emplace(kOptimizerPrefix + key, value);
  tensors.emplace(kRngKey, rng);
  if (rank_rng.defined()) tensors.emplace(kRankRngKey, rank_rng);
  if (cuda_rng.defined()) tensors.emplace(kCudaRngKey, cuda_rng);
  if (cuda_rank_rng.defined()) tensors.emplace(kCudaRankRngKey, cuda_rank_rng);
  const json meta = {{"step", position.step},
                     {"epoch", position.epoch},
                     {"next_batch", position.next_batch},
                     {"skipped_steps", skipped_steps_},
                     {"model_cfg", config_.to_json()},
                     {"hlip_version", HLIP_VERSION_STRING},
                     {"world_size", group_ ? group_->world_size() : 1}};
  const fs::path dir = run_dir_ / "checkpoints";
  io::write_safetensors((dir / name).string(), tensors,
                        {{kCheckpointKey, meta.dump()}, {"format", "pt"}, {"params", to_toml(options_)}});
  write_file_atomic((dir / "latest").string(), name + "\n");
  logger_->info("checkpoint {} (step {})", (dir / name).string(), position.step);
}

void Trainer::log_metrics(const json& line) {
  if (!is_root()) return;
  metrics_ << line.dump() << "\n";
  metrics_.flush();
  const int64_t step = line.value("step", int64_t{0});
  for (const auto& [key, value] : line.items()) {
    if (!value.is_number() || key == "step" || key == "epoch") continue;
    events_->add_scalar(key, value.get<double>(), step);
  }
}

TrainResult Trainer::run() {
  const auto started = std::chrono::steady_clock::now();
  validate_options();
  // Before the ranks meet: a rank that cannot use its device stops at once instead of leaving its peers
  // waiting for it.
  env_ = dist_env_from_environment();
  device_ = resolve_device(options_.device, env_.local_rank);
  use_as_current_device(device_);
  connect_ranks();
  set_up_run_folder();
  build_model();
  build_data();
  if (is_root()) write_file_atomic((run_dir_ / "params.toml").string(), to_toml(options_));  // as resolved
  models_->train_mode(true);

  TrainResult result;
  result.run_dir = run_dir_.string();
  const int64_t micro_per_step = options_.accum_freq * options_.accum_batch;
  ProgressOptions progress_options;
  if (!options_.progress) progress_options.mode = ProgressMode::kOff;
  Progress progress("train", schedule_.total_steps, "steps", progress_options);
  progress.advance(position_.step);
  int64_t bad_in_a_row = 0;
  int64_t studies_seen = 0;
  OperatorProfile profile(options_.profile_steps, run_dir_ / "profile" / "trace.json", *logger_);
  double epoch_loss_sum = 0;
  int64_t epoch_loss_count = 0;
  bool done = position_.step >= schedule_.total_steps;
  while (!done && position_.epoch < options_.epochs) {
    const int64_t epoch = position_.epoch;
    loader_->start(epoch, position_.next_batch);
    epoch_loss_sum = 0;
    epoch_loss_count = 0;
    while (true) {
      const auto step_started = std::chrono::steady_clock::now();
      double data_wait = 0;
      // accum_freq groups of accum_batch loader batches, each group
      // concatenated into one forward.
      std::vector<data::StudyBatch> micro;
      int64_t last_batch = -1;
      for (int64_t f = 0; f < options_.accum_freq; ++f) {
        std::vector<data::StudyBatch> parts;
        for (int64_t a = 0; a < options_.accum_batch; ++a) {
          auto batch = loader_->next();
          if (!batch) break;
          data_wait += batch->wait_seconds;
          last_batch = batch->batch;
          parts.push_back(std::move(*batch));
        }
        if (static_cast<int64_t>(parts.size()) < options_.accum_batch) break;
        data::StudyBatch joined = std::move(parts.front());
        for (size_t p = 1; p < parts.size(); ++p) {
          joined.image = at::cat({joined.image, parts[p].image});
          joined.ids.insert(joined.ids.end(), parts[p].ids.begin(), parts[p].ids.end());
          joined.texts.insert(joined.texts.end(), parts[p].texts.begin(), parts[p].texts.end());
        }
        micro.push_back(std::move(joined));
      }
      if (static_cast<int64_t>(micro.size()) < options_.accum_freq) break;  // end of the epoch
      int64_t studies = 0;
      for (const auto& m : micro)
        studies += m.image.size(0);
      if (group_) studies *= group_->world_size();  // throughput of the whole job

      const double lr = learning_rate(schedule_, position_.step);
      optimizer_->set_lr(lr);
      optimizer_->zero_grad();
      models_->zero_compute_grad();
      profile.before_step();
      const auto loss = train_step(micro);
      position_.next_batch = last_batch + 1;
      if (!loss) {
        ++skipped_steps_;
        ++bad_in_a_row;
        logger_->warn("step {}: the loss is not finite; step skipped ({} in a row)", position_.step,
                      bad_in_a_row);
        log_metrics({{"step", position_.step}, {"epoch", epoch}, {"skipped_step", 1}});
        if (bad_in_a_row >= kMaxBadStepsInARow) {
          throw Error(
              fmt::format("{} steps in a row had a non-finite loss (last at "
                          "step {}); stopping. Lower "
                          "--lr, add --grad-clip-norm, or check the data",
                          bad_in_a_row, position_.step));
        }
        continue;
      }
      bad_in_a_row = 0;
      models_->gradients_to_master();
      if (reducer_) reducer_->finish();  // every rank's gradient, averaged
      const double grad_norm = clip_grad_norm(optimizer_->parameters(), options_.grad_clip_norm);
      optimizer_->step();
      models_->master->clamp_logit_scale();
      models_->sync_compute();
      ++position_.step;
      profile.after_step();
      studies_seen += studies;
      progress.advance();

      const double total = loss->total_value;
      epoch_loss_sum += total;
      ++epoch_loss_count;
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - step_started).count();
      if (position_.step % options_.log_every_steps == 0 || position_.step == 1) {
        json line = {{"step", position_.step},
                     {"epoch", epoch},
                     {"loss", total},
                     {"lr", lr},
                     {"logit_scale", models_->master->logit_scale.exp().item<double>()},
                     {"grad_norm", grad_norm},
                     {"studies_per_s", static_cast<double>(studies) / seconds},
                     {"step_s", seconds},
                     {"data_wait_s", data_wait},
                     {"peak_rss_mib", peak_rss_mib()}};
        if (loss->report.defined()) {
          line["loss_sentence"] = loss->sentence_value;
          line["loss_report"] = loss->report_value;
        }
        log_metrics(line);
        progress.set_postfix(fmt::format("loss {} lr {:.2e}", format_metric(total), lr));
        if (progress.mode() != ProgressMode::kBar) {
          logger_->info("step {}/{} epoch {} loss {} lr {:.3e} {:.2f} studies/s", position_.step,
                        schedule_.total_steps, epoch, format_metric(total), lr,
                        static_cast<double>(studies) / seconds);
        }
      }
      if (options_.save_every_steps > 0 && position_.step % options_.save_every_steps == 0) {
        save_checkpoint(fmt::format("step_{}.safetensors", position_.step), position_);
      }
      if (position_.step >= schedule_.total_steps) {
        done = true;
        break;
      }
    }
    const bool epoch_finished =
        !done || position_.next_batch >= loader_->batches_per_epoch() / micro_per_step * micro_per_step;
    json summary = {{"step", position_.step}, {"epoch", epoch + 1}};
    if (epoch_loss_count > 0)
      summary["train_loss_epoch"] = epoch_loss_sum / static_cast<double>(epoch_loss_count);
    if (epoch_finished) {
      position_.epoch = epoch + 1;
      position_.next_batch = 0;
    }
    if (epoch_finished && options_.val_frequency > 0 && (epoch + 1) % options_.val_frequency == 0) {
      const double val = validation_loss();
      if (std::isfinite(val)) summary["val_loss"] = val;
    }
    if (epoch_finished && evaluator_ && options_.zeroshot_frequency > 0 &&
        (epoch + 1) % options_.zeroshot_frequency == 0) {
      models_->train_mode(false);
      data::Shard shard;
      if (group_)
        shard = {group_->rank(), group_->world_size(),
                 [this](const at::Tensor& t) { return group_->all_gather(t); }};
      for (const auto& [key, value] : evaluator_(models_->master, *tokenizer_, epoch + 1, shard))
        summary["zeroshot/" + key] = value;
      models_->train_mode(true);
    }
    if (summary.size() > 2 && is_root()) {
      log_metrics(summary);
      logger_->info("epoch {} done: {}", epoch + 1, summary.dump());
    }
    if (epoch_finished &&
        ((epoch + 1) % options_.save_frequency == 0 || position_.epoch == options_.epochs || done)) {
      save_checkpoint(fmt::format("epoch_{}.safetensors", epoch + 1), position_);
      const fs::path previous =
          run_dir_ / "checkpoints" / fmt::format("epoch_{}.safetensors", epoch + 1 - options_.save_frequency);
      if (options_.delete_previous_checkpoint && epoch + 1 > options_.save_frequency) {
        std::error_code ignored;
        fs::remove(previous, ignored);
      }
    } else if (done) {
      save_checkpoint(fmt::format("step_{}.safetensors", position_.step), position_);
    }
    if (epoch_loss_count > 0) result.final_loss = epoch_loss_sum / static_cast<double>(epoch_loss_count);
  }
  progress.finish();
  if (events_) events_->flush();

  // The final model, as a released one: open_clip_config.json,
  // model.safetensors and the tokenizer.
  const fs::path model_dir = run_dir_ / "model";
  model::SaveModelDirOptions save;
  save.tokenizer = tokenizer_path_;
  save.metadata = {{"hlip_run", run_dir_.string()}, {"step", std::to_string(position_.step)}};
  save.preprocess_preset = preset_record_;
  if (is_root()) model::save_model_dir(models_->master, config_, model_dir.string(), save);
  if (group_) group_->barrier();  // the model is written before any rank reports success

  result.model_dir = model_dir.string();
  result.steps = position_.step;
  result.epochs = position_.epoch;
  result.skipped_steps = skipped_steps_;
  result.failed_studies = loader_->failed_studies();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.studies_per_second = result.seconds > 0 ? static_cast<double>(studies_seen) / result.seconds : 0;
  logger_->info(
      "finished: {} steps, {} epochs, final epoch loss {}, {} "
      "skipped steps, {} failed studies; model "
      "in {}",
      result.steps, result.epochs, format_metric(result.final_loss), result.skipped_steps,
      result.failed_studies, result.model_dir);
  return result;
}

}  // namespace

std::string resolve_checkpoint(const std::string& run_dir, const std::string& reference) {
  if (reference != "latest") {
    if (!fs::exists(reference)) throw Error(fmt::format("{}: no such checkpoint", reference));
    return reference;
  }
  const fs::path latest = fs::path(run_dir) / "checkpoints" / "latest";
  std::ifstream in(latest);
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) {
    throw Error(fmt::format("{}: no checkpoint to resume (the run has not saved one)", latest.string()));
  }
  const fs::path path = fs::path(run_dir) / "checkpoints" / name;
  if (!fs::exists(path))
    throw Error(fmt::format("{}: names {}, which does not exist", latest.string(), name));
  return path.string();
}

TrainResult train(const TrainOptions& options, const Evaluator& evaluator) {
  return Trainer(options, evaluator).run();
}

}  // namespace hlip::train
