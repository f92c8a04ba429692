#include "hlip/data/dataset.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "hlip/core/error.h"
#include "hlip/data/cache.h"
#include "hlip/io/volume.h"

namespace hlip::data {
namespace fs = std::filesystem;

namespace {

std::string shape_text(at::IntArrayRef sizes) {
  return c10::str(sizes);
}

std::string manifest_of(const DataSource& source) {
  return is_cache_dir(source.path) ? (fs::path(source.path) / "studies.jsonl").string() : source.path;
}

}  // namespace

bool is_cache_dir(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error) && fs::is_regular_file(fs::path(path) / "cache.json", error);
}

nlohmann::json cache_presets(const std::string& cache_dir) {
  const std::string path = (fs::path(cache_dir) / "cache.json").string();
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  nlohmann::json cache;
  try {
    cache = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  const auto presets = cache.find("presets");
  return presets != cache.end() && presets->is_object() ? *presets : nlohmann::json::object();
}

DataSource parse_data_source(const std::string& spec) {
  DataSource source{spec, 1.0};
  const auto at = spec.rfind('@');
  if (at == std::string::npos || at == 0) return source;
  const std::string weight = spec.substr(at + 1);
  double value = 0;
  const auto [end, status] = std::from_chars(weight.data(), weight.data() + weight.size(), value);
  if (status != std::errc() || end != weight.data() + weight.size()) return source;  // an '@' in the path
  if (!(value > 0) || !std::isfinite(value)) {
    throw UsageError(fmt::format("data source \"{}\": weight {} must be a positive number", spec, weight));
  }
  return {spec.substr(0, at), value};
}

std::vector<int64_t> select_scans(int64_t available, int64_t num_scans, Random& rng) {
  if (available <= 0) throw Error("a study without scans cannot be loaded");
  std::vector<int64_t> all(static_cast<size_t>(available));
  for (int64_t i = 0; i < available; ++i)
    all[static_cast<size_t>(i)] = i;
  if (num_scans <= 0) return all;
  rng.shuffle(all);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(num_scans));
  while (static_cast<int64_t>(out.size()) < num_scans) {
    for (int64_t i : all) {
      if (static_cast<int64_t>(out.size()) == num_scans) break;
      out.push_back(i);
    }
  }
  return out;
}

StudyDataset::StudyDataset(std::vector<DataSource> sources, const std::string& split,
                           std::optional<preprocess::Preset> preset, Normalization normalization)
    : sources_(std::move(sources)), preset_(std::move(preset)), normalization_(normalization) {
  if (sources_.empty()) throw UsageError("no data source given");
  if (!(normalization_.std > 0)) {
    throw UsageError(fmt::format("normalisation std {} must be positive", normalization_.std));
  }
  for (size_t s = 0; s < sources_.size(); ++s) {
    const DataSource& source = sources_[s];
    const bool cached = is_cache_dir(source.path);
    if (!cached && !preset_) {
      throw UsageError(
          fmt::format("{}: not a prepared cache (no cache.json) and no "
                      "preprocessing preset given; run `hlip prepare` "
                      "first or pass a preset",
                      source.path));
    }
    for (auto& study : read_manifest(manifest_of(source))) {
      if (!split.empty() && study.split != split) continue;
      studies_.push_back({std::move(study), static_cast<int>(s), cached});
    }
  }
}

at::Tensor StudyDataset::load_scan(int64_t index, int64_t scan) const {
  const DatasetStudy& entry = studies_.at(static_cast<size_t>(index));
  const ManifestScan& source = entry.study.scans.at(static_cast<size_t>(scan));
  if (entry.cached) return cached_to_unit_float(read_cached_scan(source.path));
  const auto processed =
      preprocess::preprocess_volume(io::read_volume(source.path, 0, io::VoxelValues::kCompact), *preset_);
  if (processed.size() != 1) {
    throw Error(
        fmt::format("{}: preset \"{}\" makes {} scans of one series "
                    "(CT windows); prepare a cache to use them",
                    source.path, preset_->name, processed.size()));
  }
  return processed.front().data;
}

