// Image-report retrieval: ranks from a similarity matrix, report texts, and the evaluation of a split.
#include "hlip/eval/retrieval.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/core/random.h"
#include "hlip/eval/embed.h"
#include "hlip/text/report.h"

namespace hlip::eval {
namespace {

using json = nlohmann::json;

// Ranks of the diagonal entries: of row i when `by_row`, else of column i.
RetrievalDirection direction(const ScoreMatrix& similarity, bool by_row, const std::vector<int>& ks,
                             TieRule ties) {
  const size_t n = similarity.size();
  RetrievalDirection out;
  out.ranks.reserve(n);
  for (size_t query = 0; query < n; ++query) {
    const double match = similarity[query][query];
    int64_t rank = 1;
    for (size_t candidate = 0; candidate < n; ++candidate) {
      if (candidate == query) continue;
      const double value = by_row ? similarity[query][candidate] : similarity[candidate][query];
      rank += value > match || (ties == TieRule::kPessimistic && value == match);
    }
    out.ranks.push_back(rank);
  }
  for (int k : ks) {
    const auto hits = std::count_if(out.ranks.begin(), out.ranks.end(), [k](int64_t r) { return r <= k; });
    out.recall[k] = static_cast<double>(hits) / static_cast<double>(n);
  }
  out.mean_rank = static_cast<double>(std::accumulate(out.ranks.begin(), out.ranks.end(), int64_t{0})) /
                  static_cast<double>(n);
  std::vector<int64_t> sorted = out.ranks;
  std::sort(sorted.begin(), sorted.end());
  out.median_rank = n % 2 == 1 ? static_cast<double>(sorted[n / 2])
                               : 0.5 * static_cast<double>(sorted[n / 2 - 1] + sorted[n / 2]);
  return out;
}

json direction_json(const RetrievalDirection& d) {
  json recall = json::object();
  for (const auto& [k, value] : d.recall)
    recall[fmt::format("R@{}", k)] = value;
  return {{"recall", recall}, {"mean_rank", d.mean_rank}, {"median_rank", d.median_rank}};
}

}  // namespace

std::string to_string(TieRule rule) {
  return rule == TieRule::kPessimistic ? "pessimistic" : "optimistic";
}

TieRule parse_tie_rule(const std::string& name) {
  if (name == "pessimistic") return TieRule::kPessimistic;
  if (name == "optimistic") return TieRule::kOptimistic;
  throw Error(fmt::format("tie rule \"{}\": expected pessimistic or optimistic", name));
}

RetrievalMetrics retrieval_metrics(const ScoreMatrix& similarity, const std::vector<int>& ks, TieRule ties) {
  const size_t n = similarity.size();
  if (n == 0) throw Error("retrieval: the similarity matrix is empty");
  for (size_t i = 0; i < n; ++i) {
    if (similarity[i].size() != n) {
      throw Error(fmt::format("retrieval: similarity row {} has {} entries; expected {} (a square matrix)", i,
                              similarity[i].size(), n));
    }
    for (size_t j = 0; j < n; ++j) {
      if (std::isnan(similarity[i][j]))
        throw Error(fmt::format("retrieval: similarity[{}][{}] is NaN", i, j));
    }
  }
  for (int k : ks) {
    if (k < 1) throw Error(fmt::format("retrieval: recall@{}: K must be at least 1", k));
  }
  RetrievalMetrics out;
  out.n = static_cast<int64_t>(n);
  out.ties = ties;
  out.image_to_report = direction(similarity, true, ks, ties);
  out.report_to_image = direction(similarity, false, ks, ties);
  return out;
}

std::string study_report_text(const data::ManifestStudy& study, const std::string& source,
                              std::string* reason) {
  const std::vector<std::string>* sentences = &study.report;
  if (!source.empty() && source != "report") {
    const auto it = study.reports.find(source);
    if (it == study.reports.end()) {
      if (reason) *reason = fmt::format("no report source \"{}\"", source);
      return {};
    }
    sentences = &it->second;
  }
  text::ReportOptions options;
  options.mode = text::TextProcess::kReport;
  options.shuffle = false;
  Random unused(0);
  try {
    return text::process_report(*sentences, options, unused).front();
  } catch (const Error&) {  // no sentence, or only blank ones
    if (reason)
      *reason =
          source.empty() || source == "report" ? "no report" : fmt::format("empty report \"{}\"", source);
    return {};
  }
}

int64_t report_image_row(int64_t image_rows, int64_t requested, std::string* rule) {
  std::string why;
  int64_t row = 0;
  if (requested >= 0) {
    if (requested >= image_rows) {
      throw Error(fmt::format("image embedding row {} requested but the model gives {} row(s)", requested,
                              image_rows));
    }
    row = requested;
    why = "given";
  } else if (image_rows >= 2) {
    row = 1;
    why = "row 1: the report embedding of a dual model, which its report loss matches with whole reports";
  } else {
    why = "row 0: the model's only image embedding";
  }
  if (rule) *rule = why;
  return row;
}

RetrievalResult evaluate_retrieval(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                   const data::StudyDataset& dataset, const RetrievalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  RetrievalResult result;
  result.report_source = options.report_source;
  result.model = options.model;
  result.data = options.data;
  result.split = options.split;

  // Reports first: a source no study has fails before any image is embedded.
  std::vector<std::string> texts(static_cast<size_t>(dataset.size()));
  int64_t with_report = 0;
  std::set<std::string> sources_seen;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const data::ManifestStudy& study = dataset.study(i);
    for (const auto& [name, sentences] : study.reports)
      sources_seen.insert(name);
    std::string reason;
    texts[static_cast<size_t>(i)] = study_report_text(study, options.report_source, &reason);
    if (texts[static_cast<size_t>(i)].empty()) {
      ++result.skipped[reason];
    } else {
      ++with_report;
    }
  }
  if (with_report == 0) {
    std::string seen;
    for (const auto& name : sources_seen)
      seen += (seen.empty() ? "" : ", ") + name;
    throw Error(fmt::format(
        "{}: none of the {} studies of split \"{}\" has a {} (report sources: {})", options.data,
        dataset.size(), options.split,
        options.report_source.empty() ? std::string("report") : "report \"" + options.report_source + "\"",
        seen.empty() ? "none" : seen));
  }

