#pragma once
// A manifest (docs/manifest.md) from the CSV table most datasets come with: one row per scan (or several
// scan paths in one cell, separated by ';'), the study id, its report and label columns.
//
//   hlip::data::CsvManifestOptions options;
//   options.csv = "data/studies.csv";     // study,scan,report,glioma,meningioma
//   options.out = "data/studies.jsonl";
//   auto count = hlip::data::csv_to_manifest(options);

#include <cstdint>
#include <string>
#include <vector>

namespace hlip::data {

struct CsvManifestOptions {
  std::string csv;
  std::string out;
  std::string study_column = "study";
  std::string scan_column = "scan";            // a path, or several separated by ';'
  std::string scan_name_column = "scan_name";  // optional; names in the same order as the paths
  std::string report_column = "report";        // optional; free text, split into sentences
  std::string modality_column = "modality";    // optional; else `modality`
  std::string split_column = "split";          // optional
  std::string modality = "mri";
  // Label columns; empty = every column not named above. Values 0/1 (or a class index); empty cells are
  // left out.
  std::vector<std::string> label_columns;
};

// Parses one CSV record per RFC 4180 (quoted fields, doubled quotes, commas and newlines inside quotes) from
// `text` starting at `pos`; advances `pos` past the record's line break.
std::vector<std::string> parse_csv_record(const std::string& text, size_t& pos);

// Writes the manifest atomically and returns the number of studies. Rows of the same study add scans to it
// and must agree on its other columns. Scan paths are relative to the CSV's folder and are rewritten
// relative to the manifest's folder; errors name the CSV, the row and the column.
int64_t csv_to_manifest(const CsvManifestOptions& options);

}  // namespace hlip::data
