#pragma once
// The `scores.csv` that zero-shot and probe write (study,class,score,label), read back by the end-to-end
// tests, and an AUC recomputed from it independently of hlip's sort-based roc_auc.

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"

namespace hlip::test {

struct CsvRow {
  std::string study, cls;
  double score;
  int label;
};

inline std::vector<CsvRow> read_scores(const std::filesystem::path& path) {
  const auto lines = lines_of(path);
  EXPECT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "study,class,score,label");
  std::vector<CsvRow> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::stringstream in(lines[i]);
    CsvRow row;
    std::string score, label;
    std::getline(in, row.study, ',');
    std::getline(in, row.cls, ',');
    std::getline(in, score, ',');
    std::getline(in, label, ',');
    row.score = std::stod(score);
    row.label = std::stoi(label);
    rows.push_back(row);
  }
  return rows;
}

// AUC by counting every (positive, negative) pair, ties 1/2: independent of hlip's sort-based roc_auc.
inline double pair_auc(const std::vector<CsvRow>& rows, const std::string& cls) {
  std::vector<double> pos, neg;
  for (const auto& r : rows) {
    if (r.cls == cls) (r.label == 1 ? pos : neg).push_back(r.score);
  }
  long long twice = 0;
  for (double p : pos) {
    for (double n : neg)
      twice += p > n ? 2 : p == n ? 1 : 0;
  }
  return static_cast<double>(twice) / (2.0 * static_cast<double>(pos.size() * neg.size()));
}

}  // namespace hlip::test
