#pragma once
// `hlip train-gen`: a report decoder trained on an HLIP model's visual tokens with teacher forcing
// (docs/generation.md).
//
//   hlip::gen::GeneratorTrainOptions options;
//   options.model = "logs/demo/model";  options.train_data = {"cache"};  options.out = "gen";
//   auto result = hlip::gen::train_generator(options);        // gen/{generator_config.json,
//   decoder.safetensors}

#include <cstdint>
#include <string>
#include <vector>

namespace hlip::gen {

struct GeneratorTrainOptions {
  std::string model;                    // the HLIP model folder (vision tower, tokenizer)
  std::vector<std::string> train_data;  // prepared caches (or manifests with `preset`)
  std::string preset;
  std::string train_split = "train";
  std::string val_split = "val";
  std::string report_source;  // "" = the main report
  // What the decoder learns to write: "report" (the study's report after [CLS]), "qa" (each of the study's
  // closed questions' answers after [CLS] question [SEP]) or "both" (one decoder for reports and answers).
  std::string targets = "report";
  // The vision tower: "frozen" (its tokens of every scan computed once and cached in bf16) or "finetune"
  // (trained with the decoder at `vision_lr` on the same schedule, `num_scans` scans drawn per study per
  // step; the generator folder then carries the fine-tuned HLIP model in GEN/hlip/).
  std::string vision = "frozen";
  double vision_lr = 1e-4;
  int64_t num_scans = 4;
  std::string out;
  // Decoder shape
  int64_t width = 256;
  int64_t layers = 3;
  int64_t heads = 4;
  int64_t max_length = 128;
  double dropout = 0.1;
  // Schedule: AdamW, linear warm-up then cosine decay
  int64_t batch_size = 32;
  int64_t epochs = 30;
  double lr = 5e-4;
  double wd = 0.05;
  int64_t warmup = 50;
  uint64_t seed = 0;
  int workers = 2;
  bool progress = true;
};

struct GeneratorTrainResult {
  std::string out;
  int64_t steps = 0;
  double final_loss = 0;  // mean token cross-entropy of the last epoch
  double val_loss = 0;    // NaN without validation studies
  double seconds = 0;
  int64_t studies = 0;   // training studies with something to learn
  int64_t examples = 0;  // reports and question-answer pairs learnt from
};

// "report", "qa" or "both" -> whether reports and answers are targets; anything else is a UsageError.
struct Targets {
  bool reports = true;
  bool answers = false;
};
Targets parse_targets(const std::string& name);

GeneratorTrainResult train_generator(const GeneratorTrainOptions& options);

}  // namespace hlip::gen
