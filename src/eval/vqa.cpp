#include "hlip/eval/vqa.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/eval/text_metrics.h"
#include "json_config.h"

namespace hlip::eval {
namespace detail {
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_vqa_files();
}  // namespace detail

using json = nlohmann::json;

namespace {

VqaSet parse_vqa_set(const json& root, const std::string& origin) {
  if (!root.is_object()) throw Error(fmt::format("{}: a VQA answer set must be a JSON object", origin));
  for (const auto& [key, value] : root.items()) {
    if (key != "name" && key != "description" && key != "templates" && key != "types")
      throw Error(fmt::format("{}: unknown field \"{}\"", origin, key));
  }
  if (!root.contains("types") || !root["types"].is_object() || root["types"].empty())
    throw Error(fmt::format("{}: \"types\" must be a non-empty object of question type → answers", origin));
  VqaSet set;
  set.name = root.value("name", std::filesystem::path(origin).stem().string());
  set.origin = origin;
  const json templates = root.value("templates", json::array({"{c}"}));
  for (const auto& [type, answers] : root["types"].items()) {
    if (!answers.is_array() || answers.size() < 2)
      throw Error(fmt::format("{}: \"types\".{} must list at least two answers", origin, type));
    const json task = {{"name", set.name + "/" + type},
                       {"description", fmt::format("answers to the {} questions", type)},
                       {"mode", "multiclass"},
                       {"templates", templates},
                       {"classes", answers}};
    try {
      set.types.emplace(type, parse_task(task, origin));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: \"types\".{}: {}", origin, type, e.what()));
    }
  }
  return set;
}

}  // namespace

std::vector<std::string> known_vqa_sets() {
  return detail::embedded_names(detail::embedded_vqa_files());
}

VqaSet load_vqa_set(const std::string& name_or_path) {
  if (auto config = detail::read_json_config(name_or_path, detail::embedded_vqa_files(), "vqa"))
    return parse_vqa_set(config->root, config->origin);
  throw Error(fmt::format("VQA answer set \"{}\": no such file or name (known: {})", name_or_path,
                          fmt::join(known_vqa_sets(), ", ")));
}

std::map<std::string, std::string> majority_answers(const data::StudyDataset& dataset) {
  std::map<std::string, std::map<std::string, int64_t>> counts;
  for (int64_t i = 0; i < dataset.size(); ++i)
    for (const auto& qa : dataset.study(i).qa)
      ++counts[qa.type][normalize_answer(qa.answer)];
  std::map<std::string, std::string> out;
  for (const auto& [type, answers] : counts) {
    int64_t best = -1;
    for (const auto& [answer, count] : answers) {
      if (count > best) {
        best = count;
        out[type] = answer;
      }
    }
  }
  return out;
}

json score_vqa_answers(const std::vector<VqaRow>& rows,
                       const std::map<std::string, std::string>& train_majority,
                       const std::map<std::string, std::string>& test_majority) {
  if (rows.empty()) throw Error("no question was answered");
  const auto majority_of = [&](const std::string& type) -> std::string {
    if (const auto it = train_majority.find(type); it != train_majority.end()) return it->second;
    if (const auto it = test_majority.find(type); it != test_majority.end()) return it->second;
    return "";
  };
  std::map<std::string, int64_t> asked, right, majority_right;
  for (const auto& row : rows) {
    const std::string expected = normalize_answer(row.answer);
    ++asked[row.type];
    right[row.type] += normalize_answer(row.predicted) == expected;
    majority_right[row.type] += majority_of(row.type) == expected;
  }
  json types = json::object();
  int64_t total = 0, total_right = 0, total_majority = 0;
  for (const auto& [type, n] : asked) {
    const bool from_train = train_majority.count(type) > 0;
    types[type] = {{"questions", n},
                   {"accuracy", static_cast<double>(right[type]) / static_cast<double>(n)},
                   {"majority_answer", majority_of(type)},
                   {"majority_from", from_train ? "train" : "evaluated split"},
                   {"majority_accuracy", static_cast<double>(majority_right[type]) / static_cast<double>(n)}};
    total += n;
    total_right += right[type];
    total_majority += majority_right[type];
  }
  return {{"questions", total},
          {"accuracy", static_cast<double>(total_right) / static_cast<double>(total)},
          {"majority_accuracy", static_cast<double>(total_majority) / static_cast<double>(total)},
          {"types", types}};
}

VqaResult evaluate_zeroshot_vqa(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                const VqaSet& set, const data::StudyDataset& test,
                                const data::StudyDataset& train, const VqaOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  std::map<std::string, ZeroShotClassifier> classifiers;
  for (const auto& [type, task] : set.types)
    classifiers.emplace(type, ZeroShotClassifier(model, tokenizer, task));

  const StudyEmbeddings embeddings = embed_dataset(model, test, options.embed);
  VqaResult out;
  std::map<std::string, int64_t> skipped;
  for (size_t s = 0; s < embeddings.ids.size(); ++s) {
    const data::ManifestStudy& study = test.study(embeddings.indices[s]);
    for (const auto& qa : study.qa) {
      const auto classifier = classifiers.find(qa.type);
      if (classifier == classifiers.end()) {
        ++skipped[qa.type.empty() ? "(no type)" : qa.type];
        continue;
      }
      const at::Tensor scores =
          classifier->second.score(embeddings.embeddings[static_cast<int64_t>(s)].unsqueeze(0));
      const int64_t best = scores[0].argmax().item<int64_t>();
      out.rows.push_back({study.id, qa.type, qa.question, qa.answer,
                          classifier->second.task().classes[static_cast<size_t>(best)].name});
    }
  }
  if (out.rows.empty()) {
    throw Error(fmt::format("none of the {} studies has a question of the answer set's types ({})",
                            embeddings.ids.size(), fmt::join(known_vqa_sets(), ", ")));
  }
  out.results = score_vqa_answers(out.rows, majority_answers(train), majority_answers(test));
  for (auto& [type, r] : out.results["types"].items()) {
    json names = json::array();
    for (const auto& c : set.types.at(type).classes)
      names.push_back(c.name);
    r["answers"] = names;
  }
  out.results["set"] = set.name;
  out.results["origin"] = set.origin;
  out.results["skipped_questions"] = skipped;
  out.results["studies"] = embeddings.ids.size();
  out.results["failed_studies"] = embeddings.failed;
  out.results["scoring"] =
      "zero-shot: each type's answers are a multiclass task; the answer is the argmax; "
      "exact match after lowercasing and collapsing spaces";
  out.results["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

}  // namespace hlip::eval
