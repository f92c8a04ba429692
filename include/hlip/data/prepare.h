#pragma once
// `hlip prepare`: a manifest of raw studies (NIfTI, DICOM, .npy) in, a scan cache (data/cache.h) out.
//
//   hlip::data::PrepareOptions options;
//   options.manifest = "data/studies.jsonl";
//   options.out_dir = "cache";
//   auto summary = hlip::data::prepare_dataset(options);   // resumable: unchanged scans are not redone
//
// Every scan goes through the preset's chain (docs/preprocess.md) and lands in CACHE/scans/<study>/ with a
// sidecar that records every parameter and the source's shape, spacing, affine and checksum. A scan that
// cannot be read is skipped and listed in CACHE/failures.jsonl with its reason; a study keeps its good scans
// and is left out only when none is left. With `strict`, the first failure stops the run instead.

#include <cstdint>
#include <string>

#include "hlip/data/cache.h"

namespace hlip::data {

struct PrepareOptions {
  std::string manifest;
  std::string out_dir;
  std::string preset = "auto";  // "auto" (by each study's modality), a preset name, or a TOML file
  CacheDtype dtype = CacheDtype::kUint8;
  std::string split;    // only studies of this split; "" = all
  int64_t volume = 0;   // the volume of 4D files
  int threads = 0;      // studies prepared at once; 0 = LibTorch's intra-op thread count
  bool strict = false;  // stop at the first failure
  bool progress = true;
};

struct PrepareSummary {
  int64_t studies = 0;         // in the manifest (after the split filter)
  int64_t prepared = 0;        // studies in the cache's manifest
  int64_t failed_studies = 0;  // left out: no scan could be prepared (or the manifest line was bad)
  int64_t scans_written = 0;
  int64_t scans_reused = 0;  // already in the cache with the same source and parameters
  int64_t failed_scans = 0;
  double seconds = 0;
  std::string failures_path;  // CACHE/failures.jsonl
};

PrepareSummary prepare_dataset(const PrepareOptions& options);

}  // namespace hlip::data
