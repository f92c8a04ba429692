#pragma once
// Studies for training and evaluation: one or more data sources (prepared caches or plain manifests, MRI and
// CT mixed), each study loaded as the model's input `[N, 1, D, H, W]`.
//
//   hlip::data::StudyDataset dataset({{"cache/mri"}, {"cache/ct", 0.5}}, "train");
//   hlip::Random rng(seed);
//   auto order = hlip::data::select_scans(dataset.study(7).scans.size(), /*num_scans=*/8, rng);
//   at::Tensor image = dataset.load_image(7, order);   // float32 [8, 1, D, H, W], normalised
//
// A source is a cache folder written by `hlip prepare` (its studies.jsonl lists .npy scans: loading is a
// file read) or a manifest whose scans are raw NIfTI/DICOM/.npy files, which are then preprocessed on every
// load with the dataset's preset (slow, but needs no cache: for evaluating a few studies).

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hlip/core/random.h"
#include "hlip/data/manifest.h"
#include "hlip/preprocess/preset.h"

namespace hlip::data {

struct DataSource {
  std::string path;     // a cache folder, or a manifest (.jsonl)
  double weight = 1.0;  // how often its studies appear per epoch (2: twice; 0.5: a random half)
};

// "PATH" or "PATH@WEIGHT" (the weight a positive number), as `--train-data` takes it.
DataSource parse_data_source(const std::string& spec);

// HLIP's intensity normalisation of [0, 1] images: (x − 0.449) / 0.226, the means of timm's ImageNet
// constants (recipe 4.2).
struct Normalization {
  double mean = 0.449;
  double std = 0.226;
};

// The scans of a study that one step sees. num_scans = 0: every scan in manifest order (evaluation).
// Otherwise exactly num_scans: shuffled, the shuffled list repeated when the study has fewer, then truncated
// (HLIP's data_brain_mri.py).
std::vector<int64_t> select_scans(int64_t available, int64_t num_scans, Random& rng);

struct DatasetStudy {
  ManifestStudy study;
  int source = 0;       // index into the dataset's sources
  bool cached = false;  // scans are prepared .npy files
};

class StudyDataset {
 public:
  // Reads every source's manifest and keeps the studies of `split` ("" keeps all). `preset` preprocesses
  // the scans of sources that are not caches; without one such a source is an error naming it.
  StudyDataset(std::vector<DataSource> sources, const std::string& split,
               std::optional<preprocess::Preset> preset = std::nullopt, Normalization normalization = {});

  int64_t size() const { return static_cast<int64_t>(studies_.size()); }
  const ManifestStudy& study(int64_t index) const { return studies_.at(static_cast<size_t>(index)).study; }
  const DatasetStudy& entry(int64_t index) const { return studies_.at(static_cast<size_t>(index)); }
  const std::vector<DataSource>& sources() const { return sources_; }
  const Normalization& normalization() const { return normalization_; }

  // The scans `order` (indices into the study's scans) of study `index`, as float32 [N, 1, D, H, W] after
  // normalisation. Scans of different sizes are an error naming the study and both shapes.
  at::Tensor load_image(int64_t index, const std::vector<int64_t>& order) const;
  // The same into `out` (float32 [N, 1, D, H, W], contiguous, e.g. a slot of a batch buffer): a cached
  // uint8 scan is read into `scratch` (reused between calls) and normalised in one pass, so
  // nothing large is allocated. On this kind of VM every fresh 4 KiB page costs about 12 µs to fault in, so
  // allocating a batch's worth of temporaries costs more than reading it.
  void load_image_into(int64_t index, const std::vector<int64_t>& order, at::Tensor& out,
                       at::Tensor& scratch) const;
  // [D, H, W] of a scan: from the .npy header for cached scans (nothing is read), else by loading it.
  std::vector<int64_t> scan_shape(int64_t index, int64_t scan) const;
  // One scan as float32 [D, H, W] in [0, 1], before normalisation.
  at::Tensor load_scan(int64_t index, int64_t scan) const;

  // The study list of one epoch: every study `weight` times on average (whole part always, the fractional
  // part by a draw), shuffled when `shuffle`; deterministic for (seed, epoch).
  std::vector<int64_t> epoch_order(uint64_t seed, int64_t epoch, bool shuffle) const;

 private:
  std::vector<DataSource> sources_;
  std::vector<DatasetStudy> studies_;
  std::optional<preprocess::Preset> preset_;
  Normalization normalization_;
};

// True when `path` is a cache folder written by `hlip prepare` (it holds cache.json).
bool is_cache_dir(const std::string& path);

// The presets a cache folder was prepared with: cache.json's "presets" object ("*" for one fixed preset, else
// one per modality), each as preprocess::to_json wrote it; an empty object when there is none. An unreadable
// or invalid cache.json is an error naming it.
nlohmann::json cache_presets(const std::string& cache_dir);

}  // namespace hlip::data