at::Tensor StudyDataset::load_image(int64_t index, const std::vector<int64_t>& order) const {
  const ManifestStudy& info = study(index);
  std::vector<at::Tensor> scans;
  scans.reserve(order.size());
  for (int64_t scan : order) {
    at::Tensor voxels = load_scan(index, scan);
    if (!scans.empty() && voxels.sizes() != scans.front().sizes()) {
      throw Error(fmt::format(
          "study {}: scan {} is {} but scan {} is {}; all scans of "
          "a study must share "
          "[D, H, W] (prepare them with one preset)",
          info.id, info.scans[static_cast<size_t>(scan)].path, shape_text(voxels.sizes()),
          info.scans[static_cast<size_t>(order.front())].path, shape_text(scans.front().sizes())));
    }
    scans.push_back(std::move(voxels));
  }
  at::Tensor image = at::stack(scans).unsqueeze(1);
  return image.sub_(normalization_.mean).div_(normalization_.std);
}

std::vector<int64_t> StudyDataset::scan_shape(int64_t index, int64_t scan) const {
  const DatasetStudy& entry = studies_.at(static_cast<size_t>(index));
  if (entry.cached) return cached_scan_shape(entry.study.scans.at(static_cast<size_t>(scan)).path);
  return load_scan(index, scan).sizes().vec();
}

void StudyDataset::load_image_into(int64_t index, const std::vector<int64_t>& order, at::Tensor& out,
                                   at::Tensor& scratch) const {
  const DatasetStudy& entry = studies_.at(static_cast<size_t>(index));
  const auto n = static_cast<int64_t>(order.size());
  if (out.dim() != 5 || out.size(0) != n || out.size(1) != 1 || out.scalar_type() != at::kFloat ||
      !out.is_contiguous()) {
    throw Error(fmt::format("study {}: batch slot {} cannot hold {} scans", entry.study.id,
                            shape_text(out.sizes()), n));
  }
  if (!entry.cached) {
    out.copy_(load_image(index, order));
    return;
  }
  // x ↦ (x − mean) / std as one multiply-add per voxel, a loop the compiler vectorises.
  const auto inverse_std = static_cast<float>(1.0 / normalization_.std);
  const auto shift = static_cast<float>(-normalization_.mean / normalization_.std);
  const at::IntArrayRef scan_size = out.sizes().slice(2);
  for (int64_t i = 0; i < n; ++i) {
    const std::string& path = entry.study.scans.at(static_cast<size_t>(order[static_cast<size_t>(i)])).path;
    const auto shape = cached_scan_shape(path);
    if (at::IntArrayRef(shape) != scan_size) {
      throw Error(
          fmt::format("study {}: scan {} is {} but the batch holds {}; all scans must share [D, H, W] "
                      "(prepare them with one preset)",
                      entry.study.id, path, shape_text(shape), shape_text(scan_size)));
    }
    const at::ScalarType stored = cached_scan_dtype(path);
    if (!scratch.defined() || scratch.sizes() != scan_size || scratch.scalar_type() != stored) {
      scratch = at::empty(scan_size, at::TensorOptions().dtype(stored));
    }
    read_cached_scan_into(path, scratch);
    float* target = out[i].data_ptr<float>();
    const int64_t count = scratch.numel();
    if (stored == at::kByte) {
      const float scale = inverse_std / 255.0f;
      const uint8_t* source = scratch.data_ptr<uint8_t>();
      for (int64_t v = 0; v < count; ++v)
        target[v] = static_cast<float>(source[v]) * scale + shift;
    } else {
      const at::Half* source = scratch.data_ptr<at::Half>();
      for (int64_t v = 0; v < count; ++v)
        target[v] = static_cast<float>(source[v]) * inverse_std + shift;
    }
  }
}

std::vector<int64_t> StudyDataset::epoch_order(uint64_t seed, int64_t epoch, bool shuffle) const {
  Random rng(derive_seed(derive_seed(seed, name_hash("epoch-order")), static_cast<uint64_t>(epoch)));
  std::vector<int64_t> order;
  order.reserve(studies_.size());
  for (size_t i = 0; i < studies_.size(); ++i) {
    const double weight = sources_[static_cast<size_t>(studies_[i].source)].weight;
    const double whole = std::floor(weight);
    const int64_t copies = static_cast<int64_t>(whole) + (rng.bernoulli(weight - whole) ? 1 : 0);
    for (int64_t c = 0; c < copies; ++c)
      order.push_back(static_cast<int64_t>(i));
  }
  if (shuffle) rng.shuffle(order);
  return order;
}

}  // namespace hlip::data
