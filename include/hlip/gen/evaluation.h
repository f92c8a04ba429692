#pragma once
// Scoring generated reports (`hlip eval-gen`, docs/generation.md): corpus BLEU-1..4 and ROUGE-L against the
// reference reports, and a clinical-finding F1 that checks which labelled findings a report mentions, for
// the generator and for the "always write the most common training report" baseline.
//
//   auto rules = hlip::gen::default_finding_rules();
//   auto found = hlip::gen::mentioned_findings("Acute left MCA infarct. No mass.", rules);   // {"stroke"}

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/data/dataset.h"
#include "hlip/eval/vqa.h"
#include "hlip/gen/generator.h"
#include "hlip/gen/training.h"

namespace hlip::gen {

// A finding is mentioned when one of `patterns` (case-insensitive substrings) occurs in a sentence; when
// `negatable`, sentences with a negation cue ("no", "not", "without", "negative for", "absent") do not count.
struct FindingRule {
  std::string label;  // the manifest label it stands for
  std::vector<std::string> patterns;
  bool negatable = true;
};

// Rules for the labels of `hlip synth` (MRI: normal, stroke, glioma, meningioma, metastasis; CT: the RSNA
// haemorrhage types and Any), matched to the wording of its reports.
const std::vector<FindingRule>& default_finding_rules();
// A JSON file: [{"label": ..., "patterns": [...], "negatable": true}, ...].
std::vector<FindingRule> read_finding_rules(const std::string& path);

std::set<std::string> mentioned_findings(const std::string& report, const std::vector<FindingRule>& rules);

// BLEU-1..4 (corpus, nltk definitions, no smoothing) and mean ROUGE-L on rouge-score's tokens (lowercased
// alphanumeric runs) of both sides, and the finding F1 of every rule whose label the studies carry:
// {"bleu": {"bleu1".."bleu4"}, "rouge_l": {"precision", "recall", "fmeasure"}, "findings": {"<label>":
// {"precision", "recall", "f1", "n_pos", "n_mentioned"}}, "finding_f1_macro", "finding_f1_micro"}.
nlohmann::json generation_metrics(const std::vector<std::string>& references,
                                  const std::vector<std::string>& generated,
                                  const std::vector<std::map<std::string, int>>& labels,
                                  const std::vector<FindingRule>& rules);

struct GenEvalOptions {
  GenerateOptions generate;
  std::vector<FindingRule> rules = default_finding_rules();
  std::string report_source;  // the references ("" = the main report)
  Targets targets;            // what to score: reports, answers to the studies' questions, or both
  int64_t max_answer_tokens = 16;
  int workers = 2;
  bool progress = false;
};

struct GenEvalResult {
  // Reports: "generator" and "baseline" metrics, the baseline report, decoding settings, counts; answers:
  // "vqa" (eval::score_vqa_answers of the generated answers beside each type's majority answer).
  nlohmann::json results;
  std::vector<std::string> ids, references, generated;
  std::vector<eval::VqaRow> answers;
};

// Generates a report for every study of `test` with one, scores it, and scores the baseline: the most
// frequent report of `train` (ties: the first in order) written for every study. With `targets.answers`,
// also answers every question of the studies (greedy or beam as `generate` says, at most
// `max_answer_tokens`) and scores exact matches against the majority answers of `train`'s questions.
GenEvalResult evaluate_generation(Generator& generator, const data::StudyDataset& test,
                                  const data::StudyDataset& train, const GenEvalOptions& options);

// The study's report as one text: its sentences joined with spaces ("" when it has none).
std::string joined_report(const data::ManifestStudy& study, const std::string& source);

}  // namespace hlip::gen
