#include "hlip/gen/training.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>

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

// Token ids to learn, [CLS] ... [SEP], of which the first `prompt` are given, not predicted.
struct Sequence {
  std::vector<int64_t> ids;
  int64_t prompt = 1;
};

// What a study teaches: its report ([CLS] report [SEP], truncated to the decoder's positions) and, for
// answers, [CLS] question [SEP] answer [SEP] per closed question (the question given, the answer predicted).
std::vector<Sequence> study_sequences(const data::ManifestStudy& study, const text::Tokenizer& tokenizer,
                                      const GeneratorTrainOptions& options, const Targets& targets) {
  std::vector<Sequence> out;
  const std::string report = targets.reports ? joined_report(study, options.report_source) : "";
  if (!report.empty()) {
    text::EncodeOptions encode;
    encode.truncation = text::Truncation::longest_first;
    encode.max_length = options.max_length;
    out.push_back({tokenizer.encode(report, encode).input_ids, 1});
  }
  for (size_t q = 0; targets.answers && q < study.qa.size(); ++q) {
    Sequence sequence{decoder_prompt(tokenizer, study.qa[q].question), 0};
    sequence.prompt = static_cast<int64_t>(sequence.ids.size());
    for (const int64_t id : tokenizer.tokenize_to_ids(study.qa[q].answer))
      sequence.ids.push_back(id);
    sequence.ids.push_back(tokenizer.sep_id());
    if (static_cast<int64_t>(sequence.ids.size()) > options.max_length) {
      throw UsageError(
          fmt::format("{}: the question \"{}\" and its answer take {} tokens, more than "
                      "--max-length {}",
                      study.id, study.qa[q].question, sequence.ids.size(), options.max_length));
    }
    out.push_back(std::move(sequence));
  }
  return out;
}

// One training example of the frozen tower: a study's visual tokens (shared by its examples) and a sequence.
struct Example {
  at::Tensor tokens;  // bf16 [T, C]
  Sequence text;
};

// Every study of `dataset` with something to learn, its visual tokens computed once (every scan, the tower in
// eval mode). Studies with nothing are counted in `skipped`, the others in `studies`.
std::vector<Example> build_examples(model::HlipClipImpl& clip, const text::Tokenizer& tokenizer,
                                    const data::StudyDataset& dataset, const GeneratorTrainOptions& options,
                                    int64_t& skipped, int64_t& studies, const std::string& what,
                                    bool progress_bar) {
  const Targets targets = parse_targets(options.targets);
  data::StudyLoader loader(dataset, data::LoaderOptions::one_study_at_a_time(options.workers));
  loader.start(0);
  ProgressOptions progress_options;
  if (!progress_bar) progress_options.mode = ProgressMode::kOff;
  Progress progress(what, dataset.size(), "studies", progress_options);
  std::vector<Example> out;
  while (auto batch = loader.next()) {
    progress.advance(1 + batch->failed);
    std::vector<Sequence> sequences =
        study_sequences(dataset.study(batch->indices.at(0)), tokenizer, options, targets);
    if (sequences.empty()) {
      ++skipped;
      continue;
    }
    ++studies;
    const at::Tensor tokens = visual_tokens(clip, batch->image)[0].to(at::kBFloat16).contiguous();
    for (auto& sequence : sequences)
      out.push_back({tokens, std::move(sequence)});
  }
  progress.finish();
  return out;
}

// The example indices of batch `b`: positions [b * size, (b + 1) * size) of `order`, clipped to its end.
std::vector<int64_t> batch_picks(const std::vector<int64_t>& order, int64_t b, int64_t size) {
  const auto begin = std::min<size_t>(static_cast<size_t>(b * size), order.size());
  const auto end = std::min<size_t>(static_cast<size_t>((b + 1) * size), order.size());
  return {order.begin() + static_cast<std::ptrdiff_t>(begin),
          order.begin() + static_cast<std::ptrdiff_t>(end)};
}

struct Batch {
  at::Tensor memory_tokens;  // [B, T, C] float
  at::Tensor memory_mask;    // bool [B, T]
  at::Tensor input;          // [B, L - 1]
  at::Tensor target;         // [B, L - 1], -100 where nothing is predicted
  int64_t predicted = 0;
};

