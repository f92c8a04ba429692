#include "hlip/data/prepare.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <zlib.h>

#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/core/progress.h"
#include "hlip/core/random.h"
#include "hlip/core/runtime.h"
#include "hlip/data/manifest.h"
#include "hlip/io/volume.h"
#include "hlip/preprocess/orient.h"
#include "hlip/preprocess/preset.h"

namespace hlip::data {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kSidecarVersion = 1;

// What identifies a source's contents without reading it: size and modification
// time (of every file, for a DICOM folder).
struct SourceStamp {
  uint64_t bytes = 0;
  int64_t mtime_ns = 0;
  int64_t files = 0;
};

int64_t mtime_ns(const struct stat& info) {
  return static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
}

SourceStamp stamp_of(const std::string& path) {
  SourceStamp stamp;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw Error(fmt::format("{}: no such file or folder", path));
  if (!S_ISDIR(info.st_mode)) return {static_cast<uint64_t>(info.st_size), mtime_ns(info), 1};
  for (const auto& entry : fs::recursive_directory_iterator(path)) {
    if (!entry.is_regular_file()) continue;
    struct stat file {};
    if (::stat(entry.path().c_str(), &file) != 0) continue;
    stamp.bytes += static_cast<uint64_t>(file.st_size);
    stamp.mtime_ns = std::max(stamp.mtime_ns, mtime_ns(file));
    ++stamp.files;
  }
  return stamp;
}

// CRC-32 (zlib's) of a file, or of a folder's files in name order.
std::string checksum_of(const std::string& path) {
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::recursive_directory_iterator(path)) {
      if (entry.is_regular_file()) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buffer(1 << 20);
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<z_size_t>(in.gcount()));
    }
  }
  return fmt::format("crc32:{:08x}", crc);
}

// A file-name-safe version of an id or scan name; a changed name gets a hash
// suffix so distinct ids stay distinct.
std::string safe_name(const std::string& name, const std::string& fallback) {
  if (name.empty()) return fallback;
  std::string out;
  bool changed = false;
  for (char c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    out += ok ? c : '_';
    changed |= !ok;
  }
  if (out.front() == '.') {
    out.front() = '_';
    changed = true;
  }
  if (changed) out += fmt::format("-{:08x}", static_cast<uint32_t>(name_hash(name)));
  return out;
}

json affine_json(const io::Affine& affine) {
  json rows = json::array();
  for (const auto& row : affine)
    rows.push_back(json(std::vector<double>(row.begin(), row.end())));
  return rows;
}

struct ScanOutput {
  std::string path;  // absolute
  std::string relative;
  std::string name;
};

struct StudyResult {
  std::optional<json> manifest_line;  // the cache's manifest entry, when any scan was prepared
  std::vector<json> failures;
  int64_t written = 0;
  int64_t reused = 0;
};

class Preparer {
 public:
  explicit Preparer(const PrepareOptions& options) : options_(options) {
    if (options_.preset != "auto") fixed_preset_ = load_preset(options_.preset);
  }

  const preprocess::Preset& preset_for(const std::string& modality) {
    if (fixed_preset_) return *fixed_preset_;
    std::lock_guard lock(mutex_);
    auto it = auto_presets_.find(modality);
    if (it == auto_presets_.end()) {
      it = auto_presets_.emplace(modality, preprocess::preset_for_modality(modality)).first;
    }
    return it->second;
  }

  json presets_used() const {
    json out = json::object();
    if (fixed_preset_) {
      out["*"] = preprocess::to_json(*fixed_preset_);
    } else {
      for (const auto& [modality, preset] : auto_presets_)
        out[modality] = preprocess::to_json(preset);
    }
    return out;
  }

  StudyResult prepare_study(const json& raw, const ManifestStudy& study) {
    StudyResult result;
    const preprocess::Preset& preset = preset_for(study.modality);
    const json preset_json = preprocess::to_json(preset);
    const std::string study_dir = safe_name(study.id, "study");
    json scans = json::array();
    std::set<std::string> used_names;
    for (size_t k = 0; k < study.scans.size(); ++k) {
      const ManifestScan& scan = study.scans[k];
      std::string base = safe_name(scan.name, fmt::format("scan{}", k));
      if (!used_names.insert(base).second) base += fmt::format("_{}", k);
      try {
        auto outputs = prepare_scan(study, scan, base, study_dir, preset, preset_json, result);
        for (const auto& output : outputs)
          scans.push_back({{"path", output.relative}, {"name", output.name}});
      } catch (const std::exception& error) {
        if (options_.strict) throw;
        result.failures.push_back(
            {{"study", study.id}, {"scan", scan.name}, {"path", scan.path}, {"error", error.what()}});
      }
    }
    if (!scans.empty()) {
      json line = raw;
      line["scans"] = std::move(scans);
      result.manifest_line = std::move(line);
    }
    return result;
  }

