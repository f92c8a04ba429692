// `hlip synth`: writes a synthetic dataset (NIfTI scans and DICOM series, manifest, label CSVs, README).
#include "hlip/data/synth.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/core/progress.h"
#include "hlip/core/random.h"
#include "hlip/core/runtime.h"
#include "hlip/io/dicom_write.h"
#include "hlip/io/nifti.h"

namespace hlip::data {
namespace {

const char* const kSplits[] = {"train", "val", "test"};

void validate(const SynthOptions& options) {
  if (options.out_dir.empty()) throw Error("synth: --out is empty");
  if (options.studies <= 0)
    throw Error(fmt::format("synth: --studies is {}, must be at least 1", options.studies));
  double total = 0;
  for (double share : options.splits) {
    if (!(share >= 0)) throw Error(fmt::format("synth: --splits has a negative or NaN share {}", share));
    total += share;
  }
  if (std::abs(total - 1.0) > 1e-6) {
    throw Error(fmt::format("synth: --splits {} add up to {}, not 1", fmt::join(options.splits, ","), total));
  }
}

// Exact split sizes (rounded shares, the remainder to test), assigned over a seeded permutation.
std::vector<std::string> assign_splits(const SynthOptions& options) {
  const auto n = options.studies;
  const auto train = static_cast<int64_t>(std::llround(static_cast<double>(n) * options.splits[0]));
  const auto val = std::min<int64_t>(n - train, std::llround(static_cast<double>(n) * options.splits[1]));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  Random rng(derive_seed(options.seed, name_hash("split")));
  rng.shuffle(order);
  std::vector<std::string> split(static_cast<size_t>(n));
  for (int64_t rank = 0; rank < n; ++rank) {
    split[static_cast<size_t>(order[static_cast<size_t>(rank)])] = kSplits[rank < train         ? 0
                                                                           : rank < train + val ? 1
                                                                                                : 2];
  }
  return split;
}

nlohmann::json qa_json(const SynthStudy& study) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& q : synth_questions(study))
    out.push_back({{"type", q.type}, {"question", q.question}, {"answer", q.answer}});
  return out;
}

nlohmann::json finding_json(const SynthFinding& f, const std::string& modality) {
  if (modality == "ct") {
    nlohmann::json json{{"type", f.type},
                        {"side", f.side},
                        {"lobe", f.lobe},
                        {"location", f.location},
                        {"size_mm", std::round(f.size_mm * 10) / 10},
                        {"midline_shift_mm", std::round(f.midline_shift_mm * 10) / 10}};
    if (f.type == "subdural" || f.type == "epidural")
      json["thickness_mm"] = std::round(f.thickness_mm * 10) / 10;
    if (f.type == "intraparenchymal") json["edema"] = f.edema;
    if (f.type == "epidural") json["fracture"] = f.fracture;
    return json;
  }
  nlohmann::json json{{"type", f.type},           {"side", f.side},
                      {"lobe", f.lobe},           {"size_mm", std::round(f.size_mm * 10) / 10},
                      {"enhancing", f.enhancing}, {"edema", f.edema}};
  if (f.type == "metastasis") json["count"] = f.count;
  if (f.type == "stroke") json["territory"] = f.territory;
  return json;
}

// A DICOM UID under the 2.25 root (UUID-derived UIDs), from the seed, the study and what it names: the same
// dataset always gets the same UIDs, and no clock or host is involved.
std::string derived_uid(uint64_t seed, int64_t index, const char* what) {
  return fmt::format("2.25.{}", derive_seed(seed ^ name_hash(what), static_cast<uint64_t>(index)));
}

// Study `position` of the dataset: its modality and its index among the studies of that modality.
std::pair<bool, int64_t> study_at(const SynthOptions& options, int64_t position) {
  switch (options.modality) {
    case SynthModality::kMri:
      return {false, position};
    case SynthModality::kCt:
      return {true, position};
    case SynthModality::kBoth:
      break;
  }
  return {position % 2 == 1, position / 2};
}