// Teacher forcing: inputs are the ids but the last, targets the ids but the first with the prompt's
// (and padding's) positions ignored.
void collate_text(const std::vector<const Sequence*>& sequences, int64_t pad_id, Batch& out) {
  int64_t length = 0;
  for (const Sequence* sequence : sequences)
    length = std::max<int64_t>(length, static_cast<int64_t>(sequence->ids.size()));
  const auto b = static_cast<int64_t>(sequences.size());
  at::Tensor ids = at::full({b, length}, pad_id, at::kLong);
  at::Tensor target = at::full({b, length}, -100, at::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const Sequence& sequence = *sequences[static_cast<size_t>(i)];
    const auto n = static_cast<int64_t>(sequence.ids.size());
    ids[i].slice(0, 0, n).copy_(at::tensor(sequence.ids, at::kLong));
    target[i].slice(0, sequence.prompt, n).copy_(ids[i].slice(0, sequence.prompt, n));
    out.predicted += n - sequence.prompt;
  }
  out.input = ids.slice(1, 0, length - 1);
  out.target = target.slice(1, 1, length);
}

Batch collate(const std::vector<Example>& examples, const std::vector<int64_t>& picks, int64_t pad_id) {
  int64_t tokens = 0;
  std::vector<const Sequence*> sequences;
  for (const int64_t p : picks) {
    tokens = std::max<int64_t>(tokens, examples[static_cast<size_t>(p)].tokens.size(0));
    sequences.push_back(&examples[static_cast<size_t>(p)].text);
  }
  const auto b = static_cast<int64_t>(picks.size());
  const int64_t channels = examples[static_cast<size_t>(picks.front())].tokens.size(1);
  Batch out;
  out.memory_tokens = at::zeros({b, tokens, channels}, at::kFloat);
  out.memory_mask = at::zeros({b, tokens}, at::kBool);
  for (int64_t i = 0; i < b; ++i) {
    const at::Tensor& example_tokens = examples[static_cast<size_t>(picks[static_cast<size_t>(i)])].tokens;
    out.memory_tokens[i].slice(0, 0, example_tokens.size(0)).copy_(example_tokens);
    out.memory_mask[i].slice(0, 0, example_tokens.size(0)).fill_(true);
  }
  collate_text(sequences, pad_id, out);
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
  std::vector<int64_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b * batch_size < static_cast<int64_t>(examples.size()); ++b) {
    const Batch batch = collate(examples, batch_picks(order, b, batch_size), pad_id);
    sum += token_loss(decoder, batch).item<double>() * static_cast<double>(batch.predicted);
    count += batch.predicted;
  }
  decoder.train();
  return sum / static_cast<double>(count);
}

// The training batches of an epoch: the frozen tower's cached examples in a fresh order, or, fine-tuning,
// batches of studies from the loader whose visual tokens are computed with gradients (every example of a
// study reads its tokens). next() gives nothing at the end of the epoch.
class EpochBatches {
 public:
  virtual ~EpochBatches() = default;
  virtual int64_t per_epoch() const = 0;
  virtual void start(int64_t epoch) = 0;
  virtual std::optional<Batch> next() = 0;
};

class FrozenBatches : public EpochBatches {
 public:
  FrozenBatches(const std::vector<Example>& examples, int64_t batch_size, int64_t pad_id, uint64_t seed)
      : examples_(examples),
        batch_size_(batch_size),
        pad_id_(pad_id),
        generator_(at::detail::createCPUGenerator(seed)) {}
  int64_t per_epoch() const override {
    return (static_cast<int64_t>(examples_.size()) + batch_size_ - 1) / batch_size_;
  }
  void start(int64_t) override {
    const at::Tensor permutation =
        at::randperm(static_cast<int64_t>(examples_.size()), generator_, at::kLong);
    order_.assign(permutation.data_ptr<int64_t>(), permutation.data_ptr<int64_t>() + permutation.numel());
    next_ = 0;
  }
  std::optional<Batch> next() override {
    if (next_ >= per_epoch()) return std::nullopt;
    return collate(examples_, batch_picks(order_, next_++, batch_size_), pad_id_);
  }

 private:
  const std::vector<Example>& examples_;
  int64_t batch_size_, pad_id_;
  at::Generator generator_;
  std::vector<int64_t> order_;
  int64_t next_ = 0;
};

