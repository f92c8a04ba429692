// `hlip train`: open_clip-style flags (or a TOML file of the same settings) → a run folder with checkpoints,
// logs and the final model.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/data/dataset.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/model/clip.h"
#include "hlip/text/tokenizer.h"
#include "hlip/train/distributed.h"
#include "hlip/train/options.h"
#include "hlip/train/trainer.h"

namespace hlip::cli {
namespace {

// The periodic zero-shot evaluation of `options.zeroshot_task` on the validation (or zero-shot) data.
train::Evaluator zeroshot_evaluator(const train::TrainOptions& options) {
  if (options.zeroshot_frequency <= 0 || options.zeroshot_task.empty()) return {};
  auto task = std::make_shared<eval::ZeroShotTask>(eval::load_task(options.zeroshot_task));
  if (!options.zeroshot_template.empty()) eval::set_templates(*task, {options.zeroshot_template});
  std::vector<data::DataSource> sources;
  for (const auto& spec : options.zeroshot_data.empty()
                              ? (options.val_data.empty() ? options.train_data : options.val_data)
                              : options.zeroshot_data) {
    sources.push_back(data::parse_data_source(spec));
  }
  auto dataset = std::make_shared<data::StudyDataset>(sources, options.zeroshot_split);
  if (dataset->size() == 0) {
    throw UsageError(fmt::format("no studies of split \"{}\" for the periodic zero-shot evaluation",
                                 options.zeroshot_split));
  }
  const int workers = options.workers;
  return [task, dataset, workers](model::HlipClip& model, const text::Tokenizer& tokenizer, int64_t,
                                  const data::Shard& shard) {
    eval::ZeroShotOptions zeroshot;
    zeroshot.workers = workers;
    zeroshot.shard = shard;
    return eval::zeroshot_summary(eval::evaluate_zeroshot(*model, tokenizer, *task, *dataset, zeroshot));
  };
}

}  // namespace

Command train_command() {
  return {
      "train", "Train an HLIP model on prepared studies (open_clip-style flags or --config FILE)",
      [](CLI::App& app) {
        auto flags = std::make_shared<train::TrainOptions>();
        auto config = std::make_shared<std::string>();
        auto no_progress = std::make_shared<bool>(false);
        auto declared = std::make_shared<std::vector<std::pair<const train::OptionField*, CLI::Option*>>>();
        app.add_option("--config", *config,
                       "A TOML file of these settings (keys as the flags, '_' or '-'); flags override it");
        for (const auto& field : train::train_option_fields()) {
          const std::string name = "--" + train::flag_name(field);
          CLI::Option* option = std::visit(
              [&](auto member) -> CLI::Option* {
                auto& value = (*flags).*member;
                using T = std::decay_t<decltype(value)>;
                if constexpr (std::is_same_v<T, bool>) {
                  return app.add_flag(name, value, field.help);
                } else {
                  return app.add_option(name, value, field.help)->capture_default_str();
                }
              },
              field.member);
          declared->emplace_back(&field, option);
        }
        app.add_flag("--no-progress", *no_progress, "Plain log lines instead of a progress bar");
        return [flags, config, no_progress, declared] {
          train::TrainOptions options =
              config->empty() ? train::TrainOptions{} : train::options_from_toml(*config);
          for (const auto& [field, option] : *declared) {
            if (option->count() > 0) train::copy_field(*field, *flags, options);
          }
          if (*no_progress) options.progress = false;
          // --nproc-per-node N: this command line again in N workers (docs/distributed.md).
          if (const auto status =
                  train::launch_workers_if_asked(options.nproc_per_node, options.dist_timeout))
            return *status;
          const auto result = train::train(options, zeroshot_evaluator(options));
          if (std::getenv("RANK") != nullptr && std::string(std::getenv("RANK")) != "0") return 0;
          std::cout << fmt::format(
              "trained {} steps ({} epochs) in {:.1f} s, {:.2f} studies/s; last epoch loss {:.4f}; {} "
              "skipped steps, {} failed studies\nrun folder: {}\nmodel: {}\n",
              result.steps, result.epochs, result.seconds, result.studies_per_second, result.final_loss,
              result.skipped_steps, result.failed_studies, result.run_dir, result.model_dir);
          return 0;
        };
      }};
}

}  // namespace hlip::cli
