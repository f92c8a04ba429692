#include "hlip/gen/training.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/core/progress.h"
#include "hlip/core/random.h"
#include "hlip/data/dataset.h"
#include "hlip/data/loader.h"
#include "hlip/data/manifest.h"
#include "hlip/gen/evaluation.h"
#include "hlip/gen/generator.h"
#include "hlip/preprocess/preset.h"
#include "hlip/train/optim.h"

namespace hlip::gen {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One training example: a study's visual tokens and the token ids to learn, [CLS] ... [SEP].
struct Example {
  at::Tensor tokens;         // bf16 [T, C]
  std::vector<int64_t> ids;  // prompt and target
  int64_t prompt = 1;        // leading ids that are given, not predicted
};

// Every study of `dataset` with a report: its visual tokens (the frozen vision tower, every scan) and its
// report's ids. Studies without one are counted in `skipped`.
std::vector<Example> build_examples(model::HlipClipImpl& clip, const text::Tokenizer& tokenizer,
                                    const data::StudyDataset& dataset, const GeneratorTrainOptions& options,
                                    int64_t& skipped, const std::string& what) {
  data::LoaderOptions loader_options = data::LoaderOptions::one_study_at_a_time(options.workers);
  data::StudyLoader loader(dataset, loader_options);
  loader.start(0);
  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  Progress progress(what, dataset.size(), "studies", progress_options);
  text::EncodeOptions encode;  // [CLS] report [SEP], truncated to the decoder's positions
  encode.truncation = text::Truncation::longest_first;
  encode.max_length = options.max_length;
  std::vector<Example> out;
  while (auto batch = loader.next()) {
    const int64_t index = batch->indices.at(0);
    const std::string report = joined_report(dataset.study(index), options.report_source);
    progress.advance(1 + batch->failed);
    if (report.empty()) {
      ++skipped;
      continue;
    }
    Example example;
    example.tokens = visual_tokens(clip, batch->image)[0].to(at::kBFloat16).contiguous();
    example.ids = tokenizer.encode(report, encode).input_ids;
    out.push_back(std::move(example));
  }
  progress.finish();
  return out;
}

struct Batch {
  at::Tensor memory_tokens;  // [B, T, C] float
  at::Tensor memory_mask;    // bool [B, T]
  at::Tensor input;          // [B, L - 1]
  at::Tensor target;         // [B, L - 1], -100 where nothing is predicted
  int64_t predicted = 0;
};

Batch collate(const std::vector<Example>& examples, const std::vector<int64_t>& picks, int64_t pad_id) {
  int64_t tokens = 0, length = 0;
  for (const int64_t p : picks) {
    tokens = std::max<int64_t>(tokens, examples[static_cast<size_t>(p)].tokens.size(0));
    length = std::max<int64_t>(length, static_cast<int64_t>(examples[static_cast<size_t>(p)].ids.size()));
  }
  const auto b = static_cast<int64_t>(picks.size());
  const int64_t channels = examples[static_cast<size_t>(picks.front())].tokens.size(1);
  Batch out;
  out.memory_tokens = at::zeros({b, tokens, channels}, at::kFloat);
  out.memory_mask = at::zeros({b, tokens}, at::kBool);
  at::Tensor ids = at::full({b, length}, pad_id, at::kLong);
  at::Tensor target = at::full({b, length}, -100, at::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const Example& example = examples[static_cast<size_t>(picks[static_cast<size_t>(i)])];
    const int64_t t = example.tokens.size(0);
    out.memory_tokens[i].slice(0, 0, t).copy_(example.tokens);
    out.memory_mask[i].slice(0, 0, t).fill_(true);
    const auto n = static_cast<int64_t>(example.ids.size());
    ids[i].slice(0, 0, n).copy_(at::tensor(example.ids, at::kLong));
    target[i].slice(0, example.prompt, n).copy_(ids[i].slice(0, example.prompt, n));
    out.predicted += n - example.prompt;
  }
  out.input = ids.slice(1, 0, length - 1);
  out.target = target.slice(1, 1, length);
  return out;
}

at::Tensor token_loss(ReportDecoderImpl& decoder, const Batch& batch) {
  const at::Tensor memory = decoder.encode_visual(batch.memory_tokens);
  const at::Tensor logits = decoder.forward(batch.input, memory, batch.memory_mask);
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), batch.target.reshape({-1}), {},
                                at::Reduction::Mean, /*ignore_index=*/-100);
}