class FinetuneBatches : public EpochBatches {
 public:
  // `sequences[i]`: what study i of `dataset` teaches (study_sequences, computed once for the run).
  FinetuneBatches(model::HlipClipImpl& clip, const std::vector<std::vector<Sequence>>& sequences,
                  const data::StudyDataset& dataset, const GeneratorTrainOptions& options, int64_t pad_id)
      : clip_(clip), sequences_(sequences), pad_id_(pad_id), loader_(dataset, [&] {
          data::LoaderOptions loader_options;
          loader_options.batch_size = options.batch_size;
          loader_options.num_scans = options.num_scans;
          loader_options.shuffle = true;
          loader_options.drop_last = false;  // every study each epoch, as the frozen path
          loader_options.seed = derive_seed(options.seed, name_hash("finetune-order"));
          loader_options.workers = options.workers;
          loader_options.texts = false;
          loader_options.pin_memory = false;
          return loader_options;
        }()) {}
  int64_t per_epoch() const override { return loader_.batches_per_epoch(); }
  void start(int64_t epoch) override { loader_.start(epoch); }
  std::optional<Batch> next() override {
    while (auto studies = loader_.next()) {
      std::vector<const Sequence*> pointers;
      std::vector<int64_t> rows;
      for (size_t i = 0; i < studies->indices.size(); ++i) {
        for (const auto& sequence : sequences_[static_cast<size_t>(studies->indices[i])]) {
          pointers.push_back(&sequence);
          rows.push_back(static_cast<int64_t>(i));
        }
      }
      if (pointers.empty()) continue;  // nothing to learn in this batch
      Batch batch;
      const at::Tensor tokens = visual_tokens(clip_, studies->image, /*with_grad=*/true).to(at::kFloat);
      batch.memory_tokens = tokens.index_select(0, at::tensor(rows, at::kLong));
      batch.memory_mask = at::ones({batch.memory_tokens.size(0), batch.memory_tokens.size(1)}, at::kBool);
      collate_text(pointers, pad_id_, batch);
      return batch;
    }
    return std::nullopt;
  }

 private:
  model::HlipClipImpl& clip_;
  const std::vector<std::vector<Sequence>>& sequences_;
  int64_t pad_id_;
  data::StudyLoader loader_;
};

}  // namespace

Targets parse_targets(const std::string& name) {
  if (name == "report") return {true, false};
  if (name == "qa") return {false, true};
  if (name == "both") return {true, true};
  throw UsageError(fmt::format("--targets \"{}\": expected report, qa or both", name));
}

