// `hlip synth`: writes a synthetic dataset (NIfTI scans, manifest, label CSVs, README).
#include "hlip/data/synth.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <ATen/Parallel.h>

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

nlohmann::json finding_json(const SynthFinding& f) {
  nlohmann::json json{{"type", f.type},           {"side", f.side},
                      {"lobe", f.lobe},           {"size_mm", std::round(f.size_mm * 10) / 10},
                      {"enhancing", f.enhancing}, {"edema", f.edema}};
  if (f.type == "metastasis") json["count"] = f.count;
  if (f.type == "stroke") json["territory"] = f.territory;
  return json;
}

// Generates study `index` and writes its scans; returns its manifest line and label row.
auto write_study(const SynthOptions& options, int64_t index, const std::string& split) {
  struct Result {
    std::string manifest_line, label_row, diagnosis;
    int64_t scans = 0;
  };
  const SynthStudy study = generate_mri_study(options.seed, index, options.size);
  const std::string folder = fmt::format("mri/{}", study.id);
  create_directories(options.out_dir + "/" + folder);
  nlohmann::json scans = nlohmann::json::array();
  for (const auto& scan : study.scans) {
    const std::string path = fmt::format("{}/{}.nii.gz", folder, scan.name);
    io::NiftiWriteOptions write_options;
    write_options.description = scan.volume.description;
    io::write_nifti(options.out_dir + "/" + path, scan.volume.data, scan.volume.affine, write_options);
    scans.push_back({{"path", path}, {"name", scan.name}});
  }
  nlohmann::json findings = nlohmann::json::array();
  for (const auto& finding : study.findings)
    findings.push_back(finding_json(finding));
  const nlohmann::json line{{"study", study.id},
                            {"modality", study.modality},
                            {"split", split},
                            {"scans", scans},
                            {"report", study.reports.at("verbose")},
                            {"reports", study.reports},
                            {"labels", study.labels},
                            {"diagnosis", study.diagnosis},
                            {"findings", findings}};
  std::string row = study.id;
  for (const auto& name : mri_classes())
    row += fmt::format(",{}", study.labels.at(name));
  return Result{line.dump() + "\n", row + "\n", study.diagnosis, static_cast<int64_t>(study.scans.size())};
}

std::string readme(const SynthOptions& options, const SynthSummary& summary) {
  std::string classes;
  for (const auto& [name, count] : summary.per_class)
    classes += fmt::format("| {} | {} |\n", name, count);
  return fmt::format(
      "# Synthetic brain MRI studies\n\n"
      "Written by `hlip synth --studies {} --seed {} --size {}` (hlip {}). The same command writes the same "
      "bytes.\n\n"
      "Each study is a procedural head (scalp, skull, CSF, grey and white matter, ventricles) with its own "
      "shape,\n"
      "position, bias field, noise and scanner gain, imaged as 2-6 sequences (T1, T2, FLAIR, T1c, DWI) with "
      "their own\n"
      "grids, spacings (thick slices), orientations and oblique affines. Findings (glioma, meningioma, "
      "metastases,\n"
      "acute stroke) vary in side, lobe and size and appear in each sequence as they would clinically; "
      "reports state\n"
      "them in two styles (`reports.verbose`, `reports.terse`), labels are one-hot over the classes "
      "below.\n\n"
      "| class | studies |\n|---|---|\n{}\n"
      "Splits: train {}, val {}, test {}. {} scans in all.\n\n"
      "Files: `studies.jsonl` (the manifest, one study per line), `labels_<split>.csv`, "
      "`mri/<study>/<sequence>.nii.gz`\n"
      "(int16 voxels, affine in the qform and sform). See docs/synthetic.md in the hlip repository.\n",
      options.studies, options.seed, options.size == SynthSize::kSmall ? "small" : "full",
      HLIP_VERSION_STRING, classes, summary.per_split.count("train") ? summary.per_split.at("train") : 0,
      summary.per_split.count("val") ? summary.per_split.at("val") : 0,
      summary.per_split.count("test") ? summary.per_split.at("test") : 0, summary.scans);
}

}  // namespace

SynthSummary write_synthetic_dataset(const SynthOptions& options) {
  validate(options);
  const auto start = std::chrono::steady_clock::now();
  const auto splits = assign_splits(options);
  create_directories(options.out_dir);

  SynthSummary summary;
  std::string manifest;
  std::map<std::string, std::string> label_csv;
  const std::string header = fmt::format("study,{}\n", fmt::join(mri_classes(), ","));
  for (const char* split : kSplits)
    label_csv[split] = header;

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
    label_csv[split] += study.label_row;
    ++summary.studies;
    summary.scans += study.scans;
    ++summary.per_class[study.diagnosis];
    ++summary.per_split[split];
  }

  write_file_atomic(options.out_dir + "/studies.jsonl", manifest);
  for (const auto& [split, csv] : label_csv)
    write_file_atomic(fmt::format("{}/labels_{}.csv", options.out_dir, split), csv);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_file_atomic(options.out_dir + "/README.md", readme(options, summary));
  return summary;
}

}  // namespace hlip::data