  EmbedOptions embed_options;
  embed_options.workers = options.workers;
  embed_options.progress = options.progress;
  const StudyEmbeddings embeddings = embed_dataset(model, dataset, embed_options);
  result.failed_studies = embeddings.failed;
  result.image_rows = embeddings.embeddings.size(1);
  result.image_embedding =
      report_image_row(result.image_rows, options.image_embedding, &result.image_embedding_rule);

  std::vector<int64_t> rows;
  std::vector<std::string> kept_texts;
  for (size_t s = 0; s < embeddings.ids.size(); ++s) {
    const std::string& report = texts[static_cast<size_t>(embeddings.indices[s])];
    if (report.empty()) continue;
    rows.push_back(static_cast<int64_t>(s));
    result.studies.push_back(embeddings.ids[s]);
    kept_texts.push_back(report);
  }
  if (rows.empty()) {
    throw Error(fmt::format("{}: no study with a report could be loaded ({} failed)", options.data,
                            embeddings.failed));
  }
  std::map<std::string, int> text_counts;
  for (const auto& text : kept_texts)
    ++text_counts[text];
  for (const auto& text : kept_texts)
    result.duplicate_reports += text_counts[text] > 1;

  const at::Tensor images = embeddings.embeddings.index_select(0, at::tensor(rows, at::kLong))
                                .select(1, result.image_embedding)
                                .to(at::kDouble);
  const at::Tensor reports = embed_texts(model, tokenizer, kept_texts).to(at::kDouble);
  const at::Tensor similarity = at::matmul(images, reports.t()).contiguous();
  const int64_t n = similarity.size(0);
  ScoreMatrix matrix(static_cast<size_t>(n));
  const double* data = similarity.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i)
    matrix[static_cast<size_t>(i)].assign(data + i * n, data + (i + 1) * n);
  result.metrics = retrieval_metrics(matrix, options.ks, options.ties);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