GeneratorTrainResult train_generator(const GeneratorTrainOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (options.model.empty())
    throw UsageError("no --model (the HLIP model folder whose vision tower to read)");
  if (options.train_data.empty()) throw UsageError("no --train-data");
  if (options.out.empty()) throw UsageError("no --out folder");
  const Targets targets = parse_targets(options.targets);
  if (options.vision != "frozen" && options.vision != "finetune")
    throw UsageError(fmt::format("--vision \"{}\": expected frozen or finetune", options.vision));
  const bool finetune = options.vision == "finetune";
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
  // What there is to learn, counted from the manifests; the frozen tower's tokens are computed once here.
  int64_t skipped = 0, studies = 0, examples = 0;
  std::vector<Example> train;
  std::vector<std::vector<Sequence>> sequences;  // fine-tuning: per training study, read by every epoch
  if (finetune) {
    for (int64_t i = 0; i < train_set.size(); ++i) {
      sequences.push_back(study_sequences(train_set.study(i), tokenizer, options, targets));
      examples += static_cast<int64_t>(sequences.back().size());
      ++(sequences.back().empty() ? skipped : studies);
    }
  } else {
    train =
        build_examples(*clip, tokenizer, train_set, options, skipped, studies, "tokens", options.progress);
    examples = static_cast<int64_t>(train.size());
  }
  const auto validation_examples = [&] {
    int64_t s = 0, n = 0;
    return val_set.size() > 0 ? build_examples(*clip, tokenizer, val_set, options, s, n, "val",
                                               options.progress && !finetune)
                              : std::vector<Example>{};
  };
  if (examples == 0) {
    const std::string report =
        "a report" + (options.report_source.empty() ? "" : " \"" + options.report_source + "\"");
    throw Error(fmt::format("none of the {} training studies has {}", train_set.size(),
                            targets.reports && targets.answers ? report + " or a question"
                            : targets.reports                  ? report
                                                               : "a question (manifest field \"qa\")"));
  }
  // Fine-tuning changes the tokens: the validation examples are then rebuilt after every epoch.
  std::vector<Example> val = finetune ? std::vector<Example>{} : validation_examples();

  DecoderConfig config;
  config.vocab_size = tokenizer.vocab().size();
  config.width = options.width;
  config.layers = options.layers;
  config.heads = options.heads;
  config.max_length = options.max_length;
  config.visual_width = clip->config().vision.width;
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
  // Fine-tuning: the trunk (the tokens the decoder reads) trains too, at its own rate on the same schedule.
  std::vector<train::NamedParameter> trunk_parameters, all_parameters = parameters;
  std::optional<train::AdamW> trunk_optimizer;
  if (finetune) {
    trunk_parameters = train::named_trainable_parameters(*clip->visual->trunk);
    all_parameters.insert(all_parameters.end(), trunk_parameters.begin(), trunk_parameters.end());
    trunk_optimizer.emplace(trunk_parameters,
                            train::AdamWOptions{options.vision_lr, options.wd, 0.9, 0.98, 1e-6});
    clip->visual->trunk->train();
  }
  std::unique_ptr<EpochBatches> batches;
  if (finetune) {
    batches = std::make_unique<FinetuneBatches>(*clip, sequences, train_set, options, config.pad_id);
  } else {
    batches = std::make_unique<FrozenBatches>(train, options.batch_size, config.pad_id,
                                              derive_seed(options.seed, name_hash("order")));
  }
  train::ScheduleOptions schedule;
  schedule.base_lr = options.lr;
  schedule.warmup_steps = options.warmup;
  schedule.total_steps = batches->per_epoch() * options.epochs;

  create_directories(options.out);
  std::ofstream metrics(fs::path(options.out) / "metrics.jsonl");
  const auto millions = [](const std::vector<train::NamedParameter>& list) {
    int64_t n = 0;
    for (const auto& p : list)
      n += p.tensor.numel();
    return fmt::format("{:.2f}", static_cast<double>(n) / 1e6);
  };
  spdlog::info(
      "train-gen: {} training examples ({}) from {} studies ({} with nothing to learn), {} validation "
      "studies, decoder {} M parameters, vision tower {}{}, {} steps",
      examples, options.targets, studies, skipped, val_set.size(), millions(parameters),
      finetune ? "fine-tuned: " + millions(trunk_parameters) + " M parameters at lr " +
                     fmt::format("{:g}", options.vision_lr)
               : "frozen",
      finetune ? fmt::format(", {} scans per study", options.num_scans) : "", schedule.total_steps);
  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  Progress progress("train-gen", schedule.total_steps, "steps", progress_options);
  GeneratorTrainResult result;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    batches->start(epoch);
    double sum = 0;
    int64_t count = 0;
    while (const auto batch = batches->next()) {
      const double lr = train::learning_rate(schedule, result.steps);
      optimizer.set_lr(lr);
      optimizer.zero_grad();
      if (trunk_optimizer) {
        trunk_optimizer->set_lr(lr * options.vision_lr / options.lr);
        trunk_optimizer->zero_grad();
      }
      const at::Tensor loss = token_loss(*decoder, *batch);
      loss.backward();
      train::clip_grad_norm(all_parameters, 1.0);
      optimizer.step();
      if (trunk_optimizer) trunk_optimizer->step();
      ++result.steps;
      const double value = loss.item<double>();
      sum += value * static_cast<double>(batch->predicted);
      count += batch->predicted;
      progress.advance();
      progress.set_postfix(fmt::format("loss {:.3f}", value));
    }
    result.final_loss = sum / static_cast<double>(count);
    if (finetune) val = validation_examples();
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
                   {"targets", options.targets},
                   {"epochs", options.epochs},
                   {"batch_size", options.batch_size},
                   {"lr", options.lr},
                   {"wd", options.wd},
                   {"warmup", options.warmup},
                   {"seed", options.seed},
                   {"steps", result.steps},
                   {"final_loss", result.final_loss}};
  if (std::isfinite(result.val_loss)) training["val_loss"] = result.val_loss;
  const std::string source_model = fs::absolute(options.model).lexically_normal().string();
  json generator_config = {{"decoder", config.to_json()},
                           {"hlip_model", source_model},
                           {"vision", finetune ? "finetuned" : "frozen"},
                           {"report_source", options.report_source},
                           {"targets", options.targets},
                           {"training", training},
                           {"hlip_version", HLIP_VERSION_STRING}};
  if (finetune) {
    // The fine-tuned tower lives in the generator's own copy of the HLIP model (every tower, the tokenizer
    // and the recorded preprocessing), named relative to the generator folder.
    training["vision_lr"] = options.vision_lr;
    training["num_scans"] = options.num_scans;
    generator_config["training"] = training;
    generator_config["hlip_model"] = "hlip";
    generator_config["source_hlip_model"] = source_model;
    model::SaveModelDirOptions save;
    save.tokenizer = tokenizer_path;
    save.preprocess_preset = model::recorded_preprocess_preset(options.model);
    clip->eval();
    model::save_model_dir(clip, clip->config(), (fs::path(options.out) / "hlip").string(), save);
  }
  save_generator(*decoder, options.out, generator_config);
  result.out = options.out;
  result.studies = studies;
  result.examples = examples;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace hlip::gen
