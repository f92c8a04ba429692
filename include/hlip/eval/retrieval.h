#pragma once
// Image-report retrieval on a split: each study's image embedding against each study's report embedding,
// recall@K and ranks in both directions (docs/zeroshot.md, "hlip retrieve").
//
//   hlip::data::StudyDataset test({{"cache"}}, "test");
//   hlip::eval::RetrievalResult result = hlip::eval::evaluate_retrieval(*clip, tokenizer, test);
//   result.metrics.image_to_report.recall.at(5);        // share of studies whose report ranks in the top 5
//   hlip::write_file_atomic("retrieval.json", hlip::eval::retrieval_json(result).dump(2));
//
//   // Metrics alone, from a similarity matrix whose match of row i is column i:
//   hlip::eval::RetrievalMetrics m = hlip::eval::retrieval_metrics({{0.9, 0.1}, {0.9, 0.2}});
//   // image 0 ranks report 0 first; image 1 ranks report 1 second; report 0 ties image 0 with image 1:
//   // rank 2 under the pessimistic rule (the default), 1 under the optimistic one.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/data/dataset.h"
#include "hlip/eval/metrics.h"
#include "hlip/model/clip.h"
#include "hlip/text/tokenizer.h"

namespace hlip::eval {

// How a candidate whose similarity equals that of the true match is ranked.
enum class TieRule {
  kPessimistic,  // ahead of the match: rank = #{candidates with similarity >= the match's} (the default)
  kOptimistic,   // behind it: rank = 1 + #{candidates with similarity > the match's}
};

std::string to_string(TieRule rule);  // "pessimistic" | "optimistic"
TieRule parse_tie_rule(const std::string& name);

// One direction of retrieval: each query's true match among every candidate.
struct RetrievalDirection {
  std::vector<int64_t> ranks;    // 1-based rank of each query's match, in query order
  std::map<int, double> recall;  // K -> share of queries whose match has rank <= K
  double mean_rank = 0.0;
  double median_rank = 0.0;  // of an even count: the mean of the two middle ranks (numpy's median)
};

struct RetrievalMetrics {
  int64_t n = 0;
  TieRule ties = TieRule::kPessimistic;
  RetrievalDirection image_to_report;  // rows of the similarity matrix as queries
  RetrievalDirection report_to_image;  // columns as queries
};

// similarity[i][j]: image i against report j, square, the match of image i is report i. `ks` are the K of
// recall@K (each >= 1; K above n gives 1). A non-square or empty matrix or a NaN is an hlip::Error.
RetrievalMetrics retrieval_metrics(const ScoreMatrix& similarity, const std::vector<int>& ks = {1, 5, 10},
                                   TieRule ties = TieRule::kPessimistic);

// The report text a study is matched with: the sentences of `source` ("" = the main report) in manifest
// order, trimmed, blank ones dropped, joined by one space (the trainer's report text without its shuffle).
// Empty, with `reason` set, when the study has no such report.
std::string study_report_text(const data::ManifestStudy& study, const std::string& source,
                              std::string* reason = nullptr);

// The image row matched with whole reports for a model whose image features have `image_rows` rows:
// `requested` when >= 0 (an hlip::Error beyond the rows), else row 1 of dual models (the report embedding,
// which their report loss trains against whole reports), else row 0. `rule` receives the reason, for the
// results.
int64_t report_image_row(int64_t image_rows, int64_t requested, std::string* rule = nullptr);

struct RetrievalOptions {
  std::string report_source;  // "" = the main report
  TieRule ties = TieRule::kPessimistic;
  std::vector<int> ks = {1, 5, 10};
  // The image row matched with reports; -1: row 1 (the report embedding) of dual models, else row 0.
  int64_t image_embedding = -1;
  int workers = 1;        // loader threads reading studies ahead
  bool progress = false;  // a progress bar on stderr
  std::string model;      // recorded in the results
  std::string data;
  std::string split;
};

struct RetrievalResult {
  RetrievalMetrics metrics;
  std::vector<std::string> studies;        // the studies retrieved, in data order (row i is studies[i])
  std::map<std::string, int64_t> skipped;  // studies left out, by reason (no report)
  int64_t failed_studies = 0;              // could not be loaded (logged by the loader)
  int64_t image_rows = 0;                  // P of the model's image features
  int64_t image_embedding = 0;             // the row used
  std::string image_embedding_rule;        // why that row
  int64_t duplicate_reports = 0;           // studies whose report text equals another retrieved study's
  std::string report_source;
  std::string model;
  std::string data;
  std::string split;
  double seconds = 0.0;
};

// Embeds every study of `dataset` (batch size 1, all scans) and the report of each study that has one,
// then computes retrieval_metrics on their cosine similarities. Studies without a report are skipped and
// counted; none with a report is an hlip::Error naming the source.
RetrievalResult evaluate_retrieval(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                                   const data::StudyDataset& dataset, const RetrievalOptions& options = {});

// results.json of `hlip retrieve` (docs/zeroshot.md): both directions, per-study ranks and every choice.
nlohmann::json retrieval_json(const RetrievalResult& result);
// A small table: recall@K, mean and median rank per direction, and the skipped studies.
std::string format_retrieval_table(const RetrievalResult& result);

}  // namespace hlip::eval
