#pragma once
// Closed visual question answering, zero-shot (`hlip vqa`, docs/generation.md#vqa): each question type of an
// answer set is a multiclass zero-shot task whose classes are the possible answers; a study's answer is the
// class whose prompt embedding is closest to the study's embedding. Scored by exact match against the
// manifest's "qa" answers, per type and overall, beside the majority answer of each type.
//
//   auto set = hlip::eval::load_vqa_set("synth-mri");            // configs/vqa/synth-mri.json, embedded
//   auto result = hlip::eval::evaluate_zeroshot_vqa(*clip, tokenizer, set, test, train);

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/data/dataset.h"
#include "hlip/eval/embed.h"
#include "hlip/eval/zeroshot.h"

namespace hlip::eval {

struct VqaSet {
  std::string name;
  std::string origin;
  std::map<std::string, ZeroShotTask> types;  // question type → its answers as a multiclass task
};

// A file {"name", "description", "templates": [...], "types": {"<type>": [{"name": answer, "prompts": [...]},
// ...]}} or the name of an embedded one (configs/vqa/). Errors name the file and the field.
VqaSet load_vqa_set(const std::string& name_or_path);
std::vector<std::string> known_vqa_sets();

struct VqaOptions {
  EmbedOptions embed;
};

struct VqaRow {
  std::string study, type, question, answer, predicted;
};

struct VqaResult {
  nlohmann::json results;  // {"accuracy", "majority_accuracy", "questions", "types": {type: {...}}, ...}
  std::vector<VqaRow> rows;
};

// The most frequent (normalised) answer of each question type among `dataset`'s questions; ties go to the
// answer first in alphabetical order.
std::map<std::string, std::string> majority_answers(const data::StudyDataset& dataset);

// Exact-match accuracy of answered questions, per type and overall, beside the majority answer of each type
// (`train_majority`'s, else `test_majority`'s, which the result says): {"questions", "accuracy",
// "majority_accuracy", "types": {type: {"questions", "accuracy", "majority_answer", "majority_from",
// "majority_accuracy"}}}. Answers compare after normalize_answer. An hlip::Error when `rows` is empty.
nlohmann::json score_vqa_answers(const std::vector<VqaRow>& rows,
                                 const std::map<std::string, std::string>& train_majority,
                                 const std::map<std::string, std::string>& test_majority);

// Answers every question of `test`'s studies whose type the set has (others are counted as skipped);
// the majority answer of each type comes from `train`'s questions (or from `test`'s when `train` has none of
// that type, which the results say).
VqaResult evaluate_zeroshot_vqa(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                const VqaSet& set, const data::StudyDataset& test,
                                const data::StudyDataset& train, const VqaOptions& options = {});

}  // namespace hlip::eval
