#pragma once
// What the evaluation subcommands (zeroshot, embed, retrieve, probe) share: loading the model folder and
// its tokenizer, the dataset of one split, and the preset a manifest is preprocessed with.

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <vector>

#include "hlip/data/dataset.h"
#include "hlip/eval/vqa.h"
#include "hlip/model/clip.h"
#include "hlip/preprocess/preset.h"
#include "hlip/text/tokenizer.h"

namespace hlip::cli {

// The preset recorded in a cache folder's cache.json: the one fixed preset, or the one for `modality`.
preprocess::Preset cache_preset(const std::string& cache, const std::string& modality);

// A preset name, a TOML file, or a cache folder (the preset it was prepared with).
preprocess::Preset preset_from_flag(const std::string& spec, const std::string& modality);

// The preset a data source needs: none for a prepared cache (a --preset is ignored with a note), the
// --preset for a manifest (a UsageError without one).
std::optional<preprocess::Preset> dataset_preset(const std::string& data, const std::string& flag,
                                                 const std::string& modality);

// The studies of `split` ("all": every study) of a cache or manifest. A split without studies is an
// hlip::Error naming the data, the split and the splits it has.
data::StudyDataset split_dataset(const std::string& data, const std::string& split,
                                 const std::optional<preprocess::Preset>& preset);

// `--device cpu | cuda | cuda:N`: where a command's model computes (studies are read and scored on the CPU).
void add_device_flag(CLI::App& app, std::string& device);

// A model folder on `device` (a --device value; "cuda" is cuda:LOCAL_RANK for a sharded run), with its load
// report on stderr.
model::HlipClip load_model(const std::string& dir, const std::string& device = "cpu");

// --tokenizer, else MODEL/tokenizer.
text::Tokenizer load_tokenizer(const std::string& flag, const std::string& model_dir);

// "a, b,c" -> {"a", "b", "c"}: items trimmed, empty ones dropped.
std::vector<std::string> split_list(const std::string& text);

// A JSON file, parse errors naming it.
nlohmann::json read_json_file(const std::string& path);

struct ResolvedPreset {
  preprocess::Preset preset;
  std::string from;  // for messages: "--preset X", the model folder's record, or the modality's default
};

// How a raw study is prepared for a model: --preset, else the preset the model folder records
// (open_clip_config.json "preprocess_cfg"."hlip_preset"), else the default preset of the modality.
ResolvedPreset resolve_preset(const std::string& flag, const std::string& model_dir,
                              const std::string& modality);

// A CSV field: quoted, with quotes doubled.
std::string csv_field(const std::string& text);

// `dir`/answers.csv (study,type,question,answer,predicted) of answered questions; returns its path.
std::string write_vqa_answers(const std::string& dir, const std::vector<eval::VqaRow>& rows);

// The table of eval::score_vqa_answers' result: per type and overall, accuracy beside the majority answer's.
void print_vqa_table(const nlohmann::json& scores);

// The flags every evaluation command takes: --model (required), --tokenizer, --data (required).
void add_model_and_data_flags(CLI::App& app, std::string& model, std::string& tokenizer, std::string& data);

}  // namespace hlip::cli