double mean_loss(ReportDecoderImpl& decoder, const std::vector<Example>& examples, int64_t batch_size,
                 int64_t pad_id) {
  if (examples.empty()) return std::nan("");
  at::NoGradGuard no_grad;
  decoder.eval();
  double sum = 0;
  int64_t count = 0;
  for (int64_t start = 0; start < static_cast<int64_t>(examples.size()); start += batch_size) {
    std::vector<int64_t> picks;
    for (int64_t i = start; i < std::min<int64_t>(start + batch_size, examples.size()); ++i)
      picks.push_back(i);
    const Batch batch = collate(examples, picks, pad_id);
    sum += token_loss(decoder, batch).item<double>() * static_cast<double>(batch.predicted);
    count += batch.predicted;
  }
  decoder.train();
  return sum / static_cast<double>(count);
}

}  // namespace

GeneratorTrainResult train_generator(const GeneratorTrainOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (options.model.empty())
    throw UsageError("no --model (the HLIP model folder whose vision tower to read)");
  if (options.train_data.empty()) throw UsageError("no --train-data");
  if (options.out.empty()) throw UsageError("no --out folder");
  if (options.batch_size < 1 || options.epochs < 1) {
    throw UsageError(fmt::format("--batch-size {} and --epochs {} must be at least 1", options.batch_size,
                                 options.epochs));
  }
  model::HlipClip clip = model::load_model_dir(options.model);
  clip->eval();
  const std::string tokenizer_path = model::model_dir_tokenizer(options.model);
  if (tokenizer_path.empty())
    throw Error(fmt::format("{}: the model folder has no tokenizer/", options.model));
  const text::Tokenizer tokenizer = text::Tokenizer::from_pretrained(tokenizer_path);

  std::optional<preprocess::Preset> preset;
  if (!options.preset.empty()) preset = preprocess::preset_by_name(options.preset);
  std::vector<data::DataSource> sources;
  for (const auto& spec : options.train_data)
    sources.push_back(data::parse_data_source(spec));
  const data::StudyDataset train_set(sources, options.train_split, preset);
  if (train_set.size() == 0) {
    throw UsageError(fmt::format("no studies of split \"{}\" in the training data", options.train_split));
  }
  const data::StudyDataset val_set(sources, options.val_split, preset);
  int64_t skipped = 0;
  const std::vector<Example> train = build_examples(*clip, tokenizer, train_set, options, skipped, "tokens");
  int64_t val_skipped = 0;
  const std::vector<Example> val =
      val_set.size() > 0 ? build_examples(*clip, tokenizer, val_set, options, val_skipped, "val")
                         : std::vector<Example>{};
  if (train.empty()) {
    throw Error(fmt::format("none of the {} training studies has a report{}", train_set.size(),
                            options.report_source.empty() ? "" : " \"" + options.report_source + "\""));
  }

  DecoderConfig config;
  config.vocab_size = tokenizer.vocab().size();
  config.width = options.width;
  config.layers = options.layers;
  config.heads = options.heads;
  config.max_length = options.max_length;
  config.visual_width = train.front().tokens.size(1);
  config.dropout = options.dropout;
  config.bos_id = tokenizer.cls_id();
  config.eos_id = tokenizer.sep_id();
  config.pad_id = tokenizer.pad_id();
  if (config.width % config.heads != 0) {
    throw UsageError(fmt::format("--width {} is not divisible by --heads {}", config.width, config.heads));
  }
  at::manual_seed(derive_seed(options.seed, name_hash("decoder")));
  ReportDecoder decoder(config);
  decoder->train();
  auto parameters = train::named_trainable_parameters(*decoder);
  train::AdamW optimizer(parameters, {options.lr, options.wd, 0.9, 0.98, 1e-6});
  const auto batches_per_epoch =
      static_cast<int64_t>((train.size() + static_cast<size_t>(options.batch_size) - 1) / options.batch_size);
  train::ScheduleOptions schedule;
  schedule.base_lr = options.lr;
  schedule.warmup_steps = options.warmup;
  schedule.total_steps = batches_per_epoch * options.epochs;

  create_directories(options.out);
  std::ofstream metrics(fs::path(options.out) / "metrics.jsonl");
  spdlog::info(
      "train-gen: {} training studies ({} without a report), {} validation, decoder {} M parameters, {} "
      "steps",
      train.size(), skipped, val.size(),
      [&] {
        int64_t n = 0;
        for (const auto& p : parameters)
          n += p.tensor.numel();
        return fmt::format("{:.2f}", static_cast<double>(n) / 1e6);
      }(),
      schedule.total_steps);
  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  Progress progress("train-gen", schedule.total_steps, "steps", progress_options);
  GeneratorTrainResult result;
  at::Generator order_generator =
      at::detail::createCPUGenerator(derive_seed(options.seed, name_hash("order")));
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const at::Tensor order = at::randperm(static_cast<int64_t>(train.size()), order_generator, at::kLong);
    double sum = 0;
    int64_t count = 0;
    for (int64_t b = 0; b < batches_per_epoch; ++b) {
      std::vector<int64_t> picks;
      for (int64_t i = b * options.batch_size;
           i < std::min<int64_t>((b + 1) * options.batch_size, static_cast<int64_t>(train.size())); ++i)
        picks.push_back(order[i].item<int64_t>());
      const Batch batch = collate(train, picks, config.pad_id);
      optimizer.set_lr(train::learning_rate(schedule, result.steps));
      optimizer.zero_grad();
      const at::Tensor loss = token_loss(*decoder, batch);
      loss.backward();
      train::clip_grad_norm(parameters, 1.0);
      optimizer.step();
      ++result.steps;
      sum += loss.item<double>() * static_cast<double>(batch.predicted);
      count += batch.predicted;
      progress.advance();
      progress.set_postfix(fmt::format("loss {:.3f}", loss.item<double>()));
    }
    result.final_loss = sum / static_cast<double>(count);
    result.val_loss = mean_loss(*decoder, val, options.batch_size, config.pad_id);
    json line = {
        {"epoch", epoch + 1}, {"step", result.steps}, {"loss", result.final_loss}, {"lr", optimizer.lr()}};
    if (std::isfinite(result.val_loss)) line["val_loss"] = result.val_loss;
    metrics << line.dump() << "\n" << std::flush;
    if (progress.mode() != ProgressMode::kBar) spdlog::info("train-gen: {}", line.dump());
  }
  progress.finish();

  json training = {{"train_data", options.train_data},
                   {"train_split", options.train_split},
                   {"report_source", options.report_source},
                   {"epochs", options.epochs},
                   {"batch_size", options.batch_size},
                   {"lr", options.lr},
                   {"wd", options.wd},
                   {"warmup", options.warmup},
                   {"seed", options.seed},
                   {"steps", result.steps},
                   {"final_loss", result.final_loss}};
  if (std::isfinite(result.val_loss)) training["val_loss"] = result.val_loss;
  const json generator_config = {
      {"decoder", config.to_json()}, {"hlip_model", fs::absolute(options.model).lexically_normal().string()},
      {"vision", "frozen"},          {"report_source", options.report_source},
      {"training", training},        {"hlip_version", HLIP_VERSION_STRING}};
  save_generator(*decoder, options.out, generator_config);
  result.out = options.out;
  result.studies = static_cast<int64_t>(train.size());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace hlip::gen
