#include "hlip/gen/evaluation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <regex>

#include "hlip/core/error.h"
#include "hlip/core/progress.h"
#include "hlip/data/loader.h"
#include "hlip/data/manifest.h"
#include "hlip/eval/text_metrics.h"

namespace hlip::gen {
using json = nlohmann::json;

namespace {

std::string lowercase(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// Sentences: split after '.', '!', '?' or ';' (a decimal point between digits does not split).
std::vector<std::string> sentences_of(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    current += c;
    const bool decimal = c == '.' && i > 0 && i + 1 < text.size() &&
                         std::isdigit(static_cast<unsigned char>(text[i - 1])) &&
                         std::isdigit(static_cast<unsigned char>(text[i + 1]));
    if ((c == '.' || c == '!' || c == '?' || c == ';') && !decimal) {
      out.push_back(current);
      current.clear();
    }
  }
  if (current.find_first_not_of(" \t\n") != std::string::npos) out.push_back(current);
  return out;
}

bool negated(const std::string& lower_sentence) {
  static const std::regex cue(R"(\b(no|not|without|negative for|absent)\b)");
  return std::regex_search(lower_sentence, cue);
}

double ratio(double a, double b) {
  return b > 0 ? a / b : 0.0;
}

}  // namespace

std::string joined_report(const data::ManifestStudy& study, const std::string& source) {
  std::string text;
  for (const auto& sentence : data::report_sentences(study, source)) {
    if (sentence.empty()) continue;
    if (!text.empty()) text += ' ';
    text += sentence;
  }
  return text;
}

const std::vector<FindingRule>& default_finding_rules() {
  static const std::vector<FindingRule> rules{
      // MRI (synth_reports.cpp): a normal study says so in one of these ways; the rest is negated findings.
      {"normal",
       {"no acute intracranial abnormality", "normal mri of the brain", "brain parenchyma is normal",
        "normal study"},
       false},
      {"stroke", {"infarct", "stroke", "restricted diffusion"}, true},
      {"glioma", {"glioma", "glial"}, true},
      {"meningioma", {"meningioma"}, true},
      {"metastasis", {"metasta"}, true},
      // CT (RSNA haemorrhage types)
      {"epidural", {"epidural", "extradural"}, true},
      {"subdural", {"subdural"}, true},
      {"subarachnoid", {"subarachnoid"}, true},
      {"intraventricular", {"intraventricular"}, true},
      {"intraparenchymal",
       {"intraparenchymal", "parenchymal haemorrhage", "parenchymal hemorrhage", "parenchymal haematoma",
        "parenchymal hematoma"},
       true},
      {"Any", {"haemorrhage", "hemorrhage", "haematoma", "hematoma", "bleed"}, true},
  };
  return rules;
}

std::vector<FindingRule> read_finding_rules(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open the finding rules", path));
  const json root = json::parse(in, nullptr, false);
  if (!root.is_array() || root.empty())
    throw Error(fmt::format("{}: finding rules must be a non-empty JSON array", path));
  std::vector<FindingRule> rules;
  for (size_t i = 0; i < root.size(); ++i) {
    const json& item = root[i];
    if (!item.is_object() || !item.contains("label") || !item["label"].is_string() ||
        !item.contains("patterns") || !item["patterns"].is_array() || item["patterns"].empty()) {
      throw Error(
          fmt::format("{}: rule {} needs a \"label\" string and a non-empty \"patterns\" array", path, i));
    }
    for (const auto& [key, value] : item.items()) {
      if (key != "label" && key != "patterns" && key != "negatable")
        throw Error(fmt::format("{}: rule {} has an unknown field \"{}\"", path, i, key));
    }
    FindingRule rule;
    rule.label = item["label"].get<std::string>();
    for (const auto& pattern : item["patterns"]) {
      if (!pattern.is_string() || pattern.get<std::string>().empty())
        throw Error(fmt::format("{}: rule {} (\"{}\") has a pattern that is not a non-empty string", path, i,
                                rule.label));
      rule.patterns.push_back(lowercase(pattern.get<std::string>()));
    }
    rule.negatable = item.value("negatable", true);
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::set<std::string> mentioned_findings(const std::string& report, const std::vector<FindingRule>& rules) {
  std::set<std::string> found;
  for (const auto& sentence : sentences_of(report)) {
    const std::string lower = lowercase(sentence);
    const bool is_negated = negated(lower);
    for (const auto& rule : rules) {
      if (rule.negatable && is_negated) continue;
      for (const auto& pattern : rule.patterns) {
        if (lower.find(lowercase(pattern)) != std::string::npos) {
          found.insert(rule.label);
          break;
        }
      }
    }
  }
  return found;
}

json generation_metrics(const std::vector<std::string>& references, const std::vector<std::string>& generated,
                        const std::vector<std::map<std::string, int>>& labels,
                        const std::vector<FindingRule>& rules) {
  if (references.size() != generated.size() || references.size() != labels.size())
    throw Error("generation_metrics: references, generations and labels differ in number");
  json out;
  std::vector<std::vector<eval::Tokens>> reference_tokens;
  std::vector<eval::Tokens> generated_tokens;
  for (size_t i = 0; i < references.size(); ++i) {
    reference_tokens.push_back({eval::rouge_tokenize(references[i])});
    generated_tokens.push_back(eval::rouge_tokenize(generated[i]));
  }
  for (int order = 1; order <= 4; ++order) {
    out["bleu"][fmt::format("bleu{}", order)] =
        eval::corpus_bleu(reference_tokens, generated_tokens, eval::bleu_options(order)).score;
  }
  const eval::RougeL rouge = eval::mean_rouge_l(references, generated);
  out["rouge_l"] = {{"precision", rouge.precision}, {"recall", rouge.recall}, {"fmeasure", rouge.fmeasure}};

  std::vector<std::set<std::string>> mentioned;
  for (const auto& text : generated)
    mentioned.push_back(mentioned_findings(text, rules));
  double f1_sum = 0, tp_all = 0, fp_all = 0, fn_all = 0;
  int scored = 0;
  out["findings"] = json::object();
  for (const auto& rule : rules) {
    bool present = false;
    double tp = 0, fp = 0, fn = 0, positives = 0, predicted = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      const auto label = labels[i].find(rule.label);
      if (label == labels[i].end()) continue;
      present = true;
      const bool positive = label->second > 0;
      const bool said = mentioned[i].count(rule.label) > 0;
      positives += positive;
      predicted += said;
      tp += positive && said;
      fp += !positive && said;
      fn += positive && !said;
    }
    if (!present) continue;  // no study carries this label
    const double precision = ratio(tp, tp + fp), recall = ratio(tp, tp + fn);
    const double f1 = ratio(2 * precision * recall, precision + recall);
    out["findings"][rule.label] = {{"precision", precision},
                                   {"recall", recall},
                                   {"f1", f1},
                                   {"n_pos", positives},
                                   {"n_mentioned", predicted}};
    f1_sum += f1;
    ++scored;
    tp_all += tp;
    fp_all += fp;
    fn_all += fn;
  }
  out["finding_f1_macro"] = scored > 0 ? f1_sum / scored : 0.0;
  const double precision = ratio(tp_all, tp_all + fp_all), recall = ratio(tp_all, tp_all + fn_all);
  out["finding_f1_micro"] = ratio(2 * precision * recall, precision + recall);
  return out;
}

GenEvalResult evaluate_generation(Generator& generator, const data::StudyDataset& test,
                                  const data::StudyDataset& train, const GenEvalOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (!options.targets.reports && !options.targets.answers)
    throw UsageError("eval-gen: nothing to score (neither reports nor answers)");
  // The report baseline: the most frequent training report.
  std::map<std::string, int64_t> counts;
  std::string most_common;
  int64_t best = 0;
  for (int64_t i = 0; options.targets.reports && i < train.size(); ++i) {
    const std::string report = joined_report(train.study(i), options.report_source);
    if (report.empty()) continue;
    if (++counts[report] > best) {
      best = counts[report];
      most_common = report;
    }
  }
  if (options.targets.reports && most_common.empty())
    throw Error("no training study has a report: no baseline");

  data::LoaderOptions loader_options = data::LoaderOptions::one_study_at_a_time(options.workers);
  data::StudyLoader loader(test, loader_options);
  loader.start(0);
  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  Progress progress("generate", test.size(), "studies", progress_options);
  GenEvalResult out;
  std::vector<std::map<std::string, int>> labels;
  int64_t without_report = 0, without_questions = 0;
  GenerateOptions answer_options = options.generate;
  answer_options.max_new_tokens = options.max_answer_tokens;
  while (auto batch = loader.next()) {
    progress.advance(1 + batch->failed);
    const data::ManifestStudy& study = test.study(batch->indices.at(0));
    const std::string reference = options.targets.reports ? joined_report(study, options.report_source) : "";
    const bool report = !reference.empty();
    const bool questions = options.targets.answers && !study.qa.empty();
    without_report += options.targets.reports && !report;
    without_questions += options.targets.answers && study.qa.empty();
    if (!report && !questions) continue;
    const at::Tensor memory = generator.memory(batch->image);
    if (report) {
      out.ids.push_back(study.id);
      out.references.push_back(reference);
      out.generated.push_back(generator.generate(memory, options.generate));
      labels.push_back(study.labels);
    }
    for (size_t q = 0; questions && q < study.qa.size(); ++q) {
      const data::QaPair& qa = study.qa[q];
      out.answers.push_back({study.id, qa.type, qa.question, qa.answer,
                             generator.generate(memory, answer_options, qa.question)});
    }
  }
  progress.finish();
  if (options.targets.reports && out.ids.empty())
    throw Error(fmt::format("none of the {} studies has a report to compare with", test.size()));
  if (options.targets.answers && out.answers.empty())
    throw Error(fmt::format("none of the {} studies has a question (manifest field \"qa\")", test.size()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  out.results = {{"decoding",
                  {{"beams", options.generate.beams},
                   {"max_new_tokens", options.generate.max_new_tokens},
                   {"max_answer_tokens", options.max_answer_tokens},
                   {"length_penalty", options.generate.length_penalty}}},
                 {"failed_studies", loader.failed_studies()},
                 {"seconds", seconds}};
  if (options.targets.reports) {
    const std::vector<std::string> baseline(out.ids.size(), most_common);
    out.results["generator"] = generation_metrics(out.references, out.generated, labels, options.rules);
    out.results["baseline"] = generation_metrics(out.references, baseline, labels, options.rules);
    out.results["baseline_report"] = most_common;
    out.results["baseline_report_count"] = best;
    out.results["studies"] = out.ids.size();
    out.results["studies_without_report"] = without_report;
    out.results["tokenization"] =
        "BLEU and ROUGE-L on rouge-score tokens (lowercased [a-z0-9] runs) of both sides";
  }
  if (options.targets.answers) {
    out.results["vqa"] =
        eval::score_vqa_answers(out.answers, eval::majority_answers(train), eval::majority_answers(test));
    out.results["vqa"]["studies_without_questions"] = without_questions;
    out.results["vqa"]["scoring"] =
        "generative: the decoder writes the answer after [CLS] question [SEP]; exact match after "
        "lowercasing and collapsing spaces";
  }
  return out;
}

}  // namespace hlip::gen