json retrieval_json(const RetrievalResult& result) {
  json ranks = json::array();
  for (size_t i = 0; i < result.studies.size(); ++i) {
    ranks.push_back({{"study", result.studies[i]},
                     {"image_to_report_rank", result.metrics.image_to_report.ranks[i]},
                     {"report_to_image_rank", result.metrics.report_to_image.ranks[i]}});
  }
  const json protocol = {
      {"similarity", "cosine of the unit-length image and report embeddings"},
      {"image_embedding", result.image_embedding},
      {"image_embedding_rule", result.image_embedding_rule},
      {"image_rows", result.image_rows},
      {"report_text",
       "the report's sentences in manifest order, trimmed, blank ones dropped, joined by one space (the "
       "trainer's report text, unshuffled), tokenized at the model's context length (longer reports are "
       "truncated)"},
      {"report_source", result.report_source.empty() ? "report" : result.report_source},
      {"match",
       "each study's own report (image i <-> report i); the other studies' reports are the "
       "distractors"},
      {"ties", to_string(result.metrics.ties)},
      {"tie_rule", result.metrics.ties == TieRule::kPessimistic
                       ? "a candidate as similar as the match ranks ahead of it: rank = number of candidates "
                         "with similarity >= the match's"
                       : "a candidate as similar as the match ranks behind it: rank = 1 + number of "
                         "candidates with similarity > the match's"},
      {"recall", "R@K: share of queries whose match has rank <= K"},
      {"median_rank", "numpy's median: the mean of the two middle ranks for an even count"},
      {"batch_size", 1},
      {"scans", "every scan of each study, in manifest order"}};
  return {{"model", result.model},
          {"data", result.data},
          {"split", result.split},
          {"hlip_version", HLIP_VERSION_STRING},
          {"n_studies", result.metrics.n},
          {"skipped", result.skipped},
          {"failed_studies", result.failed_studies},
          {"duplicate_reports", result.duplicate_reports},
          {"image_to_report", direction_json(result.metrics.image_to_report)},
          {"report_to_image", direction_json(result.metrics.report_to_image)},
          {"ranks", ranks},
          {"protocol", protocol},
          {"seconds", result.seconds}};
}

std::string format_retrieval_table(const RetrievalResult& result) {
  std::ostringstream out;
  out << fmt::format("retrieval on {} studies (image row {}, ties {})", result.metrics.n,
                     result.image_embedding, to_string(result.metrics.ties));
  if (result.failed_studies > 0) out << fmt::format(", {} failed to load", result.failed_studies);
  out << "\n";
  out << fmt::format("{:<16}", "direction");
  for (const auto& [k, value] : result.metrics.image_to_report.recall)
    out << fmt::format("  {:>6}", fmt::format("R@{}", k));
  out << fmt::format("  {:>9}  {:>11}\n", "mean rank", "median rank");
  const auto row = [&](const char* name, const RetrievalDirection& d) {
    out << fmt::format("{:<16}", name);
    for (const auto& [k, value] : d.recall)
      out << fmt::format("  {:>6.3f}", value);
    out << fmt::format("  {:>9.2f}  {:>11.1f}\n", d.mean_rank, d.median_rank);
  };
  row("image -> report", result.metrics.image_to_report);
  row("report -> image", result.metrics.report_to_image);
  if (result.duplicate_reports > 0) {
    out << fmt::format("{} studies share their report text with another (ties under the {} rule)\n",
                       result.duplicate_reports, to_string(result.metrics.ties));
  }
  for (const auto& [reason, count] : result.skipped)
    out << fmt::format("skipped: {} studies ({})\n", count, reason);
  return out.str();
}

}  // namespace hlip::eval