// Generates study `position` and writes its scans; returns its manifest line and label row.
auto write_study(const SynthOptions& options, int64_t position, const std::string& split) {
  struct Result {
    std::string manifest_line, label_row, modality, diagnosis;
    int64_t scans = 0;
    bool dicom = false;
    std::map<std::string, int> labels;
  };
  const auto [ct, index] = study_at(options, position);
  const SynthStudy study = ct ? generate_ct_study(options.seed, index, options.size)
                              : generate_mri_study(options.seed, index, options.size);
  const std::string folder = fmt::format("{}/{}", study.modality, study.id);
  create_directories(options.out_dir + "/" + folder);
  nlohmann::json scans = nlohmann::json::array();
  for (const auto& scan : study.scans) {
    if (study.dicom) {
      const std::string path = fmt::format("{}/{}", folder, scan.name);
      io::DicomWriteOptions write_options;
      write_options.study_uid = derived_uid(options.seed, index, "ct-study-uid");
      write_options.series_uid = derived_uid(options.seed, index, "ct-series-uid");
      write_options.description = scan.volume.description;
      write_options.patient_id = study.id;
      io::write_dicom_series(options.out_dir + "/" + path, scan.volume, write_options);
      scans.push_back({{"path", path}, {"name", scan.name}});
      continue;
    }
    const std::string path = fmt::format("{}/{}.nii.gz", folder, scan.name);
    io::NiftiWriteOptions write_options;
    write_options.description = scan.volume.description;
    io::write_nifti(options.out_dir + "/" + path, scan.volume.data, scan.volume.affine, write_options);
    scans.push_back({{"path", path}, {"name", scan.name}});
  }
  nlohmann::json findings = nlohmann::json::array();
  for (const auto& finding : study.findings)
    findings.push_back(finding_json(finding, study.modality));
  nlohmann::json line{{"study", study.id},
                      {"modality", study.modality},
                      {"split", split},
                      {"scans", scans},
                      {"report", study.reports.at("verbose")},
                      {"reports", study.reports},
                      {"labels", study.labels},
                      {"diagnosis", study.diagnosis},
                      {"findings", findings},
                      {"qa", qa_json(study)}};
  if (ct) line["midline_shift_mm"] = std::round(study.midline_shift_mm * 10) / 10;
  std::string row = study.id;
  for (const auto& name : ct ? ct_label_columns() : mri_classes())
    row += fmt::format(",{}", study.labels.at(name));
  return Result{line.dump() + "\n",
                row + "\n",
                study.modality,
                study.diagnosis,
                static_cast<int64_t>(study.scans.size()),
                study.dicom,
                ct ? study.labels : std::map<std::string, int>{}};
}

const char* modality_name(SynthModality modality) {
  return modality == SynthModality::kMri ? "mri" : modality == SynthModality::kCt ? "ct" : "both";
}

std::string readme(const SynthOptions& options, const SynthSummary& summary) {
  const bool mri = options.modality != SynthModality::kCt, ct = options.modality != SynthModality::kMri;
  std::string classes;
  for (const auto& [name, count] : summary.per_class)
    classes += fmt::format("| {} | {} |\n", name, count);
  std::string ct_labels;
  for (const auto& column : ct_label_columns()) {
    const auto it = summary.ct_labels.find(column);
    ct_labels += fmt::format("| {} | {} |\n", column, it == summary.ct_labels.end() ? 0 : it->second);
  }
  auto split_count = [&](const char* split) {
    return summary.per_split.count(split) ? summary.per_split.at(split) : 0;
  };
  std::string text = fmt::format(
      "# Synthetic {}\n\n"
      "Written by `hlip synth --studies {} --seed {} --size {} --modality {}` (hlip {}). The same command "
      "writes the same bytes.\n\n",
      mri && ct ? "brain MRI and head CT studies"
      : mri     ? "brain MRI studies"
                : "head CT studies",
      options.studies, options.seed, options.size == SynthSize::kSmall ? "small" : "full",
      modality_name(options.modality), HLIP_VERSION_STRING);
  if (mri) {
    text +=
        "Each MRI study is a procedural head (scalp, skull, CSF, grey and white matter, ventricles) with its "
        "own shape,\n"
        "position, bias field, noise and scanner gain, imaged as 2-6 sequences (T1, T2, FLAIR, T1c, DWI) "
        "with "
        "their own\n"
        "grids, spacings (thick slices), orientations and oblique affines. Findings (glioma, meningioma, "
        "metastases,\n"
        "acute stroke) vary in side, lobe and size and appear in each sequence as they would clinically; "
        "labels are one-hot\n"
        "over normal, stroke, glioma, meningioma, metastasis (`labels_<split>.csv`).\n\n";
  }
  if (ct) {
    text += fmt::format(
        "Each CT study is the same kind of head in Hounsfield units, one axial series with a gantry tilt, "
        "normal or with\n"
        "one or two of epidural, intraparenchymal, intraventricular, subarachnoid and subdural haemorrhage "
        "(with mass effect\n"
        "and midline shift when large); labels are RSNA-like, multi-label over {} "
        "(`labels_ct_<split>.csv`).\n"
        "{} CT series are DICOM folders (`ct/<study>/CT/slice-NNNN.dcm`), the others "
        "`ct/<study>/CT.nii.gz`.\n\n"
        "| CT label | studies |\n|---|---|\n{}\n",
        fmt::join(ct_label_columns(), ","), summary.dicom_series, ct_labels);
  }
  text += fmt::format(
      "Reports state the findings in two styles (`reports.verbose`, `reports.terse`).\n\n"
      "| modality and diagnosis | studies |\n|---|---|\n{}\n"
      "Splits: train {}, val {}, test {}. {} scans in all.\n\n"
      "Files: `studies.jsonl` (the manifest, one study per line), the label CSVs,\n{} (int16 voxels, affine "
      "in the qform and sform{}).\nSee docs/synthetic.md in the hlip repository.\n",
      classes, split_count("train"), split_count("val"), split_count("test"), summary.scans,
      mri && ct ? "`mri/<study>/<sequence>.nii.gz` and `ct/<study>/CT...`"
      : mri     ? "`mri/<study>/<sequence>.nii.gz`"
                : "`ct/<study>/CT...`",
      ct ? "; DICOM series with RescaleIntercept −1024" : "");
  return text;
}

}  // namespace

