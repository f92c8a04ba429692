#pragma once
// The report of an ablation sweep: reads DIR/sweep.json and every run folder it names (train/metrics.jsonl,
// zeroshot/results.json, zeroshot/scores.csv, cost.json) and writes
//
//   DIR/report.md                                    setup, one section per ablation, failed experiments,
//   notes DIR/report.html                                  the same page, self-contained (images as data:
//   URIs) DIR/images/<n> <name> (<A> -> <B>).png           metric vs step of each arm, seed bands (PLplot,
//   cairo) DIR/summary.json                                 every number of the report, for machines
//
//   hlip::ablate::ReportOptions options;             // 1000 paired-bootstrap resamples, 95%, seed 0
//   hlip::ablate::write_report("runs/ablate-quick", options);
//
// The statistics and the verdict rule are in hlip/ablate/stats.h and docs/ablation.md ("Statistics and the
// report"). Failed and pending arms are listed, never fatal; a malformed sweep.json is an hlip::Error naming
// the file and the field.

#include <cstdint>
#include <filesystem>
#include <vector>

namespace hlip::ablate {

struct ReportOptions {
  int bootstrap_resamples = 1000;
  double confidence = 0.95;
  std::uint64_t bootstrap_seed = 0;
  int image_width = 800;  // pixels of each PNG
  int image_height = 480;
};

// What write_report wrote.
struct ReportFiles {
  std::filesystem::path markdown;
  std::filesystem::path html;
  std::filesystem::path summary;
  std::vector<std::filesystem::path> images;
};

ReportFiles write_report(const std::filesystem::path& sweep_dir, const ReportOptions& options = {});

}  // namespace hlip::ablate
