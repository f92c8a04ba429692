#pragma once
// Study manifests: JSON Lines, one study per line (docs/manifest.md).
//
//   {"study": "id", "modality": "mri", "split": "train",
//    "scans": [{"path": "id/t1.nii.gz", "name": "T1"}],
//    "report": ["sentence", ...] or "text",
//    "reports": {"<source>": [...] or "text", ...},
//    "labels": {"glioma": 1, ...}}
//
//   auto studies = hlip::data::read_manifest("data/studies.jsonl");
//   for (const auto& study : studies) use(study.scans.front().path);   // absolute, inside the data root
//
// Scan paths are relative to the manifest's folder and may not leave it. Errors name the file, the line,
// the field and the value: `studies.jsonl:17: "scans"[0].path "../x.nii.gz" leaves the data root`.

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hlip::data {

struct ManifestScan {
  std::string path;  // resolved: the manifest's folder joined with the path as written
  std::string name;  // sequence or series name ("T1", "FLAIR", "brain window"); may be empty
};

// A closed question about a study and its answer (VQA), with its kind ("side", "finding", ...; may be empty).
struct QaPair {
  std::string type;
  std::string question;
  std::string answer;
};

struct ManifestStudy {
  std::string id;
  std::string modality;  // "mri" or "ct"
  std::string split;     // "train", "val", "test", or empty
  std::vector<ManifestScan> scans;
  std::vector<std::string> report;                          // sentences; a plain-text report is one sentence
  std::map<std::string, std::vector<std::string>> reports;  // by source; may be empty
  std::map<std::string, int> labels;  // class → 0/1 (or a class index for multi-class)
  std::vector<QaPair> qa;             // "qa": [{"type", "question", "answer"}, ...], may be empty
  int line = 0;                       // where it was read, for messages
};

// Reads and validates a whole manifest. Blank lines are skipped; a duplicate study id is an error.
std::vector<ManifestStudy> read_manifest(const std::string& path);

// Parses one line (exposed for tests and streaming readers); `root` resolves relative scan paths.
ManifestStudy parse_manifest_line(const std::string& line, const std::string& root, const std::string& file,
                                  int line_number);

// The report sentences of `study` from `source` ("" or "report" means the main report).
const std::vector<std::string>& report_sentences(const ManifestStudy& study, const std::string& source);

}  // namespace hlip::data
