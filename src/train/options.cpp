#include "hlip/train/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <toml++/toml.h>

#include <sstream>

#include "hlip/core/error.h"

namespace hlip::train {

const std::vector<OptionField>& train_option_fields() {
  using O = TrainOptions;
  static const std::vector<OptionField> fields{
      {"model", "Model config name (configs/models/), a JSON config, or a model folder", &O::model},
      {"tokenizer", "Tokenizer folder or vocab.txt (default: the model folder's)", &O::tokenizer},
      {"finetune", "Start from these weights: a model folder or a checkpoint", &O::finetune},
      {"init_2d",
       "Initialise the vision trunk from a 2D ViT (timm safetensors, or an HLIP model whose kernels are "
       "summed over depth), inflated to 3D",
       &O::init_2d},
      {"init_2d_inflation", "How --init-2d spreads a 2D kernel over the patch depth: average | central",
       &O::init_2d_inflation},
      {"grad_checkpointing", "Recompute each vision block in backward to save memory",
       &O::grad_checkpointing},
      {"force_patch_dropout", "Override the config's patch dropout (0: unmasked fine-tuning; < 0: keep)",
       &O::force_patch_dropout},
      {"lock_text", "Freeze BERT except its last N layers (< 0: train all)", &O::lock_text},
      {"siglip", "SigLIP loss instead of CLIP (the model needs logit_bias)", &O::siglip},
      {"train_data", "Caches or manifests, PATH or PATH@WEIGHT (repeat for several)", &O::train_data},
      {"val_data", "Caches or manifests for the validation loss (default: train data)", &O::val_data},
      {"train_split", "Split used for training", &O::train_split},
      {"val_split", "Split used for validation", &O::val_split},
      {"preset", "Preprocessing preset for data that is not a prepared cache", &O::preset},
      {"num_scans", "Scans per study in training (repeated or truncated to exactly N)", &O::num_scans},
      {"text_process",
       "report | sentence | sentence-and-report (default: sentence-and-report for dual models, else report)",
       &O::text_process},
      {"report_source", "Report source of the manifest (default: the main report)", &O::report_source},
      {"workers", "Background threads building batches", &O::workers},
      {"batch_size", "Studies per micro-batch", &O::batch_size},
      {"accum_freq", "open_clip feature-cache accumulation over N micro-batches", &O::accum_freq},
      {"accum_batch", "HLIP: concatenate N micro-batches before one forward", &O::accum_batch},
      {"epochs", "Training epochs", &O::epochs},
      {"max_steps", "Stop after N optimizer steps (0: all epochs)", &O::max_steps},
      {"profile_steps", "Record LibTorch's operator profiler over N steps (after 5) into profile/trace.json",
       &O::profile_steps},
      {"lr", "Peak learning rate", &O::lr},
      {"wd", "AdamW weight decay (not on gains, biases, logit scale)", &O::wd},
      {"beta1", "AdamW beta1", &O::beta1},
      {"beta2", "AdamW beta2", &O::beta2},
      {"eps", "AdamW epsilon", &O::eps},
      {"warmup", "Linear warm-up steps", &O::warmup},
      {"lr_scheduler", "cosine | const | const-cooldown", &O::lr_scheduler},
      {"epochs_cooldown", "const-cooldown: epochs of cooldown at the end", &O::epochs_cooldown},
      {"lr_cooldown_end", "const-cooldown: final learning rate", &O::lr_cooldown_end},
      {"lr_cooldown_power", "const-cooldown: power of the decay (1 = linear)", &O::lr_cooldown_power},
      {"grad_clip_norm", "Clip the global gradient norm (0: off)", &O::grad_clip_norm},
      {"precision", "fp32 | amp_bf16 (fp32 master weights, bf16 compute) | pure_bf16", &O::precision},
      {"device",
       "cpu | cuda | cuda:N (cuda: each data-parallel worker takes GPU LOCAL_RANK; needs a CUDA LibTorch)",
       &O::device},
      {"seed", "Random seed (data order, scan choice, texts, initialisation)", &O::seed},
      {"logs", "Folder of run folders", &O::logs},
      {"name", "Run name (default: a time stamp)", &O::name},
      {"resume", "latest, or a checkpoint file", &O::resume},
      {"save_frequency", "Checkpoint every N epochs", &O::save_frequency},
      {"save_every_steps", "Also checkpoint every N steps (0: off)", &O::save_every_steps},
      {"log_every_steps", "Log metrics every N steps", &O::log_every_steps},
      {"val_frequency", "Validation loss every N epochs (0: never)", &O::val_frequency},
      {"zeroshot_frequency", "Zero-shot evaluation every N epochs (0: never)", &O::zeroshot_frequency},
      {"zeroshot_task", "Zero-shot task for the periodic evaluation (configs/tasks/ name or JSON file)",
       &O::zeroshot_task},
      {"zeroshot_data", "Data for the periodic zero-shot evaluation (default: the validation data)",
       &O::zeroshot_data},
      {"zeroshot_split", "Split of the periodic zero-shot evaluation", &O::zeroshot_split},
      {"zeroshot_template", "Prompt template with {c} replacing the zero-shot task's (e.g. \"{c}.\")",
       &O::zeroshot_template},
      {"delete_previous_checkpoint", "Keep only the newest epoch checkpoint", &O::delete_previous_checkpoint},
      {"nproc_per_node",
       "Data-parallel: start N worker processes on this machine (torchrun's RANK/WORLD_SIZE or Slurm's "
       "variables, when set, say the job's shape instead)",
       &O::nproc_per_node},
      {"gather_with_grad", "Data-parallel: gradients flow through the gathered features of every rank",
       &O::gather_with_grad},
      {"local_loss", "Data-parallel: each rank's rows against the gathered columns, not the full matrix",
       &O::local_loss},
      {"dist_timeout", "Data-parallel: seconds to wait for a peer before stopping with an error",
       &O::dist_timeout},
  };
  return fields;
}

std::string flag_name(const OptionField& field) {
  std::string out = field.key;
  for (char& c : out) {
    if (c == '_') c = '-';
  }
  return out;
}

void copy_field(const OptionField& field, const TrainOptions& from, TrainOptions& to) {
  std::visit([&](auto member) { to.*member = from.*member; }, field.member);
}

namespace {

std::string toml_string(const std::string& text) {
  std::ostringstream out;
  out << toml::value<std::string>(text);
  return out.str();
}

std::string toml_value(const TrainOptions& options, const OptionField& field) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& value = options.*member;
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return toml_string(value);
        } else if constexpr (std::is_same_v<T, bool>) {
          return value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          return fmt::format("{}", value) + (value == static_cast<int64_t>(value) ? ".0" : "");
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::vector<std::string> items;
          for (const auto& item : value)
            items.push_back(toml_string(item));
          return fmt::format("[{}]", fmt::join(items, ", "));
        } else {
          return fmt::format("{}", value);
        }
      },
      field.member);
}

}  // namespace

