#include "hlip/text/report.h"

#include <fmt/format.h>

#include <cctype>

#include "hlip/core/error.h"

namespace hlip::text {
namespace {

bool blank(const std::string& text) {
  for (unsigned char c : text) {
    if (!std::isspace(c)) return false;
  }
  return true;
}

std::string trimmed(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin])))
    ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1])))
    --end;
  return text.substr(begin, end - begin);
}

}  // namespace

TextProcess parse_text_process(const std::string& name) {
  if (name == "report") return TextProcess::kReport;
  if (name == "sentence") return TextProcess::kSentence;
  if (name == "sentence-and-report" || name == "sentence and report") return TextProcess::kSentenceAndReport;
  throw Error(fmt::format("text process \"{}\": expected report, sentence or sentence-and-report", name));
}

std::string to_string(TextProcess mode) {
  switch (mode) {
    case TextProcess::kReport:
      return "report";
    case TextProcess::kSentence:
      return "sentence";
    case TextProcess::kSentenceAndReport:
      return "sentence-and-report";
  }
  return "report";
}

std::vector<std::string> process_report(const std::vector<std::string>& sentences,
                                        const ReportOptions& options, Random& rng) {
  std::vector<std::string> kept;
  for (const auto& sentence : sentences) {
    if (!blank(sentence)) kept.push_back(trimmed(sentence));
  }
  if (kept.empty()) throw Error("report has no sentence (empty or only white space)");
  std::vector<std::string> texts;
  if (options.mode != TextProcess::kReport) {
    texts.push_back(options.sentence_prefix +
                    kept[static_cast<size_t>(rng.integer(0, static_cast<int64_t>(kept.size()) - 1))]);
  }
  if (options.mode != TextProcess::kSentence) {
    if (options.shuffle) rng.shuffle(kept);
    std::string report = options.report_prefix;
    for (size_t i = 0; i < kept.size(); ++i)
      report += (i == 0 ? "" : " ") + kept[i];
    texts.push_back(report);
  }
  return texts;
}

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> sentences;
  std::string current;
  for (size_t i = 0; i < text.size(); ++i) {
    current += text[i];
    const bool end_mark = text[i] == '.' || text[i] == '!' || text[i] == '?';
    const bool then_space = i + 1 == text.size() || std::isspace(static_cast<unsigned char>(text[i + 1]));
    if (end_mark && then_space) {
      if (!blank(current)) sentences.push_back(trimmed(current));
      current.clear();
    }
  }
  if (!blank(current)) sentences.push_back(trimmed(current));
  return sentences;
}

PromptSet expand_prompts(const std::vector<std::string>& class_prompts,
                         const std::vector<std::string>& templates) {
  if (class_prompts.empty()) throw Error("prompts: no class prompt given");
  if (templates.empty()) throw Error("prompts: no template given");
  PromptSet set;
  set.num_classes = static_cast<int64_t>(class_prompts.size());
  set.num_templates = static_cast<int64_t>(templates.size());
  for (const auto& t : templates) {
    if (t.find("{c}") == std::string::npos)
      throw Error(fmt::format("prompt template \"{}\" has no {{c}}", t));
  }
  for (size_t c = 0; c < class_prompts.size(); ++c) {
    for (const auto& t : templates) {
      std::string text = t;
      for (size_t at = text.find("{c}"); at != std::string::npos;
           at = text.find("{c}", at + class_prompts[c].size())) {
        text.replace(at, 3, class_prompts[c]);
      }
      set.texts.push_back(text);
      set.class_index.push_back(static_cast<int64_t>(c));
    }
  }
  return set;
}

std::string negative_prompt(const std::string& positive, const std::string& word) {
  if (positive.empty()) throw Error("negative prompt: the positive prompt is empty");
  std::string lowered = positive;
  // "Glioma" → "No glioma", but keep acronyms ("MCA infarct" → "No MCA infarct").
  if (lowered.size() > 1 && std::isupper(static_cast<unsigned char>(lowered[0])) &&
      !std::isupper(static_cast<unsigned char>(lowered[1]))) {
    lowered[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(lowered[0])));
  }
  return word + " " + lowered;
}

}  // namespace hlip::text