 private:
  static preprocess::Preset load_preset(const std::string& spec) {
    const bool is_file = spec.size() > 5 && spec.compare(spec.size() - 5, 5, ".toml") == 0;
    return is_file ? preprocess::preset_from_toml(spec) : preprocess::preset_by_name(spec);
  }

  std::vector<ScanOutput> prepare_scan(const ManifestStudy& study, const ManifestScan& scan,
                                       const std::string& base, const std::string& study_dir,
                                       const preprocess::Preset& preset, const json& preset_json,
                                       StudyResult& result) {
    const SourceStamp stamp = stamp_of(scan.path);
    const std::string folder = (fs::path(options_.out_dir) / "scans" / study_dir).string();
    // Unchanged since the last run? Then every output named in the first
    // sidecar is reused.
    const std::string first_sidecar = (fs::path(folder) / (base + ".json")).string();
    if (auto reused = reuse(first_sidecar, stamp, preset_json)) {
      result.reused += static_cast<int64_t>(reused->size());
      return *reused;
    }
    const io::Volume volume = io::read_volume(scan.path, options_.volume, io::VoxelValues::kCompact);
    const auto processed = preprocess::preprocess_volume(volume, preset);
    const auto codes = preprocess::orientation_codes(volume.affine);
    json source = {{"path", scan.path},
                   {"bytes", stamp.bytes},
                   {"mtime_ns", stamp.mtime_ns},
                   {"files", stamp.files},
                   {"checksum", checksum_of(scan.path)},
                   {"shape", std::vector<int64_t>(volume.dims.begin(), volume.dims.end())},
                   {"spacing_mm", std::vector<double>(volume.spacing_mm.begin(), volume.spacing_mm.end())},
                   {"affine", affine_json(volume.affine)},
                   {"orientation", std::string(codes.begin(), codes.end())},
                   {"dtype", io::dtype_name(volume.stored_dtype)},
                   {"volume", options_.volume}};
    create_directories(folder);
    std::vector<ScanOutput> outputs;
    json names = json::array();
    for (const auto& item : processed) {
      const std::string file = item.suffix.empty() ? base : base + "-" + safe_name(item.suffix, "w");
      const std::string name = item.suffix.empty() ? scan.name : scan.name + "-" + item.suffix;
      outputs.push_back({(fs::path(folder) / (file + ".npy")).string(),
                         (fs::path("scans") / study_dir / (file + ".npy")).string(), name});
      names.push_back(file);
    }
    // The first sidecar is written last: its presence says the whole set is
    // complete.
    for (size_t i = processed.size(); i-- > 0;) {
      const auto& item = processed[i];
      const ScanOutput& output = outputs[i];
      write_cached_scan(output.path, item.data, options_.dtype);
      json sidecar = {{"format", "hlip-scan"},
                      {"version", kSidecarVersion},
                      {"hlip_version", HLIP_VERSION_STRING},
                      {"study", study.id},
                      {"scan", output.name},
                      {"window", item.suffix},
                      {"outputs", names},
                      {"dtype", to_string(options_.dtype)},
                      {"shape", item.data.sizes().vec()},
                      {"preset", preset_json},
                      {"source", source}};
      write_file_atomic(sidecar_path(output.path), sidecar.dump(2) + "\n");
    }
    result.written += static_cast<int64_t>(outputs.size());
    return outputs;
  }

  // The outputs of a scan prepared before from the same source bytes with the
  // same parameters, or nothing.
  std::optional<std::vector<ScanOutput>> reuse(const std::string& sidecar_file, const SourceStamp& stamp,
                                               const json& preset_json) const {
    std::ifstream in(sidecar_file);
    if (!in) return std::nullopt;
    json sidecar = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!sidecar.is_object() || sidecar.value("version", 0) != kSidecarVersion) return std::nullopt;
    const json& source = sidecar["source"];
    if (!source.is_object() || source.value("bytes", uint64_t{0}) != stamp.bytes ||
        source.value("mtime_ns", int64_t{0}) != stamp.mtime_ns ||
        source.value("files", int64_t{0}) != stamp.files ||
        source.value("volume", int64_t{-1}) != options_.volume || sidecar["preset"] != preset_json ||
        sidecar.value("dtype", "") != to_string(options_.dtype)) {
      return std::nullopt;
    }
    const fs::path folder = fs::path(sidecar_file).parent_path();
    const std::string study_dir = folder.filename().string();
    std::vector<ScanOutput> outputs;
    for (const auto& file : sidecar["outputs"]) {
      const std::string stem = file.get<std::string>();
      const fs::path npy = folder / (stem + ".npy");
      const fs::path side = folder / (stem + ".json");
      if (!fs::exists(npy) || !fs::exists(side)) return std::nullopt;
      json other = json::parse(std::ifstream(side), nullptr, false);
      if (!other.is_object()) return std::nullopt;
      outputs.push_back({npy.string(), (fs::path("scans") / study_dir / (stem + ".npy")).string(),
                         other.value("scan", std::string())});
    }
    if (outputs.empty()) return std::nullopt;
    return outputs;
  }

  const PrepareOptions& options_;
  std::optional<preprocess::Preset> fixed_preset_;
  std::mutex mutex_;
  std::map<std::string, preprocess::Preset> auto_presets_;
};