SynthSummary write_synthetic_dataset(const SynthOptions& options) {
  validate(options);
  const auto start = std::chrono::steady_clock::now();
  const auto splits = assign_splits(options);
  create_directories(options.out_dir);

  SynthSummary summary;
  std::string manifest;
  // Label tables by file name: labels_<split>.csv for MRI, labels_ct_<split>.csv for CT.
  std::map<std::string, std::string> label_csv;
  const bool mri = options.modality != SynthModality::kCt, ct = options.modality != SynthModality::kMri;
  for (const char* split : kSplits) {
    if (mri)
      label_csv[fmt::format("labels_{}.csv", split)] =
          fmt::format("study,{}\n", fmt::join(mri_classes(), ","));
    if (ct) {
      label_csv[fmt::format("labels_ct_{}.csv", split)] =
          fmt::format("study,{}\n", fmt::join(ct_label_columns(), ","));
    }
  }

  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  // Studies are independent, so workers take them one at a time, each with one intra-op thread (many small
  // tensors: OpenMP inside every operation would only add barriers), and results are gathered by index.
  using Written = decltype(write_study(options, 0, ""));
  std::vector<Written> written(static_cast<size_t>(options.studies));
  const int workers = static_cast<int>(
      std::min<int64_t>(options.studies, options.threads > 0 ? options.threads : at::get_num_threads()));
  std::atomic<int64_t> next{0};
  std::mutex mutex;  // guards progress and first_error
  std::exception_ptr first_error;
  Progress progress("synth", options.studies, "studies", progress_options);
  auto work = [&] {
    use_one_thread_in_this_worker();
    for (int64_t index = next++; index < options.studies; index = next++) {
      try {
        written[static_cast<size_t>(index)] = write_study(options, index, splits[static_cast<size_t>(index)]);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(mutex);
        if (!first_error) first_error = std::current_exception();
        next = options.studies;
      }
      const std::lock_guard<std::mutex> lock(mutex);
      progress.advance();
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back(work);
  for (auto& thread : threads)
    thread.join();
  if (first_error) std::rethrow_exception(first_error);
  progress.finish();

  for (int64_t index = 0; index < options.studies; ++index) {
    const auto& study = written[static_cast<size_t>(index)];
    const std::string& split = splits[static_cast<size_t>(index)];
    manifest += study.manifest_line;
    label_csv[study.modality == "ct" ? fmt::format("labels_ct_{}.csv", split)
                                     : fmt::format("labels_{}.csv", split)] += study.label_row;
    ++summary.studies;
    summary.scans += study.scans;
    summary.dicom_series += study.dicom ? study.scans : 0;
    ++summary.per_class[study.modality + " " + study.diagnosis];
    for (const auto& [column, value] : study.labels)
      summary.ct_labels[column] += value;
    ++summary.per_split[split];
  }

  write_file_atomic(options.out_dir + "/studies.jsonl", manifest);
  for (const auto& [name, csv] : label_csv)
    write_file_atomic(options.out_dir + "/" + name, csv);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_file_atomic(options.out_dir + "/README.md", readme(options, summary));
  return summary;
}

std::vector<SynthQuestion> synth_questions(const SynthStudy& study) {
  std::vector<SynthQuestion> out;
  const bool normal = study.findings.empty();
  if (study.modality == "ct") {
    out.push_back({"abnormal", "Is there intracranial haemorrhage?", normal ? "no" : "yes"});
    out.push_back(
        {"finding", "What type of haemorrhage is there?", normal ? "none" : study.findings.front().type});
    if (!normal && !study.findings.front().side.empty())
      out.push_back({"side", "Which side is the haemorrhage on?", study.findings.front().side});
    out.push_back({"midline_shift", "Is there midline shift?", study.midline_shift_mm > 0 ? "yes" : "no"});
    return out;
  }
  out.push_back({"abnormal", "Is there an abnormality?", normal ? "no" : "yes"});
  out.push_back({"finding", "What is the main finding?", study.diagnosis});
  if (normal) return out;
  const SynthFinding& lesion = study.findings.front();
  out.push_back({"side", "Which side is the lesion on?", lesion.side});
  out.push_back({"sequence", "Which sequence shows the lesion best?",
                 lesion.type == "stroke" ? "DWI" : (lesion.type == "glioma" ? "FLAIR" : "T1c")});
  const bool contrast = std::any_of(study.scans.begin(), study.scans.end(),
                                    [](const SynthScan& scan) { return scan.name == "T1c"; });
  if (contrast && lesion.type != "stroke")
    out.push_back(
        {"enhancement", "Does the lesion enhance after contrast?", lesion.enhancing ? "yes" : "no"});
  return out;
}

}  // namespace hlip::data
