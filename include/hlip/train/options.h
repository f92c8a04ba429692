#pragma once
// The settings of `hlip train` as one table: each field's TOML key (the flag's name with '_' for '-'), its
// help text and where it lives in TrainOptions. params.toml, `--config FILE` and the command-line flags are
// all generated from it, so the three never disagree.
//
//   for (const auto& field : hlip::train::train_option_fields()) declare_flag("--" + flag_name(field), ...);

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "hlip/train/trainer.h"

namespace hlip::train {

struct OptionField {
  using Member = std::variant<std::string TrainOptions::*, int64_t TrainOptions::*, double TrainOptions::*,
                              bool TrainOptions::*, uint64_t TrainOptions::*, int TrainOptions::*,
                              std::vector<std::string> TrainOptions::*>;
  std::string key;  // TOML key, e.g. "batch_size"
  std::string help;
  Member member;
};

const std::vector<OptionField>& train_option_fields();

// "batch_size" → "batch-size".
std::string flag_name(const OptionField& field);

// Copies one field from `from` to `to`.
void copy_field(const OptionField& field, const TrainOptions& from, TrainOptions& to);

}  // namespace hlip::train