struct ManifestEntry {
  int line = 0;
  std::optional<json> raw;
  std::optional<ManifestStudy> study;
  std::string error;  // why the line could not be used
};

std::vector<ManifestEntry> read_entries(const std::string& path, const std::string& split) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open manifest", path));
  const std::string root = fs::absolute(fs::path(path)).parent_path().string();
  std::vector<ManifestEntry> entries;
  std::set<std::string> ids;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ManifestEntry entry;
    entry.line = number;
    try {
      entry.study = parse_manifest_line(line, root, path, number);
      entry.raw = json::parse(line);
      if (!ids.insert(entry.study->id).second) {
        throw Error(fmt::format("{}:{}: study \"{}\" appears twice", path, number, entry.study->id));
      }
      if (!split.empty() && entry.study->split != split) continue;
    } catch (const std::exception& error) {
      entry.study.reset();
      entry.error = error.what();
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace

PrepareSummary prepare_dataset(const PrepareOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.manifest.empty()) throw UsageError("no manifest given");
  if (options.out_dir.empty()) throw UsageError("no output folder given");
  create_directories(options.out_dir);
  Preparer preparer(options);
  const auto entries = read_entries(options.manifest, options.split);
  if (entries.empty()) throw Error(fmt::format("{}: no studies to prepare", options.manifest));

  std::vector<StudyResult> results(entries.size());
  const int workers = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(static_cast<int64_t>(entries.size()),
                                             options.threads > 0 ? options.threads : at::get_num_threads())));
  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  Progress progress("prepare", static_cast<int64_t>(entries.size()), "studies", progress_options);
  std::atomic<size_t> next{0};
  std::mutex mutex;
  std::exception_ptr first_error;
  auto work = [&] {
    use_one_thread_in_this_worker();
    for (size_t i = next++; i < entries.size(); i = next++) {
      const ManifestEntry& entry = entries[i];
      try {
        if (!entry.study) throw Error(entry.error);
        results[i] = preparer.prepare_study(*entry.raw, *entry.study);
      } catch (const std::exception& error) {
        if (options.strict) {
          std::lock_guard lock(mutex);
          if (!first_error) first_error = std::current_exception();
          next = entries.size();
        } else {
          json failure = {{"line", entry.line}, {"error", error.what()}};
          if (entry.study) failure["study"] = entry.study->id;
          results[i].failures = {std::move(failure)};
        }
      }
      std::lock_guard lock(mutex);
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

  PrepareSummary summary;
  summary.studies = static_cast<int64_t>(entries.size());
  summary.failures_path = (fs::path(options.out_dir) / "failures.jsonl").string();
  std::string manifest;
  std::string failures;
  for (size_t i = 0; i < results.size(); ++i) {
    const StudyResult& result = results[i];
    summary.scans_written += result.written;
    summary.scans_reused += result.reused;
    for (const auto& failure : result.failures) {
      failures += failure.dump() + "\n";
      if (failure.contains("scan")) ++summary.failed_scans;
    }
    if (result.manifest_line) {
      manifest += result.manifest_line->dump() + "\n";
      ++summary.prepared;
    } else {
      ++summary.failed_studies;
    }
  }
  write_file_atomic((fs::path(options.out_dir) / "studies.jsonl").string(), manifest);
  write_file_atomic(summary.failures_path, failures);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (summary.prepared == 0) {
    throw Error(fmt::format("{}: none of {} studies could be prepared; reasons in {}", options.manifest,
                            summary.studies, summary.failures_path));
  }
  const json cache = {{"format", "hlip-cache"},
                      {"version", 1},
                      {"hlip_version", HLIP_VERSION_STRING},
                      {"source_manifest", fs::absolute(options.manifest).string()},
                      {"split", options.split},
                      {"dtype", to_string(options.dtype)},
                      {"presets", preparer.presets_used()},
                      {"studies", summary.prepared},
                      {"failed_studies", summary.failed_studies},
                      {"failed_scans", summary.failed_scans}};
  write_file_atomic((fs::path(options.out_dir) / "cache.json").string(), cache.dump(2) + "\n");
  return summary;
}

}  // namespace hlip::data