std::string to_toml(const TrainOptions& options) {
  std::string out = "# hlip train settings: every value this run used (flags override a --config file)\n";
  for (const auto& field : train_option_fields()) {
    out += fmt::format("{} = {}\n", field.key, toml_value(options, field));
  }
  return out;
}

TrainOptions options_from_toml(const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    throw Error(fmt::format("{}:{}: {}", path, error.source().begin.line, error.description()));
  }
  TrainOptions options;
  for (const auto& [key, node] : table) {
    std::string name(key.str());
    for (char& c : name) {
      if (c == '-') c = '_';
    }
    const OptionField* field = nullptr;
    for (const auto& candidate : train_option_fields()) {
      if (candidate.key == name) field = &candidate;
    }
    const int line = static_cast<int>(node.source().begin.line);
    if (field == nullptr) throw Error(fmt::format("{}:{}: unknown setting \"{}\"", path, line, key.str()));
    auto bad = [&](const char* expected) {
      return Error(fmt::format("{}:{}: \"{}\" must be {}", path, line, key.str(), expected));
    };
    std::visit(
        [&](auto member) {
          auto& value = options.*member;
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::string>) {
            if (!node.is_string()) throw bad("a string");
            value = *node.value<std::string>();
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!node.is_boolean()) throw bad("true or false");
            value = *node.value<bool>();
          } else if constexpr (std::is_same_v<T, double>) {
            if (!node.is_number()) throw bad("a number");
            value = *node.value<double>();
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            value.clear();
            if (node.is_string()) {
              value.push_back(*node.value<std::string>());
            } else if (const auto* array = node.as_array()) {
              for (const auto& item : *array) {
                if (!item.is_string()) throw bad("a list of strings");
                value.push_back(*item.value<std::string>());
              }
            } else {
              throw bad("a string or a list of strings");
            }
          } else {
            if (!node.is_integer()) throw bad("an integer");
            const int64_t number = *node.value<int64_t>();
            if (std::is_unsigned_v<T> && number < 0) throw bad("a non-negative integer");
            value = static_cast<T>(number);
          }
        },
        field->member);
  }
  return options;
}

}  // namespace hlip::train
