#pragma once
// The text side of a training step, as HLIP builds it from a study's report sentences (recipe 4.3), and the
// zero-shot prompts built from class names and templates.
//
//   hlip::text::ReportOptions options;
//   options.mode = hlip::text::TextProcess::kSentence;             // sentence dropout
//   auto texts = hlip::text::process_report(sentences, options, rng);   // {"This study shows: <one
//   sentence>"}
//
//   auto prompts = hlip::text::expand_prompts({"Glioma", "Meningioma"}, {"This MRI study shows: {c}."});

#include <cstdint>
#include <string>
#include <vector>

#include "hlip/core/random.h"

namespace hlip::text {

// HLIP's `--text-process` choices.
enum class TextProcess {
  kReport,             // all sentences, shuffled, joined (v1 training, `get_report`)
  kSentence,           // sentence dropout: one random sentence per step (`get_sentence`)
  kSentenceAndReport,  // both, for the dual loss: {sentence text, report text}
};

TextProcess parse_text_process(const std::string& name);  // "report", "sentence", "sentence-and-report"
std::string to_string(TextProcess mode);

struct ReportOptions {
  TextProcess mode = TextProcess::kReport;
  bool shuffle = true;                                 // random sentence order for the report text
  std::string sentence_prefix = "This study shows: ";  // HLIP's `get_sentence` prefix
  std::string report_prefix;                           // none, as `get_report`
};

// The training texts of one step: one text (report or sentence), or two (sentence, report) for
// kSentenceAndReport. Blank sentences are skipped; a report without any other sentence is an hlip::Error.
std::vector<std::string> process_report(const std::vector<std::string>& sentences,
                                        const ReportOptions& options, Random& rng);

// Splits free text into sentences at '.', '!' or '?' followed by white space (for reports given as one text).
std::vector<std::string> split_sentences(const std::string& text);

struct PromptSet {
  std::vector<std::string> texts;    // class-major: all templates of class 0, then class 1, ...
  std::vector<int64_t> class_index;  // class of each text
  int64_t num_classes = 0;
  int64_t num_templates = 0;
};

// Every class prompt in every template; "{c}" in a template is replaced by the prompt. A template without
// "{c}" is an error.
PromptSet expand_prompts(const std::vector<std::string>& class_prompts,
                         const std::vector<std::string>& templates);

// The negative prompt of a negative-vs-positive pair ("No X" for "X", CT-RATE's "Not X" with `word` = "Not").
std::string negative_prompt(const std::string& positive, const std::string& word = "No");

}  // namespace hlip::text
